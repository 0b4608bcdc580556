"""The MQTT adapter (real pipeline, real TimescaleDB) against brokers other than the plain shared
one: the TLS + password broker of deploy/services.sh, and a private Mosquitto restarted
(SIGTERM) or killed (SIGKILL) while a publisher streams GB/T 32960 frames and swap-station JSON
at QoS 1.

Every test uses its own client id, topics, VINs and stations in a scratch schema of this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import trustme

from gateway.adapters.mqtt import MqttAdapter, frame_id
from gateway.config import parse
from gateway.mqtt_config import MqttConfig
from gateway.pipeline import Pipeline
from gateway.simulator import Fleet
from gateway.store.testing import migrated_schema
from gateway.tcp_simulator_frames import GbtFrames

from .conftest import MqttTlsBroker, Services
from .mqttkit import PrivateBroker, Publisher, client_tls_context, drop_session, store_pipeline

pytestmark = pytest.mark.asyncio

EPOCH = int(datetime(2026, 5, 1, tzinfo=UTC).timestamp())
#: Queues large enough that the broker itself never drops a message of these tests (Mosquitto's
#: default max_queued_messages is 1000 per client).
BROKER_LIMITS = "max_queued_messages 100000\nmax_inflight_messages 100\n"
#: How late the pipeline reports a batch durable in the restart tests (see _LateDurability).
ACK_DELAY_S = 0.3


def _tag() -> str:
    return uuid.uuid4().hex[:10]


# ---------------------------------------------------------------------------------------------
# messages, configuration, store


@dataclass(frozen=True)
class Stream:
    """What a test publishes: GB/T 32960 realtime frames and swap status messages, interleaved."""

    prefix: str
    messages: list[tuple[str, bytes]]
    vins: list[str]
    stations: list[str]
    n_gbt: int

    @property
    def index(self) -> dict[uuid.UUID, int]:
        """Archive frame id -> message index (ids are deterministic: topic and payload)."""
        return {frame_id(t, p): i for i, (t, p) in enumerate(self.messages)}

    def is_gbt(self, i: int) -> bool:
        return "/gbt/" in self.messages[i][0]


def stream(prefix: str, seed: int, *, vins: int, per_vin: int, stations: int) -> Stream:
    """``vins`` trucks with ``per_vin`` reports each (one per second of data time), and
    ``stations`` stations with a status message every fourth second."""
    fleet = Fleet(vins, seed=seed, gbt_only=True)
    frames = [GbtFrames(fleet, t, refresh_every=50, step_s=1.0) for t in fleet.trucks]
    station_ids = [f"ST{k}-{prefix.rsplit('/', 1)[-1]}" for k in range(stations)]
    messages: list[tuple[str, bytes]] = []
    n_gbt = 0
    for i in range(per_vin):
        for truck, f in zip(fleet.trucks, frames, strict=True):
            messages.append((f"{prefix}/gbt/{truck.vin}", f.realtime(EPOCH + i, 50)))
            n_gbt += 1
        if i % 4 == 0:
            for st in station_ids:
                messages.append((f"{prefix}/swap/{st}", swap_status(EPOCH + i)))
    return Stream(prefix, messages, [t.vin for t in fleet.trucks], station_ids, n_gbt)


def swap_status(epoch: int) -> bytes:
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"v": 1, "type": "station_status", "time": stamp, "state": "operating"}
    ).encode()


def mqtt_config(host: str, port: int, client_id: str, prefix: str, **extra: Any) -> MqttConfig:
    """``[mqtt]`` with a GB/T and a swap route under ``prefix`` (device from the topic)."""
    n = len(prefix.split("/")) + 1
    keys = {
        "enabled": True,
        "host": host,
        "port": port,
        "client_id": client_id,
        "session_expiry_s": 300,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        "batch": 50,
        "max_in_flight": 200,
    } | extra
    lines = ["[mqtt]"] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    for flt, codec in [(f"{prefix}/gbt/+", "gbt32960"), (f"{prefix}/swap/+", "swap")]:
        lines += ["[[mqtt.routes]]", f'filter = "{flt}"', f'codec = "{codec}"']
        lines += [f'device = "topic:{n}"']
    return parse(tomllib.loads("\n".join(lines) + "\n")).mqtt


@pytest.fixture(scope="module")
def dsn(services: Services) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_mqttb")


@pytest_asyncio.fixture
async def store(dsn: str, tmp_path: Path) -> AsyncIterator[tuple[Pipeline, asyncpg.Pool]]:
    async with store_pipeline(dsn, tmp_path / "spool") as pipeline_pool:
        yield pipeline_pool


@dataclass(frozen=True)
class Stored:
    """What the store holds of a stream."""

    rows: dict[int, int]  # message index -> raw_frames rows
    foreign: int  # raw_frames rows under the prefix that are none of the messages
    dead: int
    realtime: int
    realtime_keys: int
    station: int
    station_keys: int


async def stored(pool: asyncpg.Pool, s: Stream) -> Stored:
    index = s.index
    async with pool.acquire() as conn:
        raw = await conn.fetch(
            "SELECT frame_id, count(*) AS n FROM raw_frames WHERE peer LIKE $1 GROUP BY frame_id",
            f"mqtt:{s.prefix}/%",
        )
        dead = await conn.fetchval(
            "SELECT count(*) FROM dead_letters WHERE peer LIKE $1", f"mqtt:{s.prefix}/%"
        )
        rt = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT (vin, time)) AS k FROM vehicle_realtime"
            " WHERE vin = ANY($1::text[])",
            s.vins,
        )
        st = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT (station_id, time)) AS k FROM station_status"
            " WHERE station_id = ANY($1::text[])",
            s.stations,
        )
    assert rt is not None and st is not None
    rows = {index[r["frame_id"]]: r["n"] for r in raw if r["frame_id"] in index}
    return Stored(rows, len(raw) - len(rows), dead, rt["n"], rt["k"], st["n"], st["k"])


class _LateDurability:
    """The pipeline, with each batch's outcome reported ``delay`` s late (the adapter's Submitter
    interface): at every moment of the stream the adapter holds messages that are committed but
    not yet acknowledged, so a broker restart always meets some, as it would under load."""

    def __init__(self, pipeline: Pipeline, delay: float) -> None:
        self.pipeline = pipeline
        self.delay = delay

    async def submit(self, records: Any, *, write_now: bool = False) -> asyncio.Future[None]:
        inner = await self.pipeline.submit(records, write_now=write_now)
        loop = asyncio.get_running_loop()
        outer: asyncio.Future[None] = loop.create_future()

        def copy(f: asyncio.Future[None]) -> None:
            if outer.done():
                return
            if f.cancelled():
                outer.cancel()
            elif (exc := f.exception()) is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(None)

        inner.add_done_callback(lambda f: loop.call_later(self.delay, copy, f))
        return outer


async def until(cond: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            ok = cond()
            if not isinstance(ok, bool):
                ok = await ok
            if ok:
                return
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(adapter: MqttAdapter) -> AsyncIterator[MqttAdapter]:
    adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop(timeout=10)


async def settled(adapter: MqttAdapter, pool: asyncpg.Pool, s: Stream) -> Stored:
    """Once the adapter holds nothing and the store has stopped changing for 0.5 s."""
    last: Stored | None = None
    async with asyncio.timeout(30):
        while True:
            now = await stored(pool, s)
            it = adapter.intake.stats
            if now == last and it.in_flight == 0 and adapter.intake.queued() == 0:
                return now
            last = now
            await asyncio.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# TLS + password: the adapter over the TLS broker of deploy/services.sh


async def test_adapter_over_tls_with_password(
    services: Services,
    mqtt_tls: MqttTlsBroker,
    store: tuple[Pipeline, asyncpg.Pool],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """GB/T frames and swap JSON stored over TLS with a password. With a wrong password, and
    then with an untrusted CA, the adapter gets no connection, logs why, keeps retrying and
    stays up; once the password is right again (read at every connect) it catches up on what
    was published meanwhile, each message stored once."""
    pipeline, pool = store
    tag = _tag()
    client_id, prefix = f"it-mqbt-{tag}", f"it/mqbt/{tag}"
    s = stream(prefix, seed=911, vins=3, per_vin=20, stations=2)
    first, second = s.messages[: len(s.messages) // 2], s.messages[len(s.messages) // 2 :]
    env = "IT_MQTT_TLS_PASSWORD"
    monkeypatch.setenv(env, mqtt_tls.password)
    cfg = mqtt_config(
        mqtt_tls.host,
        mqtt_tls.port,
        client_id,
        prefix,
        tls=True,
        tls_ca=mqtt_tls.ca,
        username=mqtt_tls.username,
        password_env=env,
    )
    login: dict[str, Any] = {
        "username": mqtt_tls.username,
        "password": mqtt_tls.password,
        "tls_context": client_tls_context(mqtt_tls.ca),
    }
    caplog.set_level(logging.WARNING, logger="gateway.adapters.mqtt_client")
    try:
        async with running(MqttAdapter(cfg, pipeline, pool)) as adapter:
            await adapter.intake.wait_connected(10)
            await Publisher(mqtt_tls.port, first, host=mqtt_tls.host, **login).run()
            await until(lambda: adapter.intake.stats.acked == len(first))
        # Published while the gateway is away: kept in its session.
        await Publisher(mqtt_tls.port, second, host=mqtt_tls.host, **login).run()

        monkeypatch.setenv(env, "wrong-" + mqtt_tls.password)
        caplog.clear()
        async with running(MqttAdapter(cfg, pipeline, pool)) as adapter:
            await until(lambda: adapter.intake.stats.connect_failures >= 3)
            assert adapter.intake.stats.connects == 0
            assert adapter.status().startswith("mqtt DOWN")
            refusals = [r.getMessage() for r in caplog.records if client_id in r.getMessage()]
            assert refusals and all("not authori" in m.lower() for m in refusals), refusals
            # Still retrying; the right password gets it in without a restart.
            monkeypatch.setenv(env, mqtt_tls.password)
            await adapter.intake.wait_connected(10)
            assert adapter.intake.stats.session_present is True
            await until(lambda: adapter.intake.stats.acked == len(second))
            assert adapter.stats.messages == len(second)

        untrusted = tmp_path / "untrusted-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(untrusted))
        caplog.clear()
        bad_ca = mqtt_config(
            mqtt_tls.host,
            mqtt_tls.port,
            client_id,
            prefix,
            tls=True,
            tls_ca=str(untrusted),
            username=mqtt_tls.username,
            password_env=env,
        )
        async with running(MqttAdapter(bad_ca, pipeline, pool)) as adapter:
            await until(lambda: adapter.intake.stats.connect_failures >= 3)
            assert adapter.intake.stats.connects == 0
            assert adapter.status().startswith("mqtt DOWN")
            refusals = [r.getMessage() for r in caplog.records if client_id in r.getMessage()]
            assert refusals and all("certificate verify failed" in m for m in refusals), refusals

        got = await stored(pool, s)
        assert got.rows == {i: 1 for i in range(len(s.messages))}
        assert (got.foreign, got.dead) == (0, 0)
        assert got.realtime == got.realtime_keys == s.n_gbt
        assert got.station == got.station_keys == len(s.messages) - s.n_gbt
    finally:
        await drop_session(mqtt_tls.host, mqtt_tls.port, client_id, **login)


# ---------------------------------------------------------------------------------------------
# broker restarts mid-stream


def _phase_counts(acked_at: dict[int, float], cuts: Sequence[float]) -> list[int]:
    """Messages PUBACKed before the first cut, between cuts, after the last."""
    counts = [0] * (len(cuts) + 1)
    for t in acked_at.values():
        counts[sum(t > c for c in cuts)] += 1
    return counts


async def test_broker_restarts_mid_stream(
    store: tuple[Pipeline, asyncpg.Pool], tmp_path: Path
) -> None:
    """Mosquitto (persistence on) stopped with SIGTERM twice mid-stream, down 1 s each time.

    SIGTERM makes Mosquitto write its persistence file before it exits, so it restarts with the
    gateway's session exactly as it was: queued messages, and those sent to the gateway without
    its PUBACK yet, which come back with DUP. The publisher sends again what got no PUBACK. At
    the end every message is stored: exactly one archive row each, except that a message the
    publisher had to send twice may have reached the broker twice (its PUBACK lost with the
    connection): then as many rows as copies, at most its sends. The normalized rows are one
    per reading. Committed-but-unacknowledged messages met by the restarts (see
    _LateDurability) come back with DUP and are not stored again.
    """
    pipeline, pool = store
    tag = _tag()
    client_id, prefix = f"it-mqbr-{tag}", f"it/mqbr/{tag}"
    s = stream(prefix, seed=912, vins=8, per_vin=150, stations=4)
    n = len(s.messages)
    broker = PrivateBroker(tmp_path / "broker", extra_config=BROKER_LIMITS)
    await broker.start()
    cfg = mqtt_config("127.0.0.1", broker.port, client_id, prefix)
    try:
        adapter = MqttAdapter(cfg, _LateDurability(pipeline, ACK_DELAY_S), pool)
        async with running(adapter):
            await adapter.intake.wait_connected(10)
            pub = Publisher(broker.port, s.messages, window=20, pause_s=0.01)
            publishing = asyncio.create_task(pub.run(timeout=60))
            cuts: list[float] = []
            try:
                await until(lambda: pub.acked >= 0.3 * n)
                cuts.append(time.monotonic())
                await broker.restart(down_s=1.0)
                await until(lambda: pub.acked >= 0.6 * n)
                cuts.append(time.monotonic())
                await broker.restart(down_s=1.0)
                await publishing
            finally:
                publishing.cancel()
            got = await settled(adapter, pool, s)
        it, st = adapter.intake.stats, adapter.stats

        assert pub.acked == n
        assert min(_phase_counts(pub.acked_at, cuts)) >= 100, _phase_counts(pub.acked_at, cuts)
        assert pub.connects >= 3
        assert got.rows.keys() == set(range(n))  # nothing lost, nothing foreign
        assert got.foreign == 0 and got.dead == 0
        over = {i: (r, pub.sends[i]) for i, r in got.rows.items() if r > pub.sends[i]}
        assert over == {}, over  # a copy the broker never got from the publisher
        resent = [i for i in range(n) if pub.sends[i] > 1]
        assert all(got.rows[i] == 1 for i in range(n) if pub.sends[i] == 1)
        assert got.realtime == got.realtime_keys == s.n_gbt
        assert got.station == got.station_keys == n - s.n_gbt
        assert st.messages == sum(got.rows.values()) and st.failed_batches == 0
        # Not vacuous: the restarts met the gateway with messages in flight.
        assert it.reconnects >= 2 and it.session_present is True
        assert it.redelivered > 0 and st.duplicates > 0, (it, st)
        print(
            f"{n} messages, {len(resent)} sent again, {sum(got.rows.values()) - n} extra rows;"
            f" gateway: {it.redelivered} redelivered, {st.duplicates} not stored again"
        )

        # Everything was acknowledged: the session holds nothing more.
        async with running(MqttAdapter(cfg, pipeline, pool)) as again:
            await again.intake.wait_connected(10)
            await asyncio.sleep(0.5)
            assert again.intake.stats.received == 0
    finally:
        await broker.stop()


async def test_broker_killed_mid_stream(
    store: tuple[Pipeline, asyncpg.Pool], tmp_path: Path
) -> None:
    """Mosquitto (persistence on, autosave every second) killed with SIGKILL mid-stream.

    What Mosquitto guarantees there: it sends a PUBACK as soon as it has the message in memory
    and writes its state to disk only at autosave (2.0: once more than ``autosave_interval``
    whole seconds have passed since the last save, so every 2 s here), on SIGUSR1 and at a
    clean shutdown. A SIGKILL therefore loses (a) the messages it received and PUBACKed after
    its last save, unless it had already handed them to the gateway, and it restarts from that
    save, so (b) what it delivered after the save comes again: as DUP when it was in flight at
    the save, and without DUP when it was still queued at the save (indistinguishable from a
    new publish, so for a while after every reconnect the adapter checks every delivery, not
    only DUP ones, against the store): both are found stored and skipped. The publisher's
    resending of what got no PUBACK covers only messages the broker never acknowledged; (a)
    needs the publisher to keep unconfirmed-by-save messages, which MQTT cannot tell it.

    Until the kill the gateway is slower than the publisher (at most 20 messages in flight, each
    batch acknowledged 0.3 s after its commit), so the broker holds a backlog when it is killed
    and both (a) and (b) can happen. The kill comes 0.3 s after a save the test saw land (the
    persistence file's mtime), so the test knows the state the broker restarts from. Then:
    every message PUBACKed more than 0.5 s before that save is stored; every message PUBACKed
    by the restarted broker is stored; a message is missing only if it was PUBACKed in the
    window between the save and the kill; no message has more archive rows than the publisher
    sent it; the normalized tables hold each reading once.
    """
    pipeline, pool = store
    tag = _tag()
    client_id, prefix = f"it-mqbk-{tag}", f"it/mqbk/{tag}"
    s = stream(prefix, seed=913, vins=8, per_vin=120, stations=4)
    n = len(s.messages)
    broker = PrivateBroker(tmp_path / "broker", extra_config=BROKER_LIMITS)
    await broker.start()
    cfg = mqtt_config("127.0.0.1", broker.port, client_id, prefix, max_in_flight=20)
    try:
        late = _LateDurability(pipeline, ACK_DELAY_S)
        adapter = MqttAdapter(cfg, late, pool)
        async with running(adapter):
            await adapter.intake.wait_connected(10)
            await broker.save()  # the gateway's session is on disk, as in any long-lived setup
            pub = Publisher(broker.port, s.messages, window=10, pause_s=0.03)
            publishing = asyncio.create_task(pub.run(timeout=60))
            try:
                await until(lambda: pub.acked >= 200)
                mtime = broker.db.stat().st_mtime_ns
                await until(lambda: broker.db.stat().st_mtime_ns != mtime, timeout=5)
                saved = time.monotonic()
                await asyncio.sleep(0.3)
                backlog = pub.acked - adapter.intake.stats.received
                await broker.kill()
                late.delay = 0.0  # catching up quickly from here keeps the test short
                await asyncio.sleep(1.0)
                # Up to here a PUBACK or a delivery of the killed broker may still have been
                # read (from the socket buffers), so this, not the kill, ends the window.
                restarted = time.monotonic()
                await broker.start()
                await publishing
            finally:
                publishing.cancel()
            got = await settled(adapter, pool, s)
        it, st = adapter.intake.stats, adapter.stats

        assert pub.acked == n
        before = [i for i, t in pub.acked_at.items() if t < saved - 0.5]
        window = {i for i, t in pub.acked_at.items() if saved - 0.5 <= t < restarted}
        after = [i for i, t in pub.acked_at.items() if t >= restarted]
        assert len(before) >= 100 and len(after) >= 100, (len(before), len(after))
        assert len(window) > 0 and backlog >= 50, (len(window), backlog)
        assert pub.connects >= 2
        missing = {i for i in range(n) if got.rows.get(i, 0) == 0}
        assert missing <= window, sorted(missing - window)
        replayed = {i for i, r in got.rows.items() if r > pub.sends[i]}
        assert replayed == set(), sorted(replayed)
        assert got.foreign == 0 and got.dead == 0
        gbt_stored = sum(1 for i in got.rows if s.is_gbt(i))
        assert got.realtime == got.realtime_keys == gbt_stored
        assert got.station == got.station_keys == len(got.rows) - gbt_stored
        assert st.failed_batches == 0
        # Not vacuous: the restarted broker had the gateway's session, with messages in flight.
        assert it.reconnects >= 1 and it.session_present is True
        assert it.redelivered > 0 and st.duplicates > 0, (it, st)
        print(
            f"{n} messages; {len(window)} PUBACKed between the save and the kill, of which "
            f"{len(missing)} lost; backlog {backlog} at the kill; {len(replayed)} replayed "
            "without DUP; gateway: "
            f"{it.redelivered} redelivered, {st.duplicates} not stored again"
        )
    finally:
        await broker.stop()
