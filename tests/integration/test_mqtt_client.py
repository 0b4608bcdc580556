"""MqttIntake against a real Mosquitto: manual acks on a persistent session, kill -9, bounded
intake under a flood, reconnect after a cut connection, TLS with username and password (the
TLS broker of deploy/services.sh; a private one requiring client certificates).

Every test uses its own client id and topic, and removes its session at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import aiomqtt
import pytest
import trustme
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.adapters.mqtt_client import (
    Delivery,
    IntakeStats,
    MqttIntake,
    MqttIntakeConfig,
    MqttTls,
)

from .conftest import MqttTlsBroker, Services
from .mqttkit import client_tls_context, drop_session, tls_broker, tls_files

pytestmark = pytest.mark.asyncio

CHILD = Path(__file__).with_name("mqtt_child.py")


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _config(services: Services, client_id: str, topic: str, **kw: Any) -> MqttIntakeConfig:
    kw.setdefault("session_expiry", 120)
    kw.setdefault("backoff_initial", 0.05)
    kw.setdefault("backoff_max", 0.5)
    return MqttIntakeConfig(
        host=kw.pop("host", services.mqtt_host),
        port=kw.pop("port", services.mqtt_port),
        client_id=client_id,
        subscriptions=[(topic, 1)],
        **kw,
    )


async def _publish(services: Services, topic: str, payloads: list[str], qos: int = 1) -> None:
    async with aiomqtt.Client(
        services.mqtt_host,
        services.mqtt_port,
        identifier=f"it-pub-{_tag()}",
        max_inflight_messages=200,
    ) as pub:
        pub.pending_calls_threshold = 1_000_000
        for i in range(0, len(payloads), 200):
            await asyncio.gather(*(pub.publish(topic, p, qos=qos) for p in payloads[i : i + 200]))


@contextlib.asynccontextmanager
async def _session(services: Services, client_id: str) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await drop_session(services.mqtt_host, services.mqtt_port, client_id)


async def _collect(intake: MqttIntake, n: int, timeout: float = 10.0) -> list[Delivery]:
    out: list[Delivery] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await intake.get())
    return out


async def _quiet(intake: MqttIntake, seconds: float) -> list[Delivery]:
    """Whatever arrives within ``seconds`` (the test expects nothing)."""
    out: list[Delivery] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                out.append(await intake.get())
    return out


async def _until(cond: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# (1) persistent session: unacknowledged messages come back, acknowledged ones do not


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_unacked_are_redelivered_after_reconnect(
    services: Services, protocol: Literal["5", "3.1.1"]
) -> None:
    tag = _tag()
    client_id, topic = f"it-mq-{tag}", f"it/mq/{tag}"
    cfg = _config(services, client_id, topic, protocol=protocol)
    async with _session(services, client_id):
        async with MqttIntake(cfg) as intake:
            await intake.wait_connected(10)
            assert intake.stats.session_present is False
            await _publish(services, topic, [str(i) for i in range(10)])
            got = await _collect(intake, 10)
            assert [d.payload for d in got] == [str(i).encode() for i in range(10)]
            assert not any(d.dup for d in got)
            for d in got[:5]:
                d.ack()
            # Acked out of order: held back behind 5 and 6, so never sent.
            got[7].ack()
            assert intake.stats.acked == 5
            assert intake.stats.in_flight == 5

        async with MqttIntake(cfg) as intake:
            await intake.wait_connected(10)
            assert intake.stats.session_present is True
            again = await _collect(intake, 5)
            assert [d.payload for d in again] == [str(i).encode() for i in range(5, 10)]
            assert all(d.dup for d in again)
            assert await _quiet(intake, 0.3) == []
            for d in again:
                d.ack()
            assert intake.stats.acked == 5

        async with MqttIntake(cfg) as intake:
            await intake.wait_connected(10)
            assert await _quiet(intake, 0.5) == []


# ---------------------------------------------------------------------------------------------
# (2) kill -9 with unacknowledged messages in flight: nothing is lost


class _Child:
    def __init__(self, services: Services, client_id: str, topic: str, limit: int, ack: int):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                services.mqtt_host,
                str(services.mqtt_port),
                client_id,
                topic,
                str(limit),
                str(ack),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        self.received: list[int] = []
        self.dups = 0
        self.acked = 0
        self.ready = False

    def pump(self, until: Any, timeout: float = 15.0) -> None:
        """Read the child's lines until ``until(self)`` holds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while not until(self):
            assert time.monotonic() < deadline, f"child stuck: {len(self.received)} received"
            line = self.proc.stdout.readline()
            assert line, f"child exited with {self.proc.wait()}"
            kind, *rest = line.split()
            if kind == "READY":
                self.ready = True
            elif kind == "RECV":
                self.received.append(int(rest[0]))
                self.dups += rest[1] == "1"
            elif kind == "ACKED":
                self.acked = int(rest[0])

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def test_kill9_loses_nothing(services: Services) -> None:
    tag = _tag()
    client_id, topic = f"it-mq-{tag}", f"it/mq/{tag}"
    n, limit, ack_first = 200, 50, 20
    async with _session(services, client_id):
        child = _Child(services, client_id, topic, limit, ack_first)
        try:
            await asyncio.to_thread(child.pump, lambda c: c.ready)
            await _publish(services, topic, [str(i) for i in range(n)])
            # 50 in flight; 20 of them acknowledged frees 20 slots: 70 received, then the bound.
            await asyncio.to_thread(
                child.pump, lambda c: len(c.received) >= ack_first + limit and c.acked >= ack_first
            )
            await asyncio.sleep(0.3)
        finally:
            child.kill9()
        assert child.proc.stdout is not None
        late = [ln for ln in child.proc.stdout.read().splitlines() if ln.startswith("RECV")]
        assert len(child.received) + len(late) == ack_first + limit  # never past the bound
        acked = set(child.received[:ack_first])
        assert acked == set(range(ack_first))

        child = _Child(services, client_id, topic, limit, -1)
        try:
            await asyncio.to_thread(child.pump, lambda c: len(c.received) >= n - ack_first)
            await asyncio.sleep(0.3)
        finally:
            child.kill9()
        assert child.proc.stdout is not None
        late = [ln for ln in child.proc.stdout.read().splitlines() if ln.startswith("RECV")]
        assert late == []
        assert sorted(child.received) == list(range(ack_first, n))  # all unacked, once each
        assert child.dups >= limit  # the killed child's in-flight ones, redelivered with DUP


# ---------------------------------------------------------------------------------------------
# (3) the intake bound holds under a flood, and throughput resumes with the acks


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_bound_holds_under_flood(services: Services, protocol: Literal["5", "3.1.1"]) -> None:
    tag = _tag()
    client_id, topic = f"it-mq-{tag}", f"it/mq/{tag}"
    limit, n1, n0 = 20, 600, 600
    cfg = _config(services, client_id, topic, protocol=protocol, max_in_flight=limit)
    async with _session(services, client_id), MqttIntake(cfg) as intake:
        await intake.wait_connected(10)
        flood = asyncio.gather(
            _publish(services, topic, [f"q1-{i}" for i in range(n1)], qos=1),
            _publish(services, topic, [f"q0-{i}" for i in range(n0)], qos=0),
        )
        await _until(lambda: intake.stats.in_flight >= limit)
        await asyncio.sleep(0.5)  # the publishers keep going; nothing more comes in
        assert intake.stats.received == limit
        assert intake.stats.in_flight == limit
        assert intake.stats.pauses >= 1
        await flood

        seen: set[bytes] = set()
        started = time.monotonic()
        async with asyncio.timeout(20):
            while len(seen) < n1 + n0:
                batch = await intake.get_batch(limit)
                for d in batch:
                    seen.add(d.payload)
                    d.ack()
        elapsed = time.monotonic() - started
        assert seen == {f"q1-{i}".encode() for i in range(n1)} | {
            f"q0-{i}".encode() for i in range(n0)
        }
        assert intake.stats.in_flight_peak == limit
        assert intake.stats.in_flight == 0
        assert intake.stats.acked == n1
        assert (n1 + n0) / elapsed > 500  # messages/s once acks flow


# ---------------------------------------------------------------------------------------------
# (4) reconnect after the connection is cut: stale acks dropped, the session resumes


class _CutProxy:
    """TCP proxy to the broker whose connections the test can cut (RST) at will."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.transports: list[asyncio.WriteTransport] = []
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        ur, uw = await asyncio.open_connection(*self.target)
        self.transports += [w.transport, uw.transport]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    def cut(self) -> None:
        for t in self.transports:
            t.abort()
        self.transports.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_reconnects_after_cut_connection(services: Services) -> None:
    tag = _tag()
    client_id, topic = f"it-mq-{tag}", f"it/mq/{tag}"
    proxy = _CutProxy(services.mqtt_host, services.mqtt_port)
    port = await proxy.start()
    cfg = _config(services, client_id, topic, host="127.0.0.1", port=port, keepalive=5)
    try:
        async with _session(services, client_id), MqttIntake(cfg) as intake:
            await intake.wait_connected(10)
            await _publish(services, topic, [str(i) for i in range(10)])
            first = await _collect(intake, 10)
            for d in first[:3]:
                d.ack()
            await asyncio.sleep(0.1)  # the three PUBACKs reach the broker before the cut
            proxy.cut()
            await _until(lambda: intake.stats.reconnects == 1 and intake.stats.connected)
            assert intake.stats.session_present is True
            assert proxy.accepted == 2
            for d in first[3:]:
                d.ack()  # previous connection: dropped, never sent on the new one
            assert intake.stats.stale_acks == 7
            assert intake.stats.acked == 3
            again = await _collect(intake, 7)
            assert [d.payload for d in again] == [str(i).encode() for i in range(3, 10)]
            assert all(d.dup for d in again)
            for d in again:
                d.ack()
            await _publish(services, topic, ["after"])
            (d,) = await _collect(intake, 1)
            assert d.payload == b"after" and not d.dup
            d.ack()
            assert intake.stats.acked == 11
            assert intake.stats.in_flight == 0
    finally:
        await proxy.close()


async def test_reconnects_after_the_broker_disconnects_it(services: Services) -> None:
    """Session takeover: the broker sends DISCONNECT (0x8E) when the same client id connects."""
    tag = _tag()
    client_id, topic = f"it-mq-{tag}", f"it/mq/{tag}"
    cfg = _config(services, client_id, topic)
    async with _session(services, client_id), MqttIntake(cfg) as intake:
        await intake.wait_connected(10)
        await _publish(services, topic, ["before"])
        (d,) = await _collect(intake, 1)
        d.ack()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 120
        async with aiomqtt.Client(
            services.mqtt_host,
            services.mqtt_port,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,  # take the session over, keep it
            properties=props,
        ) as intruder:
            await _until(lambda: intake.stats.reconnects == 1 and intake.stats.connected)
            with pytest.raises(aiomqtt.MqttError):  # taken back over by the intake
                async with asyncio.timeout(5):
                    async for _ in intruder.messages:
                        pass
        assert intake.stats.session_present is True
        await _publish(services, topic, ["after"])
        (d,) = await _collect(intake, 1)
        assert d.payload == b"after"
        d.ack()
        assert intake.stats.acked == 2


async def test_backs_off_while_the_broker_is_unreachable(services: Services) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _config(services, f"it-mq-{_tag()}", "it/mq/none", host="127.0.0.1", port=port)
    async with MqttIntake(cfg) as intake:
        await asyncio.sleep(1.0)
        # backoff 0.05 s doubling to 0.5 s, full jitter: a handful of attempts, not hundreds
        assert 3 <= intake.stats.connect_failures <= 40
        assert intake.stats.connects == 0


# ---------------------------------------------------------------------------------------------
# (5) TLS and username/password: the TLS broker of deploy/services.sh (password only), and a
# private broker that also requires a client certificate


async def _tls_publish(tls: MqttTlsBroker, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(
        tls.host,
        tls.port,
        identifier=f"it-pub-{_tag()}",
        username=tls.username,
        password=tls.password,
        tls_context=client_tls_context(tls.ca),
    ) as pub:
        await pub.publish(topic, payload, qos=1)


async def _refused(cfg: MqttIntakeConfig) -> IntakeStats:
    """Run an intake that must not get in: it keeps retrying, never connects. (Some refusals
    come as a closed connection, not a CONNACK: a short connect timeout bounds those too.)"""
    async with MqttIntake(dataclasses.replace(cfg, connect_timeout=2.0)) as bad:
        await _until(lambda: bad.stats.connect_failures >= 2, timeout=15)
        assert bad.stats.connects == 0
        assert bad.stats.connected is False
        return bad.stats


async def test_tls_with_password_on_the_services_broker(
    services: Services, mqtt_tls: MqttTlsBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TLS (server verified against the services' CA) plus username/password; a wrong password,
    an untrusted CA, no credentials and plain TCP are all refused, and retried."""
    monkeypatch.setenv("IT_MQTT_PASSWORD", mqtt_tls.password)
    tls = MqttTls(ca=mqtt_tls.ca)
    tag = _tag()
    client_id, topic = f"it-tls-{tag}", f"it/tls/{tag}"
    base = dict(
        host=mqtt_tls.host,
        port=mqtt_tls.port,
        username=mqtt_tls.username,
        password_env="IT_MQTT_PASSWORD",
    )
    cfg = _config(services, client_id, topic, tls=tls, **base)
    async with MqttIntake(cfg) as intake:
        await intake.wait_connected(10)
        await _tls_publish(mqtt_tls, topic, b"over tls")
        (msg,) = await _collect(intake, 1)
        assert msg.payload == b"over tls"
        msg.ack()
        assert intake.stats.acked == 1
    # Published while the client is away: kept in its session on the TLS broker.
    await _tls_publish(mqtt_tls, topic, b"while away")

    monkeypatch.setenv("IT_MQTT_PASSWORD", mqtt_tls.password + "-wrong")
    await _refused(_config(services, client_id, topic, tls=tls, **base))

    untrusted = trustme.CA()
    untrusted.cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    monkeypatch.setenv("IT_MQTT_PASSWORD", mqtt_tls.password)
    other_ca = MqttTls(ca=str(tmp_path / "other-ca.pem"))
    await _refused(_config(services, client_id, topic, tls=other_ca, **base))

    anonymous = base | {"username": None, "password_env": None}
    await _refused(_config(services, client_id, topic, tls=tls, **anonymous))
    await _refused(_config(services, client_id, topic, **base))  # no TLS at all

    # None of that touched the session: the message sent while away is there, once.
    async with MqttIntake(cfg) as intake:
        await intake.wait_connected(10)
        assert intake.stats.session_present is True
        (msg,) = await _collect(intake, 1)
        assert msg.payload == b"while away"
        msg.ack()
        assert await _quiet(intake, 0.3) == []
    await drop_session(
        mqtt_tls.host,
        mqtt_tls.port,
        client_id,
        username=mqtt_tls.username,
        password=mqtt_tls.password,
        tls_context=client_tls_context(mqtt_tls.ca),
    )


async def test_tls_with_client_certificate_and_password(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private broker requiring a client certificate of its CA as well as the password."""
    broker, files = tls_broker(
        tmp_path, {"gateway": "s3cret"}, require_certificate=True, persistence=False
    )
    await broker.start()
    try:
        monkeypatch.setenv("IT_MQTT_PASSWORD", "s3cret")
        tls = MqttTls(ca=str(files.ca_pem), cert=str(files.client_pem), key=str(files.client_key))
        tag = _tag()
        topic = f"it/tls/{tag}"
        base = dict(
            host="127.0.0.1", port=broker.port, username="gateway", password_env="IT_MQTT_PASSWORD"
        )
        cfg = _config(services, f"it-tls-{tag}", topic, tls=tls, **base)
        async with MqttIntake(cfg) as intake:
            await intake.wait_connected(10)
            pub_tls = client_tls_context(files.ca_pem)
            files.ca.issue_cert("pub").configure_cert(pub_tls)
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, username="gateway", password="s3cret", tls_context=pub_tls
            ) as pub:
                await pub.publish(topic, b"over tls", qos=1)
            (msg,) = await _collect(intake, 1)
            assert msg.payload == b"over tls"
            msg.ack()
            assert intake.stats.acked == 1

        no_cert = MqttTls(ca=str(files.ca_pem))
        await _refused(_config(services, f"it-tls-{tag}", topic, tls=no_cert, **base))
        stranger = tls_files(tmp_path / "stranger")  # a client certificate of another CA
        foreign = MqttTls(
            ca=str(files.ca_pem), cert=str(stranger.client_pem), key=str(stranger.client_key)
        )
        await _refused(_config(services, f"it-tls-{tag}", topic, tls=foreign, **base))
        monkeypatch.setenv("IT_MQTT_PASSWORD", "wrong")
        await _refused(_config(services, f"it-tls-{tag}", topic, tls=tls, **base))
    finally:
        await broker.stop()


async def test_config_refuses_qos2_and_missing_password_variable() -> None:
    with pytest.raises(ValueError, match="QoS 2"):
        MqttIntakeConfig(host="h", client_id="c", subscriptions=[("t", 2)])
    with pytest.raises(ValueError, match="client id"):
        MqttIntakeConfig(host="h", client_id="", subscriptions=[("t", 1)])
    cfg = MqttIntakeConfig(
        host="h", client_id="c", subscriptions=[("t", 1)], password_env="IT_MQTT_UNSET_X"
    )
    os.environ.pop("IT_MQTT_UNSET_X", None)
    with pytest.raises(ValueError, match="IT_MQTT_UNSET_X"):
        MqttIntake(cfg)
