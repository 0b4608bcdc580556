"""The TCP listeners against real sockets, the real pipeline and TimescaleDB: GB/T 32960 and
JT/T 808 sessions end to end, acks only after commit, bad input, cut and slow connections,
duplicate logins, connection limits, TLS, the command hook, and 1,000 concurrent terminals."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio

from gateway.adapters.jt808_session import Jt808Session
from gateway.adapters.tcp import Connection, ConnectionIndex, Listener
from gateway.codecs import gbt32960 as gbt
from gateway.codecs import jt808 as jt
from gateway.codecs.gbt32960 import constants as gc
from gateway.codecs.jt808 import constants as jc
from gateway.config import Gbt32960ListenerConfig, Jt808ListenerConfig, PipelineConfig
from gateway.ingest import GBT32960, JT808
from gateway.pipeline import Pipeline
from gateway.registry import Registry, hash_auth_code
from gateway.simulator import Fleet, Truck, gbt_time
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema

TABLES = (
    "vehicle_realtime",
    "positions",
    "alarms",
    "vehicle_sessions",
    "raw_frames",
    "dead_letters",
)
TIMEOUT = 10.0
START = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_tcp")


class Rig:
    """A pipeline over the store, a registry, and listeners started on free ports."""

    def __init__(self, pipeline: Pipeline, registry: Registry, db: asyncpg.Connection) -> None:
        self.pipeline = pipeline
        self.registry = registry
        self.db = db
        self.index = ConnectionIndex()
        self.listeners: list[Listener] = []

    async def listen(self, protocol: str, pipeline: Any = None, **kw: Any) -> Listener:
        cfg: Any
        if protocol == GBT32960:
            cfg = Gbt32960ListenerConfig(enabled=True, host="127.0.0.1", port=0, **kw)
        else:
            cfg = Jt808ListenerConfig(enabled=True, host="127.0.0.1", port=0, **kw)
        listener = Listener(
            protocol, cfg, pipeline or self.pipeline, self.registry, index=self.index
        )
        await listener.start()
        self.listeners.append(listener)
        return listener

    async def count(self, table: str, where: str = "TRUE", *args: Any) -> int:
        n: int = await self.db.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
        return n


@pytest_asyncio.fixture
async def rig(schema_dsn: str, tmp_path: Path) -> AsyncIterator[Rig]:
    db = await asyncpg.connect(schema_dsn)
    await db.execute(f"TRUNCATE {', '.join(TABLES)}, terminals, operators CASCADE")
    await db.execute("INSERT INTO operators (operator_id, name) VALUES ('op1', 'Operator 1')")
    pool = await create_pool(schema_dsn, max_size=4, timeout=10)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="never"))
    cfg = PipelineConfig(batch_rows=2000, batch_age_ms=50, retry_interval_s=0.5)
    pipeline = Pipeline(StoreWriter(pool), spool, cfg)
    pipeline.start()
    r = Rig(pipeline, Registry(pool, ttl_s=5), db)
    try:
        yield r
    finally:
        for listener in r.listeners:
            await listener.stop(timeout=5)
        await pipeline.close(timeout=10)
        await spool.close()
        await pool.close()
        await db.close()


# ------------------------------------------------------------------------------ clients


class Client:
    """A terminal's socket: send frames, read the platform's frames with the codecs' reader."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, codec: Any):
        self.reader, self.writer, self.codec = reader, writer, codec
        self.frames = codec.FrameReader()
        self.peer = "{}:{}".format(*writer.get_extra_info("sockname")[:2])

    @classmethod
    async def connect(cls, listener: Listener, codec: Any, **kw: Any) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port, **kw)
        return cls(reader, writer, codec)

    async def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))
        await self.writer.drain()

    async def recv(self, timeout: float = TIMEOUT) -> Any:
        """The next frame from the platform, decoded; EOFError when the platform closed."""
        async with asyncio.timeout(timeout):
            while True:
                item = self.frames.next_event()
                if isinstance(item, bytes):
                    return self.codec.decode_frame(item)
                assert item is None, item
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.frames.feed(data)

    async def closed_by_server(self, timeout: float = TIMEOUT) -> bool:
        """True when the server closes the connection within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
        except (TimeoutError, ConnectionError):
            return False
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def gbt_frame(truck: Truck, command: int, body: gbt.Body) -> bytes:
    frame = gbt.Frame(
        version=truck.version,
        command=command,
        response=0xFE,
        vin=truck.vin,
        encryption=1,
        body=body,
    )
    return gbt.encode_frame(frame)


def login(fleet: Fleet, truck: Truck) -> bytes:
    """A GB/T 32960 vehicle login (the next login serial) or a JT/T 808 registration."""
    return fleet.login(truck)


def jt_frame(t: Truck, msg_id: int, body: jt.Body, **kw: Any) -> jt.Frame:
    v19 = t.version == 2019
    return jt.Frame(
        version=t.version,
        msg_id=msg_id,
        phone=t.phone.rjust(20, "0") if v19 else t.phone,
        serial=t.next_jt_serial(),
        body=body,
        protocol_version=1 if v19 else None,
        **kw,
    )


def jt_phone(t: Truck) -> str:
    return t.phone.rjust(20, "0") if t.version == 2019 else t.phone


async def jt_login(client: Client, fleet: Fleet, t: Truck) -> str:
    """Register and authenticate; returns the auth code."""
    await client.send(login(fleet, t))
    answer = await client.recv()
    assert answer.msg_id == jc.REGISTER_RESPONSE and answer.body.result == 0, answer
    code: str = answer.body.auth_code
    auth = jt.Authenticate(auth_code=code)
    if t.version == 2019:
        auth = jt.Authenticate(auth_code=code, imei="860000000000001", software_version="1.0")
    frame = jt_frame(t, jc.AUTHENTICATE, auth)
    await client.send(jt.encode_frame(frame))
    ok = await client.recv()
    assert ok.body == jt.PlatformGeneralResponse(
        reply_serial=frame.serial, reply_msg_id=jc.AUTHENTICATE, result=0
    )
    return code


async def add_vehicles(db: asyncpg.Connection, vins: list[str]) -> None:
    await db.executemany(
        "INSERT INTO vehicles (vin, operator_id) VALUES ($1, 'op1')", [(v,) for v in vins]
    )


# ------------------------------------------------------------------------------ GB/T 32960


@pytest.mark.asyncio
async def test_gbt32960_session_end_to_end_acks_after_commit(rig: Rig) -> None:
    fleet = Fleet(2, seed=41, gbt_only=True, start=START)
    await add_vehicles(rig.db, [t.vin for t in fleet.trucks])
    listener = await rig.listen(GBT32960)
    for truck in fleet.trucks:  # 2016 and 2025
        client = await Client.connect(listener, gbt)
        await client.send(login(fleet, truck))
        ack = await client.recv()
        assert (ack.command, ack.response, ack.vin, ack.version) == (1, 1, truck.vin, truck.version)
        for i in range(4):
            fleet.advance(10)
            raw = fleet.report(truck, reissue=i == 3)
            await client.send(raw)
            ack = await client.recv()
            assert ack.command == (3 if i == 3 else 2) and ack.response == gc.RESP_SUCCESS
            # the ack came after the commit: the row is visible now
            when = fleet.now
            assert await rig.count("vehicle_realtime", "vin = $1 AND time = $2", truck.vin, when)
        for command in (gc.CMD_HEARTBEAT, gc.CMD_TIME_SYNC):
            await client.send(gbt_frame(truck, command, gbt.Empty()))
            ack = await client.recv()
            assert ack.command == command and ack.response == gc.RESP_SUCCESS
        logout = gbt.VehicleLogout(time=gbt_time(fleet.now), serial=truck.login_serial)
        await client.send(gbt_frame(truck, gc.CMD_VEHICLE_LOGOUT, logout))
        assert (await client.recv()).command == gc.CMD_VEHICLE_LOGOUT
        # after the logout's ack its session event is durable too
        assert await rig.count("vehicle_sessions", "device_id = $1 AND event = 'logout'", truck.vin)
        await client.close()
        assert await rig.count("vehicle_realtime", "vin = $1", truck.vin) == 4
        assert await rig.count("vehicle_realtime", "vin = $1 AND reissue", truck.vin) == 1
        assert await rig.count("raw_frames", "device_id = $1", truck.vin) == 8
    events = await rig.db.fetch("SELECT event, detail FROM vehicle_sessions ORDER BY time, event")
    assert sorted(e["event"] for e in events) == ["login", "login", "logout", "logout"]
    assert listener.stats.acks_sent == 16 and listener.stats.bad_frames == 0


@pytest.mark.asyncio
async def test_gbt32960_frames_in_flight_are_acked_in_order(rig: Rig) -> None:
    fleet = Fleet(1, seed=42, gbt_only=True, start=START)
    (truck,) = fleet.trucks
    listener = await rig.listen(GBT32960, max_unacked_frames=3)
    client = await Client.connect(listener, gbt)
    frames = [login(fleet, truck)]
    for _ in range(20):
        fleet.advance(1)
        frames.append(fleet.report(truck))
    await client.send(*frames)  # all at once: more than max_unacked_frames in flight
    acks = [await client.recv() for _ in frames]
    sent_times = [f[24:30] for f in frames]
    assert [a.body.time.raw for a in acks] == sent_times  # one ack per frame, in order
    assert await rig.count("vehicle_realtime") == 20
    await client.close()


@pytest.mark.asyncio
async def test_gbt32960_unknown_vin_flagged_or_rejected(rig: Rig) -> None:
    fleet = Fleet(2, seed=43, gbt_only=True, start=START)
    accept = await rig.listen(GBT32960)
    reject = await rig.listen(GBT32960, unknown_devices="reject")
    a = await Client.connect(accept, gbt)
    await a.send(login(fleet, fleet.trucks[0]))
    assert (await a.recv()).response == gc.RESP_SUCCESS
    r = await Client.connect(reject, gbt)
    await r.send(login(fleet, fleet.trucks[1]))
    assert (await r.recv()).response == gc.RESP_VIN_UNKNOWN
    fleet.advance(10)
    await r.send(fleet.report(fleet.trucks[1]))  # not logged in: refused, archived raw only
    assert (await r.recv()).response == gc.RESP_ERROR
    rows = await rig.db.fetch("SELECT device_id, event, detail FROM vehicle_sessions")
    by_vin = {row["device_id"]: row for row in rows}
    assert by_vin[fleet.trucks[0].vin]["event"] == "login"
    assert '"registered": false' in by_vin[fleet.trucks[0].vin]["detail"]
    assert by_vin[fleet.trucks[1].vin]["event"] == "login_rejected"
    assert await rig.count("vehicle_realtime") == 0
    assert await rig.count("raw_frames", "device_id = $1", fleet.trucks[1].vin) == 2
    await a.close()
    await r.close()


@pytest.mark.asyncio
async def test_gbt32960_platform_login_relays_many_vins(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = await rig.listen(GBT32960)
    listener.platforms = {"regulator": "s3cret"}
    fleet = Fleet(3, seed=44, gbt_only=True, start=START)
    client = await Client.connect(listener, gbt)

    def platform_login(password: str) -> bytes:
        body = gbt.PlatformLogin(
            time=gbt_time(fleet.now),
            serial=1,
            username="regulator",
            password=password,
            encryption_rule=1,
        )
        return gbt_frame(fleet.trucks[0], gc.CMD_PLATFORM_LOGIN, body)

    await client.send(platform_login("wrong"))
    assert (await client.recv()).response == gc.RESP_ERROR
    await client.send(platform_login("s3cret"))
    assert (await client.recv()).response == gc.RESP_SUCCESS
    assert rig.index.get(GBT32960, "platform:regulator") is not None
    fleet.advance(10)
    await client.send(*fleet.reports())
    acks = [await client.recv() for _ in fleet.trucks]
    assert {a.vin for a in acks} == {t.vin for t in fleet.trucks}
    assert await rig.count("vehicle_realtime") == 3
    events = {r["event"] for r in await rig.db.fetch("SELECT event FROM vehicle_sessions")}
    assert events == {"platform_login", "platform_login_rejected"}
    await client.close()


@pytest.mark.asyncio
async def test_gbt32960_second_login_displaces_the_first(rig: Rig) -> None:
    fleet = Fleet(1, seed=45, gbt_only=True, start=START)
    (truck,) = fleet.trucks
    listener = await rig.listen(GBT32960)
    old = await Client.connect(listener, gbt)
    await old.send(login(fleet, truck))
    await old.recv()
    old_conn = rig.index.get(GBT32960, truck.vin)
    assert old_conn is not None and old_conn.peer == old.peer
    new = await Client.connect(listener, gbt)
    await new.send(login(fleet, truck))
    assert (await new.recv()).response == gc.RESP_SUCCESS
    assert await old.closed_by_server()
    conn = rig.index.get(GBT32960, truck.vin)
    assert conn is not None and conn.peer == new.peer
    fleet.advance(10)
    await new.send(fleet.report(truck))
    assert (await new.recv()).response == gc.RESP_SUCCESS
    row = await rig.db.fetchrow("SELECT detail FROM vehicle_sessions WHERE event = 'disconnect'")
    assert row is not None
    detail = msgspec.json.decode(row["detail"])
    assert detail == {"reason": "displaced", "peer": old.peer, "by": new.peer}
    assert listener.stats.closed == {"displaced": 1}
    await new.close()


@pytest.mark.asyncio
async def test_garbage_and_bad_checksums_are_dead_letters_up_to_the_limit(rig: Rig) -> None:
    fleet = Fleet(1, seed=46, gbt_only=True, start=START)
    (truck,) = fleet.trucks
    listener = await rig.listen(GBT32960, max_bad_frames=3)
    client = await Client.connect(listener, gbt)
    good = login(fleet, truck)
    bad_bcc = good[:-1] + bytes([good[-1] ^ 0xFF])
    await client.send(b"hello, gateway!", bad_bcc, good)  # two bad frames, then a good one
    assert (await client.recv()).response == gc.RESP_SUCCESS  # the connection survived
    letters = await rig.db.fetch("SELECT peer, reason, raw FROM dead_letters ORDER BY reason")
    assert [(r["peer"], r["reason"]) for r in letters] == [
        (client.peer, "bad_checksum"),
        (client.peer, "garbage"),
    ]
    assert letters[0]["raw"] == bad_bcc and letters[1]["raw"] == b"hello, gateway!"
    fleet.advance(1)
    await client.send(b"more garbage")  # the third: still survived
    await client.send(fleet.report(truck))
    assert (await client.recv()).response == gc.RESP_SUCCESS
    fleet.advance(1)
    # the fourth (garbage ends where the next frame starts): closed, that frame not taken
    await client.send(b"and the fourth", fleet.report(truck))
    assert await client.closed_by_server()
    await wait_until_count(rig, "dead_letters", 4)
    assert await rig.count("dead_letters", "peer = $1", client.peer) == 4
    assert listener.stats.closed == {"bad_frames": 1} and listener.stats.bad_frames == 4


@pytest.mark.asyncio
async def test_undecodable_jt808_frame_is_answered_and_kept(rig: Rig) -> None:
    fleet = Fleet(3, seed=47, start=START)
    truck = fleet.trucks[2]  # 2013
    listener = await rig.listen(JT808)
    client = await Client.connect(listener, jt)
    await jt_login(client, fleet, truck)
    bad = jt_frame(truck, jc.LOCATION, jt.RawBody(data=b"\x00" * 5))  # too short for 0x0200
    await client.send(jt.encode_frame(bad))
    answer = await client.recv()
    assert answer.body == jt.PlatformGeneralResponse(
        reply_serial=bad.serial, reply_msg_id=jc.LOCATION, result=jc.RESULT_BAD_MESSAGE
    )
    row = await rig.db.fetchrow("SELECT peer, reason FROM dead_letters")
    assert row is not None and row["peer"] == client.peer
    await client.close()


@pytest.mark.asyncio
async def test_connection_dropped_mid_frame(rig: Rig) -> None:
    fleet = Fleet(1, seed=48, gbt_only=True, start=START)
    (truck,) = fleet.trucks
    listener = await rig.listen(GBT32960)
    client = await Client.connect(listener, gbt)
    await client.send(login(fleet, truck))
    await client.recv()
    fleet.advance(10)
    report = fleet.report(truck)
    await client.send(report[:100])
    await client.close()
    await wait_for(lambda: listener.stats.connections_open == 0)
    await wait_until_count(rig, "dead_letters", 1)
    row = await rig.db.fetchrow("SELECT reason, raw, message FROM dead_letters")
    assert row is not None and row["reason"] == "truncated" and row["raw"] == report[:100]
    assert "connection closed" in row["message"]
    disconnect = await rig.db.fetchrow(
        "SELECT detail FROM vehicle_sessions WHERE event = 'disconnect'"
    )
    assert disconnect is not None and "peer_closed" in disconnect["detail"]


@pytest.mark.asyncio
async def test_slow_sender_login_and_idle_timeouts(rig: Rig) -> None:
    fleet = Fleet(1, seed=49, gbt_only=True, start=START)
    (truck,) = fleet.trucks
    listener = await rig.listen(
        GBT32960,
        frame_timeout_s=0.4,
        login_timeout_s=0.6,
        idle_timeout_s=2,
        heartbeat_timeout_s=0.8,
    )
    loop = asyncio.get_running_loop()
    # a slow sender: part of a frame, then nothing
    slow = await Client.connect(listener, gbt)
    started = loop.time()
    await slow.send(login(fleet, truck)[:20])
    assert await slow.closed_by_server()
    assert 0.35 < loop.time() - started < 5  # which timeout fired: see stats.closed below
    # a silent connection: the login timeout
    silent = await Client.connect(listener, gbt)
    started = loop.time()
    assert await silent.closed_by_server()
    assert 0.55 < loop.time() - started < 5
    # logged in, then silent: the heartbeat timeout
    quiet = await Client.connect(listener, gbt)
    await quiet.send(login(fleet, truck))
    await quiet.recv()
    assert await quiet.closed_by_server()
    await wait_for(lambda: listener.stats.connections_open == 0)
    assert listener.stats.closed == {
        "slow_sender": 1,
        "login_timeout": 1,
        "heartbeat_timeout": 1,
    }
    await wait_until_count(rig, "dead_letters", 1)
    row = await rig.db.fetchrow("SELECT reason, message FROM dead_letters")
    assert row is not None and row["reason"] == "truncated" and "slow_sender" in row["message"]


@pytest.mark.asyncio
async def test_slow_sender_making_progress_is_not_cut(rig: Rig) -> None:
    """A frame trickling in within frame_timeout_s is fine; the timeout is per frame."""
    fleet = Fleet(1, seed=50, gbt_only=True, start=START)
    (truck,) = fleet.trucks
    listener = await rig.listen(GBT32960, frame_timeout_s=1.0)
    client = await Client.connect(listener, gbt)
    frames = [login(fleet, truck), fleet.report(truck)]
    for frame in frames:
        for i in range(0, len(frame), len(frame) // 4 + 1):  # each frame in 4 pieces, 0.15 s apart
            await client.send(frame[i : i + len(frame) // 4 + 1])
            await asyncio.sleep(0.15)
        assert (await client.recv()).response == gc.RESP_SUCCESS
    await client.close()


@pytest.mark.asyncio
async def test_jt808_idle_between_frames_is_not_a_slow_sender(rig: Rig) -> None:
    """The JT/T 808 reader keeps the last closing flag (it may open the next frame): an idle
    terminal is not in the middle of a frame."""
    fleet = Fleet(3, seed=58, start=START)
    truck = fleet.trucks[2]
    listener = await rig.listen(JT808, frame_timeout_s=0.3)
    client = await Client.connect(listener, jt)
    await jt_login(client, fleet, truck)
    assert not await client.closed_by_server(0.8)
    fleet.advance(10)
    await client.send(jt.encode_frame(fleet.jt_location(truck)))
    assert (await client.recv()).body.result == 0
    await client.close()
    await wait_for(lambda: listener.stats.connections_open == 0)
    assert listener.stats.closed == {"peer_closed": 1} and listener.stats.bad_frames == 0


@pytest.mark.asyncio
async def test_connection_limits_per_ip_and_total(rig: Rig) -> None:
    listener = await rig.listen(GBT32960, max_connections_per_ip=2, max_connections=3)
    same_ip = [await Client.connect(listener, gbt) for _ in range(3)]
    assert await same_ip[2].closed_by_server(2)  # the third from 127.0.0.1
    other_ip = [await Client.connect(listener, gbt, local_addr=("127.0.0.2", 0)) for _ in range(2)]
    assert other_ip[0].peer.startswith("127.0.0.2:")
    assert await other_ip[1].closed_by_server(2)  # the fourth in total
    assert listener.stats.refused == {"max_connections_per_ip": 1, "max_connections": 1}
    assert not await same_ip[0].closed_by_server(0.2)  # the others are served
    assert listener.limiter.open == 3
    for c in same_ip + other_ip:
        await c.close()
    await wait_for(lambda: listener.limiter.open == 0)


@pytest.mark.asyncio
async def test_failed_completion_sends_no_ack_and_closes(rig: Rig) -> None:
    class Failing:
        """The real pipeline, except that completions fail (as when it is stopped unsure)."""

        async def submit(self, records: Any) -> asyncio.Future[None]:
            await rig.pipeline.submit(records)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            fut.set_exception(RuntimeError("not durable"))
            return fut

    fleet = Fleet(1, seed=51, gbt_only=True, start=START)
    listener = await rig.listen(GBT32960, pipeline=Failing())
    client = await Client.connect(listener, gbt)
    await client.send(login(fleet, fleet.trucks[0]))
    with pytest.raises(EOFError):
        await client.recv()
    assert listener.stats.not_durable == 1 and listener.stats.acks_sent == 0


# ------------------------------------------------------------------------------ JT/T 808


@pytest.mark.asyncio
async def test_jt808_session_end_to_end_acks_after_commit(rig: Rig) -> None:
    fleet = Fleet(4, seed=52, start=START)
    listener = await rig.listen(JT808)
    for truck in fleet.trucks[2:]:  # 2013 and 2019
        client = await Client.connect(listener, jt)
        code = await jt_login(client, fleet, truck)
        phone = jt_phone(truck)
        row = await rig.db.fetchrow("SELECT * FROM terminals WHERE phone = $1", phone)
        assert row is not None and row["auth_code_hash"] == hash_auth_code(code)
        assert row["last_auth_at"] is not None and row["vin"] is None  # no such vehicle
        for _ in range(3):
            fleet.advance(10)
            frame = fleet.jt_location(truck)
            await client.send(jt.encode_frame(frame))
            ack = await client.recv()
            assert ack.version == truck.version and ack.phone == phone
            assert ack.body == jt.PlatformGeneralResponse(
                reply_serial=frame.serial, reply_msg_id=jc.LOCATION, result=0
            )
            assert await rig.count("positions", "device_id = $1 AND time = $2", phone, fleet.now)
        # a blind-area batch, subpackaged
        items: list[jt.Location] = []
        for _ in range(40):
            fleet.advance(1)
            body = fleet.jt_location(truck).body
            assert isinstance(body, jt.Location)
            items.append(body)
        batch = jt_frame(
            truck, jc.BATCH_LOCATION, jt.BatchLocation(batch_type=1, items=tuple(items))
        )
        packets = jt.split_frame(batch, 400)
        truck.jt_serial += len(packets)
        assert len(packets) > 2
        await client.send(*(jt.encode_frame(p) for p in packets))
        acks = [await client.recv() for _ in packets]
        assert [a.body.reply_serial for a in acks] == [p.serial for p in packets]
        assert await rig.count("positions", "device_id = $1 AND reissue", phone) == 40
        for msg_id, body in ((jc.HEARTBEAT, jt.Heartbeat()), (jc.LOGOUT, jt.Logout())):
            frame = jt_frame(truck, msg_id, body)
            await client.send(jt.encode_frame(frame))
            assert (await client.recv()).body.result == 0
        await client.close()
        assert await rig.count("positions", "device_id = $1", phone) == 43
    events = [r["event"] for r in await rig.db.fetch("SELECT event FROM vehicle_sessions")]
    assert sorted(events) == ["auth", "auth", "logout", "logout", "register", "register"]


@pytest.mark.asyncio
async def test_jt808_messages_before_auth_and_wrong_codes_are_refused(rig: Rig) -> None:
    fleet = Fleet(3, seed=53, start=START)
    truck = fleet.trucks[2]
    listener = await rig.listen(JT808)
    client = await Client.connect(listener, jt)
    fleet.advance(5)
    early = fleet.jt_location(truck)
    await client.send(jt.encode_frame(early))
    assert (await client.recv()).body.result == jc.RESULT_FAIL
    code = await jt_login(client, fleet, truck)
    await client.close()
    # a new connection: the stored code works, a wrong one does not
    again = await Client.connect(listener, jt)
    wrong = jt_frame(truck, jc.AUTHENTICATE, jt.Authenticate(auth_code=code + "X"))
    await again.send(jt.encode_frame(wrong))
    assert (await again.recv()).body.result == jc.RESULT_FAIL
    right = jt_frame(truck, jc.AUTHENTICATE, jt.Authenticate(auth_code=code))
    await again.send(jt.encode_frame(right))
    assert (await again.recv()).body.result == jc.RESULT_OK
    await again.send(jt.encode_frame(early))  # now it is taken
    assert (await again.recv()).body.result == jc.RESULT_OK
    assert await rig.count("positions") == 1
    assert await rig.count("raw_frames", "device_id = $1", truck.phone) == 6
    assert await rig.count("vehicle_sessions", "event = 'auth_failed'") == 1
    await again.close()


@pytest.mark.asyncio
async def test_command_hook_sends_and_receives_replies(rig: Rig) -> None:
    fleet = Fleet(3, seed=54, start=START)
    truck = fleet.trucks[2]
    replies: list[tuple[Connection, Any]] = []
    listener = await rig.listen(JT808)
    listener.on_message = lambda conn, msg: replies.append((conn, msg))
    client = await Client.connect(listener, jt)
    await jt_login(client, fleet, truck)
    conn = rig.index.get(JT808, truck.phone)
    assert conn is not None and isinstance(conn.session, Jt808Session)
    command = conn.session.command(0x8F01, jt.RawBody(data=b"\x01hello"))  # a vendor command
    assert conn.send(command)
    received = await client.recv()
    assert received.msg_id == 0x8F01 and received.body == jt.RawBody(data=b"\x01hello")
    reply = jt_frame(
        truck,
        jc.TERMINAL_GENERAL_RESPONSE,
        jt.TerminalGeneralResponse(reply_serial=received.serial, reply_msg_id=0x8F01, result=0),
    )
    await client.send(jt.encode_frame(reply))
    await wait_for(lambda: bool(replies))
    assert replies[0][0] is conn and replies[0][1].body.reply_serial == received.serial
    await client.close()


# ------------------------------------------------------------------------------ TLS


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.asyncio
async def test_tls_listener(rig: Rig, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    listener = await rig.listen(GBT32960, tls_cert=str(cert), tls_key=str(key))
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    fleet = Fleet(1, seed=55, gbt_only=True, start=START)
    client = await Client.connect(listener, gbt, ssl=ctx)
    await client.send(login(fleet, fleet.trucks[0]))
    assert (await client.recv()).response == gc.RESP_SUCCESS
    fleet.advance(1)
    await client.send(fleet.report(fleet.trucks[0]))
    assert (await client.recv()).response == gc.RESP_SUCCESS
    await client.close()
    assert await rig.count("vehicle_realtime") == 1


# ------------------------------------------------------------------------------ stop


@pytest.mark.asyncio
async def test_stop_sends_the_acks_in_flight(rig: Rig) -> None:
    fleet = Fleet(1, seed=56, gbt_only=True, start=START)
    (truck,) = fleet.trucks
    listener = await rig.listen(GBT32960)
    client = await Client.connect(listener, gbt)
    frames = [login(fleet, truck)]
    for _ in range(5):
        fleet.advance(1)
        frames.append(fleet.report(truck))
    await client.send(*frames)
    await wait_for(lambda: listener.stats.frames == 6)
    await listener.stop()
    acks = [await client.recv() for _ in frames]
    assert all(a.response == gc.RESP_SUCCESS for a in acks)
    assert await client.closed_by_server()
    assert await rig.count("vehicle_realtime") == 5


# ------------------------------------------------------------------------------ many


@pytest.mark.asyncio
async def test_1000_concurrent_connections(rig: Rig) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fleet = Fleet(1000, seed=57, start=START)  # 250 each of GB/T 2016, 2025, JT/T 2013, 2019
    gbt_l = await rig.listen(GBT32960)
    jt_l = await rig.listen(JT808)
    rounds = 3
    # every truck's frames prepared up front (the fleet is shared state)
    plans: list[tuple[Truck, list[bytes]]] = []
    jt_frames: dict[str, list[bytes]] = {}
    for t in fleet.trucks:
        if t.is_gbt:
            plans.append((t, [login(fleet, t)]))
    for _ in range(rounds):
        fleet.advance(10)
        for t, frames in plans:
            frames.append(fleet.report(t))
        for t in fleet.trucks:
            if not t.is_gbt:
                jt_frames.setdefault(t.phone, []).append(jt.encode_frame(fleet.jt_location(t)))
    gate = asyncio.Event()
    acked = 0

    async def gbt_terminal(frames: list[bytes]) -> None:
        nonlocal acked
        client = await Client.connect(gbt_l, gbt)
        await gate.wait()
        await client.send(*frames)
        for _ in frames:
            assert (await client.recv(30)).response == gc.RESP_SUCCESS
            acked += 1
        await client.close()

    async def jt_terminal(t: Truck) -> None:
        nonlocal acked
        client = await Client.connect(jt_l, jt)
        await gate.wait()
        await jt_login(client, fleet, t)
        await client.send(*jt_frames[t.phone])
        for _ in jt_frames[t.phone]:
            assert (await client.recv(30)).body.result == 0
            acked += 1
        await client.close()

    tasks = [asyncio.create_task(gbt_terminal(frames)) for _, frames in plans]
    tasks += [asyncio.create_task(jt_terminal(t)) for t in fleet.trucks if not t.is_gbt]
    await wait_for(lambda: gbt_l.stats.connections_open + jt_l.stats.connections_open == 1000, 30)
    assert gbt_l.stats.connections_open == jt_l.stats.connections_open == 500
    gate.set()
    async with asyncio.timeout(45):
        await asyncio.gather(*tasks)
    assert acked == 500 * (1 + rounds) + 500 * rounds
    assert await rig.count("vehicle_realtime") == 500 * rounds
    assert await rig.count("positions") == 500 * rounds + 500 * rounds  # GB/T + JT/T positions
    assert await rig.count("vehicle_sessions", "event IN ('login', 'auth')") == 1000
    assert gbt_l.stats.bad_frames == jt_l.stats.bad_frames == 0


# ------------------------------------------------------------------------------ helpers


async def wait_for(cond: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll a condition on the listener's counters (they change in the server's tasks)."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


async def wait_until_count(rig: Rig, table: str, n: int, timeout: float = TIMEOUT) -> None:
    """Wait until ``table`` holds ``n`` rows: records submitted without an ack to wait for
    (what a connection stores as it closes) are durable a batch later."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await rig.count(table) < n:
        assert asyncio.get_running_loop().time() < deadline, f"{table} has < {n} rows"
        await asyncio.sleep(0.02)
