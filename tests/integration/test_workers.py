"""``silkgate run --workers 2`` against the real PostgreSQL and Mosquitto: terminals spread over
both workers (SO_REUSEPORT), MQTT messages split between them (a shared subscription) and
stored exactly once, a worker killed with SIGKILL restarted by the supervisor while data keeps
flowing, and a clean stop with status 0."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import asyncpg
import pytest

from gateway.cli import main as cli_main
from gateway.config import ConfigError, parse
from gateway.store.testing import create_schema, drop_schema, with_search_path
from gateway.supervisor import Supervisor, worker_config

from .gatewaykit import _free_port, simulate_gbt
from .test_mqtt_adapter import gbt

if TYPE_CHECKING:
    from .conftest import Services

EPOCH = 1_775_001_600  # 2026-04-01 UTC
_STATUS = re.compile(
    r"^\[w(\d)\] frames .*gbt32960 [\d,]+ conns \([\d,]+ refused\) ([\d,]+) frames"
    r".*mqtt (?:up|DOWN): ([\d,]+) msgs"
)


@pytest.fixture
def schema_dsn(services: Services) -> Iterator[str]:
    schema = asyncio.run(create_schema(services.dsn, "silkgate_workers"))
    yield with_search_path(services.dsn, schema)
    asyncio.run(drop_schema(services.dsn, schema))


class Output:
    """The supervisor's stdout (its own lines and its workers'), read by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pred: Callable[[str], bool], timeout: float = 30.0, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if pred(line):
                    return line
            assert self._proc.poll() is None, "supervisor exited:\n" + self.text()
            time.sleep(0.05)
        raise AssertionError("no such line:\n" + self.text())

    def status(self, since: int = 0) -> dict[int, tuple[int, int]]:
        """Per worker, its last status line's (GB/T frames, MQTT messages) after ``since``."""
        out: dict[int, tuple[int, int]] = {}
        for line in self.lines[since:]:
            if m := _STATUS.match(line):
                out[int(m[1])] = (int(m[2].replace(",", "")), int(m[3].replace(",", "")))
        return out

    def join(self) -> None:
        self._thread.join(10)

    def text(self) -> str:
        return "\n".join(self.lines[-80:])


def _worker_pid(out: Output, index: int, start: int = 0) -> int:
    line = out.wait_for(lambda ln: ln.startswith(f"[w{index}] worker {index} of 2, pid"), 30, start)
    return int(line.rsplit(" ", 1)[1])


def _mqtt_up(out: Output, index: int, start: int) -> None:
    out.wait_for(lambda ln: ln.startswith(f"[w{index}] frames") and "mqtt up" in ln, 30, start)


def _fetch(dsn: str, sql: str) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchrow(sql)
        finally:
            await conn.close()

    return asyncio.run(go())


def _mqtt_rows(dsn: str) -> tuple[int, int]:
    row = _fetch(
        dsn, "SELECT count(*), count(DISTINCT frame_id) FROM raw_frames WHERE peer LIKE 'mqtt:%'"
    )
    return int(row[0]), int(row[1])


def _wait_rows(dsn: str, n: int, timeout: float = 30.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _mqtt_rows(dsn)
        if rows[0] >= n or time.monotonic() > deadline:
            time.sleep(0.5)  # anything beyond n (a duplicate) would have come by now
            return _mqtt_rows(dsn)
        time.sleep(0.1)


def _publish(services: Services, prefix: str, first: int, n: int, kill: Any = None) -> None:
    """Publish GB/T 32960 reports ``first`` .. ``first + n - 1`` (distinct VINs and times),
    QoS 1; ``kill()`` is called after the first half."""

    async def go() -> None:
        async with aiomqtt.Client(
            services.mqtt_host, services.mqtt_port, identifier=f"it-wpub-{uuid.uuid4().hex[:8]}"
        ) as pub:
            for k in range(first, first + n):
                vin = f"LWKR{k:013d}"
                await pub.publish(f"{prefix}/gbt/{vin}", gbt(vin, EPOCH + k), qos=1)
                if kill is not None and k == first + n // 2:
                    kill()

    asyncio.run(go())


def test_two_workers_share_ports_and_subscriptions(
    schema_dsn: str, services: Services, tmp_path: Path
) -> None:
    port = _free_port()
    tag = uuid.uuid4().hex[:8]
    prefix = f"itw-{tag}"
    config = tmp_path / "silkgate.toml"
    config.write_text(
        f'[database]\ndsn = "{schema_dsn}"\n'
        f'[spool]\npath = "{tmp_path / "spool"}"\n'
        "[pipeline]\nbatch_age_ms = 50\n"
        f'[listeners.gbt32960]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        "[mqtt]\nenabled = true\n"
        f'host = "{services.mqtt_host}"\nport = {services.mqtt_port}\n'
        f'client_id = "itw-{tag}"\nsession_expiry_s = 120\n'
        "backoff_initial_s = 0.05\nbackoff_max_s = 0.5\nbatch = 20\n"
        f'[[mqtt.routes]]\nfilter = "{prefix}/gbt/+"\ncodec = "gbt32960"\ndevice = "topic:2"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,  # not the repo root: there the source folder would shadow the install
        env={k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        | {"PYTHONUNBUFFERED": "1"},
    )
    out = Output(proc)
    try:
        pids = {i: _worker_pid(out, i) for i in (0, 1)}
        assert pids[0] != pids[1]
        for i in (0, 1):
            _mqtt_up(out, i, 0)
        assert (tmp_path / "spool" / "worker-0").is_dir()
        assert (tmp_path / "spool" / "worker-1").is_dir()

        # 16 terminals on the one port: the kernel spreads them over both workers
        summary = simulate_gbt(port, 16, 10, seed=71)
        assert summary["acked"] == 160 and summary["unacked"] == 0, summary
        # MQTT: the shared subscription splits the messages between the workers
        _publish(services, prefix, 0, 100)
        assert _wait_rows(schema_dsn, 100) == (100, 100)
        mark = len(out.lines)
        out.wait_for(lambda ln: ln.startswith("[w1] frames"), 5, mark)
        out.wait_for(lambda ln: ln.startswith("[w0] frames"), 5, mark)
        per_worker = out.status()
        assert set(per_worker) == {0, 1}, out.text()
        assert per_worker[0][0] > 0 and per_worker[1][0] > 0, per_worker  # GB/T frames
        assert per_worker[0][0] + per_worker[1][0] == 16 * 10 + 2 * 16, per_worker  # + in/out
        assert per_worker[0][1] > 0 and per_worker[1][1] > 0, per_worker  # MQTT messages
        assert per_worker[0][1] + per_worker[1][1] == 100, per_worker

        # SIGKILL worker 1 while messages arrive: it is restarted (its session, its spool)
        mark = len(out.lines)
        _publish(services, prefix, 100, 200, kill=lambda: os.kill(pids[1], signal.SIGKILL))
        out.wait_for(lambda ln: "worker 1" in ln and "SIGKILL" in ln and "restart" in ln, 15, mark)
        new_pid = _worker_pid(out, 1, mark)
        assert new_pid != pids[1]
        _mqtt_up(out, 1, mark)
        _publish(services, prefix, 300, 100)
        assert _wait_rows(schema_dsn, 400) == (400, 400)
        summary = simulate_gbt(port, 8, 10, seed=72)
        assert summary["acked"] == 80 and summary["unacked"] == 0, summary
        logins = _fetch(
            schema_dsn,
            "SELECT count(*) FROM vehicle_sessions WHERE protocol = 'gbt32960' AND event = 'login'",
        )[0]
        assert logins == 24
        assert _fetch(schema_dsn, "SELECT count(*) FROM dead_letters")[0] == 0

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, out.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out.join()
    assert out.lines[-1] == "supervisor: stopped", out.text()
    # every worker drained and printed its final status line
    assert {ln[:4] for ln in out.lines[-4:-1] if ln.startswith("[w")} == {"[w0]", "[w1]"}


def test_worker_config_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc: dict[str, Any] = {
        "spool": {"path": "/var/spool/sg"},
        "listeners": {"gbt32960": {"enabled": True, "port": 32960}},
        "mqtt": {
            "enabled": True,
            "client_id": "gw",
            "routes": [
                {"filter": "trucks/+/gbt", "codec": "gbt32960", "device": "topic:1"},
                {"filter": "$share/mine/swap/+", "codec": "swap", "device": "topic:1"},
            ],
        },
    }
    feed = {"name": "f", "url": "https://example.invalid/feed", "select": {"all": True}}
    doc["forward"] = {"json": [feed]}
    assert len(worker_config(parse(doc), 0, 3).forward.json) == 1  # worker 0 alone forwards
    cfg = worker_config(parse(doc), 1, 3)
    assert cfg.forward.json == []
    assert cfg.spool.path == "/var/spool/sg/worker-1"
    assert cfg.listeners.gbt32960.reuse_port and cfg.listeners.jt808.reuse_port
    assert cfg.mqtt.client_id == "gw-1"
    assert [r.filter for r in cfg.mqtt.routes] == ["$share/gw/trucks/+/gbt", "$share/mine/swap/+"]
    assert cfg.mqtt.route_for("trucks/V1/gbt") is cfg.mqtt.routes[0]

    refused = [
        (doc | {"mqtt": doc["mqtt"] | {"protocol": "3.1.1"}}, 'mqtt.protocol: "3.1.1"'),
        (doc | {"listeners": {"gbt32960": {"enabled": True, "port": 0}}}, "listeners.gbt32960"),
        (doc | {"ocpp": {"enabled": True, "port": 0}}, "ocpp.port"),
    ]
    for bad, key in refused:
        with pytest.raises(ConfigError, match=re.escape(key)):
            worker_config(parse(bad), 0, 2)
    # the command line refuses before starting anything
    path = tmp_path / "silkgate.toml"
    path.write_text(
        '[mqtt]\nenabled = true\nprotocol = "3.1.1"\n[[mqtt.routes]]\nfilter = "a/+"\n'
        'codec = "swap"\n'
    )
    assert cli_main(["run", "--config", str(path), "--workers", "2"]) == 2
    assert "--workers 2" in capsys.readouterr().err
    assert cli_main(["run", "--config", str(path), "--workers", "2", "--simulate", "3"]) == 2


def test_supervisor_gives_up_on_a_worker_crashing_at_start(
    schema_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A worker that cannot listen (the port is held by another program, without SO_REUSEPORT)
    exits 1 at once: restarted with backoff, given up after the fast crashes allowed."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "silkgate.toml"
        config.write_text(
            f'[database]\ndsn = "{schema_dsn}"\n[spool]\npath = "{tmp_path / "spool"}"\n'
            f'[listeners.gbt32960]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        )
        out = io.StringIO()
        sup = Supervisor(
            parse(tomllib.loads(config.read_text())),
            str(config),
            2,
            out,
            backoff_initial_s=0.05,
            max_fast_crashes=2,
        )
        monkeypatch.delenv("SILKGATE_DSN", raising=False)  # the config file names the database
        monkeypatch.chdir("/work/main")  # the repo root: the workers must not import from it
        assert asyncio.run(sup.run()) == 1
    workers = capfd.readouterr().out  # the workers write to the inherited stdout
    assert workers.count(f"cannot listen on 127.0.0.1:{port}") >= 3, workers
    text = out.getvalue()
    assert "ended with exit status 1" in text and "restart 1 in 0.1 s" in text, text
    assert "crashed 2 times in a row" in text and "ImportError" not in workers, text
    assert "gave up" in text.splitlines()[-1], text
