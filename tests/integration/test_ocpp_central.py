"""The OCPP central system's logic (gateway.ocpp.central) against real PostgreSQL/TimescaleDB:
boot policies, the local authorization list, 1.6 transaction ids, 2.0.1 seqNo gaps (live and
recovered from the stored records after a restart), DataTransfer and the registration gate."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio

from gateway.config import OcppConfig, PipelineConfig
from gateway.ocpp import v16
from gateway.ocpp.central import CallRefused, CentralSystem, ChargerSession, Handled
from gateway.ocpp.messages import decode_request
from gateway.pipeline import Pipeline
from gateway.records import ChargerEvent, ChargingSession
from gateway.registry import Device, Registry
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CFG = OcppConfig(
    unknown_chargers="accept",
    unknown_boot_status="Pending",
    heartbeat_interval_s=300,
    boot_retry_interval_s=60,
)
_TABLES = (
    "charger_events, charging_sessions, meter_values, charger_status, ocpp_transactions, "
    "id_tokens, chargers, operators"
)


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_ocppc")


@dataclasses.dataclass
class Rig:
    pool: asyncpg.Pool
    db: asyncpg.Connection
    registry: Registry
    pipeline: Pipeline

    def central(self, cfg: OcppConfig = CFG, **kwargs: Any) -> CentralSystem:
        return CentralSystem(cfg, self.pool, self.registry, **kwargs)

    async def session(self, charger_id: str, version: str) -> ChargerSession:
        device = await self.registry.charger(charger_id)
        return ChargerSession(charger_id, version, "127.0.0.1:5000", device)

    async def store(self, handled: Handled) -> None:
        fut = await self.pipeline.submit(handled.records)
        await fut

    async def token(
        self,
        id_token: str,
        *,
        operator: str | None = None,
        token_type: str | None = None,
        status: str = "Accepted",
        expires_at: datetime | None = None,
        parent: str | None = None,
    ) -> None:
        await self.db.execute(
            "INSERT INTO id_tokens (id_token, operator_id, token_type, status, expires_at,"
            " parent_id_tag) VALUES ($1, $2, $3, $4, $5, $6)",
            id_token,
            operator,
            token_type,
            status,
            expires_at,
            parent,
        )


@pytest_asyncio.fixture
async def rig(schema_dsn: str, tmp_path: Path) -> AsyncIterator[Rig]:
    db = await asyncpg.connect(schema_dsn)
    await db.execute(f"TRUNCATE {_TABLES} CASCADE")
    await db.execute(
        "INSERT INTO operators (operator_id, name) VALUES ('op1', 'One'), ('op2', 'Two')"
    )
    await db.execute(
        "INSERT INTO chargers (charger_id, operator_id, protocol) VALUES"
        " ('CP16', 'op1', 'ocpp1.6'), ('CP201', 'op1', 'ocpp2.0.1'), ('CPX', 'op2', 'ocpp1.6')"
    )
    pool = await create_pool(schema_dsn, max_size=4, timeout=10)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="never"))
    pipeline = Pipeline(StoreWriter(pool), spool, PipelineConfig(batch_rows=2000, batch_age_ms=5))
    pipeline.start()
    try:
        yield Rig(pool, db, Registry(pool, ttl_s=5), pipeline)
    finally:
        await pipeline.close(timeout=10)
        await spool.close()
        await pool.close()
        await db.close()


def req(version: str, action: str, payload: dict[str, Any]) -> Any:
    return decode_request(version, action, msgspec.json.encode(payload))


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def boot16() -> Any:
    return req(
        V16,
        "BootNotification",
        {
            "chargePointVendor": "VendorX",
            "chargePointModel": "Model16",
            "chargePointSerialNumber": "SN-16",
            "firmwareVersion": "1.2.3",
        },
    )


def boot201() -> Any:
    return req(
        V201,
        "BootNotification",
        {
            "chargingStation": {
                "vendorName": "VendorY",
                "model": "Model201",
                "serialNumber": "SN-201",
                "firmwareVersion": "4.5",
            },
            "reason": "PowerUp",
        },
    )


def events(handled: Handled, kind: str) -> list[ChargerEvent]:
    return [r for r in handled.records if isinstance(r, ChargerEvent) and r.event == kind]


def sessions(handled: Handled) -> list[ChargingSession]:
    return [r for r in handled.records if isinstance(r, ChargingSession)]


async def dead_pool() -> asyncpg.Pool:
    """A pool to a port nobody listens on: every query fails like a database outage."""
    return await asyncpg.create_pool("postgresql://x:y@127.0.0.1:1/none", min_size=0)


# ------------------------------------------------------------------------------ boot


@pytest.mark.asyncio
async def test_boot_known_unknown_and_stored_data(rig: Rig) -> None:
    central = rig.central()
    s16 = await rig.session("CP16", V16)
    now = datetime.now(UTC)
    done = await central.handle(s16, "BootNotification", boot16(), now)
    assert done.response.status == "Accepted" and done.response.interval == 300  # type: ignore[attr-defined]
    assert abs((done.response.currentTime - now).total_seconds()) < 5  # type: ignore[attr-defined]
    assert done.durable and s16.boot_status == "Accepted"
    boot = events(done, "boot")
    assert len(boot) == 1 and boot[0].charger_id == "CP16"
    row: Any = await rig.db.fetchrow("SELECT * FROM chargers WHERE charger_id = 'CP16'")
    assert (row["vendor"], row["model"], row["serial_number"], row["firmware_version"]) == (
        "VendorX",
        "Model16",
        "SN-16",
        "1.2.3",
    )

    s201 = await rig.session("CP201", V201)
    done = await central.handle(s201, "BootNotification", boot201(), now)
    assert (done.response.status, done.response.interval) == ("Accepted", 300)  # type: ignore[attr-defined]
    row = await rig.db.fetchrow("SELECT * FROM chargers WHERE charger_id = 'CP201'")
    assert (row["vendor"], row["model"], row["serial_number"], row["protocol"]) == (
        "VendorY",
        "Model201",
        "SN-201",
        "ocpp2.0.1",
    )

    # unknown chargers: the configured status; the retry interval unless accepted
    for policy, interval in (("Pending", 60), ("Rejected", 60), ("Accepted", 300)):
        central = rig.central(dataclasses_replace(CFG, unknown_boot_status=policy))
        for version, boot in ((V16, boot16()), (V201, boot201())):
            s = await rig.session("NEW-1", version)
            assert not s.device.known
            done = await central.handle(s, "BootNotification", boot, now)
            assert (done.response.status, done.response.interval) == (policy, interval)  # type: ignore[attr-defined]
            assert s.boot_status == policy
    assert await rig.db.fetchval("SELECT count(*) FROM chargers WHERE charger_id = 'NEW-1'") == 0


def dataclasses_replace(cfg: OcppConfig, **changes: Any) -> OcppConfig:
    return msgspec.structs.replace(cfg, **changes)


@pytest.mark.asyncio
async def test_boot_unverified_is_pending_and_store_failure_is_not_fatal(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await dead_pool()
    try:
        central = CentralSystem(CFG, pool, Registry(pool))
        s = ChargerSession("CP16", V16, "p", Device(device_id="CP16", known=False, verified=False))
        done = await central.handle(s, "BootNotification", boot16(), T0)
        assert (done.response.status, done.response.interval) == ("Pending", 60)  # type: ignore[attr-defined]
        # known charger, database away: Accepted all the same, the failed UPDATE only logged
        known = ChargerSession("CP16", V201, "p", Device(device_id="CP16", known=True))
        with caplog.at_level(logging.WARNING, logger="gateway.ocpp.central"):
            done = await central.handle(known, "BootNotification", boot201(), T0)
        assert done.response.status == "Accepted"  # type: ignore[attr-defined]
        assert "boot data not stored" in caplog.text
        # database back: the boot asks the registry again and accepts the known charger
        live = rig.central()
        s.device = Device(device_id="CP16", known=False, verified=False)
        done = await live.handle(s, "BootNotification", boot16(), T0)
        assert done.response.status == "Accepted" and s.device.known  # type: ignore[attr-defined]
    finally:
        await pool.close()


# ------------------------------------------------------------------------------ registration gate


@pytest.mark.asyncio
async def test_not_accepted_chargers_get_security_error(rig: Rig) -> None:
    status16 = req(
        V16, "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    )
    status201 = req(
        V201,
        "StatusNotification",
        {"timestamp": ts(0), "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    )
    report = req(V201, "NotifyReport", {"requestId": 1, "generatedAt": ts(0), "seqNo": 0})
    heartbeat201 = req(V201, "Heartbeat", {})

    rejected = rig.central(dataclasses_replace(CFG, unknown_boot_status="Rejected"))
    for version, boot, status in ((V16, boot16(), status16), (V201, boot201(), status201)):
        s = await rig.session("NEW-2", version)
        # not booted yet: an unknown charger counts as booted with the configured status
        with pytest.raises(CallRefused) as refused:
            await rejected.handle(s, "StatusNotification", status, T0)
        assert refused.value.code == "SecurityError"
        done = await rejected.handle(s, "BootNotification", boot, T0)
        assert done.response.status == "Rejected"  # type: ignore[attr-defined]
        with pytest.raises(CallRefused, match="Rejected"):
            await rejected.handle(s, "StatusNotification", status, T0)
        # a new connection of the same charger: still rejected until it boots again
        again = await rig.session("NEW-2", version)
        rejected.connected(again, T0)
        assert again.boot_status == "Rejected"
        with pytest.raises(CallRefused):
            await rejected.handle(again, "StatusNotification", status, T0)
        # the upstream answered it (bridge): not ours to refuse
        relayed = await rejected.handle(
            again, "Heartbeat", req(version, "Heartbeat", {}), T0, answer=done.response
        )
        assert relayed.response is done.response

    pending = rig.central()  # unknown_boot_status = Pending
    s = await rig.session("NEW-3", V201)
    await pending.handle(s, "BootNotification", boot201(), T0)
    assert s.boot_status == "Pending"
    with pytest.raises(CallRefused) as refused:
        await pending.handle(s, "StatusNotification", status201, T0)
    assert refused.value.code == "SecurityError"
    # NotifyReport answers GetReport / GetBaseReport: allowed while Pending (B02.FR.09)
    done = await pending.handle(s, "NotifyReport", report, T0)
    assert done.durable
    # a TriggerMessage'd action goes through once
    s.triggered.add("Heartbeat")
    assert (await pending.handle(s, "Heartbeat", heartbeat201, T0)).response.currentTime == T0  # type: ignore[attr-defined]
    with pytest.raises(CallRefused):
        await pending.handle(s, "Heartbeat", heartbeat201, T0)
    # 1.6 Pending: the spec asks nothing of the central system: answered
    s16 = await rig.session("NEW-3", V16)
    await pending.handle(s16, "BootNotification", boot16(), T0)
    done = await pending.handle(s16, "StatusNotification", status16, T0)
    assert done.durable and done.records

    # a known charger after a gateway restart, not booted: accepted
    s = await rig.session("CP201", V201)
    fresh = rig.central()
    fresh.connected(s, T0)
    assert s.boot_status is None
    assert (await fresh.handle(s, "StatusNotification", status201, T0)).records


# ------------------------------------------------------------------------------ simple actions


@pytest.mark.asyncio
async def test_heartbeat_connect_notsupported_and_data_transfer(rig: Rig) -> None:
    central = rig.central(data_transfer_vendors=["com.example"])
    s = await rig.session("CP16", V16)
    hb = await central.handle(s, "Heartbeat", req(V16, "Heartbeat", {}), T0)
    assert hb.response.currentTime == T0 and not hb.durable and hb.records == []  # type: ignore[attr-defined]
    [connect] = central.connected(s, T0)
    [disconnect] = central.disconnected(s, T0 + timedelta(seconds=1), "closed 1000")
    assert isinstance(connect, ChargerEvent) and isinstance(disconnect, ChargerEvent)
    assert connect.detail == {"peer": "127.0.0.1:5000", "known": True, "verified": True}
    assert (connect.event, disconnect.event) == ("connect", "disconnect")
    assert disconnect.detail is not None and disconnect.detail["reason"] == "closed 1000"

    with pytest.raises(CallRefused) as refused:
        await central.handle(s, "SignCertificate", req(V16, "SignCertificate", {"csr": "x"}), T0)
    assert refused.value.code == "NotSupported"
    assert "SignCertificate" not in central.supported(V16)
    assert "SignCertificate" in central.supported(V16, bridged=True)
    signed = req(V16, "SignCertificate", {"csr": "x"})  # any Struct stands in for the answer
    relayed = await central.handle(s, "SignCertificate", signed, T0, answer=signed)
    assert relayed.response is signed
    assert "Heartbeat" in central.supported(V201) and "NotifyEvent" in central.supported(V201)
    assert "Reset" not in central.supported(V16)

    for n, version in enumerate((V16, V201)):
        s = await rig.session("CP16", version)
        at = T0 + timedelta(minutes=n)  # the two versions' events must differ in their keys
        unknown = await central.handle(
            s,
            "DataTransfer",
            req(version, "DataTransfer", {"vendorId": "com.other", "data": "x"}),
            at,
        )
        assert unknown.response.status == "UnknownVendorId"  # type: ignore[attr-defined]
        known = await central.handle(
            s,
            "DataTransfer",
            req(
                version, "DataTransfer", {"vendorId": "com.example", "messageId": "m", "data": "y"}
            ),
            at + timedelta(seconds=1),
        )
        assert known.response.status == "Accepted" and known.durable  # type: ignore[attr-defined]
        assert events(known, "data_transfer"), known.records
        await rig.store(unknown)
        await rig.store(known)
    assert (
        await rig.db.fetchval("SELECT count(*) FROM charger_events WHERE event = 'data_transfer'")
        == 4
    )

    s = await rig.session("CP201", V201)
    needs = req(
        V201,
        "NotifyEVChargingNeeds",
        {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "DC"}},
    )
    assert (
        await central.handle(s, "NotifyEVChargingNeeds", needs, T0)
    ).response.status == "Rejected"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ Authorize


@pytest.mark.asyncio
async def test_authorize_local_list(rig: Rig) -> None:
    later = datetime.now(UTC) + timedelta(days=30)
    await rig.token("GOOD", operator="op1", expires_at=later, parent="GROUP1")
    await rig.token("ANYOP")
    await rig.token("OLD", expires_at=datetime.now(UTC) - timedelta(days=1))
    await rig.token("BLOCKED", status="Blocked")
    await rig.token("OTHER", operator="op2")
    await rig.token("RFID", token_type="ISO14443")
    central = rig.central()
    now = datetime.now(UTC)

    s16 = await rig.session("CP16", V16)  # operator op1

    async def a16(tag: str, c: CentralSystem = central) -> Any:
        done = await c.handle(s16, "Authorize", req(V16, "Authorize", {"idTag": tag}), now)
        assert not done.durable and done.records == []
        return done.response.idTagInfo  # type: ignore[attr-defined]

    good = await a16("GOOD")
    assert (good.status, good.parentIdTag) == ("Accepted", "GROUP1")
    assert abs((good.expiryDate - later).total_seconds()) < 0.001
    assert (await a16("ANYOP")).status == "Accepted"
    assert (await a16("OLD")).status == "Expired"
    assert (await a16("BLOCKED")).status == "Blocked"
    assert (await a16("OTHER")).status == "Invalid"  # another operator's token
    assert (await a16("RFID")).status == "Accepted"  # 1.6 idTags have no type
    assert (await a16("NOPE")).status == "Invalid"
    open_site = rig.central(dataclasses_replace(CFG, unknown_id_tokens="Accepted"))
    assert (await a16("NOPE", open_site)).status == "Accepted"

    s201 = await rig.session("CP201", V201)

    async def a201(token: str, kind: str = "ISO14443") -> Any:
        payload = {"idToken": {"idToken": token, "type": kind}}
        done = await central.handle(s201, "Authorize", req(V201, "Authorize", payload), now)
        return done.response.idTokenInfo  # type: ignore[attr-defined]

    info = await a201("GOOD")
    assert info.status == "Accepted" and info.groupIdToken.idToken == "GROUP1"
    assert abs((info.cacheExpiryDateTime - later).total_seconds()) < 0.001
    assert (await a201("OLD")).status == "Expired"
    assert (await a201("BLOCKED")).status == "Blocked"
    assert (await a201("OTHER")).status == "NotAtThisLocation"
    assert (await a201("RFID")).status == "Accepted"
    assert (await a201("RFID", "KeyCode")).status == "Invalid"  # listed with another type
    assert (await a201("ANYOP", "KeyCode")).status == "Accepted"  # type NULL: any
    assert (await a201("NOPE")).status == "Invalid"

    # the charger of op2 sees it the other way round
    sx = await rig.session("CPX", V16)
    done = await central.handle(sx, "Authorize", req(V16, "Authorize", {"idTag": "OTHER"}), now)
    assert done.response.idTagInfo.status == "Accepted"  # type: ignore[attr-defined]
    done = await central.handle(sx, "Authorize", req(V16, "Authorize", {"idTag": "GOOD"}), now)
    assert done.response.idTagInfo.status == "Invalid"  # type: ignore[attr-defined]

    # cached: a change shows after invalidate (or the TTL)
    await rig.db.execute("UPDATE id_tokens SET status = 'Blocked' WHERE id_token = 'ANYOP'")
    assert (await a16("ANYOP")).status == "Accepted"
    central.id_tokens.invalidate("ANYOP")
    assert (await a16("ANYOP")).status == "Blocked"

    # pass-through: the upstream's answer is the answer
    upstream = req(V16, "Authorize", {"idTag": "x"})  # any Struct stands in for the response
    done = await central.handle(
        s16, "Authorize", req(V16, "Authorize", {"idTag": "NOPE"}), now, answer=upstream
    )
    assert done.response is upstream


# ------------------------------------------------------------------------------ 1.6 transactions


@pytest.mark.asyncio
async def test_start_retry_same_id_and_stop_energy(rig: Rig) -> None:
    await rig.token("TAG1", operator="op1")
    central = rig.central(dataclasses_replace(CFG, id_tags="plain"))
    s = await rig.session("CP16", V16)
    start = req(
        V16,
        "StartTransaction",
        {"connectorId": 1, "idTag": "TAG1", "meterStart": 1500, "timestamp": ts(0)},
    )
    first = await central.handle(s, "StartTransaction", start, T0)
    tid = first.response.transactionId  # type: ignore[attr-defined]
    assert first.response.idTagInfo.status == "Accepted" and first.durable  # type: ignore[attr-defined]
    again = await central.handle(s, "StartTransaction", start, T0 + timedelta(minutes=5))
    assert again.response.transactionId == tid  # type: ignore[attr-defined]
    other = req(
        V16,
        "StartTransaction",
        {"connectorId": 2, "idTag": "NOPE", "meterStart": 0, "timestamp": ts(0)},
    )
    second = await central.handle(s, "StartTransaction", other, T0)
    assert second.response.transactionId != tid  # type: ignore[attr-defined]
    assert second.response.idTagInfo.status == "Invalid"  # type: ignore[attr-defined]
    [started] = [r for r in sessions(first) if r.event == "start"]
    assert started.transaction_id == str(tid)
    await rig.store(first)
    await rig.store(again)

    stop = req(
        V16,
        "StopTransaction",
        {
            "transactionId": tid,
            "meterStop": 9500,
            "timestamp": ts(3600),
            "idTag": "TAG1",
            "reason": "Local",
        },
    )
    done = await central.handle(s, "StopTransaction", stop, T0 + timedelta(hours=1))
    assert done.response.idTagInfo.status == "Accepted"  # type: ignore[attr-defined]
    [stopped] = [r for r in sessions(done) if r.event == "stop"]
    assert stopped.energy_wh == 8000 and stopped.meter_start_wh == 1500
    assert stopped.started_at == T0 and stopped.connector_id == 1
    row: Any = await rig.db.fetchrow(
        "SELECT * FROM ocpp_transactions WHERE transaction_id = $1", tid
    )
    assert row["stopped_at"] == T0 + timedelta(hours=1) and row["id_tag"] == "TAG1"
    await rig.store(done)

    # another charger cannot stop it; an unknown id is still recorded and answered
    sx = await rig.session("CPX", V16)
    stray = req(
        V16, "StopTransaction", {"transactionId": tid, "meterStop": 1, "timestamp": ts(7200)}
    )
    done = await central.handle(sx, "StopTransaction", stray, T0)
    assert msgspec.json.encode(done.response) == b"{}"
    [stopped] = [r for r in sessions(done) if r.event == "stop"]
    assert stopped.energy_wh is None and stopped.charger_id == "CPX"

    # database away: the transaction id cannot be handed out -> the error propagates
    pool = await dead_pool()
    try:
        down = CentralSystem(CFG, pool, rig.registry)
        with pytest.raises((OSError, asyncpg.PostgresError)):
            await down.handle(s, "StartTransaction", other, T0)
    finally:
        await pool.close()

    # bridge: the upstream's transaction id, kept in memory for the stop's energy
    upstream = msgspec.convert(
        {"idTagInfo": {"status": "Accepted"}, "transactionId": 777001}, type=type(first.response)
    )
    start3 = req(
        V16,
        "StartTransaction",
        {"connectorId": 3, "idTag": "X", "meterStart": 100, "timestamp": ts(10)},
    )
    done = await central.handle(s, "StartTransaction", start3, T0, answer=upstream)
    assert done.response is upstream
    assert (
        await rig.db.fetchval("SELECT count(*) FROM ocpp_transactions WHERE connector_id = 3") == 0
    )
    stop3 = req(
        V16, "StopTransaction", {"transactionId": 777001, "meterStop": 600, "timestamp": ts(20)}
    )
    done = await central.handle(
        s, "StopTransaction", stop3, T0, answer=v16.StopTransactionResponse()
    )
    [stopped] = [r for r in sessions(done) if r.event == "stop"]
    assert stopped.energy_wh == 500


# ------------------------------------------------------------------------ 2.0.1 TransactionEvent


def tx_event(
    event_type: str,
    seq: int,
    tid: str,
    *,
    at: float,
    energy_wh: float | None = None,
    token: str | None = None,
    evse: bool = False,
    reason: str | None = None,
) -> Any:
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": ts(at),
        "triggerReason": {"Started": "CablePluggedIn", "Ended": "EVDeparted"}.get(
            event_type, "MeterValuePeriodic"
        ),
        "seqNo": seq,
        "transactionInfo": {"transactionId": tid},
    }
    if reason:
        payload["transactionInfo"]["stoppedReason"] = reason
    if energy_wh is not None:
        payload["meterValue"] = [
            {
                "timestamp": ts(at),
                "sampledValue": [
                    {
                        "value": energy_wh / 1000,
                        "measurand": "Energy.Active.Import.Register",
                        "unitOfMeasure": {"unit": "kWh"},
                    }
                ],
            }
        ]
    if token:
        payload["idToken"] = {"idToken": token, "type": "ISO14443"}
    if evse:
        payload["evse"] = {"id": 1, "connectorId": 1}
    return req(V201, "TransactionEvent", payload)


@pytest.mark.asyncio
async def test_transaction_event_gap_retry_and_id_token(rig: Rig) -> None:
    await rig.token("RFID1", operator="op1")
    central = rig.central()
    s = await rig.session("CP201", V201)

    started = await central.handle(
        s,
        "TransactionEvent",
        tx_event("Started", 0, "tx-a", at=0, energy_wh=1000, token="RFID1", evse=True),
        T0,
    )
    assert started.response.idTokenInfo.status == "Accepted" and started.durable  # type: ignore[attr-defined]
    assert not events(started, "seq_gap")
    upd1 = tx_event("Updated", 1, "tx-a", at=60, energy_wh=2000)
    done = await central.handle(s, "TransactionEvent", upd1, T0)
    assert msgspec.json.encode(done.response) == b"{}" and not events(done, "seq_gap")
    # seqNo 2 lost
    done = await central.handle(
        s, "TransactionEvent", tx_event("Updated", 3, "tx-a", at=180, energy_wh=4000), T0
    )
    [gap] = events(done, "seq_gap")
    assert gap.key == "tx-a:3" and gap.time == T0 + timedelta(seconds=180)
    assert gap.detail is not None
    assert (gap.detail["expected"], gap.detail["received"], gap.detail["missing"]) == (2, 3, 1)
    # a retry from the offline queue: no gap, its records again (stored once by their keys)
    retry = await central.handle(s, "TransactionEvent", upd1, T0)
    assert not events(retry, "seq_gap") and sessions(retry)
    ended = await central.handle(
        s,
        "TransactionEvent",
        tx_event("Ended", 4, "tx-a", at=240, energy_wh=5000, reason="EVDisconnected"),
        T0,
    )
    assert not events(ended, "seq_gap")
    [stop] = [r for r in sessions(ended) if r.event == "stop"]
    assert stop.energy_wh == 4000 and stop.evse_id == 1

    # first sight of a transaction in the middle: the events from 0 on were missed
    done = await central.handle(s, "TransactionEvent", tx_event("Updated", 2, "tx-d", at=5), T0)
    [gap] = events(done, "seq_gap")
    assert (gap.detail or {})["missing"] == 2
    # per-transaction numbering, two EVSEs at once: each transaction counts on its own
    for seq, tid in ((0, "tx-e"), (0, "tx-f"), (1, "tx-f"), (2, "tx-e")):
        kind = "Started" if seq == 0 else "Updated"
        done = await central.handle(s, "TransactionEvent", tx_event(kind, seq, tid, at=seq), T0)
    [gap] = events(done, "seq_gap")  # tx-e's 1 is missing, whatever tx-f used
    assert gap.key == "tx-e:2" and (gap.detail or {})["missing"] == 1
    # a station-wide counter interleaving two EVSEs' transactions is no gap
    for seq, tid in ((10, "tx-b"), (11, "tx-c"), (12, "tx-b"), (13, "tx-c"), (14, "tx-b")):
        kind = "Started" if seq in (10, 11) else "Updated"
        done = await central.handle(s, "TransactionEvent", tx_event(kind, seq, tid, at=seq), T0)
        assert not events(done, "seq_gap"), (seq, tid)
    # learnt: this charger counts station-wide, so a transaction first seen in the middle
    # has no knowable start
    done = await central.handle(s, "TransactionEvent", tx_event("Updated", 40, "tx-g", at=9), T0)
    assert not events(done, "seq_gap")


@pytest.mark.asyncio
async def test_transaction_event_seq_recovered_after_restart(rig: Rig) -> None:
    central = rig.central()
    s = await rig.session("CP201", V201)
    for handled in (
        await central.handle(
            s,
            "TransactionEvent",
            tx_event("Started", 0, "tx-r", at=0, energy_wh=10_000, evse=True),
            T0,
        ),
        await central.handle(
            s, "TransactionEvent", tx_event("Updated", 1, "tx-r", at=60, energy_wh=11_000), T0
        ),
    ):
        await rig.store(handled)
    stored = await rig.db.fetchval(
        "SELECT max((extra->>'seq_no')::int) FROM charging_sessions WHERE transaction_id = 'tx-r'"
    )
    assert stored == 1

    restarted = rig.central()  # a new process: nothing in memory
    s = await rig.session("CP201", V201)
    # the retried seqNo 1 after the restart is a retry, not a gap
    done = await restarted.handle(
        s, "TransactionEvent", tx_event("Updated", 1, "tx-r", at=60, energy_wh=11_000), T0
    )
    assert not events(done, "seq_gap")
    done = await restarted.handle(
        s, "TransactionEvent", tx_event("Updated", 3, "tx-r", at=180, energy_wh=13_000), T0
    )
    [gap] = events(done, "seq_gap")
    assert (gap.detail or {})["expected"] == 2
    done = await restarted.handle(
        s, "TransactionEvent", tx_event("Ended", 4, "tx-r", at=240, energy_wh=15_500), T0
    )
    [stop] = [r for r in sessions(done) if r.event == "stop"]
    assert stop.meter_start_wh == 10_000 and stop.energy_wh == 5_500
    assert stop.started_at == T0 and stop.evse_id == 1
