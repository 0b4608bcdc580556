"""Charger JSON over the real Mosquitto into the real TimescaleDB, through the MQTT adapter: every
message type ends as rows of charger_status, meter_values, charging_sessions and charger_events
(SI units, ID tags hashed or not), bad payloads as dead letters with their reason, the same bytes
published twice as one reading, and messages redelivered after a crash before the PUBACK stored
once. The adapter's harness (pipeline fixture, publisher, crash-before-ack adapter) is
test_mqtt_adapter's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
import pytest_asyncio

from gateway.adapters.mqtt import MqttAdapter
from gateway.charger_json.normalize import PROTOCOL
from gateway.mqtt_config import MqttConfig, MqttRoute
from gateway.ocpp.normalize import id_tag_for_store
from gateway.pipeline import Pipeline
from gateway.store.testing import migrated_schema

from . import test_mqtt_adapter as harness
from .mqttkit import drop_session

if TYPE_CHECKING:
    from .conftest import Services

store = harness.store  # the pipeline over this module's schema (fixture)
TABLES = ("charger_status", "meter_values", "charging_sessions", "charger_events")


@pytest.fixture(scope="module")
def dsn(services: Services) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_chjson")


@dataclass
class Run:
    """One test's pipeline and pool, and its own client id and topics (the tag names its
    chargers too)."""

    pipeline: Pipeline
    pool: asyncpg.Pool
    tag: str
    client_id: str
    prefix: str


@pytest_asyncio.fixture
async def run(services: Services, store: tuple[Pipeline, asyncpg.Pool]) -> AsyncIterator[Run]:
    tag = harness._tag()
    yield Run(*store, tag, f"it-chj-{tag}", f"it/chj/{tag}")
    await drop_session(services.mqtt_host, services.mqtt_port, f"it-chj-{tag}")


def routes_config(services: Services, client_id: str, prefix: str, **keys: Any) -> MqttConfig:
    """``<prefix>/chargers/<charger id>`` names the charger; ``<prefix>/site/...`` leaves it to
    the payload."""
    device = f"topic:{prefix.count('/') + 2}"
    return MqttConfig(
        enabled=True,
        host=services.mqtt_host,
        port=services.mqtt_port,
        client_id=client_id,
        session_expiry_s=120,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        batch=20,
        routes=[
            MqttRoute(filter=f"{prefix}/chargers/+", codec="charger", device=device),
            MqttRoute(filter=f"{prefix}/site/#", codec="charger"),
        ],
        **keys,
    )


def message(kind: str, minute: int, **fields: Any) -> bytes:
    """A charger message of ``kind`` made at 06:<minute>Z (+03:00 on the wire)."""
    time = f"2026-03-02T09:{minute:02d}:00+03:00"
    return json.dumps({"v": 1, "type": kind, "time": time, **fields}).encode()


SAMPLES = [
    {"measurand": "Energy.Active.Import.Register", "value": 1234.567, "unit": "kWh"},
    {"measurand": "Power.Active.Import", "value": 118.4, "unit": "kW"},
    {"measurand": "Current.Import", "value": 171.6, "phase": "L1"},
    {"measurand": "Temperature", "value": 95, "unit": "Fahrenheit", "location": "Cable"},
]


def every_type(charger: str) -> list[bytes]:
    """One message of each type (and each session event) for ``charger``, the charger left to
    the topic."""
    session = {"transaction_id": "TX-1", "connector_id": 1, "id_tag": "04A2B3C4"}
    return [
        message("connector_status", 1, connector_id=1, status="Charging", error_code="NoError"),
        message("meter_values", 2, connector_id=1, transaction_id="TX-1", samples=SAMPLES),
        message("session", 3, event="start", meter_start_wh=1000, **session),
        message("session", 4, event="update", energy_wh=25000.5, soc_pct=40, **session),
        message("session", 5, event="stop", meter_stop_wh=51000, stop_reason="Remote", **session),
        message("event", 6, event="fault", connector_id=1, code="E-0412", detail={"kohm": 82}),
    ]


async def rows(pool: asyncpg.Pool, tag: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of the four tables for the chargers of ``tag``, in a stable order."""
    queries = {
        "charger_status": "SELECT charger_id, connector_id, status, error_code, protocol,"
        " to_char(time AT TIME ZONE 'UTC', 'HH24:MI') FROM charger_status",
        "meter_values": "SELECT charger_id, measurand, value, unit, phase, location,"
        " transaction_id, protocol FROM meter_values",
        "charging_sessions": "SELECT charger_id, event, transaction_id, id_tag, id_tag_hashed,"
        " meter_start_wh, meter_stop_wh, energy_wh, stop_reason, protocol,"
        " to_char(time AT TIME ZONE 'UTC', 'HH24:MI') FROM charging_sessions",
        "charger_events": "SELECT charger_id, event, key, detail::text, protocol"
        " FROM charger_events",
    }
    out = {}
    async with pool.acquire() as conn:
        for table, query in queries.items():
            found = await conn.fetch(
                f"{query} WHERE charger_id LIKE $1 ORDER BY 1, 2, 3", f"%{tag}"
            )
            out[table] = [tuple(r) for r in found]
    return out


async def archive(pool: asyncpg.Pool, prefix: str) -> tuple[list[Any], list[Any]]:
    """The raw frames and dead letters of the messages on ``prefix``."""
    async with pool.acquire() as conn:
        raw = await conn.fetch(
            "SELECT protocol, version, device_id, frame_id FROM raw_frames WHERE peer LIKE $1",
            f"mqtt:{prefix}/%",
        )
        dead = await conn.fetch(
            "SELECT protocol, reason, device_id, message FROM dead_letters WHERE peer LIKE $1"
            " ORDER BY reason",
            f"mqtt:{prefix}/%",
        )
    return raw, dead


@pytest.mark.asyncio
async def test_every_type_stored_bad_ones_dead_repeats_once(services: Services, run: Run) -> None:
    tag, prefix = run.tag, run.prefix
    cp1, cp2 = f"CP1-{tag}", f"CP2-{tag}"
    boot = message("event", 0, charger_id=cp2, event="boot", detail={"firmware_version": "3.2"})
    published = [(f"{prefix}/chargers/{cp1}", m) for m in every_type(cp1)]
    published += [
        (f"{prefix}/site/a", boot),  # the charger from the payload
        (f"{prefix}/site/a", boot),  # the same bytes again: one event row
        (f"{prefix}/chargers/{cp1}", b'{"v":1,'),
        (f"{prefix}/chargers/{cp1}", message("event", 7, charger_id=cp2, event="boot")),
        (f"{prefix}/chargers/{cp1}", message("heartbeat", 8)),
        (f"{prefix}/site/a", message("event", 9, event="boot")),
        (f"{prefix}/chargers/{cp1}", message("event", 10, event="x").replace(b"+03:00", b"")),
    ]
    cfg = routes_config(services, run.client_id, prefix)
    async with harness._adapter(MqttAdapter(cfg, run.pipeline, run.pool), services) as adapter:
        await harness._publish(services, published)

        async def acked() -> bool:
            return adapter.intake.stats.acked == len(published)

        await harness._until(acked)
    assert adapter.stats.dead_letters == 5
    stored = await rows(run.pool, tag)
    raw, dead = await archive(run.pool, prefix)

    assert stored["charger_status"] == [(cp1, 1, "Charging", "NoError", PROTOCOL, "06:01")]
    assert stored["meter_values"] == [
        (cp1, "Current.Import", 171.6, "A", "L1", None, "TX-1", PROTOCOL),
        (cp1, "Energy.Active.Import.Register", 1234567.0, "Wh", None, None, "TX-1", PROTOCOL),
        (cp1, "Power.Active.Import", 118400.0, "W", None, None, "TX-1", PROTOCOL),
        (cp1, "Temperature", 35.0, "Celsius", None, "Cable", "TX-1", PROTOCOL),
    ]
    hashed = id_tag_for_store("04A2B3C4")
    assert stored["charging_sessions"] == [
        (cp1, "start", "TX-1", hashed, True, 1000.0, None, None, None, PROTOCOL, "06:03"),
        (cp1, "stop", "TX-1", hashed, True, None, 51000.0, None, "Remote", PROTOCOL, "06:05"),
        (cp1, "update", "TX-1", hashed, True, None, None, 25000.5, None, PROTOCOL, "06:04"),
    ]
    events = [(c, e, k, json.loads(d), p) for c, e, k, d, p in stored["charger_events"]]
    assert events == [
        (cp1, "fault", "/1::E-0412", {"kohm": 82, "code": "E-0412", "connector_id": 1}, PROTOCOL),
        (cp2, "boot", "", {"firmware_version": "3.2"}, PROTOCOL),
    ]
    # The repeated boot has one deterministic frame id (one archive row, or two when the copies
    # were received at different times).
    archived = {(r["frame_id"], r["protocol"], r["version"], r["device_id"]) for r in raw}
    assert sorted(a[1:] for a in archived) == [(PROTOCOL, "1", cp1)] * 6 + [(PROTOCOL, "1", cp2)]
    assert [(d["protocol"], d["reason"], d["device_id"]) for d in dead] == [
        (PROTOCOL, "charger_mismatch", cp1),
        (PROTOCOL, "missing_field", None),
        (PROTOCOL, "naive_time", cp1),
        (PROTOCOL, "not_json", cp1),
        (PROTOCOL, "unknown_type", cp1),
    ]
    paths = [d["message"].partition(":")[0] for d in dead]
    assert paths == ["$.charger_id", "$.charger_id", "$.time", "$", "$.type"]


@pytest.mark.asyncio
async def test_redelivered_after_a_crash_before_the_puback_is_stored_once(
    services: Services, run: Run
) -> None:
    chargers = [f"CP{i}-{run.tag}" for i in range(4)]
    published = [(f"{run.prefix}/chargers/{c}", m) for c in chargers for m in every_type(c)]
    published.append((f"{run.prefix}/chargers/{chargers[0]}", b"[1,"))  # a dead letter, too
    cfg = routes_config(services, run.client_id, run.prefix, id_tags="plain")

    async def counts() -> dict[str, int]:
        found = {table: len(found) for table, found in (await rows(run.pool, run.tag)).items()}
        raw, dead = await archive(run.pool, run.prefix)
        return found | {"raw": len(raw), "dead": len(dead)}

    want = {
        "charger_status": 4,
        "meter_values": 16,
        "charging_sessions": 12,
        "charger_events": 4,
        "raw": 24,
        "dead": 1,
    }
    crashing = harness._CrashBeforeAck(cfg, run.pipeline, run.pool)
    async with harness._adapter(crashing, services) as first:
        await harness._publish(services, published)

        async def all_stored() -> bool:
            return await counts() == want

        await harness._until(all_stored)
    assert first.intake.stats.acked == 0
    # A new process: the broker redelivers every message, DUP set; none is stored again.
    async with harness._adapter(MqttAdapter(cfg, run.pipeline, run.pool), services) as second:

        async def acked() -> bool:
            return second.intake.stats.acked == len(published)

        await harness._until(acked)
    assert second.intake.stats.redelivered == len(published)
    assert (second.stats.duplicates, second.stats.messages) == (len(published), 0)
    assert await counts() == want
    sessions = (await rows(run.pool, run.tag))["charging_sessions"]
    assert {(s[3], s[4]) for s in sessions} == {("04A2B3C4", False)}  # mqtt.id_tags = "plain"
