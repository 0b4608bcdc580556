"""Versioned JSON message sets (swap stations, chargers): the decoding they share.

A message set is a tagged union of msgspec Structs on ``type`` whose members start with ``v``
(the set's version), ``time`` and the sender's id. :class:`MessageSet` decodes one payload into
its message with one msgspec decode and turns every refusal into the set's
:class:`PayloadError` subclass: a stable reason code and the JSON path of the culprit, e.g.
``"$.bays[2].soc_pct: Expected `float` <= 100.0"``. In order:

1. ``too_large``: more than the set's size limit (before anything is parsed);
2. ``not_json``: not well-formed JSON, or not UTF-8;
3. the envelope (a payload of another version or type would be checked against the wrong
   rules): ``v`` missing (``missing_field``), not an integer (``bad_type``), not supported
   (``unsupported_version``); then ``type`` likewise, or naming no message (``unknown_type``);
4. the Struct's own constraints, msgspec's error mapped to ``missing_field``, ``bad_type``,
   ``bad_value`` (out of range, not in the enumeration, bad pattern or date) or ``naive_time``
   (a date-time without a UTC offset).

:meth:`MessageSet.identify` then settles the sender's id between the payload and the transport
(the MQTT topic). What a schema cannot say (cross-field rules) each set checks itself, raising
its error through :meth:`PayloadError.at`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Generic, Literal, Self, TypeVar, get_args

import msgspec

__all__ = [
    "COMMON_REASONS",
    "RFC3339",
    "TZ_AWARE",
    "AwareTime",
    "CommonReason",
    "MessageSet",
    "Payload",
    "PayloadError",
    "schema_text",
]

CommonReason = Literal[
    "too_large",  # more than the set's size limit
    "not_json",  # not well-formed JSON (or not UTF-8)
    "unsupported_version",  # "v" is an integer the set does not know
    "unknown_type",  # "type" is a string that names no message
    "missing_field",  # a required field is absent
    "bad_type",  # a JSON value of the wrong type (null included where not allowed)
    "bad_value",  # out of range, not in the enumeration, inconsistent, bad format
    "naive_time",  # a date-time without a UTC offset
]
"""The reasons :class:`MessageSet` gives; every set's reason enumeration has them all."""

COMMON_REASONS: Final = frozenset(get_args(CommonReason))

RFC3339: Final = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
"""An RFC 3339 date-time with an offset, so that a schema alone refuses naive times (format
``date-time`` is an annotation that validators need not check)."""

TZ_AWARE: Final = msgspec.Meta(tz=True, extra_json_schema={"pattern": RFC3339})
"""The constraint of every date-time field: a UTC offset is required."""

AwareTime = Annotated[datetime, TZ_AWARE]
"""A date-time field (annotate it further with its description)."""

Payload = bytes | bytearray | memoryview | str
"""What :meth:`MessageSet.decode` takes."""


class PayloadError(ValueError):
    """A refused payload: ``reason`` (a member of the subclass's ``REASONS``), ``message``
    (starting with the JSON path) and ``path``. Each message set subclasses it."""

    REASONS: ClassVar[type[StrEnum]]
    reason: StrEnum

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = COMMON_REASONS - {str(r) for r in cls.REASONS}
        if missing:
            raise TypeError(f"{cls.__name__}.REASONS lacks {sorted(missing)}")

    def __init__(self, reason: StrEnum | str, message: str, path: str = "$") -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = self.REASONS(reason)
        self.message = message
        self.path = path

    @classmethod
    def at(cls, reason: StrEnum | str, path: str, detail: str) -> Self:
        """The error of the value at ``path`` (the message is ``"<path>: <detail>"``)."""
        return cls(reason, f"{path}: {detail}", path)


M = TypeVar("M", bound=msgspec.Struct)


class _Envelope(msgspec.Struct):
    """The version and type of a payload the full decode refused (Any: checked by hand)."""

    v: Any = msgspec.UNSET
    type: Any = msgspec.UNSET


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_ENCODER: Final = msgspec.json.Encoder()

_AT: Final = " - at `"
_MISSING: Final = "Object missing required field `"
# msgspec's messages -> reason; the first match wins, the rest are bad values.
_RULES: Final[tuple[tuple[str, CommonReason], ...]] = (
    ("Expected `datetime` with a timezone component", "naive_time"),
    ("Expected `array` of length", "bad_value"),
    ("Expected `str` of length", "bad_value"),
    ("Expected `str` matching regex", "bad_value"),
    ("Expected `int` >", "bad_value"),
    ("Expected `int` <", "bad_value"),
    ("Expected `float` >", "bad_value"),
    ("Expected `float` <", "bad_value"),
    ("Expected `", "bad_type"),  # "Expected `int`, got `str`", "Expected `object`, got ..."
)


class MessageSet(Generic[M]):
    """Decoding of one message set: ``message`` is the tagged union of its Structs (a type
    expression, so typed Any), ``versions`` the ``v`` values it accepts, ``error`` its
    PayloadError subclass, ``max_payload`` the size limit in bytes (characters for a str).
    ``types`` maps each ``type`` value (a Struct's tag) to its Struct."""

    def __init__(
        self, message: Any, *, versions: frozenset[int], error: type[PayloadError], max_payload: int
    ) -> None:
        self.types: dict[str, type[M]] = {
            str(kind.__struct_config__.tag): kind for kind in get_args(message)
        }
        self.versions = versions
        self.error = error
        self.max_payload = max_payload
        self._decoder: msgspec.json.Decoder[M] = msgspec.json.Decoder(message)
        self._message = message

    def encode(self, message: M) -> bytes:
        """The JSON payload of a message (fields left at their default are omitted when the
        Structs say ``omit_defaults``)."""
        return _ENCODER.encode(message)

    def decode(self, payload: Payload) -> M:
        """One payload as its message (see the module docstring); raises ``self.error``."""
        if len(payload) > self.max_payload:
            raise self.error.at(
                "too_large", "$", f"{len(payload)} bytes, at most {self.max_payload}"
            )
        try:
            return self._decoder.decode(payload)
        except msgspec.ValidationError as exc:
            raise (self._envelope_error(payload) or self._validation_error(exc)) from exc
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # bad UTF-8 in a string: latter
            raise self.error.at("not_json", "$", str(exc)) from exc
        except RecursionError as exc:  # msgspec stops at Python's recursion limit
            raise self.error.at("bad_value", "$", "JSON nested too deeply") from exc

    def identify(
        self, message: M, field: str, transport: str | None, id_type: Any, mismatch: str
    ) -> M:
        """``message`` with its sender id ``field`` settled: the payload's, the transport's
        (the MQTT topic's; it must be a valid ``id_type``), or both when equal (else the
        ``mismatch`` reason: a sender must not write another's data, and the topic is what the
        broker's ACL authenticates); neither is ``missing_field``."""
        own = getattr(message, field)
        path = f"$.{field}"
        if transport is None:
            if own is None:
                raise self.error.at(
                    "missing_field", path, f"no {field} in the payload and none from the transport"
                )
            return message
        if own is None:
            try:
                msgspec.convert(transport, id_type)
            except msgspec.ValidationError as exc:
                raise self.error.at("bad_value", path, f"from the transport: {exc}") from exc
            return msgspec.structs.replace(message, **{field: transport})
        if own != transport:
            raise self.error.at(
                mismatch, path, f"payload names {own!r}, the transport {transport[:64]!r}"
            )
        return message

    def schema(self, *, title: str, description: str) -> dict[str, Any]:
        """The JSON Schema (2020-12) of one message of the set."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": title,
            "description": description,
            **msgspec.json.schema(self._message),
        }

    def _envelope_error(self, payload: Payload) -> PayloadError | None:
        """The error of ``v`` or ``type``, if any: reported before the other fields' errors."""
        try:
            env = _ENVELOPE_DECODER.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None  # not an object: the full decode's error says so
        v, kind = env.v, env.type
        if v is msgspec.UNSET:
            return self.error.at("missing_field", "$.v", "Object missing required field `v`")
        if type(v) is not int:
            return self.error.at("bad_type", "$.v", f"Expected `int`, got {_json_type(v)}")
        if v not in self.versions:
            return self.error.at(
                "unsupported_version", "$.v", f"version {v}; supported: {sorted(self.versions)}"
            )
        if kind is msgspec.UNSET:
            return self.error.at("missing_field", "$.type", "Object missing required field `type`")
        if not isinstance(kind, str):
            return self.error.at("bad_type", "$.type", f"Expected `str`, got {_json_type(kind)}")
        if kind not in self.types:
            return self.error.at(
                "unknown_type",
                "$.type",
                f"unknown message type {kind[:64]!r}; known: {list(self.types)}",
            )
        return None

    def _validation_error(self, exc: msgspec.ValidationError) -> PayloadError:
        text = str(exc)
        path = "$"
        cut = text.rfind(_AT)
        if cut >= 0 and text.endswith("`"):
            path, text = text[cut + len(_AT) : -1], text[:cut]
        if text.startswith(_MISSING):
            field = text[len(_MISSING) : -1]
            return self.error.at("missing_field", f"{path}.{field}", text)
        reason = next((r for prefix, r in _RULES if text.startswith(prefix)), "bad_value")
        return self.error.at(reason, path, text)


def _json_type(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}
    return "`null`" if value is None else f"`{names.get(type(value), type(value).__name__)}`"


def schema_text(schema: Mapping[str, Any]) -> str:
    """A JSON Schema as a checked-in file's text (indented, newline at the end)."""
    return msgspec.json.format(msgspec.json.encode(schema), indent=2).decode() + "\n"
