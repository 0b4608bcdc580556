"""The Grafana provisioning in deploy/grafana (docs/dashboards.md), without Grafana: every
dashboard's structure (unique uids, the provisioned data source everywhere, targets on every
panel, variables defined before use), the provisioning files and their mounts in
deploy/docker-compose.yml, and every panel's and variable's SQL run against the real
TimescaleDB on seeded data after the template variables, ``$__interval`` and the PostgreSQL
data source's macros were substituted the way Grafana substitutes them (the frontend's
variable formatting, then the backend's macro engine with ``timescaledb: true``), over three
time ranges; the seeded data's known answers come out of the panels."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
import yaml

from gateway.store.testing import migrated_schema
from gateway.store.timescale import refresh_rollups

if TYPE_CHECKING:
    from .conftest import Services

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "silkgate.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "silkgate.yaml"
COMPOSE = REPO / "deploy" / "docker-compose.yml"

D = datetime(2026, 4, 1, tzinfo=UTC)  # the seeded day
V1, V2, V3 = "LGRAFANA000000001", "LGRAFANA000000002", "LGRAFANA000000003"
PHONE = "013800000001"
#: (from, to): the range with the known answers, a month (coarse intervals), half an hour
RANGES = {
    "day": (D - timedelta(hours=1), D + timedelta(days=1)),
    "month": (D - timedelta(days=30), D + timedelta(days=1)),
    "half-hour": (D, D + timedelta(minutes=30)),
}
BUILTIN_VARS = {"__interval", "__interval_ms"}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _datasource() -> dict[str, Any]:
    doc = yaml.safe_load(DATASOURCES.read_text())
    (ds,) = doc["datasources"]
    assert isinstance(ds, dict)
    return ds


# -- Grafana's substitutions -------------------------------------------------------------------

#: @grafana/data rangeutil.roundInterval: (upper limit, interval), milliseconds
_ROUND = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
    (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000),
    (45000, 30000), (90000, 60000), (210000, 120000), (450000, 300000), (750000, 600000),
    (1050000, 900000), (1500000, 1200000), (2700000, 1800000), (5400000, 3600000),
    (9000000, 7200000), (16200000, 10800000), (24300000, 21600000), (64800000, 43200000),
    (129600000, 86400000), (604800000, 86400000), (1814400000, 604800000),
    (3628800000, 2592000000),
)  # fmt: skip
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def round_interval(ms: float) -> int:
    for limit, interval in _ROUND:
        if ms < limit:
            return interval
    return 31536000000


def parse_interval(text: str) -> float:
    """Seconds of a Grafana interval (``30s``, ``5m``, ``1h``, ``1d``; gtime.ParseInterval)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", text.strip().strip("'"))
    assert m, f"not a Grafana interval: {text!r}"
    return int(m.group(1)) * _UNITS[m.group(2)]


def seconds_to_hms(seconds: float) -> str:
    """@grafana/data secondsToHms, how the frontend writes ``$__interval``."""
    for unit, size in (("y", 31536000), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


def interval_ms(panel: Mapping[str, Any], ds_min: str, rng: tuple[datetime, datetime]) -> int:
    """rangeutil.calculateInterval: the range over the panel's data points (its maxDataPoints,
    else its width in pixels, about 1000 on a wide screen), rounded, at least the panel's (else
    the data source's) minimum interval."""
    points = panel.get("maxDataPoints") or 1000
    span_ms = (rng[1] - rng[0]).total_seconds() * 1000
    low = parse_interval(panel.get("interval") or ds_min) * 1000
    return int(max(round_interval(span_ms / points), low))


def _rfc3339(t: datetime) -> str:
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction dropped)."""
    text = t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Variable:
    """A dashboard variable and its selection (``None``: All)."""

    spec: dict[str, Any]
    options: list[str]
    selected: list[str] | str | None

    def render(self) -> str:
        """The PostgreSQL data source's interpolateVariable: a multi-value or include-All
        variable's values quoted and comma-separated; a single-value one as it is; All with a
        custom allValue: that, unformatted; All without: every option."""
        spec = self.spec
        if self.selected is None:
            if spec.get("allValue"):
                return str(spec["allValue"])
            values: list[str] | str = self.options
        else:
            values = self.selected
        if isinstance(values, list):
            return ",".join(_quote(v) for v in values)
        if spec.get("multi") or spec.get("includeAll"):
            return _quote(values)
        return values


_VAR_RE = re.compile(r"\$(\w+)|\$\{(\w+)(?::([^}]+))?\}|\[\[(\w+)(?::\w+)?\]\]")
_MACRO_RE = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")  # sqleng's, args without ')'


def interpolate(
    sql: str, variables: Mapping[str, Variable], rng: tuple[datetime, datetime], ms: int | None
) -> str:
    """``sql`` as the PostgreSQL server receives it from Grafana (see the module docstring);
    ``ms``: the panel's interval (None for variable queries, which have none)."""

    def variable(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        assert not m.group(4), f"[[{name}]] is deprecated syntax"
        assert not m.group(3), f"${{{name}:{m.group(3)}}}: formats are not used here"
        if name in variables:
            return variables[name].render()
        if name in BUILTIN_VARS:
            assert ms is not None, f"${name} in a variable query"
            return str(ms) if name == "__interval_ms" else seconds_to_hms(ms / 1000)
        assert name.startswith("__"), f"${name}: no such variable"
        return m.group(0)  # a macro: the backend's

    sql = _VAR_RE.sub(variable, sql)
    # sqleng.Interpolate, then the PostgreSQL macro engine
    sql = sql.replace("$__unixEpochFrom()", str(int(rng[0].timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(rng[1].timestamp())))

    def macro(m: re.Match[str]) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
        if name == "__timeGroup":
            end = m.end()
            if end < len(sql) and sql[end] == ",":  # pre-5.3 compatibility: Grafana adds AS
                name = "__timeGroupAlias"
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{_rfc3339(rng[0])}' AND '{_rfc3339(rng[1])}'"
        if name == "__timeFrom":
            return f"'{_rfc3339(rng[0])}'"
        if name == "__timeTo":
            return f"'{_rfc3339(rng[1])}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            assert len(args) in (2, 3), f"${name}({m.group(2)})"
            bucket = f"time_bucket('{parse_interval(args[1]):.3f}s',{args[0]})"
            return bucket + (' AS "time"' if name == "__timeGroupAlias" else "")
        raise AssertionError(f"unknown macro ${name}")  # Grafana: macro_error()

    sql = _MACRO_RE.sub(macro, sql)
    left = re.findall(r"\$\w+", sql)
    assert not left, f"left in the SQL: {left}"
    return sql


# -- structure ---------------------------------------------------------------------------------


def _targets(board: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def test_dashboards_structure() -> None:
    ds = _datasource()
    assert ds["type"] == "grafana-postgresql-datasource"
    assert ds["jsonData"]["timescaledb"] is True
    ref = {"type": ds["type"], "uid": ds["uid"]}
    assert len(DASHBOARDS) == 5, DASHBOARDS
    uids: set[str] = set()
    titles: set[str] = set()
    for path in DASHBOARDS:
        board = _load(path)
        where = path.name
        assert board["uid"] not in uids and len(board["uid"]) <= 40, where
        assert board["title"] not in titles, where
        uids.add(board["uid"])
        titles.add(board["title"])
        assert "silkgate" in board["tags"] and board["timezone"] == "utc", where
        names = [v["name"] for v in board["templating"]["list"]]
        assert len(names) == len(set(names)), where
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                assert var["datasource"] == ref, (where, var["name"])
                assert var["query"].strip(), (where, var["name"])
            else:
                assert var["type"] == "custom" and var["query"], (where, var["name"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), where
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            label = (where, panel["title"])
            assert panel["datasource"] == ref, label
            assert panel["targets"], label
            assert panel["title"] and panel["description"], label
            g = panel["gridPos"]
            assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, label
            xs, ys = range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])
            area = {(x, y) for x in xs for y in ys}
            assert not area & cells, f"{label} overlaps another panel"
            cells |= area
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), label
            for target in panel["targets"]:
                assert target["datasource"] == ref, label
                assert target["rawQuery"] is True and target["editorMode"] == "code", label
                assert target["format"] in ("time_series", "table"), label
                used = {m.group(1) or m.group(2) for m in _VAR_RE.finditer(target["rawSql"])}
                unknown = {u for u in used if u and not u.startswith("__")} - set(names)
                assert not unknown, (label, unknown)
            if panel["type"] == "geomap":
                (layer,) = panel["options"]["layers"]
                loc = layer["location"]
                assert loc == {"mode": "coords", "latitude": "lat", "longitude": "lon"}, label
                assert panel["targets"][0]["format"] == "table", label
        uses_vars = {
            m.group(1) or m.group(2)
            for _, t in _targets(board)
            for m in _VAR_RE.finditer(t["rawSql"])
        }
        assert set(names) <= uses_vars, f"{where}: a variable no panel uses"


def test_provisioning_and_compose() -> None:
    ds = _datasource()
    assert ds["uid"] == "silkgate-timescaledb" and ds["access"] == "proxy"
    assert ds["url"] == "${SILKGATE_GRAFANA_DB_HOST}"
    assert ds["secureJsonData"]["password"] == "${SILKGATE_GRAFANA_DB_PASSWORD}"
    parse_interval(ds["jsonData"]["timeInterval"])
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file" and provider["disableDeletion"] is True
    compose = yaml.safe_load(COMPOSE.read_text())
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"] if ":" in m}
    assert (COMPOSE.parent / mounts["/etc/grafana/provisioning"]).resolve() == (
        GRAFANA / "provisioning"
    )
    dashboards = mounts[provider["options"]["path"]]
    assert (COMPOSE.parent / dashboards).resolve() == GRAFANA / "dashboards"
    env = grafana["environment"]
    used = re.findall(r"\$\{(\w+)\}", json.dumps(yaml.safe_load(DATASOURCES.read_text())))
    assert len(used) == 5
    for var in used:
        assert var in env, f"{var} is not set for the grafana service"
    assert grafana["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert all(p.startswith("127.0.0.1:") for p in grafana["ports"])  # loopback by default


# -- the seeded store --------------------------------------------------------------------------


def _every(start: datetime, n: int, step_s: float) -> list[datetime]:
    return [start + timedelta(seconds=i * step_s) for i in range(n)]


async def _seed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        # V1 registered with the default period, V2 not registered, V3 with a 10 s period
        await conn.execute(
            """INSERT INTO operators (operator_id, name) VALUES ('OP1', 'op');
               INSERT INTO stations (station_id, operator_id, kind) VALUES ('ST1', 'OP1', 'mixed');
               INSERT INTO chargers (charger_id, operator_id, station_id, protocol)
                    VALUES ('CP-1', 'OP1', 'ST1', 'ocpp1.6')"""
        )
        await conn.executemany(
            "INSERT INTO vehicles (vin, operator_id, reporting_interval_s) VALUES ($1, 'OP1', $2)",
            [(V1, None), (V3, 10.0)],
        )
        realtime: list[tuple[Any, ...]] = []
        positions: list[tuple[Any, ...]] = []
        raw: list[tuple[Any, ...]] = []
        # V1: every 30 s for an hour, charging at 60 kW, 10 frames reissued, one level-3 alarm
        # V2: the same hour with every 10th frame missing; V3: ten minutes, a 10 s period
        times = {
            V1: _every(D, 120, 30),
            V2: [t for i, t in enumerate(_every(D, 120, 30)) if i % 10 != 5],
            V3: _every(D, 20, 30),
        }
        for v, ts in times.items():
            for i, t in enumerate(ts):
                v1 = v == V1
                realtime.append(
                    (t, v, t, 2016, v1 and i >= 110, 40.0, 1000.0 + 0.5 * i if v1 else None,
                     600.0, -100.0 if v1 else 0.0, 3 if v1 and i == 60 else 0, 0, b"", 0, b"")
                )  # fmt: skip
                positions.append((t, v, "gbt32960", t, 1.3 + 0.001 * i, 103.8, True, False, 40.0))
                raw.append((t + timedelta(seconds=1), "gbt32960", "2016", v))
        # a fix V1 sent last, invalid: the map must keep the one before
        positions.append((D + timedelta(hours=1), V1, "gbt32960", D, 0.0, 0.0, False, False, 0.0))
        for i, t in enumerate(_every(D, 10, 60)):
            positions.append((t, PHONE, "jt808", t, 2.0, 102.0 + 0.01 * i, True, False, 50.0))
            raw.append((t, "jt808", "2013", PHONE))
        raw += [(D + timedelta(minutes=i), "ocpp1.6", "1.6", "CP-1") for i in range(5)]
        await conn.copy_records_to_table(
            "vehicle_realtime",
            records=realtime,
            columns=[
                *("time", "vin", "received_at", "version", "reissue", "speed_kmh"),
                *("odometer_km", "total_voltage_v", "total_current_a", "alarm_level"),
                *("cell_count", "cell_voltages", "probe_count", "probe_temps"),
            ],
        )
        await conn.copy_records_to_table(
            "positions",
            records=positions,
            columns=[
                *("time", "device_id", "protocol", "received_at", "lat", "lon"),
                *("fix_valid", "reissue", "speed_kmh"),
            ],
        )
        await conn.execute(
            """INSERT INTO raw_frames (received_at, frame_id, peer, protocol, version, device_id,
                                       frame)
               SELECT r, gen_random_uuid(), '127.0.0.1:1', p, v, d, '\\x00'::bytea
                 FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[]) AS x(r, p, v, d)
            """,
            *zip(*raw, strict=True),
        )
        await conn.execute(
            """INSERT INTO dead_letters
                      (received_at, frame_id, peer, protocol, reason, message, raw)
               SELECT $1::timestamptz + i * INTERVAL '1 minute', gen_random_uuid(), 'x',
                      CASE WHEN i < 3 THEN 'gbt32960' ELSE 'jt808' END,
                      CASE WHEN i < 3 THEN 'bad_checksum' ELSE 'garbage' END,
                      'message ' || i, '\\x00'::bytea
                 FROM generate_series(0, 3) AS i""",
            D,
        )
        names = ["temperature_difference", "battery_high_temperature"]
        alarms: list[tuple[datetime, str, str, int | None, list[str]]]
        alarms = [(D + timedelta(minutes=30), V1, "gbt32960", 3, names)]
        alarms += [(D + timedelta(minutes=i), V2, "gbt32960", 1, ["insulation"]) for i in range(5)]
        alarms += [(D + timedelta(minutes=i), PHONE, "jt808", None, ["overspeed"]) for i in (1, 2)]
        await conn.executemany(
            """INSERT INTO alarms (time, device_id, protocol, received_at, level, flags, names,
                                   reissue) VALUES ($1, $2, $3, $1, $4, 1, $5, false)""",
            alarms,
        )
        # CP-1: the register from 1000 to 31000 Wh in the first hour, a 30 kWh session;
        # CP-2 (not registered): a 12 kWh session at four
        await conn.executemany(
            """INSERT INTO meter_values (time, charger_id, connector_id, measurand, received_at,
                                         protocol, value, unit)
               VALUES ($1, 'CP-1', 1, 'Energy.Active.Import.Register', $1, 'ocpp1.6', $2, 'Wh')""",
            [(D + timedelta(minutes=10 * i), 1000.0 + 6000 * i) for i in range(6)],
        )
        t50, t4, t5 = D + timedelta(minutes=50), D + timedelta(hours=4), D + timedelta(hours=5)
        sessions = [
            ("CP-1", "T1", "start", D, None, D, None),
            ("CP-1", "T1", "stop", t50, 30000.0, D, t50),
            ("CP-2", "T2", "stop", t5, 12000.0, t4, t5),
        ]
        await conn.executemany(
            """INSERT INTO charging_sessions (charger_id, transaction_id, event, time, energy_wh,
                   started_at, stopped_at, received_at, protocol, connector_id, id_tag_hashed)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $4, 'ocpp1.6', 1, false)""",
            sessions,
        )
        await conn.executemany(
            """INSERT INTO swap_events (time, station_id, bay, received_at, result, faults)
               VALUES ($1, 'ST1', $2, $1, $3, '{}')""",
            [(D + timedelta(hours=2, minutes=i), i, r) for i, r in enumerate(["ok", "ok", "no"])],
        )
        await refresh_rollups(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def store(services: Services) -> Iterator[str]:
    for dsn in migrated_schema(services.dsn, "silkgate_grafana"):
        asyncio.run(_seed(dsn))
        yield dsn


# -- running the panels ------------------------------------------------------------------------


@dataclass
class Result:
    panel: str
    target: str
    sql: str
    rows: list[dict[str, Any]]


async def _variables(
    conn: asyncpg.Connection,
    board: Mapping[str, Any],
    rng: tuple[datetime, datetime],
    selection: Mapping[str, list[str] | str],
) -> dict[str, Variable]:
    out: dict[str, Variable] = {}
    for spec in board["templating"]["list"]:
        if spec["type"] == "query":
            sql = interpolate(spec["query"], out, rng, None)
            options = [str(r[0]) for r in await conn.fetch(sql)]
        else:
            options = [o.strip() for o in spec["query"].split(",")]
        chosen = selection.get(spec["name"])
        if chosen is None and not spec.get("includeAll"):
            chosen = spec["current"]["value"]
        out[spec["name"]] = Variable(spec, options, chosen)
    return out


async def run_board(
    dsn: str,
    board: Mapping[str, Any],
    rng: tuple[datetime, datetime],
    selection: Mapping[str, list[str] | str] | None = None,
) -> dict[str, Result]:
    """Every panel's query of ``board`` over ``rng``, by panel title (``title/refId`` when a
    panel has several); a failing query fails with the SQL Grafana would have sent."""
    ds_min = _datasource()["jsonData"]["timeInterval"]
    conn = await asyncpg.connect(dsn)
    out: dict[str, Result] = {}
    try:
        variables = await _variables(conn, board, rng, selection or {})
        for panel, target in _targets(board):
            ms = interval_ms(panel, ds_min, rng)
            sql = interpolate(target["rawSql"], variables, rng, ms)
            try:
                records = await conn.fetch(sql)
            except asyncpg.PostgresError as exc:
                raise AssertionError(f"{board['uid']} / {panel['title']}: {exc}\n{sql}") from exc
            rows = [dict(r) for r in records]
            if target["format"] == "time_series" and rows:
                assert "time" in rows[0], (panel["title"], list(rows[0]))
                stamps = [r["time"] for r in rows]
                assert stamps == sorted(stamps), f"{panel['title']}: not sorted by time"
                assert all(isinstance(r.get("metric", ""), str) for r in rows), panel["title"]
            key = panel["title"]
            if len(panel["targets"]) > 1:
                key += f"/{target['refId']}"
            out[key] = Result(panel["title"], target["refId"], sql, rows)
    finally:
        await conn.close()
    return out


def _boards() -> dict[str, dict[str, Any]]:
    return {p.stem: _load(p) for p in DASHBOARDS}


@pytest.mark.parametrize("span", sorted(RANGES))
def test_every_panel_runs(store: str, span: str) -> None:
    for name, board in _boards().items():
        results = asyncio.run(run_board(store, board, RANGES[span]))
        assert len(results) == sum(len(p["targets"]) for p in board["panels"]), name
        if span == "day":  # every panel shows something of the seeded data
            empty = [k for k, r in results.items() if not r.rows]
            assert not empty, f"{name}: no rows from {empty}"


def test_interval_substitution() -> None:
    panel: dict[str, Any] = {}
    day = RANGES["day"]
    assert interval_ms(panel, "1m", day) == 120_000  # 25 h over 1000 points: 90 s, rounded
    assert interval_ms({"interval": "1h"}, "1m", day) == 3_600_000
    assert interval_ms(panel, "1m", RANGES["half-hour"]) == 60_000  # the data source's minimum
    sql = "SELECT $__timeGroupAlias(t, $__interval), $__interval_ms WHERE $__timeFilter(t)"
    assert interpolate(sql, {}, day, 120_000) == (
        "SELECT time_bucket('120.000s',t) AS \"time\", 120000 WHERE t BETWEEN "
        "'2026-03-31T23:00:00Z' AND '2026-04-02T00:00:00Z'"
    )
    # pre-5.3 Grafana: $__timeGroup followed by a comma gets the alias too
    assert interpolate("$__timeGroup(t, 1h), x", {}, day, 1) == (
        "time_bucket('3600.000s',t) AS \"time\", x"
    )
    multi = Variable({"multi": True, "includeAll": True}, ["a", "o'k"], None)
    assert multi.render() == "'a','o''k'"
    assert Variable({"includeAll": True, "allValue": "'*'"}, ["a"], None).render() == "'*'"
    assert Variable({"multi": False}, ["30"], "30").render() == "30"
    with pytest.raises(AssertionError, match="unknown macro"):
        interpolate("$__timeGroupz(t, 1h)", {}, day, 1)
    with pytest.raises(AssertionError, match="no such variable"):
        interpolate("$nope", {}, day, 1)


def _one(results: Mapping[str, Result], title: str) -> dict[str, Any]:
    rows = results[title].rows
    assert len(rows) == 1, (title, rows)
    return rows[0]


def _value(results: Mapping[str, Result], title: str) -> float:
    (value,) = _one(results, title).values()
    return float(value)


def _series_total(result: Result, column: str, ms: int, metric: str | None = None) -> float:
    """A per-minute rate column summed back to a count (its buckets are ``ms`` long)."""
    rows = [r for r in result.rows if metric is None or r["metric"] == metric]
    return round(sum(float(r[column]) for r in rows) * ms / 60000, 6)


def test_known_answers(store: str) -> None:
    boards = _boards()
    day = RANGES["day"]

    def run(name: str, **selection: list[str] | str) -> dict[str, Result]:
        return asyncio.run(run_board(store, boards[name], day, selection))

    fleet = run("fleet")
    assert _value(fleet, "Vehicles with a fix") == 4
    last = {r["device_id"]: r for r in fleet["Last position per vehicle"].rows}
    assert set(last) == {V1, V2, V3, PHONE}
    assert (last[V1]["lat"], last[V1]["lon"]) == (pytest.approx(1.419), 103.8)  # not the 0/0 fix
    assert last[V1]["time"] == D + timedelta(seconds=119 * 30)
    assert last[PHONE]["protocol"] == "jt808" and last[PHONE]["lon"] == pytest.approx(102.09)
    assert fleet["Vehicles"].rows[0]["device_id"] == V1  # newest first
    assert _value(fleet, "Moving now") == 4
    assert _value(fleet, "Distance driven (GB/T 32960)") == pytest.approx(59.5)
    gbt_only = run("fleet", protocol=["gbt32960"])
    assert _value(gbt_only, "Vehicles with a fix") == 3

    ingest = run("ingest")
    assert _value(ingest, "Frames received") == 120 + 108 + 20 + 10 + 5
    assert _value(ingest, "Dead letters") == 4
    assert _value(ingest, "Sending devices") == 5
    assert _value(ingest, "Reissued GB/T 32960 frames") == 10
    per_min = ingest["Frames received per minute, by protocol"]
    assert _series_total(per_min, "frames_per_min", 120_000, "gbt32960") == 248
    assert _series_total(per_min, "frames_per_min", 120_000, "jt808") == 10
    records = ingest["Records stored per minute, by kind"]
    assert _series_total(records, "records_per_min", 120_000, "vehicle_realtime") == 248
    assert _series_total(records, "records_per_min", 120_000, "swap_events") == 3
    rows = ingest["Dead letters by reason"].rows
    dead = {(r["protocol"], r["reason"]): r["dead_letters"] for r in rows}
    assert dead == {("gbt32960", "bad_checksum"): 3, ("jt808", "garbage"): 1}
    rows = ingest["Frames by protocol and version"].rows
    versions = {r["protocol"]: (r["frames"], r["devices"]) for r in rows}
    assert versions == {"gbt32960": (248, 3), "jt808": (10, 1), "ocpp1.6": (5, 1)}
    hourly = ingest["GB/T 32960 realtime frames per hour: live and reissued"].rows
    assert [(r["live"], r["reissued"]) for r in hourly] == [(238, 10)]

    alarms = run("alarms")
    assert _value(alarms, "Level-3 alarms") == 1
    assert _value(alarms, "Vehicles with a level-3 alarm") == 1
    assert _value(alarms, "Alarm records") == 8
    by_level = {r["level"]: r["alarms"] for r in alarms["Alarms by level in range"].rows}
    assert by_level == {"level 0": 2, "level 1": 5, "level 3": 1}
    (latest,) = alarms["Latest level-3 alarms"].rows
    assert latest["device_id"] == V1
    assert latest["alarms"] == "temperature_difference, battery_high_temperature"
    frequent = alarms["Most frequent alarms"].rows
    assert (frequent[0]["alarm"], frequent[0]["records"]) == ("insulation", 5)
    (highest,) = alarms["Vehicles by highest alarm level (GB/T 32960, daily rollup)"].rows
    assert (highest["vin"], highest["highest_level"], highest["days_at_level_3"]) == (V1, 3, 1)
    level1 = run("alarms", level=["1"])
    assert _value(level1, "Alarm records") == 5
    assert _value(run("alarms", protocol=["jt808"], level=["0"]), "Alarming devices") == 1

    charging = run("charging")
    assert _value(charging, "Energy delivered") == 42
    assert _value(charging, "Sessions completed") == 2
    assert _value(charging, "Trucks charged (BMS estimate)") == pytest.approx(60.0)
    hour = charging["Energy delivered per hour (meter register)"].rows
    assert [float(r["kwh"]) for r in hour] == [30.0]
    rows = charging["Energy by charger"].rows
    by_charger = {r["charger_id"]: (r["station"], float(r["kwh"])) for r in rows}
    assert by_charger == {"CP-1": ("ST1", 30.0), "CP-2": ("", 12.0)}
    (daily,) = charging["Energy of completed sessions per day"].rows
    assert (float(daily["kwh"]), daily["sessions"]) == (42.0, 2)
    swaps = {r["metric"]: r["swaps"] for r in charging["Battery swaps by result"].rows}
    assert swaps == {"ok": 2, "no": 1}
    cp1 = run("charging", charger=["CP-1"])
    assert _value(cp1, "Energy delivered") == 30
    assert [r["charger_id"] for r in cp1["Latest completed sessions"].rows] == ["CP-1"]

    complete = run("completeness")
    table = {r["vin"]: r for r in complete["Received vs expected per vehicle and day"].rows}
    got = {v: (r["received"], r["expected"], float(r["completeness"])) for v, r in table.items()}
    assert got == {V1: (120, 120, 100.0), V2: (108, 120, 90.0), V3: (20, 58, 34.5)}
    assert table[V1]["day"] == D and table[V1]["reissued"] == 10
    assert _value(complete, "Fleet completeness") == pytest.approx(100 * 248 / 298)
    assert _value(complete, "Frames missing") == 12 + 38
    assert _value(complete, "Vehicles below 95 %") == 2
    worst = complete["Least complete vehicles"].rows
    assert [r["vin"] for r in worst] == [V3, V2, V1]
    silent = {r["vin"]: r["silent_s"] for r in complete["Longest silent vehicles"].rows}
    assert float(silent[V3]) == (day[1] - (D + timedelta(seconds=570))).total_seconds()
    only_v2 = run("completeness", vin=[V2])
    assert _value(only_v2, "Fleet completeness") == pytest.approx(90.0)
    minute = run("completeness", interval_s="60")  # V1 expects 60, capped at 100 %
    table = {r["vin"]: r for r in minute["Received vs expected per vehicle and day"].rows}
    assert (table[V1]["expected"], float(table[V1]["completeness"])) == (60, 100.0)
    assert table[V3]["expected"] == 58  # its own period, 10 s


def test_a_broken_query_fails(store: str) -> None:
    """The harness itself: a panel whose SQL names a missing column fails with its SQL."""
    board = _boards()["ingest"]
    broken = json.loads(json.dumps(board))
    broken["panels"][0]["targets"][0]["rawSql"] = "SELECT count(nope) FROM raw_frames"
    with pytest.raises(AssertionError, match="nope"):
        asyncio.run(run_board(store, broken, RANGES["day"]))
