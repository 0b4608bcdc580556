"""The bridge to an upstream CSMS (gateway.ocpp.bridge) against a CSMS written with the `ocpp`
library, served by `websockets`: same-version relay, 1.6 charger <-> 2.0.1 upstream translation
both ways (boot, authorize, transactions), upstream CALLs reaching the charger and their answers
going back, an upstream that is down, slow or failing, reconnection, HTTP Basic and TLS-less
URLs. The charger side is a small in-test ChargerLink."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from ocpp.exceptions import GenericError, OCPPError  # type: ignore[import-untyped]
from ocpp.routing import on  # type: ignore[import-untyped]
from ocpp.v16 import ChargePoint as Cp16  # type: ignore[import-untyped]
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as Cp201  # type: ignore[import-untyped]
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from gateway.adapters.ocpp_ws import OcppServer
from gateway.config import OcppBridgeConfig, OcppConfig, PipelineConfig
from gateway.ocpp import messages, v16, v201
from gateway.ocpp.bridge import Bridge, BridgeLink
from gateway.ocpp.central import CentralSystem
from gateway.ocpp.link import CallOutcome
from gateway.ocpp.rpc_events import CallResult, CallTimeout
from gateway.pipeline import Pipeline
from gateway.registry import Registry
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema

V16, V201 = "ocpp1.6", "ocpp2.0.1"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


# -- the upstream CSMS (ocpp library) -----------------------------------------------------------


@dataclass
class Seen:
    """What the upstream received: (charge point id, action, snake_case kwargs)."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)  # websockets Headers (any case)
    points: dict[str, Any] = field(default_factory=dict)  # id -> the live ChargePoint
    delay_s: float = 0.0  # answer this late
    refuse: set[str] = field(default_factory=set)  # actions answered with a CALLERROR

    def actions(self) -> list[str]:
        return [action for _, action, _ in self.calls]

    def last(self, action: str) -> dict[str, Any]:
        return next(kw for _, a, kw in reversed(self.calls) if a == action)

    async def note(self, cp: Any, action: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((cp.id, action, kwargs))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if action in self.refuse:
            raise GenericError("refused by the test")


class Csms16(Cp16):  # type: ignore[misc]
    seen: Seen
    next_tx = 555

    @on("BootNotification")  # type: ignore[untyped-decorator]
    async def boot(self, **kw: Any) -> Any:
        await self.seen.note(self, "BootNotification", kw)
        return result16.BootNotification(current_time=now_iso(), interval=123, status="Accepted")

    @on("Heartbeat")  # type: ignore[untyped-decorator]
    async def heartbeat(self, **kw: Any) -> Any:
        await self.seen.note(self, "Heartbeat", kw)
        return result16.Heartbeat(current_time=now_iso())

    @on("Authorize")  # type: ignore[untyped-decorator]
    async def authorize(self, **kw: Any) -> Any:
        await self.seen.note(self, "Authorize", kw)
        return result16.Authorize(id_tag_info={"status": "Accepted", "parent_id_tag": "FLEET"})

    @on("StatusNotification")  # type: ignore[untyped-decorator]
    async def status(self, **kw: Any) -> Any:
        await self.seen.note(self, "StatusNotification", kw)
        return result16.StatusNotification()

    @on("StartTransaction")  # type: ignore[untyped-decorator]
    async def start_tx(self, **kw: Any) -> Any:
        await self.seen.note(self, "StartTransaction", kw)
        return result16.StartTransaction(
            transaction_id=self.next_tx, id_tag_info={"status": "Accepted"}
        )

    @on("MeterValues")  # type: ignore[untyped-decorator]
    async def meter_values(self, **kw: Any) -> Any:
        await self.seen.note(self, "MeterValues", kw)
        return result16.MeterValues()

    @on("StopTransaction")  # type: ignore[untyped-decorator]
    async def stop_tx(self, **kw: Any) -> Any:
        await self.seen.note(self, "StopTransaction", kw)
        return result16.StopTransaction(id_tag_info={"status": "Accepted"})


class Csms201(Cp201):  # type: ignore[misc]
    seen: Seen

    @on("BootNotification")  # type: ignore[untyped-decorator]
    async def boot(self, **kw: Any) -> Any:
        await self.seen.note(self, "BootNotification", kw)
        return result201.BootNotification(current_time=now_iso(), interval=201, status="Pending")

    @on("Heartbeat")  # type: ignore[untyped-decorator]
    async def heartbeat(self, **kw: Any) -> Any:
        await self.seen.note(self, "Heartbeat", kw)
        return result201.Heartbeat(current_time=now_iso())

    @on("Authorize")  # type: ignore[untyped-decorator]
    async def authorize(self, **kw: Any) -> Any:
        await self.seen.note(self, "Authorize", kw)
        status = "Accepted" if kw["id_token"]["id_token"] == "GOOD" else "NoCredit"
        return result201.Authorize(id_token_info={"status": status})

    @on("StatusNotification")  # type: ignore[untyped-decorator]
    async def status(self, **kw: Any) -> Any:
        await self.seen.note(self, "StatusNotification", kw)
        return result201.StatusNotification()

    @on("TransactionEvent")  # type: ignore[untyped-decorator]
    async def tx_event(self, **kw: Any) -> Any:
        await self.seen.note(self, "TransactionEvent", kw)
        if "id_token" in kw:
            return result201.TransactionEvent(id_token_info={"status": "Accepted"})
        return result201.TransactionEvent()

    @on("MeterValues")  # type: ignore[untyped-decorator]
    async def meter_values(self, **kw: Any) -> Any:
        await self.seen.note(self, "MeterValues", kw)
        return result201.MeterValues()


class Upstream:
    """A CSMS on 127.0.0.1 speaking ``version``; ``port`` stays the same across restarts."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.seen = Seen()
        self.server: Server | None = None
        self.port = 0
        self.connections: list[ServerConnection] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/csms"

    async def start(self) -> None:
        self.server = await serve(
            self._handler, "127.0.0.1", self.port, subprotocols=[Subprotocol(self.version)]
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.connections.append(ws)
        self.seen.headers.append(ws.request.headers)
        cp_id = ws.request.path.rsplit("/", 1)[-1]
        cls = Csms16 if self.version == V16 else Csms201
        cp = cls(cp_id, ws, response_timeout=5)
        cp.seen = self.seen
        self.seen.points[cp_id] = cp
        with contextlib.suppress(Exception):
            await cp.start()

    async def point(self, cp_id: str, timeout: float = 5.0) -> Any:
        """The ChargePoint object of a connected bridge link."""
        async with asyncio.timeout(timeout):
            while cp_id not in self.seen.points:
                await asyncio.sleep(0.01)
        return self.seen.points[cp_id]


@pytest_asyncio.fixture
async def up16() -> AsyncIterator[Upstream]:
    u = Upstream(V16)
    await u.start()
    yield u
    await u.stop()


@pytest_asyncio.fixture
async def up201() -> AsyncIterator[Upstream]:
    u = Upstream(V201)
    await u.start()
    yield u
    await u.stop()


# -- the charger side ---------------------------------------------------------------------------


Handler = Callable[[Any], Any]


class FakeCharger:
    """A ChargerLink whose CALLs are answered by ``handlers`` (action -> request -> response
    Struct; an action without a handler never answers: CallTimeout)."""

    def __init__(self, charger_id: str, version: str) -> None:
        self._id, self._version = charger_id, version
        self.handlers: dict[str, Handler] = {}
        self.calls: list[tuple[str, Any]] = []

    @property
    def charger_id(self) -> str:
        return self._id

    @property
    def version(self) -> str:
        return self._version

    @property
    def peer(self) -> str:
        return "127.0.0.1:50000"

    async def call(self, action: str, request: Any, timeout_s: float) -> CallOutcome:
        # What the real shell would put on the wire must be valid for the charger's version.
        messages.decode_request(self._version, action, messages.encode(request))
        self.calls.append((action, request))
        handler = self.handlers.get(action)
        if handler is None:
            await asyncio.sleep(timeout_s)
            return CallTimeout("c-1", action, request, True)
        return CallResult("c-1", action, handler(request), request)


def config(url: str, version: str = "same", **kw: Any) -> OcppBridgeConfig:
    fields: dict[str, Any] = {
        "name": "operator",
        "url": url,
        "version": version,
        "answer_timeout_s": 2.0,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
    }
    fields.update(kw)
    return msgspec.convert(fields, OcppBridgeConfig)


async def open_link(
    bridge: Bridge, charger: FakeCharger, password: bytes | None = None
) -> BridgeLink:
    link = await bridge.open(charger, password)
    assert link is not None
    return link


@contextlib.asynccontextmanager
async def bridged(
    url: str, charger: FakeCharger, version: str = "same", **kw: Any
) -> AsyncIterator[tuple[Bridge, BridgeLink]]:
    bridge = Bridge([config(url, version, **kw)])
    link = await open_link(bridge, charger)
    try:
        yield bridge, link
    finally:
        await link.close()


def req(version: str, action: str, payload: dict[str, Any]) -> Any:
    return messages.decode_request(version, action, msgspec.json.encode(payload))


BOOT16 = {"chargePointVendor": "Acme", "chargePointModel": "AC22", "chargePointSerialNumber": "S1"}


# -- tests --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_same_version_relay_with_basic_auth(
    up16: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SILKGATE_TEST_UPSTREAM_PW", "s3cret")
    charger = FakeCharger("CP/1 a", V16)
    bridge = Bridge([config(up16.url, password_env="SILKGATE_TEST_UPSTREAM_PW")])
    link = await open_link(bridge, charger, b"charger-own")
    try:
        answer = await link.relay("BootNotification", req(V16, "BootNotification", BOOT16))
        assert type(answer) is v16.BootNotificationResponse
        assert (answer.status, answer.interval) == ("Accepted", 123)
        hb = await link.relay("Heartbeat", v16.HeartbeatRequest())
        assert type(hb) is v16.HeartbeatResponse
    finally:
        await link.close()
    assert up16.seen.actions() == ["BootNotification", "Heartbeat"]
    boot = up16.seen.last("BootNotification")
    assert boot["charge_point_serial_number"] == "S1"
    # Identity percent-encoded in the path, the sub-protocol, Basic auth from the environment.
    assert up16.seen.calls[0][0] == "CP%2F1%20a"
    headers = up16.seen.headers[0]
    assert headers.get("sec-websocket-protocol") == V16
    assert headers.get("authorization") == "Basic " + base64.b64encode(b"CP/1 a:s3cret").decode()
    assert bridge.stats.relayed == 2 and bridge.stats.connects == 1


@pytest.mark.asyncio
async def test_session_password_passes_through_and_no_password_no_header(
    up201: Upstream,
) -> None:
    bridge = Bridge([config(up201.url)])
    first = await open_link(bridge, FakeCharger("A", V201), b"\x00\x01\xff")
    second = await open_link(bridge, FakeCharger("B", V201))
    try:
        assert await first.wait_connected(5) and await second.wait_connected(5)
    finally:
        await first.close()
        await second.close()
    by_path = dict(zip([h.get("Authorization") for h in up201.seen.headers], range(2), strict=True))
    assert "Basic " + base64.b64encode(b"A:\x00\x01\xff").decode() in by_path
    assert None in by_path


@pytest.mark.asyncio
async def test_charger_16_to_upstream_201(up201: Upstream) -> None:
    charger = FakeCharger("CP16", V16)
    async with bridged(up201.url, charger, V201) as (bridge, link):
        boot = await link.relay("BootNotification", req(V16, "BootNotification", BOOT16))
        assert type(boot) is v16.BootNotificationResponse
        assert (boot.status, boot.interval) == ("Pending", 201)

        auth = await link.relay("Authorize", v16.AuthorizeRequest(idTag="GOOD"))
        assert type(auth) is v16.AuthorizeResponse and auth.idTagInfo.status == "Accepted"
        bad = await link.relay("Authorize", v16.AuthorizeRequest(idTag="BROKE"))
        assert type(bad) is v16.AuthorizeResponse
        assert bad.idTagInfo.status == "Invalid"  # NoCredit has no 1.6 counterpart

        status = req(
            V16,
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Charging"},
        )
        assert type(await link.relay("StatusNotification", status)) is (
            v16.StatusNotificationResponse
        )

        start = v16.StartTransactionRequest(
            connectorId=1, idTag="GOOD", meterStart=100, timestamp=T0
        )
        started = await link.relay("StartTransaction", start)
        assert type(started) is v16.StartTransactionResponse
        assert started.idTagInfo.status == "Accepted"
        tx_id = started.transactionId
        assert isinstance(tx_id, int) and tx_id > 1_700_000_000

        values = req(
            V16,
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": tx_id,
                "meterValue": [
                    {"timestamp": "2026-11-27T09:10:00Z", "sampledValue": [{"value": "900"}]}
                ],
            },
        )
        assert type(await link.relay("MeterValues", values)) is v16.MeterValuesResponse

        stop = v16.StopTransactionRequest(
            meterStop=1500, timestamp=T0, transactionId=tx_id, reason="Remote"
        )
        stopped = await link.relay("StopTransaction", stop)
        assert type(stopped) is v16.StopTransactionResponse
        assert bridge.stats.relayed == 7

    assert up201.seen.actions() == [
        "BootNotification",
        "Authorize",
        "Authorize",
        "StatusNotification",
        "TransactionEvent",
        "TransactionEvent",
        "TransactionEvent",
    ]
    boot_kw = up201.seen.calls[0][2]
    assert boot_kw["charging_station"] == {
        "serial_number": "S1",
        "model": "AC22",
        "vendor_name": "Acme",
    }
    assert boot_kw["reason"] == "PowerUp"
    assert up201.seen.calls[3][2]["connector_status"] == "Occupied"
    events = [kw for _, a, kw in up201.seen.calls if a == "TransactionEvent"]
    assert [e["event_type"] for e in events] == ["Started", "Updated", "Ended"]
    assert [e["seq_no"] for e in events] == [0, 1, 2]
    assert {e["transaction_info"]["transaction_id"] for e in events} == {str(tx_id)}
    assert events[0]["id_token"] == {"id_token": "GOOD", "type": "ISO14443"}
    assert events[2]["transaction_info"]["stopped_reason"] == "Remote"
    assert events[2]["trigger_reason"] == "RemoteStop"


@pytest.mark.asyncio
async def test_charger_201_to_upstream_16(up16: Upstream) -> None:
    charger = FakeCharger("CP201", V201)
    async with bridged(up16.url, charger, V16) as (_, link):
        boot = await link.relay(
            "BootNotification",
            req(
                V201,
                "BootNotification",
                {"chargingStation": {"model": "DC60", "vendorName": "Acme"}, "reason": "PowerUp"},
            ),
        )
        assert type(boot) is v201.BootNotificationResponse
        assert (boot.status, boot.interval) == ("Accepted", 123)

        auth = await link.relay(
            "Authorize", req(V201, "Authorize", {"idToken": {"idToken": "T1", "type": "ISO14443"}})
        )
        assert type(auth) is v201.AuthorizeResponse
        assert auth.idTokenInfo.status == "Accepted"
        assert auth.idTokenInfo.groupIdToken == v201.IdTokenType(idToken="FLEET", type="Central")

        def event(kind: str, seq: int, **extra: Any) -> Any:
            payload = {
                "eventType": kind,
                "timestamp": "2026-11-27T09:00:00Z",
                "triggerReason": "Authorized",
                "seqNo": seq,
                "transactionInfo": {"transactionId": "uuid-1"},
                **extra,
            }
            return req(V201, "TransactionEvent", payload)

        def energy(wh: float) -> list[dict[str, Any]]:
            return [{"timestamp": "2026-11-27T09:00:00Z", "sampledValue": [{"value": wh}]}]

        started = await link.relay(
            "TransactionEvent",
            event(
                "Started",
                0,
                evse={"id": 1, "connectorId": 1},
                idToken={"idToken": "T1", "type": "ISO14443"},
                meterValue=energy(10),
            ),
        )
        assert type(started) is v201.TransactionEventResponse
        assert started.idTokenInfo == v201.IdTokenInfoType(status="Accepted")
        updated = await link.relay("TransactionEvent", event("Updated", 1, meterValue=energy(20)))
        assert type(updated) is v201.TransactionEventResponse
        ended = await link.relay(
            "TransactionEvent",
            event(
                "Ended",
                2,
                meterValue=energy(30),
                transactionInfo={"transactionId": "uuid-1", "stoppedReason": "EVDisconnected"},
            ),
        )
        assert type(ended) is v201.TransactionEventResponse

    assert up16.seen.actions() == [
        "BootNotification",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
    ]
    assert up16.seen.last("StartTransaction") == {
        "connector_id": 1,
        "id_tag": "T1",
        "meter_start": 10,
        "timestamp": "2026-11-27T09:00:00Z",
    }
    assert up16.seen.last("MeterValues")["transaction_id"] == 555
    stop = up16.seen.last("StopTransaction")
    assert (stop["transaction_id"], stop["meter_stop"], stop["reason"]) == (
        555,
        30,
        "EVDisconnected",
    )


@pytest.mark.asyncio
async def test_upstream_remote_start_16_reaches_a_201_charger(up16: Upstream) -> None:
    charger = FakeCharger("RS1", V201)
    charger.handlers["RequestStartTransaction"] = lambda r: v201.RequestStartTransactionResponse(
        status="Accepted"
    )
    async with bridged(up16.url, charger, V16) as (bridge, _):
        cp = await up16.point("RS1")
        answer = await cp.call(call16.RemoteStartTransaction(id_tag="APP", connector_id=2))
        assert answer.status == "Accepted"
        # No translation: NotSupported, without bothering the charger.
        with pytest.raises(OCPPError) as err:
            await cp.call(call16.GetDiagnostics(location="ftp://x"), suppress=False)
        assert type(err.value).__name__ == "NotSupportedError"
    action, request = charger.calls[0]
    assert action == "RequestStartTransaction"
    assert (request.evseId, request.idToken.idToken, request.idToken.type) == (2, "APP", "Central")
    assert len(charger.calls) == 1
    assert bridge.stats.upstream_calls == 2 and bridge.stats.upstream_calls_failed == 1


@pytest.mark.asyncio
async def test_upstream_remote_start_201_reaches_a_16_charger_and_tags_the_start(
    up201: Upstream,
) -> None:
    charger = FakeCharger("RS2", V16)
    charger.handlers["RemoteStartTransaction"] = lambda r: v16.RemoteStartTransactionResponse(
        status="Accepted"
    )
    async with bridged(up201.url, charger, V201) as (_, link):
        cp = await up201.point("RS2")
        answer = await cp.call(
            call201.RequestStartTransaction(
                id_token={"id_token": "APP", "type": "Central"}, remote_start_id=42, evse_id=1
            )
        )
        assert answer.status == "Accepted"
        assert charger.calls[0][0] == "RemoteStartTransaction"
        start = v16.StartTransactionRequest(connectorId=1, idTag="APP", meterStart=0, timestamp=T0)
        assert await link.relay("StartTransaction", start) is not None
    started = up201.seen.last("TransactionEvent")
    assert started["trigger_reason"] == "RemoteStart"
    assert started["transaction_info"]["remote_start_id"] == 42
    assert started["id_token"] == {"id_token": "APP", "type": "Central"}


@pytest.mark.asyncio
async def test_upstream_call_same_version_and_charger_failures(up16: Upstream) -> None:
    charger = FakeCharger("RS3", V16)
    charger.handlers["RemoteStartTransaction"] = lambda r: v16.RemoteStartTransactionResponse(
        status="Rejected"
    )
    async with bridged(up16.url, charger, answer_timeout_s=0.3) as (bridge, _):
        cp = await up16.point("RS3")
        answer = await cp.call(call16.RemoteStartTransaction(id_tag="APP"))
        assert answer.status == "Rejected"
        # The charger does not answer in time: the upstream gets a CALLERROR.
        with pytest.raises(OCPPError) as err:
            await cp.call(call16.Reset(type="Soft"), suppress=False)
        assert type(err.value).__name__ == "GenericError"
    assert [a for a, _ in charger.calls] == ["RemoteStartTransaction", "Reset"]
    assert bridge.stats.upstream_calls_failed == 1


@pytest.mark.asyncio
async def test_upstream_down_relay_returns_none_quickly() -> None:
    dead = Upstream(V16)
    await dead.start()
    url = dead.url
    await dead.stop()  # nothing listens on that port now
    charger = FakeCharger("DOWN", V16)
    async with bridged(url, charger, answer_timeout_s=5.0) as (bridge, link):
        await asyncio.sleep(0.05)  # the first attempt is refused at once
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await link.relay("Heartbeat", v16.HeartbeatRequest()) is None
        assert loop.time() - began < 0.5
        assert not link.connected
    assert bridge.stats.upstream_down >= 1 and bridge.stats.not_relayed == 1
    assert bridge.stats.connect_failures >= 1


@pytest.mark.asyncio
async def test_upstream_slow_or_refusing_gives_none(up16: Upstream) -> None:
    charger = FakeCharger("SLOW", V16)
    async with bridged(up16.url, charger, answer_timeout_s=0.3) as (bridge, link):
        up16.seen.delay_s = 1.0
        assert await link.relay("Heartbeat", v16.HeartbeatRequest()) is None
        assert bridge.stats.upstream_timeouts == 1
        up16.seen.delay_s = 0.0
        up16.seen.refuse.add("Authorize")
        await asyncio.sleep(0.8)  # the late answer arrives and is ignored
        assert await link.relay("Authorize", v16.AuthorizeRequest(idTag="X")) is None
        assert bridge.stats.upstream_errors == 1
        hb = await link.relay("Heartbeat", v16.HeartbeatRequest())
        assert type(hb) is v16.HeartbeatResponse  # the link is still usable


@pytest.mark.asyncio
async def test_untranslatable_is_not_relayed(up201: Upstream) -> None:
    charger = FakeCharger("UT", V16)
    async with bridged(up201.url, charger, V201) as (bridge, link):
        status = req(
            V16,
            "StatusNotification",
            {"connectorId": 0, "errorCode": "NoError", "status": "Available"},
        )
        assert await link.relay("StatusNotification", status) is None
        assert (
            await link.relay(
                "DiagnosticsStatusNotification",
                v16.DiagnosticsStatusNotificationRequest(status="Idle"),
            )
            is None
        )
    assert bridge.stats.untranslatable == 2
    assert up201.seen.calls == []


@pytest.mark.asyncio
async def test_reconnects_after_the_upstream_restarts(up16: Upstream) -> None:
    charger = FakeCharger("RC", V16)
    async with bridged(up16.url, charger) as (bridge, link):
        assert await link.relay("Heartbeat", v16.HeartbeatRequest()) is not None
        await up16.stop()
        async with asyncio.timeout(5):
            while link.connected:
                await asyncio.sleep(0.01)
        assert await link.relay("Heartbeat", v16.HeartbeatRequest()) is None
        await up16.start()  # same port
        assert await link.wait_connected(5)
        assert await link.relay("Heartbeat", v16.HeartbeatRequest()) is not None
    assert bridge.stats.connects == 2
    assert up16.seen.actions() == ["Heartbeat", "Heartbeat"]


@pytest.mark.asyncio
async def test_upstream_refusing_the_subprotocol_is_down(up201: Upstream) -> None:
    charger = FakeCharger("SP", V16)
    async with bridged(up201.url, charger) as (bridge, link):  # offers ocpp1.6 only
        assert await link.relay("Heartbeat", v16.HeartbeatRequest()) is None
    assert bridge.stats.connects == 0 and bridge.stats.connect_failures >= 1


@pytest.mark.asyncio
async def test_for_charger_and_unbridged_chargers() -> None:
    bridge = Bridge(
        [
            config("ws://127.0.0.1:1/a", chargers=["CP1"]),
            config("ws://127.0.0.1:1/b", chargers=["*"]),
        ]
    )
    assert bridge.for_charger("CP1") is bridge.cfgs[0]
    assert bridge.for_charger("other") is bridge.cfgs[1]
    only = Bridge([config("ws://127.0.0.1:1/a", chargers=["CP1"])])
    assert await only.open(FakeCharger("CP2", V16)) is None
    assert only.state("CP1") is only.state("CP1")


# -- end to end: ocpp-library charger -> silkgate's endpoint -> ocpp-library CSMS ---------------


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_ocppb")


class Charger16(Cp16):  # type: ignore[misc]
    remote_starts: list[dict[str, Any]]

    @on("RemoteStartTransaction")  # type: ignore[untyped-decorator]
    async def remote_start(self, **kw: Any) -> Any:
        self.remote_starts.append(kw)
        return result16.RemoteStartTransaction(status="Accepted")


@pytest.mark.asyncio
async def test_end_to_end_through_the_endpoint(
    schema_dsn: str, tmp_path: Path, up201: Upstream
) -> None:
    cfg = OcppConfig(
        enabled=True,
        host="127.0.0.1",
        port=0,
        security_profile=0,
        unknown_chargers="accept",
        bridge=[config(up201.url, V201)],
    )
    pool = await create_pool(schema_dsn, max_size=4, timeout=10)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="never"))
    pipeline = Pipeline(StoreWriter(pool), spool, PipelineConfig(batch_rows=500, batch_age_ms=5))
    pipeline.start()
    registry = Registry(pool, ttl_s=5)
    bridge = Bridge(cfg.bridge)
    server = OcppServer(cfg, CentralSystem(cfg, pool, registry), pipeline, registry, bridge=bridge)
    await server.start()
    try:
        url = f"ws://127.0.0.1:{server.port}{cfg.path}/E2E-1"
        async with connect(url, subprotocols=[Subprotocol(V16)]) as ws:
            cp = Charger16("E2E-1", ws, response_timeout=5)
            cp.remote_starts = []
            task = asyncio.create_task(cp.start())
            try:
                boot = await cp.call(
                    call16.BootNotification(charge_point_model="M", charge_point_vendor="V")
                )
                assert (boot.status, boot.interval) == ("Pending", 201)  # the upstream's answer
                started = await cp.call(
                    call16.StartTransaction(
                        connector_id=1, id_tag="GOOD", meter_start=10, timestamp=now_iso()
                    )
                )
                assert started.transaction_id > 1_700_000_000  # the bridge's id
                upstream = await up201.point("E2E-1")
                answer = await upstream.call(
                    call201.RequestStartTransaction(
                        id_token={"id_token": "APP", "type": "Central"}, remote_start_id=7
                    )
                )
                assert answer.status == "Accepted"
                assert cp.remote_starts == [{"id_tag": "APP"}]
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        assert [a for _, a, _ in up201.seen.calls] == ["BootNotification", "TransactionEvent"]
        event = up201.seen.last("TransactionEvent")
        assert event["transaction_info"]["transaction_id"] == str(started.transaction_id)
        # The central system recorded the transaction under the id the charger was given.
        async with asyncio.timeout(5):
            while not await pool.fetchval(
                "SELECT count(*) FROM charging_sessions WHERE charger_id = 'E2E-1'"
                " AND transaction_id = $1",
                str(started.transaction_id),
            ):
                await asyncio.sleep(0.05)
        assert bridge.stats.relayed == 2 and bridge.stats.upstream_calls == 1
    finally:
        await server.stop(timeout=5)
        await pipeline.close(timeout=10)
        await spool.close()
        await pool.close()
