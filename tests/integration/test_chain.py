"""The whole chain, each part real: GB/T 32960 terminals (2016 and 2025) report over TCP to a
``silkgate run`` process, which stores their frames and forwards them, re-encoded in the 2016
edition, to an upstream GB/T 32960 platform (a regulator's) that it logs in to with 0x05.
Every report the terminals made reaches the upstream exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gateway.codecs.gbt32960 import constants as C
from gateway.store.testing import create_schema, drop_schema, with_search_path
from gateway.tcp_simulator import SimConfig, TerminalFleet

from .gatewaykit import Child
from .upstreamkit import PASSWORD, PASSWORD_ENV, Upstream

TERMINALS, REPORTS = 8, 40


@pytest_asyncio.fixture
async def schema_dsn(services: Any) -> AsyncIterator[str]:
    schema = await create_schema(services.dsn, "silkgate_chain")
    yield with_search_path(services.dsn, schema)
    await drop_schema(services.dsn, schema)


@pytest.mark.asyncio
async def test_terminals_to_gateway_to_upstream_platform(schema_dsn: str, tmp_path: Path) -> None:
    upstream = await Upstream(version=2016).start()
    forward = (
        "[forward]\npoll_interval_ms = 50\n"
        "[[forward.gbt32960]]\n"
        f'name = "regulator"\nhost = "127.0.0.1"\nport = {upstream.port}\nversion = "2016"\n'
        f'username = "silkgate"\npassword_env = "{PASSWORD_ENV}"\nstart = "earliest"\n'
        "select = { all = true }\n"
    )
    child = Child(schema_dsn, tmp_path, extra=forward, env={PASSWORD_ENV: PASSWORD})
    await child.start()
    config = SimConfig(
        gbt_port=child.ports["gbt32960"],
        jt_port=child.ports["jt808"],
        gbt=TERMINALS,
        gbt_versions=(2016, 2025),
        interval_s=0.02,
        frames=REPORTS,
        heartbeat_s=0,
        start_time=datetime(2026, 5, 1, tzinfo=UTC),
        seed=9,
    )
    try:
        async with TerminalFleet(config) as fleet:
            await fleet.wait_online(30)
            stats = await asyncio.wait_for(fleet.run(), 60)
        assert stats.gbt32960.acked == TERMINALS * REPORTS

        def realtime(up: Upstream) -> list[tuple[str, int, bytes]]:
            received = up.keys()
            return [k for k in received if k[1] == C.CMD_REALTIME]

        await upstream.wait(lambda up: len(realtime(up)) >= TERMINALS * REPORTS, timeout=30)
        relayed = realtime(upstream)
        assert len(relayed) == len(set(relayed)) == TERMINALS * REPORTS  # each once
        assert {vin for vin, _, _ in relayed} == {t.device_id for t in fleet.terminals}
        assert len(upstream.logins) >= 1 and upstream.errors == []
        # the vehicles' own logins went up too, in the upstream's edition
        received = upstream.keys()
        assert {k[0] for k in received if k[1] == C.CMD_VEHICLE_LOGIN} == {
            t.device_id for t in fleet.terminals
        }
    finally:
        assert child.stop() == 0
        await upstream.close()
