"""Record type -> table mapping: table name, columns, natural key and where values come from.

Table-driven: every record field becomes the column of the same name (the migrations use the
field names), except the fields listed as jsonb, which are encoded with msgspec.json, and a few
columns with their own :class:`Source` (``received_at`` falls back to the write time; a session
event without a device time takes its receive time). The sources drive both the C binary COPY
encoder (:mod:`gateway.store.binary`) and ``to_row``, which is compiled once per table into a
single tuple expression, ``(r.vin, r.time, ..., _json(r.motors), ...)`` (with ``_json``
inlined), for asyncpg's own COPY encoding and the naive-insert baseline.
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


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a column's value comes from: the first of ``attrs`` that is not None, else the
    write time when ``now`` is set, else NULL; ``json`` values are encoded with msgspec.json."""

    attrs: tuple[str, ...]
    now: bool = False
    json: bool = False

    def expression(self) -> str:
        """The Python expression of this source over a record ``r`` (for ``to_row``)."""
        if self.json:  # _json(r.f) inlined: one call less per value
            (f,) = self.attrs
            return f"(None if (_{f} := r.{f}) is None else _encode(_{f}).decode())"
        parts = [f"r.{a}" for a in self.attrs] + (["_now()"] if self.now else [])
        return " or ".join(parts)


_RECEIVED = Source(("received_at",), now=True)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one record type is stored."""

    name: str
    record_type: type
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the natural key: its unique index makes re-writes no-ops
    jsonb: frozenset[str]  # columns written as msgspec JSON
    sources: tuple[Source, ...]  # per column, where its value comes from
    to_row: Callable[[Any], Row]  # record -> tuple in ``columns`` order


def _spec(
    name: str,
    record_type: type[msgspec.Struct],
    key: tuple[str, ...],
    *,
    jsonb: tuple[str, ...] = (),
    sources: Mapping[str, Source] | None = None,
) -> TableSpec:
    fields = [f.name for f in msgspec.structs.fields(record_type)]
    overrides = {"received_at": _RECEIVED, **(sources or {})}
    unknown = (set(jsonb) | set(overrides) | set(key)) - set(fields)
    if unknown:
        raise ValueError(f"{name}: {sorted(unknown)} are not fields of {record_type.__name__}")
    srcs = tuple(overrides.get(f) or Source((f,), json=f in jsonb) for f in fields)
    parts = [s.expression() for s in srcs]
    source = f"def to_row(r):\n    return ({', '.join(parts)},)\n"
    namespace: dict[str, Any] = {"_encode": _encode, "_now": _now}
    exec(compile(source, f"<silkgate.store.tables {name}.to_row>", "exec"), namespace)
    return TableSpec(
        name, record_type, tuple(fields), key, frozenset(jsonb), srcs, namespace["to_row"]
    )


_AS_GIVEN = {"received_at": Source(("received_at",))}

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
        sources={"time": Source(("time", "received_at"), now=True)},
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
    _spec(
        "charger_events",
        rec.ChargerEvent,
        ("charger_id", "event", "key", "time"),
        jsonb=("detail",),
    ),
    _spec("swap_events", rec.SwapEvent, ("station_id", "bay", "time"), jsonb=("extra",)),
    _spec("station_status", rec.StationStatus, ("station_id", "time"), jsonb=("extra",)),
    _spec("battery_inventory", rec.BatteryInventory, ("station_id", "bay", "time")),
    _spec("battery_charging", rec.BatteryCharging, ("station_id", "bay", "time")),
    # The archive's received_at is the frame's identity (part of the key): no fallback.
    _spec("raw_frames", rec.RawFrame, ("frame_id", "received_at"), sources=_AS_GIVEN),
    _spec("dead_letters", rec.DeadLetter, ("frame_id", "received_at"), sources=_AS_GIVEN),
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
