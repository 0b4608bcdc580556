"""The gateway process killed with SIGKILL while terminals report over TCP, then restarted.

Real terminals (gateway.tcp_simulator: GB/T 32960 2016/2025 and JT/T 808 2013/2019) report to a
real ``silkgate run`` child process; it is killed mid-ingest and started again on the same
ports. The terminals reconnect, log in again and resend every report that was not
acknowledged (GB/T as 0x03 reissues, JT/T 808 as 0x0704 blind-area batches). Afterwards every
report ever made is in the store exactly once: nothing acknowledged was lost, nothing resent
was stored twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from gateway.store.testing import create_schema, drop_schema, with_search_path
from gateway.tcp_simulator import SimConfig, TerminalFleet

from .gatewaykit import Child

GBT, JT, REPORTS = 12, 12, 150  # terminals per protocol, reports per terminal
START = datetime(2026, 4, 1, tzinfo=UTC)


@pytest_asyncio.fixture
async def schema_dsn(services: Any) -> AsyncIterator[str]:
    schema = await create_schema(services.dsn, "silkgate_tcpkill")
    yield with_search_path(services.dsn, schema)
    await drop_schema(services.dsn, schema)


async def _counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "realtime": await conn.fetchval("SELECT count(*) FROM vehicle_realtime"),
            "realtime_keys": await conn.fetchval(
                "SELECT count(DISTINCT (vin, time)) FROM vehicle_realtime"
            ),
            "jt_positions": await conn.fetchval(
                "SELECT count(*) FROM positions WHERE protocol = 'jt808'"
            ),
        }
    finally:
        await conn.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("back", ["while_reporting", "after_the_fleet_stopped"])
async def test_gateway_kill9_mid_ingest_terminals_resend_nothing_lost(
    schema_dsn: str, tmp_path: Path, back: str
) -> None:
    """``after_the_fleet_stopped``: the terminals made every report and were told to stop
    while the gateway was down; they still reconnect and resend within their drain time."""
    child = Child(schema_dsn, tmp_path)
    await child.start()
    config = SimConfig(
        gbt_port=child.ports["gbt32960"],
        jt_port=child.ports["jt808"],
        gbt=GBT,
        jt=JT,
        gbt_versions=(2016, 2025),
        jt_versions=(2013, 2019),
        interval_s=0.02,
        frames=REPORTS,
        window=16,
        heartbeat_s=0,
        reconnect_min_s=0.05,
        reconnect_max_s=0.5,
        start_time=START,
        drain_timeout_s=30,
        seed=5,
    )
    try:
        async with TerminalFleet(config) as fleet:
            await fleet.wait_online(30)
            total = (GBT + JT) * REPORTS
            while fleet.stats.total.acked < total // 3:
                await asyncio.sleep(0.02)
            child.kill()
            acked_at_kill = fleet.stats.total.acked
            assert acked_at_kill < total  # killed mid-ingest
            if back == "while_reporting":
                await asyncio.sleep(0.5)  # terminals see the drop and retry meanwhile
                await child.start()
                stats = await asyncio.wait_for(fleet.run(), 120)
            else:
                await fleet.wait_generated(30)
                running = asyncio.create_task(fleet.run())
                await asyncio.sleep(0.3)  # the stop finds every terminal offline
                assert not running.done()
                await child.start()
                stats = await asyncio.wait_for(running, 120)
        assert stats.total.generated == total
        assert stats.total.acked == total, stats.summary()
        assert stats.total.resent > 0  # the kill left reports unacknowledged
        assert stats.total.reconnects >= GBT + JT
    finally:
        assert child.stop() == 0
    counts = await _counts(schema_dsn)
    assert counts == {
        "realtime": GBT * REPORTS,
        "realtime_keys": GBT * REPORTS,
        "jt_positions": JT * REPORTS,
    }
