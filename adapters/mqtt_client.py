"""MQTT intake: QoS 1 on a persistent session, acknowledged once the consumer's records are durable.

``MqttIntake`` keeps one connection to the broker (fixed client id, clean start off, a session
expiry), reconnects with exponential backoff and full jitter, and hands each message out as a
``Delivery``. Its PUBACK goes out only when the consumer calls ``Delivery.ack()``, released in the
order the PUBLISH packets arrived (MQTT 3.1.1 and 5.0, section 4.6, [MQTT-4.6.0-2]). Acks of a
previous connection are dropped: the broker redelivers those messages, with DUP set, on the next
connection of the session.

aiomqtt 2.5.1 neither forwards paho's ``manual_ack`` nor lets a full incoming queue push back (it
discards the message and paho acknowledges it anyway). ``_AckingClient`` fixes both: it switches
the paho client to manual acknowledgement, takes every message itself (no aiomqtt queue), and
owns the socket reader so that handing out messages stops while ``max_in_flight`` deliveries are
unacknowledged (reading then stops too, and TCP flow control stops the broker). Under MQTT 5
the CONNECT also carries Receive Maximum, but that bounds neither QoS 0 traffic nor MQTT 3.1.1,
and Mosquitto 2.0.11 lets more through than it after PUBACKs: the paused reader is the real
bound. A pause longer than about twice the keepalive ends in a keepalive disconnect; the
session survives and the unacknowledged messages come back (duplicates, never loss).

The reader is also the fast path. paho reads a packet with three or more ``recv`` calls and
builds an ``MQTTMessage`` and a ``Properties`` object for each PUBLISH, and each PUBACK costs a
write and a writer registration through the loop's thread-safe queue: most of the gateway's CPU
per message. The reader takes up to 64 KiB per ``recv`` and parses QoS 0 / 1 PUBLISH packets
itself, handing every other packet (CONNACK, SUBACK, PINGRESP, DISCONNECT, QoS 2) to paho's own
handler; the PUBACKs of one event loop iteration go out in one write.

QoS 2 subscriptions are refused: paho keeps the QoS 2 receive state in memory only, so a crash
between PUBREC and PUBCOMP would lose the message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import os
import random
import ssl
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.types import PahoSocket
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)

#: MQTT 5 caps Receive Maximum at 65535.
_RECEIVE_MAXIMUM_LIMIT = 65535
#: Bytes asked of the socket per read (many PUBLISH packets per system call).
_READ_SIZE = 1 << 16
#: A PUBACK without reason code (success, MQTT 5 section 3.4.2.1) is 0x40 0x02 <packet id>: one
#: big-endian 32-bit word.
_PUBACK_WORD = 0x4002_0000
#: MQTT 5 PUBLISH without properties: the property length 0, decoded only if asked for.
_NO_PROPERTIES = b"\x00"
#: At a clean disconnect, how long to wait for the broker to confirm it read the PUBACKs.
_SYNC_TIMEOUT_S = 2.0

#: What the reader hands over per PUBLISH: topic, payload, fixed header byte (DUP, QoS,
#: RETAIN bits), packet id, MQTT 5 properties (raw or decoded; None under 3.1.1), receive time.
OnPublish = Callable[[str, bytes, int, int, "bytes | Properties | None", float], None]


class _MalformedPacket(ValueError):
    """A packet that does not parse (the connection is closed, as paho does)."""


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
    """One connection's ack window: its deliveries in arrival order until their PUBACKs are
    released (ordered acks only)."""

    __slots__ = ("alive", "client", "window")

    def __init__(self) -> None:
        self.client: _AckingClient | None = None
        self.alive = False
        self.window: collections.deque[Delivery] = collections.deque()


class Delivery:
    """One received message; ``ack()`` once its records are durable."""

    __slots__ = (
        "_conn",
        "_done",
        "_intake",
        "_props",
        "acked",
        "dup",
        "mid",
        "payload",
        "qos",
        "received_at",
        "retain",
        "topic",
    )

    def __init__(
        self,
        intake: MqttIntake,
        conn: _Connection,
        topic: str,
        payload: bytes,
        header: int,
        mid: int,
        props: bytes | Properties | None,
        received_at: float,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = (header >> 1) & 3
        self.retain = bool(header & 0x01)
        self.dup = bool(header & 0x08)
        self.mid = mid
        self.received_at = received_at
        self.acked = False
        self._props = props
        self._intake = intake
        self._conn = conn
        self._done = False  # released: counted out of in-flight

    @property
    def properties(self) -> Properties | None:
        """The MQTT 5 PUBLISH properties (decoded when first asked for); None under 3.1.1."""
        raw = self._props
        if not isinstance(raw, bytes):
            return raw
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.unpack(raw)  # type: ignore[no-untyped-call]
        self._props = props
        return props

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
    """aiomqtt.Client with manual acks, no incoming queue, batched PUBACKs, and its own pausable
    socket reader that parses QoS 0 / 1 PUBLISH packets itself."""

    def __init__(
        self,
        hostname: str,
        port: int,
        *,
        on_publish: OnPublish,
        **kwargs: Any,
    ) -> None:
        super().__init__(hostname, port, **kwargs)
        # aiomqtt builds the paho client without manual_ack (client.py, `mqtt.Client(...)` in
        # __init__); without it paho sends the PUBACK as soon as on_message returns.
        self._client.manual_ack_set(True)
        self._deliver = on_publish
        self._v5 = kwargs.get("protocol") == aiomqtt.ProtocolVersion.V5
        self._fd = -1
        self._paused = False
        self._buf = b""  # received bytes not yet handled (whole packets, then a partial one)
        self._pos = 0
        self._read_at = 0.0  # time.time() of the last read: the receive time of its messages
        self._acks: list[int] = []  # packet ids whose PUBACK goes out with the next flush
        self._pong: asyncio.Future[None] | None = None  # waiting for a PINGRESP
        self.session_present = False

    async def __aexit__(self, *exc_info: Any) -> None:
        self.flush_acks()  # before the DISCONNECT that aiomqtt queues
        await self._handled_by_broker(_SYNC_TIMEOUT_S)
        await super().__aexit__(*exc_info)

    async def _handled_by_broker(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the broker has handled what was sent so far: it
        answers a PINGREQ after the packets before it. Mosquitto 2.0 lets a new connection of
        the same client id take the session over before it reads the old one's last PUBACKs,
        and then resends those messages: a quick restart would get duplicates."""
        client = self._client
        if self._paused or client._sock is None or self._disconnected.done():
            return  # (paused: the PINGRESP would wait behind the unread messages)
        self._pong = self._loop.create_future()
        client._send_pingreq()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pong), timeout)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # Only what the reader leaves to paho gets here (a QoS 2 PUBLISH after its PUBREL).
        header = 0x30 | message.dup << 3 | message.qos << 1 | message.retain
        props = getattr(message, "properties", None) if self._v5 else None
        self._deliver(
            message.topic, bytes(message.payload), header, message.mid, props, time.time()
        )

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

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():
            # Closed before the CONNACK (plain TCP to a TLS port, a broker going away): the
            # attempt fails now, not at the connect timeout (aiomqtt ignores it until then).
            why = f"connection closed before the CONNACK ({reason_code})"
            self._connected.set_exception(aiomqtt.MqttError(why))
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: PahoSocket) -> None:
        # Replaces aiomqtt's reader (paho's loop_read) with ours.
        fd = sock.fileno()

        def start() -> None:
            self._fd = fd
            if not self._paused:
                self._loop.add_reader(fd, self._on_readable)
            self._misc_task = self._loop.create_task(self._misc_loop())

        # Called from the executor thread that runs paho's connect().
        self._loop.call_soon_threadsafe(start)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: PahoSocket) -> None:
        self._fd = -1
        self._acks.clear()
        super()._on_socket_close(client, userdata, sock)

    # -- reading ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        """Handle what is buffered, then read and handle until paused or drained."""
        client = self._client
        try:
            self._dispatch()
            while not self._paused and client._sock is not None:
                try:
                    data = client._sock_recv(_READ_SIZE)
                except BlockingIOError:
                    return
                if not data:
                    client._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
                    return
                self._received(data)
                self._dispatch()
                if not self._tls_pending():
                    return
        except OSError:
            client._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        except _MalformedPacket as exc:
            log.error("mqtt: malformed packet from the broker: %s", exc)
            client._loop_rc_handle(MQTTErrorCode.MQTT_ERR_PROTOCOL)
        except Exception as exc:
            if not self._disconnected.done():
                self._disconnected.set_exception(exc)

    def _received(self, data: bytes) -> None:
        buf, pos = self._buf, self._pos
        self._buf = buf[pos:] + data if pos < len(buf) else data
        self._pos = 0
        self._read_at = time.time()
        client = self._client
        with client._msgtime_mutex:  # paho's keepalive check reads it
            client._last_bytes_received = time.monotonic()

    def _dispatch(self) -> None:
        """Handle the whole packets in the buffer, in order, until reading is paused (the rest
        waits for ``resume_reading``) or the connection is closed."""
        buf, pos = self._buf, self._pos
        end = len(buf)
        client = self._client
        while pos < end and not self._paused and client._sock is not None:
            header = buf[pos]
            # Remaining Length: 1 to 4 bytes of 7 bits, least significant first.
            i, length, shift = pos + 1, 0, 0
            while True:
                if i >= end:
                    self._pos = pos
                    return
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise _MalformedPacket("remaining length longer than 4 bytes")
            stop = i + length
            if stop > end:
                break
            pos = stop
            if header & 0xF4 == 0x30:  # PUBLISH, QoS 0 or 1
                self._publish(buf, header, i, stop)
            else:
                self._to_paho(header, buf[i:stop])
        self._pos = pos
        if pos >= end:
            self._buf, self._pos = b"", 0

    def _publish(self, buf: bytes, header: int, at: int, stop: int) -> None:
        """One PUBLISH packet, its variable header at ``buf[at]``, its end at ``buf[stop]``."""
        if stop - at < 2:
            raise _MalformedPacket("PUBLISH without a topic")
        topic_at = at + 2
        topic_end = topic_at + (buf[at] << 8 | buf[at + 1])
        at = topic_end + 2 if header & 0x06 else topic_end  # QoS 1: the packet id follows
        if at > stop:
            raise _MalformedPacket("PUBLISH shorter than its headers")
        mid = buf[at - 2] << 8 | buf[at - 1] if header & 0x06 else 0
        props: bytes | None = None
        if self._v5:
            length, n = _varint(buf, at, stop)
            props = buf[at : at + n + length] if length else _NO_PROPERTIES
            at += n + length
            if at > stop:
                raise _MalformedPacket("PUBLISH properties longer than the packet")
        # Brokers check that topics are UTF-8 [MQTT-4.7.3-1]; a bad one is replaced, not fatal
        # (it then matches no route and becomes a dead letter, acknowledged).
        topic = buf[topic_at:topic_end].decode(errors="replace")
        self._deliver(topic, buf[at:stop], header, mid, props, self._read_at)

    def _to_paho(self, header: int, body: bytes) -> None:
        """Let paho handle a packet other than a QoS 0 / 1 PUBLISH."""
        client = self._client
        if header & 0xF0 == paho.PINGRESP and self._pong is not None and not self._pong.done():
            self._pong.set_result(None)
        client._in_packet = _paho_in_packet(header, body)
        try:
            rc = client._packet_handle()
        except Exception as exc:  # paho's MalformedPacket and friends
            raise _MalformedPacket(f"packet 0x{header:02x}: {exc}") from exc
        finally:
            client._in_packet = _paho_in_packet(0, b"")
        if rc > 0:
            client._loop_rc_handle(rc)

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
            if self._fd >= 0:
                self._loop.add_reader(self._fd, self._on_readable)
                if self._pos < len(self._buf) or self._tls_pending():
                    self._loop.call_soon(self._on_readable)

    # -- acknowledging ---------------------------------------------------------------------

    def send_puback(self, mid: int) -> None:
        """Queue the PUBACK of ``mid``; those of one event loop iteration go out in one write."""
        if not self._acks:
            self._loop.call_soon(self.flush_acks)
        self._acks.append(mid)

    def flush_acks(self) -> None:
        """Queue the PUBACKs collected so far for writing (a no-op once the socket is closed)."""
        mids, self._acks = self._acks, []
        if mids and self._client._sock is not None:
            packet = struct.pack(f">{len(mids)}I", *[_PUBACK_WORD | m for m in mids])
            # One queued "packet" holding them all: paho writes it in order with the others.
            self._client._packet_queue(paho.PUBACK, packet, 0, 0)

    async def wait_lost(self) -> BaseException | None:
        """Wait until the connection ends; its error, or None after a clean disconnect."""
        # asyncio.wait, not await: cancelling us must not cancel aiomqtt's future.
        await asyncio.wait([self._disconnected])
        return self._disconnected.exception()

    def abort(self) -> None:
        """Close the socket of a failed connection attempt (aiomqtt leaves it open)."""
        with contextlib.suppress(Exception):
            self._client._sock_close()


def _varint(buf: bytes, at: int, stop: int) -> tuple[int, int]:
    """An MQTT Variable Byte Integer at ``buf[at]`` (before ``stop``): value, length in bytes."""
    value, shift, i = 0, 0, at
    while True:
        if i >= stop:
            raise _MalformedPacket("truncated variable byte integer")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i - at
        shift += 7
        if shift > 21:
            raise _MalformedPacket("variable byte integer longer than 4 bytes")


def _paho_in_packet(header: int, body: bytes) -> Any:
    """paho's ``_in_packet`` state for a whole packet (as its ``_packet_read`` leaves it)."""
    return {
        "command": header,
        "have_remaining": 1 if header else 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": len(body),
        "packet": bytearray(body),
        "to_process": 0,
        "pos": 0,
    }


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

    def stalled(self) -> bool:
        """True when nothing more arrives before an ``ack()``: ``max_in_flight`` deliveries are
        unacknowledged and the consumer holds them all."""
        return not self._queue and self.stats.in_flight >= self.config.max_in_flight

    # -- receiving (event loop thread, inside the client's socket reader) -----------------

    def _on_publish(
        self,
        conn: _Connection,
        topic: str,
        payload: bytes,
        header: int,
        mid: int,
        props: bytes | Properties | None,
        received_at: float,
    ) -> None:
        d = Delivery(self, conn, topic, payload, header, mid, props, received_at)
        if self.config.ordered_acks:
            conn.window.append(d)
        st = self.stats
        st.received += 1
        st.redelivered += d.dup
        st.in_flight += 1
        if st.in_flight > st.in_flight_peak:
            st.in_flight_peak = st.in_flight
        self._queue.append(d)
        if st.in_flight >= self.config.max_in_flight:
            self._room.clear()
            if conn.client is not None:
                conn.client.pause_reading()
                st.pauses += 1
        if self._getter is not None:
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
            self._puback(conn, d)
            return
        window = conn.window
        while window and window[0].acked:
            self._puback(conn, window.popleft())

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
        for d in conn.window:
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

        on_publish = functools.partial(self._on_publish, conn)
        return _AckingClient(cfg.host, cfg.port, on_publish=on_publish, **kwargs)

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
