"""The MQTT adapter against the real Mosquitto and PostgreSQL: routing per codec with real
frames, device ids from the topic, bad payloads as dead letters, redeliveries stored once, and
``silkgate run`` killed with SIGKILL while messages are in flight (nothing lost, nothing twice)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from functools import reduce
from operator import xor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import asyncpg
import pytest
import pytest_asyncio

from gateway.adapters.mqtt import MqttAdapter, frame_id, intake_config
from gateway.adapters.mqtt_client import Delivery, MqttIntake
from gateway.config import parse
from gateway.mqtt_config import MqttConfig
from gateway.pipeline import Pipeline
from gateway.store.testing import create_schema, drop_schema, migrated_schema, with_search_path
from gateway.tcp_simulator_frames import GBT_TIME_AT, gbt_time_raw

from .gatewaykit import Child, _accepts
from .mqttkit import drop_session, store_pipeline

if TYPE_CHECKING:
    from .conftest import Services

VECTORS = Path("/work/shared/vectors")
EPOCH = int(datetime(2026, 4, 1, tzinfo=UTC).timestamp())


def _vector(name: str, vid: str) -> bytes:
    for v in json.loads((VECTORS / f"{name}.json").read_text()):
        if v["id"] == vid:
            return bytes.fromhex(v["hex"])
    raise KeyError(vid)


GBT_REALTIME = _vector("gbt32960", "GB-02")  # a 2016 realtime report
JT_LOCATION = _vector("jt808", "JT-01")  # 0x0200 of terminal 011223344550


def gbt(vin: str, epoch: int) -> bytes:
    """The realtime report with another VIN and data time (BCC recomputed)."""
    f = GBT_REALTIME
    body = f[:4] + vin.encode() + f[21:GBT_TIME_AT] + gbt_time_raw(epoch) + f[GBT_TIME_AT + 6 : -1]
    return body + bytes([reduce(xor, body[2:], 0)])


def status(epoch: int, station: str | None = None) -> bytes:
    time = datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
    msg: dict[str, Any] = {"v": 1, "type": "station_status", "time": time, "state": "operating"}
    if station is not None:
        msg["station_id"] = station
    return json.dumps(msg).encode()


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _mqtt_section(services: Services, client_id: str, prefix: str, **extra: Any) -> str:
    """An ``[mqtt]`` section (TOML): GB/T, JT/T and swap routes under ``prefix``."""
    n = len(prefix.split("/")) + 1  # the device level: <prefix>/<kind>/<device>
    keys = {
        "enabled": True,
        "host": services.mqtt_host,
        "port": services.mqtt_port,
        "client_id": client_id,
        "session_expiry_s": 120,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "batch": 50,
        "max_in_flight": 200,
    } | extra
    lines = ["[mqtt]"] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    for flt, codec, device in [
        (f"{prefix}/gbt/+", "gbt32960", f"topic:{n}"),
        (f"{prefix}/jt/+", "jt808", f"topic:{n}"),
        (f"{prefix}/swap/+", "swap", f"topic:{n}"),
        (f"{prefix}/anygbt/#", "gbt32960", "payload"),
    ]:
        lines += [
            "[[mqtt.routes]]",
            f'filter = "{flt}"',
            f'codec = "{codec}"',
            f'device = "{device}"',
        ]
    return "\n".join(lines) + "\n"


def _mqtt_config(text: str) -> MqttConfig:
    return parse(tomllib.loads(text)).mqtt


async def _publish(services: Services, messages: Sequence[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client(
        services.mqtt_host, services.mqtt_port, identifier=f"it-pub-{_tag()}"
    ) as pub:
        for topic, payload in messages:
            await pub.publish(topic, payload, qos=1)


async def _until(cond: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await cond():
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def dsn(services: Services) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_mqtta")


@pytest_asyncio.fixture
async def store(dsn: str, tmp_path: Path) -> AsyncIterator[tuple[Pipeline, asyncpg.Pool]]:
    async with store_pipeline(dsn, tmp_path / "spool") as pipeline_pool:
        yield pipeline_pool


@contextlib.asynccontextmanager
async def _adapter(adapter: MqttAdapter, services: Services) -> AsyncIterator[MqttAdapter]:
    adapter.start()
    try:
        await adapter.intake.wait_connected(10)
        yield adapter
    finally:
        await adapter.stop(timeout=10)


@pytest.mark.asyncio
async def test_routes_codecs_devices_and_dead_letters(
    services: Services, store: tuple[Pipeline, asyncpg.Pool]
) -> None:
    pipeline, pool = store
    tag = _tag()
    client_id, prefix = f"it-mqa-{tag}", f"it/mqa/{tag}"
    cfg = _mqtt_config(_mqtt_section(services, client_id, prefix))
    vin = f"LSG{tag.upper()}0001"[:17].ljust(17, "0")
    other = vin[:-1] + "9"
    messages = [
        (f"{prefix}/gbt/{vin}", gbt(vin, EPOCH)),  # stored
        (f"{prefix}/gbt/{other}", gbt(vin, EPOCH + 1)),  # device_mismatch
        (f"{prefix}/gbt/{other}", b"not a frame"),  # the codec's reason
        (f"{prefix}/anygbt/x/y", gbt(other, EPOCH + 2)),  # device from the payload: stored
        (f"{prefix}/jt/11223344550", JT_LOCATION),  # leading zeros of the phone may go
        (f"{prefix}/jt/13800000000", JT_LOCATION),  # device_mismatch
        (f"{prefix}/swap/ST-{tag}", status(EPOCH)),  # station from the topic: stored
        (f"{prefix}/swap/ST-{tag}", b"{"),  # not_json
        (f"{prefix}/swap/ST-{tag}", status(EPOCH + 5, station="ST-X")),  # station_mismatch
        (f"{prefix}/other/1", b"\x01\x02"),  # no_route
    ]
    # One more subscription than the routes, to see a message that matches no route.
    intake = intake_config(cfg)
    intake = dataclasses.replace(
        intake, subscriptions=[*intake.subscriptions, (f"{prefix}/other/#", 1)]
    )
    try:
        async with _adapter(MqttAdapter(cfg, pipeline, pool, intake=intake), services) as adapter:
            await _publish(services, messages)

            async def acked() -> bool:
                return adapter.intake.stats.acked == len(messages)

            await _until(acked)
        assert adapter.stats.messages == len(messages)
        assert adapter.stats.duplicates == 0
        by_topic_reason = {
            "device_mismatch": 2,
            "station_mismatch": 1,
            "not_json": 1,
            "no_route": 1,
        }
        for reason, n in by_topic_reason.items():
            assert adapter.stats.by_reason.get(reason) == n, adapter.stats.by_reason
        async with pool.acquire() as conn:
            raw = await conn.fetch(
                "SELECT frame_id, peer, protocol, device_id, frame FROM raw_frames"
                " WHERE peer LIKE $1 ORDER BY protocol, device_id",
                f"mqtt:{prefix}/%",
            )
            dead = await conn.fetch(
                "SELECT frame_id, peer, protocol, reason, device_id, raw, message FROM dead_letters"
                " WHERE peer LIKE $1",
                f"mqtt:{prefix}/%",
            )
            realtime = await conn.fetch(
                "SELECT vin FROM vehicle_realtime WHERE vin = ANY($1::text[]) ORDER BY vin",
                [vin, other],
            )
            jt_positions = await conn.fetchval(
                "SELECT count(*) FROM positions WHERE device_id = '011223344550'"
            )
            stations = await conn.fetch(
                "SELECT station_id, state FROM station_status WHERE station_id LIKE $1",
                f"%{tag}",
            )
        assert [(r["protocol"], r["device_id"]) for r in raw] == [
            ("gbt32960", vin),
            ("gbt32960", other),
            ("jt808", "011223344550"),
            ("silkgate-swap", f"ST-{tag}"),
        ]
        for r in [*raw]:
            topic = r["peer"].removeprefix("mqtt:")
            assert r["frame_id"] == frame_id(topic, r["frame"])  # deterministic ids
        assert [r["vin"] for r in realtime] == sorted([vin, other])
        assert jt_positions >= 1
        assert [(r["station_id"], r["state"]) for r in stations] == [(f"ST-{tag}", "operating")]
        reasons = {(r["protocol"], r["reason"], r["device_id"]) for r in dead}
        assert len(dead) == 6
        assert ("gbt32960", "device_mismatch", other) in reasons
        assert ("jt808", "device_mismatch", "13800000000") in reasons
        assert ("silkgate-swap", "not_json", f"ST-{tag}") in reasons
        assert ("silkgate-swap", "station_mismatch", f"ST-{tag}") in reasons
        assert ("mqtt", "no_route", None) in reasons
        garbage = [r for r in dead if r["raw"] == b"not a frame"]
        assert len(garbage) == 1 and garbage[0]["device_id"] == other
        assert garbage[0]["protocol"] == "gbt32960" and garbage[0]["reason"]
        for r in dead:
            assert r["frame_id"] == frame_id(r["peer"].removeprefix("mqtt:"), r["raw"])
    finally:
        await drop_session(services.mqtt_host, services.mqtt_port, client_id)


class _CrashBeforeAck(MqttAdapter):
    """Makes batches durable but never sends their PUBACKs: a crash between commit and ack."""

    def _durable(
        self, fut: asyncio.Future[None], batch: Sequence[Delivery], fids: list[uuid.UUID]
    ) -> None:
        super()._durable(fut, [], fids)


@pytest.mark.asyncio
async def test_redelivered_after_commit_is_not_stored_twice(
    services: Services, store: tuple[Pipeline, asyncpg.Pool]
) -> None:
    pipeline, pool = store
    tag = _tag()
    client_id, prefix = f"it-mqa-{tag}", f"it/mqa/{tag}"
    cfg = _mqtt_config(_mqtt_section(services, client_id, prefix))
    vins = [f"LDD{tag.upper()}{i:04d}"[:17].ljust(17, "0") for i in range(4)]
    gbt_msgs = [(f"{prefix}/gbt/{v}", gbt(v, EPOCH + i)) for v in vins for i in range(25)]
    swap_msgs = [(f"{prefix}/swap/ST-{tag}", status(EPOCH + i)) for i in range(20)]
    bad = [(f"{prefix}/swap/ST-{tag}", b"[1, 2")]  # a dead letter, redelivered too
    messages = gbt_msgs + swap_msgs + bad
    total = len(messages)

    async def counts() -> dict[str, int]:
        async with pool.acquire() as conn:
            return {
                "raw": await conn.fetchval(
                    "SELECT count(*) FROM raw_frames WHERE peer LIKE $1", f"mqtt:{prefix}/%"
                ),
                "raw_ids": await conn.fetchval(
                    "SELECT count(DISTINCT frame_id) FROM raw_frames WHERE peer LIKE $1",
                    f"mqtt:{prefix}/%",
                ),
                "dead": await conn.fetchval(
                    "SELECT count(*) FROM dead_letters WHERE peer LIKE $1", f"mqtt:{prefix}/%"
                ),
                "realtime": await conn.fetchval(
                    "SELECT count(*) FROM vehicle_realtime WHERE vin = ANY($1::text[])", vins
                ),
                "station": await conn.fetchval(
                    "SELECT count(*) FROM station_status WHERE station_id = $1", f"ST-{tag}"
                ),
            }

    want = {"raw": total - 1, "raw_ids": total - 1, "dead": 1, "realtime": 100, "station": 20}
    try:
        async with _adapter(_CrashBeforeAck(cfg, pipeline, pool), services) as first:
            await _publish(services, messages)

            async def all_stored() -> bool:
                return await counts() == want

            await _until(all_stored)
        assert first.intake.stats.acked == 0 and first.stats.messages == total
        # A new process (nothing in memory): the broker redelivers all, with DUP set.
        async with _adapter(MqttAdapter(cfg, pipeline, pool), services) as second:

            async def acked() -> bool:
                return second.intake.stats.acked == total

            await _until(acked)
        assert second.intake.stats.redelivered == total
        assert second.stats.duplicates == total
        assert second.stats.messages == 0  # nothing stored again
        await asyncio.sleep(0.3)  # a late (wrong) write would show now
        assert await counts() == want
        # Acknowledged: a third connection of the session gets nothing.
        async with MqttIntake(intake_config(cfg)) as third:
            await third.wait_connected(10)
            await asyncio.sleep(0.5)
            assert third.stats.received == 0
    finally:
        await drop_session(services.mqtt_host, services.mqtt_port, client_id)


class _LoggedChild(Child):
    """``Child`` with its output (the live status lines) in ``log`` rather than discarded."""

    def __init__(self, dsn: str, tmp: Path, extra: str) -> None:
        super().__init__(dsn, tmp, extra)
        self.log = tmp / "run.log"

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.config.parent,
                env=env,
            )
        for _ in range(600):
            if all(_accepts(port) for port in self.ports.values()):
                return
            assert self.proc.poll() is None, self.log.read_text()
            await asyncio.sleep(0.05)
        raise AssertionError("the gateway did not start listening")

    def last_mqtt_status(self) -> dict[str, int]:
        """The counters of the last status line's mqtt part."""
        line = [ln for ln in self.log.read_text().splitlines() if "| mqtt " in ln][-1]
        part = line.split("| mqtt ")[1].split("|")[0]
        return {
            name: int(value.replace(",", ""))
            for value, name in re.findall(r"([\d,]+) (msgs|dead|redelivered|dup skipped)", part)
        }


@pytest_asyncio.fixture
async def schema_dsn(services: Services) -> AsyncIterator[str]:
    schema = await create_schema(services.dsn, "silkgate_mqttkill")
    yield with_search_path(services.dsn, schema)
    await drop_schema(services.dsn, schema)


@pytest.mark.asyncio
async def test_gateway_kill9_with_messages_in_flight(
    services: Services, schema_dsn: str, tmp_path: Path
) -> None:
    tag = _tag()
    client_id, prefix = f"it-mqk-{tag}", f"it/mqk/{tag}"
    section = _mqtt_section(services, client_id, prefix)
    cfg = _mqtt_config(section)
    vins = [f"LKK{tag.upper()}{i:04d}"[:17].ljust(17, "0") for i in range(6)]
    stations = [f"ST{i}-{tag}" for i in range(3)]
    messages = [(f"{prefix}/gbt/{v}", gbt(v, EPOCH + i)) for i in range(100) for v in vins]
    messages += [(f"{prefix}/swap/{s}", status(EPOCH + i)) for i in range(20) for s in stations]
    total, n_gbt = len(messages), 600

    async def counts() -> dict[str, int]:
        conn = await asyncpg.connect(schema_dsn)
        try:
            return {
                "realtime": await conn.fetchval("SELECT count(*) FROM vehicle_realtime"),
                "realtime_keys": await conn.fetchval(
                    "SELECT count(DISTINCT (vin, time)) FROM vehicle_realtime"
                ),
                "station": await conn.fetchval("SELECT count(*) FROM station_status"),
                "raw": await conn.fetchval("SELECT count(*) FROM raw_frames"),
                "raw_ids": await conn.fetchval("SELECT count(DISTINCT frame_id) FROM raw_frames"),
                "dead": await conn.fetchval("SELECT count(*) FROM dead_letters"),
            }
        finally:
            await conn.close()

    # The session exists before the gateway first runs (as in production after its first start):
    # whatever is published while it is down waits in the broker.
    async with MqttIntake(intake_config(cfg)) as intake:
        await intake.wait_connected(10)
    child = _LoggedChild(schema_dsn, tmp_path, extra=section)
    try:
        await child.start()

        async def publish() -> None:
            for i in range(0, total, 20):
                await _publish(services, messages[i : i + 20])
                await asyncio.sleep(0.01)

        publisher = asyncio.create_task(publish())
        try:

            async def some_stored() -> bool:
                return (await counts())["raw"] >= total // 5

            await _until(some_stored)
            child.kill()
            at_kill = (await counts())["raw"]
            assert at_kill < total  # killed mid-ingest
            await publisher  # the rest waits in the session
        finally:
            publisher.cancel()
        await child.start()
        want = {
            "realtime": n_gbt,
            "realtime_keys": n_gbt,
            "station": total - n_gbt,
            "raw": total,
            "raw_ids": total,
            "dead": 0,
        }

        async def complete() -> bool:
            return (await counts())["raw"] >= total

        await _until(complete, timeout=30)
        await asyncio.sleep(0.3)  # a late duplicate would show now
        assert child.stop() == 0
        assert await counts() == want
        after = child.last_mqtt_status()  # the restarted gateway's final status line
        # Messages were delivered to the killed gateway and not acknowledged: the broker sent
        # them again (DUP); those whose commit had made it were not stored twice.
        assert after["redelivered"] > 0, after
        assert after["msgs"] == total - at_kill  # what the first run had not committed
    finally:
        if child.proc is not None and child.proc.poll() is None:
            child.kill()
        await drop_session(services.mqtt_host, services.mqtt_port, client_id)
