"""Turn decoded messages and records into JSON-able builtins for people and logs.

Bytes become hex strings, datetimes ISO 8601 UTC with a ``Z``, device times
``{"utc": ..., "raw": hex}``, and read-only properties of a Struct (unpacked cell voltages,
probe temperatures, flag names) are included beside its fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import msgspec

from gateway.codecs.common import DeviceTime


def iso_utc(t: datetime) -> str:
    """ISO 8601 in UTC with a trailing Z, e.g. ``2018-06-23T04:05:02Z``."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@cache
def _properties(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        names.extend(n for n, v in vars(klass).items() if isinstance(v, property))
    return tuple(dict.fromkeys(names))


def to_builtins(obj: Any) -> Any:
    """JSON-able builtins for a Struct tree (see the module docstring for the conventions)."""
    if isinstance(obj, DeviceTime):
        return {"utc": iso_utc(obj.utc) if obj.utc else None, "raw": obj.raw.hex()}
    if isinstance(obj, msgspec.Struct):
        out = {f: to_builtins(getattr(obj, f)) for f in obj.__struct_fields__}
        config = obj.__struct_config__
        if isinstance(config.tag_field, str):  # tagged unions: say which Struct this is
            out[config.tag_field] = config.tag
        for name in _properties(type(obj)):
            out[name] = to_builtins(getattr(obj, name))
        return out
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).hex()
    if isinstance(obj, datetime):
        return iso_utc(obj)
    if isinstance(obj, dict):
        return {str(k): to_builtins(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | frozenset | set):
        return [to_builtins(v) for v in obj]
    return obj


_encoder = msgspec.json.Encoder()


def to_json(obj: Any) -> bytes:
    """One compact JSON document for ``obj``."""
    return _encoder.encode(to_builtins(obj))
