"""Metrics of one gateway process as a :class:`Snapshot`, and their Prometheus text exposition
(format 0.0.4), merged over the workers of ``silkgate run --workers N`` (docs/metrics.md).

Every metric is declared once in :data:`METRICS` (name, type, help, labels); a snapshot holds
only values, keyed by metric name, each series with its own labels. Snapshots travel between
processes as JSON files (``<metrics dir>/worker-<i>.json``, written by each process every
``metrics.interval_s``); the process serving ``/metrics`` merges them with :func:`merge`, which
drops snapshots that are stale, left by a stopped process or by an earlier process of the same
worker index, and adds the per-worker ``silkgate_worker_*`` series; :func:`render` writes the
text, every series labelled ``worker`` first. Only the standard library and msgspec: the
supervisor imports this once and renders on every scrape without loading the gateway.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TextIO

import msgspec

from gateway.metrics_hist import Histogram

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_FILE_RE: Final = re.compile(r"worker-(\d+)\.json")

MetricType = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family: its type, help text and label names (``worker`` comes first and is
    not listed here)."""

    type: MetricType
    help: str
    labels: tuple[str, ...] = ()


_P: Final = ("protocol",)
_FWD: Final = ("forwarder", "kind")

#: Every metric, in the order they are rendered. Counters end in ``_total``.
METRICS: Final[dict[str, Metric]] = {
    # -- the process -----------------------------------------------------------------------
    "silkgate_worker_up": Metric(
        "gauge", "1 while the worker process runs and its snapshot is fresh, else 0."
    ),
    "silkgate_worker_restarts_total": Metric(
        "counter", "Times the supervisor restarted this worker index after an abnormal exit."
    ),
    "silkgate_worker_snapshot_age_seconds": Metric(
        "gauge", "Age of the worker's newest snapshot when this scrape was served."
    ),
    "silkgate_build_info": Metric("gauge", "Always 1; the silkgate version.", ("version",)),
    "silkgate_process_start_time_seconds": Metric(
        "gauge", "Start of the process, seconds since the Unix epoch."
    ),
    "silkgate_process_cpu_seconds_total": Metric("counter", "User and system CPU seconds used."),
    "silkgate_process_resident_memory_bytes": Metric("gauge", "Resident memory of the process."),
    # -- ingest ----------------------------------------------------------------------------
    "silkgate_frames_total": Metric(
        "counter",
        "Frames received: TCP listener frames by message kind (undecodable: failed to decode), "
        "OCPP messages and MQTT messages (kind message).",
        ("protocol", "kind"),
    ),
    "silkgate_records_total": Metric(
        "counter", "Normalized records made from received TCP frames and MQTT messages.", _P
    ),
    "silkgate_dead_letters_total": Metric(
        "counter", "Frames and messages stored as dead letters, by reason.", ("protocol", "reason")
    ),
    "silkgate_bad_frames_total": Metric(
        "counter",
        "Bad frames on the TCP listeners and the OCPP endpoint (garbage, bad checksums, "
        "undecodable, cut off, refused by the session).",
        _P,
    ),
    # -- the pipeline ----------------------------------------------------------------------
    "silkgate_rows_submitted_total": Metric("counter", "Rows submitted to the pipeline."),
    "silkgate_rows_committed_total": Metric(
        "counter", "Rows committed to the database (live and replayed), by table.", ("table",)
    ),
    "silkgate_batches_committed_total": Metric("counter", "Batches committed to the database."),
    "silkgate_rows_spooled_total": Metric("counter", "Rows written to the spool (database away)."),
    "silkgate_batches_spooled_total": Metric("counter", "Spool records written."),
    "silkgate_rows_replayed_total": Metric(
        "counter", "Rows replayed from the spool and committed."
    ),
    "silkgate_rows_rejected_total": Metric(
        "counter", "Rows the database refused for their content (stored as dead letters)."
    ),
    "silkgate_database_outages_total": Metric(
        "counter", "Times a batch found the database away and the pipeline started spooling."
    ),
    "silkgate_batch_retries_total": Metric(
        "counter", "Batches written again after a deadlock or serialization failure."
    ),
    "silkgate_batch_rows": Metric("histogram", "Rows per committed batch."),
    "silkgate_commit_seconds": Metric(
        "histogram", "Seconds from the start of a batch's write to its commit."
    ),
    "silkgate_queue_rows": Metric(
        "gauge",
        "Rows queued or being written, by table (bounded by pipeline.queue_rows).",
        ("table",),
    ),
    "silkgate_spooling": Metric(
        "gauge", "1 while batches go to the spool (database away, or a backlog replaying)."
    ),
    "silkgate_spool_bytes": Metric("gauge", "Bytes of records in the spool."),
    "silkgate_spool_records": Metric("gauge", "Spool records not yet replayed."),
    "silkgate_spool_segments": Metric("gauge", "Spool segment files."),
    "silkgate_spool_max_bytes": Metric("gauge", "spool.max_bytes."),
    # -- connections -----------------------------------------------------------------------
    "silkgate_connections": Metric("gauge", "Open connections of terminals and chargers.", _P),
    "silkgate_connections_accepted_total": Metric("counter", "Connections accepted.", _P),
    "silkgate_connections_refused_total": Metric(
        "counter",
        "Connections refused, by the limit or check that refused them.",
        ("protocol", "reason"),
    ),
    "silkgate_connections_closed_total": Metric(
        "counter", "Connections closed, by reason.", ("protocol", "reason")
    ),
    "silkgate_acks_total": Metric("counter", "Replies sent after their frames were durable.", _P),
    "silkgate_ack_failures_total": Metric(
        "counter", "Connections aborted because their records could not be made durable.", _P
    ),
    "silkgate_ack_latency_seconds": Metric(
        "histogram", "Seconds from a frame's arrival to its reply (after durability).", _P
    ),
    # -- MQTT ------------------------------------------------------------------------------
    "silkgate_mqtt_connected": Metric("gauge", "1 while connected to the MQTT broker."),
    "silkgate_mqtt_received_total": Metric("counter", "MQTT messages received."),
    "silkgate_mqtt_redelivered_total": Metric("counter", "MQTT messages received with DUP set."),
    "silkgate_mqtt_duplicates_total": Metric(
        "counter", "Redelivered MQTT messages found stored already and not stored again."
    ),
    "silkgate_mqtt_acked_total": Metric("counter", "MQTT PUBACKs sent (after durability)."),
    "silkgate_mqtt_in_flight": Metric("gauge", "MQTT messages received and not yet acknowledged."),
    "silkgate_mqtt_connects_total": Metric("counter", "Connections made to the MQTT broker."),
    "silkgate_mqtt_connect_failures_total": Metric(
        "counter", "Failed connection attempts to the MQTT broker."
    ),
    "silkgate_mqtt_failed_batches_total": Metric(
        "counter", "MQTT batches never made durable (not acknowledged; redelivered)."
    ),
    # -- forwarders ------------------------------------------------------------------------
    "silkgate_forwarder_up": Metric(
        "gauge", "1 while the forwarder is logged in (GB/T) or its POSTs succeed (JSON).", _FWD
    ),
    "silkgate_forwarder_lag_seconds": Metric(
        "gauge", "Age of the oldest frame read and not yet acknowledged upstream (0: none).", _FWD
    ),
    "silkgate_forwarder_pending": Metric(
        "gauge", "Archive rows read and not yet acknowledged upstream.", _FWD
    ),
    "silkgate_forwarder_caught_up": Metric(
        "gauge", "1 when the forwarder's last archive read found nothing more.", _FWD
    ),
    "silkgate_forwarded_total": Metric(
        "counter", "Frames (GB/T) or records (JSON) acknowledged upstream.", _FWD
    ),
    "silkgate_forwarder_rejected_total": Metric(
        "counter", "Negative acks (GB/T) or batches refused with a 4xx (JSON).", _FWD
    ),
    "silkgate_forwarder_skipped_total": Metric(
        "counter", "Frames that could not be converted or decoded for the upstream.", _FWD
    ),
    "silkgate_forwarder_failures_total": Metric(
        "counter", "Connection failures, timeouts and 5xx answers of the upstream.", _FWD
    ),
    # -- local republish (docs/republish.md) -------------------------------------------------
    "silkgate_republish_connected": Metric(
        "gauge", "1 while the republisher is connected to its local broker.", ("name",)
    ),
    "silkgate_republished_total": Metric(
        "counter", "Records published and acknowledged by the local broker.", ("name",)
    ),
    "silkgate_republish_lag_records": Metric(
        "gauge", "Committed records waiting in the outbox to be published.", ("name",)
    ),
    "silkgate_republish_lag_seconds": Metric(
        "gauge", "Age of the oldest committed outbox row not yet published (0: none).", ("name",)
    ),
    "silkgate_republish_errors_total": Metric(
        "counter", "Failed or lost broker connections, ack timeouts and database errors.", ("name",)
    ),
    "silkgate_republish_rejected_total": Metric(
        "counter", "Messages the broker refused (published again).", ("name",)
    ),
    # -- API (docs/api.md) -------------------------------------------------------------------
    "silkgate_api_rate_limited_total": Metric(
        "counter", "API requests refused with 429 by the per-token rate limit."
    ),
    "silkgate_api_audit_failures_total": Metric(
        "counter", "Command audit rows that could not be written (logged)."
    ),
    "silkgate_api_commands_forwarded_total": Metric(
        "counter", "Commands this worker handed to the worker holding the device."
    ),
    "silkgate_api_commands_served_total": Metric(
        "counter", "Commands this worker ran for another worker."
    ),
}


class Series(msgspec.Struct, omit_defaults=True):
    """One series: its labels and a value, or a histogram's bucket counts (``counts[i]`` for
    the observations up to ``bounds[i]`` and above ``bounds[i-1]``, the last one above every
    bound) and sum."""

    labels: dict[str, str] = {}
    value: float = 0.0
    bounds: list[float] | None = None
    counts: list[int] | None = None
    sum: float = 0.0


class Snapshot(msgspec.Struct):
    """The metrics of one process at one time (``time``: Unix seconds)."""

    worker: int
    pid: int
    time: float
    started: float = 0.0
    state: Literal["running", "stopped"] = "running"
    status: str = ""  # the process's status line, for people (``silkgate status``)
    metrics: dict[str, list[Series]] = {}


class SnapshotBuilder:
    """Collects series for one :class:`Snapshot`; series with the same labels add up."""

    def __init__(self) -> None:
        self._series: dict[str, dict[tuple[tuple[str, str], ...], Series]] = {}

    def add(self, name: str, value: float, /, **labels: str) -> None:
        """Add ``value`` to the series of ``name`` with ``labels`` (created at 0)."""
        key = self._check(name, labels, histogram=False)
        family = self._series.setdefault(name, {})
        series = family.get(key)
        if series is None:
            family[key] = Series(labels=labels, value=float(value))
        else:
            series.value += value

    def histogram(
        self, name: str, bounds: Sequence[float], counts: Sequence[int], total: float, **labels: str
    ) -> None:
        """A histogram series from per-bucket counts (``len(bounds) + 1`` of them)."""
        if len(counts) != len(bounds) + 1:
            raise ValueError(f"{name}: {len(counts)} bucket counts for {len(bounds)} bounds")
        key = self._check(name, labels, histogram=True)
        family = self._series.setdefault(name, {})
        old = family.get(key)
        if old is not None and old.counts is not None and old.bounds == list(bounds):
            old.counts = [a + b for a, b in zip(old.counts, counts, strict=True)]
            old.sum += total
            return
        family[key] = Series(labels=labels, bounds=list(bounds), counts=list(counts), sum=total)

    def observe(self, name: str, hist: Histogram, /, **labels: str) -> None:
        """A histogram series from a :class:`~gateway.metrics_hist.Histogram`."""
        self.histogram(name, hist.bounds, hist.counts, hist.sum, **labels)

    def _check(
        self, name: str, labels: Mapping[str, str], *, histogram: bool
    ) -> tuple[tuple[str, str], ...]:
        metric = METRICS.get(name)
        if metric is None:
            raise KeyError(f"undeclared metric {name}")
        if (metric.type == "histogram") != histogram or set(labels) != set(metric.labels):
            raise ValueError(f"{name}: expected labels {metric.labels} ({metric.type})")
        return tuple(sorted(labels.items()))

    def metrics(self) -> dict[str, list[Series]]:
        return {name: list(family.values()) for name, family in self._series.items()}


# -- rendering ---------------------------------------------------------------------------------


def escape_label(value: str) -> str:
    """A label value for the text format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """A HELP text: backslash and newline escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value (or ``le`` bound): integers without a fraction, ``+Inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs) + "}"


def render(snapshots: Iterable[Snapshot]) -> str:
    """The Prometheus text exposition of ``snapshots``: per metric of :data:`METRICS` that has
    series, its HELP and TYPE lines and every series, labelled with its snapshot's
    ``worker`` first. Metric names a snapshot has and :data:`METRICS` does not are skipped."""
    families: dict[str, list[tuple[int, Series]]] = {}
    for snap in snapshots:
        for name, series in snap.metrics.items():
            if name in METRICS:
                families.setdefault(name, []).extend((snap.worker, s) for s in series)
    lines: list[str] = []
    for name, metric in METRICS.items():
        items = families.get(name)
        if not items:
            continue
        lines.append(f"# HELP {name} {escape_help(metric.help)}")
        lines.append(f"# TYPE {name} {metric.type}")
        items.sort(key=lambda item: (item[0], sorted(item[1].labels.items())))
        for worker, s in items:
            pairs = [("worker", str(worker)), *((k, s.labels[k]) for k in metric.labels)]
            if metric.type != "histogram":
                lines.append(f"{name}{_labels(pairs)} {format_value(s.value)}")
                continue
            bounds, counts = s.bounds or [], s.counts or [0]
            seen = 0
            for bound, n in zip([*bounds, math.inf], counts, strict=True):
                seen += n
                le = _labels([*pairs, ("le", format_value(bound))])
                lines.append(f"{name}_bucket{le} {seen}")
            lines.append(f"{name}_sum{_labels(pairs)} {format_value(s.sum)}")
            lines.append(f"{name}_count{_labels(pairs)} {seen}")
    return "\n".join(lines) + "\n" if lines else ""


# -- snapshots of several processes ------------------------------------------------------------

_decoder = msgspec.json.Decoder(Snapshot)
_encoder = msgspec.json.Encoder()


def encode(snapshot: Snapshot) -> bytes:
    return _encoder.encode(snapshot)


def write_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Replace ``path`` atomically (a temporary file beside it, then ``rename``): a reader
    sees the previous snapshot or this one, never a part. Not fsynced: metrics are not
    worth a disk flush, and a crash leaves at worst an older snapshot."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(encode(snapshot))
    os.replace(tmp, path)


def read_snapshot(path: Path) -> Snapshot | None:
    """The snapshot in ``path``; None when it is missing or not a snapshot."""
    try:
        return _decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


def read_snapshots(directory: Path) -> dict[int, Snapshot]:
    """Every ``worker-<i>.json`` snapshot in ``directory``, by worker index."""
    out: dict[int, Snapshot] = {}
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            m = _FILE_RE.fullmatch(entry.name)
            if m is None:
                continue
            snap = read_snapshot(entry)
            if snap is not None and snap.worker == int(m.group(1)):
                out[snap.worker] = snap
    return out


def staleness(
    snapshot: Snapshot | None, now: float, stale_s: float, pid: int | None = None
) -> str | None:
    """Why ``snapshot`` must not be served (None: it is live): ``missing``, ``stopped`` (its
    process stopped cleanly), ``replaced`` (written by another process than ``pid``, the one
    now running that worker: an earlier one's), ``stale`` (older than ``stale_s``: the process
    is hung or gone)."""
    if snapshot is None:
        return "missing"
    if snapshot.state == "stopped":
        return "stopped"
    if pid is not None and snapshot.pid != pid:
        return "replaced"
    if now - snapshot.time > stale_s:
        return "stale"
    return None


@dataclass(frozen=True, slots=True)
class WorkerState:
    """What the serving process knows of worker ``index``: the pid running it now (None: none
    is) and how often it was restarted."""

    index: int
    pid: int | None
    restarts: int = 0


def merge(
    workers: Iterable[WorkerState],
    snapshots: Mapping[int, Snapshot],
    now: float,
    stale_s: float,
) -> list[Snapshot]:
    """The snapshots to render for ``workers``: each live one (see :func:`staleness`), plus per
    worker its ``silkgate_worker_up``, ``_restarts_total`` and, when it has a snapshot,
    ``_snapshot_age_seconds``. A worker that is down has only those series."""
    out: list[Snapshot] = []
    for w in workers:
        snap = snapshots.get(w.index)
        live = w.pid is not None and staleness(snap, now, stale_s, w.pid) is None
        b = SnapshotBuilder()
        b.add("silkgate_worker_up", 1 if live else 0)
        b.add("silkgate_worker_restarts_total", w.restarts)
        if snap is not None and live:
            b.add("silkgate_worker_snapshot_age_seconds", max(0.0, round(now - snap.time, 3)))
            out.append(snap)
        out.append(Snapshot(worker=w.index, pid=w.pid or 0, time=now, metrics=b.metrics()))
    return out


# -- ``silkgate status`` -----------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def status_lines(directory: Path, now: float, stale_s: float) -> tuple[list[str], int]:
    """One line per snapshot file in ``directory`` for people, and how many are live."""
    lines: list[str] = []
    live = 0
    for index, snap in sorted(read_snapshots(directory).items()):
        why = staleness(snap, now, stale_s)
        if why is None and not _alive(snap.pid):
            why = "gone"
        if why is None:
            live += 1
            state = f"running {_ago(now - snap.started)}"
        elif why == "stopped":
            state = f"stopped {_ago(now - snap.time)} ago"
        else:
            gone = "" if _alive(snap.pid) else ", process gone"
            state = f"STALE: last snapshot {_ago(now - snap.time)} ago{gone}"
        lines.append(f"[w{index}] pid {snap.pid} {state}: {snap.status or '(no status)'}")
    return lines, live


def status_command(config_path: str | None, out: TextIO, err: TextIO) -> int:
    """``silkgate status``: the snapshot of every worker (or the single process) of the
    gateway configured by ``config_path``, one line each; 0 when at least one is running."""
    from gateway.config import Config, ConfigError, load
    from gateway.metrics_config import metrics_dir

    try:
        cfg = load(config_path) if config_path else Config()
    except ConfigError as exc:
        print(f"silkgate: {exc}", file=err)
        return 2
    directory = metrics_dir(cfg.metrics, cfg.spool.path)
    lines, live = status_lines(directory, time.time(), cfg.metrics.stale_s)
    if not lines:
        out.write(f"no snapshots in {directory}: no silkgate ran with this configuration\n")
        return 1
    out.write("".join(f"{line}\n" for line in lines))
    return 0 if live else 1
