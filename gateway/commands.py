"""Commands down to trucks: the Python API the REST API calls.

:class:`Commands` sends GB/T 32960 parameter queries / sets / terminal control and JT/T 808
platform commands over the live TCP connections (``ConnectionIndex``), waits for the terminal's
answer, and stores every command with its outcome in the ``commands`` table (migration 0007).
It is the listeners' message hook::

    commands = Commands(index, pool, cfg.commands)
    listeners = listeners_from_config(cfg, pipeline, registry, index=index,
                                      on_message=commands.on_message)
    result = await commands.set_parameters(vin, {0x09: 20})   # CommandResult

Correlation with the answer:

* JT/T 808: by (phone, reply serial, reply message id). Each command carries the session's next
  platform serial; the terminal's 0x0001 names that serial and the message id (0x0104, the
  parameter answer, names the serial). Any number of commands may be outstanding per terminal.
* GB/T 32960 has no serial: the answer repeats the command id (0x80 / 0x81 / 0x82) and the
  VIN. So one command per (VIN, command id) is outstanding at a time; a second one of the same
  kind is **queued** behind it (not refused) and sent when the first is answered or timed out.
  Its time limit counts from the call, so a command still queued when its time runs out ends as
  ``timeout`` with ``sent_at`` None and was never sent.

Every call takes a ``timeout_s`` (default ``CommandsConfig.timeout_s``). A device that is not
connected gets ``offline`` at once: commands are not kept for devices that are offline (they
are usually obsolete by the time a truck comes back; the caller decides whether to retry).
An answer arriving on another connection than the command's (the terminal reconnected), or
after the time limit, is not matched (counted in :attr:`Commands.unmatched`, logged).
Bad requests raise :class:`CommandError` before anything is sent or stored; a database error
when inserting the row propagates (no command is sent that is not recorded).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from gateway import commands_gbt as cg
from gateway import commands_jt as cj
from gateway.adapters.gbt32960_session import Gbt32960Session
from gateway.adapters.jt808_session import Jt808Session, peek_header
from gateway.adapters.session import State
from gateway.adapters.tcp import Connection, ConnectionIndex
from gateway.codecs import gbt32960 as gbt
from gateway.codecs import jt808 as jt
from gateway.codecs.errors import ProtocolError
from gateway.codecs.gbt32960 import constants as gc
from gateway.commands_store import CommandStore
from gateway.commands_types import PENDING, CommandError, CommandResult, Json, Status
from gateway.config import CommandsConfig

log = logging.getLogger("silkgate.commands")

_Reply = tuple[gbt.Frame | jt.Frame, datetime]
_Key = tuple[str, str, int]  # (protocol, device id, JT/T serial or GB/T command id)


@dataclass(slots=True, eq=False)
class _Waiter:
    conn: Connection
    msg_id: int  # the id sent: a JT/T 808 0x0001 must name it
    answers: frozenset[int]  # JT/T 808 message ids that answer it (empty for GB/T)
    future: asyncio.Future[_Reply]


@dataclass(slots=True, eq=False)
class _Turn:
    """The queue of GB/T 32960 commands of one (VIN, command id)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Commands:
    """Commands down to trucks (see the module docstring). ``clock`` gives the UTC wall time
    stamped on commands (tests); time limits use the event loop's monotonic clock."""

    def __init__(
        self,
        index: ConnectionIndex,
        pool: asyncpg.Pool,
        config: CommandsConfig | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.index = index
        self.config = config or CommandsConfig()
        self.store = CommandStore(pool)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._waiting: dict[_Key, _Waiter] = {}
        self._turns: dict[tuple[str, int], _Turn] = {}
        self._pending = 0
        self.unmatched = 0  # answers no command was waiting for
        self.counts: dict[str, int] = {}  # commands finished, by status

    @property
    def pending(self) -> int:
        """Commands sent or queued, not yet finished."""
        return self._pending

    # -- GB/T 32960 --------------------------------------------------------------------------

    async def query_parameters(
        self, vin: str, ids: Iterable[int | str], *, timeout_s: float | None = None
    ) -> CommandResult:
        """0x80 parameter query; ``reply["params"]`` maps ``"0x01"``... to the values."""
        return await self._gbt(vin, cg.query(ids), timeout_s)

    async def set_parameters(
        self, vin: str, values: Mapping[Any, Json], *, timeout_s: float | None = None
    ) -> CommandResult:
        """0x81 parameter set, ``{id: value}``: ids as ints or ``"0x09"`` strings, values as
        :mod:`gateway.commands_gbt` says (ints; text for the domains)."""
        return await self._gbt(vin, cg.set_values(values), timeout_s)

    async def control(
        self,
        vin: str,
        command: int | str,
        params: Mapping[str, Json] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """0x82 terminal control: a command word or name (``reset``, ``warning``, ...) and its
        parameters (:func:`gateway.commands_gbt.control`)."""
        return await self._gbt(vin, cg.control(command, params), timeout_s)

    # -- JT/T 808 ----------------------------------------------------------------------------

    async def jt_set_parameters(
        self, phone: str, values: Mapping[Any, Json], *, timeout_s: float | None = None
    ) -> CommandResult:
        """0x8103, ``{id: value}`` (ids as ints, ``"0x0029"`` strings or ``PARAM_IDS`` names;
        values typed by ``gateway.codecs.jt808.params``); answered by 0x0001."""
        return await self._jt(phone, cj.set_values(values), timeout_s)

    async def jt_query_parameters(
        self, phone: str, ids: Iterable[int | str] | None = None, *, timeout_s: float | None = None
    ) -> CommandResult:
        """0x8104 (all, ``ids`` None) or 0x8106 (those ids); answered by 0x0104, whose values
        are in ``reply["params"]``."""
        return await self._jt(phone, cj.query(ids), timeout_s)

    async def jt_control(
        self,
        phone: str,
        command: int | str,
        params: Sequence[str] = (),
        *,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """0x8105 terminal control: a command word or name (``reset``, ``close_data``, ...)."""
        return await self._jt(phone, cj.control(command, params), timeout_s)

    async def jt_text(
        self,
        phone: str,
        text: str,
        flags: int = jt.constants.TEXT_FLAG_DISPLAY,
        *,
        text_type: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """0x8300 text message (``flags``: ``TEXT_FLAG_*``; ``text_type``: 2019 only)."""
        return await self._jt(phone, cj.text(text, flags, text_type), timeout_s)

    async def jt_send(
        self,
        phone: str,
        msg_id: int,
        body: jt.Body | bytes | Mapping[str, str],
        *,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Any platform message (a typed body, or raw bytes / ``{"hex": ...}``) answered by
        a 0x0001 general response."""
        return await self._jt(phone, cj.send(msg_id, body), timeout_s)

    # -- stored commands ---------------------------------------------------------------------

    async def get(self, command_id: uuid.UUID) -> CommandResult | None:
        """A stored command (``status`` ``"pending"`` while it waits)."""
        return await self.store.get(command_id)

    async def history(self, device_id: str, limit: int = 50) -> list[CommandResult]:
        """A device's latest commands, newest first."""
        return await self.store.history(device_id, limit)

    # -- the listeners' message hook ---------------------------------------------------------

    def on_message(self, conn: Connection, message: gbt.Frame | jt.Frame) -> None:
        """Match a terminal's answer with the command waiting for it (the listeners'
        ``on_message`` hook; messages that answer nothing are counted and dropped)."""
        waiter: _Waiter | None = None
        key: _Key
        if isinstance(message, gbt.Frame):
            if message.response == gc.RESP_COMMAND:
                return  # a terminal's own command, not an answer
            key = (cg.PROTOCOL, message.vin, message.command)
            waiter = self._waiting.get(key)
        else:
            body = message.body
            if isinstance(body, jt.TerminalGeneralResponse):
                serial, named = body.reply_serial, body.reply_msg_id
            elif isinstance(body, jt.QueryParamsResponse):
                serial, named = body.reply_serial, None
            else:
                return
            key = (cj.PROTOCOL, message.phone, serial)
            waiter = self._waiting.get(key)
            if waiter is not None and (
                message.msg_id not in waiter.answers or named not in (None, waiter.msg_id)
            ):
                waiter = None
        if waiter is None or waiter.conn is not conn or waiter.future.done():
            self.unmatched += 1
            log.debug("%s %s: answer matches no waiting command %s", key[0], key[1], key)
            return
        waiter.future.set_result((message, self._clock()))

    # -- GB/T 32960 flow ---------------------------------------------------------------------

    def connected(self, protocol: str, device: str) -> bool:
        """True when the device is connected to this process and ready for commands."""
        if protocol == cg.PROTOCOL:
            return self._gbt_conn(device) is not None
        return self._jt_conn(device) is not None

    def _gbt_conn(self, vin: str) -> tuple[Connection, Gbt32960Session] | None:
        conn = self.index.get(cg.PROTOCOL, vin)
        if conn is None:
            return None
        session = conn.session
        if (
            not isinstance(session, Gbt32960Session)
            or session.state is not State.VEHICLE
            or session.version is None
        ):
            return None
        return conn, session

    async def _gbt(self, vin: str, req: cg.GbtRequest, timeout_s: float | None) -> CommandResult:
        timeout = self._timeout(timeout_s)
        deadline = asyncio.get_running_loop().time() + timeout
        base = self._new(vin, cg.PROTOCOL, req.name, req.request)
        live = self._gbt_conn(vin)
        if live is None:
            return await self._offline(base)
        cg.encode(req, vin, live[1].version or gc.V2016, base.created_at)  # validates
        self._reserve()
        try:
            await self.store.insert(base)
            return await self._finish(base, self._gbt_queued(base, req, deadline, timeout))
        finally:
            self._pending -= 1

    async def _gbt_queued(
        self, base: CommandResult, req: cg.GbtRequest, deadline: float, timeout: float
    ) -> CommandResult:
        key = (base.device, req.command)
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.users += 1
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await turn.lock.acquire()
            except TimeoutError:
                why = f"not sent: an earlier 0x{req.command:02X} to this VIN was still waiting"
                return _with(base, "timeout", error=why)
            try:
                live = self._gbt_conn(base.device)
                if live is None:  # went away while queued
                    return _with(base, "offline", error="not connected")
                conn, session = live
                try:
                    frame = cg.encode(req, base.device, session.version or gc.V2016, self._clock())
                except CommandError as exc:  # reconnected in the other edition
                    return _with(base, "error", error=str(exc))
                waiter = _Waiter(conn, req.command, frozenset(), _future())
                wait_key = (cg.PROTOCOL, base.device, req.command)
                return await self._send_and_wait(
                    base, waiter, wait_key, frame, deadline, timeout, cg.interpret
                )
            finally:
                turn.lock.release()
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[key]

    # -- JT/T 808 flow -----------------------------------------------------------------------

    def _jt_conn(self, phone: str) -> tuple[Connection, Jt808Session] | None:
        """The connection of a phone number as the terminal sends it (12 BCD digits in 2013,
        20 in 2019) or without its leading zeros."""
        for candidate in dict.fromkeys((phone, phone.rjust(12, "0"), phone.rjust(20, "0"))):
            conn = self.index.get(cj.PROTOCOL, candidate)
            session = conn.session if conn is not None else None
            if isinstance(session, Jt808Session) and session.state is State.AUTHENTICATED:
                assert conn is not None
                return conn, session
        return None

    async def _jt(self, phone: str, req: cj.JtRequest, timeout_s: float | None) -> CommandResult:
        timeout = self._timeout(timeout_s)
        deadline = asyncio.get_running_loop().time() + timeout
        live = self._jt_conn(phone)
        if live is None:
            return await self._offline(self._new(phone, cj.PROTOCOL, req.name, req.request))
        conn, session = live
        device = session.device_id or phone
        self._reserve()
        try:
            try:
                frame = session.command(req.msg_id, req.body)
            except ProtocolError as exc:
                raise CommandError(f"{req.name}: {exc.message}") from None
            except RuntimeError:  # no longer authenticated
                return await self._offline(self._new(device, cj.PROTOCOL, req.name, req.request))
            header = peek_header(frame)
            assert header is not None  # a frame we just encoded
            request = {**req.request, "serial": header.serial}
            base = self._new(device, cj.PROTOCOL, req.name, request)
            await self.store.insert(base)
            waiter = _Waiter(conn, req.msg_id, req.answers, _future())
            key = (cj.PROTOCOL, device, header.serial)
            flow = self._send_and_wait(base, waiter, key, frame, deadline, timeout, cj.interpret)
            return await self._finish(base, flow)
        finally:
            self._pending -= 1

    # -- shared ------------------------------------------------------------------------------

    async def _send_and_wait(
        self,
        base: CommandResult,
        waiter: _Waiter,
        key: _Key,
        frame: bytes,
        deadline: float,
        timeout: float,
        interpret: Callable[..., tuple[Status, dict[str, Json]]],
    ) -> CommandResult:
        self._waiting[key] = waiter
        try:
            sent_at = self._clock()
            if not waiter.conn.send(frame):
                return _with(base, "error", error="the connection is closing")
            try:
                async with asyncio.timeout_at(deadline):
                    message, replied_at = await waiter.future
            except TimeoutError:
                why = f"no answer within {timeout:g} s"
                return _with(base, "timeout", sent_at=sent_at, error=why)
            try:
                status, reply = interpret(message)
            except Exception as exc:  # an answer we cannot read: keep the command's record
                log.exception("%s %s: unreadable answer", base.protocol, base.device)
                return _with(base, "error", sent_at=sent_at, replied_at=replied_at, error=repr(exc))
            return _with(base, status, reply=reply, sent_at=sent_at, replied_at=replied_at)
        finally:
            if self._waiting.get(key) is waiter:
                del self._waiting[key]

    async def _finish(self, base: CommandResult, flow: Awaitable[CommandResult]) -> CommandResult:
        """Run a command's flow and store its outcome (a caller that gives up leaves the row
        as ``error``: cancelled)."""
        try:
            result = await flow
        except asyncio.CancelledError:
            await self._update(_with(base, "error", error="cancelled"))
            raise
        await self._update(result)
        return result

    async def _update(self, result: CommandResult) -> None:
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        try:
            await self.store.update(result)
        except Exception as exc:  # the command happened: report it even if its row is stale
            log.warning("command %s: outcome %s not stored: %r", result.id, result.status, exc)

    async def _offline(self, base: CommandResult) -> CommandResult:
        result = _with(base, "offline", error="not connected")
        self.counts["offline"] = self.counts.get("offline", 0) + 1
        await self.store.insert(result)
        return result

    def _new(
        self, device: str, protocol: str, name: str, request: dict[str, Json]
    ) -> CommandResult:
        return CommandResult(
            id=uuid.uuid4(),
            device=device,
            protocol=protocol,
            command=name,
            request=request,
            status=PENDING,
            created_at=self._clock(),
        )

    def _timeout(self, timeout_s: float | None) -> float:
        timeout = self.config.timeout_s if timeout_s is None else timeout_s
        if isinstance(timeout, bool) or not (timeout > 0 and math.isfinite(timeout)):
            raise CommandError(f"timeout_s must be a positive number, not {timeout_s!r}")
        return float(timeout)

    def _reserve(self) -> None:
        if self._pending >= self.config.max_pending:
            raise CommandError(
                f"{self._pending} commands are waiting for answers (commands.max_pending)"
            )
        self._pending += 1


def _future() -> asyncio.Future[_Reply]:
    return asyncio.get_running_loop().create_future()


def _with(base: CommandResult, status: Status, **changes: object) -> CommandResult:
    return msgspec.structs.replace(base, status=status, **changes)


__all__ = [
    "PENDING",
    "CommandError",
    "CommandResult",
    "Commands",
    "CommandsConfig",
    "Status",
]
