"""The record kinds of the API and the SQL they make (no database: gateway.api.kinds)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.api import kinds as K
from gateway.api.auth import Principal
from gateway.store.tables import BY_NAME

ADMIN = Principal(token_id="a", name="a", role="admin")
ACME = Principal(token_id="o", name="o", role="operator", operator_id="acme")
NORTH = Principal(token_id="r", name="r", role="regulator", fleets=("north", "south"))
START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(K.KINDS))
def test_every_column_of_a_kind_is_a_column_of_its_table(name: str) -> None:
    k = K.KINDS[name]
    columns = set(BY_NAME[k.table].columns)
    named = {k.time, k.device, *(c.name for c in k.key), *k.numeric, *k.filters}
    named |= {d.name for d in k.dims}
    assert named <= columns, named - columns
    # the key is the table's natural key
    assert {k.time, k.device, *(c.name for c in k.key)} == set(BY_NAME[k.table].key)


def test_every_hypertable_but_the_archive_is_a_kind() -> None:
    tables = {s.name for s in BY_NAME.values()} - {"raw_frames", "dead_letters"}
    assert {k.table for k in K.KINDS.values()} == tables


@pytest.mark.parametrize(
    ("text", "interval", "seconds"),
    [
        ("30s", "30 seconds", 30),
        ("15m", "15 minutes", 900),
        ("1h", "1 hours", 3600),
        ("2d", "2 days", 172800),
        ("1w", "1 weeks", 604800),
        ("1mo", "1 months", 2592000),
        (" 5 min ", "5 minutes", 300),
    ],
)
def test_bucket_widths(text: str, interval: str, seconds: float) -> None:
    assert K.bucket_width(text) == (interval, seconds)


@pytest.mark.parametrize("text", ["", "0m", "1", "m", "1y", "1.5h", "-1h", "1h; DROP TABLE x"])
def test_bad_bucket_widths(text: str) -> None:
    with pytest.raises(K.QueryError):
        K.bucket_width(text)


def test_cursors_round_trip_and_refuse_other_queries() -> None:
    t = datetime(2026, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)
    cursor = K.encode_cursor("rows:x:asc", [t, "VIN", -1, ""])
    assert "=" not in cursor
    assert K.decode_cursor(cursor, "rows:x:asc", ["timestamptz", "text", "int4", "text"]) == [
        t,
        "VIN",
        -1,
        "",
    ]
    with pytest.raises(K.QueryError, match="different query"):
        K.decode_cursor(cursor, "rows:x:desc", ["timestamptz", "text", "int4", "text"])
    with pytest.raises(K.QueryError, match="different query"):
        K.decode_cursor(cursor, "rows:x:asc", ["timestamptz", "text"])
    with pytest.raises(K.QueryError, match="damaged"):
        K.decode_cursor(cursor, "rows:x:asc", ["timestamptz", "int4", "int4", "text"])
    for junk in ("", "!!!", "bm9wZQ"):
        with pytest.raises(K.QueryError):
            K.decode_cursor(junk, "rows:x:asc", ["text"])


def test_time_range_defaults_and_naive_times() -> None:
    begin, end = K.time_range(datetime(2026, 3, 1), None)
    assert begin == START and end.tzinfo is not None
    begin, end = K.time_range(None, END)
    assert (begin, end) == (START, END)
    with pytest.raises(K.QueryError, match="before"):
        K.time_range(END, START)


def test_rows_query_binds_every_value_and_scopes_non_admins() -> None:
    k = K.kind("meter_values")
    q = K.rows_query(
        k, ACME, start=START, end=END, devices=["CP-1"], filters={"connector_id": "2"}, limit=10
    )
    assert "acme" in q.args and 2 in q.args and q.args[-1] == 11
    assert "t.charger_id IN ((SELECT charger_id FROM chargers WHERE operator_id = $5))" in q.sql
    assert "ORDER BY t.time, t.charger_id, coalesce(t.evse_id, -1)" in q.sql
    admin = K.rows_query(k, ADMIN, start=START, end=END, limit=10)
    assert " IN (" not in admin.sql
    reg = K.rows_query(K.kind("positions"), NORTH, start=START, end=END, limit=10)
    assert ["north", "south"] in reg.args and "fleet_id = ANY($3::text[])" in reg.sql
    with pytest.raises(K.QueryError, match="not a filter"):
        K.rows_query(k, ADMIN, start=START, end=END, filters={"value": "1"}, limit=10)
    with pytest.raises(K.QueryError, match="not an integer"):
        K.rows_query(k, ADMIN, start=START, end=END, filters={"connector_id": "x"}, limit=10)


def test_aggregate_query_checks_columns_aggs_and_groups() -> None:
    k = K.kind("vehicle_realtime")
    q = K.aggregate_query(
        k,
        ADMIN,
        start=START,
        end=END,
        width="1 hours",
        columns=["speed_kmh"],
        aggs=["max"],
        group_by=["charge_state"],
        limit=5,
    )
    assert 'max(t.speed_kmh) AS "speed_kmh.max"' in q.sql and "avg(" not in q.sql
    assert "GROUP BY 1, 2, 3" in q.sql and q.key == ["bucket", "device_id", "charge_state"]
    for bad in ({"columns": ["vin"]}, {"aggs": ["median"]}, {"group_by": ["plate"]}):
        with pytest.raises(K.QueryError):
            K.aggregate_query(k, ADMIN, start=START, end=END, width="1 hours", limit=5, **bad)  # type: ignore[arg-type]
    assert K.nest_aggregates({"bucket": 1, "a.min": 2, "a.max": 3, "count": 4}) == {
        "bucket": 1,
        "a": {"min": 2, "max": 3},
        "count": 4,
    }


def test_pages_end_with_the_cursor_of_their_last_row() -> None:
    q = K.rows_query(K.kind("charger_status"), ADMIN, start=START, end=END, limit=2)
    t = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [
        {"time": t, "charger_id": "A", "evse_id": None, "connector_id": 1},
        {"time": t, "charger_id": "A", "evse_id": None, "connector_id": 2},
        {"time": t, "charger_id": "B", "evse_id": 1, "connector_id": 1},
    ]
    page, cursor = K.page(q, rows, 2)
    assert page == rows[:2] and cursor is not None
    types = ["timestamptz", "text", "int4", "int4"]
    assert K.decode_cursor(cursor, q.tag, types) == [t, "A", -1, 2]  # NULL evse: the sentinel
    assert K.page(q, rows[:2], 2) == (rows[:2], None)


def test_packed_cells_and_probes_are_unpacked_like_the_sql_functions() -> None:
    assert K.unpack_cells("0ce40ce5fffefffff0") == [3.3, 3.301, None, None]  # odd byte ignored
    assert K.unpack_cells("") == []
    assert K.unpack_temps("00285afeff") == [-40, 0, 50, None, None]
    row = {"vin": "V", "cell_voltages": "0ce4", "probe_temps": "50"}
    doc = K.unpacked(K.kind("vehicle_realtime"), row)
    assert doc == {**row, "cell_voltages_v": [3.3], "probe_temps_c": [40]}
