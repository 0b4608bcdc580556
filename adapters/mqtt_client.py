"""MQTT intake: QoS 1 on a persistent session, acknowledged once the consumer's records are durable.

``MqttIntake`` keeps one connection to the broker (fixed client id, clean start off, a session
expiry), reconnects with exponential backoff and full jitter, and hands each message out as a
``Delivery``. Its PUBACK goes out only when the consumer calls ``Delivery.ack()``, released in the
order the PUBLISH packets arrived (MQTT 3.1.1 and 5.0, section 4.6, [MQTT-4.6.0-2]). Acks of a
previous connection are dropped: the broker redelivers those messages, with DUP set, on the next
connection of the session.

aiomqtt 2.5.1 neither forwards paho's ``manual_ack`` nor lets a full incoming queue push back (it
discards the message and paho acknowledges it anyway). ``_AckingClient`` is the smallest wrapper
that fixes both: it switches the paho client to manual acknowledgement, takes every message
itself (no aiomqtt queue), and owns the socket reader so that reading stops while ``max_in_flight``
deliveries are unacknowledged (TCP flow control then stops the broker). Under MQTT 5 the
CONNECT also carries Receive Maximum, but that bounds neither QoS 0 traffic nor MQTT 3.1.1, and
Mosquitto 2.0.11 lets more through than it after PUBACKs: the paused reader is the real bound.
A pause longer than about twice the keepalive ends in a keepalive disconnect; the session
survives and the unacknowledged messages come back (duplicates, never loss).

QoS 2 subscriptions are refused: paho keeps the QoS 2 receive state in memory only, so a crash
between PUBREC and PUBCOMP would lose the message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.types import PahoSocket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)

#: MQTT 5 caps Receive Maximum at 65535.
_RECEIVE_MAXIMUM_LIMIT = 65535


@dataclass(frozen=True, slots=True)
class MqttTls:
    """TLS to the broker: a CA bundle to verify it, and an optional client certificate."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """Build the SSL context (reads the files)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
        ctx.check_hostname = self.check_hostname
        if self.cert is not None:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


@dataclass(frozen=True, slots=True)
class MqttIntakeConfig:
    """Where to connect, what to subscribe to, and the intake's bounds."""

    host: str
    client_id: str
    subscriptions: Sequence[tuple[str, int]]
    port: int = 1883
    protocol: Literal["5", "3.1.1"] = "5"
    #: Seconds the broker keeps the session (and its queued QoS 1 messages) after a disconnect.
    #: MQTT 5 only; an MQTT 3.1.1 persistent session lasts as long as the broker allows.
    session_expiry: int = 3600
    keepalive: int = 30
    #: Deliveries handed out (or queued) and not yet acknowledged, at most.
    max_in_flight: int = 100
    username: str | None = None
    #: Name of the environment variable holding the password (read at every connect).
    password_env: str | None = None
    tls: MqttTls | None = None
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    connect_timeout: float = 10.0
    #: Release PUBACKs in arrival order (the specification's rule). False sends each at once.
    ordered_acks: bool = True

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("a persistent session needs a fixed client id")
        if not self.subscriptions:
            raise ValueError("no subscriptions")
        for topic, qos in self.subscriptions:
            if qos not in (0, 1):
                raise ValueError(f"subscription {topic!r}: QoS {qos} (only 0 and 1 are supported)")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be positive")
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")


@dataclass(slots=True)
class IntakeStats:
    """Counters of one intake (all connections)."""

    received: int = 0
    #: Messages received with DUP set (redelivered by the broker).
    redelivered: int = 0
    #: PUBACKs sent.
    acked: int = 0
    #: Acks dropped because their connection had ended (the broker redelivers those).
    stale_acks: int = 0
    #: Queued deliveries dropped on a resumed session (the broker redelivers those).
    purged: int = 0
    in_flight: int = 0
    in_flight_peak: int = 0
    connects: int = 0
    #: Connections after the first one.
    reconnects: int = 0
    connect_failures: int = 0
    #: Times the socket reader was paused because ``max_in_flight`` was reached.
    pauses: int = 0
    connected: bool = False
    session_present: bool = False


class _Connection:
    """One connection's ack window: its deliveries in arrival order until released."""

    __slots__ = ("alive", "client", "window")

    def __init__(self) -> None:
        self.client: _AckingClient | None = None
        self.alive = False
        self.window: collections.OrderedDict[int, Delivery] = collections.OrderedDict()


class Delivery:
    """One received message; ``ack()`` once its records are durable."""

    __slots__ = (
        "_conn",
        "_done",
        "_intake",
        "_seq",
        "acked",
        "dup",
        "mid",
        "payload",
        "properties",
        "qos",
        "received_at",
        "retain",
        "topic",
    )

    def __init__(
        self,
        intake: MqttIntake,
        conn: _Connection,
        seq: int,
        message: paho.MQTTMessage,
    ) -> None:
        self.topic: str = message.topic
        self.payload: bytes = bytes(message.payload)
        self.qos: int = message.qos
        self.retain: bool = message.retain
        self.dup: bool = bool(message.dup)
        self.mid: int = message.mid
        self.properties: Properties | None = getattr(message, "properties", None)
        self.received_at: float = time.time()
        self.acked = False
        self._intake = intake
        self._conn = conn
        self._seq = seq
        self._done = False  # released: counted out of in-flight

    def ack(self) -> None:
        """Acknowledge: the PUBACK goes out (in arrival order) unless the connection has ended."""
        if not self.acked:
            self.acked = True
            self._intake._ack(self)

    def __repr__(self) -> str:
        return (
            f"Delivery(topic={self.topic!r}, mid={self.mid}, qos={self.qos}, dup={self.dup}, "
            f"retain={self.retain}, {len(self.payload)} bytes)"
        )


class _AckingClient(aiomqtt.Client):
    """aiomqtt.Client with manual acks, no incoming queue, and a pausable socket reader."""

    def __init__(
        self,
        hostname: str,
        port: int,
        *,
        on_delivery: Callable[[paho.MQTTMessage], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(hostname, port, **kwargs)
        # aiomqtt builds the paho client without manual_ack (client.py, `mqtt.Client(...)` in
        # __init__); without it paho sends the PUBACK as soon as on_message returns.
        self._client.manual_ack_set(True)
        self._on_delivery = on_delivery
        self._reader: Callable[[], None] | None = None
        self._fd = -1
        self._paused = False
        self.session_present = False

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._on_delivery(message)

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        self.session_present = bool(flags.session_present)
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: PahoSocket) -> None:
        # Replaces aiomqtt's reader (same body) so that it can stop between two packets.
        fd = sock.fileno()

        def reader() -> None:
            try:
                while not self._paused:
                    client.loop_read()
                    if not self._tls_pending():
                        break
            except Exception as exc:
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def start() -> None:
            self._fd, self._reader = fd, reader
            if not self._paused:
                self._loop.add_reader(fd, reader)
            self._misc_task = self._loop.create_task(self._misc_loop())

        # Called from the executor thread that runs paho's connect().
        self._loop.call_soon_threadsafe(start)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: PahoSocket) -> None:
        self._fd = -1
        super()._on_socket_close(client, userdata, sock)

    def _tls_pending(self) -> bool:
        # SSL sockets may hold decoded bytes the selector cannot see (paho issue #131).
        sock = self._client.socket()
        pending = getattr(sock, "pending", None)
        return pending is not None and pending() > 0

    def pause_reading(self) -> None:
        if not self._paused:
            self._paused = True
            if self._fd >= 0:
                self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if self._fd >= 0 and self._reader is not None:
                self._loop.add_reader(self._fd, self._reader)
                if self._tls_pending():
                    self._loop.call_soon(self._reader)

    def send_puback(self, mid: int) -> None:
        self._client.ack(mid, 1)

    async def wait_lost(self) -> BaseException | None:
        """Wait until the connection ends; its error, or None after a clean disconnect."""
        # asyncio.wait, not await: cancelling us must not cancel aiomqtt's future.
        await asyncio.wait([self._disconnected])
        return self._disconnected.exception()

    def abort(self) -> None:
        """Close the socket of a failed connection attempt (aiomqtt leaves it open)."""
        with contextlib.suppress(Exception):
            self._client._sock_close()


class MqttIntake:
    """A bounded, manually acknowledged QoS 1 intake over a persistent MQTT session.

    Use as ``async with MqttIntake(cfg) as intake: async for d in intake: ...; d.ack()``.
    """

    def __init__(self, config: MqttIntakeConfig) -> None:
        self.config = config
        self.stats = IntakeStats()
        self._queue: collections.deque[Delivery] = collections.deque()
        self._getter: asyncio.Future[None] | None = None  # the one consumer's wait
        self._conn: _Connection | None = None
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._room.set()
        self._connected = asyncio.Event()
        self._tls_context = config.tls.context() if config.tls is not None else None
        self._rng = random.Random()
        if config.password_env is not None and config.password_env not in os.environ:
            raise ValueError(f"password variable {config.password_env} is not set")

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> MqttIntake:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-intake")

    async def aclose(self) -> None:
        """Disconnect cleanly; unacknowledged messages stay with the broker's session."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a connection is up: subscribed, or resuming a session (which holds them)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    # -- consuming -------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delivery]:
        while True:
            yield await self.get()

    async def get(self) -> Delivery:
        """The next delivery (waits for one)."""
        while not self._queue:
            if self._task is None:
                raise RuntimeError("the intake is closed")
            fut = asyncio.get_running_loop().create_future()
            self._getter = fut
            try:
                await fut
            finally:
                self._getter = None
        return self._queue.popleft()

    async def get_batch(self, max_items: int) -> list[Delivery]:
        """At least one delivery, and whatever else is queued, up to ``max_items``."""
        first = await self.get()
        batch = [first]
        while self._queue and len(batch) < max_items:
            batch.append(self._queue.popleft())
        return batch

    def queued(self) -> int:
        """Deliveries received and not yet taken by the consumer."""
        return len(self._queue)

    # -- receiving (event loop thread, inside paho's loop_read) ----------------------------

    def _on_message(self, conn: _Connection, message: paho.MQTTMessage) -> None:
        self._seq += 1
        d = Delivery(self, conn, self._seq, message)
        conn.window[d._seq] = d
        st = self.stats
        st.received += 1
        st.redelivered += d.dup
        st.in_flight += 1
        st.in_flight_peak = max(st.in_flight_peak, st.in_flight)
        self._queue.append(d)
        if st.in_flight >= self.config.max_in_flight:
            self._room.clear()
            if conn.client is not None:
                conn.client.pause_reading()
                st.pauses += 1
        self._wake()

    def _wake(self) -> None:
        fut = self._getter
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- acknowledging ---------------------------------------------------------------------

    def _ack(self, d: Delivery) -> None:
        conn = d._conn
        if not conn.alive or conn is not self._conn:
            self.stats.stale_acks += d.qos > 0
            self._release(d)
            return
        if not self.config.ordered_acks:
            conn.window.pop(d._seq, None)
            self._puback(conn, d)
            return
        window = conn.window
        while window:
            seq, head = next(iter(window.items()))
            if not head.acked:
                break
            del window[seq]
            self._puback(conn, head)

    def _puback(self, conn: _Connection, d: Delivery) -> None:
        if d.qos > 0 and conn.client is not None:
            conn.client.send_puback(d.mid)
            self.stats.acked += 1
        self._release(d)

    def _release(self, d: Delivery) -> None:
        if d._done:
            return
        d._done = True
        self.stats.in_flight -= 1
        if self.stats.in_flight < self.config.max_in_flight:
            self._room.set()
            conn = self._conn
            if conn is not None and conn.client is not None:
                conn.client.resume_reading()

    def _connection_lost(self, conn: _Connection) -> None:
        conn.alive = False
        self.stats.connected = False
        self._connected.clear()
        # Acked but held back behind an unacked one: the broker redelivers them anyway.
        for d in list(conn.window.values()):
            if d.acked:
                self.stats.stale_acks += d.qos > 0
                self._release(d)
        conn.window.clear()

    def _purge_redelivered(self, current: _Connection) -> None:
        # The resumed session redelivers every unacknowledged QoS 1 message [MQTT-4.4.0-1]:
        # queued copies from older connections would only be duplicates.
        keep: collections.deque[Delivery] = collections.deque()
        for d in self._queue:
            if d.qos > 0 and d._conn is not current:
                self.stats.purged += 1
                self._release(d)
            else:
                keep.append(d)
        self._queue = keep

    # -- connecting ------------------------------------------------------------------------

    def _client(self, conn: _Connection) -> _AckingClient:
        cfg = self.config
        kwargs: dict[str, Any] = {
            "identifier": cfg.client_id,
            "keepalive": cfg.keepalive,
            "timeout": cfg.connect_timeout,
            "tls_context": self._tls_context,
        }
        if cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry
            props.ReceiveMaximum = min(cfg.max_in_flight, _RECEIVE_MAXIMUM_LIMIT)
            kwargs |= {
                "protocol": aiomqtt.ProtocolVersion.V5,
                "clean_start": False,  # aiomqtt's default cleans the first connect
                "properties": props,
            }
        else:
            kwargs |= {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
        if cfg.username is not None:
            kwargs["username"] = cfg.username
            if cfg.password_env is not None:
                kwargs["password"] = os.environ.get(cfg.password_env, "")

        return _AckingClient(
            cfg.host, cfg.port, on_delivery=lambda m: self._on_message(conn, m), **kwargs
        )

    def _subscriptions(self) -> list[tuple[str, SubscribeOptions]] | list[tuple[str, int]]:
        if self.config.protocol == "5":
            # retainHandling=1: retained messages only for a new subscription, not on every
            # resubscribe of a resumed session.
            return [
                (t, SubscribeOptions(qos=q, retainHandling=1)) for t, q in self.config.subscriptions
            ]
        return list(self.config.subscriptions)

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        return self._rng.uniform(0, min(cfg.backoff_max, cfg.backoff_initial * 2**attempt))

    async def _run(self) -> None:
        attempt = 0
        first = True
        while True:
            # A new connection starts reading at once (its CONNACK): wait for room first.
            await self._room.wait()
            conn = _Connection()
            client = self._client(conn)
            conn.client = client
            self._conn = conn
            resub: asyncio.Task[None] | None = None
            try:
                async with client:
                    conn.alive = True
                    st = self.stats
                    st.connects += 1
                    st.reconnects += not first
                    first = False
                    st.session_present = client.session_present
                    if client.session_present:
                        self._purge_redelivered(conn)
                        # The session still holds the subscriptions, and its redeliveries come
                        # before the SUBACK: they may fill the intake and pause the reader, so
                        # resubscribing (for changed options) must not hold up the connection.
                        resub = asyncio.create_task(self._subscribe(client, math.inf))
                    else:
                        await self._subscribe(client, None)
                    st.connected = True
                    self._connected.set()
                    attempt = 0
                    log.info(
                        "mqtt %s: connected to %s:%d (session present: %s)",
                        self.config.client_id,
                        self.config.host,
                        self.config.port,
                        client.session_present,
                    )
                    try:
                        err = await client.wait_lost()
                    finally:
                        if resub is not None:
                            resub.cancel()
                    log.warning("mqtt %s: connection lost: %s", self.config.client_id, err)
            except aiomqtt.MqttError as exc:
                client.abort()
                self.stats.connect_failures += not conn.alive
                log.warning("mqtt %s: %s", self.config.client_id, exc)
            except asyncio.CancelledError:
                client.abort()
                raise
            except Exception:
                client.abort()
                self.stats.connect_failures += not conn.alive
                log.exception("mqtt %s: unexpected error", self.config.client_id)
            finally:
                client.abort()
                self._connection_lost(conn)
            delay = self._backoff(attempt)
            attempt += 1
            await asyncio.sleep(delay)

    async def _subscribe(self, client: _AckingClient, timeout: float | None) -> None:
        try:
            self._check_granted(await client.subscribe(self._subscriptions(), timeout=timeout))
        except aiomqtt.MqttError:
            if timeout is None:
                raise
            log.exception("mqtt %s: resubscribe failed", self.config.client_id)

    def _check_granted(self, granted: Sequence[int] | Sequence[ReasonCode]) -> None:
        codes: list[int | ReasonCode] = [*granted]
        for (topic, qos), code in zip(self.config.subscriptions, codes, strict=False):
            value: int = code.value if isinstance(code, ReasonCode) else code
            if value >= 0x80:
                raise aiomqtt.MqttError(f"subscription to {topic!r} refused ({code})")
            if value < qos:
                log.warning("mqtt: %r granted QoS %d, asked %d", topic, value, qos)
