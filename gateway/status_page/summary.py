"""The status page's view of the metrics: the merged snapshots of :mod:`gateway.metrics` (the
ones ``/metrics`` renders) summed over the workers into what a person reads (connections by
protocol, rates, errors by reason, queue and spool depth, workers), as plain JSON-able dicts.

Rates come from :class:`Rates`, which keeps each live process's recent counter values (keyed by
worker and pid, so a restarted worker's counters starting again from 0 never make a negative
rate) and divides by the time between the snapshots themselves, not between requests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.metrics import Series, Snapshot

#: Closing reasons that are part of normal operation, not errors.
NORMAL_CLOSES: Final = frozenset({"peer_closed", "logout", "shutdown"})
#: Seconds of counter history a rate is computed over (at most).
RATE_WINDOW_S: Final = 10.0
#: Counters whose rates the page shows: rate name -> (metric, label to split by or None).
_RATED: Final = {
    "frames": ("silkgate_frames_total", "protocol"),
    "records": ("silkgate_records_total", "protocol"),
    "rows_committed": ("silkgate_rows_committed_total", None),
    "dead_letters": ("silkgate_dead_letters_total", None),
}
_WORKER_SERIES: Final = "silkgate_worker_up"


def _series(snaps: Iterable[Snapshot], name: str) -> Iterator[Series]:
    for snap in snaps:
        yield from snap.metrics.get(name, ())


def _sum(snaps: Iterable[Snapshot], name: str, **labels: str) -> float:
    """The sum of the series of ``name`` whose labels include ``labels``."""
    want = labels.items()
    return sum(s.value for s in _series(snaps, name) if want <= s.labels.items())


def _by(snaps: Iterable[Snapshot], name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """The series of ``name`` summed by the values of the labels ``keys``."""
    out: dict[tuple[str, ...], float] = {}
    for s in _series(snaps, name):
        key = tuple(s.labels.get(k, "") for k in keys)
        out[key] = out.get(key, 0.0) + s.value
    return out


def split(merged: Sequence[Snapshot]) -> tuple[list[Snapshot], list[Snapshot]]:
    """The processes' own snapshots and the per-worker ``silkgate_worker_*`` ones that
    :func:`gateway.metrics.merge` adds."""
    live = [s for s in merged if _WORKER_SERIES not in s.metrics]
    workers = [s for s in merged if _WORKER_SERIES in s.metrics]
    return live, workers


@dataclass
class Rates:
    """Per-second rates of the counters in :data:`_RATED`, over the last ``window_s`` of
    snapshots of each live process."""

    window_s: float = RATE_WINDOW_S
    _history: dict[tuple[int, int], deque[tuple[float, dict[str, float]]]] = field(
        default_factory=dict
    )

    @staticmethod
    def _counters(snap: Snapshot) -> dict[str, float]:
        values: dict[str, float] = {}
        for rate, (metric, label) in _RATED.items():
            for s in snap.metrics.get(metric, ()):
                values[rate] = values.get(rate, 0.0) + s.value
                if label is not None:
                    key = f"{rate}:{s.labels.get(label, '')}"
                    values[key] = values.get(key, 0.0) + s.value
        return values

    def update(self, live: Sequence[Snapshot]) -> dict[str, float] | None:
        """Record ``live`` (the processes' snapshots now) and return the rates (``frames``,
        ``frames:<protocol>``, ``records``, ...), or None until two snapshots of a process
        are at least a moment apart."""
        seen: set[tuple[int, int]] = set()
        for snap in live:
            key = (snap.worker, snap.pid)
            seen.add(key)
            hist = self._history.setdefault(key, deque())
            if not hist or snap.time > hist[-1][0]:
                hist.append((snap.time, self._counters(snap)))
            horizon = hist[-1][0] - self.window_s
            # keep the newest sample older than the window, so the window is always covered
            while len(hist) > 2 and hist[1][0] <= horizon:
                hist.popleft()
            # but not one from long before it (nobody asked for a while): it says nothing of now
            if len(hist) > 1 and hist[0][0] < horizon - self.window_s:
                hist.popleft()
        for key in set(self._history) - seen:  # a process gone or replaced
            del self._history[key]
        rates: dict[str, float] = {}
        measured = False
        for hist in self._history.values():
            (t0, first), (t1, last) = hist[0], hist[-1]
            if t1 - t0 < 0.5:
                continue
            measured = True
            for name, value in last.items():
                delta = max(0.0, value - first.get(name, 0.0))
                rates[name] = rates.get(name, 0.0) + delta / (t1 - t0)
        if not measured:
            return None
        for name in _RATED:
            rates.setdefault(name, 0.0)
        return {k: round(v, 3) for k, v in rates.items()}


def _workers(live: Sequence[Snapshot], workers: Sequence[Snapshot]) -> list[dict[str, Any]]:
    own = {s.worker: s for s in live}
    out = []
    for w in sorted(workers, key=lambda s: s.worker):
        snap = own.get(w.worker)
        out.append(
            {
                "worker": w.worker,
                "up": _sum([w], "silkgate_worker_up") > 0,
                "pid": snap.pid if snap is not None else (w.pid or None),
                "restarts": int(_sum([w], "silkgate_worker_restarts_total")),
                "started": snap.started if snap is not None else None,
                "snapshot_age_s": _sum([w], "silkgate_worker_snapshot_age_seconds"),
                "status": snap.status if snap is not None else "",
            }
        )
    return out


def _protocols(live: Sequence[Snapshot], rates: dict[str, float] | None) -> list[dict[str, Any]]:
    names: set[str] = set()
    for metric in ("silkgate_frames_total", "silkgate_connections", "silkgate_records_total"):
        names.update(s.labels.get("protocol", "") for s in _series(live, metric))
    out = []
    for p in sorted(names - {""}):
        out.append(
            {
                "protocol": p,
                "connections": int(_sum(live, "silkgate_connections", protocol=p)),
                "accepted": int(_sum(live, "silkgate_connections_accepted_total", protocol=p)),
                "refused": int(_sum(live, "silkgate_connections_refused_total", protocol=p)),
                "frames": int(_sum(live, "silkgate_frames_total", protocol=p)),
                "frames_per_s": None if rates is None else rates.get(f"frames:{p}", 0.0),
                "records": int(_sum(live, "silkgate_records_total", protocol=p)),
                "acks": int(_sum(live, "silkgate_acks_total", protocol=p)),
                "bad_frames": int(_sum(live, "silkgate_bad_frames_total", protocol=p)),
            }
        )
    return out


def _errors(live: Sequence[Snapshot]) -> list[dict[str, Any]]:
    """Everything that went wrong, by what and reason; zero counts left out."""
    rows: list[tuple[str, str, str, float]] = []
    for what, metric in (
        ("dead letter", "silkgate_dead_letters_total"),
        ("connection refused", "silkgate_connections_refused_total"),
        ("connection closed", "silkgate_connections_closed_total"),
    ):
        for (p, reason), n in _by(live, metric, "protocol", "reason").items():
            if what != "connection closed" or reason not in NORMAL_CLOSES:
                rows.append((what, p, reason, n))
    for (p,), n in _by(live, "silkgate_ack_failures_total", "protocol").items():
        rows.append(("not durable, no ack", p, "", n))
    for what, metric in (
        ("rows rejected by the database", "silkgate_rows_rejected_total"),
        ("database outages", "silkgate_database_outages_total"),
        ("batch retries", "silkgate_batch_retries_total"),
        ("MQTT batches not durable", "silkgate_mqtt_failed_batches_total"),
        ("MQTT connect failures", "silkgate_mqtt_connect_failures_total"),
    ):
        rows.append((what, "", "", _sum(live, metric)))
    for what, metric in (
        ("forwarder failures", "silkgate_forwarder_failures_total"),
        ("forwarder rejections", "silkgate_forwarder_rejected_total"),
        ("forwarder skipped frames", "silkgate_forwarder_skipped_total"),
    ):
        for (name,), n in _by(live, metric, "forwarder").items():
            rows.append((what, "", name, n))
    rows = [r for r in rows if r[3] > 0]
    rows.sort(key=lambda r: (-r[3], r[0], r[1], r[2]))
    return [{"what": w, "protocol": p, "reason": r, "count": int(n)} for w, p, r, n in rows]


def _forwarders(live: Sequence[Snapshot]) -> list[dict[str, Any]]:
    keys = sorted(_by(live, "silkgate_forwarder_up", "forwarder", "kind"))
    out = []
    for name, kind in keys:
        fl = {"forwarder": name, "kind": kind}
        out.append(
            {
                "name": name,
                "kind": kind,
                "up": _sum(live, "silkgate_forwarder_up", **fl) > 0,
                "lag_s": _sum(live, "silkgate_forwarder_lag_seconds", **fl),
                "pending": int(_sum(live, "silkgate_forwarder_pending", **fl)),
                "forwarded": int(_sum(live, "silkgate_forwarded_total", **fl)),
                "failures": int(_sum(live, "silkgate_forwarder_failures_total", **fl)),
            }
        )
    return out


def _mqtt(live: Sequence[Snapshot]) -> dict[str, Any] | None:
    connected = list(_series(live, "silkgate_mqtt_connected"))
    if not connected:
        return None
    return {
        "connected": sum(1 for s in connected if s.value > 0),
        "clients": len(connected),
        "received": int(_sum(live, "silkgate_mqtt_received_total")),
        "acked": int(_sum(live, "silkgate_mqtt_acked_total")),
        "in_flight": int(_sum(live, "silkgate_mqtt_in_flight")),
        "duplicates": int(_sum(live, "silkgate_mqtt_duplicates_total")),
    }


def summarize(merged: Sequence[Snapshot], rates: Rates, now: float) -> dict[str, Any]:
    """The metrics part of ``/status.json`` from the merged snapshots (see the module
    docstring); ``rates`` is updated with the live processes' snapshots."""
    live, workers = split(merged)
    rate = rates.update(live)
    queue = {t: int(n) for (t,), n in _by(live, "silkgate_queue_rows", "table").items() if n}
    kinds = _by(live, "silkgate_frames_total", "protocol", "kind")
    versions = {s.labels.get("version", "") for s in _series(live, "silkgate_build_info")}
    return {
        "time": now,
        "version": ", ".join(sorted(versions - {""})),
        "workers": _workers(live, workers),
        "totals": {
            "frames": int(_sum(live, "silkgate_frames_total")),
            "records": int(_sum(live, "silkgate_records_total")),
            "rows_submitted": int(_sum(live, "silkgate_rows_submitted_total")),
            "rows_committed": int(_sum(live, "silkgate_rows_committed_total")),
            "dead_letters": int(_sum(live, "silkgate_dead_letters_total")),
            "connections": int(_sum(live, "silkgate_connections")),
        },
        "rates": rate,
        "protocols": _protocols(live, rate),
        "frames_by_kind": [
            {"protocol": p, "kind": k, "frames": int(n)}
            for (p, k), n in sorted(kinds.items(), key=lambda kv: (kv[0][0], -kv[1]))
            if n
        ],
        "errors": _errors(live),
        "queue": {"rows": sum(queue.values()), "by_table": dict(sorted(queue.items()))},
        "spool": {
            "bytes": int(_sum(live, "silkgate_spool_bytes")),
            "records": int(_sum(live, "silkgate_spool_records")),
            "segments": int(_sum(live, "silkgate_spool_segments")),
            "max_bytes": int(_sum(live, "silkgate_spool_max_bytes")),
            "spooling": _sum(live, "silkgate_spooling") > 0,
        },
        "mqtt": _mqtt(live),
        "forwarders": _forwarders(live),
    }
