"""The connection side of one simulated terminal, common to both protocols.

A :class:`Terminal` is its own ``asyncio.Protocol`` (no stream objects, no task per frame): one
lifecycle task per terminal connects, logs in (subclass), then waits until the connection is
lost or a stop is asked for; lost connections are re-established with exponential backoff.
Reports are made by :meth:`Terminal.tick` (called by the fleet's pacer) or, in closed-loop mode
(interval 0), whenever acks open the in-flight window. Reports that could not be sent, and
those sent but not acknowledged when the connection dropped, wait in ``resend`` and go out
again after the next login as reissue (GB/T 32960 0x03) or blind-area batches (JT/T 808
0x0704). Subclasses supply the protocol: handshake, report frames, acks, commands, logout.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from gateway.codecs.common import BadFrame
from gateway.tcp_simulator_frames import DataClock
from gateway.tcp_simulator_stats import TerminalStats

if TYPE_CHECKING:
    from gateway.tcp_simulator import SimConfig

_BURST = 512  # most reports one pump writes without acks before yielding to the loop


class Stopping(ConnectionError):
    """The fleet is stopping: a pending request is abandoned."""


class Context:
    """What the terminals of one protocol share: config, counters, TLS, limits, callbacks."""

    __slots__ = (
        "config",
        "connect_gate",
        "loop",
        "on_online",
        "on_quota_done",
        "port",
        "server_hostname",
        "ssl",
        "stats",
    )

    def __init__(
        self,
        config: SimConfig,
        port: int,
        stats: TerminalStats,
        connect_gate: asyncio.Semaphore,
        on_online: Callable[[], None],
        on_quota_done: Callable[[], None],
    ) -> None:
        self.config = config
        self.port = port
        self.stats = stats
        self.loop = asyncio.get_running_loop()
        self.connect_gate = connect_gate
        self.on_online = on_online
        self.on_quota_done = on_quota_done
        self.ssl: ssl.SSLContext | None = None
        self.server_hostname: str | None = None
        if config.tls:
            self.ssl = ssl.create_default_context(cafile=config.tls_ca)
            if config.tls_ca is None:  # test gateways use self-signed certificates
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE
            self.server_hostname = config.tls_server_name or config.host


def _resolve(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


class Terminal(asyncio.Protocol):
    """One simulated terminal; subclasses implement the protocol hooks below."""

    PROTOCOL: ClassVar[str]

    __slots__ = (
        "_drain_until",
        "_hb_timer",
        "_lost",
        "_out",
        "_stop",
        "_waiter",
        "_waiter_key",
        "_wake",
        "ack",
        "clock",
        "ctx",
        "deferred",
        "device_id",
        "ever_online",
        "generated",
        "heartbeat_s",
        "last_sent",
        "online",
        "paused",
        "quota",
        "reader",
        "resend",
        "stats",
        "transport",
        "window",
    )

    def __init__(self, ctx: Context, device_id: str, quota: int | None) -> None:
        cfg = ctx.config
        self.ctx = ctx
        self.stats = ctx.stats
        self.device_id = device_id
        self.quota = quota  # reports still to make; None: no limit
        self.generated = 0  # reports made so far (sent, waiting or dropped)
        self.ack = cfg.ack_reports
        self.window = cfg.window
        self.heartbeat_s = cfg.heartbeat_s
        self.clock = DataClock(cfg.start_time, max(1, round(cfg.interval_s)))
        self.transport: asyncio.Transport | None = None
        self.reader: Any = None
        self.online = False
        self.ever_online = False
        self.paused = False
        self.last_sent = 0.0
        self.resend: deque[bytes] = deque()  # reports to send again (reissue / blind area)
        self.deferred: deque[int] = deque()  # data times of reports the window held back
        self._lost: asyncio.Future[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[Any] | None = None
        self._waiter_key: object = None
        self._hb_timer: asyncio.TimerHandle | None = None
        self._stop = False
        self._drain_until = 0.0  # at stop: until when unacknowledged reports are still sent
        self._out: list[bytes] = []  # reports of this pump/tick, written with one send

    # -- protocol hooks ----------------------------------------------------------------------

    def new_reader(self) -> Any:
        raise NotImplementedError

    def make_report(self, epoch: int) -> bytes:
        """A realtime report frame with data time ``epoch`` (kept for a later resend)."""
        raise NotImplementedError

    def send_report(self, epoch: int, now: float) -> None:
        """Make and send a realtime report; track it for its ack when acks are expected."""
        raise NotImplementedError

    def send_resend(self, frames: list[bytes], now: float) -> int:
        """Send these reports again (reissue / blind area); return the window slots used."""
        raise NotImplementedError

    def requeue(self) -> list[bytes]:
        """Take every report waiting for an ack, oldest first (the connection is gone)."""
        raise NotImplementedError

    def in_flight(self) -> int:
        """Messages carrying reports that wait for their ack (what the window limits)."""
        raise NotImplementedError

    def unacked_reports(self) -> int:
        """Reports sent and not acknowledged yet."""
        raise NotImplementedError

    def on_frame(self, raw: bytes, now: float) -> None:
        raise NotImplementedError

    async def handshake(self) -> bool:
        """Log in on a fresh connection; False when refused or unanswered."""
        raise NotImplementedError

    async def logout(self) -> None:
        raise NotImplementedError

    def send_heartbeat(self) -> None:
        raise NotImplementedError

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, hence no isinstance)
        self.transport = cast(asyncio.Transport, transport)
        self.reader = self.new_reader()
        self.paused = False
        self._lost = self.ctx.loop.create_future()
        self.stats.connected += 1

    def data_received(self, data: bytes) -> None:
        now = self.ctx.loop.time()
        reader = self.reader
        reader.feed(data)
        for item in reader:
            if isinstance(item, BadFrame):
                self.stats.bad_frames += 1
            else:
                self.on_frame(item, now)
        self.pump(now)
        if self._stop and self.drained():
            _resolve(self._wake)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.connected -= 1
        self.transport = None
        if self.online:
            self.online = False
            self.stats.online -= 1
            self.ctx.on_online()
        if self._hb_timer is not None:
            self._hb_timer.cancel()
            self._hb_timer = None
        # what was sent and not acknowledged, and what the window held back, goes out again
        self.resend.extend(self.requeue())
        self.resend.extend(self.make_report(e) for e in self.deferred)
        self.deferred.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionResetError("connection lost"))
        _resolve(self._lost)
        _resolve(self._wake)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump(self.ctx.loop.time())

    # -- sending -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self.stats.bytes_sent += len(data)
            self.last_sent = time.monotonic()

    def queue(self, frame: bytes) -> None:
        """Send ``frame`` with the others of this pump or tick (one system call for all)."""
        self._out.append(frame)

    def flush(self) -> None:
        if self._out:
            data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
            self._out.clear()
            self.write(data)

    def _take_quota(self) -> bool:
        """Count one more report made; False (nothing counted) when the quota is used up."""
        if self.quota is not None:
            if self.quota <= 0:
                return False
            self.quota -= 1
            if self.quota == 0:
                self.ctx.on_quota_done()
        self.generated += 1
        self.stats.generated += 1
        return True

    def tick(self, now: float, reports: int = 1) -> None:
        """``reports`` report intervals passed: make the reports, send them (one write) or
        keep them for later."""
        if self._stop or not self.ever_online:
            return
        for _ in range(reports):
            if not self._take_quota():
                break
            epoch = self.clock.next()
            if not self.online:
                self._buffer(self.make_report(epoch))
            elif (
                self.paused
                or self.resend
                or self.deferred
                or (self.ack and self.in_flight() >= self.window)
            ):
                self.deferred.append(epoch)
                self._trim()
            else:
                self.send_report(epoch, now)
        self.flush()

    def _buffer(self, frame: bytes) -> None:
        self.resend.append(frame)
        self._trim()

    def _trim(self) -> None:
        limit = self.ctx.config.buffer_limit
        while len(self.resend) + len(self.deferred) > limit:
            if self.resend:
                self.resend.popleft()
            else:
                self.deferred.popleft()
            self.stats.dropped += 1

    def pump(self, now: float) -> None:
        """Send what the window and the socket allow: resends, held-back reports, and in
        closed-loop mode (interval 0) new reports."""
        if not self.online or self.paused:
            return
        room = self.window - self.in_flight() if self.ack else _BURST
        if self.resend and room > 0:
            n = min(room, len(self.resend))
            room -= self.send_resend([self.resend.popleft() for _ in range(n)], now)
        while self.deferred and room > 0:
            self.send_report(self.deferred.popleft(), now)
            room -= 1
        more = bool(self.resend or self.deferred)
        if self.ctx.config.interval_s <= 0 and not self._stop:
            sent = 0
            while room > 0 and sent < _BURST and self._take_quota():
                self.send_report(self.clock.next(), now)
                room -= 1
                sent += 1
            more = more or sent == _BURST
        self.flush()
        if more and not self.ack:  # nothing else would come back for the rest: yield, go on
            self.ctx.loop.call_soon(self._pump_soon)

    def _pump_soon(self) -> None:
        self.pump(self.ctx.loop.time())

    def buffered(self) -> int:
        return len(self.resend) + len(self.deferred)

    def drained(self) -> bool:
        return not self.resend and not self.deferred and self.unacked_reports() == 0

    # -- requests (login, logout, ...) -------------------------------------------------------

    async def request(self, frame: bytes, key: object, timeout: float | None = None) -> Any:
        """Send ``frame`` and wait for the answer that :meth:`answer` files under ``key``."""
        fut: asyncio.Future[Any] = self.ctx.loop.create_future()
        self._waiter, self._waiter_key = fut, key
        try:
            self.write(frame)
            async with asyncio.timeout(timeout or self.ctx.config.ack_timeout_s):
                return await fut
        finally:
            self._waiter = None
            self._waiter_key = None

    def answer(self, key: object, value: Any) -> bool:
        """Deliver the answer of a pending request; False when nobody waits for ``key``."""
        fut = self._waiter
        if fut is None or fut.done() or self._waiter_key != key:
            return False
        fut.set_result(value)
        return True

    # -- heartbeats --------------------------------------------------------------------------

    def _arm_heartbeat(self, delay: float) -> None:
        if self.heartbeat_s > 0:
            self._hb_timer = self.ctx.loop.call_later(delay, self._heartbeat_due)

    def _heartbeat_due(self) -> None:
        self._hb_timer = None
        if not self.online:
            return
        idle = time.monotonic() - self.last_sent
        if idle >= self.heartbeat_s * 0.99:
            self.send_heartbeat()
            self.stats.heartbeats += 1
            idle = 0.0
        self._arm_heartbeat(self.heartbeat_s - idle)

    def set_heartbeat(self, seconds: float) -> None:
        """A platform changed the heartbeat period: use it from the next beat on."""
        self.heartbeat_s = seconds
        if self._hb_timer is not None:
            self._hb_timer.cancel()
            self._hb_timer = None
        if self.online:
            self._arm_heartbeat(seconds)

    # -- lifecycle ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Drain, log out and close (or stop reconnecting); :meth:`run` then returns."""
        self._stop = True
        self._drain_until = self.ctx.loop.time() + self.ctx.config.drain_timeout_s
        _resolve(self._wake)
        if self.online:
            return  # run() drains and logs out
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(Stopping("stopping"))

    def disconnect(self) -> None:
        """Drop the connection (as a terminal reset does); the lifecycle reconnects."""
        if self.transport is not None:
            self.transport.close()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up early for a stop request."""
        fut = self._wake = self.ctx.loop.create_future()
        handle = self.ctx.loop.call_later(seconds, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()

    async def _connect(self) -> bool:
        cfg = self.ctx.config
        try:
            async with asyncio.timeout(cfg.connect_timeout_s):
                await self.ctx.loop.create_connection(
                    lambda: self,
                    cfg.host,
                    self.ctx.port,
                    ssl=self.ctx.ssl,
                    server_hostname=self.ctx.server_hostname,
                )
        except (OSError, TimeoutError):
            self.stats.connect_failures += 1
            return False
        self.stats.connects += 1
        if self.ever_online:
            self.stats.reconnects += 1
        return True

    async def _login(self) -> bool:
        try:
            return await self.handshake()
        except (TimeoutError, ConnectionError):
            if not self._stop:
                self.stats.login_failures += 1
            return False

    def _must_drain(self) -> bool:
        """Stopping, but reports are still unacknowledged and the drain time is not up."""
        return self.ack and not self.drained() and self.ctx.loop.time() < self._drain_until

    async def run(self) -> None:
        """Connect, log in, report until stopped; reconnect with backoff on failures.

        A stop while offline still reconnects (within ``drain_timeout_s``) to resend what was
        never acknowledged: a terminal loses no report just because the stop found it offline.
        """
        cfg = self.ctx.config
        backoff = cfg.reconnect_min_s
        while not self._stop or self._must_drain():
            ok = False
            async with self.ctx.connect_gate:
                if (not self._stop or self._must_drain()) and await self._connect():
                    ok = await self._login()
            # (the connection may be gone already, right after the login was answered)
            if not ok or self.transport is None:
                await self._close()
                if self._stop and not self._must_drain():
                    break
                await self._sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, cfg.reconnect_max_s)
                continue
            backoff = cfg.reconnect_min_s
            self._wake = self.ctx.loop.create_future()
            self.online = self.ever_online = True
            self.stats.online += 1
            self.ctx.on_online()
            self.last_sent = time.monotonic()
            self._arm_heartbeat(self.heartbeat_s)
            self.pump(self.ctx.loop.time())
            if not self._stop:
                await self._wake
            if self._stop and self.transport is not None:
                await self._finish()

    async def _finish(self) -> None:
        """Stop while connected: wait (bounded) for the outstanding acks, log out, close."""
        cfg = self.ctx.config
        deadline = self._drain_until
        while self.ack and self.transport is not None and not self.drained():
            left = deadline - self.ctx.loop.time()
            if left <= 0:
                break
            await self._sleep(left)  # data_received wakes us once drained
        if self.transport is not None and cfg.logout:
            try:
                await self.logout()
                self.stats.logouts += 1
            except (TimeoutError, ConnectionError):
                self.stats.errors += 1
        await self._close()

    async def _close(self) -> None:
        transport, lost = self.transport, self._lost
        if transport is None:
            return
        transport.close()
        if lost is not None:
            try:
                async with asyncio.timeout(2.0):
                    await lost
            except TimeoutError:
                transport.abort()
