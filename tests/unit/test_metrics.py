"""gateway.metrics: the Prometheus text (names, labels, escaping, histogram math), checked with
the reference parser of prometheus_client; merging worker snapshots and leaving out the stale
ones; the snapshot files; the HTTP endpoint; the ``[metrics]`` configuration."""

from __future__ import annotations

import asyncio
import gzip
import io
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import parse
from gateway.metrics import (
    CONTENT_TYPE,
    METRICS,
    Snapshot,
    SnapshotBuilder,
    WorkerState,
    escape_help,
    escape_label,
    format_value,
    merge,
    read_snapshot,
    read_snapshots,
    render,
    staleness,
    status_command,
    status_lines,
    write_snapshot,
)
from gateway.metrics_collect import frame_kind
from gateway.metrics_config import metrics_dir, snapshot_path
from gateway.metrics_hist import BATCH_ROWS_BOUNDS, COMMIT_SECONDS_BOUNDS, Histogram
from gateway.metrics_server import MetricsHttp
from gateway.supervisor import worker_config

NOW = 1_800_000_000.0
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _snap(worker: int, frames: int, *, pid: int = 0, at: float = NOW, **kw: Any) -> Snapshot:
    b = SnapshotBuilder()
    b.add("silkgate_frames_total", frames, protocol="gbt32960", kind="realtime")
    b.add("silkgate_connections", worker + 1, protocol="gbt32960")
    return Snapshot(worker=worker, pid=pid or 1000 + worker, time=at, metrics=b.metrics(), **kw)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``text`` by (name, sorted labels), through the reference parser."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


# -- declarations -----------------------------------------------------------------------------


def test_metric_declarations_follow_the_conventions() -> None:
    for name, metric in METRICS.items():
        assert name.startswith("silkgate_") and _NAME.fullmatch(name), name
        assert name.endswith("_total") == (metric.type == "counter"), name
        assert metric.help and "\n" not in metric.help, name
        assert "worker" not in metric.labels and "le" not in metric.labels, name
        assert all(_LABEL.fullmatch(label) for label in metric.labels), name
        if metric.type == "histogram":
            assert not name.endswith(("_bucket", "_sum", "_count")), name


def test_builder_refuses_undeclared_metrics_and_wrong_labels_and_adds_up_duplicates() -> None:
    b = SnapshotBuilder()
    with pytest.raises(KeyError):
        b.add("silkgate_no_such_thing_total", 1)
    with pytest.raises(ValueError, match="labels"):
        b.add("silkgate_frames_total", 1, protocol="gbt32960")  # kind missing
    with pytest.raises(ValueError, match="histogram"):
        b.add("silkgate_commit_seconds", 1)
    with pytest.raises(ValueError, match="bucket counts"):
        b.histogram("silkgate_commit_seconds", [1.0, 2.0], [0, 0], 0.0)
    b.add("silkgate_frames_total", 2, protocol="jt808", kind="location")
    b.add("silkgate_frames_total", 3, kind="location", protocol="jt808")
    b.histogram("silkgate_ack_latency_seconds", [1.0], [1, 0], 0.5, protocol="ocpp")
    b.histogram("silkgate_ack_latency_seconds", [1.0], [0, 2], 6.0, protocol="ocpp")
    metrics = b.metrics()
    assert [s.value for s in metrics["silkgate_frames_total"]] == [5.0]
    (hist,) = metrics["silkgate_ack_latency_seconds"]
    assert hist.counts == [1, 2] and hist.sum == 6.5


# -- histograms -------------------------------------------------------------------------------


def test_histogram_buckets_are_upper_inclusive() -> None:
    h = Histogram([0.1, 1.0, 10.0])
    for v in (0.05, 0.1, 0.1000001, 1.0, 9.9, 10.0, 11.0, 1e9):
        h.observe(v)
    assert h.counts == [2, 2, 2, 2]
    assert h.cumulative() == [2, 4, 6, 8]
    assert h.count == 8
    assert h.sum == pytest.approx(0.05 + 0.1 + 0.1000001 + 1.0 + 9.9 + 10.0 + 11.0 + 1e9)
    for bad in ([], [1.0, 1.0], [2.0, 1.0]):
        with pytest.raises(ValueError):
            Histogram(bad)
    assert list(BATCH_ROWS_BOUNDS) == sorted(BATCH_ROWS_BOUNDS)
    assert list(COMMIT_SECONDS_BOUNDS) == sorted(COMMIT_SECONDS_BOUNDS)


def test_histogram_renders_cumulative_buckets_sum_and_count() -> None:
    h = Histogram([0.005, 0.05, 0.5])
    for v in (0.001, 0.004, 0.02, 0.3, 0.3, 7.0):
        h.observe(v)
    b = SnapshotBuilder()
    b.observe("silkgate_commit_seconds", h)
    text = render([Snapshot(worker=3, pid=1, time=NOW, metrics=b.metrics())])
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == [
        'silkgate_commit_seconds_bucket{worker="3",le="0.005"} 2',
        'silkgate_commit_seconds_bucket{worker="3",le="0.05"} 3',
        'silkgate_commit_seconds_bucket{worker="3",le="0.5"} 5',
        'silkgate_commit_seconds_bucket{worker="3",le="+Inf"} 6',
        f'silkgate_commit_seconds_sum{{worker="3"}} {h.sum!r}',
        'silkgate_commit_seconds_count{worker="3"} 6',
    ]
    (family,) = text_string_to_metric_families(text)
    assert family.type == "histogram"
    got = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert got[("silkgate_commit_seconds_count", None)] == 6
    assert got[("silkgate_commit_seconds_bucket", "+Inf")] == 6
    assert got[("silkgate_commit_seconds_sum", None)] == pytest.approx(7.625)


# -- the text format --------------------------------------------------------------------------


def test_values_and_escaping() -> None:
    assert format_value(3.0) == "3" and format_value(12) == "12" and format_value(0) == "0"
    assert format_value(0.25) == "0.25" and format_value(1e20) == "1e+20"
    assert format_value(math.inf) == "+Inf" and format_value(-math.inf) == "-Inf"
    assert format_value(math.nan) == "NaN"
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_help("x\\y\nz") == "x\\\\y\\nz"


def test_render_every_series_with_worker_first_help_type_and_escaped_labels() -> None:
    b = SnapshotBuilder()
    reason = 'bad "checksum"\\\nnext'
    b.add("silkgate_dead_letters_total", 4, protocol="jt808", reason=reason)
    b.add("silkgate_spool_bytes", 1536)
    b.add("silkgate_forwarder_lag_seconds", 0.25, forwarder="national", kind="gbt32960")
    text = render([Snapshot(worker=0, pid=1, time=NOW, metrics=b.metrics())])
    assert text.endswith("\n")
    lines = text.splitlines()
    for name in ("silkgate_dead_letters_total", "silkgate_spool_bytes"):
        assert f"# TYPE {name} {METRICS[name].type}" in lines
        assert lines.index(f"# HELP {name} {METRICS[name].help}") + 1 == lines.index(
            f"# TYPE {name} {METRICS[name].type}"
        )
    assert (
        'silkgate_dead_letters_total{worker="0",protocol="jt808",'
        'reason="bad \\"checksum\\"\\\\\\nnext"} 4' in lines
    )
    assert 'silkgate_spool_bytes{worker="0"} 1536' in lines
    samples = _samples(text)
    key = (
        "silkgate_dead_letters_total",
        (("protocol", "jt808"), ("reason", reason), ("worker", "0")),
    )
    assert samples[key] == 4  # the reference parser gets the original text back
    assert samples[("silkgate_spool_bytes", (("worker", "0"),))] == 1536
    # families without series are left out; an empty render is empty
    assert "silkgate_connections" not in text
    assert render([]) == ""
    # metric names a snapshot has and the declarations do not are skipped
    odd = Snapshot(worker=0, pid=1, time=NOW, metrics={"silkgate_from_the_future": []})
    assert render([odd]) == ""


def test_merge_of_workers_renders_one_family_with_a_series_per_worker() -> None:
    snaps = {0: _snap(0, 70), 1: _snap(1, 30)}
    workers = [WorkerState(0, 1000, 0), WorkerState(1, 1001, 2)]
    text = render(merge(workers, snaps, NOW + 0.5, 5.0))
    assert text.count("# TYPE silkgate_frames_total counter") == 1
    samples = _samples(text)

    def value(name: str, worker: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({"worker": worker, **labels}.items())))]

    frames = {
        w: value("silkgate_frames_total", w, protocol="gbt32960", kind="realtime") for w in "01"
    }
    assert frames == {"0": 70, "1": 30} and sum(frames.values()) == 100
    assert value("silkgate_worker_up", "0") == 1 and value("silkgate_worker_up", "1") == 1
    assert value("silkgate_worker_restarts_total", "1") == 2
    assert value("silkgate_worker_snapshot_age_seconds", "1") == 0.5
    # the series of one family are sorted by worker
    rows = [ln for ln in text.splitlines() if ln.startswith("silkgate_frames_total")]
    assert rows == sorted(rows, key=lambda ln: ln.split('worker="')[1][0])


def test_merge_leaves_out_stale_stopped_replaced_and_missing_snapshots() -> None:
    snaps = {
        0: _snap(0, 10),  # live
        1: _snap(1, 11, at=NOW - 6),  # older than stale_s: hung or gone
        2: _snap(2, 12, state="stopped"),  # stopped cleanly
        3: _snap(3, 13, pid=555),  # written by the process before a restart
        5: _snap(5, 15),  # its worker is not running (pid None)
    }
    workers = [WorkerState(i, 1000 + i, 0) for i in range(5)] + [WorkerState(5, None, 1)]
    assert staleness(snaps[0], NOW, 5.0, 1000) is None
    assert staleness(snaps[1], NOW, 5.0, 1001) == "stale"
    assert staleness(snaps[2], NOW, 5.0, 1002) == "stopped"
    assert staleness(snaps[3], NOW, 5.0, 1003) == "replaced"
    assert staleness(None, NOW, 5.0) == "missing"
    assert staleness(snaps[1], NOW, 10.0) is None  # within a longer stale_s
    samples = _samples(render(merge(workers, snaps, NOW, 5.0)))
    up = {dict(k[1])["worker"]: v for k, v in samples.items() if k[0] == "silkgate_worker_up"}
    assert up == {"0": 1, "1": 0, "2": 0, "3": 0, "4": 0, "5": 0}
    frames = [dict(k[1])["worker"] for k in samples if k[0] == "silkgate_frames_total"]
    assert frames == ["0"]
    ages = [dict(k[1])["worker"] for k in samples if k[0].endswith("_age_seconds")]
    assert ages == ["0"]


# -- snapshot files ---------------------------------------------------------------------------


def test_snapshot_files_roundtrip_and_foreign_files_are_ignored(tmp_path: Path) -> None:
    snap = _snap(1, 42, status="frames 42")
    b = SnapshotBuilder()
    b.histogram("silkgate_batch_rows", [1.0, 10.0], [0, 3, 1], 25.0)
    snap.metrics |= b.metrics()
    write_snapshot(snapshot_path(tmp_path, 1), snap)
    assert read_snapshot(tmp_path / "worker-1.json") == snap
    assert [p.name for p in tmp_path.iterdir()] == ["worker-1.json"]  # no temporary left
    write_snapshot(snapshot_path(tmp_path, 1), _snap(1, 43))  # replaced whole
    assert read_snapshot(tmp_path / "worker-1.json") == _snap(1, 43)
    (tmp_path / "worker-2.json").write_text("{not json")
    (tmp_path / "worker-3.json").write_bytes((tmp_path / "worker-1.json").read_bytes())
    (tmp_path / "notes.txt").write_text("hello")
    assert list(read_snapshots(tmp_path)) == [1]  # broken, misnamed and other files skipped
    assert read_snapshots(tmp_path / "missing") == {}


def test_status_lines_per_worker(tmp_path: Path) -> None:
    me = os.getpid()
    write_snapshot(tmp_path / "worker-0.json", _snap(0, 1, pid=me, status="frames 1", started=NOW))
    write_snapshot(tmp_path / "worker-1.json", _snap(1, 2, pid=me, at=NOW - 30, status="x"))
    write_snapshot(tmp_path / "worker-2.json", _snap(2, 3, pid=me, state="stopped"))
    lines, live = status_lines(tmp_path, NOW + 2, 5.0)
    assert live == 1
    assert lines[0] == f"[w0] pid {me} running 2.0 s: frames 1"
    assert lines[1].startswith(f"[w1] pid {me} STALE: last snapshot 32.0 s ago: x")
    assert lines[2].startswith(f"[w2] pid {me} stopped 2.0 s ago")


def test_status_command(tmp_path: Path) -> None:
    config = tmp_path / "silkgate.toml"
    config.write_text(f'[spool]\npath = "{tmp_path / "spool"}"\n')
    out, err = io.StringIO(), io.StringIO()
    assert status_command(str(config), out, err) == 1
    assert "no snapshots in" in out.getvalue()
    directory = tmp_path / "spool" / "metrics"
    directory.mkdir(parents=True)
    snap = _snap(0, 5, pid=os.getpid(), at=time.time(), status="frames 5")
    write_snapshot(directory / "worker-0.json", snap)
    out = io.StringIO()
    assert status_command(str(config), out, err) == 0
    assert out.getvalue().startswith(f"[w0] pid {os.getpid()} running")
    assert out.getvalue().endswith(": frames 5\n")
    config.write_text("[metrics]\nport = -1\n")
    assert status_command(str(config), out, err) == 2


# -- configuration ----------------------------------------------------------------------------


def test_metrics_config_and_the_workers_directory() -> None:
    cfg = parse({"spool": {"path": "/var/spool/sg"}})
    assert not cfg.metrics.enabled and cfg.metrics.host == "127.0.0.1"
    assert metrics_dir(cfg.metrics, cfg.spool.path) == Path("/var/spool/sg/metrics")
    # each worker writes beside the others, not in its own spool directory
    w1 = worker_config(cfg, 1, 2)
    assert w1.spool.path == "/var/spool/sg/worker-1"
    assert metrics_dir(w1.metrics, w1.spool.path) == Path("/var/spool/sg/metrics")
    own = parse({"metrics": {"dir": "/run/sg", "enabled": True, "port": 0}})
    assert metrics_dir(worker_config(own, 0, 2).metrics, "/x") == Path("/run/sg")
    for bad in ({"stale_s": 1.0, "interval_s": 1.0}, {"port": 70000}, {"colour": "red"}):
        with pytest.raises(ValueError, match="metrics"):
            parse({"metrics": bad})


def test_frame_kinds_are_named_and_bounded() -> None:
    assert frame_kind("gbt32960", 0x02) == "realtime"
    assert frame_kind("gbt32960", 0x01) == "vehicle_login"
    assert frame_kind("jt808", 0x0200) == "location"
    assert frame_kind("jt808", 0x7777) == "other"
    assert frame_kind("gbt32960", 0xEE) == "other"


# -- the endpoint -----------------------------------------------------------------------------


async def _get(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status, *fields = head.decode().split("\r\n")
    headers = {k.lower(): v for k, _, v in (f.partition(": ") for f in fields)}
    return status, headers, body


@pytest.mark.asyncio
async def test_http_endpoint() -> None:
    text = render([_snap(0, 7)]) * 20  # large enough to be compressed
    calls = 0

    def rendered() -> str:
        nonlocal calls
        calls += 1
        return text

    server = MetricsHttp("127.0.0.1", 0, rendered)
    await server.start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        status, headers, body = await _get(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK" and body.decode() == text
        assert headers["content-type"] == CONTENT_TYPE
        assert int(headers["content-length"]) == len(body)
        status, headers, body = await _get(
            server.port,
            b"GET /metrics?x=1 HTTP/1.1\r\nAccept-Encoding: deflate, gzip;q=0.9\r\n\r\n",
        )
        assert headers["content-encoding"] == "gzip" and gzip.decompress(body).decode() == text
        status, headers, body = await _get(server.port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert status.endswith("200 OK") and body == b"" and int(headers["content-length"]) > 0
        status, _, _ = await _get(server.port, b"GET /other HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 404 Not Found"
        status, headers, _ = await _get(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 405 Method Not Allowed" and headers["allow"] == "GET, HEAD"
        status, _, _ = await _get(server.port, b"nonsense\r\n\r\n")
        assert status == "HTTP/1.1 400 Bad Request"
        assert calls == 3
    finally:
        await server.close()
