"""The OCPP WebSocket server (gateway.adapters.ocpp_ws) on a free port, with the real central
system, pipeline, registry and TimescaleDB, driven by raw websockets clients and by the
``ocpp`` library's charge points: sub-protocol negotiation, HTTP refusals (400, 401, 403, 404,
503), Basic auth with text and binary keys, TLS, bad frames and their CALLERRORs and dead
letters, answers only after durability, displacement, idle timeout, the CALLs of the central
system (result, timeout, abort) and shutdown."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import msgspec
import pytest
import pytest_asyncio
import trustme
from ocpp import v16 as ocpp16  # type: ignore[import-untyped]
from ocpp import v201 as ocpp201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response

from gateway.adapters.ocpp_auth import basic_header
from gateway.adapters.ocpp_ws import ChargerConnection, OcppServer
from gateway.config import OcppConfig, PipelineConfig
from gateway.ocpp import v16, v201
from gateway.ocpp.central import CentralSystem
from gateway.ocpp.rpc_events import CallAborted, CallResult, CallTimeout
from gateway.pipeline import Pipeline
from gateway.registry import Registry, hash_password
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema

TIMEOUT = 10.0
KEY = b"0123456789abcdef0123"  # a 20-byte text AuthorizationKey
BIN_KEY = bytes.fromhex("0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF")  # OCPP-J 1.6 example
TABLES = ("charger_status", "charger_events", "raw_frames", "dead_letters")
# identity -> (security profile or None for the listener's default, key)
CHARGERS: dict[str, tuple[int | None, bytes | None]] = {
    "CP1": (None, KEY),
    "CP0": (0, None),
    "AL1000": (1, BIN_KEY),
    "CPTLS": (2, KEY),
    "CP 2": (None, KEY),
}
BOOT16 = {"chargePointVendor": "VendorX", "chargePointModel": "SingleSocketCharger"}
STATUS16 = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_ocppws")


class HeldPipeline:
    """The real pipeline, except that while ``hold`` is set the futures handed out resolve
    only when the test says (to see what waits for durability and what does not)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.hold = False
        self.held: list[asyncio.Future[None]] = []

    async def submit(self, records: Iterable[msgspec.Struct]) -> asyncio.Future[None]:
        fut = await self.pipeline.submit(records)
        if not self.hold:
            return fut
        held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held.append(held)
        return held


class Rig:
    def __init__(
        self, pipeline: Pipeline, pool: asyncpg.Pool, registry: Registry, db: asyncpg.Connection
    ) -> None:
        self.pipeline = HeldPipeline(pipeline)
        self.pool = pool
        self.registry = registry
        self.db = db
        self.servers: list[OcppServer] = []
        self.server: OcppServer | None = None

    async def serve(self, central: type[CentralSystem] = CentralSystem, **kw: Any) -> OcppServer:
        settings: dict[str, Any] = {
            "enabled": True,
            "host": "127.0.0.1",
            "port": 0,
            "ping_interval_s": 0.0,
        }
        settings.update(kw)
        cfg = OcppConfig(**settings)
        server = OcppServer(
            cfg, central(cfg, self.pool, self.registry), self.pipeline, self.registry
        )
        await server.start()
        self.servers.append(server)
        self.server = server
        return server

    async def connect(
        self,
        identity: str = "CP1",
        *,
        versions: Iterable[str] = ("ocpp1.6",),
        password: bytes | None = KEY,
        username: str | None = None,
        tls: ssl.SSLContext | None = None,
        segment: str | None = None,
        **kw: Any,
    ) -> ClientConnection:
        assert self.server is not None
        scheme = "wss" if tls else "ws"
        path = quote(identity, safe="") if segment is None else segment
        headers = None
        if password is not None:
            headers = {"Authorization": basic_header(username or identity, password)}
        return await connect(
            f"{scheme}://127.0.0.1:{self.server.port}/ocpp/{path}",
            subprotocols=list(versions) or None,  # type: ignore[arg-type]
            additional_headers=headers,
            compression=None,
            open_timeout=TIMEOUT,
            ping_interval=None,
            ssl=tls,
            **kw,
        )

    async def refused(self, identity: str = "CP1", **kw: Any) -> Response:
        with pytest.raises(InvalidStatus) as info:
            await self.connect(identity, **kw)
        return info.value.response

    async def count(self, table: str, where: str = "TRUE", *args: Any) -> int:
        n: int = await self.db.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
        return n

    async def eventually(self, table: str, where: str, *args: Any, n: int = 1) -> None:
        """Wait until ``table`` has ``n`` rows matching (records not awaited by the server)."""
        async with asyncio.timeout(TIMEOUT):
            while await self.count(table, where, *args) < n:
                await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def rig(schema_dsn: str, tmp_path: Path) -> AsyncIterator[Rig]:
    db = await asyncpg.connect(schema_dsn)
    await db.execute(f"TRUNCATE {', '.join(TABLES)}, chargers, operators CASCADE")
    await db.execute("INSERT INTO operators (operator_id, name) VALUES ('op1', 'Operator 1')")
    for charger_id, (profile, key) in CHARGERS.items():
        await db.execute(
            "INSERT INTO chargers (charger_id, operator_id, protocol, auth_hash, security_profile)"
            " VALUES ($1, 'op1', 'ocpp1.6', $2, $3)",
            charger_id,
            hash_password(key) if key is not None else None,
            profile,
        )
    pool = await create_pool(schema_dsn, max_size=4, timeout=10)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="never"))
    pipeline = Pipeline(StoreWriter(pool), spool, PipelineConfig(batch_rows=2000, batch_age_ms=20))
    pipeline.start()
    r = Rig(pipeline, pool, Registry(pool, ttl_s=5), db)
    try:
        yield r
    finally:
        for server in r.servers:
            await server.stop(timeout=5)
        for fut in r.pipeline.held:
            if not fut.done():
                fut.set_result(None)
        await pipeline.close(timeout=10)
        await spool.close()
        await pool.close()
        await db.close()


_ids = iter(range(1, 1 << 30))


async def call(ws: ClientConnection, action: str, payload: dict[str, Any]) -> list[Any]:
    """Send a CALL, return the frame that answers it."""
    uid = f"c{next(_ids)}"
    await ws.send(json.dumps([2, uid, action, payload]))
    reply = await recv(ws)
    assert reply[1] == uid, reply
    return reply


async def recv(ws: ClientConnection, timeout: float = TIMEOUT) -> list[Any]:
    frame: list[Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def closed(ws: ClientConnection, timeout: float = TIMEOUT) -> tuple[int | None, str | None]:
    """Wait until the server closes; its close code and reason."""
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason


def link(server: OcppServer, identity: str) -> ChargerConnection:
    conn = server.links.get(identity)
    assert isinstance(conn, ChargerConnection)
    return conn


# ------------------------------------------------------------------------------ handshake


@pytest.mark.asyncio
async def test_subprotocol_negotiation(rig: Rig) -> None:
    await rig.serve()
    for offered, chosen in (
        (["ocpp1.6"], "ocpp1.6"),
        (["ocpp2.0.1"], "ocpp2.0.1"),
        (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),  # the server's preference
        (["ocpp1.5", "ocpp1.6"], "ocpp1.6"),
    ):
        async with await rig.connect(versions=offered) as ws:
            assert ws.subprotocol == chosen
            assert ws.response is not None
            assert ws.response.headers["Sec-WebSocket-Protocol"] == chosen
            reply = await call(ws, "Heartbeat", {})
            assert reply[0] == 3 and "currentTime" in reply[2]


@pytest.mark.asyncio
async def test_no_common_subprotocol_completes_the_handshake_then_closes(rig: Rig) -> None:
    server = await rig.serve(subprotocols=["ocpp1.6"])
    for offered in (["ocpp2.0.1"], ["ocpp1.2", "ocpp1.5"], []):
        ws = await rig.connect(versions=offered)
        assert ws.response is not None and ws.response.status_code == 101
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
        assert ws.subprotocol is None
        code, reason = await closed(ws)
        assert code == 1002
        assert reason is not None and "ocpp1.6" in reason
    assert server.stats.refused["subprotocol"] == 3
    assert len(server.links) == 0


@pytest.mark.asyncio
async def test_unknown_charger_gets_404(rig: Rig) -> None:
    await rig.serve(unknown_chargers="reject", security_profile=0)
    response = await rig.refused("NOPE", password=None)
    assert response.status_code == 404
    assert await rig.count("charger_events") == 0


@pytest.mark.asyncio
async def test_unknown_charger_accepted_and_flagged(rig: Rig) -> None:
    server = await rig.serve(
        unknown_chargers="accept", security_profile=0, unknown_boot_status="Pending"
    )
    async with await rig.connect("NEW-1", password=None) as ws:
        reply = await call(ws, "BootNotification", BOOT16)
        assert reply[2]["status"] == "Pending"
        assert reply[2]["interval"] == server.cfg.boot_retry_interval_s
    await rig.eventually("charger_events", "charger_id = 'NEW-1' AND event = 'connect'")
    detail = await rig.db.fetchval(
        "SELECT detail FROM charger_events WHERE charger_id = 'NEW-1' AND event = 'connect'"
    )
    assert json.loads(detail)["known"] is False
    # 2.0.1: nothing but BootNotification before an accepted boot (the central system's
    # CallRefused becomes the CALLERROR)
    async with await rig.connect("NEW-1", password=None, versions=["ocpp2.0.1"]) as ws:
        reply = await call(ws, "Heartbeat", {})
        assert reply[0] == 4 and reply[2] == "SecurityError"
    # under profile 1 an unknown charger has no key to check: 401 rather than a way round it
    await rig.serve(unknown_chargers="accept", security_profile=1)
    assert (await rig.refused("NEW-2", password=KEY)).status_code == 401


@pytest.mark.asyncio
async def test_basic_auth(rig: Rig) -> None:
    server = await rig.serve(security_profile=1)
    missing = await rig.refused(password=None)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert (await rig.refused(password=b"wrong-key-wrong-key!")).status_code == 401
    assert (await rig.refused(password=KEY, username="CP0")).status_code == 401
    async with await rig.connect(password=KEY) as ws:
        assert (await call(ws, "Heartbeat", {}))[0] == 3
    # a charger whose registry row says profile 0 needs no key, even on a profile-1 listener
    async with await rig.connect("CP0", password=None) as ws:
        assert (await call(ws, "Heartbeat", {}))[0] == 3
    # an identity with a space: percent-encoded in the URL, plain in the username
    async with await rig.connect("CP 2", password=KEY) as ws:
        assert (await call(ws, "Heartbeat", {}))[0] == 3
    assert server.stats.refused["http_401"] == 3


@pytest.mark.asyncio
async def test_binary_key(rig: Rig) -> None:
    await rig.serve()
    async with await rig.connect("AL1000", password=BIN_KEY) as ws:
        # the OCPP-J 1.6 example header, exactly
        assert basic_header("AL1000", BIN_KEY) == "Basic QUwxMDAwOgABAgMEBQYH////////////////"
        assert (await call(ws, "Heartbeat", {}))[0] == 3
    assert (await rig.refused("AL1000", password=BIN_KEY[:-1])).status_code == 401


@pytest.mark.asyncio
async def test_bad_identity_gets_400(rig: Rig) -> None:
    await rig.serve(security_profile=0, unknown_chargers="accept")
    for segment in ("X" * 49, "CP%3A1", "", "a/b", "%FF"):
        response = await rig.refused("CP1", segment=segment, password=None)
        assert response.status_code == 400, segment
    async with await rig.connect("X" * 48, password=None) as ws:
        assert (await call(ws, "Heartbeat", {}))[0] == 3


@pytest.mark.asyncio
async def test_profile_2_needs_tls(rig: Rig, tmp_path: Path) -> None:
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = await rig.serve(tls_cert=str(pem), tls_key=str(pem), security_profile=2)
    assert server.cfg.tls
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    async with await rig.connect("CPTLS", tls=ctx, versions=["ocpp2.0.1"]) as ws:
        assert ws.subprotocol == "ocpp2.0.1"
        assert (await call(ws, "Heartbeat", {}))[0] == 3
    assert (await rig.refused("CPTLS", tls=ctx, password=None)).status_code == 401
    # the same charger on a plain listener: refused, whatever key it sends
    await rig.serve(security_profile=1)
    assert (await rig.refused("CPTLS", password=KEY)).status_code == 403


@pytest.mark.asyncio
async def test_connection_limits_503(rig: Rig) -> None:
    server = await rig.serve(max_connections_per_ip=2, max_connections=100)
    first = await rig.connect()
    second = await rig.connect("CP0", password=None)
    assert (await rig.refused("CP 2")).status_code == 503
    assert server.stats.refused["max_connections_per_ip"] == 1
    await first.close()
    async with asyncio.timeout(TIMEOUT):
        while server.limiter.open > 1:
            await asyncio.sleep(0.01)
    async with await rig.connect("CP 2") as ws:
        assert (await call(ws, "Heartbeat", {}))[0] == 3
    await second.close()
    await rig.serve(max_connections=1)
    async with await rig.connect():
        assert (await rig.refused("CP0", password=None)).status_code == 503


# ------------------------------------------------------------------------------ messages


@pytest.mark.asyncio
async def test_answer_waits_for_durability(rig: Rig) -> None:
    await rig.serve()
    async with await rig.connect() as ws:
        reply = await call(ws, "StatusNotification", STATUS16)
        assert reply == [3, reply[1], {}]
        # answered, so already committed: no waiting here
        assert await rig.count("charger_status", "charger_id = 'CP1' AND status = 'Available'")
        assert await rig.count("raw_frames", "device_id = 'CP1' AND protocol = 'ocpp1.6'") >= 1
        # hold durability: a Heartbeat is answered anyway, a StatusNotification is not
        rig.pipeline.hold = True
        assert (await call(ws, "Heartbeat", {}))[0] == 3
        await ws.send(json.dumps([2, "s2", "StatusNotification", STATUS16]))
        with pytest.raises(TimeoutError):
            await recv(ws, timeout=0.3)
        # the records cannot be made durable: InternalError, so that the charger retries
        rig.pipeline.held[-1].set_exception(RuntimeError("pipeline closed"))
        assert await recv(ws) == [
            4,
            "s2",
            "InternalError",
            "StatusNotification could not be stored; retry later",
            {},
        ]
        rig.pipeline.hold = False
        assert (await call(ws, "Heartbeat", {}))[0] == 3


@pytest.mark.asyncio
async def test_bad_frames_get_callerrors_and_dead_letters(rig: Rig) -> None:
    server = await rig.serve()
    async with await rig.connect(versions=["ocpp1.6"]) as ws16:
        await ws16.send("not json")
        assert (await recv(ws16))[:3] == [4, "-1", "FormationViolation"]
        await ws16.send('[2, "u1", "NoSuchAction", {}]')
        assert (await recv(ws16))[:3] == [4, "u1", "NotImplemented"]
        await ws16.send('[2, "u2", "StatusNotification", {"connectorId": "one"}]')
        err = await recv(ws16)
        assert err[:2] == [4, "u2"] and err[2] in (
            "TypeConstraintViolation",
            "OccurenceConstraintViolation",
        )
        await ws16.send('[9, "u3"]')  # 1.6: an unknown message type is ignored
        assert (await call(ws16, "Heartbeat", {}))[0] == 3
    async with await rig.connect(versions=["ocpp2.0.1"]) as ws201:
        await ws201.send("{")
        assert (await recv(ws201))[:3] == [4, "-1", "RpcFrameworkError"]
        await ws201.send('[2, "v1", "Heartbeat", {"extra": 1}]')
        assert (await recv(ws201))[:3] == [4, "v1", "ProtocolError"]
        await ws201.send('[9, "v2"]')
        assert (await recv(ws201))[:3] == [4, "v2", "MessageTypeNotSupported"]
        # a CALL the 2.0.1 central system does not answer (a CSMS-to-station action)
        await ws201.send('[2, "v3", "Reset", {"type": "Immediate"}]')
        assert (await recv(ws201))[:3] == [4, "v3", "NotSupported"]
    await rig.eventually("dead_letters", "TRUE", n=8)
    reasons = {r["reason"] for r in await rig.db.fetch("SELECT reason, message FROM dead_letters")}
    assert {"not_json", "unknown_action", "payload", "unknown_type", "unsupported_action"} <= (
        reasons
    )
    devices = [r["device_id"] for r in await rig.db.fetch("SELECT device_id FROM dead_letters")]
    assert devices and all(d == "CP1" for d in devices)
    # every message is archived, the bad ones too
    await rig.eventually("raw_frames", "device_id = 'CP1'", n=9)
    assert server.stats.bad_frames == 8
    # the counters behind /metrics: dead letters by reason, valid requests by action
    assert sum(server.stats.dead_letters.values()) == 8
    assert set(server.stats.dead_letters) == reasons
    assert server.stats.calls == {"Heartbeat": 1}


@pytest.mark.asyncio
async def test_oversize_messages(rig: Rig) -> None:
    await rig.serve(max_message_bytes=1024)
    big = {"vendorId": "V", "data": "x" * 2000}
    async with await rig.connect(versions=["ocpp1.6"]) as ws:
        await ws.send(json.dumps([2, "big1", "DataTransfer", big]))
        assert (await recv(ws))[:3] == [4, "big1", "FormationViolation"]
        assert (await call(ws, "Heartbeat", {}))[0] == 3  # the connection stays
    async with await rig.connect(versions=["ocpp2.0.1"]) as ws:
        await ws.send(json.dumps([2, "big2", "DataTransfer", big]))
        assert (await recv(ws))[:3] == [4, "big2", "FormatViolation"]
        assert (await call(ws, "Heartbeat", {}))[0] == 3
        # beyond the hard cap (4 x 1024 + 1024): the WebSocket layer closes with 1009
        await ws.send("x" * 6000)
        code, _ = await closed(ws)
        assert code == 1009
    await rig.eventually("dead_letters", "reason = 'too_large'", n=2)
    await rig.eventually(
        "charger_events", "event = 'disconnect' AND detail->>'reason' = 'message_too_big'"
    )


@pytest.mark.asyncio
async def test_duplicate_identity_displaces(rig: Rig) -> None:
    server = await rig.serve()
    old = await rig.connect()
    old_link = link(server, "CP1")
    new = await rig.connect()
    code, reason = await closed(old)
    assert code == 1000 and reason is not None and "newer" in reason
    assert link(server, "CP1") is not old_link
    assert (await call(new, "Heartbeat", {}))[0] == 3
    await rig.eventually(
        "charger_events", "event = 'disconnect' AND detail->>'reason' = 'displaced'"
    )
    assert "CP1" in server.links
    await new.close()
    async with asyncio.timeout(TIMEOUT):
        while "CP1" in server.links:
            await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_idle_timeout(rig: Rig) -> None:
    server = await rig.serve(idle_timeout_s=0.4)
    async with await rig.connect() as ws:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(4):  # messages keep it open
            await asyncio.sleep(0.2)
            assert (await call(ws, "Heartbeat", {}))[0] == 3
        code, reason = await closed(ws, timeout=3)
        assert code == 1001 and reason == "idle timeout"
        assert loop.time() - started >= 1.0
    assert server.stats.closed["idle_timeout"] == 1


@pytest.mark.asyncio
async def test_pongs_count_as_activity(rig: Rig) -> None:
    # a charger that relies on WebSocket pings instead of Heartbeats stays connected
    server = await rig.serve(idle_timeout_s=0.4, ping_interval_s=0.1, ping_timeout_s=2.0)
    async with await rig.connect() as ws:
        await asyncio.sleep(1.2)
        assert (await call(ws, "Heartbeat", {}))[0] == 3
    assert "idle_timeout" not in server.stats.closed


class FailingCentral(CentralSystem):
    """The real central system, except that MeterValues fails (a bug, a database error)."""

    async def handle(self, session: Any, action: str, request: Any, *args: Any) -> Any:
        if action == "MeterValues":
            raise RuntimeError("boom")
        return await super().handle(session, action, request, *args)


@pytest.mark.asyncio
async def test_handler_failure_answers_internal_error(rig: Rig) -> None:
    await rig.serve(central=FailingCentral)
    async with await rig.connect() as ws:
        sample = {"timestamp": "2026-11-27T10:00:00Z", "sampledValue": [{"value": "1"}]}
        reply = await call(ws, "MeterValues", {"connectorId": 1, "meterValue": [sample]})
        assert reply[0] == 4 and reply[2:4] == [
            "InternalError",
            "MeterValues could not be processed; retry later",
        ]
        assert (await call(ws, "Heartbeat", {}))[0] == 3  # the connection goes on
    await rig.eventually("dead_letters", "reason = 'handler_failure'")
    row = await rig.db.fetchrow("SELECT device_id, message FROM dead_letters")
    assert row is not None
    assert (row["device_id"], row["message"]) == ("CP1", "MeterValues: RuntimeError: boom")


# ------------------------------------------------------------------------------ our CALLs


@pytest.mark.asyncio
async def test_call_round_trip_timeout_and_abort(rig: Rig) -> None:
    server = await rig.serve()
    ws = await rig.connect()
    conn = link(server, "CP1")
    assert (conn.charger_id, conn.version, conn.peer.startswith("127.0.0.1:")) == (
        "CP1",
        "ocpp1.6",
        True,
    )

    async def charger_answers() -> list[Any]:
        frame = await recv(ws)
        await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
        return frame

    answering = asyncio.create_task(charger_answers())
    outcome = await conn.call("Reset", v16.ResetRequest(type="Soft"), 5.0)
    frame = await answering
    assert frame[0] == 2 and frame[2:] == ["Reset", {"type": "Soft"}]
    assert isinstance(outcome, CallResult)
    assert outcome.payload == v16.ResetResponse(status="Accepted")
    # the CALLRESULT is archived like everything the charger sends
    await rig.eventually("raw_frames", "device_id = 'CP1' AND frame LIKE '[3,%'")

    # no answer: timed out, and the next CALL goes out
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await conn.call("Reset", v16.ResetRequest(type="Hard"), 0.3)
    assert isinstance(outcome, CallTimeout) and outcome.sent
    assert 0.25 < loop.time() - started < 2.0
    assert (await recv(ws))[2] == "Reset"  # it was sent

    # a charger that goes away: CallAborted
    pending = asyncio.create_task(conn.call("Reset", v16.ResetRequest(type="Soft"), 30.0))
    assert (await recv(ws))[2] == "Reset"
    await ws.close()
    outcome = await asyncio.wait_for(pending, TIMEOUT)
    assert isinstance(outcome, CallAborted)
    assert isinstance(await conn.call("Reset", v16.ResetRequest(type="Soft"), 1.0), CallAborted)


@pytest.mark.asyncio
async def test_call_queue_and_201(rig: Rig) -> None:
    server = await rig.serve()
    async with await rig.connect(versions=["ocpp2.0.1"]) as ws:
        conn = link(server, "CP1")
        # two CALLs at once: the second waits until the first is answered
        first = asyncio.create_task(conn.call("Reset", v201.ResetRequest(type="OnIdle"), 5.0))
        second = asyncio.create_task(conn.call("Reset", v201.ResetRequest(type="Immediate"), 5.0))
        frame = await recv(ws)
        assert frame[3] == {"type": "OnIdle"}
        with pytest.raises(TimeoutError):
            await recv(ws, timeout=0.2)
        await ws.send(json.dumps([3, frame[1], {"status": "Scheduled"}]))
        frame = await recv(ws)
        assert frame[3] == {"type": "Immediate"}
        await ws.send(json.dumps([4, frame[1], "InternalError", "busy", {}]))
        one, two = await asyncio.gather(first, second)
        assert isinstance(one, CallResult) and one.payload.status == "Scheduled"
        assert type(two).__name__ == "CallError" and two.code == "InternalError"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ ocpp library


class Cp16(ocpp16.ChargePoint):  # type: ignore[misc]
    pass


class Cp201(ocpp201.ChargePoint):  # type: ignore[misc]
    pass


@pytest.mark.asyncio
async def test_ocpp_library_16(rig: Rig) -> None:
    server = await rig.serve(heartbeat_interval_s=123)
    async with await rig.connect("CP1", versions=["ocpp1.6"]) as ws:
        cp = Cp16("CP1", ws)
        reading = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(
                ocpp16.call.BootNotification(
                    charge_point_model="SingleSocketCharger", charge_point_vendor="VendorX"
                )
            )
            assert boot.status == "Accepted" and boot.interval == 123
            beat = await cp.call(ocpp16.call.Heartbeat())
            assert beat.current_time
            status = await cp.call(
                ocpp16.call.StatusNotification(
                    connector_id=1, error_code="NoError", status="Charging"
                )
            )
            assert status is not None
            assert await rig.count("charger_status", "status = 'Charging'") == 1
        finally:
            reading.cancel()
    await rig.eventually("charger_events", "charger_id = 'CP1' AND event = 'boot'")
    assert server.stats.acks_sent == 3


@pytest.mark.asyncio
async def test_ocpp_library_201(rig: Rig) -> None:
    await rig.serve(heartbeat_interval_s=77)
    async with await rig.connect("CP 2", versions=["ocpp2.0.1", "ocpp1.6"]) as ws:
        assert ws.subprotocol == "ocpp2.0.1"
        cp = Cp201("CP 2", ws)
        reading = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(
                ocpp201.call.BootNotification(
                    charging_station={"model": "M1", "vendor_name": "VendorY"},
                    reason="PowerUp",
                )
            )
            assert boot.status == "Accepted" and boot.interval == 77
            beat = await cp.call(ocpp201.call.Heartbeat())
            assert beat.current_time
        finally:
            reading.cancel()
    await rig.eventually("charger_events", "charger_id = 'CP 2' AND event = 'boot'")


# ------------------------------------------------------------------------------ shutdown


@pytest.mark.asyncio
async def test_stop_closes_chargers_with_1001(rig: Rig) -> None:
    server = await rig.serve()
    port = server.port
    ws = await rig.connect()
    assert (await call(ws, "Heartbeat", {}))[0] == 3
    # a StatusNotification in flight is answered before the close
    rig.pipeline.hold = True
    await ws.send(json.dumps([2, "last", "StatusNotification", STATUS16]))
    async with asyncio.timeout(TIMEOUT):
        while not rig.pipeline.held:
            await asyncio.sleep(0.01)
    stopping = asyncio.create_task(server.stop(timeout=5))
    await asyncio.sleep(0.1)
    rig.pipeline.held[0].set_result(None)
    assert await recv(ws) == [3, "last", {}]
    code, reason = await closed(ws)
    assert code == 1001 and reason == "server shutting down"
    await stopping
    rig.servers.remove(server)
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{port}/ocpp/CP1", open_timeout=1)
