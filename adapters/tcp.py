"""TCP listeners for GB/T 32960 and JT/T 808: a thin asyncio shell around the codecs' stream
readers, the session state machines and the pipeline.

Per connection (:class:`Connection`, an ``asyncio.Protocol`` with one reading task):

* received bytes go through the protocol's FrameReader; each frame through
  :class:`gateway.ingest.Ingestor` (records + raw archive entry, or a dead letter with the peer)
  and the session machine, which says what to store and what to answer;
* the records of the frames of one read are submitted together; ``pipeline.submit`` waits while
  the pipeline is full, and the connection stops reading meanwhile (the socket is paused once
  ``read_buffer_bytes`` are waiting);
* acknowledgements only after durability: each frame's reply joins an ordered queue with its
  completion (the future ``submit`` returned); a done-callback on the head of the queue writes
  every reply whose completion has resolved, in order, so several frames can be in flight
  without reading waiting for commits. At most ``max_unacked_frames`` wait; reading pauses
  beyond. A completion that fails sends no ack and aborts the connection (the terminal sends
  again);
* limits: connections in total and per IP (refused at accept), frame size (the reader reports a
  larger frame as a bad frame), ``max_bad_frames``, login / heartbeat timeouts (the session's),
  idle timeout (no byte at all), slow senders (a frame must complete within
  ``frame_timeout_s``), ``write_buffer_bytes`` of unsent replies (a peer that does not read);
* a frame cut off by a closed connection or a slow sender becomes a ``truncated`` dead letter.

:class:`ConnectionIndex` maps (protocol, device id) to the live connection: a second login of a
device closes the older connection (the newer one wins) and records a ``disconnect`` event with
``reason: displaced``. It is the hook for commands down to trucks: ``index.get(protocol, id)``
gives a :class:`Connection` with ``send(frame)``; the listener's ``on_message`` hook receives
the decoded messages the sessions do not consume (the terminals' replies).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import ssl
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol, cast

import msgspec

from gateway.adapters import session as s
from gateway.adapters.gbt32960_session import Gbt32960Session, inbound
from gateway.adapters.jt808_session import Jt808Session
from gateway.adapters.limits import ConnectionLimiter, ListenerStats
from gateway.codecs import gbt32960 as gbt
from gateway.codecs import jt808 as jt
from gateway.codecs.common import BadFrame
from gateway.codecs.errors import ProtocolError, Reason
from gateway.config import Config, Gbt32960ListenerConfig, Jt808ListenerConfig
from gateway.ingest import GBT32960, JT808, Ingestor
from gateway.normalize import normalize
from gateway.records import DeadLetter, RawFrame, SessionEvent
from gateway.registry import VEHICLE, Device, Registry

log = logging.getLogger("silkgate.tcp")

ListenerConfig = Gbt32960ListenerConfig | Jt808ListenerConfig
Session = Gbt32960Session | Jt808Session
MessageHook = Callable[["Connection", gbt.Frame | jt.Frame], None]

_ARCHIVE: Final = (RawFrame, DeadLetter)


class Submitter(Protocol):
    """What the listeners need of :class:`gateway.pipeline.Pipeline`."""

    async def submit(self, records: Iterable[msgspec.Struct]) -> asyncio.Future[None]: ...


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop factory when uvloop is installed, else None (the default loop).

    Use as ``asyncio.Runner(loop_factory=loop_factory())``."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def ssl_context(cfg: ListenerConfig) -> ssl.SSLContext | None:
    """The server TLS context of a listener (None without ``tls_cert``); with
    ``tls_client_ca`` the clients must present a certificate signed by it."""
    if not cfg.tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    if cfg.tls_client_ca:
        ctx.load_verify_locations(cfg.tls_client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def platform_passwords(cfg: Gbt32960ListenerConfig) -> dict[str, str]:
    """Username -> password of the platforms allowed to log in, read from the environment;
    an account whose variable is unset is left out (and logged)."""
    out: dict[str, str] = {}
    for account in cfg.platforms:
        password = os.environ.get(account.password_env)
        if password is None:
            log.warning(
                "platform %r cannot log in: %s is not set", account.username, account.password_env
            )
            continue
        out[account.username] = password
    return out


class ConnectionIndex:
    """Live connections by (protocol, device id): VIN, ``platform:<user>`` or phone number."""

    def __init__(self) -> None:
        self._by_id: dict[tuple[str, str], Connection] = {}

    def get(self, protocol: str, device_id: str) -> Connection | None:
        """The connection currently serving ``device_id``, if any."""
        return self._by_id.get((protocol, device_id))

    def claim(self, protocol: str, device_id: str, conn: Connection) -> Connection | None:
        """Make ``conn`` the one serving ``device_id``; returns the connection it replaces."""
        key = (protocol, device_id)
        old = self._by_id.get(key)
        self._by_id[key] = conn
        return old if old is not conn else None

    def release(self, protocol: str, device_id: str, conn: Connection) -> None:
        """Forget ``device_id`` if ``conn`` still serves it."""
        key = (protocol, device_id)
        if self._by_id.get(key) is conn:
            del self._by_id[key]

    def __len__(self) -> int:
        return len(self._by_id)


class Listener:
    """One TCP port speaking one protocol (``gbt32960`` or ``jt808``).

    ``pipeline`` makes records durable; ``registry`` answers device lookups; ``index`` is
    shared between listeners when given; ``on_message`` receives the messages the session
    hands on (replies to platform commands); ``platforms`` are the GB/T 32960 platform
    accounts (username -> password, see :func:`platform_passwords`); ``auth_codes`` makes JT/T
    808 authentication codes (tests).
    """

    def __init__(
        self,
        protocol: str,
        cfg: ListenerConfig,
        pipeline: Submitter,
        registry: Registry,
        *,
        index: ConnectionIndex | None = None,
        on_message: MessageHook | None = None,
        platforms: Mapping[str, str] | None = None,
        auth_codes: Callable[[], str] | None = None,
    ) -> None:
        if protocol == GBT32960 and not isinstance(cfg, Gbt32960ListenerConfig):
            raise TypeError("a gbt32960 listener needs a Gbt32960ListenerConfig")
        if protocol == JT808 and not isinstance(cfg, Jt808ListenerConfig):
            raise TypeError("a jt808 listener needs a Jt808ListenerConfig")
        self.protocol = protocol
        self.cfg = cfg
        self.pipeline = pipeline
        self.registry = registry
        self.index = index if index is not None else ConnectionIndex()
        self.on_message = on_message
        self.platforms = dict(platforms or {})
        self.auth_codes = auth_codes
        self.ingest = Ingestor(protocol)
        self.stats = ListenerStats(protocol)
        self.limiter = ConnectionLimiter(cfg.max_connections, cfg.max_connections_per_ip)
        self.connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting (``cfg.port`` 0 picks a free port: see :attr:`port`)."""
        loop = asyncio.get_running_loop()
        tls = ssl_context(self.cfg)
        self._server = await loop.create_server(
            lambda: Connection(self),
            self.cfg.host,
            self.cfg.port,
            backlog=self.cfg.backlog,
            reuse_port=self.cfg.reuse_port or None,
            ssl=tls,
            ssl_handshake_timeout=self.cfg.login_timeout_s if tls else None,
        )

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("listener not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, stop reading, send the acks still in flight (their records are
        being committed: the pipeline must still run), close; abort what is left after
        ``timeout`` (default ``drain_timeout_s``)."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close(s.CLOSE_SHUTDOWN)
        tasks = set(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout or self.cfg.drain_timeout_s)
            for conn in list(self.connections):
                conn.abort()
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _spawn(self, conn: Connection) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(conn.run(), name=f"{self.protocol}-conn")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- per connection ----------------------------------------------------------------------

    def new_session(self, peer: str, now: float) -> Session:
        cfg = self.cfg
        if isinstance(cfg, Gbt32960ListenerConfig):
            return Gbt32960Session(cfg, peer=peer, now=now, platforms=self.platforms)
        return Jt808Session(cfg, peer=peer, now=now, auth_codes=self.auth_codes)

    def new_reader(self) -> gbt.FrameReader | jt.FrameReader:
        if self.protocol == GBT32960:
            return gbt.FrameReader(self.cfg.max_frame_bytes)
        return jt.FrameReader(self.cfg.max_frame_bytes)

    async def lookup(self, lookup: s.Lookup) -> Device:
        if lookup.kind == VEHICLE:
            return await self.registry.vehicle(lookup.key)
        return await self.registry.terminal(lookup.key)


class Connection(asyncio.Protocol):
    """One TCP connection: see the module docstring. ``session`` is its protocol session;
    ``send(frame)`` writes a frame to the peer at once (commands down to trucks)."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.cfg = listener.cfg
        self.protocol = listener.protocol
        self.peer = "?"
        self.session: Session | None = None
        self.close_reason: str | None = None
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._ip: str | None = None  # set once a connection slot was granted
        self._inbox: deque[bytes] = deque()
        self._inbox_bytes = 0
        self._eof = self._lost = self._read_paused = self._write_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._acks: deque[tuple[asyncio.Future[None], bytes | None, float]] = deque()
        self._armed = False
        self._records: list[msgspec.Struct] = []  # of frames processed but not yet submitted
        self._replies: list[tuple[bytes | None, float]] = []
        self._bad = 0
        self._last_byte = self._loop.time()
        self._partial_since: float | None = None
        self._tail: deque[bytes] = deque()  # the last chunks, covering what the reader holds
        self._tail_bytes = 0
        self._close_detail: dict[str, object] = {}
        self._unread = False  # closed with frames left in the reader
        self._reader = listener.new_reader()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, hence no isinstance)
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        ip = str(peername[0]) if peername else "?"
        port = peername[1] if peername else 0
        self.peer = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        stats = self.listener.stats
        refused = self.listener.limiter.acquire(ip)
        if refused is not None:
            stats.refused[refused] = stats.refused.get(refused, 0) + 1
            transport.close()
            return
        self._ip = ip
        stats.connections_open += 1
        stats.connections_total += 1
        self.transport.set_write_buffer_limits(high=self.cfg.write_buffer_bytes)
        self.listener.connections.add(self)
        self.session = self.listener.new_session(self.peer, self._loop.time())
        self.listener._spawn(self)

    def data_received(self, data: bytes) -> None:
        self._inbox.append(data)
        self._inbox_bytes += len(data)
        if self._inbox_bytes >= self.cfg.read_buffer_bytes and not self._read_paused:
            self._pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep the transport open: the acks still in flight are sent

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._wake()
        self._wake_space()
        _resolve(self._drained)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_space()

    # -- public ------------------------------------------------------------------------------

    def send(self, frame: bytes) -> bool:
        """Write ``frame`` to the peer now; False when the connection is closing."""
        t = self.transport
        if t is None or t.is_closing():
            return False
        t.write(frame)
        return True

    def close(self, reason: str, **detail: object) -> None:
        """Stop reading and close once the acks in flight are sent (``reason`` is recorded)."""
        if self.close_reason is None:
            self.close_reason = reason
            self._close_detail = detail
        self._pause_reading()
        self._wake()
        self._wake_space()

    def abort(self) -> None:
        """Close at once, dropping unsent acks."""
        self.close_reason = self.close_reason or s.CLOSE_SHUTDOWN
        self._acks.clear()
        if self.transport is not None:
            self.transport.abort()

    @property
    def device_id(self) -> str | None:
        return self.session.device_id if self.session is not None else None

    # -- the reading task --------------------------------------------------------------------

    async def run(self) -> None:
        reason = s.CLOSE_PEER
        try:
            reason = await self._read_loop()
        except Exception:
            log.exception("%s connection %s failed", self.protocol, self.peer)
            reason = "error"
        finally:
            await self._finish(reason)

    async def _read_loop(self) -> str:
        stats = self.listener.stats
        while True:
            data = await self._next_data()
            if self.close_reason is not None:
                return self.close_reason
            if data is None:
                reason = self._on_timer()
                if reason is not None:
                    return reason
                continue
            if not data:
                return s.CLOSE_PEER
            now = self._last_byte = self._loop.time()
            wall = datetime.now(UTC)
            self._tail.append(data)
            self._tail_bytes += len(data)
            reader = self._reader
            reader.feed(data)
            completed = False
            for item in reader:
                completed = True
                await self._wait_for_space()
                if self.close_reason is not None:
                    self._unread = True  # not acked: the terminal sends these again
                    break
                if isinstance(item, bytes):
                    stats.frames += 1
                    await self._on_frame(item, now, wall)
                else:
                    self._on_bad(item, wall)
            await self._flush()
            buffered = reader.buffered
            while self._tail and self._tail_bytes - len(self._tail[0]) >= buffered:
                self._tail_bytes -= len(self._tail.popleft())
            if not self._mid_frame():
                self._partial_since = None
            elif completed or self._partial_since is None:
                self._partial_since = now

    async def _next_data(self) -> bytes | None:
        """Received bytes; b"" at end of stream or when closing; None when a deadline passed."""
        inbox = self._inbox
        while not inbox:
            if self._eof or self._lost or self.close_reason is not None:
                return b""
            deadline = self._deadline()
            if deadline <= self._loop.time():
                return None
            self._waiter = waiter = self._loop.create_future()
            timer = self._loop.call_at(deadline, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        data = inbox.popleft() if len(inbox) == 1 else b"".join(inbox)
        inbox.clear()
        self._inbox_bytes = 0
        if self._read_paused and self.close_reason is None and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    def _held(self) -> bytes:
        """The bytes the frame reader holds (the end of what was received)."""
        buffered = self._reader.buffered
        return b"".join(self._tail)[-buffered:] if buffered else b""

    def _mid_frame(self) -> bool:
        """True when part of a frame is waiting for the rest. A JT/T 808 reader keeps the
        last closing flag (it may open the next frame): flags alone are not a frame."""
        buffered = self._reader.buffered
        if self.protocol == JT808 and buffered <= 2:
            return bool(self._held().strip(b"\x7e"))
        return buffered > 0

    def _deadline(self) -> float:
        deadline = self._last_byte + self.cfg.idle_timeout_s
        assert self.session is not None
        session = self.session.deadline()
        if session is not None and session < deadline:
            deadline = session
        if self._partial_since is not None:
            deadline = min(deadline, self._partial_since + self.cfg.frame_timeout_s)
        return deadline

    def _on_timer(self) -> str | None:
        now = self._loop.time()
        if now >= self._last_byte + self.cfg.idle_timeout_s:
            return s.CLOSE_IDLE_TIMEOUT
        if (
            self._partial_since is not None
            and now >= self._partial_since + self.cfg.frame_timeout_s
        ):
            return s.CLOSE_SLOW_SENDER
        assert self.session is not None
        out = self.session.on_timer(now, datetime.now(UTC))
        for frame in out.send:
            self.send(frame)
        return out.close

    async def _wait_for_space(self) -> None:
        """Wait while ``max_unacked_frames`` frames wait for durability or the peer does not
        read its replies (reading is paused meanwhile). A peer that reads none of its replies
        for ``idle_timeout_s`` is closed."""
        limit = self.cfg.max_unacked_frames
        if len(self._acks) + len(self._replies) < limit and not self._write_paused:
            return
        await self._flush()
        deadline = self._loop.time() + self.cfg.idle_timeout_s
        while (len(self._acks) >= limit or self._write_paused) and not (
            self._lost or self.close_reason
        ):
            self._space = space = self._loop.create_future()
            timer = self._loop.call_at(deadline, _resolve, space)
            try:
                await space
            finally:
                timer.cancel()
                self._space = None
            if self._write_paused and self._loop.time() >= deadline:
                self.close(s.CLOSE_SLOW_READER)

    # -- frames ------------------------------------------------------------------------------

    async def _on_frame(self, raw: bytes, now: float, wall: datetime) -> None:
        listener, session = self.listener, self.session
        records: list[Any] = listener.ingest.frame(raw, self.peer, wall)
        dead = len(records) == 1 and type(records[0]) is DeadLetter
        message: gbt.Frame | jt.Frame | None = None
        if isinstance(session, Gbt32960Session):
            msg = inbound(raw, decodable=not dead)
            lookup = session.lookup(msg)
            device = await listener.lookup(lookup) if lookup else None
            out = session.receive(msg, now, wall, device)
        else:
            assert session is not None
            if dead:
                out = session.undecodable(raw, now)
            else:
                message = jt.decode_frame(raw)
                lookup = session.lookup(message)
                device = await listener.lookup(lookup) if lookup else None
                out = session.receive(message, now, wall, device)
        await self._apply(out, records, raw, message, wall, now)

    def _on_bad(self, bad: BadFrame, wall: datetime) -> None:
        self.listener.stats.bad_frames += 1
        self._bad += 1
        self._records.append(self.listener.ingest.bad_frame(bad, self.peer, wall))
        self._replies.append((None, self._loop.time()))
        if self._bad > self.cfg.max_bad_frames:
            self.close(s.CLOSE_BAD_FRAMES)

    async def _apply(
        self,
        out: s.Outcome,
        records: list[Any],
        raw: bytes,
        message: gbt.Frame | jt.Frame | None,
        wall: datetime,
        now: float,
    ) -> None:
        listener = self.listener
        if out.bad:
            listener.stats.bad_frames += 1
            self._bad += 1
        if not out.store:
            records = [r for r in records if isinstance(r, _ARCHIVE)]
        elif out.reassembled is not None:
            try:
                for rec in normalize(out.reassembled):
                    rec.received_at = rec.received_at or wall
                    records.append(rec)
            except ProtocolError as exc:  # e.g. a location time that is not a calendar time
                why = f"reassembled message: {exc.message}"
                bad = BadFrame(exc.raw or raw, exc.reason.value, exc.offset, why)
                records.append(listener.ingest.bad_frame(bad, self.peer, wall))
        if out.dead is not None:
            records.append(listener.ingest.bad_frame(out.dead, self.peer, wall))
        if out.annotate:
            for rec in records:
                if type(rec) is SessionEvent:
                    rec.detail.update(out.annotate)
        records.extend(out.events)
        reply = out.reply
        if out.register is not None:
            try:
                await listener.registry.register_terminal(out.register, wall)
            except Exception as exc:
                phone = out.register.phone
                log.warning("%s: registration of %s not stored: %s", self.peer, phone, exc)
                reply = None  # a code that was not stored is never handed out
                records = [r for r in records if isinstance(r, _ARCHIVE)]
                self.close(s.CLOSE_REGISTRY)
        if out.authenticated is not None:
            try:
                await listener.registry.record_auth(out.authenticated, wall)
            except Exception as exc:  # bookkeeping only: the session goes on
                phone = out.authenticated
                log.warning("%s: last_auth_at of %s not stored: %s", self.peer, phone, exc)
        if out.release is not None:
            listener.index.release(self.protocol, out.release, self)
        if out.claim is not None:
            old = listener.index.claim(self.protocol, out.claim, self)
            if old is not None:
                old.close(s.CLOSE_DISPLACED, by=self.peer)
        if out.deliver and listener.on_message is not None:
            self._deliver(raw, message if out.reassembled is None else out.reassembled)
        self._records.extend(records)
        self._replies.append((reply, now))
        for frame in out.send:
            self.send(frame)
        if out.close is not None:
            self.close(out.close)
        if self._bad > self.cfg.max_bad_frames:
            self.close(s.CLOSE_BAD_FRAMES)

    def _deliver(self, raw: bytes, message: gbt.Frame | jt.Frame | None) -> None:
        hook = self.listener.on_message
        assert hook is not None
        try:
            hook(self, message if message is not None else gbt.decode_frame(raw))
        except Exception:
            log.exception("%s: message hook failed", self.peer)

    # -- durability and acks -----------------------------------------------------------------

    async def _flush(self) -> None:
        """Submit the records of the frames processed so far; queue their replies."""
        if not self._replies:
            return
        records, replies = self._records, self._replies
        self._records, self._replies = [], []
        fut = await self.listener.pipeline.submit(records)
        acks = self._acks
        for reply, t0 in replies:
            acks.append((fut, reply, t0))
        self._arm()

    def _arm(self) -> None:
        if not self._armed and self._acks:
            self._armed = True
            self._acks[0][0].add_done_callback(self._on_durable)

    def _on_durable(self, _: asyncio.Future[None]) -> None:
        """Send, in order, every reply whose records are durable."""
        self._armed = False
        acks, stats = self._acks, self.listener.stats
        out: list[bytes] = []
        now = self._loop.time()
        while acks and acks[0][0].done():
            fut, reply, t0 = acks[0]
            if fut.cancelled() or fut.exception() is not None:
                self._not_durable(fut)
                return
            acks.popleft()
            if reply is not None:
                out.append(reply)
                stats.ack_latency.observe(now - t0)
        t = self.transport
        if out and t is not None and not t.is_closing():
            t.write(out[0] if len(out) == 1 else b"".join(out))
            stats.acks_sent += len(out)
        self._wake_space()
        if acks:
            self._arm()
        else:
            _resolve(self._drained)

    def _not_durable(self, fut: asyncio.Future[None]) -> None:
        why = "cancelled" if fut.cancelled() else repr(fut.exception())
        log.warning("%s: records not made durable (%s); closing without ack", self.peer, why)
        self.listener.stats.not_durable += 1
        self.close_reason = self.close_reason or s.CLOSE_NOT_DURABLE
        self.abort()
        self._wake()
        self._wake_space()
        _resolve(self._drained)

    # -- the end -----------------------------------------------------------------------------

    async def _finish(self, reason: str) -> None:
        listener = self.listener
        reason = self.close_reason or reason
        self.close_reason = reason
        self._pause_reading()
        try:
            await self._flush()
            if self._acks and not self._lost:
                self._drained = self._loop.create_future()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained, self.cfg.drain_timeout_s)
            wall = datetime.now(UTC)
            assert self.session is not None
            last: list[msgspec.Struct] = list(
                self.session.closed(reason, wall, **self._close_detail)
            )
            if self._mid_frame() and not self._unread:  # the peer stopped mid-frame
                last.append(self._cut_off(reason, wall))
            if last:
                await listener.pipeline.submit(last)
        except Exception:
            log.exception("%s: closing %s", self.protocol, self.peer)
        finally:
            self._release(reason)

    def _cut_off(self, reason: str, wall: datetime) -> DeadLetter:
        """A dead letter for the frame the reader still holds (connection closed mid-frame)."""
        raw = self._held()
        self.listener.stats.bad_frames += 1
        why = (
            "frame not completed in time" if reason == s.CLOSE_SLOW_SENDER else "connection closed"
        )
        bad = BadFrame(
            raw=raw, reason=Reason.TRUNCATED.value, offset=len(raw), message=f"{why} ({reason})"
        )
        return self.listener.ingest.bad_frame(bad, self.peer, wall)

    def _release(self, reason: str) -> None:
        listener = self.listener
        session = self.session
        if session is not None and session.device_id is not None:
            listener.index.release(self.protocol, session.device_id, self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        listener.connections.discard(self)
        if self._ip is not None:
            listener.limiter.release(self._ip)
            self._ip = None
            listener.stats.connections_open -= 1
            listener.stats.closed[reason] = listener.stats.closed.get(reason, 0) + 1

    # -- helpers -----------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        t = self.transport
        if t is not None and not self._read_paused and not t.is_closing():
            self._read_paused = True
            with contextlib.suppress(RuntimeError):
                t.pause_reading()

    def _wake(self) -> None:
        _resolve(self._waiter)

    def _wake_space(self) -> None:
        _resolve(self._space)


def _resolve(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def listeners_from_config(
    cfg: Config,
    pipeline: Submitter,
    registry: Registry,
    *,
    index: ConnectionIndex | None = None,
    on_message: MessageHook | None = None,
) -> list[Listener]:
    """The enabled listeners of ``[listeners]`` sharing one connection index (not started)."""
    index = index if index is not None else ConnectionIndex()
    out: list[Listener] = []
    gbt_cfg, jt_cfg = cfg.listeners.gbt32960, cfg.listeners.jt808
    if gbt_cfg.enabled:
        out.append(
            Listener(
                GBT32960,
                gbt_cfg,
                pipeline,
                registry,
                index=index,
                on_message=on_message,
                platforms=platform_passwords(gbt_cfg),
            )
        )
    if jt_cfg.enabled:
        out.append(Listener(JT808, jt_cfg, pipeline, registry, index=index, on_message=on_message))
    return out


__all__ = [
    "Connection",
    "ConnectionIndex",
    "Listener",
    "MessageHook",
    "Submitter",
    "listeners_from_config",
    "loop_factory",
    "platform_passwords",
    "ssl_context",
]
