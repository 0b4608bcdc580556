"""Commands to chargers (gateway.ocpp.commands) with their rows in PostgreSQL.

Most tests drive :class:`ChargerCommands` over a small in-test :class:`ChargerLink` (our own
interface: it answers each CALL as the test says, checking what was sent against the schema
Structs); the last ones connect a charge point written with the `ocpp` library (v2.1.0) to the
real WebSocket server (gateway.adapters.ocpp_ws) and command it through the server's links.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import ocpp.v16  # type: ignore[import-untyped]
import ocpp.v201  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
import websockets
from ocpp.routing import on  # type: ignore[import-untyped]
from ocpp.v16 import call_result as call_result16
from ocpp.v16.enums import Action as Action16  # type: ignore[import-untyped]
from ocpp.v201 import call_result as call_result201
from ocpp.v201.enums import Action as Action201  # type: ignore[import-untyped]
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gateway.adapters.ocpp_ws import OcppServer
from gateway.commands_types import CommandResult
from gateway.config import OcppConfig, PipelineConfig
from gateway.ocpp.central import CentralSystem
from gateway.ocpp.commands import (
    OFFLINE_PROTOCOL,
    V16,
    V201,
    ChargerCommands,
    CommandError,
    WrongVersion,
)
from gateway.ocpp.link import CallOutcome, Links
from gateway.ocpp.messages import ACTIONS
from gateway.ocpp.rpc_events import CallAborted, CallError, CallResult, CallTimeout, InvalidResult
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema

CFG = OcppConfig(call_timeout_s=5.0)

Answer = Callable[[str, Any, float], Awaitable[CallOutcome] | CallOutcome]


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_ocppcmd")


@dataclasses.dataclass(eq=False)
class FakeLink:
    """A connected charger as the commands see it: ``answer`` decides each CALL's outcome
    (default: the action's response with status Accepted, or an empty one)."""

    charger_id: str
    version: str
    answer: Answer | None = None
    peer: str = "127.0.0.1:40000"
    calls: list[tuple[str, Any, float]] = dataclasses.field(default_factory=list)

    async def call(self, action: str, request: Any, timeout_s: float) -> CallOutcome:
        # what a real link would send: the request Struct of this version
        assert type(request) is ACTIONS[self.version][action][0]
        self.calls.append((action, request, timeout_s))
        if self.answer is None:
            return result(self.version, action, request, _accepted(self.version, action))
        out = self.answer(action, request, timeout_s)
        return await out if isinstance(out, Awaitable) else out


def _accepted(version: str, action: str) -> dict[str, Any]:
    response = ACTIONS[version][action][1]
    return {"status": "Accepted"} if "status" in response.__struct_fields__ else {}


def result(version: str, action: str, request: Any, payload: dict[str, Any]) -> CallResult:
    """A CALLRESULT as the RPC layer reports it: the payload decoded as the action's response."""
    response = msgspec.convert(payload, ACTIONS[version][action][1])
    return CallResult(unique_id="u1", action=action, payload=response, request=request)


@dataclasses.dataclass
class Rig:
    commands: ChargerCommands
    links: Links
    db: asyncpg.Connection

    def link(self, charger_id: str, version: str, answer: Answer | None = None) -> FakeLink:
        link = FakeLink(charger_id, version, answer)
        self.links.add(link)
        return link

    async def stored(self, done: CommandResult) -> None:
        """The row of ``done`` holds exactly the result."""
        assert await self.commands.get(done.id) == done

    async def rows(self) -> int:
        n: int = await self.db.fetchval("SELECT count(*) FROM commands")
        return n


@pytest_asyncio.fixture
async def rig(schema_dsn: str) -> AsyncIterator[Rig]:
    db = await asyncpg.connect(schema_dsn)
    await db.execute("TRUNCATE commands")
    pool = await create_pool(schema_dsn, max_size=4, timeout=10)
    links = Links()
    try:
        yield Rig(ChargerCommands(links, pool, CFG), links, db)
    finally:
        await pool.close()
        await db.close()


def accepted(done: CommandResult, version: str, action: str) -> dict[str, Any]:
    """Checks an accepted command; returns the payload sent."""
    assert done.status == "accepted", done
    assert done.protocol == version and done.error is None
    assert done.sent_at is not None and done.replied_at is not None
    assert done.created_at <= done.sent_at <= done.replied_at
    assert done.request["action"] == action
    payload: dict[str, Any] = done.request["payload"]
    return payload


# ------------------------------------------------------------------------------ every command


@pytest.mark.asyncio
async def test_every_command_on_1_6(rig: Rig) -> None:
    def answer(action: str, request: Any, timeout: float) -> CallOutcome:
        if action == "GetConfiguration":
            keys = [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
            return result(V16, action, request, {"configurationKey": keys})
        if action == "UnlockConnector":
            return result(V16, action, request, {"status": "Unlocked"})
        if action == "ChangeConfiguration":
            return result(V16, action, request, {"status": "RebootRequired"})
        return result(V16, action, request, _accepted(V16, action))

    link = rig.link("CP16", V16, answer)
    cmd = rig.commands
    cases: list[tuple[Awaitable[CommandResult], str, dict[str, Any]]] = [
        (
            cmd.remote_start("CP16", "04A2B3C4", connector_id=1),
            "RemoteStartTransaction",
            {"connectorId": 1, "idTag": "04A2B3C4"},
        ),
        (cmd.remote_stop("CP16", "17"), "RemoteStopTransaction", {"transactionId": 17}),
        (cmd.reset("CP16", "hard"), "Reset", {"type": "Hard"}),
        (
            cmd.change_configuration("CP16", "HeartbeatInterval", 300),
            "ChangeConfiguration",
            {"key": "HeartbeatInterval", "value": "300"},
        ),
        (
            cmd.get_configuration("CP16", ["HeartbeatInterval"]),
            "GetConfiguration",
            {"key": ["HeartbeatInterval"]},
        ),
        (
            cmd.trigger_message("CP16", "status_notification", connector_id=2),
            "TriggerMessage",
            {"requestedMessage": "StatusNotification", "connectorId": 2},
        ),
        (cmd.unlock_connector("CP16", 2), "UnlockConnector", {"connectorId": 2}),
        (
            cmd.change_availability("CP16", False, connector_id=1),
            "ChangeAvailability",
            {"connectorId": 1, "type": "Inoperative"},
        ),
        (cmd.send("CP16", "ClearCache", {}), "ClearCache", {}),
    ]
    verbs = []
    for call, action, payload in cases:
        done = await call
        assert accepted(done, V16, action) == payload
        assert done.device == "CP16"
        await rig.stored(done)
        verbs.append(done.command)
    assert [c[0] for c in link.calls] == [action for _, action, _ in cases]
    assert all(c[2] == 5.0 for c in link.calls)  # the configured call_timeout_s
    assert verbs == [
        "remote_start",
        "remote_stop",
        "reset",
        "change_configuration",
        "get_configuration",
        "trigger_message",
        "unlock_connector",
        "change_availability",
        "send",
    ]
    history = await cmd.history("CP16")
    assert [h.command for h in history] == verbs[::-1]
    got = history[4]  # get_configuration
    assert got.reply == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
    }
    assert history[5].reply == {"status": "RebootRequired"}  # accepted, the status kept
    assert history[2].reply == {"status": "Unlocked"}
    assert cmd.counts == {"accepted": 9} and cmd.pending == 0


@pytest.mark.asyncio
async def test_every_command_on_2_0_1(rig: Rig) -> None:
    def answer(action: str, request: Any, timeout: float) -> CallOutcome:
        if action == "RequestStartTransaction":
            payload = {"status": "Accepted", "transactionId": "tx-1"}
            return result(V201, action, request, payload)
        if action == "GetVariables":
            items = [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "60",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
            return result(V201, action, request, {"getVariableResult": items})
        if action == "SetVariables":
            items = [
                {
                    "attributeStatus": "Accepted",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
            return result(V201, action, request, {"setVariableResult": items})
        if action == "UnlockConnector":
            return result(V201, action, request, {"status": "Unlocked"})
        if action == "Reset":
            return result(V201, action, request, {"status": "Scheduled"})
        return result(V201, action, request, _accepted(V201, action))

    rig.link("CP201", V201, answer)
    cmd = rig.commands
    started = await cmd.remote_start("CP201", "04A2B3C4", evse_id=1, remote_start_id=77)
    assert accepted(started, V201, "RequestStartTransaction") == {
        "evseId": 1,
        "idToken": {"idToken": "04A2B3C4", "type": "Central"},
        "remoteStartId": 77,
    }
    assert started.reply == {"status": "Accepted", "transactionId": "tx-1"}
    await rig.stored(started)
    drawn = await cmd.remote_start("CP201", "T")  # remoteStartId drawn when not given
    rsid = accepted(drawn, V201, "RequestStartTransaction")["remoteStartId"]
    assert isinstance(rsid, int) and 0 < rsid < 2**31
    assert drawn.request["payload"] == {
        "idToken": {"idToken": "T", "type": "Central"},
        "remoteStartId": rsid,
    }

    cases: list[tuple[Awaitable[CommandResult], str, dict[str, Any]]] = [
        (cmd.remote_stop("CP201", "tx-1"), "RequestStopTransaction", {"transactionId": "tx-1"}),
        (cmd.reset("CP201", "soft", evse_id=1), "Reset", {"type": "OnIdle", "evseId": 1}),
        (
            cmd.set_variables("CP201", [("OCPPCommCtrlr", "HeartbeatInterval", 60)]),
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "60",
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            },
        ),
        (
            cmd.get_variables("CP201", [("OCPPCommCtrlr", "HeartbeatInterval")]),
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            },
        ),
        (
            cmd.trigger_message("CP201", "DiagnosticsStatusNotification"),
            "TriggerMessage",
            {"requestedMessage": "LogStatusNotification"},
        ),
        (
            cmd.unlock_connector("CP201", 1, evse_id=2),
            "UnlockConnector",
            {"evseId": 2, "connectorId": 1},
        ),
        (
            cmd.change_availability("CP201", True, evse_id=2),
            "ChangeAvailability",
            {"evse": {"id": 2}, "operationalStatus": "Operative"},
        ),
        (
            cmd.send("CP201", "GetBaseReport", {"requestId": 5, "reportBase": "FullInventory"}),
            "GetBaseReport",
            {"requestId": 5, "reportBase": "FullInventory"},
        ),
    ]
    for call, action, payload in cases:
        done = await call
        assert accepted(done, V201, action) == payload
        await rig.stored(done)
        if action == "Reset":
            assert done.reply == {"status": "Scheduled"}
        if action == "GetVariables":
            assert done.reply is not None
            assert done.reply["getVariableResult"][0]["attributeValue"] == "60"
    assert len(await cmd.history("CP201", limit=100)) == 10
    assert len(await cmd.history("CP201", limit=3)) == 3


# ------------------------------------------------------------------------------ statuses


@pytest.mark.asyncio
async def test_answers_map_to_statuses(rig: Rig) -> None:
    replies: dict[str, dict[str, Any]] = {
        "RemoteStartTransaction": {"status": "Rejected"},
        "ChangeConfiguration": {"status": "NotSupported"},
        "UnlockConnector": {"status": "UnlockFailed"},
        "TriggerMessage": {"status": "NotImplemented"},
        "GetConfiguration": {
            "configurationKey": [{"key": "A", "readonly": True, "value": "1"}],
            "unknownKey": ["B"],
        },
    }
    rig.link("CP16", V16, lambda a, r, t: result(V16, a, r, replies[a]))
    cmd = rig.commands
    for call, status in (
        (cmd.remote_start("CP16", "T"), "rejected"),
        (cmd.change_configuration("CP16", "X", "1"), "unsupported"),
        (cmd.unlock_connector("CP16", 1), "failed"),
        (cmd.trigger_message("CP16", "Heartbeat"), "unsupported"),
        (cmd.get_configuration("CP16", ["A", "B"]), "rejected"),
    ):
        done = await call
        assert done.status == status, done
        assert done.replied_at is not None and done.error is None
        assert done.reply == replies[done.request["action"]]
        await rig.stored(done)

    def partial(action: str, request: Any, timeout: float) -> CallOutcome:
        items = [
            {
                "attributeStatus": status,
                "component": {"name": "C"},
                "variable": {"name": name},
            }
            for status, name in (("RebootRequired", "A"), ("UnknownVariable", "B"))
        ]
        return result(V201, action, request, {"setVariableResult": items})

    rig.link("CP201", V201, partial)
    done = await cmd.set_variables("CP201", [("C", "A", "1"), ("C", "B", "2")])
    assert done.status == "rejected"  # not every variable was accepted
    assert done.reply is not None
    statuses = [r["attributeStatus"] for r in done.reply["setVariableResult"]]
    assert statuses == ["RebootRequired", "UnknownVariable"]
    await rig.stored(done)


@pytest.mark.asyncio
async def test_callerror_invalid_result_aborted(rig: Rig) -> None:
    outcomes: list[Callable[[str, Any], CallOutcome]] = [
        lambda a, r: CallError("u", a, "InternalError", "boom", {"at": "x"}, r),
        lambda a, r: CallError("u", a, "NotImplemented", "", {}, r),
        lambda a, r: CallError("u", a, "NotSupported", "no resets", {}, r),
        lambda a, r: InvalidResult("u", a, "TypeConstraintViolation", "Expected `str`", r),
        lambda a, r: CallAborted("u", a, r, sent=True),
        lambda a, r: CallAborted("u", a, r, sent=False),
    ]
    queue = list(outcomes)
    rig.link("CP16", V16, lambda a, r, t: queue.pop(0)(a, r))
    cmd = rig.commands
    done = [await cmd.reset("CP16") for _ in outcomes]
    assert [d.status for d in done] == [
        "failed",
        "unsupported",
        "unsupported",
        "error",
        "failed",
        "failed",
    ]
    assert done[0].reply == {
        "errorCode": "InternalError",
        "errorDescription": "boom",
        "errorDetails": {"at": "x"},
    }
    assert done[0].error == "CALLERROR InternalError: boom"
    assert done[1].error == "CALLERROR NotImplemented"
    assert done[3].error == "invalid answer: TypeConstraintViolation: Expected `str`"
    assert done[3].replied_at is not None and done[3].reply is None
    assert done[4].error == "connection closed before the answer" and done[4].sent_at
    assert done[5].sent_at is None and "before the CALL was sent" in (done[5].error or "")
    for d in done:
        await rig.stored(d)


@pytest.mark.asyncio
async def test_timeouts(rig: Rig) -> None:
    async def late(action: str, request: Any, timeout: float) -> CallOutcome:
        await asyncio.sleep(timeout)  # a link ends the CALL at its deadline
        return CallTimeout("u", action, request, sent=True)

    async def queued(action: str, request: Any, timeout: float) -> CallOutcome:
        await asyncio.sleep(timeout)
        return CallTimeout("u", action, request, sent=False)

    cmd = rig.commands
    rig.link("CP16", V16, late)
    done = await cmd.reset("CP16", timeout_s=0.05)
    assert done.status == "timeout" and done.error == "no answer within 0.05 s"
    assert done.sent_at is not None and done.replied_at is None
    await rig.stored(done)
    rig.link("CP16", V16, queued)
    never = await cmd.reset("CP16", timeout_s=0.05)
    assert never.status == "timeout" and never.sent_at is None
    assert "not sent within 0.05 s" in (never.error or "")
    await rig.stored(never)

    async def stuck(action: str, request: Any, timeout: float) -> CallOutcome:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    rig.link("CP16", V16, stuck)
    cmd.guard_s = 0.05
    hung = await cmd.reset("CP16", timeout_s=0.05)
    assert hung.status == "timeout" and "no outcome from the connection" in (hung.error or "")
    await rig.stored(hung)

    def refuses(action: str, request: Any, timeout: float) -> CallOutcome:
        raise RuntimeError("32 CALLs already queued")

    rig.link("CP16", V16, refuses)
    full = await cmd.reset("CP16")
    assert full.status == "error" and full.sent_at is None
    assert "32 CALLs already queued" in (full.error or "")
    await rig.stored(full)
    assert cmd.pending == 0


# ------------------------------------------------------------------------------ offline, bad args


@pytest.mark.asyncio
async def test_offline(rig: Rig) -> None:
    cmd = rig.commands
    done = await cmd.remote_start("GONE", "T", connector_id=1, remote_start_id=5)
    assert done.status == "offline" and done.error == "not connected"
    assert done.protocol == OFFLINE_PROTOCOL and done.sent_at is None
    assert done.request == {
        "args": {
            "id_tag": "T",
            "connector_id": 1,
            "evse_id": None,
            "remote_start_id": 5,
            "id_token_type": "Central",
            "charging_profile": None,
        }
    }
    await rig.stored(done)
    # arguments that only one version takes are fine while the version is unknown
    for call in (
        cmd.set_variables("GONE", [("C", "V", "1")]),
        cmd.change_configuration("GONE", "K", "1"),
        cmd.remote_stop("GONE", "not-an-int"),
        cmd.reset("GONE", "soft", evse_id=1),
        cmd.send("GONE", "ExtendedTriggerMessage", {"requestedMessage": "Heartbeat"}),
    ):
        offline = await call
        assert offline.status == "offline"
        await rig.stored(offline)
    sent = await cmd.history("GONE")
    assert sent[0].request == {
        "args": {"action": "ExtendedTriggerMessage", "payload": {"requestedMessage": "Heartbeat"}}
    }
    assert await rig.rows() == 6
    # arguments no version takes are refused, offline or not
    for bad, match in (
        (cmd.reset("GONE", "reboot"), "not soft, hard"),
        (cmd.remote_start("GONE", "x" * 37), "length <= 36"),
        (cmd.set_variables("GONE", []), "no variables"),
        (cmd.send("GONE", "Heartbeat", {}), "not a central system"),
        (cmd.send("GONE", "Reset", {"type": "Reboot"}), "Invalid enum value 'Reboot'"),
        (cmd.change_configuration("GONE", "K", None), "not a text"),  # type: ignore[arg-type]
    ):
        with pytest.raises(CommandError, match=match):
            await bad
    assert await rig.rows() == 6
    assert cmd.counts == {"offline": 6}


@pytest.mark.asyncio
async def test_bad_arguments_and_wrong_version_store_nothing(rig: Rig) -> None:
    one = rig.link("CP16", V16)
    two = rig.link("CP201", V201)
    cmd = rig.commands
    for call, error, match in (
        (cmd.set_variables("CP16", [("C", "V", "1")]), WrongVersion, "use change_configuration"),
        (cmd.get_variables("CP16", [("C", "V")]), WrongVersion, "use get_configuration"),
        (cmd.change_configuration("CP201", "K", "1"), WrongVersion, "use set_variables"),
        (cmd.get_configuration("CP201"), WrongVersion, "use get_variables"),
        (cmd.remote_stop("CP16", "tx-1"), WrongVersion, "integers"),
        (cmd.reset("CP16", evse_id=1), WrongVersion, "whole charge point"),
        (cmd.trigger_message("CP16", "TransactionEvent"), WrongVersion, "can trigger"),
        (cmd.send("CP16", "SetVariables", {}), CommandError, "of OCPP 1.6"),
        (cmd.send("CP201", "Reset", {"type": "Soft"}), CommandError, "Invalid enum value 'Soft'"),
        (cmd.send("CP201", "Reset", "Soft"), CommandError, "JSON object"),  # type: ignore[arg-type]
        (cmd.reset("CP16", timeout_s=0), CommandError, "positive"),
        (cmd.reset("CP16", timeout_s=float("nan")), CommandError, "positive"),
        (cmd.unlock_connector("CP201", 0), CommandError, ">= 1"),
        (cmd.change_availability("CP16", 1), CommandError, "True or False"),  # type: ignore[arg-type]
        (cmd.reset(""), CommandError, "charger_id"),
    ):
        with pytest.raises(error, match=match):
            await call
    assert one.calls == [] and two.calls == []
    assert await rig.rows() == 0 and cmd.counts == {}


# ------------------------------------------------------------------------------ flow


@pytest.mark.asyncio
async def test_pending_row_bound_and_cancel(rig: Rig) -> None:
    release = asyncio.Event()

    async def held(action: str, request: Any, timeout: float) -> CallOutcome:
        await release.wait()
        return result(V201, action, request, {"status": "Accepted"})

    rig.link("CP201", V201, held)
    cmd = rig.commands
    cmd.max_pending = 2
    first = asyncio.create_task(cmd.reset("CP201"))
    second = asyncio.create_task(cmd.trigger_message("CP201", "Heartbeat"))
    async with asyncio.timeout(5):
        while cmd.pending < 2 or await rig.rows() < 2:
            await asyncio.sleep(0.01)
    rows = await rig.db.fetch("SELECT status, protocol, command, sent_at FROM commands")
    assert sorted(r["command"] for r in rows) == ["reset", "trigger_message"]
    assert {(r["status"], r["protocol"], r["sent_at"]) for r in rows} == {("pending", V201, None)}
    with pytest.raises(CommandError, match="max_pending"):
        await cmd.reset("CP201")
    assert await rig.rows() == 2
    second.cancel()  # the caller gives up: the row says so
    with pytest.raises(asyncio.CancelledError):
        await second
    release.set()
    done = await first
    assert done.status == "accepted" and cmd.pending == 0
    gone = [h for h in await cmd.history("CP201") if h.command == "trigger_message"]
    assert len(gone) == 1 and gone[0].status == "error" and gone[0].error == "cancelled"
    assert cmd.counts == {"accepted": 1, "error": 1}


@pytest.mark.asyncio
async def test_unknown_command_id(rig: Rig) -> None:
    assert await rig.commands.get(uuid.uuid4()) is None
    assert await rig.commands.history("nobody") == []


@pytest.mark.asyncio
async def test_database_down_sends_nothing(rig: Rig, schema_dsn: str) -> None:
    link = rig.link("CP16", V16)
    pool = await create_pool(schema_dsn, max_size=1, timeout=10)
    await pool.close()  # a pool that can no longer reach the database
    cmd = ChargerCommands(rig.links, pool, CFG)
    with pytest.raises(asyncpg.InterfaceError):
        await cmd.reset("CP16")
    assert link.calls == [] and cmd.pending == 0


# ------------------------------------------------------------------------------ end to end
# A charge point written with the `ocpp` library, connected to the real WebSocket server.


@dataclasses.dataclass
class Server:
    commands: ChargerCommands
    server: OcppServer
    db: asyncpg.Connection

    @contextlib.asynccontextmanager
    async def charger(
        self, identity: str, version: str, make: Callable[[str, Any], Any]
    ) -> AsyncIterator[Any]:
        """Connect ``make(identity, websocket)`` (an ocpp library ChargePoint) and wait until
        the server indexes it."""
        url = f"ws://127.0.0.1:{self.server.port}/ocpp/{identity}"
        async with websockets.connect(url, subprotocols=[Subprotocol(version)]) as ws:
            assert ws.subprotocol == version
            cp = make(identity, ws)
            task = asyncio.create_task(cp.start())
            try:
                async with asyncio.timeout(5):
                    while identity not in self.server.links:
                        await asyncio.sleep(0.01)
                yield cp
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task


@pytest_asyncio.fixture
async def server(schema_dsn: str, tmp_path: Path) -> AsyncIterator[Server]:
    db = await asyncpg.connect(schema_dsn)
    await db.execute("TRUNCATE commands, chargers, operators CASCADE")
    await db.execute("INSERT INTO operators (operator_id, name) VALUES ('op1', 'One')")
    await db.execute(
        "INSERT INTO chargers (charger_id, operator_id, protocol, security_profile) VALUES"
        " ('CP16', 'op1', 'ocpp1.6', 0), ('CP201', 'op1', 'ocpp2.0.1', 0)"
    )
    pool = await create_pool(schema_dsn, max_size=4, timeout=10)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="never"))
    pipeline = Pipeline(StoreWriter(pool), spool, PipelineConfig(batch_rows=2000, batch_age_ms=5))
    pipeline.start()
    cfg = OcppConfig(enabled=True, host="127.0.0.1", port=0, call_timeout_s=5.0)
    registry = Registry(pool, ttl_s=5)
    links = Links()
    ocpp_server = OcppServer(cfg, CentralSystem(cfg, pool, registry), pipeline, registry, links)
    await ocpp_server.start()
    try:
        yield Server(ChargerCommands(links, pool, cfg), ocpp_server, db)
    finally:
        await ocpp_server.stop(timeout=5)
        await pipeline.close(timeout=10)
        await spool.close()
        await pool.close()
        await db.close()


class Charger16(ocpp.v16.ChargePoint):  # type: ignore[misc]
    """Answers RemoteStartTransaction and GetConfiguration; knows no Reset (NotImplemented);
    answers ClearCache too late."""

    started: list[dict[str, Any]]

    @on(Action16.remote_start_transaction)  # type: ignore[untyped-decorator]
    async def on_remote_start(self, id_tag: str, **kwargs: Any) -> Any:
        self.started.append({"id_tag": id_tag, **kwargs})
        return call_result16.RemoteStartTransaction(status="Accepted")

    @on(Action16.get_configuration)  # type: ignore[untyped-decorator]
    async def on_get_configuration(self, key: list[str] | None = None) -> Any:
        known = {"HeartbeatInterval": "300", "NumberOfConnectors": "2"}
        asked = known if key is None else key
        return call_result16.GetConfiguration(
            configuration_key=[
                {"key": k, "readonly": k == "NumberOfConnectors", "value": known[k]}
                for k in asked
                if k in known
            ],
            unknown_key=[k for k in asked if k not in known] or None,
        )

    @on(Action16.clear_cache)  # type: ignore[untyped-decorator]
    async def on_clear_cache(self) -> Any:
        await asyncio.sleep(1.0)
        return call_result16.ClearCache(status="Accepted")


class Charger201(ocpp.v201.ChargePoint):  # type: ignore[misc]
    """Answers RequestStartTransaction and GetVariables."""

    started: list[dict[str, Any]]

    @on(Action201.request_start_transaction)  # type: ignore[untyped-decorator]
    async def on_request_start(
        self, id_token: dict[str, Any], remote_start_id: int, **kw: Any
    ) -> Any:
        self.started.append({"id_token": id_token, "remote_start_id": remote_start_id, **kw})
        return call_result201.RequestStartTransaction(status="Accepted", transaction_id="tx-9")

    @on(Action201.get_variables)  # type: ignore[untyped-decorator]
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        results = []
        for item in get_variable_data:
            known = item["variable"]["name"] == "HeartbeatInterval"
            results.append(
                {
                    "attribute_status": "Accepted" if known else "UnknownVariable",
                    "component": item["component"],
                    "variable": item["variable"],
                    **({"attribute_value": "300"} if known else {}),
                }
            )
        return call_result201.GetVariables(get_variable_result=results)


def charger16(identity: str, ws: Any) -> Charger16:
    cp = Charger16(identity, ws)
    cp.started = []
    return cp


def charger201(identity: str, ws: Any) -> Charger201:
    cp = Charger201(identity, ws)
    cp.started = []
    return cp


@pytest.mark.asyncio
async def test_end_to_end_ocpp_library_1_6(server: Server) -> None:
    cmd = server.commands
    async with server.charger("CP16", V16, charger16) as cp:
        started = await cmd.remote_start("CP16", "04A2B3C4", connector_id=2)
        assert accepted(started, V16, "RemoteStartTransaction") == {
            "connectorId": 2,
            "idTag": "04A2B3C4",
        }
        assert started.reply == {"status": "Accepted"}
        assert cp.started == [{"id_tag": "04A2B3C4", "connector_id": 2}]
        config = await cmd.get_configuration("CP16")
        accepted(config, V16, "GetConfiguration")
        assert config.reply == {
            "configurationKey": [
                {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
                {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
            ]
        }
        some = await cmd.get_configuration("CP16", ["HeartbeatInterval", "Bogus"])
        assert some.status == "rejected" and some.reply is not None
        assert some.reply["unknownKey"] == ["Bogus"]
        reset = await cmd.reset("CP16")  # no handler: the library answers NotImplemented
        assert reset.status == "unsupported" and reset.reply is not None
        assert reset.reply["errorCode"] == "NotImplemented"
        slow = await cmd.send("CP16", "ClearCache", {}, timeout_s=0.2)
        assert slow.status == "timeout" and slow.sent_at is not None
        for done in (started, config, some, reset, slow):
            assert await cmd.get(done.id) == done
    async with asyncio.timeout(5):
        while "CP16" in server.server.links:
            await asyncio.sleep(0.01)
    gone = await cmd.remote_start("CP16", "04A2B3C4")
    assert gone.status == "offline"
    assert await server.db.fetchval("SELECT count(*) FROM commands") == 6


@pytest.mark.asyncio
async def test_end_to_end_ocpp_library_2_0_1(server: Server) -> None:
    cmd = server.commands
    async with server.charger("CP201", V201, charger201) as cp:
        started = await cmd.remote_start("CP201", "04A2B3C4", evse_id=1, remote_start_id=42)
        assert accepted(started, V201, "RequestStartTransaction")["remoteStartId"] == 42
        assert started.reply == {"status": "Accepted", "transactionId": "tx-9"}
        assert cp.started == [
            {
                "id_token": {"id_token": "04A2B3C4", "type": "Central"},
                "remote_start_id": 42,
                "evse_id": 1,
            }
        ]
        got = await cmd.get_variables(
            "CP201", [("OCPPCommCtrlr", "HeartbeatInterval"), ("OCPPCommCtrlr", "Bogus")]
        )
        assert got.status == "rejected"  # one variable unknown
        assert got.reply is not None
        assert [
            (r["variable"]["name"], r["attributeStatus"], r.get("attributeValue"))
            for r in got.reply["getVariableResult"]
        ] == [("HeartbeatInterval", "Accepted", "300"), ("Bogus", "UnknownVariable", None)]
        with pytest.raises(WrongVersion, match="use set_variables"):
            await cmd.change_configuration("CP201", "HeartbeatInterval", 60)
        for done in (started, got):
            assert await cmd.get(done.id) == done
