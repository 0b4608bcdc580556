"""Forwarding to one upstream GB/T 32960 platform (a regulator's, or an enterprise or national
platform), with a durable cursor so an upstream outage loses nothing.

One connection at a time: connect (TLS optional), platform login 0x05 and wait for its answer,
then three tasks: the sender reads the selected vehicles' archived frames after the cursor
(:mod:`gateway.forward.archive`), re-encodes them in the upstream's edition when it differs
(:mod:`gateway.forward.convert`), paces them (``max_frames_per_s``) and keeps at most
``window`` unanswered; the receiver matches the upstream's answers to them
(:class:`gateway.forward.gbt_link.AckWindow`); the keep-alive sends a heartbeat 0x07 after
``heartbeat_s`` without sending and drops the link when an answer is ``ack_timeout_s`` late.
Any failure closes the link; the forwarder reconnects with exponential backoff and resends
everything after the last acknowledged frame, in order. On shutdown it stops reading, waits
up to ``close_grace_s`` for outstanding answers, and logs out (0x06).

Delivery is at least once, in archive order. The cursor advances past a frame once the
upstream answered it (or, with ``ack_realtime = false``, once a realtime/reissue frame was
written to the socket), and is saved every ``cursor_save_ms``. Frames sent again after a
reconnect or a restart are therefore at most: the unanswered ones (``window``), the ones
answered but waiting behind an unanswered one, and, after a crash, those answered since the
last save (``max_frames_per_s * cursor_save_ms / 1000``). An upstream that closes cleanly
(its answers first, then FIN) gets every frame exactly once. A frame the upstream refuses (an
answer other than 0x01) is logged and counted (``rejected``) and passed: sending it again would
stall every vehicle behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from datetime import UTC, datetime

import asyncpg

from gateway.codecs import gbt32960 as gbt
from gateway.codecs.common import BadFrame
from gateway.codecs.errors import ProtocolError
from gateway.codecs.gbt32960 import constants as C
from gateway.config import ConfigError
from gateway.forward.archive import GBT32960, Archive, ArchiveRow, Cursor, Page, Position
from gateway.forward.config import GbtUpstream, TlsConfig, secret
from gateway.forward.convert import ConversionError
from gateway.forward.gbt_link import (
    RELAYED_SQL,
    AckWindow,
    Platform,
    Sent,
    beijing_day,
    next_login_serial,
)
from gateway.forward.pacing import Backoff, RateLimiter, sleep_unless
from gateway.forward.stats import ForwarderStats, RateLimitedLog

log = logging.getLogger("silkgate.forward.gbt32960")

_UNANSWERED = frozenset({C.CMD_REALTIME, C.CMD_REISSUE})  # what ack_realtime = false covers


class UpstreamError(Exception):
    """The upstream link failed: closed, refused the login, or stopped answering."""


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class GbtForwarder:
    """One upstream platform; :meth:`run` until :meth:`close`. See the module docstring."""

    kind = GBT32960

    def __init__(
        self,
        cfg: GbtUpstream,
        pool: asyncpg.Pool,
        *,
        page_rows: int = 500,
        poll_interval_s: float = 0.2,
    ) -> None:
        key = f"forward.gbt32960.{cfg.name}.password_env"
        password = secret(cfg.password_env, key)
        if not password.isascii() or len(password) > 20:
            raise ConfigError(f"{key}: the password must be at most 20 ASCII characters")
        self.cfg = cfg
        self.pool = pool
        self.poll_interval_s = poll_interval_s
        self.platform = Platform(
            cfg.version_number, cfg.platform_id or cfg.username, cfg.username, password
        )
        self.archive = Archive(
            cfg.cursor_name, cfg.select, (GBT32960,), page_rows=page_rows, extra_where=RELAYED_SQL
        )
        try:
            self.ssl = tls_context(cfg.tls) if cfg.tls is not None else None
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"forward.gbt32960.{cfg.name}.tls: {exc}") from None
        self.stats = ForwarderStats(cfg.name, self.kind)
        self._closing = asyncio.Event()
        self._changed = asyncio.Event()  # the window moved (or closing): senders re-check
        self._logged_out = asyncio.Event()
        self._window = AckWindow()
        self._limiter = RateLimiter(cfg.max_frames_per_s)
        self._max_entries = cfg.window + page_rows
        self._cursor = Cursor(Position(0, 0), 0)
        self._acked = Position(0, 0)  # every selected frame up to here is done
        self._acked_row: ArchiveRow | None = None
        self._saved = Position(0, 0)
        self._saved_total = 0
        self._last_sent = 0.0
        self._heartbeat_sent: float | None = None
        self._log = RateLimitedLog(log)

    @property
    def name(self) -> str:
        return self.cfg.name

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Load the cursor, then keep a link up and forward until :meth:`close`."""
        if not await self._load():
            return
        stop_saving = asyncio.Event()
        saver = asyncio.create_task(
            self._save_loop(stop_saving), name=f"forward-{self.name}-cursor"
        )
        backoff = Backoff(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
        try:
            while not self._closing.is_set():
                try:
                    await self._session(backoff)
                except Exception as exc:  # every failure of a link means: reconnect
                    self._failed(exc)
                self.stats.connected = False
                if self._closing.is_set():
                    break
                await sleep_unless(self._closing, backoff.next())
        finally:
            stop_saving.set()  # not cancelled: a save in progress completes
            await saver
            await self._save()

    async def close(self) -> None:
        """Ask :meth:`run` to finish: stop reading, wait for answers (``close_grace_s``),
        log out, save the cursor. The caller awaits the task running :meth:`run`."""
        self._closing.set()
        self._changed.set()

    def _failed(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.stats.failures += 1
        self.stats.error(message)
        level = logging.WARNING if self.stats.connected else logging.INFO
        self._log(level, "link", "%s: upstream %s:%d: %s", self.name, *self._address, message)

    @property
    def _address(self) -> tuple[str, int]:
        return self.cfg.host, self.cfg.port

    # -- the cursor --------------------------------------------------------------------------

    async def _load(self) -> bool:
        backoff = Backoff(self.poll_interval_s, 30.0)
        while not self._closing.is_set():
            try:
                async with self.pool.acquire() as conn:
                    self._cursor = await self.archive.load(conn, self.cfg.start)
            except Exception as exc:
                self.stats.error(f"loading the cursor: {exc}")
                self._log(logging.WARNING, "db", "%s: cannot load the cursor: %s", self.name, exc)
                await sleep_unless(self._closing, backoff.next())
                continue
            self._acked = self._saved = self._cursor.position
            self.stats.forwarded_total = self._saved_total = self._cursor.forwarded
            return True
        return False

    async def _save_loop(self, stop: asyncio.Event) -> None:
        while not await sleep_unless(stop, self.cfg.cursor_save_ms / 1000):
            await self._save()

    async def _save(self) -> None:
        position, row, total = self._acked, self._acked_row, self.stats.forwarded_total
        if position == self._saved and total == self._saved_total:
            return
        try:
            async with self.pool.acquire() as conn:
                await self.archive.save(conn, position, total, row)
        except Exception as exc:
            self._log(logging.WARNING, "save", "%s: cannot save the cursor: %s", self.name, exc)
            return
        self._saved, self._saved_total = position, total

    # -- one link ----------------------------------------------------------------------------

    async def _session(self, backoff: Backoff) -> None:
        host, port = self._address
        server_name = (self.cfg.tls.server_name or host) if self.cfg.tls else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self.ssl, server_hostname=server_name),
                self.cfg.connect_timeout_s,
            )
        except TimeoutError:
            raise UpstreamError(f"no connection within {self.cfg.connect_timeout_s:g} s") from None
        try:
            frames = gbt.FrameReader()
            await self._login(reader, writer, frames)
            backoff.reset()
            self.stats.connected = True
            log.info("%s: logged in to %s:%d as platform", self.name, host, port)
            self._window.clear()
            self._logged_out.clear()
            self._heartbeat_sent = None
            self._last_sent = asyncio.get_running_loop().time()
            tasks = [
                asyncio.create_task(self._receive(reader, frames), name=f"forward-{self.name}-rx"),
                asyncio.create_task(self._send(writer), name=f"forward-{self.name}-tx"),
                asyncio.create_task(self._keepalive(writer), name=f"forward-{self.name}-alive"),
            ]
            sender = tasks[1]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            if sender in done and sender.exception() is None:
                return  # closing: the sender logged out (the upstream may have hung up since)
            for task in done:
                if (exc := task.exception()) is not None:
                    raise exc
        finally:
            # The stats keep the oldest frame not delivered: lag_s grows while the link is down.
            self._window.clear()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _login(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: gbt.FrameReader
    ) -> None:
        now = datetime.now(UTC)
        day = beijing_day(now)
        serial = next_login_serial(day, self._cursor.login_day, self._cursor.login_serial)
        async with self.pool.acquire() as conn:
            await self.archive.save_login_serial(conn, day, serial)
        self._cursor = Cursor(self._cursor.position, self._cursor.forwarded, day, serial)
        writer.write(self.platform.login(serial, now))
        await writer.drain()
        try:
            answer = await asyncio.wait_for(
                self._next_answer(reader, frames, C.CMD_PLATFORM_LOGIN), self.cfg.login_timeout_s
            )
        except TimeoutError:
            timeout = self.cfg.login_timeout_s
            raise UpstreamError(f"no answer to the platform login within {timeout:g} s") from None
        if answer.response != C.RESP_SUCCESS:
            raise UpstreamError(f"platform login refused (answer 0x{answer.response:02X})")

    async def _next_answer(
        self, reader: asyncio.StreamReader, frames: gbt.FrameReader, command: int
    ) -> gbt.Frame:
        """Read until the answer to ``command``; frames after it stay in ``frames``."""
        while True:
            while (item := frames.next_event()) is not None:
                frame = self._decode(item)
                if (
                    frame is not None
                    and frame.command == command
                    and frame.response != C.RESP_COMMAND
                ):
                    return frame
            data = await reader.read(65536)
            if not data:
                raise UpstreamError("the upstream closed the connection during the login")
            frames.feed(data)

    def _decode(self, item: bytes | BadFrame) -> gbt.Frame | None:
        if isinstance(item, BadFrame):
            self._log(logging.WARNING, "bad", "%s: bad bytes from upstream: %s", self.name, item)
            return None
        try:
            return gbt.decode_frame(item)
        except ProtocolError as exc:
            self._log(logging.WARNING, "bad", "%s: undecodable upstream frame: %s", self.name, exc)
            return None

    async def _receive(self, reader: asyncio.StreamReader, frames: gbt.FrameReader) -> None:
        while True:
            for item in frames:
                frame = self._decode(item)
                if frame is not None:
                    self._on_frame(frame)
            data = await reader.read(65536)
            if not data:
                raise UpstreamError("the upstream closed the connection")
            frames.feed(data)

    def _on_frame(self, frame: gbt.Frame) -> None:
        command, response = frame.command, frame.response
        if response == C.RESP_COMMAND:
            log.debug("%s: upstream sent command 0x%02X (ignored)", self.name, command)
        elif command == C.CMD_HEARTBEAT:
            self._heartbeat_sent = None
        elif command == C.CMD_PLATFORM_LOGOUT:
            self._logged_out.set()
        elif command in (C.CMD_VEHICLE_LOGIN, C.CMD_REALTIME, C.CMD_REISSUE, C.CMD_VEHICLE_LOGOUT):
            entry = self._window.answer(command, frame.vin)
            if entry is None:
                log.debug("%s: unexpected answer 0x%02X for %s", self.name, command, frame.vin)
                return
            if response != C.RESP_SUCCESS:
                self.stats.rejected += 1
                self._log(
                    logging.WARNING,
                    f"refused-{response}",
                    "%s: the upstream refused frame 0x%02X of %s (answer 0x%02X); passed over",
                    self.name,
                    command,
                    frame.vin,
                    response,
                )
            self._advance()

    def _advance(self) -> None:
        """Move the in-memory cursor over the frames that are done."""
        for entry in self._window.pop_done():
            self._acked = entry.position
            if entry.row is not None:
                self._acked_row = entry.row
                if entry.command:
                    self.stats.forwarded += 1
                    self.stats.forwarded_total += 1
        self._update_pending()
        self._changed.set()

    def _update_pending(self) -> None:
        self.stats.pending = len(self._window)
        row = self._window.oldest_row()
        self.stats.oldest_pending_at = row.received_at if row is not None else None

    async def _room(self) -> bool:
        """Wait until the window has room; False when closing."""
        window = self._window
        while not self._closing.is_set() and (
            window.awaiting >= self.cfg.window or len(window) >= self._max_entries
        ):
            self._changed.clear()
            await self._changed.wait()
        return not self._closing.is_set()

    async def _fetch(self, after: Position, backoff: Backoff) -> Page | None:
        try:
            async with self.pool.acquire() as conn:
                page = await self.archive.fetch(conn, after)
        except Exception as exc:
            self.stats.error(f"reading the archive: {exc}")
            self._log(logging.WARNING, "db", "%s: cannot read the archive: %s", self.name, exc)
            await sleep_unless(self._closing, backoff.next())
            return None
        backoff.reset()
        self.stats.reads += 1
        return page

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        read_from = self._acked
        db_backoff = Backoff(self.poll_interval_s, 30.0)
        while not self._closing.is_set():
            page = await self._fetch(read_from, db_backoff)
            if page is None:
                continue
            for row in page.rows:
                if not await self._room():
                    break
                dropped: list[str] = []
                try:
                    data = self.platform.relay(row, dropped)
                except (ConversionError, ProtocolError) as exc:
                    self._skip(row, exc)
                    read_from = row.position
                    continue
                await self._limiter.acquire()
                command = row.frame[2]
                awaiting = self.cfg.ack_realtime or command not in _UNANSWERED
                now = loop.time()
                entry = Sent(row.position, row, command, row.device_id or "", awaiting, now)
                self._window.add(entry)
                writer.write(data)
                self._last_sent = now
                await writer.drain()
                if not awaiting:
                    self._advance()
                self._update_pending()
                read_from = row.position
            else:
                if page.horizon is not None and page.horizon > read_from:
                    self._window.add(Sent(page.horizon, None))
                    self._advance()
                    read_from = page.horizon
                self.stats.caught_up = page.horizon is not None
                if page.horizon is not None:
                    await sleep_unless(self._closing, self.poll_interval_s)
        await self._finish(writer)

    def _skip(self, row: ArchiveRow, exc: Exception) -> None:
        self.stats.skipped += 1
        self._log(
            logging.WARNING,
            "skip",
            "%s: frame %s of %s cannot be sent as %s: %s; passed over",
            self.name,
            row.frame_id,
            row.device_id,
            self.cfg.version,
            exc,
        )
        self._window.add(Sent(row.position, row))
        self._advance()

    async def _finish(self, writer: asyncio.StreamWriter) -> None:
        """Closing: wait (``close_grace_s``) for the answers still due, then log out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.close_grace_s
        while self._window.awaiting and loop.time() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
        writer.write(self.platform.logout())
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._logged_out.wait(), max(0.0, deadline - loop.time()))
        log.info("%s: logged out from %s:%d", self.name, *self._address)

    async def _keepalive(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        tick = min(1.0, cfg.heartbeat_s / 4, cfg.ack_timeout_s / 4)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            oldest = self._window.oldest_wait()
            if oldest is not None and now - oldest > cfg.ack_timeout_s:
                raise UpstreamError(f"no answer within {cfg.ack_timeout_s:g} s")
            if self._heartbeat_sent is not None:
                if now - self._heartbeat_sent > cfg.ack_timeout_s:
                    raise UpstreamError(f"heartbeat unanswered for {cfg.ack_timeout_s:g} s")
            elif now - self._last_sent >= cfg.heartbeat_s:
                self._heartbeat_sent = self._last_sent = now
                writer.write(self.platform.heartbeat())
                await writer.drain()
