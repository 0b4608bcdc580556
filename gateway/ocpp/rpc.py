"""The OCPP-J RPC layer of one charger connection (1.6 and 2.0.1; sans-IO).

Feed it each WebSocket text message with :meth:`RpcConnection.receive_text` and get events
(:mod:`gateway.ocpp.rpc_events`); answer incoming CALLs with :meth:`~RpcConnection.answer` /
:meth:`~RpcConnection.answer_error`; send the central system's own CALLs with
:meth:`~RpcConnection.call`. No I/O and no clock: times are the ``now`` values passed in
(monotonic seconds), and the connection calls :meth:`~RpcConnection.on_timer` when
:meth:`~RpcConnection.deadline` has passed.

Payloads are decoded and encoded by a :class:`PayloadCodec` given to the constructor (the
generated OCPP message Structs in production, a small one in tests): this layer reads only
the outer array (:mod:`gateway.ocpp.rpc_frames`), once.

One outstanding CALL per direction (OCPP-J 1.6 4.1.1, 2.0.1 part 4 4.1.1):

- ours: :meth:`~RpcConnection.call` sends at once when nothing is outstanding, else queues
  (bounded). A CALL is over when its CALLRESULT / CALLERROR arrives (matched by id) or its
  deadline passes; then :meth:`~RpcConnection.next_outgoing` hands out the next queued CALL.
  The connection must call it after every :meth:`~RpcConnection.receive_text` and
  :meth:`~RpcConnection.on_timer`.
- the charger's: it should not send a CALL before its previous one is answered. When it does,
  every CALL is still reported, in receive order, and the connection answers them in that order
  (it handles one at a time). At most ``max_open_calls`` may wait for an answer; more are
  refused with GenericError. A CALL reusing the id of one still unanswered is not answered
  again (the pending answer carries that id): it is reported as a BadMessage without reply.

What each malformed message gets, per version: docs/ocpp.md, section "RPC layer".
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Collection
from typing import Any, Final, NamedTuple, Protocol

from gateway.ocpp import rpc_errors as errs
from gateway.ocpp import rpc_frames as frames
from gateway.ocpp.rpc_events import (
    BadMessage,
    CallAborted,
    CallError,
    CallResult,
    CallTimeout,
    Event,
    IncomingCall,
    InvalidResult,
    Unmatched,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "BadMessage",
    "CallAborted",
    "CallError",
    "CallQueueFull",
    "CallResult",
    "CallTimeout",
    "Event",
    "IncomingCall",
    "InvalidResult",
    "OutgoingCall",
    "PayloadCodec",
    "RpcConnection",
    "RpcUsageError",
    "Unmatched",
]

DEFAULT_MAX_MESSAGE_BYTES: Final = 65536
DEFAULT_MAX_OPEN_CALLS: Final = 16
DEFAULT_MAX_QUEUED_CALLS: Final = 32
_RECENT_TIMEOUTS: Final = 32  # ids of timed-out CALLs remembered to flag late answers


class PayloadCodec(Protocol):
    """Decodes and encodes OCPP payloads (the JSON objects inside frames).

    ``version`` is ``"ocpp1.6"`` or ``"ocpp2.0.1"`` (equal to ``gateway.ocpp.messages.OcppVersion``
    members, which are StrEnums). A payload the codec refuses raises an exception
    with ``code`` (an OCPP error code, either version's spelling), ``description`` and
    ``details`` attributes (``gateway.ocpp.messages.PayloadError``); any other exception is
    taken for a codec failure and answered with InternalError.
    """

    def known_action(self, version: str, action: str) -> bool:
        """Whether ``action`` is an action of ``version`` (in either direction)."""
        ...

    def decode_request(self, version: str, action: str, payload: bytes) -> Any: ...

    def decode_response(self, version: str, action: str, payload: bytes) -> Any: ...

    def encode(self, struct: Any) -> bytes:
        """The JSON object of a request or response Struct."""
        ...


class RpcUsageError(Exception):
    """The connection used the RPC layer wrongly (a local bug, never caused by the peer):
    answering an id that is not waiting for an answer, calling an unknown action."""


class CallQueueFull(RpcUsageError):
    """:meth:`RpcConnection.call` while ``max_queued_calls`` CALLs already wait."""


class OutgoingCall(NamedTuple):
    """A CALL of ours: its id, and its text when it is to be sent now (None: queued)."""

    unique_id: str
    text: str | None


class _Pending(NamedTuple):
    unique_id: str
    action: str
    request: Any
    text: str
    deadline: float


class RpcConnection:
    """The RPC state of one connection (see the module docstring).

    ``supported``: the actions this central system answers (others known to the codec get
    NotSupported); None: every action the codec knows. ``id_prefix`` starts the ids of our
    CALLs (default: 4 random hex digits and ``-``; ids are ``<prefix><counter>``).
    """

    def __init__(
        self,
        version: str,
        codec: PayloadCodec,
        *,
        supported: Collection[str] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_open_calls: int = DEFAULT_MAX_OPEN_CALLS,
        max_queued_calls: int = DEFAULT_MAX_QUEUED_CALLS,
        id_prefix: str | None = None,
    ) -> None:
        self.version = errs.normalize_version(version)
        self.codec = codec
        self.supported = frozenset(supported) if supported is not None else None
        if max_message_bytes < 16 or max_open_calls < 1 or max_queued_calls < 0:
            raise ValueError("max_message_bytes >= 16, max_open_calls >= 1, max_queued_calls >= 0")
        self.max_message_bytes = max_message_bytes
        self.max_open_calls = max_open_calls
        self.max_queued_calls = max_queued_calls
        prefix = secrets.token_hex(2) + "-" if id_prefix is None else id_prefix
        if len(prefix) > 16:
            raise ValueError("id_prefix is longer than 16 characters")
        self._prefix = prefix
        self._counter = 0
        self._open: dict[str, str] = {}  # the charger's CALLs awaiting our answer: id -> action
        self._outstanding: _Pending | None = None
        # Lists, and the timed-out ids made on first use: an empty deque takes 700 bytes, and
        # most connections never queue or time out a CALL.
        self._queue: list[_Pending] = []
        self._timed_out: deque[str] | None = None

    # -- state -------------------------------------------------------------------------------

    @property
    def open_calls(self) -> tuple[str, ...]:
        """Ids of the charger's CALLs waiting for our answer, oldest first."""
        return tuple(self._open)

    @property
    def outstanding(self) -> str | None:
        """Id of our CALL waiting for the charger's answer."""
        return self._outstanding.unique_id if self._outstanding else None

    @property
    def queued(self) -> int:
        """Our CALLs waiting to be sent."""
        return len(self._queue)

    # -- input -------------------------------------------------------------------------------

    def receive_text(self, text: str | bytes, now: float) -> list[Event]:
        """Handle one received message; always at least one event. Deadlines up to ``now``
        expire first, so an answer arriving after its CALL's deadline is ``late``."""
        events = self._expire(now)
        frame = frames.parse(text, self.max_message_bytes)
        if type(frame) is frames.CallFrame:
            events.append(self._on_call(frame))
        elif type(frame) is frames.ResultFrame:
            events.append(self._on_result(frame))
        elif type(frame) is frames.ErrorFrame:
            events.append(self._on_error(frame))
        else:
            assert type(frame) is frames.Malformed
            events.append(self._on_malformed(frame))
        return events

    def _on_call(self, frame: frames.CallFrame) -> Event:
        uid, action = frame.unique_id, frame.action
        if uid in self._open:
            return BadMessage(
                "duplicate_id", f"CALL {uid} is still being answered", uid, None, None
            )
        if len(self._open) >= self.max_open_calls:
            return self._refuse(
                "too_many_calls",
                uid,
                errs.GENERIC_ERROR,
                f"{len(self._open)} CALLs are still unanswered; send one at a time",
            )
        if not self.codec.known_action(self.version, action):
            return self._refuse(
                "unknown_action", uid, errs.NOT_IMPLEMENTED, f"unknown action {action}"
            )
        if self.supported is not None and action not in self.supported:
            return self._refuse(
                "unsupported_action", uid, errs.NOT_SUPPORTED, f"{action} is not supported"
            )
        try:
            payload = self.codec.decode_request(self.version, action, frame.payload)
        except Exception as exc:
            code, description, details, error = self._payload_fault(exc)
            reason = "payload" if error is None else "codec_failure"
            return self._refuse(reason, uid, code, description, details, error)
        self._open[uid] = action
        return IncomingCall(uid, action, payload)

    def _refuse(
        self,
        reason: str,
        uid: str,
        code: str,
        description: str,
        details: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> BadMessage:
        code = errs.code_for(self.version, code)
        reply = frames.encode_error(uid, code, description, details)
        return BadMessage(reason, description, uid, code, reply, details or {}, error)

    def _payload_fault(
        self, exc: Exception
    ) -> tuple[str, str, dict[str, Any], BaseException | None]:
        """code, description, details, error of a codec exception (error: a codec failure)."""
        code = getattr(exc, "code", None)
        if isinstance(code, str):
            description = getattr(exc, "description", None)
            details = getattr(exc, "details", None)
            return (
                errs.code_for(self.version, code),
                description if isinstance(description, str) else str(exc),
                details if isinstance(details, dict) else {},
                None,
            )
        return errs.INTERNAL_ERROR, f"payload codec failed: {type(exc).__name__}", {}, exc

    def _on_result(self, frame: frames.ResultFrame) -> Event:
        pending = self._take(frame.unique_id)
        if pending is None:
            return Unmatched(frame.unique_id, frames.CALLRESULT, self._late(frame.unique_id))
        try:
            payload = self.codec.decode_response(self.version, pending.action, frame.payload)
        except Exception as exc:
            code, description, details, error = self._payload_fault(exc)
            return InvalidResult(
                pending.unique_id,
                pending.action,
                code,
                description,
                pending.request,
                details,
                error,
            )
        return CallResult(pending.unique_id, pending.action, payload, pending.request)

    def _on_error(self, frame: frames.ErrorFrame) -> Event:
        uid = frame.unique_id
        pending = self._take(uid)
        if pending is None and uid == frames.UNREADABLE_ID and self._outstanding is not None:
            pending = self._take(self._outstanding.unique_id)
        if pending is None:
            return Unmatched(uid, frames.CALLERROR, self._late(uid), frame.code, frame.description)
        return CallError(
            pending.unique_id,
            pending.action,
            frame.code,
            frame.description,
            frame.details,
            pending.request,
        )

    def _on_malformed(self, m: frames.Malformed) -> Event:
        if m.message_type in (frames.CALLRESULT, frames.CALLERROR):
            # Never answered (there is no answer to an answer before OCPP 2.1), but when it
            # carries the id of our outstanding CALL, that CALL is over.
            pending = self._take(m.unique_id) if m.unique_id is not None else None
            if pending is not None:
                return InvalidResult(
                    pending.unique_id,
                    pending.action,
                    errs.format_code(self.version),
                    m.description,
                    pending.request,
                )
            return BadMessage(m.reason, m.description, m.unique_id, None, None)
        code = errs.malformed_code(self.version, m.reason, m.unique_id is not None)
        if code is None:
            return BadMessage(m.reason, m.description, m.unique_id, None, None)
        uid = m.unique_id if m.unique_id is not None else frames.UNREADABLE_ID
        reply = frames.encode_error(uid, code, m.description)
        return BadMessage(m.reason, m.description, m.unique_id, code, reply)

    # -- answers -----------------------------------------------------------------------------

    def answer(self, unique_id: str, response: Any) -> str:
        """The CALLRESULT text answering the charger's CALL ``unique_id`` with ``response``.

        When the codec cannot encode the response, its exception propagates and the CALL
        stays open: answer it with :meth:`answer_error` (InternalError)."""
        if unique_id not in self._open:
            raise RpcUsageError(f"no CALL {unique_id!r} is waiting for an answer")
        text = frames.encode_result(unique_id, self.codec.encode(response))
        del self._open[unique_id]
        return text

    def answer_error(
        self,
        unique_id: str,
        code: str,
        description: str = "",
        details: dict[str, Any] | None = None,
    ) -> str:
        """The CALLERROR text answering the charger's CALL ``unique_id``. ``code`` in either
        version's spelling (it is respelt for this connection's version, GenericError when
        the version has no such code); the description is cut at 255 characters."""
        if unique_id not in self._open:
            raise RpcUsageError(f"no CALL {unique_id!r} is waiting for an answer")
        del self._open[unique_id]
        return frames.encode_error(
            unique_id, errs.code_for(self.version, code), description, details
        )

    # -- our CALLs ---------------------------------------------------------------------------

    def call(self, action: str, request: Any, now: float, timeout: float) -> OutgoingCall:
        """A CALL of ours: sent now (``text`` set) or queued until the outstanding one ends.

        Its result event comes by ``now + timeout`` at the latest (time in the queue
        included). Raises :class:`CallQueueFull` when ``max_queued_calls`` already wait, and
        :class:`RpcUsageError` for an action the codec does not know."""
        if not self.codec.known_action(self.version, action):
            raise RpcUsageError(f"unknown action {action!r} for OCPP {self.version}")
        if timeout <= 0:
            raise RpcUsageError("timeout must be positive")
        busy = self._outstanding is not None or bool(self._queue)
        if busy and len(self._queue) >= self.max_queued_calls:
            raise CallQueueFull(f"{len(self._queue)} CALLs already queued")
        payload = self.codec.encode(request)
        self._counter += 1
        uid = f"{self._prefix}{self._counter}"
        text = frames.encode_call(uid, action, payload)
        pending = _Pending(uid, action, request, text, now + timeout)
        if not busy:
            self._outstanding = pending
            return OutgoingCall(uid, pending.text)
        self._queue.append(pending)
        return OutgoingCall(uid, None)

    def next_outgoing(self) -> str | None:
        """The next queued CALL's text when none is outstanding (it becomes outstanding)."""
        if self._outstanding is not None or not self._queue:
            return None
        self._outstanding = self._queue.pop(0)
        return self._outstanding.text

    def deadline(self) -> float | None:
        """When :meth:`on_timer` must be called: the earliest deadline of our CALLs."""
        out = self._outstanding.deadline if self._outstanding else None
        for p in self._queue:
            if out is None or p.deadline < out:
                out = p.deadline
        return out

    def on_timer(self, now: float) -> list[Event]:
        """Time out our CALLs whose deadline is ``now`` or earlier (queued ones too)."""
        return self._expire(now)

    def abort(self) -> list[Event]:
        """The connection ended: every CALL of ours not yet answered is given up."""
        events: list[Event] = []
        if self._outstanding is not None:
            p = self._outstanding
            events.append(CallAborted(p.unique_id, p.action, p.request, True))
            self._outstanding = None
        events.extend(CallAborted(p.unique_id, p.action, p.request, False) for p in self._queue)
        self._queue.clear()
        self._open.clear()
        return events

    # -- helpers -----------------------------------------------------------------------------

    def _take(self, unique_id: str) -> _Pending | None:
        """The outstanding CALL when it has ``unique_id`` (it is then over), else None."""
        pending = self._outstanding
        if pending is None or pending.unique_id != unique_id:
            return None
        self._outstanding = None
        return pending

    def _late(self, unique_id: str) -> bool:
        return self._timed_out is not None and unique_id in self._timed_out

    def _expire(self, now: float) -> list[Event]:
        events: list[Event] = []
        p = self._outstanding
        if p is not None and p.deadline <= now:
            self._outstanding = None
            if self._timed_out is None:
                self._timed_out = deque(maxlen=_RECENT_TIMEOUTS)
            self._timed_out.append(p.unique_id)
            events.append(CallTimeout(p.unique_id, p.action, p.request, True))
        if self._queue and any(q.deadline <= now for q in self._queue):
            keep: list[_Pending] = []
            for q in self._queue:
                if q.deadline <= now:
                    events.append(CallTimeout(q.unique_id, q.action, q.request, False))
                else:
                    keep.append(q)
            self._queue = keep
        return events
