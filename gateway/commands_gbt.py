"""GB/T 32960 commands down to a vehicle: parameter query 0x80, parameter set 0x81 and terminal
control 0x82 built from API values, and the terminal's answers read back as typed JSON.

Parameters (``shared/protocols/gbt32960.md`` section 1.7) are typed by the codec's tables
(``constants.PARAM_INT_WIDTHS`` per edition, ``PARAM_LENGTH_ID``, ``PARAM_BYTES_WIDTH``):
integer ids take an int (its width, WORD or BYTE, follows the terminal's edition: 0x02 and
0x03 are WORD in 2016 and BYTE in 2025); the domains 0x05 / 0x0E take a str (or bytes) and
their length ids 0x04 / 0x0D are sent with them, never set alone; the versions 0x07 / 0x08 are
read-only. Answers: integers as ints, domains and versions as text (bytes when not text).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from gateway.adapters.gbt32960_session import platform_time
from gateway.codecs import gbt32960 as gbt
from gateway.codecs.common import DeviceTime
from gateway.codecs.errors import ProtocolError
from gateway.codecs.gbt32960 import constants as c
from gateway.commands_types import (
    CommandError,
    Json,
    Status,
    Value,
    from_json,
    hex_id,
    parse_id,
    text_or_bytes,
    to_json,
)

PROTOCOL: Final = "gbt32960"

_INT_IDS: Final = frozenset(c.PARAM_INT_WIDTHS[c.V2016]) | frozenset(c.PARAM_INT_WIDTHS[c.V2025])
_TEXT_IDS: Final = frozenset(c.PARAM_LENGTH_ID)  # domains: variable length, after their length
_LENGTH_IDS: Final = frozenset(c.PARAM_LENGTH_ID.values())
_READ_ONLY: Final = frozenset(c.PARAM_BYTES_WIDTH)  # hardware / firmware versions
_MAX_ITEMS: Final = 255  # BYTE counts

#: Terminal control (0x82) command words by name.
CONTROL_NAMES: Final[dict[str, int]] = {
    "upgrade": c.CTRL_UPGRADE,
    "shutdown": c.CTRL_SHUTDOWN,
    "reset": c.CTRL_RESET,
    "factory_reset": c.CTRL_FACTORY_RESET,
    "disconnect": c.CTRL_DISCONNECT,
    "warning": c.CTRL_WARNING,
    "sampling_link": c.CTRL_SAMPLING_LINK,
}
_CONTROL_WORDS: Final = {v: k for k, v in CONTROL_NAMES.items()}
_UPGRADE_TEXT: Final = ("apn", "username", "password", "url")
_UPGRADE_FIXED: Final = {
    "manufacturer_id": c.UPGRADE_MANUFACTURER_SIZE,
    "hardware_version": c.UPGRADE_VERSION_SIZE,
    "firmware_version": c.UPGRADE_VERSION_SIZE,
}
_UPGRADE_KEYS: Final = frozenset(
    {*_UPGRADE_TEXT, *_UPGRADE_FIXED, "ip", "port", "timeout"},
)

BodyMaker = Callable[[DeviceTime], gbt.Body]


@dataclass(frozen=True, slots=True)
class GbtRequest:
    """A command ready to encode: its id, API verb, JSON request and body (given the time)."""

    command: int
    name: str
    request: dict[str, Json]
    make: BodyMaker


def pid_json(pid: int) -> str:
    return hex_id(pid, 2)


# -- requests --------------------------------------------------------------------------------


def query(ids: Iterable[object]) -> GbtRequest:
    """0x80 for the ids asked (each once, in the order given; any id 0x01-0xFE)."""
    out: list[int] = []
    for key in ids:
        pid = parse_id(key, "GB/T 32960 parameter")
        if not 0x01 <= pid <= 0xFE:
            raise CommandError(f"GB/T 32960 parameter {pid:#x}: ids are 0x01-0xFE")
        if pid not in out:
            out.append(pid)
    if not out:
        raise CommandError("no parameter ids to query")
    if len(out) > _MAX_ITEMS:
        raise CommandError(f"{len(out)} parameter ids: at most {_MAX_ITEMS}")
    request: dict[str, Json] = {"msg_id": "0x80", "ids": [pid_json(p) for p in out]}
    return GbtRequest(
        c.CMD_PARAM_QUERY, "query_parameters", request, lambda t: gbt.ParamQuery(time=t, ids=out)
    )


def set_values(values: Mapping[Any, object]) -> GbtRequest:
    """0x81 for ``{id: value}`` (a domain is preceded by its length id)."""
    params: list[gbt.Param] = []
    shown: dict[str, Json] = {}
    for key, raw in values.items():
        pid = parse_id(key, "GB/T 32960 parameter")
        what = f"GB/T 32960 parameter {pid_json(pid)}"
        if pid_json(pid) in shown:
            raise CommandError(f"{what} given twice")
        value = from_json(raw, what)
        if pid in _READ_ONLY:
            raise CommandError(f"{what} is read-only")
        if pid in _LENGTH_IDS:
            raise CommandError(f"{what} is a length: give the domain it measures instead")
        if pid in _INT_IDS:
            if not isinstance(value, int) or value < 0:
                raise CommandError(f"{what} takes a non-negative int, not {value!r}")
            params.append(gbt.Param(id=pid, value=value))
        elif pid in _TEXT_IDS:
            data = _text_bytes(value, what)
            params.append(gbt.Param(id=c.PARAM_LENGTH_ID[pid], value=len(data)))
            params.append(gbt.Param(id=pid, value=data))
        else:
            raise CommandError(f"{what} is not a settable GB/T 32960 parameter")
        shown[pid_json(pid)] = to_json(value)
    if not params:
        raise CommandError("no parameters to set")
    if len(params) > _MAX_ITEMS:
        raise CommandError(f"{len(params)} parameters: at most {_MAX_ITEMS}")
    request: dict[str, Json] = {"msg_id": "0x81", "params": shown}
    return GbtRequest(
        c.CMD_PARAM_SET, "set_parameters", request, lambda t: gbt.ParamValues(time=t, params=params)
    )


def control(command: object, params: Mapping[str, object] | None = None) -> GbtRequest:
    """0x82 with a command word (int or :data:`CONTROL_NAMES` name) and its parameters:
    ``upgrade`` takes the :class:`gateway.codecs.gbt32960.UpgradeParams` fields (``ip`` as
    ``"a.b.c.d"``, the fixed-width ids as text or ``{"hex": ...}``), ``warning`` takes
    ``level`` and ``message``, the others nothing or ``{"hex": ...}`` (sent as is)."""
    word = _control_word(command)
    given = dict(params or {})
    ctrl: gbt.UpgradeParams | gbt.ControlWarning | bytes
    if word == c.CTRL_UPGRADE:
        ctrl = _upgrade(given)
    elif word == c.CTRL_WARNING:
        ctrl = _warning(given)
    elif not given:
        ctrl = b""
    else:
        raw = from_json(given, f"control {word:#04x} parameters")
        if not isinstance(raw, bytes):
            raise CommandError(f"control {word:#04x} takes no parameters or {{'hex': ...}}")
        ctrl = raw
    request: dict[str, Json] = {
        "msg_id": "0x82",
        "command": pid_json(word),
        "name": _CONTROL_WORDS.get(word),
        "params": {k: _shown(k, v) for k, v in given.items()},
    }
    return GbtRequest(
        c.CMD_CONTROL,
        "control",
        request,
        lambda t: gbt.Control(time=t, command=word, params=ctrl),
    )


def encode(req: GbtRequest, vin: str, version: int, wall: datetime) -> bytes:
    """The command frame in the terminal's edition, stamped with the platform time."""
    frame = gbt.Frame(
        version=version,
        command=req.command,
        response=c.RESP_COMMAND,
        vin=vin,
        encryption=c.ENC_NONE,
        body=req.make(platform_time(wall)),
    )
    try:
        return gbt.encode_frame(frame)
    except ProtocolError as exc:
        raise CommandError(f"{req.name} for a {version} terminal: {exc.message}") from None


# -- answers ---------------------------------------------------------------------------------


def interpret(frame: gbt.Frame) -> tuple[Status, dict[str, Json]]:
    """Status and JSON reply of a terminal's answer (response flag 0x01 success)."""
    flag = frame.response
    status: Status
    if flag == c.RESP_SUCCESS:
        status = "accepted"
    elif flag == c.RESP_ERROR:
        status = "failed"
    else:
        status = "rejected"
    reply: dict[str, Json] = {"response": flag}
    body = frame.body
    if isinstance(body, gbt.ParamValues | gbt.TimeOnly) and body.time.utc is not None:
        reply["time"] = body.time.utc.isoformat()
    if isinstance(body, gbt.ParamValues):
        reply["params"] = {pid_json(p.id): to_json(_answer_value(p)) for p in body.params}
        if body.unparsed_count:
            reply["unparsed"] = {"count": body.unparsed_count, "data": to_json(body.unparsed)}
    elif isinstance(body, gbt.RawBody) and body.data:
        reply["data"] = to_json(body.data)
    return status, reply


def _answer_value(p: gbt.Param) -> Value:
    if isinstance(p.value, bytes) and (p.id in _TEXT_IDS or p.id in _READ_ONLY):
        return text_or_bytes(p.value)
    return p.value


# -- helpers ---------------------------------------------------------------------------------


def _text_bytes(value: Value, what: str) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        try:
            data = value.encode("gbk")
        except UnicodeEncodeError:
            raise CommandError(f"{what}: {value!r} is not GBK text") from None
    else:
        raise CommandError(f"{what} takes a str (or {{'hex': ...}}), not {value!r}")
    if len(data) > 0xFF:
        raise CommandError(f"{what}: {len(data)} bytes, at most 255")
    return data


def _control_word(command: object) -> int:
    if isinstance(command, str) and command in CONTROL_NAMES:
        return CONTROL_NAMES[command]
    word = parse_id(command, "GB/T 32960 control command")
    if not 0 <= word <= 0xFF:
        raise CommandError(f"GB/T 32960 control command {word}: a BYTE")
    return word


def _shown(key: str, value: object) -> Json:
    """A control parameter as stored: passwords are not kept."""
    if key == "password":
        return "***"
    return value if isinstance(value, str) else to_json(from_json(value, key))


def _upgrade(given: Mapping[str, object]) -> gbt.UpgradeParams:
    missing, extra = _UPGRADE_KEYS - set(given), set(given) - _UPGRADE_KEYS
    if missing or extra:
        raise CommandError(
            f"upgrade parameters: missing {sorted(missing)}, unknown {sorted(extra)}"
        )
    texts: dict[str, str] = {}
    for key in _UPGRADE_TEXT:
        v = given[key]
        if not isinstance(v, str) or ";" in v:
            raise CommandError(f"upgrade {key}: text without ';', not {v!r}")
        texts[key] = v
    fixed = {key: _fixed(given[key], size, key) for key, size in _UPGRADE_FIXED.items()}
    ints: dict[str, int] = {}
    for key in ("port", "timeout"):
        v = given[key]
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xFFFF:
            raise CommandError(f"upgrade {key}: a WORD, not {v!r}")
        ints[key] = v
    return gbt.UpgradeParams(
        apn=texts["apn"],
        username=texts["username"],
        password=texts["password"],
        ip=_upgrade_ip(given["ip"]),
        port=ints["port"],
        manufacturer_id=fixed["manufacturer_id"],
        hardware_version=fixed["hardware_version"],
        firmware_version=fixed["firmware_version"],
        url=texts["url"],
        timeout=ints["timeout"],
    )


def _fixed(value: object, size: int, key: str) -> bytes:
    data = _text_bytes(from_json(value, f"upgrade {key}"), f"upgrade {key}")
    if len(data) != size:
        raise CommandError(f"upgrade {key}: {size} bytes, not {len(data)}")
    return data


def _upgrade_ip(value: object) -> bytes:
    """6 bytes: 00 00 and the IPv4 address (or the 6 bytes themselves as ``{"hex": ...}``)."""
    if isinstance(value, str):
        try:
            return b"\x00\x00" + ipaddress.IPv4Address(value).packed
        except ValueError:
            raise CommandError(f"upgrade ip: {value!r} is not an IPv4 address") from None
    data = from_json(value, "upgrade ip")
    if not isinstance(data, bytes) or len(data) != c.UPGRADE_IP_SIZE:
        raise CommandError(f"upgrade ip: 'a.b.c.d' or 6 bytes, not {value!r}")
    return data


def _warning(given: Mapping[str, object]) -> gbt.ControlWarning:
    if set(given) != {"level", "message"}:
        raise CommandError(f"warning parameters are level and message, not {sorted(given)}")
    level, message = given["level"], given["message"]
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 0xFF:
        raise CommandError(f"warning level: a BYTE, not {level!r}")
    if not isinstance(message, str):
        raise CommandError(f"warning message: text, not {message!r}")
    return gbt.ControlWarning(level=level, message=message)


__all__ = [
    "CONTROL_NAMES",
    "PROTOCOL",
    "GbtRequest",
    "control",
    "encode",
    "interpret",
    "query",
    "set_values",
]
