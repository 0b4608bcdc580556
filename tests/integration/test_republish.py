"""Local republish against the real TimescaleDB and a private Mosquitto: records of every kind
go through a real Pipeline + StoreWriter(outbox=True) and arrive on their topics with their JSON
(operator from the registry); the cursor survives restarts (a crash repeats, never loses); a
broker outage loses nothing; outbox rows are deleted once published; QoS 0 and 2 work; a
message the broker refuses is retried until it is taken; ``silkgate run`` republishes what its
simulated trucks send.

Every test has its own broker, topic prefix and devices in a scratch schema of this module.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiomqtt
import asyncpg
import msgspec
import pytest
import pytest_asyncio

from gateway import records as rec
from gateway.config import PipelineConfig
from gateway.forward.config import TlsConfig
from gateway.ingest import GBT32960, JT808, Ingestor
from gateway.pipeline import Pipeline
from gateway.republish import message
from gateway.republish.config import ALL_KINDS, RepublishConfig
from gateway.republish.service import Republisher
from gateway.simulator import Fleet
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store import create_pool
from gateway.store.testing import migrated_schema
from gateway.swap.messages import decode as swap_decode
from gateway.swap.normalize import records as swap_records
from gateway.tcp_simulator import SimConfig, TerminalFleet
from gateway.testing import TcpProxy

from .conftest import MqttTlsBroker, Services
from .mqttkit import PrivateBroker, free_port, password_file

pytestmark = pytest.mark.asyncio

DOCS = Path(__file__).resolve().parents[2] / "docs"
RECEIVED = datetime(2026, 3, 2, 6, 16, tzinfo=UTC)
#: The broker keeps every message of an offline subscriber (Mosquitto's default is 1000).
BROKER_LIMITS = "max_queued_messages 100000\n"
_ROUNDS = itertools.count(1)  # each batch of truck records its own receive time

Message = tuple[str, str]  # (topic, payload as JSON text with sorted keys)


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _canon(payload: bytes) -> str:
    return json.dumps(json.loads(payload), sort_keys=True)


@pytest.fixture(scope="module")
def dsn(services: Services) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_republish")


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(dsn, min_size=1, max_size=4)
    try:
        # Each test starts with an empty outbox and no cursors (outbox rows of an earlier test
        # would otherwise be published to this test's broker).
        await p.execute("TRUNCATE republish_outbox, forward_cursors")
        yield p
    finally:
        await p.close()


@pytest_asyncio.fixture
async def broker(tmp_path: Path) -> AsyncIterator[PrivateBroker]:
    b = PrivateBroker(tmp_path / "broker", extra_config=BROKER_LIMITS)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


@pytest_asyncio.fixture
async def pipeline(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Pipeline]:
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="never"))
    try:
        cfg = PipelineConfig(batch_rows=200, batch_age_ms=10)
        async with Pipeline(StoreWriter(pool, outbox=True), spool, cfg) as p:
            yield p
    finally:
        await spool.close()


class Subscriber:
    """Every message under ``prefix`` (QoS 2), by default on a persistent MQTT 3.1.1 session
    that survives broker restarts (the broker keeps what arrives while it is away); ``client``:
    other aiomqtt.Client arguments (login, TLS, ``clean_session``)."""

    def __init__(self, port: int, prefix: str, **client: Any) -> None:
        self.port, self.prefix = port, prefix
        self._client: dict[str, Any] = {
            "identifier": f"it-sub-{_tag()}",
            "clean_session": False,
            "protocol": aiomqtt.ProtocolVersion.V311,
        } | client
        self.messages: list[Message] = []
        self.qos: collections.Counter[int] = collections.Counter()
        self._changed = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, **self._client) as client:
                    await client.subscribe(f"{self.prefix}/#", qos=2)
                    self._subscribed.set()
                    async for m in client.messages:
                        assert isinstance(m.payload, bytes)
                        self.messages.append((str(m.topic), _canon(m.payload)))
                        self.qos[m.qos] += 1
                        self._changed.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    async def wait(self, pred: Callable[[Subscriber], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not pred(self):
                self._changed.clear()
                await self._changed.wait()

    async def wait_for(self, expected: list[Message], timeout: float = 20.0) -> None:
        """Until every expected message came (at least once)."""
        want = collections.Counter(expected)

        def complete(s: Subscriber) -> bool:
            got = collections.Counter(s.messages)
            return all(got[m] >= n for m, n in want.items())

        try:
            await self.wait(complete, timeout)
        except TimeoutError:
            missing = want - collections.Counter(self.messages)
            raise AssertionError(
                f"{sum(missing.values())} messages missing, e.g. {missing}"
            ) from None


def _config(broker: PrivateBroker, prefix: str, **kw: Any) -> RepublishConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "port": broker.port,
        "client_id": f"it-rep-{_tag()}",
        "topic_prefix": prefix,
        "cursor_save_ms": 50,
        "poll_interval_ms": 20,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.3,
        "close_grace_s": 2.0,
    }
    return msgspec.convert(values | kw, RepublishConfig)


@contextlib.asynccontextmanager
async def running(cfg: RepublishConfig, pool: asyncpg.Pool) -> AsyncIterator[Republisher]:
    rep = Republisher(cfg, pool)
    rep.start()
    try:
        yield rep
    finally:
        await rep.stop()


def expected(records: list[Any], prefix: str, operators: dict[str, str]) -> list[Message]:
    """The messages the republisher must send for ``records`` (raw frames: none)."""
    out = []
    for r in records:
        if type(r) in message.KINDS:
            op = operators.get(message.device_of(r) or "")
            out.append((message.topic(prefix, op, r), _canon(message.payload(r, RECEIVED))))
    return out


async def outbox_rows(pool: asyncpg.Pool) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM republish_outbox")
    return n


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# the records


def truck_records(fleet: Fleet) -> list[Any]:
    """What the listeners make of the fleet's logins and a round of reports: raw frames,
    session events, realtime rows, positions. Every call: new data times, a new receive time
    (JT/T 808 logins carry no time of their own)."""
    ingest = {GBT32960: Ingestor(GBT32960), JT808: Ingestor(JT808)}
    fleet.advance(10)
    received = RECEIVED + timedelta(milliseconds=next(_ROUNDS))
    out: list[Any] = []
    for raw in fleet.logins() + fleet.reports():
        out += ingest[JT808 if raw[0] == 0x7E else GBT32960].frame(raw, "test", received)
    return out


def truck_rounds(prefix: str, fleet: Fleet, n: int) -> list[tuple[list[Any], list[Message]]]:
    """``n`` successive rounds of the fleet's records, each with the messages it must give
    (no registry rows: operator ``_``)."""
    rounds = [truck_records(fleet) for _ in range(n)]
    return [(records, expected(records, prefix, {})) for records in rounds]


def charge_records(charger: str, station: str, t0: datetime) -> list[Any]:
    """Every charger kind for ``charger`` and every swap kind for ``station``."""
    c: dict[str, Any] = {"charger_id": charger, "protocol": "ocpp2.0.1", "received_at": RECEIVED}
    out: list[Any] = [
        rec.ChargerStatus(**c, time=t0, connector_id=1, evse_id=1, status="Occupied"),
        rec.MeterValue(
            **c,
            time=t0,
            connector_id=1,
            evse_id=1,
            measurand="Power.Active.Import",
            value=1.5e5,
            unit="W",
        ),
        rec.ChargingSession(**c, transaction_id=f"tx-{charger}", time=t0, event="start"),
        rec.ChargerEvent(**c, time=t0, event="security_event", key="7", detail={"type": "Reset"}),
        rec.Alarm(
            device_id="LSGALARM000000001",
            protocol="gbt32960",
            time=t0,
            level=2,
            flags=5,
            names=["temperature_difference", "cell_overvoltage"],
            received_at=RECEIVED,
        ),
    ]
    examples = re.findall(r"```json\n(.*?)```", (DOCS / "swap-station.md").read_text(), re.S)
    for text in examples:
        body = json.loads(text) | {"station_id": station}
        out += swap_records(swap_decode(json.dumps(body).encode()), RECEIVED)
    return out


async def register(
    pool: asyncpg.Pool, operator: str, fleet: Fleet, charger: str, station: str
) -> dict[str, str]:
    """Registry rows: truck 0 (GB/T) a vehicle of ``operator``; truck 2 (JT/T 808) a terminal of
    ``operator``; truck 3 (JT/T 808) a terminal without operator whose vehicle belongs to
    ``operator``-2; truck 1 and the alarm's VIN unknown. Device id -> expected operator."""
    t = fleet.trucks
    phone_2019 = t[3].phone.rjust(20, "0")  # JT/T 808 2019 phones are 20 digits
    other = f"{operator}-2"
    await pool.executemany(
        "INSERT INTO operators (operator_id, name) VALUES ($1, $1)", [(operator,), (other,)]
    )
    await pool.executemany(
        "INSERT INTO vehicles (vin, operator_id) VALUES ($1, $2)",
        [(t[0].vin, operator), (t[3].vin, other)],
    )
    await pool.executemany(
        "INSERT INTO terminals (phone, operator_id, vin) VALUES ($1, $2, $3)",
        [(t[2].phone, operator, None), (phone_2019, None, t[3].vin)],
    )
    await pool.execute(
        "INSERT INTO stations (station_id, operator_id, kind) VALUES ($1, $2, 'swap')",
        station,
        operator,
    )
    await pool.execute(
        "INSERT INTO chargers (charger_id, operator_id, protocol) VALUES ($1, $2, 'ocpp2.0.1')",
        charger,
        operator,
    )
    return {
        t[0].vin: operator,
        t[2].phone: operator,
        phone_2019: other,
        charger: operator,
        station: operator,
    }


# ---------------------------------------------------------------------------------------------
# tests


async def test_every_kind_arrives_on_its_topic(
    pool: asyncpg.Pool, pipeline: Pipeline, broker: PrivateBroker
) -> None:
    tag = _tag()
    prefix = f"it-{tag}/v1"
    fleet = Fleet(4, seed=31)  # GB/T 2016 and 2025, JT/T 808 2013 and 2019
    charger, station = f"CP-{tag}", f"SW-{tag}"
    operators = await register(pool, f"acme-{tag}", fleet, charger, station)
    records = truck_records(fleet) + charge_records(charger, station, RECEIVED)
    want = expected(records, prefix, operators)
    kinds = {t.split("/")[3] for t, _ in want}
    assert kinds == set(ALL_KINDS)
    assert any(isinstance(r, rec.RawFrame) for r in records)
    levels = {t.split("/")[2] for t, _ in want}
    assert levels == {f"acme-{tag}", f"acme-{tag}-2", "_"}

    async with Subscriber(broker.port, prefix) as sub:
        await pipeline.ingest(records)
        async with running(_config(broker, prefix), pool) as rep:
            await sub.wait_for(want)
            await eventually(lambda: _done(pool, rep, len(want)))
        assert rep.stats.published == len(want) and rep.stats.rejected == 0
        await asyncio.sleep(0.2)
        assert collections.Counter(sub.messages) == collections.Counter(want)  # each once
    assert sub.qos == {1: len(want)}
    cursor = await pool.fetchrow("SELECT * FROM forward_cursors WHERE name = 'republish:local'")
    assert cursor is not None and cursor["forwarded"] == len(want)
    assert await outbox_rows(pool) == 0


async def _done(pool: asyncpg.Pool, rep: Republisher, n: int) -> bool:
    """The cursor saved past ``n`` messages and the outbox emptied."""
    saved = await pool.fetchval(
        "SELECT forwarded FROM forward_cursors WHERE name = $1", rep.cfg.cursor_name
    )
    return saved == n and await outbox_rows(pool) == 0


async def test_cursor_survives_restarts(
    pool: asyncpg.Pool, pipeline: Pipeline, broker: PrivateBroker
) -> None:
    prefix = f"it-{_tag()}/v1"
    (a, want_a), (b, want_b), (c, want_c) = truck_rounds(prefix, Fleet(4, seed=32), 3)
    async with Subscriber(broker.port, prefix) as sub:
        # 1. a crash (the task dies, the cursor is never saved): everything comes again
        cfg = _config(broker, prefix, cursor_save_ms=600_000)
        crashed = Republisher(cfg, pool)
        task = asyncio.create_task(crashed.run())
        await pipeline.ingest(a)
        await sub.wait_for(want_a)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await pool.fetchval("SELECT forwarded FROM forward_cursors") == 0
        assert await outbox_rows(pool) > 0  # nothing deleted behind an unsaved cursor
        # 2. a new republisher: a again (at least once), then b; stopped gracefully
        await pipeline.ingest(b)
        async with running(_config(broker, prefix), pool):
            await sub.wait_for(want_a * 2 + want_b)
        got = collections.Counter(sub.messages)
        assert all(got[m] == 1 for m in want_b) and all(got[m] == 2 for m in want_a)
        # 3. after a graceful stop nothing repeats
        await pipeline.ingest(c)
        async with running(_config(broker, prefix), pool) as rep:
            await sub.wait_for(want_c)
            # forwarded counts what saved cursors passed: the crashed run's copies are not in it
            await eventually(lambda: _done(pool, rep, len(want_a + want_b + want_c)))
        await asyncio.sleep(0.2)
        got = collections.Counter(sub.messages)
        assert all(got[m] == 1 for m in want_b + want_c)
        assert sum(got.values()) == 2 * len(want_a) + len(want_b) + len(want_c)


async def test_broker_outage_loses_nothing(
    pool: asyncpg.Pool, pipeline: Pipeline, broker: PrivateBroker
) -> None:
    prefix = f"it-{_tag()}/v1"
    rounds = truck_rounds(prefix, Fleet(6, seed=33), 11)
    (before, want_before), during = rounds[0], [records for records, _ in rounds[1:]]
    want_all = [m for _, want in rounds for m in want]
    async with Subscriber(broker.port, prefix) as sub:
        async with running(_config(broker, prefix), pool) as rep:
            await pipeline.ingest(before)
            await sub.wait_for(want_before)
            await broker.stop()
            # Ingest goes on while the broker is away: the outbox holds it.
            for d in during[:5]:
                await pipeline.ingest(d)
            await eventually(lambda: _not_connected(rep))
            await eventually(lambda: _outbox_at_least(pool, 5))
            await broker.start()
            # ... and while it comes back.
            for d in during[5:]:
                await pipeline.ingest(d)
                await asyncio.sleep(0.02)
            await sub.wait_for(want_all, timeout=30)
            await eventually(lambda: _done(pool, rep, rep.stats.published_total))
            assert rep.stats.connects >= 2
        assert rep.stats.published >= len(want_all)
    assert await outbox_rows(pool) == 0


async def test_unacknowledged_messages_are_published_again(
    pool: asyncpg.Pool, pipeline: Pipeline, broker: PrivateBroker
) -> None:
    """The link to the broker stalls (nothing gets through, nothing is acknowledged): the cursor
    stays before the messages in flight; after ``ack_timeout_s`` a new connection publishes
    them again."""
    prefix = f"it-{_tag()}/v1"
    (a, want_a), (b, want_b) = truck_rounds(prefix, Fleet(4, seed=37), 2)
    proxy = await TcpProxy("127.0.0.1", broker.port).start()
    try:
        cfg = _config(broker, prefix, port=proxy.port, ack_timeout_s=1.0)
        async with Subscriber(broker.port, prefix) as sub, running(cfg, pool) as rep:
            await pipeline.ingest(a)
            await sub.wait_for(want_a)
            await eventually(lambda: _done(pool, rep, len(want_a)))
            proxy.stall()
            await pipeline.ingest(b)
            await eventually(lambda: _in_flight(rep))
            await asyncio.sleep(0.3)  # cursor saves every 50 ms meanwhile
            assert await pool.fetchval("SELECT forwarded FROM forward_cursors") == len(want_a)
            assert await outbox_rows(pool) > 0 and rep.stats.connects == 1
            await sub.wait_for(want_b)
            assert rep.stats.connects == 2 and "no acknowledgement" in (rep.stats.last_error or "")
            await eventually(lambda: _done(pool, rep, len(want_a + want_b)))
    finally:
        await proxy.close()


async def test_spooled_batches_are_republished_when_replayed(
    dsn: str, pool: asyncpg.Pool, broker: PrivateBroker, tmp_path: Path
) -> None:
    """The database away for the pipeline: its batches go to the spool (no outbox row yet);
    replayed when it is back, they are committed with their outbox rows and published."""
    prefix = f"it-{_tag()}/v1"
    (a, want_a), (b, want_b) = truck_rounds(prefix, Fleet(4, seed=41), 2)
    parts = urlsplit(dsn)
    proxy = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    via = urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit(':', 1)[0]}:{proxy.port}"))
    ingest_pool = await create_pool(via, max_size=2, timeout=2)
    spool = await AsyncSpool.open(tmp_path / "spool2", SpoolConfig(fsync="never"))
    cfg = PipelineConfig(batch_rows=200, batch_age_ms=10, retry_interval_s=0.2)
    try:
        async with (
            Pipeline(StoreWriter(ingest_pool, outbox=True), spool, cfg) as pipeline,
            Subscriber(broker.port, prefix) as sub,
            running(_config(broker, prefix), pool) as rep,
        ):
            await pipeline.ingest(a)
            await sub.wait_for(want_a)
            await eventually(lambda: _done(pool, rep, len(want_a)))
            proxy.cut()  # the database is away (for ingest only)
            await asyncio.wait_for(pipeline.ingest(b), 30)
            assert pipeline.spooling and pipeline.stats.spooled_rows == len(b)
            assert await outbox_rows(pool) == 0  # b is in the spool, not in the outbox
            proxy.restore()
            await pipeline.wait_drained(timeout=30)
            await sub.wait_for(want_b)
            await eventually(lambda: _done(pool, rep, len(want_a + want_b)))
            assert collections.Counter(sub.messages) == collections.Counter(want_a + want_b)
    finally:
        await spool.close()
        await ingest_pool.close()
        await proxy.close()


async def _in_flight(rep: Republisher) -> bool:
    return rep.stats.in_flight > 0


async def _not_connected(rep: Republisher) -> bool:
    return not rep.stats.connected


async def _outbox_at_least(pool: asyncpg.Pool, n: int) -> bool:
    return await outbox_rows(pool) >= n


@pytest.mark.parametrize("qos", [0, 2])
async def test_qos_0_and_2(
    pool: asyncpg.Pool, pipeline: Pipeline, broker: PrivateBroker, qos: int
) -> None:
    tag = _tag()
    prefix = f"it-{tag}/v1"
    records = truck_records(Fleet(4, seed=34)) + charge_records(f"CP-{tag}", f"SW-{tag}", RECEIVED)
    want = expected(records, prefix, {})
    async with Subscriber(broker.port, prefix) as sub:
        cfg = _config(
            broker, prefix, qos=qos, retain=qos == 2, protocol="3.1.1" if qos == 0 else "5"
        )
        async with running(cfg, pool) as rep:
            await pipeline.ingest(records)
            await sub.wait_for(want)
            await eventually(lambda: _done(pool, rep, len(want)))
        await asyncio.sleep(0.1)
        assert collections.Counter(sub.messages) == collections.Counter(want)
        assert sub.qos == {qos: len(want)}
    if qos == 2:  # retained: a late subscriber gets the last message of every topic
        async with Subscriber(broker.port, prefix) as late:
            await late.wait(lambda s: len(s.messages) >= len({t for t, _ in want}))
            assert {t for t, _ in late.messages} == {t for t, _ in want}


async def test_selected_kinds_only(
    pool: asyncpg.Pool, pipeline: Pipeline, broker: PrivateBroker
) -> None:
    tag = _tag()
    prefix = f"it-{tag}/v1"
    records = truck_records(Fleet(4, seed=35)) + charge_records(f"CP-{tag}", f"SW-{tag}", RECEIVED)
    kinds = ["position", "station_status"]
    want = [m for m in expected(records, prefix, {}) if m[0].split("/")[3] in kinds]
    async with Subscriber(broker.port, prefix) as sub:
        async with running(_config(broker, prefix, kinds=kinds), pool) as rep:
            await pipeline.ingest(records)
            await sub.wait_for(want)
            await eventually(lambda: _done(pool, rep, len(want)))
        await asyncio.sleep(0.1)
        assert collections.Counter(sub.messages) == collections.Counter(want)
        assert rep.stats.skipped == len(expected(records, prefix, {})) - len(want)


async def test_refused_messages_are_retried_until_taken(
    pool: asyncpg.Pool, pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker that refuses the republisher's topics (ACL): nothing is passed, the refusals are
    counted, and once the ACL allows the topics everything arrives."""
    prefix = f"it-{_tag()}/v1"
    users = password_file(tmp_path / "passwd", {"gw": "gw-secret", "sub": "sub-secret"})
    acl = tmp_path / "acl"
    acl.write_text(f"user sub\ntopic read {prefix}/#\nuser gw\ntopic write elsewhere/#\n")
    broker = PrivateBroker(
        tmp_path / "broker",
        extra_config=f"allow_anonymous true\npassword_file {users}\nacl_file {acl}\n"
        + BROKER_LIMITS,
    )
    monkeypatch.setenv("IT_REPUBLISH_PASSWORD", "gw-secret")
    records = truck_records(Fleet(2, seed=36))
    want = expected(records, prefix, {})
    await broker.start()
    try:
        for qos in (1, 2):
            cfg = _config(
                broker, prefix, qos=qos, username="gw", password_env="IT_REPUBLISH_PASSWORD"
            )
            async with running(cfg, pool) as rep:
                if qos == 1:
                    await pipeline.ingest(records)
                await eventually(lambda: _refused(rep, 3))
                assert rep.stats.published == 0
            assert await pool.fetchval("SELECT forwarded FROM forward_cursors") == 0
            assert await outbox_rows(pool) > 0
        acl.write_text(f"user sub\ntopic read {prefix}/#\nuser gw\ntopic write {prefix}/#\n")
        await broker.restart()
        cfg = _config(broker, prefix, username="gw", password_env="IT_REPUBLISH_PASSWORD")
        async with (
            Subscriber(broker.port, prefix, username="sub", password="sub-secret") as sub,
            running(cfg, pool) as rep,
        ):
            await sub.wait_for(want)
            await eventually(lambda: _done(pool, rep, len(want)))
    finally:
        await broker.stop()


async def _refused(rep: Republisher, n: int) -> bool:
    return rep.stats.rejected >= n


async def test_tls_and_password(
    pool: asyncpg.Pool,
    pipeline: Pipeline,
    mqtt_tls: MqttTlsBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The services' TLS broker (password login): the republisher verifies it with the CA of
    ``[republish.tls]``."""
    prefix = f"it-{_tag()}/v1"
    records = truck_records(Fleet(2, seed=38))
    want = expected(records, prefix, {})
    monkeypatch.setenv("IT_REPUBLISH_TLS_PASSWORD", mqtt_tls.password)
    cfg = msgspec.convert(
        {
            "enabled": True,
            "host": mqtt_tls.host,
            "port": mqtt_tls.port,
            "topic_prefix": prefix,
            "client_id": f"it-rep-{_tag()}",
            "username": mqtt_tls.username,
            "password_env": "IT_REPUBLISH_TLS_PASSWORD",
            "tls": {"ca_file": mqtt_tls.ca},
            "cursor_save_ms": 50,
        },
        RepublishConfig,
    )
    login = {"username": mqtt_tls.username, "password": mqtt_tls.password}
    tls = ssl.create_default_context(cafile=mqtt_tls.ca)
    async with (
        Subscriber(mqtt_tls.port, prefix, clean_session=True, tls_context=tls, **login) as sub,
        running(cfg, pool) as rep,
    ):
        await pipeline.ingest(records)
        await sub.wait_for(want)
        await eventually(lambda: _done(pool, rep, len(want)))
    # Without the CA the broker's certificate is not trusted: nothing goes out.
    untrusted = msgspec.structs.replace(cfg, tls=TlsConfig(), client_id=f"it-rep-{_tag()}")
    await pipeline.ingest(truck_records(Fleet(2, seed=39)))
    async with running(untrusted, pool) as rep:
        await eventually(lambda: _failed_with(rep, "CERTIFICATE_VERIFY_FAILED"))
        assert rep.stats.published == 0 and not rep.stats.connected


async def _failed_with(rep: Republisher, text: str) -> bool:
    return text in (rep.stats.last_error or "")


async def test_silkgate_run_with_workers(
    dsn: str, pool: asyncpg.Pool, broker: PrivateBroker, tmp_path: Path
) -> None:
    """``silkgate run --workers 2`` with [republish]: both workers write the outbox, worker 0
    alone publishes; terminals' reports arrive once each; a clean stop leaves the outbox empty
    and says in the final status line what it published."""
    prefix = f"it-{_tag()}/v1"
    port = free_port()
    config = tmp_path / "silkgate.toml"
    config.write_text(
        f'[database]\ndsn = "{dsn}"\n[spool]\npath = "{tmp_path / "spool"}"\n'
        "[pipeline]\nbatch_age_ms = 20\n"
        f'[listeners.gbt32960]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        f'[republish]\nenabled = true\nport = {broker.port}\ntopic_prefix = "{prefix}"\n'
        f'client_id = "it-run-{_tag()}"\n'
    )
    started = datetime.now(UTC)  # the other tests' rows are older
    terminals = SimConfig(
        gbt_port=port, gbt=8, frames=5, interval_s=0.05, seed=40, gbt_versions=(2016, 2025)
    )
    async with Subscriber(broker.port, prefix) as sub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(config), "--workers", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,  # not the repo root: the source folder would shadow the install
            env={k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
            | {"PYTHONUNBUFFERED": "1"},
        )
        try:
            await eventually(lambda: _listening(port), 30)
            async with TerminalFleet(terminals) as fleet:
                stats = await fleet.run()
            assert stats.total.acked == 40, stats.summary()
            await sub.wait(lambda s: _kinds(s)["vehicle_realtime"] >= 40, 30)
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, out
        await asyncio.sleep(0.3)
    realtime = await pool.fetchval(
        "SELECT count(*) FROM vehicle_realtime WHERE received_at >= $1", started
    )
    kinds = _kinds(sub)
    assert kinds["vehicle_realtime"] == realtime == 40  # everything stored, published once
    assert kinds["position"] == 40 and kinds["session_event"] == 16, kinds  # logins, logouts
    assert await outbox_rows(pool) == 0
    # worker 0 alone publishes (worker 1 would need a cursor of its own: there is none)
    assert re.search(r"\[w0\] INFO silkgate.republish: republish local: connected to", out), out
    assert not re.search(r"\[w1\][^\n]*republish local", out), out
    final = re.findall(r"\[w0\] .*republish local: stopped ([\d,]+) pub, lag 0 rows", out)[-1]
    assert int(final.replace(",", "")) == len(sub.messages)  # the final status line
    assert await pool.fetchval("SELECT count(*) FROM forward_cursors") == 1


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


def _kinds(sub: Subscriber) -> collections.Counter[str]:
    return collections.Counter(t.split("/")[3] for t, _ in sub.messages)
