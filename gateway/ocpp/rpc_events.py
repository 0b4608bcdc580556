"""What the OCPP-J RPC layer (:class:`gateway.ocpp.rpc.RpcConnection`) reports to its connection.

Received CALLs: :class:`IncomingCall` (answer it), :class:`BadMessage` (send its ``reply`` when
set; keep the frame as a dead letter). The central system's own CALLs end with exactly one of
:class:`CallResult`, :class:`CallError`, :class:`InvalidResult`, :class:`CallTimeout` or
:class:`CallAborted`. Answers that match no CALL of ours: :class:`Unmatched`.
"""

from __future__ import annotations

from typing import Any

import msgspec


class IncomingCall(msgspec.Struct, frozen=True):
    """A CALL from the charger, payload decoded by the payload codec: answer it with
    ``RpcConnection.answer`` or ``answer_error`` (InternalError when the handler fails)."""

    unique_id: str
    action: str
    payload: Any


class CallResult(msgspec.Struct, frozen=True):
    """The CALLRESULT of our CALL ``unique_id``, payload decoded as ``action``'s response."""

    unique_id: str
    action: str
    payload: Any
    request: Any


class CallError(msgspec.Struct, frozen=True):
    """The charger answered our CALL ``unique_id`` with a CALLERROR (a CALLERROR under the id
    ``"-1"``, which a peer uses when it could not read our id, is taken for our outstanding
    CALL: we never send anything else that it could answer)."""

    unique_id: str
    action: str
    code: str
    description: str
    details: dict[str, Any]
    request: Any


class InvalidResult(msgspec.Struct, frozen=True):
    """The answer to our CALL ``unique_id`` was unusable: a malformed CALLRESULT / CALLERROR,
    or a CALLRESULT payload the codec refused (``code`` is then the codec's error code;
    InternalError with ``error`` set when the codec itself failed). The CALL is over; the
    peer is not told (OCPP 1.6 and 2.0.1 have no answer to an answer)."""

    unique_id: str
    action: str
    code: str
    description: str
    request: Any
    details: dict[str, Any] = {}
    error: BaseException | None = None


class CallTimeout(msgspec.Struct, frozen=True):
    """Our CALL got no answer by its deadline. ``sent``: False when it never left the queue."""

    unique_id: str
    action: str
    request: Any
    sent: bool


class CallAborted(msgspec.Struct, frozen=True):
    """Our CALL was given up because the connection ended (``RpcConnection.abort``)."""

    unique_id: str
    action: str
    request: Any
    sent: bool


class Unmatched(msgspec.Struct, frozen=True, gc=False):
    """A well-formed CALLRESULT (``message_type`` 3) or CALLERROR (4) matching no outstanding
    CALL of ours. ``late``: it answers one of our recent CALLs that had already timed out."""

    unique_id: str
    message_type: int
    late: bool
    code: str | None = None  # a CALLERROR's code and description
    description: str | None = None


class BadMessage(msgspec.Struct, frozen=True):
    """A message that was refused. ``reply``: the CALLERROR text to send, None when the
    protocol says not to answer (see docs/ocpp.md, "RPC layer"); ``code`` is its error code
    (None exactly when ``reply`` is). ``reason`` is a short machine-readable word for dead
    letters and metrics; ``unique_id`` the id that could be read, if any; ``error`` the
    exception of a payload codec that failed (InternalError)."""

    reason: str
    description: str
    unique_id: str | None
    code: str | None
    reply: str | None
    details: dict[str, Any] = {}
    error: BaseException | None = None


Event = (
    IncomingCall
    | CallResult
    | CallError
    | InvalidResult
    | CallTimeout
    | CallAborted
    | Unmatched
    | BadMessage
)
