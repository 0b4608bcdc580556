"""Record type -> table mapping: table name, columns, natural key and a fast ``to_row``.

Table-driven: every record field becomes the column of the same name (the migrations use the
field names), except the fields listed as jsonb, which are encoded with msgspec.json, and a few
columns with their own expression (``received_at`` falls back to the write time; a session event
without a device time takes its receive time). From that spec each table's ``to_row`` is compiled
once into a single tuple expression, ``(r.vin, r.time, ..., _json(r.motors), ...)`` (with
``_json`` inlined): about the cost of building the tuple by hand, several times faster than looping
over getters per row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from gateway import records as rec

Row = tuple[Any, ...]

_encode = msgspec.json.Encoder().encode


def _json(value: Any) -> str | None:
    """jsonb text for asyncpg (its jsonb codec takes str); None stays SQL NULL."""
    return None if value is None else _encode(value).decode()


def _now() -> datetime:
    return datetime.now(UTC)


_RECEIVED = "r.received_at or _now()"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one record type is stored."""

    name: str
    record_type: type
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the natural key: its unique index makes re-writes no-ops
    jsonb: frozenset[str]  # columns written as msgspec JSON
    to_row: Callable[[Any], Row]  # record -> tuple in ``columns`` order


def _spec(
    name: str,
    record_type: type[msgspec.Struct],
    key: tuple[str, ...],
    *,
    jsonb: tuple[str, ...] = (),
    exprs: Mapping[str, str] | None = None,
) -> TableSpec:
    fields = [f.name for f in msgspec.structs.fields(record_type)]
    overrides = {"received_at": _RECEIVED, **(exprs or {})}
    unknown = (set(jsonb) | set(overrides) | set(key)) - set(fields)
    if unknown:
        raise ValueError(f"{name}: {sorted(unknown)} are not fields of {record_type.__name__}")
    parts = []
    for f in fields:
        if f in overrides:
            parts.append(overrides[f])
        elif f in jsonb:  # _json(r.f) inlined: one call less per value
            parts.append(f"(None if (_{f} := r.{f}) is None else _encode(_{f}).decode())")
        else:
            parts.append(f"r.{f}")
    source = f"def to_row(r):\n    return ({', '.join(parts)},)\n"
    namespace: dict[str, Any] = {"_encode": _encode, "_now": _now}
    exec(compile(source, f"<silkgate.store.tables {name}.to_row>", "exec"), namespace)
    return TableSpec(name, record_type, tuple(fields), key, frozenset(jsonb), namespace["to_row"])


_AS_GIVEN = {"received_at": "r.received_at"}

SPECS: tuple[TableSpec, ...] = (
    _spec(
        "vehicle_realtime",
        rec.VehicleRealtime,
        ("vin", "time"),
        jsonb=("motors", "extra", "custom_blocks", "quality"),
    ),
    _spec("positions", rec.Position, ("device_id", "protocol", "time"), jsonb=("extra",)),
    _spec("alarms", rec.Alarm, ("device_id", "protocol", "time"), jsonb=("fault_codes",)),
    _spec(
        "vehicle_sessions",
        rec.SessionEvent,
        ("device_id", "protocol", "time", "event"),
        jsonb=("detail",),
        # JT/T 808 registration and authentication carry no device time: use the receive time.
        exprs={"time": "r.time or r.received_at or _now()"},
    ),
    _spec("charger_status", rec.ChargerStatus, ("charger_id", "evse_id", "connector_id", "time")),
    _spec(
        "meter_values",
        rec.MeterValue,
        ("charger_id", "evse_id", "connector_id", "measurand", "phase", "location", "time"),
    ),
    _spec(
        "charging_sessions",
        rec.ChargingSession,
        ("charger_id", "transaction_id", "time", "event"),
        jsonb=("extra",),
    ),
    _spec("swap_events", rec.SwapEvent, ("station_id", "bay", "time"), jsonb=("extra",)),
    # The archive's received_at is the frame's identity (part of the key): no fallback.
    _spec("raw_frames", rec.RawFrame, ("frame_id", "received_at"), exprs=_AS_GIVEN),
    _spec("dead_letters", rec.DeadLetter, ("frame_id", "received_at"), exprs=_AS_GIVEN),
)

TABLES: dict[type, TableSpec] = {s.record_type: s for s in SPECS}
"""Record type -> its table."""

BY_NAME: dict[str, TableSpec] = {s.name: s for s in SPECS}
"""Table name -> its spec."""


def spec_for(record_type: type) -> TableSpec:
    """The table of a record type (a TypeError for types the store does not write)."""
    try:
        return TABLES[record_type]
    except KeyError:
        raise TypeError(f"no table for {record_type.__name__}") from None
