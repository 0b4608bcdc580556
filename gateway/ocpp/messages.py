"""OCPP payloads: the action table of both versions, decoding with OCPP error codes, encoding.

The payload Structs are generated from the official JSON schemas (gateway/ocpp/v16.py and
v201.py, by scripts/gen_ocpp_messages.py). A payload is decoded with one msgspec call by a
decoder built once per (version, action, direction); a payload the schema refuses raises
`PayloadError` carrying the CALLERROR code of the connection's version.

Error codes, with the spec's wording (OCPP-J 1.6 section 4.2.3; OCPP 2.0.1 part 4 section 4.3):

- FORMAT, not JSON, not a JSON object, or nested beyond Python's recursion limit:
  FormationViolation (1.6), FormatViolation (2.0.1).
- STRUCTURE, a field the schema does not define where additionalProperties is false:
  FormationViolation (1.6), ProtocolError (2.0.1).
- OCCURRENCE, a required field missing, an array with too few or too many items:
  OccurenceConstraintViolation (1.6), OccurrenceConstraintViolation (2.0.1).
- TYPE, a wrong JSON type (`null` included), a date-time that is not RFC 3339 with an offset:
  TypeConstraintViolation.
- PROPERTY, a string too long, a value not in the enum, a number out of range or not a multiple
  of 0.1 (1.6 charging schedules): PropertyConstraintViolation.
- NOT_IMPLEMENTED, an action not in the schemas: NotImplemented.

The spec's words:
- 1.6 FormationViolation: "Payload for Action is syntactically incorrect or not conform the
  PDU structure for Action". 2.0.1 splits it: FormatViolation "Payload for Action is
  syntactically incorrect", ProtocolError "Payload for Action is not conform the PDU structure".
- OccurenceConstraintViolation (1.6, misspelt in the spec; the OCPP-J 1.6 errata keep it) /
  OccurrenceConstraintViolation (2.0.1): "Payload for Action is syntactically correct but at
  least one of the fields violates occurrence constraints".
- TypeConstraintViolation: "Payload for Action is syntactically correct but at least one of the
  fields violates data type constraints (e.g. "somestring": 12)".
- PropertyConstraintViolation: "Payload is syntactically correct but at least one field contains
  an invalid value".
- NotImplemented: "Requested Action is not known by receiver".
- errorDescription: at most 255 characters in 2.0.1 (part 4); 1.6 is held to the same.

Date-times (OCPP 2.0.1 part 2, primitive datatypes): "formatted as defined in RFC3339 ... The
number of decimal places SHALL NOT exceed the maximum of 3". msgspec parses RFC 3339 (T or space,
either case; offsets Z or +hh:mm, also +hhmm; fractions rounded to microseconds; second 60 and
24:00 refused); a value without an offset is refused. msgspec writes 6 fraction digits, so
`encode` cuts them to milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import msgspec

from gateway.ocpp import v16, v201

__all__ = [
    "ACTIONS",
    "ERROR_CODES",
    "OcppVersion",
    "PayloadError",
    "Violation",
    "decode_request",
    "decode_response",
    "encode",
    "error_from",
    "known_action",
]


class OcppVersion(StrEnum):
    """An OCPP version, valued as its WebSocket sub-protocol name."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"


MessageTypes = tuple[type[msgspec.Struct], type[msgspec.Struct]]

ACTIONS: Final[dict[str, dict[str, MessageTypes]]] = {
    OcppVersion.V16: v16.ACTIONS,
    OcppVersion.V201: v201.ACTIONS,
}
"""version -> action -> (request Struct, response Struct), every action of the schemas.

Keyed by OcppVersion members; being StrEnums, the plain sub-protocol strings find them too."""


class Violation(StrEnum):
    """What is wrong with a payload, independent of how a version spells the error code."""

    FORMAT = "format"
    STRUCTURE = "structure"
    OCCURRENCE = "occurrence"
    TYPE = "type"
    PROPERTY = "property"
    NOT_IMPLEMENTED = "not-implemented"
    GENERIC = "generic"


ERROR_CODES: Final[dict[str, dict[Violation, str]]] = {
    OcppVersion.V16: {
        Violation.FORMAT: "FormationViolation",
        Violation.STRUCTURE: "FormationViolation",
        Violation.OCCURRENCE: "OccurenceConstraintViolation",
        Violation.TYPE: "TypeConstraintViolation",
        Violation.PROPERTY: "PropertyConstraintViolation",
        Violation.NOT_IMPLEMENTED: "NotImplemented",
        Violation.GENERIC: "GenericError",
    },
    OcppVersion.V201: {
        Violation.FORMAT: "FormatViolation",
        Violation.STRUCTURE: "ProtocolError",
        Violation.OCCURRENCE: "OccurrenceConstraintViolation",
        Violation.TYPE: "TypeConstraintViolation",
        Violation.PROPERTY: "PropertyConstraintViolation",
        Violation.NOT_IMPLEMENTED: "NotImplemented",
        Violation.GENERIC: "GenericError",
    },
}
"""version -> violation -> the CALLERROR errorCode (table in the module docstring)."""

MAX_DESCRIPTION = 255


class PayloadError(ValueError):
    """A payload the schema refuses: the CALLERROR errorCode, errorDescription, errorDetails."""

    def __init__(self, code: str, description: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details: dict[str, Any] = {} if details is None else details


# msgspec's validation messages -> violation; the first match wins.
_RULES: Final[tuple[tuple[re.Pattern[str], Violation], ...]] = tuple(
    (re.compile(pattern), violation)
    for pattern, violation in (
        (r"^Object missing required field ", Violation.OCCURRENCE),
        (r"^Object contains unknown field ", Violation.STRUCTURE),
        (r"^Expected `array` of length [<>]=", Violation.OCCURRENCE),
        (r"^Expected `str` of length [<>]=", Violation.PROPERTY),
        (r"^Expected `str` matching regex ", Violation.PROPERTY),
        (r"^Invalid enum value ", Violation.PROPERTY),
        (r"^Expected `(int|float)` [<>]=? ", Violation.PROPERTY),
        (r"^Expected `float` that's a multiple of ", Violation.PROPERTY),
        (r"^Number out of range", Violation.PROPERTY),
        (r"^Invalid RFC3339 encoded datetime", Violation.TYPE),
        (r"^Expected `datetime` with a timezone component", Violation.TYPE),
        (r"^Expected `\w+`, got `\w+`", Violation.TYPE),
    )
)
_AT = " - at `"


def error_from(version: str, exc: msgspec.DecodeError | RecursionError) -> PayloadError:
    """The PayloadError for what msgspec raised on a payload of `version` (an OcppVersion)."""
    if isinstance(exc, RecursionError):  # msgspec stops at Python's recursion limit
        code = ERROR_CODES[version][Violation.FORMAT]
        return PayloadError(code, "JSON nested too deeply", {"path": "$"})
    message = str(exc)
    path = "$"
    cut = message.rfind(_AT)
    if cut >= 0 and message.endswith("`"):
        path = message[cut + len(_AT) : -1]
        reason = message[:cut]
    else:
        reason = message
    if not isinstance(exc, msgspec.ValidationError):
        violation = Violation.FORMAT  # not JSON at all
    elif path == "$" and reason.startswith("Expected `object`, got "):
        violation = Violation.FORMAT  # the payload itself is not a JSON object
    else:
        violation = next((v for rx, v in _RULES if rx.match(reason)), Violation.GENERIC)
    return PayloadError(
        ERROR_CODES[version][violation], message[:MAX_DESCRIPTION], {"path": path[:200]}
    )


def known_action(version: str, action: str) -> bool:
    """Whether `action` is an action of `version` (either direction)."""
    return action in ACTIONS[version]


_Decoder = msgspec.json.Decoder[msgspec.Struct]
# (version, action, is_response) -> its decoder, built on first use.
_DECODERS: Final[dict[tuple[str, str, bool], _Decoder]] = {}


def _decoder(version: str, action: str, is_response: bool) -> _Decoder:
    if version not in ACTIONS:
        raise ValueError(f"unsupported OCPP version {version!r}: one of {list(OcppVersion)}")
    types = ACTIONS[version].get(action)
    if types is None:
        code = ERROR_CODES[version][Violation.NOT_IMPLEMENTED]
        description = f"Unknown action {action!r}"[:MAX_DESCRIPTION]
        raise PayloadError(code, description, {})
    decoder = msgspec.json.Decoder(types[is_response])
    _DECODERS[OcppVersion(version), action, is_response] = decoder
    return decoder


Payload = bytes | bytearray | memoryview | str  # msgspec.Raw is a bytes


def decode_request(version: str, action: str, payload: Payload) -> msgspec.Struct:
    """The CALL payload (JSON text, e.g. the msgspec.Raw cut from the frame) as its Struct.

    `version` is an OcppVersion (or its string). Raises PayloadError; its code is NotImplemented
    when `action` is not in ACTIONS[version]. ValueError for a version that is not one.
    """
    decoder = _DECODERS.get((version, action, False)) or _decoder(version, action, False)
    try:
        return decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise error_from(version, exc) from exc


def decode_response(version: str, action: str, payload: Payload) -> msgspec.Struct:
    """The CALLRESULT payload of our CALL of `action`, as its Struct. Raises as decode_request."""
    decoder = _DECODERS.get((version, action, True)) or _decoder(version, action, True)
    try:
        return decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise error_from(version, exc) from exc


_ENCODER: Final = msgspec.json.Encoder()
# msgspec writes a datetime with microseconds as hh:mm:ss.ffffff; OCPP allows 3 digits at most.
# Searched as ".dddddd" (a literal first byte is fast to scan for); a float with 6 decimals or a
# string that matches only sends the payload through the exact path below.
_SUB_MILLI: Final = re.compile(rb"\.\d{6}")


def encode(message: msgspec.Struct) -> bytes:
    """The JSON payload of a Struct; absent (UNSET) optional fields are left out.

    Date-times are written with at most 3 fraction digits (truncated), Z for UTC. Constraints
    (lengths, ranges, time zones) are not re-checked here: msgspec checks them on decode only.
    """
    data = _ENCODER.encode(message)
    if _SUB_MILLI.search(data) is None:
        return data
    # A time with sub-second digits (or a string that looks like one): the typed date-times
    # are written as text, so string values are never touched.
    cls = type(message)
    times = _FLAT_TIMES.get(cls, _UNKNOWN)
    if times is _UNKNOWN:
        times = _FLAT_TIMES[cls] = _flat_times(cls)
    if times is not None:
        # A flat Struct (HeartbeatResponse, answered with the time of receipt): a copy with
        # its date-time fields as text (replace() does not check types).
        texts = {n: _millis(v) for n in times if isinstance(v := getattr(message, n), datetime)}
        return _ENCODER.encode(msgspec.structs.replace(message, **texts))
    return _ENCODER.encode(_millis(msgspec.to_builtins(message, builtin_types=(datetime,))))


_UNKNOWN: Final = ()
_FLAT_TIMES: Final[dict[type, tuple[str, ...] | None]] = {}
_SCALARS: Final = (
    msgspec.inspect.StrType,
    msgspec.inspect.IntType,
    msgspec.inspect.FloatType,
    msgspec.inspect.BoolType,
    msgspec.inspect.NoneType,
    msgspec.inspect.LiteralType,
    msgspec.inspect.EnumType,
)


def _flat_times(cls: type) -> tuple[str, ...] | None:
    """The date-time fields of a Struct type when no other date-time can be anywhere in it
    (below its fields), else None."""
    info = msgspec.inspect.type_info(cls)
    if not isinstance(info, msgspec.inspect.StructType):
        return None
    times: list[str] = []
    for f in info.fields:
        kinds = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
        for kind in kinds:
            if isinstance(kind, msgspec.inspect.DateTimeType):
                times.append(f.name)
            elif _holds_time(kind, set()):
                return None
    return tuple(dict.fromkeys(times))


def _holds_time(kind: msgspec.inspect.Type, seen: set[type]) -> bool:
    """Whether a value of ``kind`` may be or contain a datetime (unknown kinds: yes)."""
    if isinstance(kind, _SCALARS):
        return False
    if isinstance(kind, msgspec.inspect.UnionType):
        return any(_holds_time(k, seen) for k in kind.types)
    if isinstance(kind, msgspec.inspect.StructType):
        if kind.cls in seen:
            return False  # being looked at further up
        seen.add(kind.cls)
        return any(_holds_time(f.type, seen) for f in kind.fields)
    if isinstance(kind, msgspec.inspect.ListType):
        return _holds_time(kind.item_type, seen)
    return True


def _millis(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is UTC:  # msgspec's text cut (isoformat with timespec takes 3 us)
            text = _ENCODER.encode(value).decode()  # "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"
            return text[1:24] + "Z" if value.microsecond >= 1000 else text[1:20] + "Z"
        text = value.isoformat(timespec="milliseconds" if value.microsecond >= 1000 else "seconds")
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, dict):
        return {key: _millis(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_millis(item) for item in value]
    return value
