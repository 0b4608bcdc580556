"""JT/T 808 platform commands down to a terminal: 0x8103 set parameters, 0x8104 / 0x8106 query
all / some parameters, 0x8105 terminal control, 0x8300 text message and any other platform
message, built from API values; and the terminal's answers (0x0001 general response, 0x0104
parameters) read back as typed JSON.

Parameter values follow ``gateway.codecs.jt808.params`` (the standard's integer units, STRING
ids as text, BYTE[n] and unknown ids as bytes); ids may be given by name (``PARAM_IDS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from gateway.codecs import jt808 as jt
from gateway.codecs.errors import ProtocolError
from gateway.codecs.jt808 import constants as c
from gateway.codecs.jt808.params import PARAM_IDS
from gateway.commands_types import (
    CommandError,
    Json,
    Status,
    Value,
    from_json,
    hex_id,
    parse_id,
    to_json,
)

PROTOCOL: Final = "jt808"

#: Terminal control (0x8105) command words by name.
CONTROL_NAMES: Final[dict[str, int]] = {
    "upgrade": c.CONTROL_UPGRADE,
    "connect_server": c.CONTROL_CONNECT_SERVER,
    "power_off": c.CONTROL_POWER_OFF,
    "reset": c.CONTROL_RESET,
    "factory_reset": c.CONTROL_FACTORY_RESET,
    "close_data": c.CONTROL_CLOSE_DATA,
    "close_wireless": c.CONTROL_CLOSE_WIRELESS,
}
_CONTROL_WORDS: Final = {v: k for k, v in CONTROL_NAMES.items()}
_GENERAL: Final = frozenset({c.TERMINAL_GENERAL_RESPONSE})
_PARAMS_ANSWER: Final = frozenset({c.QUERY_PARAMS_RESPONSE, c.TERMINAL_GENERAL_RESPONSE})
#: Platform messages with their own method (and answer) or that belong to the session.
_NOT_SENDABLE: Final = frozenset(
    {
        c.QUERY_ALL_PARAMS,
        c.QUERY_PARAMS,
        c.PLATFORM_GENERAL_RESPONSE,
        c.REGISTER_RESPONSE,
        c.PLATFORM_RESEND_REQUEST,
    }
)
_MAX_ITEMS: Final = 255
_RESULTS: Final[dict[int, Status]] = {
    c.RESULT_OK: "accepted",
    c.RESULT_FAIL: "failed",
    c.RESULT_BAD_MESSAGE: "rejected",
    c.RESULT_UNSUPPORTED: "unsupported",
}


@dataclass(frozen=True, slots=True)
class JtRequest:
    """A platform message ready to send: id, body, API verb, JSON request, and the message ids
    of the terminal that answer it (0x0001 always; 0x0104 for the queries)."""

    msg_id: int
    body: jt.Body
    name: str
    request: dict[str, Json]
    answers: frozenset[int]


def pid_json(pid: int) -> str:
    return hex_id(pid, 4)


def set_values(values: Mapping[Any, object]) -> JtRequest:
    """0x8103 for ``{id: value}``, in the order given."""
    typed: dict[int, Value] = {}
    for key, raw in values.items():
        pid = parse_id(key, "JT/T 808 parameter", PARAM_IDS)
        what = f"JT/T 808 parameter {pid_json(pid)}"
        if not 0 <= pid <= 0xFFFFFFFF:
            raise CommandError(f"{what}: ids are DWORDs")
        if pid in typed:
            raise CommandError(f"{what} given twice")
        typed[pid] = from_json(raw, what)
    if not typed:
        raise CommandError("no parameters to set")
    if len(typed) > _MAX_ITEMS:
        raise CommandError(f"{len(typed)} parameters: at most {_MAX_ITEMS}")
    try:
        items = jt.param_items(typed)
    except ProtocolError as exc:
        raise CommandError(exc.message) from None
    if any(len(item.data) > 0xFF for item in items):
        raise CommandError("a JT/T 808 parameter value is at most 255 bytes")
    request: dict[str, Json] = {
        "msg_id": pid_json(c.SET_PARAMS),
        "params": {pid_json(pid): to_json(v) for pid, v in typed.items()},
    }
    return JtRequest(c.SET_PARAMS, jt.SetParams(params=items), "set_parameters", request, _GENERAL)


def query(ids: Iterable[object] | None) -> JtRequest:
    """0x8104 (every parameter) when ``ids`` is None, else 0x8106 for those ids."""
    if ids is None:
        request: dict[str, Json] = {"msg_id": pid_json(c.QUERY_ALL_PARAMS)}
        body: jt.Body = jt.QueryAllParams()
        return JtRequest(c.QUERY_ALL_PARAMS, body, "query_parameters", request, _PARAMS_ANSWER)
    out: list[int] = []
    for key in ids:
        pid = parse_id(key, "JT/T 808 parameter", PARAM_IDS)
        if not 0 <= pid <= 0xFFFFFFFF:
            raise CommandError(f"JT/T 808 parameter {pid:#x}: ids are DWORDs")
        if pid not in out:
            out.append(pid)
    if not out:
        raise CommandError("no parameter ids to query (None queries them all)")
    if len(out) > _MAX_ITEMS:
        raise CommandError(f"{len(out)} parameter ids: at most {_MAX_ITEMS}")
    request = {"msg_id": pid_json(c.QUERY_PARAMS), "ids": [pid_json(p) for p in out]}
    body = jt.QueryParams(param_ids=tuple(out))
    return JtRequest(c.QUERY_PARAMS, body, "query_parameters", request, _PARAMS_ANSWER)


def control(command: object, params: Sequence[str] = ()) -> JtRequest:
    """0x8105 with a command word (int or :data:`CONTROL_NAMES` name) and its ``;``-separated
    parameters (each without ``;``)."""
    if isinstance(command, str) and command in CONTROL_NAMES:
        word = CONTROL_NAMES[command]
    else:
        word = parse_id(command, "JT/T 808 control command")
    if not 0 <= word <= 0xFF:
        raise CommandError(f"JT/T 808 control command {word}: a BYTE")
    if isinstance(params, str) or not all(isinstance(p, str) for p in params):
        raise CommandError("JT/T 808 control parameters: a sequence of str")
    if any(c.CONTROL_PARAM_SEPARATOR in p for p in params):
        raise CommandError("JT/T 808 control parameters cannot contain ';'")
    request: dict[str, Json] = {
        "msg_id": pid_json(c.TERMINAL_CONTROL),
        "command": word,
        "name": _CONTROL_WORDS.get(word),
        "params": list(params),
    }
    body = jt.TerminalControl(command=word, params=tuple(params))
    return JtRequest(c.TERMINAL_CONTROL, body, "control", request, _GENERAL)


def text(message: str, flags: int, text_type: int | None = None) -> JtRequest:
    """0x8300: ``flags`` (``constants.TEXT_FLAG_*``, in 2019 bits 0-1 the priority), the text
    (GBK), and in 2019 the text type (None: 1, notice; not sent to a 2013 terminal)."""
    if not isinstance(message, str) or not message:
        raise CommandError("a text message needs some text")
    for name, value in (("flags", flags), ("text_type", text_type)):
        if value is not None and (isinstance(value, bool) or not 0 <= value <= 0xFF):
            raise CommandError(f"text {name}: a BYTE, not {value!r}")
    request: dict[str, Json] = {
        "msg_id": pid_json(c.TEXT_MESSAGE),
        "flags": flags,
        "text": message,
        "text_type": text_type,
    }
    body = jt.TextMessage(flags=flags, text=message, text_type=text_type)
    return JtRequest(c.TEXT_MESSAGE, body, "text", request, _GENERAL)


def send(msg_id: int, body: jt.Body | bytes | Mapping[str, str]) -> JtRequest:
    """Any platform message answered with a 0x0001: a typed body, or raw body bytes (also as
    ``{"hex": ...}``)."""
    if isinstance(msg_id, bool) or not 0x8000 <= msg_id <= 0xFFFF:
        raise CommandError(f"{msg_id!r} is not a platform message id (0x8000-0xFFFF)")
    if msg_id in _NOT_SENDABLE:
        raise CommandError(f"{pid_json(msg_id)} is not sent with send() (queries have their own)")
    shown: Json
    if isinstance(body, msgspec.Struct):
        typed: jt.Body = body
        shown = _body_json(body)
    else:
        raw = from_json(body, f"{pid_json(msg_id)} body")
        if not isinstance(raw, bytes):
            raise CommandError(f"{pid_json(msg_id)} body: a message Struct, bytes or {{'hex'}}")
        typed, shown = jt.RawBody(data=raw), to_json(raw)
    request: dict[str, Json] = {"msg_id": pid_json(msg_id), "body": shown}
    return JtRequest(msg_id, typed, "send", request, _GENERAL)


def interpret(frame: jt.Frame) -> tuple[Status, dict[str, Json]]:
    """Status and JSON reply of a 0x0001 (by its result) or a 0x0104 (accepted, the values)."""
    body = frame.body
    if isinstance(body, jt.QueryParamsResponse):
        values = jt.param_values(body.params)
        return "accepted", {"params": {pid_json(k): to_json(v) for k, v in values.items()}}
    if isinstance(body, jt.TerminalGeneralResponse):
        return _RESULTS.get(body.result, "failed"), {"result": body.result}
    return "error", {"msg_id": pid_json(frame.msg_id), "body": _body_json(body)}


def _body_json(body: msgspec.Struct) -> Json:
    """A body Struct as JSON, bytes as ``{"hex": ...}``."""
    return _hexify(msgspec.to_builtins(body, builtin_types=(bytes,)))


def _hexify(value: object) -> Json:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {str(k): _hexify(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hexify(v) for v in value]
    return value


__all__ = [
    "CONTROL_NAMES",
    "PROTOCOL",
    "JtRequest",
    "control",
    "interpret",
    "query",
    "send",
    "set_values",
    "text",
]
