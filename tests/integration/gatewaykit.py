"""``silkgate run`` as a child process for the end-to-end tests: both listeners on fixed free
ports (the same after a restart), a config of its own, SIGKILL or a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from gateway.adapters.tcp import ConnectionIndex, Listener
from gateway.api.app import create_app
from gateway.api.audit import AuditLog
from gateway.api.auth import TokenStore
from gateway.api.config import ApiConfig
from gateway.api.db import create_api_pool
from gateway.api.deps import ApiContext
from gateway.api.ratelimit import RateLimiter
from gateway.codecs import gbt32960 as gbt
from gateway.codecs.gbt32960 import constants as gc
from gateway.commands import Commands, CommandsConfig
from gateway.config import Gbt32960ListenerConfig, Jt808ListenerConfig, PipelineConfig
from gateway.ingest import GBT32960, JT808
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.simulator import Fleet, gbt_time
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Child:
    """``silkgate run`` with both listeners on fixed ports (the same after a restart)."""

    def __init__(
        self, dsn: str, tmp: Path, extra: str = "", env: dict[str, str] | None = None
    ) -> None:
        self.ports = {"gbt32960": _free_port(), "jt808": _free_port()}
        self.config = tmp / "silkgate.toml"
        listeners = "".join(
            f'[listeners.{p}]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
            for p, port in self.ports.items()
        )
        self.config.write_text(
            f'[database]\ndsn = "{dsn}"\n[spool]\npath = "{tmp / "spool"}"\n'
            f"[pipeline]\nbatch_age_ms = 50\n{listeners}{extra}"
        )
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.config.parent,  # not the repo root: the source folder would shadow
            env=env | self.env,
        )
        for _ in range(600):  # listening once both ports accept
            if all(_accepts(port) for port in self.ports.values()):
                return
            assert self.proc.poll() is None, "the gateway exited"
            await asyncio.sleep(0.05)
        raise AssertionError("the gateway did not start listening")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class RunProcess:
    """``silkgate run --config CONFIG ARGS`` with stdout and stderr merged, read line by line
    by a thread (``lines``)."""

    def __init__(self, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=config.parent,  # not the repo root: there the source folder would shadow
            # the config file names the database: an inherited SILKGATE_DSN would override it
            env={k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
            | {"PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pred: Callable[[str], bool], timeout: float = 30.0) -> str:
        """The first line ``pred`` accepts (AssertionError after ``timeout`` or an exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if pred(line):
                    return line
            assert self.proc.poll() is None, "the gateway exited:\n" + self.text()
            time.sleep(0.05)
        raise AssertionError("no such line:\n" + self.text())

    def text(self) -> str:
        """The last lines of output, for assertion messages."""
        return "\n".join(self.lines[-60:])

    def metrics_url(self) -> str:
        """``http://127.0.0.1:PORT/metrics``, once it listens."""
        line = self.wait_line(lambda ln: "metrics: http://" in ln)
        return line[line.index("http://") :]

    def stop(self) -> int:
        """SIGINT; the exit status."""
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(60)
        self._reader.join(10)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def count(dsn: str, sql: str) -> int:
    """The integer ``sql`` answers (``SELECT count(*) ...``) on a connection of its own."""

    async def go() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            n: int = await conn.fetchval(sql)
            return n
        finally:
            await conn.close()

    return asyncio.run(go())


def simulate_gbt(port: int, terminals: int, frames: int, seed: int) -> dict[str, Any]:
    """``silkgate simulate`` of ``terminals`` GB/T 32960 terminals against ``port``, each
    sending ``frames`` reports 50 ms apart; its JSON summary."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "gateway.cli", "simulate", "--host", "127.0.0.1"),
            *("--gbt-port", str(port), "--gbt", str(terminals), "--frames", str(frames)),
            *("--interval", "0.05", "--seed", str(seed), "--quiet"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/tmp",
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return summary


@asynccontextmanager
async def api_client(
    dsn: str, cfg: ApiConfig, **context: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, ApiContext]]:
    """The API of ``cfg`` in this process (ASGI, no socket) over a pool of its own on ``dsn``,
    with a generous rate limit: a client and the app's context (``context``: further
    :class:`ApiContext` fields, e.g. ``router`` or ``reports``)."""
    pool = await create_api_pool(dsn, cfg)
    ctx = ApiContext(
        cfg=cfg,
        pool=pool,
        tokens=TokenStore(pool, cache_s=cfg.token_cache_s),
        limiter=RateLimiter(1000.0, 1000),
        audit=AuditLog(pool),
        **context,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client, ctx
    finally:
        await pool.close()


@dataclass
class TcpGateway:
    """An in-process gateway: pipeline, registry, commands and both TCP listeners (port 0)."""

    pool: asyncpg.Pool
    pipeline: Pipeline
    registry: Registry
    commands: Commands
    gbt: Listener
    jt: Listener


@asynccontextmanager
async def tcp_gateway(dsn: str, spool_dir: Path) -> AsyncIterator[TcpGateway]:
    """A :class:`TcpGateway` over ``dsn``, commands answered within 5 s; stopped on exit."""
    pool = await create_pool(dsn, max_size=4, timeout=10)
    spool = await AsyncSpool.open(spool_dir, SpoolConfig(fsync="never"))
    pipeline = Pipeline(StoreWriter(pool), spool, PipelineConfig(batch_rows=2000, batch_age_ms=20))
    pipeline.start()
    index = ConnectionIndex()
    commands = Commands(index, pool, CommandsConfig(timeout_s=5.0))
    registry = Registry(pool, ttl_s=5)
    listeners: list[Listener] = []
    try:
        for protocol, cfg in (
            (GBT32960, Gbt32960ListenerConfig(enabled=True, host="127.0.0.1", port=0)),
            (JT808, Jt808ListenerConfig(enabled=True, host="127.0.0.1", port=0)),
        ):
            listener = Listener(
                protocol, cfg, pipeline, registry, index=index, on_message=commands.on_message
            )
            await listener.start()
            listeners.append(listener)
        yield TcpGateway(pool, pipeline, registry, commands, listeners[0], listeners[1])
    finally:
        for listener in listeners:
            await listener.stop(timeout=5)
        await pipeline.close(timeout=10)
        await spool.close()
        await pool.close()


class SilentTruck:
    """A GB/T 32960 terminal on a raw socket: logs in, then answers only when told to."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        seed: int,
        start: datetime,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.frames = gbt.FrameReader()
        fleet = Fleet(1, seed=seed, gbt_only=True, start=start)
        self.fleet, self.truck = fleet, fleet.trucks[0]

    @classmethod
    async def login(cls, port: int, *, seed: int, start: datetime) -> SilentTruck:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t = cls(reader, writer, seed=seed, start=start)
        writer.write(t.fleet.login(t.truck))
        assert (await t.recv()).response == gc.RESP_SUCCESS
        return t

    async def recv(self, timeout: float = 10.0) -> gbt.Frame:
        async with asyncio.timeout(timeout):
            while True:
                item = self.frames.next_event()
                if isinstance(item, bytes):
                    return gbt.decode_frame(item)
                assert item is None, item
                data = await self.reader.read(65536)
                assert data, "the platform closed"
                self.frames.feed(data)

    def answer(self, command: int, flag: int = gc.RESP_SUCCESS) -> None:
        frame = gbt.Frame(
            version=self.truck.version,
            command=command,
            response=flag,
            vin=self.truck.vin,
            encryption=gc.ENC_NONE,
            body=gbt.TimeOnly(time=gbt_time(datetime.now(UTC))),
        )
        self.writer.write(gbt.encode_frame(frame))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
