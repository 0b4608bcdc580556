"""One accepted OCPP charger WebSocket: :class:`ChargerConnection`, the message loop between
the connection's :class:`~gateway.ocpp.rpc.RpcConnection`, the central system and the
pipeline, and the :class:`~gateway.ocpp.link.ChargerLink` that commands and the bridge send
CALLs through.

Per received message (one at a time, in order; the next is read when this one is answered):

* every message is archived as a :class:`~gateway.records.RawFrame` (CALLs, and the
  CALLRESULTs / CALLERRORs that answer our CALLs);
* a refused message (:class:`~gateway.ocpp.rpc_events.BadMessage`) becomes a dead letter and
  gets its CALLERROR when the protocol wants one;
* a CALL goes to the bridge's upstream first when the charger is bridged (its answer, if any,
  is the answer), then to ``central.handle``; the records, the raw frame and the dead letters
  of the message's problems are submitted together, and the answer is sent once they are
  durable when the central system says so (``Handled.durable``; a Heartbeat is answered at
  once). A refused CALL (``CallRefused``) gets its CALLERROR; a failure, or records that could
  not be made durable, get InternalError (the charger retries), plus a dead letter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import msgspec
from starlette.websockets import WebSocket

from gateway.adapters.limits import ListenerStats
from gateway.adapters.tcp import Submitter
from gateway.frame_ids import FrameIds
from gateway.ocpp.central import CallRefused, CentralSystem, ChargerSession
from gateway.ocpp.link import CallOutcome
from gateway.ocpp.rpc import RpcConnection
from gateway.ocpp.rpc_events import (
    BadMessage,
    CallAborted,
    Event,
    IncomingCall,
    InvalidResult,
    Unmatched,
)
from gateway.records import DeadLetter, RawFrame

log = logging.getLogger("silkgate.ocpp")

# Why a connection ended (ChargerEvent "disconnect" reasons).
CHARGER_CLOSED: Final = "charger_closed"
CONNECTION_LOST: Final = "connection_lost"
MESSAGE_TOO_BIG: Final = "message_too_big"
DISPLACED: Final = "displaced"
IDLE_TIMEOUT: Final = "idle_timeout"
SHUTDOWN: Final = "shutdown"

ERROR: Final = "error"

ACTIVITY: Final = "silkgate.activity"
"""ASGI scope extension: ``{"last": loop time}`` of the last bytes from the peer, pings and
pongs included (set by the server's WebSocket protocol; absent elsewhere)."""

WIRE: Final = "silkgate.wire"
"""ASGI scope extension: the server's WebSocket protocol (a :class:`Wire`), whose ``receive``
and ``send_text`` the connection uses instead of the ASGI wrappers (absent elsewhere)."""

_CLOSE_REASONS: Final = {1006: CONNECTION_LOST, 1009: MESSAGE_TOO_BIG}
_SHORT_VERSION: Final = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
_INTERNAL_ERROR: Final = "InternalError"
_TRIGGERS: Final = frozenset({"TriggerMessage", "ExtendedTriggerMessage"})


class Wire(Protocol):
    """The WebSocket protocol under the ASGI app (``gateway.adapters.ocpp_ws._WsProtocol``):
    ASGI's ``receive``, and ``send_text(text)`` meaning ``send({"type": "websocket.send",
    "text": text})``."""

    async def receive(self) -> Any: ...

    async def send_text(self, text: str) -> None: ...


class RelayLink(Protocol):
    """The bridge's side of one bridged charger (``gateway.ocpp.bridge.BridgeLink``)."""

    async def relay(self, action: str, request: Any) -> Any | None: ...

    async def close(self) -> None: ...


@dataclass(slots=True, eq=False)
class Shared:
    """What every connection of one server uses."""

    central: CentralSystem
    pipeline: Submitter
    stats: ListenerStats
    ids: FrameIds


def _consume(fut: asyncio.Future[None]) -> None:
    """Retrieve the outcome of a durability future nobody awaits (a failure is logged)."""
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("OCPP records not stored: %s", fut.exception())


class ChargerConnection:
    """One accepted charger (see the module docstring); a ``ChargerLink``.

    ``session`` is the central system's view of the charger; ``bridge`` the bridge's link when
    the charger is relayed upstream. The server runs :meth:`run` until the connection ends,
    then calls :meth:`finish`.
    """

    def __init__(
        self, ws: WebSocket, shared: Shared, session: ChargerSession, rpc: RpcConnection
    ) -> None:
        self._ws = ws
        self._shared = shared
        self.session = session
        self.rpc = rpc
        self.bridge: RelayLink | None = None
        self._loop = asyncio.get_running_loop()
        self._short = _SHORT_VERSION.get(session.version, session.version)
        self.last_rx = self._loop.time()
        extensions = ws.scope.get("extensions") or {}
        activity = extensions.get(ACTIVITY)
        self._activity: dict[str, float] | None = activity if isinstance(activity, dict) else None
        wire: Wire | None = extensions.get(WIRE)
        self._receive: Callable[[], Awaitable[Any]] = ws.receive if wire is None else wire.receive
        self._send_text: Callable[[str], Awaitable[None]] | None = (
            None if wire is None else wire.send_text
        )
        self.busy = False  # a message is being handled
        self.closing = False  # nothing more is read or sent
        self.close_code: int | None = None
        self.disconnect_reason = CHARGER_CLOSED
        self._drain = False  # close once the message being handled is answered
        self._calls: dict[str, asyncio.Future[CallOutcome]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- ChargerLink -------------------------------------------------------------------------

    @property
    def charger_id(self) -> str:
        return self.session.charger_id

    @property
    def version(self) -> str:
        return self.session.version

    @property
    def peer(self) -> str:
        return self.session.peer

    async def call(self, action: str, request: Any, timeout_s: float) -> CallOutcome:
        """Send a CALL and wait for its outcome (see ``ChargerLink.call``). Raises
        ``gateway.ocpp.rpc.CallQueueFull`` when too many CALLs already wait to be sent, and
        ``RpcUsageError`` for an action the version does not have."""
        if self.closing:
            return CallAborted("", action, request, False)
        if action in _TRIGGERS:
            # 2.0.1 B02.FR.09: a station whose boot is Pending may send what it was asked for
            message = getattr(request, "requestedMessage", None)
            if isinstance(message, str):
                self.session.triggered.add(message)
        out = self.rpc.call(action, request, self._loop.time(), timeout_s)
        fut: asyncio.Future[CallOutcome] = self._loop.create_future()
        self._calls[out.unique_id] = fut
        if out.text is not None:
            await self._send(out.text)
        self._arm()
        return await fut

    def last_active(self) -> float:
        """Loop time of the last message, or of any bytes (pongs too) when the server knows."""
        if self._activity is not None:
            return max(self.last_rx, self._activity.get("last", 0.0))
        return self.last_rx

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and handle messages until the connection ends."""
        receive = self._receive
        while not self.closing:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if self.closing:
                    break  # closed meanwhile: not handled, so not answered (the charger retries)
                text = message.get("text")
                raw = (
                    text.encode("utf-8", "surrogatepass")
                    if text is not None
                    else bytes(message.get("bytes") or b"")
                )
                del message, text  # not kept while waiting for the next message
                self.busy = True
                try:
                    await self._on_message(raw)
                except Exception:
                    log.exception("%s: message handling failed", self.charger_id)
                    await self.close(1011, "internal error", ERROR)
                finally:
                    self.busy = False
                del raw
                if self._drain:
                    await self.close(1001, "server shutting down", SHUTDOWN)
            elif kind == "websocket.disconnect":
                code = message.get("code")
                self.close_code = code if isinstance(code, int) else None
                if not self.closing:
                    self.closing = True
                    self.disconnect_reason = _CLOSE_REASONS.get(code or 0, CHARGER_CLOSED)

    async def close(self, code: int, reason: str, why: str) -> None:
        """Close the WebSocket (``code``, ``reason``); ``why`` is the disconnect reason kept."""
        if self.closing:
            return
        self.closing = True
        self.disconnect_reason = why
        self._cancel_timer()
        try:
            await self._ws.close(code, reason)
        except Exception as exc:  # already gone
            log.debug("%s: close: %s", self.charger_id, exc)

    def shutdown(self) -> None:
        """Close with 1001 once the message being handled (if any) is answered."""
        if self.closing:
            return
        if self.busy:
            self._drain = True
        else:
            self.spawn(self.close(1001, "server shutting down", SHUTDOWN))

    def finish(self) -> None:
        """The connection is over: our CALLs still waiting end with CallAborted."""
        self.closing = True
        self._cancel_timer()
        for event in self.rpc.abort():
            self._complete(event)
        for uid, fut in self._calls.items():  # defensive: abort() covers every CALL
            if not fut.done():
                fut.set_result(CallAborted(uid, "", None, True))
        self._calls.clear()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in a task tied to this connection."""
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- receiving ---------------------------------------------------------------------------

    async def _on_message(self, raw: bytes) -> None:
        shared = self._shared
        stats = shared.stats
        now = self._loop.time()
        self.last_rx = now
        received_at = datetime.now(UTC)
        events = self.rpc.receive_text(raw, now)
        stats.frames += 1
        archive: list[msgspec.Struct] = [
            RawFrame(
                frame_id=shared.ids.next(),
                received_at=received_at,
                peer=self.session.peer,
                protocol=self.session.version,
                frame=raw,
                version=self._short,
                device_id=self.session.charger_id,
            )
        ]
        call: IncomingCall | None = None
        for event in events:
            if isinstance(event, IncomingCall):
                call = event
            elif isinstance(event, BadMessage):
                stats.bad_frames += 1
                archive.append(self._dead_letter(event.reason, event.description, raw, received_at))
                if event.reply is not None:
                    await self._send(event.reply)
            elif isinstance(event, Unmatched):
                log.debug("%s: unmatched answer %s", self.charger_id, event)
            else:  # the end of one of our CALLs
                if isinstance(event, InvalidResult):
                    stats.bad_frames += 1
                    archive.append(
                        self._dead_letter(
                            "invalid_result", event.description or event.code, raw, received_at
                        )
                    )
                self._complete(event)
        if call is not None:
            await self._on_call(call, archive, raw, received_at, now)
        else:
            await self._submit(archive)
        if not self.closing:
            text = self.rpc.next_outgoing()
            if text is not None:
                await self._send(text)
            self._arm()

    async def _on_call(
        self,
        call: IncomingCall,
        archive: list[msgspec.Struct],
        raw: bytes,
        received_at: datetime,
        started: float,
    ) -> None:
        shared = self._shared
        uid, action = call.unique_id, call.action
        calls = shared.stats.calls
        calls[action] = calls.get(action, 0) + 1
        answer: Any = None
        if self.bridge is not None:
            try:
                answer = await self.bridge.relay(action, call.payload)
            except Exception:
                log.exception("%s: bridge relay of %s failed", self.charger_id, action)
        response: Any = None
        durable = False
        error: tuple[str, str, dict[str, Any] | None] | None = None
        try:
            handled = await shared.central.handle(
                self.session, action, call.payload, received_at, answer
            )
        except CallRefused as exc:
            error = (exc.code, exc.description, exc.details)
        except Exception as exc:
            log.exception("%s: handling %s failed", self.charger_id, action)
            error = (_INTERNAL_ERROR, f"{action} could not be processed; retry later", None)
            archive.append(
                self._dead_letter(
                    "handler_failure",
                    f"{action}: {type(exc).__name__}: {exc}",
                    raw,
                    received_at,
                )
            )
        else:
            response, durable = handled.response, handled.durable
            archive.extend(handled.records)
            for problem in handled.problems:
                archive.append(self._dead_letter(problem.reason, problem.message, raw, received_at))
        try:
            fut = await shared.pipeline.submit(archive)
            if durable:
                await fut
            else:
                fut.add_done_callback(_consume)
        except Exception as exc:
            log.warning("%s: %s not stored: %s", self.charger_id, action, exc)
            if durable:
                error = (_INTERNAL_ERROR, f"{action} could not be stored; retry later", None)
        if error is None:
            try:
                reply = self.rpc.answer(uid, response)
            except Exception:
                log.exception("%s: the answer to %s could not be encoded", self.charger_id, action)
                reply = self.rpc.answer_error(
                    uid, _INTERNAL_ERROR, "the answer could not be encoded"
                )
        else:
            reply = self.rpc.answer_error(uid, *error)
        if await self._send(reply):
            shared.stats.acks_sent += 1
            shared.stats.ack_latency.observe(self._loop.time() - started)

    async def _submit(self, records: list[msgspec.Struct]) -> None:
        """Archive without waiting for durability."""
        try:
            fut = await self._shared.pipeline.submit(records)
        except Exception as exc:
            log.warning("%s: frame not archived: %s", self.charger_id, exc)
            return
        fut.add_done_callback(_consume)

    def _dead_letter(
        self, reason: str, description: str, raw: bytes, received_at: datetime
    ) -> DeadLetter:
        counts = self._shared.stats.dead_letters
        counts[reason] = counts.get(reason, 0) + 1
        return DeadLetter(
            frame_id=self._shared.ids.next(),
            received_at=received_at,
            peer=self.session.peer,
            protocol=self.session.version,
            reason=reason,
            message=description,
            raw=raw,
            device_id=self.session.charger_id,
        )

    # -- sending and our CALLs ---------------------------------------------------------------

    async def _send(self, text: str) -> bool:
        """Send one text message; False when the connection is closed or closing."""
        if self.closing:
            return False
        try:
            if self._send_text is not None:
                await self._send_text(text)
            else:
                await self._ws.send({"type": "websocket.send", "text": text})
        except Exception as exc:  # the peer is gone (ClientDisconnected, closed state)
            log.debug("%s: send failed: %s", self.charger_id, exc)
            return False
        return True

    def _complete(self, event: Event) -> None:
        fut = self._calls.pop(getattr(event, "unique_id", ""), None)
        if fut is not None and not fut.done():
            fut.set_result(event)  # type: ignore[arg-type]

    def _arm(self) -> None:
        """Keep a timer at the RPC layer's next deadline."""
        deadline = self.rpc.deadline()
        timer = self._timer
        if timer is not None:
            if deadline == self._timer_at:
                return
            timer.cancel()
            self._timer = None
        if deadline is not None and not self.closing:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        # call_at may fire a hair early (clock resolution): the deadline itself is due
        for event in self.rpc.on_timer(max(self._loop.time(), self._timer_at)):
            self._complete(event)
        text = self.rpc.next_outgoing()
        if text is not None:
            self.spawn(self._send(text))
        self._arm()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
