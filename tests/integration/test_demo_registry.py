"""gateway.demo_registry against PostgreSQL: what it takes over, updates and leaves alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from gateway import demo_registry as demo
from gateway.store.testing import migrated_schema

TRUCKS = [
    demo.DemoTruck("LSGDEMO0000000001", "013800000001", 2016),
    demo.DemoTruck("LSGDEMO0000000002", "013800000002", 2013),
    demo.DemoTruck("LSGDEMO0000000003", "00000000013800000003", 2019),
]
STATIONS = [demo.DemoStation("S1", "swap", "DXB", 10), demo.DemoStation("S2", "charging", "XXX")]
CHARGERS = [demo.DemoCharger("C1", "ocpp1.6"), demo.DemoCharger("C2", "silkgate-charger", "S2")]


@pytest.fixture
def dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_demo")


async def _rows(conn: asyncpg.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.fetch(sql)]


def test_takes_over_auto_registered_terminals_and_leaves_others_alone(dsn: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO operators (operator_id, name) VALUES ('acme', 'A');"
                "INSERT INTO fleets (fleet_id, operator_id, name) "
                "VALUES ('demo-trucks', 'acme', 'F');"
                # the gateway registered this one by itself in an earlier run
                "INSERT INTO terminals (phone, attributes) "
                """VALUES ('013800000002', '{"auto_registered": true}');"""
                # a user registered this one without an operator
                "INSERT INTO terminals (phone) VALUES ('00000000013800000003');"
                "INSERT INTO stations (station_id, operator_id, kind) "
                "VALUES ('S2', 'acme', 'mixed')"
            )
            devices = demo.DemoDevices(TRUCKS, STATIONS, CHARGERS, interval_s=5.0)
            first = await demo.register_demo(conn, devices)
            assert first.inserted == {"vehicles": 3, "terminals": 0, "stations": 1, "chargers": 2}
            assert first.updated == {"vehicles": 0, "terminals": 1, "stations": 0, "chargers": 0}
            assert first.foreign == {"vehicles": 0, "terminals": 1, "stations": 1, "chargers": 0}
            assert await _rows(conn, "SELECT operator_id, timezone FROM operators ORDER BY 1") == [
                ("acme", None),
                ("demo", "Asia/Singapore"),
            ]
            # acme's fleet of that name is not used; the GB/T edition only for GB/T trucks
            assert await _rows(
                conn,
                "SELECT vin, operator_id, fleet_id, protocol_version, reporting_interval_s "
                "FROM vehicles ORDER BY 1",
            ) == [(t.vin, "demo", None, 2016 if t.is_gbt else None, 5.0) for t in TRUCKS]
            assert await _rows(
                conn, "SELECT phone, operator_id, vin, attributes FROM terminals ORDER BY 1"
            ) == [
                ("00000000013800000003", None, None, None),
                ("013800000002", "demo", TRUCKS[1].vin, '{"demo": true, "auto_registered": true}'),
            ]
            assert await _rows(
                conn,
                "SELECT station_id, operator_id, kind, bays, timezone, lat "
                "FROM stations ORDER BY 1",
            ) == [
                ("S1", "demo", "swap", 10, "Asia/Dubai", 25.2048),
                ("S2", "acme", "mixed", None, None, None),
            ]
            # C2's site is acme's station: the demo charger does not claim a place there
            assert await _rows(
                conn,
                "SELECT charger_id, operator_id, station_id, protocol FROM chargers ORDER BY 1",
            ) == [("C1", "demo", None, "ocpp1.6"), ("C2", "demo", None, "silkgate-charger")]

            again = await demo.register_demo(conn, devices)
            assert sum(again.inserted.values()) == sum(again.updated.values()) == 0
            slower = demo.DemoDevices(TRUCKS, STATIONS, CHARGERS, interval_s=30.0)
            changed = await demo.register_demo(conn, slower)
            assert changed.updated["vehicles"] == 3 and changed.inserted["vehicles"] == 0
            assert await conn.fetchval("SELECT min(reporting_interval_s) FROM vehicles") == 30.0
        finally:
            await conn.close()

    asyncio.run(go())
