"""A private Mosquitto for tests that must stop, restart or reconfigure their broker.

It runs the ``mosquitto`` binary that deploy/services.sh installed, on a free port, with its
configuration, persistence file and log in a directory of the test's own. The shared broker of
deploy/services.sh stays untouched, so other tests never see a restart.

    broker = PrivateBroker(tmp_path)        # persistence on: a restart keeps sessions/messages
    await broker.start()
    ... broker.port ...
    await broker.restart()                  # SIGTERM (persistence saved), start again
    await broker.stop()

Also: a TLS broker (``tls_files`` + ``tls_broker``: a trustme CA, server and client
certificates, a password file), and ``Publisher``, a QoS 1 publisher that outlives broker
restarts and records what it sent and which messages got their PUBACK; ``drop_session``,
which makes a broker forget a client's persistent session; ``store_pipeline``, a pipeline
writing to a database for the adapter tests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import trustme
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config import PipelineConfig
from gateway.pipeline import Pipeline
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store import create_pool

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class PrivateBroker:
    """One Mosquitto process (and its successors after restarts) on one fixed port."""

    def __init__(
        self,
        directory: Path,
        *,
        persistence: bool = True,
        extra_config: str = "",
        port: int | None = None,
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.dir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        user = "user root\n" if os.geteuid() == 0 else ""
        persist = (
            f"persistence true\npersistence_location {self.dir}/\nautosave_interval 1\n"
            if persistence
            else "persistence false\n"
        )
        listener = "" if "listener " in extra_config else f"listener {self.port} 127.0.0.1\n"
        if "allow_anonymous" not in extra_config:
            listener += "allow_anonymous true\n"
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"{user}{listener}{extra_config}{persist}log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return
        self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)])
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto not listening on {self.port} after {timeout} s")
            await asyncio.sleep(0.05)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Mosquitto saves its persistence file), wait for the exit."""
        await self._end(signal.SIGTERM, timeout)

    async def kill(self) -> None:
        """SIGKILL: what was not autosaved is lost, as in a crash."""
        await self._end(signal.SIGKILL, 10.0)

    @property
    def db(self) -> Path:
        """The persistence file."""
        return self.dir / "mosquitto.db"

    async def save(self, timeout: float = 10.0) -> None:
        """Have the broker write its persistence file now (SIGUSR1), and wait until it has."""
        assert self._proc is not None and self.running
        before = self.db.stat().st_mtime_ns if self.db.exists() else 0
        self._proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not self.db.exists() or self.db.stat().st_mtime_ns == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not save {self.db}")
            await asyncio.sleep(0.02)

    async def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port."""
        await self.stop()
        if down_s:
            await asyncio.sleep(down_s)
        await self.start()

    async def _end(self, sig: int, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(5)
                break
            await asyncio.sleep(0.05)
        while _listening(self.port) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


def password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file holding ``users`` (name: password)."""
    for i, (name, password) in enumerate(users.items()):
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", *(["-c"] if i == 0 else []), str(path), name, password],
            check=True,
            capture_output=True,
        )
    return path


# ---------------------------------------------------------------------------------------------
# TLS


@dataclass(frozen=True)
class TlsFiles:
    """A test CA and the certificates it issued, as PEM files in one directory."""

    ca: trustme.CA
    ca_pem: Path
    server_pem: Path  # for 127.0.0.1 and localhost
    server_key: Path
    client_pem: Path
    client_key: Path


def tls_files(directory: Path, client: str = "silkgate-it") -> TlsFiles:
    """A new CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    files = TlsFiles(
        ca,
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
    )
    ca.cert_pem.write_to_path(str(files.ca_pem))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(files.server_pem))
    server.private_key_pem.write_to_path(str(files.server_key))
    cert = ca.issue_cert(client)
    cert.cert_chain_pems[0].write_to_path(str(files.client_pem))
    cert.private_key_pem.write_to_path(str(files.client_key))
    return files


def tls_broker(
    directory: Path,
    users: dict[str, str],
    *,
    require_certificate: bool = False,
    persistence: bool = True,
) -> tuple[PrivateBroker, TlsFiles]:
    """A private broker (not started) that takes TLS and a password only: anonymous clients
    refused, and with ``require_certificate`` clients without a certificate of the CA too."""
    files = tls_files(directory / "tls")
    port = free_port()
    extra = (
        f"listener {port} 127.0.0.1\n"
        f"cafile {files.ca_pem}\ncertfile {files.server_pem}\nkeyfile {files.server_key}\n"
        f"require_certificate {'true' if require_certificate else 'false'}\n"
        f"allow_anonymous false\npassword_file {password_file(directory / 'passwd', users)}\n"
    )
    broker = PrivateBroker(directory, persistence=persistence, extra_config=extra, port=port)
    return broker, files


# ---------------------------------------------------------------------------------------------
# a publisher that outlives broker restarts


class Publisher:
    """Publishes ``messages`` (topic, payload) at QoS 1, ``window`` at a time, through broker
    restarts: when the connection goes, it reconnects (every 0.05 s) and sends again every
    message of the window that had no PUBACK. The broker may have had such a message (its
    PUBACK lost with the connection), so a message sent twice may reach subscribers twice.

    ``sends[i]``: times message ``i`` was sent; ``acked_at[i]``: ``time.monotonic()`` of its
    PUBACK; ``connects``: connections made.
    """

    def __init__(
        self,
        port: int,
        messages: Sequence[tuple[str, bytes]],
        *,
        window: int = 20,
        pause_s: float = 0.02,
        host: str = "127.0.0.1",
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password, self.tls_context = username, password, tls_context
        self.messages = messages
        self.window = window
        self.pause_s = pause_s
        self.sends: collections.Counter[int] = collections.Counter()
        self.acked_at: dict[int, float] = {}
        self.connects = 0
        self._id = f"it-pubr-{uuid.uuid4().hex[:10]}"

    @property
    def acked(self) -> int:
        return len(self.acked_at)

    async def run(self, timeout: float = 60.0) -> None:
        """Until every message has its PUBACK."""
        todo = collections.deque(range(len(self.messages)))
        async with asyncio.timeout(timeout):
            while todo:
                with contextlib.suppress(aiomqtt.MqttError, OSError):
                    async with aiomqtt.Client(
                        self.host,
                        self.port,
                        identifier=self._id,
                        timeout=5,
                        username=self.username,
                        password=self.password,
                        tls_context=self.tls_context,
                    ) as client:
                        self.connects += 1
                        while todo:
                            chunk = [todo.popleft() for _ in range(min(self.window, len(todo)))]
                            failed = await self._send(client, chunk)
                            if failed:
                                todo.extendleft(reversed(failed))
                                break
                            await asyncio.sleep(self.pause_s)
                await asyncio.sleep(0.05)

    async def _send(self, client: aiomqtt.Client, chunk: list[int]) -> list[int]:
        """Publish ``chunk``; the indices that got no PUBACK (the connection went)."""

        async def one(i: int) -> None:
            topic, payload = self.messages[i]
            self.sends[i] += 1
            await client.publish(topic, payload, qos=1, timeout=30)
            self.acked_at[i] = time.monotonic()

        tasks = [asyncio.ensure_future(one(i)) for i in chunk]
        sent = asyncio.gather(*tasks, return_exceptions=True)
        # aiomqtt leaves a publish waiting for its PUBACK when the connection goes: watch it.
        lost = client._disconnected
        either: list[asyncio.Future[Any]] = [sent, lost]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        await sent
        if lost.done() and not lost.cancelled():
            lost.exception()  # retrieved: asyncio would log it as never retrieved
        return [i for i in chunk if i not in self.acked_at]


def client_tls_context(
    ca: Path | str, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client's context: the server verified against ``ca``, optional client certificate."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), None if key is None else str(key))
    return ctx


async def drop_session(host: str, port: int, client_id: str, **client: Any) -> None:
    """Connect as ``client_id`` with a clean start and no session expiry: the broker forgets
    the session. ``client`` adds keywords of :class:`aiomqtt.Client` (login, TLS)."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    async with aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        properties=props,
        **client,
    ):
        pass


@contextlib.asynccontextmanager
async def store_pipeline(dsn: str, spool_dir: Path) -> AsyncIterator[tuple[Pipeline, asyncpg.Pool]]:
    """A started pipeline writing to ``dsn`` (spool in ``spool_dir``) and its pool."""
    pool = await create_pool(dsn, max_size=3, timeout=10)
    spool = await AsyncSpool.open(spool_dir, SpoolConfig(fsync="never"))
    pipeline = Pipeline(StoreWriter(pool), spool, PipelineConfig(batch_age_ms=20))
    pipeline.start()
    try:
        yield pipeline, pool
    finally:
        await pipeline.close(timeout=10)
        await spool.close()
        await pool.close()
