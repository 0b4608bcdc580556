"""The record kinds the API queries, and the SQL for their rows and time-bucket aggregates.

Every kind is one hypertable (migrations 0002, 0008, 0011) with a time column, a device
column, a natural key, numeric columns (aggregated with avg / min / max / last) and the columns
that may be filtered on (equality) or grouped by. Identifiers in the SQL come only from this
catalog; every value is a bind parameter.

Paging is keyset paging on the natural key, ``(time, device, rest of the key)``: a page ends
with an opaque cursor (URL-safe base64 of the last row's key) from which the next page starts,
so pages stay correct and cheap however deep they go and while rows keep arriving. Nullable
key columns compare through ``coalesce`` with a sentinel (OCPP 1.6 has no EVSE: -1).
"""

from __future__ import annotations

import base64
import re
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
import msgspec

from gateway.api.auth import Principal
from gateway.api.scope import DeviceClass, scope_sql

Order = Literal["asc", "desc"]
AGGS: Final = ("avg", "min", "max", "last")


class QueryError(ValueError):
    """A query the API refuses (HTTP 400): unknown column, bad cursor, too many buckets."""


@dataclass(frozen=True, slots=True)
class Col:
    """A key or group-by column: its SQL type, and the sentinel standing for NULL in keyset
    comparisons (None: the column is NOT NULL)."""

    name: str
    type: Literal["text", "int4", "bool"]
    null: str | int | None = None

    def expr(self, alias: str) -> str:
        col = f"{alias}.{self.name}"
        if self.null is None:
            return col
        return f"coalesce({col}, {_literal(self.null)})"

    def key_value(self, value: Any) -> Any:
        return self.null if value is None else value


def _literal(value: str | int) -> str:
    return "''" if value == "" else str(int(value))


@dataclass(frozen=True)
class Kind:
    """One queryable record kind (see the module docstring)."""

    name: str
    table: str
    device: str  # the device id column
    device_class: DeviceClass
    key: tuple[Col, ...]  # the natural key after (time, device)
    numeric: tuple[str, ...]
    filters: Mapping[str, Literal["text", "int4", "bool"]]
    dims: tuple[Col, ...]  # group-by choices
    # packed columns unpacked beside themselves in raw rows: (column, new column, unpack)
    unpack: tuple[tuple[str, str, Callable[[str], list[Any]]], ...] = ()
    time: str = "time"
    describe: str = ""
    dim_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim_names", frozenset(d.name for d in self.dims))

    def dim(self, name: str) -> Col:
        for d in self.dims:
            if d.name == name:
                return d
        raise QueryError(
            f"group_by: {name!r} is not one of {', '.join(d.name for d in self.dims) or 'none'}"
        )


def unpack_cells(packed: str) -> list[float | None]:
    """Cell voltages as stored (hex of big-endian WORDs, 1 mV) in volts; the sentinels
    0xFFFE / 0xFFFF are None. What ``silkgate_cells()`` does in SQL, at a fraction of the
    server's cost (0.25 ms a row there)."""
    raw = bytes.fromhex(packed)
    words = struct.unpack(f">{len(raw) // 2}H", raw[: len(raw) // 2 * 2])
    return [None if w >= 0xFFFE else w / 1000 for w in words]


def unpack_temps(packed: str) -> list[int | None]:
    """Probe temperatures as stored (hex of BYTEs, offset -40) in degC; 0xFE / 0xFF are
    None (``silkgate_temps()``)."""
    return [None if b >= 0xFE else b - 40 for b in bytes.fromhex(packed)]


def unpacked(k: Kind, row: Mapping[str, Any]) -> dict[str, Any]:
    """A raw row as the API returns it: its packed columns unpacked beside them."""
    doc = dict(row)
    for column, name, unpack in k.unpack:
        value = doc.get(column)
        doc[name] = None if value is None else unpack(value)
    return doc


def _int(name: str, null: int | None = None) -> Col:
    return Col(name, "int4", null)


def _text(name: str, null: str | None = None) -> Col:
    return Col(name, "text", null)


KINDS: Final[dict[str, Kind]] = {
    k.name: k
    for k in (
        Kind(
            "vehicle_realtime",
            "vehicle_realtime",
            "vin",
            "vehicle",
            (),
            (
                "speed_kmh",
                "odometer_km",
                "total_voltage_v",
                "total_current_a",
                "soc_pct",
                "insulation_kohm",
                "accelerator_pct",
                "brake_pct",
                "crank_speed_rpm",
                "fuel_rate",
                "lon",
                "lat",
                "max_cell_v",
                "min_cell_v",
                "max_temp_c",
                "min_temp_c",
                "alarm_level",
                "fault_count",
                "pack_voltage_v",
                "pack_current_a",
                "cell_v_min",
                "cell_v_max",
                "cell_v_mean",
                "temp_min_c",
                "temp_max_c",
                "temp_mean_c",
            ),
            {
                "vehicle_state": "int4",
                "charge_state": "int4",
                "run_mode": "int4",
                "reissue": "bool",
            },
            (_int("vehicle_state", -1), _int("charge_state", -1), _int("run_mode", -1)),
            unpack=(
                ("cell_voltages", "cell_voltages_v", unpack_cells),
                ("probe_temps", "probe_temps_c", unpack_temps),
            ),
            describe="GB/T 32960 realtime and reissue frames, one wide row each (device: VIN)",
        ),
        Kind(
            "positions",
            "positions",
            "device_id",
            "vehicle",
            (_text("protocol"),),
            ("lat", "lon", "altitude_m", "speed_kmh", "heading_deg", "odometer_km"),
            {"protocol": "text", "reissue": "bool"},
            (_text("protocol"),),
            describe="positions of GB/T 32960 vehicles and JT/T 808 terminals (VIN or phone)",
        ),
        Kind(
            "alarms",
            "alarms",
            "device_id",
            "vehicle",
            (_text("protocol"),),
            ("level",),
            {"protocol": "text", "level": "int4"},
            (_text("protocol"), _int("level", -1)),
            describe="alarms of vehicles and terminals",
        ),
        Kind(
            "session_events",
            "vehicle_sessions",
            "device_id",
            "vehicle",
            (_text("protocol"), _text("event")),
            (),
            {"protocol": "text", "event": "text"},
            (_text("protocol"), _text("event")),
            describe="logins, logouts, registrations, authentications, disconnects",
        ),
        Kind(
            "charger_status",
            "charger_status",
            "charger_id",
            "charger",
            (_int("evse_id", -1), _int("connector_id")),
            (),
            {"connector_id": "int4", "evse_id": "int4", "status": "text"},
            (_int("connector_id"), _int("evse_id", -1), _text("status")),
            describe="OCPP connector status history",
        ),
        Kind(
            "meter_values",
            "meter_values",
            "charger_id",
            "charger",
            (
                _int("evse_id", -1),
                _int("connector_id"),
                _text("measurand"),
                _text("phase", ""),
                _text("location", ""),
            ),
            ("value",),
            {
                "connector_id": "int4",
                "evse_id": "int4",
                "measurand": "text",
                "phase": "text",
                "location": "text",
                "transaction_id": "text",
                "context": "text",
            },
            (
                _int("connector_id"),
                _int("evse_id", -1),
                _text("measurand"),
                _text("phase", ""),
                _text("location", ""),
                _text("transaction_id", ""),
            ),
            describe="OCPP sampled values in SI units, one per row (filter or group by measurand)",
        ),
        Kind(
            "charging_sessions",
            "charging_sessions",
            "charger_id",
            "charger",
            (_text("transaction_id"), _text("event")),
            ("meter_start_wh", "meter_stop_wh", "energy_wh", "soc_start_pct", "soc_pct"),
            {
                "transaction_id": "text",
                "event": "text",
                "connector_id": "int4",
                "evse_id": "int4",
            },
            (_text("event"), _int("connector_id", -1), _text("transaction_id")),
            describe="charging transaction events: start, update, stop",
        ),
        Kind(
            "charger_events",
            "charger_events",
            "charger_id",
            "charger",
            (_text("event"), _text("key")),
            (),
            {"event": "text", "key": "text"},
            (_text("event"),),
            describe="boots, security events, firmware and log status, connects, disconnects",
        ),
        Kind(
            "swap_events",
            "swap_events",
            "station_id",
            "station",
            (_int("bay", -1),),
            (
                "pack_out_soc_pct",
                "pack_out_energy_wh",
                "pack_in_soc_pct",
                "pack_in_energy_wh",
                "duration_s",
            ),
            {"bay": "int4", "result": "text", "vin": "text"},
            (_int("bay", -1), _text("result")),
            describe="battery swaps",
        ),
        Kind(
            "station_status",
            "station_status",
            "station_id",
            "station",
            (),
            ("bays_total", "bays_available", "batteries_charged", "batteries_charging", "power_w"),
            {"state": "text"},
            (_text("state"),),
            describe="swap station status",
        ),
        Kind(
            "battery_inventory",
            "battery_inventory",
            "station_id",
            "station",
            (_int("bay"),),
            ("soc_pct", "soh_pct", "energy_wh", "temperature_c"),
            {"bay": "int4", "state": "text", "pack_id": "text"},
            (_int("bay"), _text("state")),
            describe="what each storage bay of a swap station holds",
        ),
        Kind(
            "battery_charging",
            "battery_charging",
            "station_id",
            "station",
            (_int("bay"),),
            ("soc_pct", "power_w", "voltage_v", "current_a", "energy_wh", "temperature_c"),
            {"bay": "int4", "state": "text", "pack_id": "text"},
            (_int("bay"), _text("state")),
            describe="packs charging in a swap station's bays",
        ),
    )
}


def kind(name: str) -> Kind:
    """The kind of that name (:class:`QueryError` when unknown)."""
    try:
        return KINDS[name]
    except KeyError:
        raise QueryError(f"no record kind {name!r}; kinds: {', '.join(KINDS)}") from None


# -- parameters -------------------------------------------------------------------------------


class Params:
    """Bind parameters collected while the SQL is built."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{'::' + cast if cast else ''}"

    def scope(self, p: Principal, cls: DeviceClass, column: str) -> str | None:
        """``column IN (ids of class cls that p may see)``, its parameter added; None when
        ``p`` sees every device."""
        scope = scope_sql(p, cls, f"${len(self.values) + 1}")
        if scope is None:
            return None
        self.values.append(scope[1])
        return f"{column} IN ({scope[0]})"


def parse_filter(value: str, type_: str, name: str) -> Any:
    """A filter value from its query-string text."""
    if type_ == "int4":
        try:
            return int(value)
        except ValueError:
            raise QueryError(f"{name}: {value!r} is not an integer") from None
    if type_ == "bool":
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise QueryError(f"{name}: {value!r} is not true or false")
    return value


_WIDTH = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|hour|d|day|w|week|mo|month)s?\s*$")
_UNITS: Final[dict[str, tuple[str, float]]] = {
    "s": ("seconds", 1),
    "sec": ("seconds", 1),
    "m": ("minutes", 60),
    "min": ("minutes", 60),
    "h": ("hours", 3600),
    "hour": ("hours", 3600),
    "d": ("days", 86400),
    "day": ("days", 86400),
    "w": ("weeks", 604800),
    "week": ("weeks", 604800),
    "mo": ("months", 30 * 86400),
    "month": ("months", 30 * 86400),
}


def bucket_width(text: str) -> tuple[str, float]:
    """``"15m"`` -> ``("15 minutes", 900.0)``: the PostgreSQL interval and its length in
    seconds (months counted as 30 days). Units: s, m, h, d, w, mo."""
    match = _WIDTH.match(text)
    if match is None or int(match[1]) < 1:
        raise QueryError(f"bucket: {text!r} is not a width like 30s, 15m, 1h, 1d, 1w or 1mo")
    unit, seconds = _UNITS[match[2]]
    n = int(match[1])
    return f"{n} {unit}", n * seconds


def utc(t: datetime) -> datetime:
    """An aware datetime (naive ones are taken as UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def time_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """``[from, to)``: ``to`` defaults to now, ``from`` to a day before ``to``."""
    stop = utc(end) if end is not None else datetime.now(UTC)
    begin = utc(start) if start is not None else stop - timedelta(days=1)
    if begin >= stop:
        raise QueryError("from must be before to")
    return begin, stop


# -- cursors ------------------------------------------------------------------------------


def encode_cursor(tag: str, values: Sequence[Any]) -> str:
    """An opaque cursor: the query's tag and the last row's key."""
    out = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = msgspec.json.encode([tag, out])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, tag: str, types: Sequence[str]) -> list[Any]:
    """The key in a cursor made by :func:`encode_cursor` for the same ``tag`` (the kind and
    the shape of the query) and key ``types``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_tag, values = msgspec.json.decode(raw)
    except (ValueError, TypeError, msgspec.DecodeError):
        raise QueryError("cursor: not a cursor of this API") from None
    if got_tag != tag or not isinstance(values, list) or len(values) != len(types):
        raise QueryError("cursor: made by a different query")
    out: list[Any] = []
    for value, type_ in zip(values, types, strict=True):
        ok = (
            (type_ == "timestamptz" and isinstance(value, str))
            or (type_ == "int4" and isinstance(value, int) and not isinstance(value, bool))
            or (type_ == "text" and isinstance(value, str))
            or (type_ == "bool" and isinstance(value, bool))
        )
        if not ok:
            raise QueryError("cursor: damaged")
        if type_ == "timestamptz":
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise QueryError("cursor: damaged") from None
        out.append(value)
    return out


# -- SQL ----------------------------------------------------------------------------------


@dataclass
class Query:
    """SQL, its parameters and how to read the key of a result row back (for the cursor)."""

    sql: str
    args: list[Any]
    tag: str
    key: list[str]  # result columns of the key, in order
    key_nulls: list[str | int | None]


def _where(
    k: Kind,
    p: Principal,
    params: Params,
    *,
    start: datetime,
    end: datetime,
    devices: Sequence[str] | None,
    filters: Mapping[str, str],
) -> list[str]:
    where = [f"t.{k.time} >= {params.add(start)}", f"t.{k.time} < {params.add(end)}"]
    if devices is not None:
        where.append(f"t.{k.device} = ANY({params.add(list(devices), 'text[]')})")
    for name, text in filters.items():
        type_ = k.filters.get(name)
        if type_ is None:
            raise QueryError(
                f"{name}: not a filter of {k.name}; filters: {', '.join(k.filters) or 'none'}"
            )
        where.append(f"t.{name} = {params.add(parse_filter(text, type_, name))}")
    scoped = params.scope(p, k.device_class, f"t.{k.device}")
    if scoped is not None:
        where.append(scoped)
    return where


def _keyset(
    exprs: Sequence[str], types: Sequence[str], after: Sequence[Any], order: Order, params: Params
) -> str:
    placeholders = [params.add(v, t) for v, t in zip(after, types, strict=True)]
    op = ">" if order == "asc" else "<"
    return f"({', '.join(exprs)}) {op} ({', '.join(placeholders)})"


def rows_query(
    k: Kind,
    p: Principal,
    *,
    start: datetime,
    end: datetime,
    devices: Sequence[str] | None = None,
    filters: Mapping[str, str] | None = None,
    cursor: str | None = None,
    order: Order = "asc",
    limit: int,
) -> Query:
    """Raw rows of ``k`` in ``[start, end)``, in key order, at most ``limit`` (+1 fetched to
    tell whether there is a next page)."""
    params = Params()
    where = _where(k, p, params, start=start, end=end, devices=devices, filters=filters or {})
    key_cols = [f"t.{k.time}", f"t.{k.device}", *(c.expr("t") for c in k.key)]
    types = ["timestamptz", "text", *(c.type for c in k.key)]
    tag = f"rows:{k.name}:{order}"
    if cursor is not None:
        after = decode_cursor(cursor, tag, types)
        where.append(_keyset(key_cols, types, after, order, params))
    direction = "" if order == "asc" else " DESC"
    sql = (
        f"SELECT t.* FROM {k.table} t WHERE {' AND '.join(where)} "
        f"ORDER BY {', '.join(c + direction for c in key_cols)} LIMIT {params.add(limit + 1)}"
    )
    return Query(
        sql,
        params.values,
        tag,
        [k.time, k.device, *(c.name for c in k.key)],
        [None, None, *(c.null for c in k.key)],
    )


def aggregate_query(
    k: Kind,
    p: Principal,
    *,
    start: datetime,
    end: datetime,
    width: str,
    tz: str | None = None,
    columns: Sequence[str] | None = None,
    aggs: Sequence[str] = AGGS,
    group_by: Sequence[str] = (),
    per_device: bool = True,
    devices: Sequence[str] | None = None,
    filters: Mapping[str, str] | None = None,
    cursor: str | None = None,
    limit: int,
) -> Query:
    """``time_bucket`` aggregates of ``k``: per bucket (and device, and ``group_by`` columns)
    the row count and, for each numeric column, the ``aggs`` (``avg``, ``min``, ``max``,
    ``last`` by time), as result columns ``"<column>.<agg>"``."""
    cols = list(k.numeric if columns is None else dict.fromkeys(columns))
    for c in cols:
        if c not in k.numeric:
            raise QueryError(
                f"columns: {c!r} is not a numeric column of {k.name}; "
                f"numeric columns: {', '.join(k.numeric) or 'none'}"
            )
    for a in aggs:
        if a not in AGGS:
            raise QueryError(f"aggs: {a!r} is not one of {', '.join(AGGS)}")
    dims = [k.dim(name) for name in dict.fromkeys(group_by)]
    params = Params()
    bucket = f"time_bucket({params.add(width, 'text')}::interval, t.{k.time}"
    bucket += f", {params.add(tz, 'text')})" if tz else ")"
    where = _where(k, p, params, start=start, end=end, devices=devices, filters=filters or {})
    select = [f"{bucket} AS bucket"]
    key_exprs = ["q.bucket"]
    types = ["timestamptz"]
    key_names = ["bucket"]
    nulls: list[str | int | None] = [None]
    if per_device:
        select.append(f"t.{k.device} AS device_id")
        key_exprs.append("q.device_id")
        types.append("text")
        key_names.append("device_id")
        nulls.append(None)
    for d in dims:
        select.append(f"t.{d.name} AS {d.name}")
        key_exprs.append(d.expr("q"))
        types.append(d.type)
        key_names.append(d.name)
        nulls.append(d.null)
    groups = [str(i) for i in range(1, len(select) + 1)]  # by position: no name clashes
    select.append("count(*) AS count")
    for c in cols:
        for a in aggs:
            if a == "avg":
                expr = f"avg(t.{c})::float8"
            elif a == "last":
                expr = f"last(t.{c}, t.{k.time})"
            else:
                expr = f"{a}(t.{c})"
            select.append(f'{expr} AS "{c}.{a}"')
    tag = f"agg:{k.name}:{width}:{int(per_device)}:{','.join(d.name for d in dims)}"
    inner = (
        f"SELECT {', '.join(select)} FROM {k.table} t WHERE {' AND '.join(where)} "
        f"GROUP BY {', '.join(groups)}"
    )
    outer_where = ""
    if cursor is not None:
        after = decode_cursor(cursor, tag, types)
        outer_where = " WHERE " + _keyset(key_exprs, types, after, "asc", params)
    sql = (
        f"SELECT * FROM ({inner}) q{outer_where} ORDER BY {', '.join(key_exprs)} "
        f"LIMIT {params.add(limit + 1)}"
    )
    return Query(sql, params.values, tag, key_names, nulls)


def page(q: Query, rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The rows of a page and the cursor of the next one (None: this is the last page)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    values = [
        last[name] if null is None else (null if last[name] is None else last[name])
        for name, null in zip(q.key, q.key_nulls, strict=True)
    ]
    return rows, encode_cursor(q.tag, values)


async def keyset_page(
    pool: asyncpg.Pool,
    params: Params,
    *,
    table: str,
    columns: str,
    time_col: str,
    id_col: str,
    id_type: Literal["uuid", "int8"],
    where: list[str],
    cursor: str | None,
    order: Order,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of ``table`` (tables outside the catalog: commands, the audit, the raw archive)
    in ``(time_col, id_col)`` order, keyset paged on that pair, and the next page's cursor."""
    tag = f"{table}:{order}"
    if cursor is not None:
        after = decode_cursor(cursor, tag, ["timestamptz", "text"])
        try:
            key: Any = int(after[1]) if id_type == "int8" else uuid.UUID(after[1])
        except ValueError:
            raise QueryError("cursor: damaged") from None
        where.append(
            _keyset([time_col, id_col], ["timestamptz", id_type], [after[0], key], order, params)
        )
    direction = "" if order == "asc" else " DESC"
    sql = (
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} "
        f"ORDER BY {time_col}{direction}, {id_col}{direction} LIMIT {params.add(limit + 1)}"
    )
    async with pool.acquire() as conn:
        rows = await conn.fetch(sql, *params.values)
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = encode_cursor(tag, [rows[-1][time_col], str(rows[-1][id_col])])
    return [dict(r) for r in rows], nxt


def nest_aggregates(row: Mapping[str, Any]) -> dict[str, Any]:
    """``{"speed_kmh.avg": 1.0, ...}`` -> ``{"speed_kmh": {"avg": 1.0, ...}, ...}``."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        col, dot, agg = name.partition(".")
        if dot:
            out.setdefault(col, {})[agg] = value
        else:
            out[name] = value
    return out


def catalog() -> list[dict[str, Any]]:
    """The kinds as the API lists them."""
    return [
        {
            "kind": k.name,
            "description": k.describe,
            "device_column": k.device,
            "device_class": k.device_class,
            "key": [k.time, k.device, *(c.name for c in k.key)],
            "numeric": list(k.numeric),
            "filters": dict(k.filters),
            "group_by": [d.name for d in k.dims],
        }
        for k in KINDS.values()
    ]
