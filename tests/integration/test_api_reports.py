"""``GET /v1/reports/{kind}`` against the real application and TimescaleDB (the seeded data and
known answers of reportkit.py): every format with its content type, operator and regulator
scopes, the refusals (401, 403, 422), the time limit and the concurrency limit; and the
scheduled refresh of the vehicle rollup in the gateway's maintenance."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from gateway.api.auth import TokenStore
from gateway.api.config import ApiConfig
from gateway.config import Config, DatabaseConfig
from gateway.reports import ReportsConfig, refresh_vehicle_days
from gateway.runner import Gateway, RunOptions
from gateway.store import connect
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema

from .gatewaykit import api_client
from .reportkit import DAY2, DAY4, NOW, SETTINGS, VIN_A, VIN_B, VIN_C, seed

if TYPE_CHECKING:
    from .conftest import Services

MARCH = {"from": "2026-03-02", "to": "2026-03-04"}
# beside reportkit's registry: a second fleet (op2's), VIN_C in it
EXTRA = """
INSERT INTO fleets (fleet_id, operator_id, name) VALUES ('f2', 'op2', 'Fleet Two');
UPDATE vehicles SET fleet_id = 'f2' WHERE vin = 'LTESTREPORT00000C';
"""
GRANTS: dict[str, dict[str, Any]] = {
    "admin": {"role": "admin"},
    "op1": {"role": "operator", "operator_id": "op1"},
    "op2": {"role": "operator", "operator_id": "op2"},
    "reg1": {"role": "regulator", "fleets": ["f1"]},
    "reg2": {"role": "regulator", "fleets": ["f2"]},
    "reg12": {"role": "regulator", "fleets": ["f1", "f2"]},
}


async def _seed(dsn: str) -> dict[str, str]:
    await seed(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await pool.execute(EXTRA)
        store = TokenStore(pool, cache_s=0)
        return {who: (await store.create(name=who, **g)).token for who, g in GRANTS.items()}
    finally:
        await pool.close()


@dataclass
class Seeded:
    dsn: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def seeded(services: Services) -> Iterator[Seeded]:
    for dsn in migrated_schema(services.dsn, prefix="silkgate_apirep"):
        yield Seeded(dsn, asyncio.run(_seed(dsn)))


@dataclass
class Api:
    client: httpx.AsyncClient
    seeded: Seeded

    async def get(self, kind: str, who: str | None = "admin", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.seeded.tokens[who]}"} if who else {}
        return await self.client.get(f"/v1/reports/{kind}", params=params, headers=headers)

    async def rows(self, kind: str, who: str = "admin", **params: Any) -> list[dict[str, Any]]:
        r = await self.get(kind, who, **{**MARCH, **params})
        assert r.status_code == 200, r.text
        rows: list[dict[str, Any]] = r.json()["rows"]
        return rows


@asynccontextmanager
async def _api(seeded: Seeded, **cfg: Any) -> AsyncIterator[Api]:
    api_cfg = ApiConfig(enabled=True, **cfg)
    async with api_client(seeded.dsn, api_cfg, reports=SETTINGS) as (client, _):
        yield Api(client, seeded)


@pytest_asyncio.fixture
async def api(seeded: Seeded) -> AsyncIterator[Api]:
    async with _api(seeded) as a:
        yield a


def _by_vin_day(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["vin"], r["day"]): r for r in rows}


# ------------------------------------------------------------------------------ formats


@pytest.mark.asyncio
async def test_json_report_with_known_answers(api: Api) -> None:
    r = await api.get("vehicles", **MARCH, rollups="false")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert "content-disposition" not in r.headers
    doc = r.json()
    assert (doc["kind"], doc["start_day"], doc["end_day"]) == (
        "vehicles",
        "2026-03-02",
        "2026-03-04",
    )
    assert doc["parameters"]["reporting_interval_s"] == 20.0  # the context's [reports]
    assert doc["parameters"]["rollups"] is False
    rows = _by_vin_day(doc["rows"])
    assert len(rows) == 9  # 3 vehicles x 3 days
    a = rows[VIN_A, "2026-03-02"]
    assert (a["frames"], a["reissued"], a["expected_frames"], a["gap_count"]) == (279, 3, 299, 1)
    assert (a["tz"], a["online_s"], a["compliant"], a["source"]) == (
        "Asia/Bangkok",
        7200.0,
        False,
        "raw",
    )
    assert a["gaps"] == [
        {
            "start": "2026-03-02T01:30:00Z",
            "end": "2026-03-02T01:40:00Z",
            "seconds": 600.0,
            "during_alarm": False,
        }
    ]
    b = rows[VIN_B, "2026-03-02"]
    assert (b["frames"], b["expected_frames"], b["compliant"]) == (30, 30, True)
    # to defaults to from; a forced zone
    one = await api.rows("vehicles", vin=[VIN_B], tz="UTC", to="2026-03-02")
    assert [(x["day"], x["tz"], x["frames"]) for x in one] == [("2026-03-02", "UTC", 91)]
    swap = await api.rows("swap", to="2026-03-02")
    assert [(x["station_id"], x["swaps"], x["failed"], x["aborted"]) for x in swap] == [
        ("W1", 4, 1, 1)
    ]
    chargers = await api.rows("chargers", station=["S1"], to="2026-03-02")
    c1 = next(x for x in chargers if (x["charger_id"], x["connector_id"]) == ("C1", 1))
    assert (c1["tz"], c1["availability_pct"], c1["sessions"], c1["energy_wh"]) == (
        "Asia/Dubai",
        87.5,
        2,
        40000.0,
    )


@pytest.mark.asyncio
async def test_csv_html_and_pdf(api: Api) -> None:
    r = await api.get("vehicles", "op1", **MARCH, format="csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        'attachment; filename="silkgate-vehicles-2026-03-02_2026-03-04.csv"'
    )
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert len(table) == 6 and {t["vin"] for t in table} == {VIN_A, VIN_B}
    first = next(t for t in table if (t["vin"], t["day"]) == (VIN_A, "2026-03-02"))
    assert (first["frames"], first["expected_frames"], first["compliant"]) == (
        "279",
        "299",
        "false",
    )

    r = await api.get("swap", "op1", **MARCH, format="html")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-disposition"].startswith('inline; filename="silkgate-swap-')
    assert "<svg" in r.text and "Swaps per day" in r.text and "<script" not in r.text

    r = await api.get("chargers", "admin", **MARCH, format="pdf")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == (
        'attachment; filename="silkgate-chargers-2026-03-02_2026-03-04.pdf"'
    )
    assert r.content.startswith(b"%PDF") and r.content.rstrip().endswith(b"%%EOF")


# ------------------------------------------------------------------------------ scope


async def _vins(api: Api, who: str, **params: Any) -> set[str]:
    return {r["vin"] for r in await api.rows("vehicles", who, **params)}


@pytest.mark.asyncio
async def test_operator_scope(api: Api) -> None:
    assert await _vins(api, "admin") == {VIN_A, VIN_B, VIN_C}
    assert await _vins(api, "op1") == {VIN_A, VIN_B}
    assert await _vins(api, "op1", operator="op1") == {VIN_A, VIN_B}
    assert await _vins(api, "op2") == {VIN_C}
    # another operator: refused, whether it exists or not
    for other in ("op2", "nobody"):
        r = await api.get("vehicles", "op1", **MARCH, operator=other)
        assert r.status_code == 403, r.text
    # devices of another operator are left out, as in every query
    assert await _vins(api, "op2", vin=[VIN_A]) == set()
    assert await api.rows("swap", "op2") == []
    assert await api.rows("chargers", "op2", station=["S1"]) == []
    assert {r["charger_id"] for r in await api.rows("chargers", "op1")} == {"C1", "C2"}
    # an unregistered VIN is reported with the defaults to an admin, to nobody else
    ghost = "LNOTREGISTERED000"
    assert await _vins(api, "admin", vin=[ghost]) == {ghost}
    assert await _vins(api, "op1", vin=[ghost]) == set()
    assert await _vins(api, "reg12", vin=[ghost]) == set()


@pytest.mark.asyncio
async def test_regulator_scope(api: Api) -> None:
    assert await _vins(api, "reg1") == {VIN_A, VIN_B}
    assert await _vins(api, "reg2") == {VIN_C}
    assert await _vins(api, "reg12") == {VIN_A, VIN_B, VIN_C}
    assert await _vins(api, "reg12", fleet=["f2"]) == {VIN_C}
    assert await _vins(api, "admin", fleet=["f1", "f2"]) == {VIN_A, VIN_B, VIN_C}
    assert await _vins(api, "reg1", vin=[VIN_C]) == set()
    assert await _vins(api, "reg1", operator="op2") == set()
    r = await api.get("vehicles", "reg1", **MARCH, fleet="f2")
    assert r.status_code == 403 and "not granted" in r.json()["detail"]
    # chargers and stations belong to no fleet
    for kind in ("chargers", "swap"):
        r = await api.get(kind, "reg12", **MARCH)
        assert r.status_code == 403 and "vehicles only" in r.json()["detail"], kind


# ------------------------------------------------------------------------------ refusals


@pytest.mark.asyncio
async def test_bad_arguments_get_422(api: Api) -> None:
    bad: list[dict[str, Any]] = [
        {"from": "2026-03-04", "to": "2026-03-02"},  # ends before it starts
        {"from": "2025-03-01", "to": "2026-03-04"},  # 369 days > [reports] max_days
        {**MARCH, "tz": "Mars/Olympus"},
        {**MARCH, "format": "xml"},
        {"from": "2026-03-32"},
        {"to": "2026-03-02"},  # no from
    ]
    for params in bad:
        r = await api.get("vehicles", "admin", **params)
        assert r.status_code == 422, (params, r.text)
    r = await api.get("vehicles", "admin", **{"from": "2025-03-01", "to": "2026-03-04"})
    assert "at most 366" in r.json()["detail"]
    assert (await api.get("parking", "admin", **MARCH)).status_code == 422
    # 366 days are allowed
    assert (await api.get("swap", "admin", **{"from": "2025-03-04", "to": "2026-03-04"})).is_success


@pytest.mark.asyncio
async def test_a_token_is_needed(api: Api) -> None:
    r = await api.get("vehicles", None, **MARCH)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = await api.client.get(
        "/v1/reports/vehicles", params=MARCH, headers={"Authorization": "Bearer sgt_nonsense"}
    )
    assert r.status_code == 401
    # before any argument is looked at
    assert (await api.get("vehicles", None, **{"from": "bad"})).status_code == 401


@asynccontextmanager
async def _locked(dsn: str, table: str) -> AsyncIterator[None]:
    """``table`` locked by another connection: whoever reads it waits."""
    conn = await connect(dsn, staging=False)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
        await tx.rollback()
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_time_limit_and_concurrency_limit(seeded: Seeded) -> None:
    async with _api(seeded, report_timeout_s=0.5, max_reports=1) as api:
        async with _locked(seeded.dsn, "vehicles"):
            started = time.monotonic()
            first = asyncio.create_task(api.get("vehicles", "admin", **MARCH))
            await asyncio.sleep(0.2)  # the first report holds the one slot, waiting for the lock
            second = await api.get("swap", "admin", **MARCH)
            assert second.status_code == 503 and second.headers["retry-after"] == "10"
            r = await first
            assert r.status_code == 504 and "0.5 s" in r.json()["detail"], r.text
            assert time.monotonic() - started < 5
        # the slot and the pool connection are free again
        assert len(await api.rows("vehicles", "admin")) == 9


# ------------------------------------------------------------------------------ refresh


async def _rollup(dsn: str) -> list[asyncpg.Record]:
    conn = await connect(dsn, staging=False)
    try:
        return await conn.fetch(
            "SELECT vin, day, frames, refreshed_at FROM report_vehicle_days ORDER BY vin, day"
        )
    finally:
        await conn.close()


def _gateway(dsn: str, **reports: Any) -> Gateway:
    cfg = Config(
        database=DatabaseConfig(dsn=dsn),
        reports=ReportsConfig(reporting_interval_s=20.0, **reports),
    )
    opts = RunOptions(rollups_every_s=3600.0, retention_every_s=3600.0)
    return Gateway(cfg, opts, io.StringIO())


@pytest.mark.asyncio
async def test_maintenance_refreshes_the_vehicle_rollup(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SILKGATE_DSN", raising=False)
    conn = await connect(seeded.dsn, staging=False)
    await conn.execute("DELETE FROM report_vehicle_days")
    await conn.close()
    gw = _gateway(seeded.dsn, refresh_every_s=0.3, refresh_delay_s=0.0)
    gw.pool = await create_pool(seeded.dsn, min_size=1, max_size=2)
    task = asyncio.create_task(gw._maintenance())
    try:
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
        deadline = time.monotonic() + 15
        rows: list[asyncpg.Record] = []
        while time.monotonic() < deadline:
            rows = await _rollup(seeded.dsn)
            if {r["vin"] for r in rows if r["day"] == yesterday} == {VIN_A, VIN_B, VIN_C}:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no rollup rows for {yesterday}: {rows}")
        # the last refresh_days (3) complete days of every vehicle, and again a period later
        assert {r["day"] for r in rows} >= {yesterday - timedelta(days=d) for d in range(3)}
        assert all(r["frames"] == 0 for r in rows)  # the seeded data is months older
        first = max(r["refreshed_at"] for r in rows)
        deadline = time.monotonic() + 15
        while max(r["refreshed_at"] for r in await _rollup(seeded.dsn)) == first:
            assert time.monotonic() < deadline, "no second refresh"
            await asyncio.sleep(0.1)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gw.pool.close()


@pytest.mark.asyncio
async def test_refresh_is_skipped_in_an_outage_and_cancelled_at_once(
    seeded: Seeded,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("SILKGATE_DSN", raising=False)
    # the refresh's own connection goes to a closed port: skipped, maintenance goes on
    down = "postgresql://silkgate:silkgate@127.0.0.1:9/silkgate"
    gw = _gateway(down, refresh_every_s=0.2, refresh_delay_s=0.0)
    gw.pool = await create_pool(seeded.dsn, min_size=1, max_size=2)
    try:
        with caplog.at_level(logging.WARNING, logger="silkgate.run"):
            task = asyncio.create_task(gw._maintenance())
            await asyncio.sleep(1.0)
            assert not task.done()
            skipped = [r for r in caplog.records if "refresh skipped" in r.getMessage()]
            assert len(skipped) >= 2
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # a refresh blocked in the database ends as soon as the gateway stops
        gw.cfg = _gateway(seeded.dsn).cfg
        async with _locked(seeded.dsn, "report_vehicle_days"):
            refresh = asyncio.create_task(gw.refresh_reports())
            await asyncio.sleep(0.5)
            assert not refresh.done()
            started = time.monotonic()
            refresh.cancel()
            await asyncio.gather(refresh, return_exceptions=True)
            assert time.monotonic() - started < 1.0
    finally:
        await gw.pool.close()


@pytest.mark.asyncio
async def test_reports_read_the_refreshed_rollup(api: Api) -> None:
    conn = await connect(api.seeded.dsn, staging=False)
    try:
        await refresh_vehicle_days(conn, DAY2, DAY4, settings=SETTINGS, now=NOW)
    finally:
        await conn.close()
    raw = _by_vin_day(await api.rows("vehicles", rollups="false"))
    rolled = _by_vin_day(await api.rows("vehicles"))
    assert {r["source"] for r in rolled.values()} == {"rollup"}
    for key, row in raw.items():
        assert {**row, "source": "rollup"} == rolled[key], key
