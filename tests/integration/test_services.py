"""The local services answer as the gateway needs them: TimescaleDB via asyncpg, MQTT QoS 1.

Real servers started by deploy/services.sh (see conftest.py), no mocks.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiomqtt
import asyncpg
import pytest

if TYPE_CHECKING:
    from .conftest import Services

RECEIVE_TIMEOUT = 10.0


@pytest.mark.asyncio
async def test_timescaledb_extension_and_license(services: Services) -> None:
    conn = await asyncpg.connect(services.dsn)
    try:
        version = await conn.fetchval(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        )
        license_ = await conn.fetchval("SHOW timescaledb.license")
        server = await conn.fetchval("SHOW server_version_num")
    finally:
        await conn.close()
    assert version is not None, "timescaledb is not installed in the database"
    assert int(version.split(".")[0]) >= 2, version
    assert int(server) >= 170000, server
    if services.origin == "local":
        # Debian's postgresql-17-timescaledb is the Apache-licensed build.
        assert license_ == "apache"
    else:
        assert license_ in {"apache", "timescale"}


@pytest.mark.asyncio
async def test_hypertable_insert_and_read(services: Services) -> None:
    table = f"it_vehicle_realtime_{uuid.uuid4().hex[:12]}"
    at = datetime(2025, 5, 20, 4, 30, 15, 250000, tzinfo=UTC)
    conn = await asyncpg.connect(services.dsn)
    try:
        await conn.execute(
            f"CREATE TABLE {table} (time timestamptz NOT NULL, vin text NOT NULL, soc real)"
        )
        await conn.execute(
            f"SELECT create_hypertable('{table}', by_range('time', INTERVAL '1 day'))"
        )
        await conn.execute(
            f"INSERT INTO {table} (time, vin, soc) VALUES ($1, $2, $3)",
            at,
            "LTEST000000000001",
            87.5,
        )
        row = await conn.fetchrow(
            f"SELECT time, vin, soc, time_bucket('1 hour', time) AS hour FROM {table}"
        )
        hypertables = await conn.fetchval(
            "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = $1",
            table,
        )
        chunks = await conn.fetchval(f"SELECT count(*) FROM show_chunks('{table}')")
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()
    assert row is not None
    assert (row["time"], row["vin"], row["soc"]) == (at, "LTEST000000000001", 87.5)
    assert row["hour"] == datetime(2025, 5, 20, 4, 0, tzinfo=UTC)
    assert hypertables == 1
    assert chunks == 1


@pytest.mark.asyncio
async def test_mqtt_qos1_publish_and_receive(services: Services) -> None:
    topic = f"silkgate/test/{uuid.uuid4().hex}"
    payload = b'{"vin": "LTEST000000000001", "soc": 87.5}'
    async with aiomqtt.Client(
        services.mqtt_host, services.mqtt_port, identifier=f"it-sub-{uuid.uuid4().hex[:8]}"
    ) as subscriber:
        await subscriber.subscribe(topic, qos=1)
        async with aiomqtt.Client(
            services.mqtt_host, services.mqtt_port, identifier=f"it-pub-{uuid.uuid4().hex[:8]}"
        ) as publisher:
            # With QoS 1, publish returns once the broker has acknowledged (PUBACK).
            await publisher.publish(topic, payload, qos=1)
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            message = await anext(aiter(subscriber.messages))
    assert message.topic.matches(topic)
    assert message.payload == payload
    assert message.qos == 1


@pytest.mark.asyncio
async def test_mqtt_qos1_is_queued_for_an_offline_persistent_session(services: Services) -> None:
    """A QoS 1 message sent while a persistent subscriber is away reaches it when it returns."""
    topic = f"silkgate/test/{uuid.uuid4().hex}"
    client_id = f"it-persistent-{uuid.uuid4().hex[:8]}"
    host, port = services.mqtt_host, services.mqtt_port
    async with aiomqtt.Client(host, port, identifier=client_id, clean_session=False) as sub:
        await sub.subscribe(topic, qos=1)
    async with aiomqtt.Client(host, port, identifier=f"it-pub-{uuid.uuid4().hex[:8]}") as pub:
        await pub.publish(topic, b"while-away", qos=1)
    async with aiomqtt.Client(host, port, identifier=client_id, clean_session=False) as sub:
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            message = await anext(aiter(sub.messages))
        await sub.unsubscribe(topic)
    assert message.payload == b"while-away"
    assert message.qos == 1
    # Leave no persistent session behind on the broker.
    async with aiomqtt.Client(host, port, identifier=client_id, clean_session=True):
        pass


def _tcp_listeners(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the sockets listening on ``port``."""
    found: set[str] = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_services_listen_on_loopback_only(services: Services) -> None:
    if services.origin != "local":
        pytest.skip("only the local services are known to run on this machine")
    pg_port = urlsplit(services.dsn).port
    assert pg_port is not None
    assert _tcp_listeners(pg_port) == {"0100007F"}  # 127.0.0.1
    assert _tcp_listeners(services.mqtt_port) == {"0100007F"}
