"""``/metrics`` of a real ``silkgate run`` (PostgreSQL, TCP terminals from ``silkgate
simulate``): the counters equal what was sent and stored, the commit histogram counts the
batches, the connections gauge the open sockets; with ``--workers 2`` the supervisor serves one
series per worker whose frame counters add up to what was sent, and a killed worker's stale
snapshot is not served."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.store.testing import create_schema, drop_schema, with_search_path

from .gatewaykit import RunProcess, _free_port, count, simulate_gbt
from .test_mqtt_adapter import gbt

if TYPE_CHECKING:
    from .conftest import Services

EPOCH = 1_775_001_600  # 2026-04-01 UTC
TERMINALS, REPORTS = 16, 10
SENT = TERMINALS * (REPORTS + 2)  # each: a login, its reports, a logout

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def schema_dsn(services: Services) -> Iterator[str]:
    schema = asyncio.run(create_schema(services.dsn, "silkgate_metrics"))
    yield with_search_path(services.dsn, schema)
    asyncio.run(drop_schema(services.dsn, schema))


def write_config(tmp: Path, dsn: str, port: int, metrics_port: int = 0, extra: str = "") -> Path:
    """A GB/T 32960 listener on ``port``, /metrics on ``metrics_port`` (0: any free port)."""
    config = tmp / "silkgate.toml"
    config.write_text(
        f'[database]\ndsn = "{dsn}"\n[spool]\npath = "{tmp / "spool"}"\n'
        "[pipeline]\nbatch_age_ms = 50\n"
        f'[listeners.gbt32960]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        f'[metrics]\nenabled = true\nhost = "127.0.0.1"\nport = {metrics_port}\n{extra}'
    )
    return config


class Gateway(RunProcess):
    """``silkgate run`` (``--workers N`` optional) with its output read by a thread."""

    def __init__(self, tmp: Path, dsn: str, port: int, *args: str, extra: str = "") -> None:
        self.config = write_config(tmp, dsn, port, extra=extra)
        super().__init__(self.config, *args)


def scrape(url: str) -> tuple[str, Samples]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return text, samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def _simulate(port: int, seed: int) -> dict[str, Any]:
    summary = simulate_gbt(port, TERMINALS, REPORTS, seed)
    assert summary["acked"] == TERMINALS * REPORTS and summary["unacked"] == 0, summary
    return summary


async def _publish(services: Services, topics: list[str]) -> None:
    async with aiomqtt.Client(
        services.mqtt_host, services.mqtt_port, identifier=f"itm-pub-{uuid.uuid4().hex[:8]}"
    ) as pub:
        for k, topic in enumerate(topics):
            await pub.publish(topic, gbt(topic.rsplit("/", 1)[1], EPOCH + k), qos=1)


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def test_single_process_metrics_count_what_was_sent(
    schema_dsn: str, tmp_path: Path, services: Services
) -> None:
    tag = uuid.uuid4().hex[:8]
    extra = (
        '[ocpp]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'
        f'[mqtt]\nenabled = true\nhost = "{services.mqtt_host}"\nport = {services.mqtt_port}\n'
        f'client_id = "itm-{tag}"\nsession_expiry_s = 60\n'
        f'[[mqtt.routes]]\nfilter = "itm-{tag}/gbt/+"\ncodec = "gbt32960"\ndevice = "topic:2"\n'
        # an upstream that is never there: the forwarder fails and falls behind
        f'[[forward.json]]\nname = "feed"\nurl = "http://127.0.0.1:{_free_port()}/feed"\n'
        "retry_min_s = 0.1\nretry_max_s = 0.2\nbatch_age_ms = 50\nselect = { all = true }\n"
    )
    gw = Gateway(tmp_path, schema_dsn, 0, extra=extra)
    try:
        url = gw.metrics_url()
        line = gw.wait_line(lambda ln: ln.startswith("listening: gbt32960 on "))
        port = int(line.rsplit(":", 1)[1])
        gw.wait_line(lambda ln: ln.startswith("frames ") and "mqtt up" in ln)
        _simulate(port, seed=81)
        asyncio.run(_publish(services, [f"itm-{tag}/gbt/LMQTT{k:012d}" for k in range(3)]))
        m = {"worker": "0", "protocol": "mqtt", "kind": "message"}
        _eventually(lambda: total(scrape(url)[1], "silkgate_mqtt_acked_total") == 3)
        # two more connections stay open; one of them sends a frame with a bad checksum
        bad = bytearray(gbt("LMETRICS000000001", EPOCH))
        bad[-1] ^= 0xFF
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            held[0].sendall(bytes(bad))
            _eventually(lambda: count(schema_dsn, "SELECT count(*) FROM dead_letters") == 1)
            text, s = scrape(url)
            assert total(s, "silkgate_connections", protocol="gbt32960", worker="0") == 2
        finally:
            for sock in held:
                sock.close()
        g = {"worker": "0", "protocol": "gbt32960"}
        assert total(s, "silkgate_dead_letters_total", reason="bad_checksum", **g) == 1

        def settled() -> bool:  # both closed, and every row submitted is committed
            nonlocal text, s
            text, s = scrape(url)
            return total(s, "silkgate_connections", **g) == 0 and total(
                s, "silkgate_rows_committed_total"
            ) == total(s, "silkgate_rows_submitted_total")

        _eventually(settled)
        assert text.count("# TYPE silkgate_frames_total counter") == 1
        assert "# HELP silkgate_commit_seconds " in text
        assert total(s, "silkgate_frames_total", **g) == SENT
        assert total(s, "silkgate_frames_total", kind="realtime", **g) == TERMINALS * REPORTS
        assert total(s, "silkgate_frames_total", kind="vehicle_login", **g) == TERMINALS
        assert total(s, "silkgate_frames_total", kind="vehicle_logout", **g) == TERMINALS
        assert total(s, "silkgate_connections_accepted_total", **g) == TERMINALS + 2
        assert total(s, "silkgate_connections_closed_total", **g) == TERMINALS + 2
        assert total(s, "silkgate_acks_total", **g) == SENT
        assert total(s, "silkgate_ack_latency_seconds_count", **g) == SENT
        # what the pipeline committed, per table, is what the database holds
        committed = {
            dict(ls)["table"]: v for (n, ls), v in s.items() if n == "silkgate_rows_committed_total"
        }
        for table in ("raw_frames", "vehicle_realtime", "vehicle_sessions", "dead_letters"):
            assert committed[table] == count(schema_dsn, f"SELECT count(*) FROM {table}"), table
        assert committed["raw_frames"] == SENT + 3  # the MQTT messages too
        dead = total(s, "silkgate_dead_letters_total", **g)
        assert dead == committed["dead_letters"] == total(s, "silkgate_bad_frames_total", **g)
        # records made from the frames (logins and logouts included): all but the archive
        mqtt = total(s, "silkgate_records_total", worker="0", protocol="mqtt")
        made = sum(committed.values()) - SENT - 3 - dead - mqtt
        assert total(s, "silkgate_records_total", **g) == made > 0
        # the histograms: one observation per committed batch, rows adding up
        batches = total(s, "silkgate_batches_committed_total")
        assert batches > 0
        assert total(s, "silkgate_commit_seconds_count") == batches
        assert total(s, "silkgate_commit_seconds_bucket", le="+Inf") == batches
        assert total(s, "silkgate_batch_rows_count") == batches
        assert total(s, "silkgate_batch_rows_sum") == sum(committed.values())
        assert total(s, "silkgate_worker_up", worker="0") == 1
        assert total(s, "silkgate_spool_bytes", worker="0") == 0
        # MQTT, OCPP and the forwarder
        assert total(s, "silkgate_frames_total", **m) == 3
        assert mqtt > 0
        assert total(s, "silkgate_mqtt_connected") == 1
        assert total(s, "silkgate_mqtt_received_total") == 3
        assert total(s, "silkgate_connections", protocol="ocpp") == 0
        assert ("silkgate_connections", frozenset({("worker", "0"), ("protocol", "ocpp")})) in s
        f = {"forwarder": "feed", "kind": "json"}
        _eventually(lambda: total(scrape(url)[1], "silkgate_forwarder_failures_total", **f) > 0)
        s = scrape(url)[1]
        assert total(s, "silkgate_forwarder_up", **f) == 0
        assert total(s, "silkgate_forwarded_total", **f) == 0
        # the snapshot file and `silkgate status`
        snap = json.loads((tmp_path / "spool" / "metrics" / "worker-0.json").read_text())
        assert snap["worker"] == 0 and snap["pid"] == gw.proc.pid and snap["state"] == "running"
        status = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "status", "--config", str(gw.config)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/tmp",
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.startswith(f"[w0] pid {gw.proc.pid} running"), status.stdout
        assert f"conns (0 refused) {SENT:,} frames" in status.stdout, status.stdout
        assert gw.stop() == 0, gw.text()
        snap = json.loads((tmp_path / "spool" / "metrics" / "worker-0.json").read_text())
        assert snap["state"] == "stopped"
    finally:
        gw.kill()


def test_workers_series_per_worker_and_stale_snapshots(
    schema_dsn: str, tmp_path: Path, services: Services
) -> None:
    port = _free_port()
    gw = Gateway(tmp_path, schema_dsn, port, "--workers", "2")
    try:
        url = gw.metrics_url()
        pids: dict[int, int] = {}
        for i in (0, 1):
            started, listening = f"[w{i}] worker {i} of 2, pid", f"[w{i}] listening: gbt32960"
            line = gw.wait_line(lambda ln: ln.startswith(started))  # noqa: B023 (waited here)
            pids[i] = int(line.rsplit(" ", 1)[1])
            gw.wait_line(lambda ln: ln.startswith(listening))  # noqa: B023
        served = [ln for ln in gw.lines if "metrics: " in ln]
        assert served == [f"supervisor: metrics: {url}"]  # the supervisor's port, no worker's
        _simulate(port, seed=82)

        def frames(s: Samples, worker: str) -> float:
            return total(s, "silkgate_frames_total", protocol="gbt32960", worker=worker)

        def all_counted() -> bool:  # the snapshots are a second old at most: one may predate
            s = scrape(url)[1]  # the last commits, though every frame was acked before this
            committed = total(s, "silkgate_rows_committed_total", table="raw_frames")
            return frames(s, "0") + frames(s, "1") == SENT and committed == SENT

        _eventually(all_counted)
        text, s = scrape(url)
        per_worker = {w: frames(s, w) for w in ("0", "1")}
        assert per_worker["0"] > 0 and per_worker["1"] > 0, per_worker  # the kernel spread them
        assert sum(per_worker.values()) == SENT
        for w in ("0", "1"):
            assert total(s, "silkgate_worker_up", worker=w) == 1
            assert total(s, "silkgate_worker_restarts_total", worker=w) == 0
            assert total(s, "silkgate_commit_seconds_count", worker=w) > 0
            assert total(s, "silkgate_worker_snapshot_age_seconds", worker=w) < 5
        assert total(s, "silkgate_rows_committed_total", table="raw_frames") == SENT
        assert text.count("# TYPE silkgate_frames_total counter") == 1

        # a killed worker: its last snapshot (its pid) is never served again; its restart
        # starts from zero
        os.kill(pids[1], signal.SIGKILL)
        seen_down = False

        def restarted() -> bool:
            nonlocal seen_down
            s = scrape(url)[1]
            if total(s, "silkgate_worker_up", worker="1") == 0:
                seen_down = True
                assert frames(s, "1") == 0  # nothing served for a worker that is down
                return False
            return total(s, "silkgate_worker_restarts_total", worker="1") == 1

        _eventually(restarted, 30)
        assert seen_down
        s = scrape(url)[1]
        assert frames(s, "1") == 0 and frames(s, "0") == per_worker["0"]
        assert total(s, "silkgate_worker_up", worker="1") == 1
        assert gw.stop() == 0, gw.text()
    finally:
        gw.kill()


def test_metrics_port_taken(schema_dsn: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        config = write_config(tmp_path, schema_dsn, 0, busy)
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"},
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"metrics: cannot listen on 127.0.0.1:{busy}" in done.stdout
