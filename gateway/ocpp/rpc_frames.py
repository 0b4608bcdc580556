"""OCPP-J RPC frames (sans-IO): parse one WebSocket text message, encode CALL / CALLRESULT /
CALLERROR. The same for 1.6 and 2.0.1; what a version answers to a bad frame is decided by
:mod:`gateway.ocpp.rpc_errors` and :mod:`gateway.ocpp.rpc`.

``[2, "<id>", "<Action>", {payload}]``, ``[3, "<id>", {payload}]``,
``[4, "<id>", "<errorCode>", "<errorDescription>", {errorDetails}]``.

:func:`parse` decodes the outer array once, with msgspec, keeping the payload as raw JSON bytes
for the payload codec. Only when that fails does a slower path decode the message generically
to say what is wrong with it (:class:`Malformed`): every input gives a frame or a Malformed,
never an exception. A ``null`` payload or errorDetails is read as ``{}``; the encoders always
write ``{}``.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

CALL: Final = 2
CALLRESULT: Final = 3
CALLERROR: Final = 4
MAX_ID_CHARS: Final = 36
#: OCPP 2.0.1 part 4 4.3: an errorDescription is at most 255 characters.
MAX_DESCRIPTION_CHARS: Final = 255
UNREADABLE_ID: Final = "-1"


class CallFrame(msgspec.Struct, frozen=True, gc=False):
    unique_id: str
    action: str
    payload: bytes  # raw JSON object


class ResultFrame(msgspec.Struct, frozen=True, gc=False):
    unique_id: str
    payload: bytes  # raw JSON object


class ErrorFrame(msgspec.Struct, frozen=True):
    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


class Malformed(msgspec.Struct, frozen=True, gc=False):
    """A message that is not a well-formed frame.

    ``reason``: too_large, not_json, not_array, bad_type_id (element 0 is not an integer),
    unknown_type, bad_id (element 1 is not a string), invalid_id (empty or longer than 36
    characters), bad_call, bad_result, bad_error (wrong elements for the type).
    ``message_type`` / ``unique_id``: what could be read of them, else None.
    """

    reason: str
    description: str
    message_type: int | None = None
    unique_id: str | None = None


Frame = CallFrame | ResultFrame | ErrorFrame | Malformed


class _WireCall(msgspec.Struct, array_like=True, tag=CALL, forbid_unknown_fields=True):
    unique_id: str
    action: str
    payload: msgspec.Raw


class _WireResult(msgspec.Struct, array_like=True, tag=CALLRESULT, forbid_unknown_fields=True):
    unique_id: str
    payload: msgspec.Raw


class _WireError(msgspec.Struct, array_like=True, tag=CALLERROR, forbid_unknown_fields=True):
    unique_id: str
    code: str
    description: str = ""  # lenient: a peer's CALLERROR without description or details
    details: Any = None


_DECODER: Final = msgspec.json.Decoder(_WireCall | _WireResult | _WireError)
_ENCODER: Final = msgspec.json.Encoder()
_EMPTY: Final = b"{}"
_PEEK_BYTES: Final = 128
# The type and id at the start of a message that does not parse (or is too large to parse):
# enough to answer a CALL under its own id. Only plain ids (no escapes) are read this way.
_PEEK: Final = re.compile(rb'\s*\[\s*([234])\s*,\s*"([^"\\\x00-\x1f]{1,36})"')


def parse(data: str | bytes, max_bytes: int) -> Frame:
    """One WebSocket text message as a frame, or what is wrong with it. Never raises."""
    size = _size(data)
    if size > max_bytes:
        mtype, uid = _peek(data)
        return Malformed(
            "too_large", f"message of {size} bytes exceeds the limit of {max_bytes}", mtype, uid
        )
    try:
        wire = _DECODER.decode(data)
    except (ValueError, RecursionError):  # msgspec errors, bad UTF-8, lone surrogates, nesting
        return _parse_slow(data)
    if type(wire) is _WireCall:
        bad = _id_problem(wire.unique_id)
        if bad:
            return Malformed("invalid_id", bad, CALL, wire.unique_id)
        payload = _object(bytes(wire.payload))
        if payload is None:
            return Malformed("bad_call", "payload is not a JSON object", CALL, wire.unique_id)
        return CallFrame(wire.unique_id, wire.action, payload)
    if type(wire) is _WireResult:
        payload = _object(bytes(wire.payload))
        if payload is None:
            return Malformed(
                "bad_result", "payload is not a JSON object", CALLRESULT, wire.unique_id
            )
        return ResultFrame(wire.unique_id, payload)
    assert type(wire) is _WireError
    return ErrorFrame(wire.unique_id, wire.code, wire.description, _details(wire.details))


def _size(data: str | bytes) -> int:
    if not isinstance(data, str):
        return len(data)
    n = len(data)
    if data.isascii():
        return n
    return len(data.encode("utf-8", "surrogatepass"))


def _raw_bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)


def _peek(data: str | bytes) -> tuple[int | None, str | None]:
    head = _raw_bytes(data[:_PEEK_BYTES])
    m = _PEEK.match(head)
    if m is None:
        return None, None
    try:
        uid = m.group(2).decode("utf-8")
    except UnicodeDecodeError:
        return int(m.group(1)), None
    return int(m.group(1)), uid


def _id_problem(uid: str) -> str | None:
    if not uid:
        return "message id is empty"
    if len(uid) > MAX_ID_CHARS:
        return f"message id is longer than {MAX_ID_CHARS} characters"
    return None


def _object(payload: bytes) -> bytes | None:
    """The raw payload when it is a JSON object (``null`` reads as ``{}``), else None."""
    if payload[:1] == b"{":
        return payload
    return _EMPTY if payload == b"null" else None


def _details(details: Any) -> dict[str, Any]:
    if details is None:
        return {}
    if isinstance(details, dict):
        return details
    return {"details": details}  # a peer's non-object errorDetails, kept


def _parse_slow(data: str | bytes) -> Frame:
    """Decode generically and say exactly what is wrong (the reference for :func:`parse`)."""
    raw = _raw_bytes(data)
    try:
        value = msgspec.json.decode(raw)
    except (ValueError, RecursionError) as exc:
        mtype, uid = _peek(raw)
        reason = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
        return Malformed("not_json", f"not valid JSON: {reason}", mtype, uid)
    return from_value(value)


def from_value(value: Any) -> Frame:
    """A generically decoded JSON value as a frame, or what is wrong with it."""
    if not isinstance(value, list) or not value:
        return Malformed("not_array", "message is not a non-empty JSON array")
    mtype = value[0]
    if type(mtype) is not int:
        return Malformed("bad_type_id", "message type is not an integer")
    uid = value[1] if len(value) > 1 and type(value[1]) is str else None
    if mtype not in (CALL, CALLRESULT, CALLERROR):
        return Malformed("unknown_type", f"message type {mtype} is not supported", mtype, uid)
    if uid is None:
        return Malformed("bad_id", "message id is missing or not a string", mtype)
    if mtype == CALL:
        return _call_from(value, uid)
    if mtype == CALLRESULT:
        if len(value) != 3:
            return Malformed(
                "bad_result", f"a CALLRESULT has 3 elements, got {len(value)}", mtype, uid
            )
        if value[2] is not None and type(value[2]) is not dict:
            return Malformed("bad_result", "payload is not a JSON object", mtype, uid)
        return ResultFrame(uid, _ENCODER.encode(value[2] or {}))
    if not 3 <= len(value) <= 5:
        return Malformed("bad_error", f"a CALLERROR has 5 elements, got {len(value)}", mtype, uid)
    code, description = value[2], value[3] if len(value) > 3 else ""
    if type(code) is not str or type(description) is not str:
        return Malformed("bad_error", "errorCode or errorDescription is not a string", mtype, uid)
    return ErrorFrame(uid, code, description, _details(value[4] if len(value) > 4 else None))


def _call_from(value: list[Any], uid: str) -> Frame:
    bad = _id_problem(uid)
    if bad:
        return Malformed("invalid_id", bad, CALL, uid)
    if len(value) != 4:
        return Malformed("bad_call", f"a CALL has 4 elements, got {len(value)}", CALL, uid)
    if type(value[2]) is not str:
        return Malformed("bad_call", "action is not a string", CALL, uid)
    if value[3] is not None and type(value[3]) is not dict:
        return Malformed("bad_call", "payload is not a JSON object", CALL, uid)
    return CallFrame(uid, value[2], _ENCODER.encode(value[3] or {}))


# -- encoding ---------------------------------------------------------------------------------


def encode_call(unique_id: str, action: str, payload: bytes) -> str:
    """``[2,"<id>","<Action>",{payload}]``; ``payload`` is the encoded JSON object."""
    return _ENCODER.encode((CALL, unique_id, action, msgspec.Raw(payload))).decode()


def encode_result(unique_id: str, payload: bytes) -> str:
    """``[3,"<id>",{payload}]``."""
    return _ENCODER.encode((CALLRESULT, unique_id, msgspec.Raw(payload))).decode()


def encode_error(
    unique_id: str, code: str, description: str = "", details: dict[str, Any] | None = None
) -> str:
    """``[4,"<id>","<code>","<description>",{details}]``; the description is cut at 255
    characters. Details that cannot be encoded are replaced by ``{}``."""
    description = _clean(description[:MAX_DESCRIPTION_CHARS])
    try:
        out = _ENCODER.encode((CALLERROR, unique_id, code, description, details or {}))
    except (TypeError, ValueError, RecursionError):
        out = _ENCODER.encode((CALLERROR, unique_id, code, description, {}))
    return out.decode()


def _clean(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (lone surrogates) replaced by ``?``."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")
