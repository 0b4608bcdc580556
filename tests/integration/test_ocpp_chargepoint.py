"""The whole OCPP central system (gateway.ocpp.service.OcppService: WebSocket server, central
system, commands) on a free port, with the real pipeline, registry and TimescaleDB, driven by
charge points written with the ``ocpp`` library (v2.1.0), as the issue asks of a real peer:

* a 1.6 charge point (HTTP Basic, security profile 1): boot, status, Authorize against the
  local list (accepted, expired, blocked, unknown, another operator's), a transaction with
  meter values in kWh / kW / A / V / % / Celsius per phase, its stop with transactionData;
  then every row it left in the database;
* the offline queue: StartTransaction, MeterValues and StopTransaction retried (after a
  reconnect) are stored once and the start gets the same transaction id;
* a 2.0.1 charging station: boot, status, Authorize (idToken types), TransactionEvent
  Started / Updated / Ended with seqNo (a gap recorded, retries idempotent), NotifyEvent and
  SecurityEventNotification;
* the commands of both versions answered by the library's ``@on`` handlers, TriggerMessage
  included (the triggered message arrives and is stored);
* refusals: a wrong key (401), another charger's key, no key, an unknown charger (404), no
  common sub-protocol (handshake completed, then closed 1002).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from ocpp.routing import after, on  # type: ignore[import-untyped]
from ocpp.v16 import ChargePoint as ChargePoint16  # type: ignore[import-untyped]
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16  # type: ignore[import-untyped]
from ocpp.v201 import ChargePoint as ChargePoint201  # type: ignore[import-untyped]
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201  # type: ignore[import-untyped]
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from gateway.adapters.ocpp_auth import basic_header
from gateway.commands_types import CommandResult
from gateway.config import OcppConfig, PipelineConfig
from gateway.ocpp.normalize import id_tag_for_store
from gateway.ocpp.service import OcppService
from gateway.pipeline import Pipeline
from gateway.registry import Registry, hash_password
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema

V16, V201 = "ocpp1.6", "ocpp2.0.1"
TIMEOUT = 10.0
HEARTBEAT_S = 123
KEY16 = b"cp16-key-0123456789a"
KEY201 = b"cs201-key-0123456789"
# The charger's own clock: recent (hypertable chunks, retention), whole seconds.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
TABLES = (
    "charger_status",
    "meter_values",
    "charging_sessions",
    "charger_events",
    "raw_frames",
    "dead_letters",
    "commands",
    "ocpp_transactions",
    "id_tokens",
    "chargers",
    "operators",
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return at(minutes).isoformat()


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_ocppcp")


@dataclass
class Rig:
    service: OcppService
    db: asyncpg.Connection

    def url(self, identity: str) -> str:
        return f"ws://127.0.0.1:{self.service.port}/ocpp/{identity}"

    async def open(
        self, identity: str, versions: list[str], password: bytes | None
    ) -> ClientConnection:
        headers = None if password is None else {"Authorization": basic_header(identity, password)}
        return await connect(
            self.url(identity),
            subprotocols=[Subprotocol(v) for v in versions],
            additional_headers=headers,
            open_timeout=TIMEOUT,
            ping_interval=None,
            compression=None,
        )

    @contextlib.asynccontextmanager
    async def charge_point(
        self, identity: str, version: str, cls: type[Any], password: bytes
    ) -> AsyncIterator[Any]:
        """An ocpp-library charge point ``cls`` connected as ``identity``, reading its
        messages (the server's CALLs) until the block ends."""
        async with await self.open(identity, [version], password) as ws:
            assert ws.subprotocol == version
            cp = cls(identity, ws, response_timeout=TIMEOUT)
            reading = asyncio.create_task(cp.start())
            try:
                yield cp
            finally:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await reading

    async def count(self, table: str, where: str = "TRUE", *args: Any) -> int:
        n: int = await self.db.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
        return n

    async def eventually(self, table: str, where: str, *args: Any, n: int = 1) -> None:
        """Wait until ``table`` has ``n`` rows matching (records no answer waited for)."""
        async with asyncio.timeout(TIMEOUT):
            while await self.count(table, where, *args) < n:
                await asyncio.sleep(0.02)

    async def frames(self, charger_id: str) -> list[list[Any]]:
        """The raw frames archived for a charger, decoded, in arrival order."""
        rows = await self.db.fetch(
            "SELECT frame FROM raw_frames WHERE device_id = $1 ORDER BY received_at, frame_id",
            charger_id,
        )
        return [json.loads(bytes(r["frame"])) for r in rows]

    async def no_dead_letters(self) -> None:
        rows = await self.db.fetch("SELECT reason, message FROM dead_letters")
        assert [dict(r) for r in rows] == []


@pytest_asyncio.fixture
async def rig(schema_dsn: str, tmp_path: Path) -> AsyncIterator[Rig]:
    db = await asyncpg.connect(schema_dsn)
    await db.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    await db.execute(
        "INSERT INTO operators (operator_id, name) VALUES ('op1', 'One'), ('op2', 'Two')"
    )
    await db.executemany(
        "INSERT INTO chargers (charger_id, operator_id, protocol, auth_hash, security_profile)"
        " VALUES ($1, 'op1', $2, $3, 1)",
        [("CP16", V16, hash_password(KEY16)), ("CS201", V201, hash_password(KEY201))],
    )
    now = datetime.now(UTC)
    await db.executemany(
        "INSERT INTO id_tokens (id_token, operator_id, token_type, status, expires_at,"
        " parent_id_tag) VALUES ($1, $2, $3, $4, $5, $6)",
        [
            ("TAG-OK", "op1", None, "Accepted", now + timedelta(days=30), "FLEET-1"),
            ("TAG-EXP", "op1", None, "Accepted", now - timedelta(days=1), None),
            ("TAG-BLK", None, None, "Blocked", None, None),
            ("TAG-OP2", "op2", None, "Accepted", None, None),
            ("TOK-201", "op1", "ISO14443", "Accepted", None, None),
        ],
    )
    pool = await create_pool(schema_dsn, max_size=4, timeout=10)
    spool = await AsyncSpool.open(tmp_path / "spool", SpoolConfig(fsync="never"))
    pipeline = Pipeline(StoreWriter(pool), spool, PipelineConfig(batch_rows=2000, batch_age_ms=5))
    pipeline.start()
    cfg = OcppConfig(
        enabled=True,
        host="127.0.0.1",
        port=0,
        ping_interval_s=0.0,
        security_profile=1,
        heartbeat_interval_s=HEARTBEAT_S,
        call_timeout_s=5.0,
    )
    service = OcppService(cfg, pool, pipeline, Registry(pool, ttl_s=5))
    await service.start()
    try:
        yield Rig(service, db)
    finally:
        await service.stop(timeout=5)
        await pipeline.close(timeout=10)
        await spool.close()
        await pool.close()
        await db.close()


class Cp16(ChargePoint16):  # type: ignore[misc]
    pass


class Cs201(ChargePoint201):  # type: ignore[misc]
    pass


BOOT16 = call16.BootNotification(
    charge_point_vendor="VendorX",
    charge_point_model="Model16",
    charge_point_serial_number="SN-16-0001",
    firmware_version="1.2.3",
)
BOOT201 = call201.BootNotification(
    charging_station={
        "model": "Model201",
        "vendor_name": "VendorY",
        "serial_number": "SN-201-0001",
        "firmware_version": "4.5.6",
    },
    reason="PowerUp",
)


def status16(minutes: float, status: str) -> Any:
    return call16.StatusNotification(
        connector_id=1, error_code="NoError", status=status, timestamp=iso(minutes)
    )


# ------------------------------------------------------------------------------ OCPP 1.6

# One periodic MeterValues sample: (measurand, phase, location, value as sent, unit as sent)
# -> the value and unit stored.
SAMPLES16: list[tuple[str, str | None, str | None, str, str | None, float, str]] = [
    ("Energy.Active.Import.Register", None, None, "1.5", "kWh", 1500.0, "Wh"),
    ("Energy.Active.Import.Register", "L1", None, "520", None, 520.0, "Wh"),  # default unit
    ("Power.Active.Import", None, None, "7.2", "kW", 7200.0, "W"),
    ("Current.Import", "L1", None, "10.5", "A", 10.5, "A"),
    ("Current.Import", "L2", None, "10.6", "A", 10.6, "A"),
    ("Current.Import", "L3", None, "10.4", "A", 10.4, "A"),
    ("Voltage", "L1-N", None, "230.1", "V", 230.1, "V"),
    ("Voltage", "L2-N", None, "229.8", "V", 229.8, "V"),
    ("Voltage", "L3-N", None, "231.0", "V", 231.0, "V"),
    ("SoC", None, "EV", "42", "Percent", 42.0, "Percent"),
    ("Temperature", None, "Body", "35.5", "Celsius", 35.5, "Celsius"),
    ("Temperature", None, "Outlet", "95", "Fahrenheit", 35.0, "Celsius"),
]


def sampled16(
    measurand: str, phase: str | None, location: str | None, value: str, unit: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value, "measurand": measurand, "context": "Sample.Periodic"}
    if phase is not None:
        out["phase"] = phase
    if location is not None:
        out["location"] = location
    if unit is not None:
        out["unit"] = unit
    return out


def meter_values16(tid: int, minutes: float) -> Any:
    return call16.MeterValues(
        connector_id=1,
        transaction_id=tid,
        meter_value=[
            {
                "timestamp": iso(minutes),
                "sampled_value": [sampled16(*s[:5]) for s in SAMPLES16],
            }
        ],
    )


def stop16(tid: int, begin: float, minutes: float, meter_start: int, meter_stop: int) -> Any:
    """StopTransaction with transactionData: the energy register (kWh) and the SoC at the
    transaction's begin (SoC 20 %) and end (SoC 80 %)."""

    def reading(context: str, kwh: str, soc: str) -> list[dict[str, Any]]:
        energy = "Energy.Active.Import.Register"
        return [
            {"value": kwh, "measurand": energy, "unit": "kWh", "context": context},
            {
                "value": soc,
                "measurand": "SoC",
                "unit": "Percent",
                "location": "EV",
                "context": context,
            },
        ]

    return call16.StopTransaction(
        meter_stop=meter_stop,
        timestamp=iso(minutes),
        transaction_id=tid,
        reason="EVDisconnected",
        id_tag="TAG-OK",
        transaction_data=[
            {
                "timestamp": iso(begin),
                "sampled_value": reading("Transaction.Begin", str(meter_start / 1000), "20"),
            },
            {
                "timestamp": iso(minutes),
                "sampled_value": reading("Transaction.End", str(meter_stop / 1000), "80"),
            },
        ],
    )


@pytest.mark.asyncio
async def test_charge_point_1_6_session(rig: Rig) -> None:
    sent: list[str] = []

    async def send(cp: Any, payload: Any) -> Any:
        sent.append(type(payload).__name__)
        return await cp.call(payload, suppress=False)

    async with rig.charge_point("CP16", V16, Cp16, KEY16) as cp:
        boot = await send(cp, BOOT16)
        assert boot.status == "Accepted" and boot.interval == HEARTBEAT_S
        await send(cp, status16(0, "Available"))
        await send(cp, status16(1, "Preparing"))

        verdicts: dict[str, Any] = {}
        for tag in ("TAG-OK", "TAG-EXP", "TAG-BLK", "TAG-NOBODY", "TAG-OP2"):
            verdicts[tag] = (await send(cp, call16.Authorize(id_tag=tag))).id_tag_info
        assert {tag: info["status"] for tag, info in verdicts.items()} == {
            "TAG-OK": "Accepted",
            "TAG-EXP": "Expired",
            "TAG-BLK": "Blocked",
            "TAG-NOBODY": "Invalid",
            "TAG-OP2": "Invalid",  # another operator's: 1.6 has no NotAtThisLocation
        }
        assert verdicts["TAG-OK"]["parent_id_tag"] == "FLEET-1"
        assert "expiry_date" in verdicts["TAG-OK"] and "expiry_date" not in verdicts["TAG-BLK"]

        start = await send(
            cp,
            call16.StartTransaction(
                connector_id=1, id_tag="TAG-OK", meter_start=1000, timestamp=iso(2)
            ),
        )
        tid = start.transaction_id
        assert isinstance(tid, int) and tid > 0
        assert start.id_tag_info["status"] == "Accepted"
        await send(cp, status16(3, "Charging"))
        assert await send(cp, meter_values16(tid, 5)) is not None
        stop = await send(cp, stop16(tid, 2, 30, 1000, 9500))
        assert stop.id_tag_info["status"] == "Accepted"
        await send(cp, status16(31, "Available"))

    # status history
    rows = await rig.db.fetch(
        "SELECT time, connector_id, evse_id, status, error_code, protocol FROM charger_status"
        " WHERE charger_id = 'CP16' ORDER BY time"
    )
    assert [tuple(r) for r in rows] == [
        (at(0), 1, None, "Available", "NoError", V16),
        (at(1), 1, None, "Preparing", "NoError", V16),
        (at(3), 1, None, "Charging", "NoError", V16),
        (at(31), 1, None, "Available", "NoError", V16),
    ]

    # meter values in SI units, each with the transaction
    rows = await rig.db.fetch(
        "SELECT time, measurand, phase, location, value, unit, context, connector_id,"
        " transaction_id, protocol FROM meter_values WHERE charger_id = 'CP16'"
    )
    assert {(r["connector_id"], r["transaction_id"], r["protocol"]) for r in rows} == {
        (1, str(tid), V16)
    }
    stored = {
        (r["time"], r["measurand"], r["phase"], r["location"], r["context"]): (
            r["value"],
            r["unit"],
        )
        for r in rows
    }
    assert len(stored) == len(rows)
    expected: dict[tuple[datetime, str, str | None, str | None, str], tuple[Any, str]] = {
        (at(5), m, phase, loc, "Sample.Periodic"): (pytest.approx(value), unit)
        for m, phase, loc, _, _, value, unit in SAMPLES16
    }
    begin, end = "Transaction.Begin", "Transaction.End"
    expected |= {
        (at(2), "Energy.Active.Import.Register", None, None, begin): (1000.0, "Wh"),
        (at(2), "SoC", None, "EV", begin): (20.0, "Percent"),
        (at(30), "Energy.Active.Import.Register", None, None, end): (9500.0, "Wh"),
        (at(30), "SoC", None, "EV", end): (80.0, "Percent"),
    }
    assert stored == expected

    # the session: start and stop, energy, the ID tag hashed
    rows = await rig.db.fetch(
        "SELECT * FROM charging_sessions WHERE charger_id = 'CP16' ORDER BY time"
    )
    assert [(r["event"], r["transaction_id"], r["time"]) for r in rows] == [
        ("start", str(tid), at(2)),
        ("stop", str(tid), at(30)),
    ]
    first, last = rows
    hashed = id_tag_for_store("TAG-OK")
    assert (first["id_tag"], first["id_tag_hashed"]) == (hashed, True)
    assert (last["id_tag"], last["id_tag_hashed"]) == (hashed, True)
    assert (first["connector_id"], first["meter_start_wh"], first["started_at"]) == (
        1,
        1000.0,
        at(2),
    )
    assert {k: last[k] for k in ("connector_id", "started_at", "stopped_at")} == {
        "connector_id": 1,
        "started_at": at(2),
        "stopped_at": at(30),
    }
    assert (last["meter_start_wh"], last["meter_stop_wh"], last["energy_wh"]) == (
        1000.0,
        9500.0,
        8500.0,
    )
    assert (last["soc_start_pct"], last["soc_pct"], last["stop_reason"]) == (
        20.0,
        80.0,
        "EVDisconnected",
    )
    assert await rig.count("charging_sessions", "id_tag LIKE '%TAG%'") == 0

    # the boot: an event, and the charger's row
    boot_rows = await rig.db.fetch(
        "SELECT detail, protocol FROM charger_events WHERE charger_id = 'CP16' AND event = 'boot'"
    )
    assert len(boot_rows) == 1
    detail = json.loads(boot_rows[0]["detail"])
    assert detail["chargePointVendor"] == "VendorX" and detail["firmwareVersion"] == "1.2.3"
    assert (detail["status"], detail["interval"]) == ("Accepted", HEARTBEAT_S)
    charger = await rig.db.fetchrow(
        "SELECT vendor, model, serial_number, firmware_version, protocol FROM chargers"
        " WHERE charger_id = 'CP16'"
    )
    assert charger is not None
    assert tuple(charger) == ("VendorX", "Model16", "SN-16-0001", "1.2.3", V16)
    await rig.eventually("charger_events", "charger_id = 'CP16' AND event = 'disconnect'")
    assert await rig.count("charger_events", "charger_id = 'CP16' AND event = 'connect'") == 1

    # every message archived as it came, nothing refused
    frames = await rig.frames("CP16")
    assert [(f[0], f[2]) for f in frames] == [(2, action) for action in sent]
    assert len(sent) == 13
    await rig.no_dead_letters()


@pytest.mark.asyncio
async def test_offline_queue_retries_1_6_are_idempotent(rig: Rig) -> None:
    start_call = call16.StartTransaction(
        connector_id=1, id_tag="TAG-OK", meter_start=2000, timestamp=iso(10)
    )
    async with rig.charge_point("CP16", V16, Cp16, KEY16) as cp:
        assert (await cp.call(BOOT16)).status == "Accepted"
        first = await cp.call(start_call, suppress=False, unique_id="q-start")
        tid = first.transaction_id
    # the answer was lost: the charger reconnects and sends its queue again
    async with rig.charge_point("CP16", V16, Cp16, KEY16) as cp:
        again = await cp.call(start_call, suppress=False, unique_id="q-start")
        assert again.transaction_id == tid
        assert again.id_tag_info["status"] == "Accepted"
        for _ in range(2):
            assert await cp.call(meter_values16(tid, 12), suppress=False) is not None
        assert (await cp.call(stop16(tid, 10, 40, 2000, 12000), suppress=False)).id_tag_info
        # a different start (another time) is a different transaction
        other = await cp.call(
            call16.StartTransaction(
                connector_id=2, id_tag="TAG-OK", meter_start=0, timestamp=iso(11)
            ),
            suppress=False,
        )
        assert other.transaction_id != tid
    async with rig.charge_point("CP16", V16, Cp16, KEY16) as cp:
        assert (await cp.call(stop16(tid, 10, 40, 2000, 12000), suppress=False)).id_tag_info

    where = "charger_id = 'CP16' AND transaction_id = $1"
    assert await rig.count("ocpp_transactions", "charger_id = 'CP16'") == 2
    rows = await rig.db.fetch(
        f"SELECT event, time, meter_start_wh, energy_wh FROM charging_sessions WHERE {where}"
        " ORDER BY time",
        str(tid),
    )
    assert [tuple(r) for r in rows] == [
        ("start", at(10), 2000.0, None),
        ("stop", at(40), 2000.0, 10000.0),
    ]
    # every value once: the periodic sample (sent twice) and the transaction data (twice)
    assert await rig.count("meter_values", where, str(tid)) == len(SAMPLES16) + 4
    assert await rig.count("meter_values", f"{where} AND time = $2", str(tid), at(12)) == len(
        SAMPLES16
    )
    stopped = await rig.db.fetchval(
        "SELECT stopped_at FROM ocpp_transactions WHERE transaction_id = $1", tid
    )
    assert stopped == at(40)
    # yet every message is archived, retries included
    actions = [f[2] for f in await rig.frames("CP16")]
    assert actions == [
        "BootNotification",
        "StartTransaction",
        "StartTransaction",
        "MeterValues",
        "MeterValues",
        "StopTransaction",
        "StartTransaction",
        "StopTransaction",
    ]
    await rig.no_dead_letters()


@pytest.mark.asyncio
async def test_id_tags_are_case_insensitive(rig: Rig) -> None:
    """OCPP 1.6 (IdToken: "case insensitive") and 2.0.1 (IdTokenType.idToken: "IdToken is
    case insensitive"): an RFID UID read in lower case is the listed upper-case one. The
    stored hash already treats them as one tag (id_tag_for_store folds the case)."""
    async with rig.charge_point("CP16", V16, Cp16, KEY16) as cp:
        assert (await cp.call(BOOT16)).status == "Accepted"
        listed = await cp.call(call16.Authorize(id_tag="TAG-OK"), suppress=False)
        folded = await cp.call(call16.Authorize(id_tag="tag-ok"), suppress=False)
    async with rig.charge_point("CS201", V201, Cs201, KEY201) as cs:
        assert (await cs.call(BOOT201)).status == "Accepted"
        token = {"id_token": "tok-201", "type": "ISO14443"}
        folded201 = await cs.call(call201.Authorize(id_token=token), suppress=False)
    assert listed.id_tag_info["status"] == "Accepted"
    assert {
        "1.6": folded.id_tag_info["status"],
        "2.0.1": folded201.id_token_info["status"],
    } == {"1.6": "Accepted", "2.0.1": "Accepted"}


# ------------------------------------------------------------------------------ OCPP 2.0.1

TX201 = "TX-201-A"


def sampled201(
    measurand: str,
    value: float,
    unit: str,
    *,
    multiplier: int | None = None,
    phase: str | None = None,
    location: str | None = None,
    context: str = "Sample.Periodic",
) -> dict[str, Any]:
    measure: dict[str, Any] = {"unit": unit}
    if multiplier is not None:
        measure["multiplier"] = multiplier
    out: dict[str, Any] = {
        "value": value,
        "measurand": measurand,
        "context": context,
        "unit_of_measure": measure,
    }
    if phase is not None:
        out["phase"] = phase
    if location is not None:
        out["location"] = location
    return out


def tx_event(
    event_type: str,
    seq_no: int,
    minutes: float,
    trigger: str,
    samples: list[dict[str, Any]],
    **info: Any,
) -> Any:
    extra: dict[str, Any] = {}
    if event_type == "Started":
        extra["evse"] = {"id": 1, "connector_id": 1}
        extra["id_token"] = {"id_token": "TOK-201", "type": "ISO14443"}
    return call201.TransactionEvent(
        event_type=event_type,
        timestamp=iso(minutes),
        trigger_reason=trigger,
        seq_no=seq_no,
        transaction_info={"transaction_id": TX201, **info},
        meter_value=[{"timestamp": iso(minutes), "sampled_value": samples}],
        **extra,
    )


ENERGY = "Energy.Active.Import.Register"
BEGIN, END = "Transaction.Begin", "Transaction.End"
STARTED = tx_event(
    "Started",
    0,
    2,
    "Authorized",
    [
        sampled201(ENERGY, 1000, "Wh", context=BEGIN),
        sampled201("SoC", 20, "Percent", location="EV", context=BEGIN),
    ],
    charging_state="EVConnected",
)
UPDATED = tx_event(
    "Updated",
    1,
    10,
    "MeterValuePeriodic",
    [
        sampled201(ENERGY, 2.5, "kWh"),
        sampled201("Power.Active.Import", 11, "kW"),
        *(sampled201("Current.Import", 16, "A", phase=p) for p in ("L1", "L2", "L3")),
        sampled201("Voltage", 230, "V", phase="L1-N"),
        sampled201("SoC", 45, "Percent", location="EV"),
        sampled201("Frequency", 50, "Hz"),
    ],
    charging_state="Charging",
)
AFTER_GAP = tx_event(  # seqNo 2 never arrives
    "Updated", 3, 20, "MeterValuePeriodic", [sampled201(ENERGY, 4, "kWh")]
)
ENDED = tx_event(
    "Ended",
    4,
    30,
    "EVDeparted",
    [
        sampled201(ENERGY, 5.5, "Wh", multiplier=3, context=END),  # 5.5 kWh
        sampled201("SoC", 80, "Percent", location="EV", context=END),
    ],
    stopped_reason="EVDisconnected",
    charging_state="Idle",
)
NOTIFY = call201.NotifyEvent(
    generated_at=iso(25),
    seq_no=0,
    event_data=[
        {
            "event_id": 7,
            "timestamp": iso(25),
            "trigger": "Alerting",
            "actual_value": "true",
            "event_notification_type": "HardWiredNotification",
            "component": {"name": "EVSE", "evse": {"id": 1}},
            "variable": {"name": "Problem"},
        }
    ],
)
SECURITY = call201.SecurityEventNotification(
    type="SettingSystemTime", timestamp=iso(26), tech_info="NTP"
)


@pytest.mark.asyncio
async def test_charging_station_2_0_1_session(rig: Rig) -> None:
    sent: list[str] = []

    async def send(cs: Any, payload: Any) -> Any:
        sent.append(type(payload).__name__)
        return await cs.call(payload, suppress=False)

    async with rig.charge_point("CS201", V201, Cs201, KEY201) as cs:
        boot = await send(cs, BOOT201)
        assert boot.status == "Accepted" and boot.interval == HEARTBEAT_S
        await send(
            cs,
            call201.StatusNotification(
                timestamp=iso(1), connector_status="Occupied", evse_id=1, connector_id=1
            ),
        )
        verdicts: dict[str, str] = {}
        for token, kind in (
            ("TOK-201", "ISO14443"),
            ("TOK-201", "Central"),  # the list says ISO14443
            ("TAG-OP2", "ISO14443"),
            ("TAG-BLK", "ISO14443"),
            ("TAG-NOBODY", "ISO14443"),
        ):
            answer = await send(cs, call201.Authorize(id_token={"id_token": token, "type": kind}))
            verdicts[f"{token}/{kind}"] = answer.id_token_info["status"]
        assert verdicts == {
            "TOK-201/ISO14443": "Accepted",
            "TOK-201/Central": "Invalid",
            "TAG-OP2/ISO14443": "NotAtThisLocation",
            "TAG-BLK/ISO14443": "Blocked",
            "TAG-NOBODY/ISO14443": "Invalid",
        }
        started = await send(cs, STARTED)
        assert started.id_token_info["status"] == "Accepted"
        await send(cs, UPDATED)
        await send(cs, UPDATED)  # retried from the offline queue
        await send(cs, AFTER_GAP)
        await send(cs, ENDED)
        await send(cs, ENDED)  # retried
        await send(cs, NOTIFY)
        await send(cs, NOTIFY)  # retried
        await send(cs, SECURITY)

    charger = await rig.db.fetchrow(
        "SELECT vendor, model, serial_number, firmware_version, protocol FROM chargers"
        " WHERE charger_id = 'CS201'"
    )
    assert charger is not None
    assert tuple(charger) == ("VendorY", "Model201", "SN-201-0001", "4.5.6", V201)
    rows = await rig.db.fetch(
        "SELECT time, evse_id, connector_id, status FROM charger_status WHERE charger_id = 'CS201'"
    )
    assert [tuple(r) for r in rows] == [(at(1), 1, 1, "Occupied")]

    # the session: one row per event, retries stored once
    rows = await rig.db.fetch(
        "SELECT * FROM charging_sessions WHERE charger_id = 'CS201' AND transaction_id = $1"
        " ORDER BY time",
        TX201,
    )
    assert [(r["event"], r["time"], json.loads(r["extra"])["seq_no"]) for r in rows] == [
        ("start", at(2), 0),
        ("update", at(10), 1),
        ("update", at(20), 3),
        ("stop", at(30), 4),
    ]
    hashed = id_tag_for_store("TOK-201")
    assert {(r["id_tag"], r["id_tag_hashed"], r["evse_id"], r["connector_id"]) for r in rows} == {
        (hashed, True, 1, 1)
    }
    assert [r["energy_wh"] for r in rows] == [0.0, 1500.0, 3000.0, 4500.0]
    assert [r["soc_pct"] for r in rows] == [20.0, 45.0, None, 80.0]
    stop = rows[-1]
    assert {
        k: stop[k]
        for k in (
            "started_at",
            "stopped_at",
            "meter_start_wh",
            "meter_stop_wh",
            "stop_reason",
        )
    } == {
        "started_at": at(2),
        "stopped_at": at(30),
        "meter_start_wh": 1000.0,
        "meter_stop_wh": 5500.0,
        "stop_reason": "EVDisconnected",
    }
    # the SoC at the start is the start row's (the Ended event does not repeat it)
    assert rows[0]["soc_start_pct"] == 20.0
    assert json.loads(stop["extra"])["trigger_reason"] == "EVDeparted"

    # the gap: one event for the missing seqNo 2, none for the retries
    gaps = await rig.db.fetch(
        "SELECT key, time, detail FROM charger_events WHERE charger_id = 'CS201'"
        " AND event = 'seq_gap'"
    )
    assert len(gaps) == 1
    assert (gaps[0]["key"], gaps[0]["time"]) == (f"{TX201}:3", at(20))
    gap = json.loads(gaps[0]["detail"])
    assert (gap["expected"], gap["received"], gap["missing"]) == (2, 3, 1)

    # meter values in SI, each once
    rows = await rig.db.fetch(
        "SELECT time, measurand, phase, value, unit FROM meter_values"
        " WHERE charger_id = 'CS201' AND transaction_id = $1 AND evse_id = 1 AND connector_id = 1",
        TX201,
    )
    assert await rig.count("meter_values", "charger_id = 'CS201'") == len(rows) == 13
    values = {(r["time"], r["measurand"], r["phase"]): (r["value"], r["unit"]) for r in rows}
    assert values[(at(2), ENERGY, None)] == (1000.0, "Wh")
    assert values[(at(10), ENERGY, None)] == (2500.0, "Wh")
    assert values[(at(10), "Power.Active.Import", None)] == (11000.0, "W")
    assert values[(at(10), "Current.Import", "L2")] == (16.0, "A")
    assert values[(at(10), "Voltage", "L1-N")] == (230.0, "V")
    assert values[(at(10), "Frequency", None)] == (50.0, "Hz")
    assert values[(at(20), ENERGY, None)] == (4000.0, "Wh")
    assert values[(at(30), ENERGY, None)] == (5500.0, "Wh")
    assert values[(at(30), "SoC", None)] == (80.0, "Percent")

    # boot, NotifyEvent (retried: once), security event
    events = await rig.db.fetch(
        "SELECT event, time, key, detail FROM charger_events WHERE charger_id = 'CS201'"
        " AND event IN ('boot', 'notify_event', 'security_event') ORDER BY event"
    )
    assert [e["event"] for e in events] == ["boot", "notify_event", "security_event"]
    boot_detail = json.loads(events[0]["detail"])
    assert boot_detail["chargingStation"]["vendorName"] == "VendorY"
    assert boot_detail["reason"] == "PowerUp" and boot_detail["status"] == "Accepted"
    assert (events[1]["time"], events[1]["key"]) == (at(25), "0:7")
    assert json.loads(events[1]["detail"])["eventData"][0]["variable"] == {"name": "Problem"}
    assert events[2]["time"] == at(26)
    assert json.loads(events[2]["detail"])["type"] == "SettingSystemTime"

    frames = await rig.frames("CS201")
    assert [(f[0], f[2]) for f in frames] == [(2, action) for action in sent]
    await rig.no_dead_letters()


@pytest.mark.asyncio
async def test_transaction_event_retry_after_reconnect(rig: Rig) -> None:
    """A restarted central system (a fresh state) still takes a retried event as a retry:
    it reads the transaction's history back from charging_sessions."""
    async with rig.charge_point("CS201", V201, Cs201, KEY201) as cs:
        assert (await cs.call(BOOT201)).status == "Accepted"
        await cs.call(STARTED, suppress=False)
        await cs.call(UPDATED, suppress=False)
    rig.service.central.transaction_events.forget("CS201", TX201)
    async with rig.charge_point("CS201", V201, Cs201, KEY201) as cs:
        await cs.call(UPDATED, suppress=False)
        await cs.call(ENDED, suppress=False)  # seqNo 2 and 3 missing
    gaps = await rig.db.fetch(
        "SELECT detail FROM charger_events WHERE charger_id = 'CS201' AND event = 'seq_gap'"
    )
    assert [json.loads(g["detail"])["missing"] for g in gaps] == [2]
    rows = await rig.db.fetch(
        "SELECT event, energy_wh FROM charging_sessions WHERE transaction_id = $1 ORDER BY time",
        TX201,
    )
    assert [tuple(r) for r in rows] == [("start", 0.0), ("update", 1500.0), ("stop", 4500.0)]


# ------------------------------------------------------------------------------ commands


class Commanded16(ChargePoint16):  # type: ignore[misc]
    """Accepts every command; a TriggerMessage(StatusNotification) sends one."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.got: list[tuple[str, dict[str, Any]]] = []

    @on(Action16.remote_start_transaction)  # type: ignore[untyped-decorator]
    async def on_remote_start(self, **kw: Any) -> Any:
        self.got.append(("RemoteStartTransaction", kw))
        return result16.RemoteStartTransaction(status="Accepted")

    @on(Action16.remote_stop_transaction)  # type: ignore[untyped-decorator]
    async def on_remote_stop(self, **kw: Any) -> Any:
        self.got.append(("RemoteStopTransaction", kw))
        return result16.RemoteStopTransaction(status="Accepted")

    @on(Action16.reset)  # type: ignore[untyped-decorator]
    async def on_reset(self, **kw: Any) -> Any:
        self.got.append(("Reset", kw))
        return result16.Reset(status="Accepted")

    @on(Action16.change_configuration)  # type: ignore[untyped-decorator]
    async def on_change_configuration(self, **kw: Any) -> Any:
        self.got.append(("ChangeConfiguration", kw))
        return result16.ChangeConfiguration(status="Accepted")

    @on(Action16.trigger_message)  # type: ignore[untyped-decorator]
    async def on_trigger(self, **kw: Any) -> Any:
        self.got.append(("TriggerMessage", kw))
        return result16.TriggerMessage(status="Accepted")

    @after(Action16.trigger_message)  # type: ignore[untyped-decorator]
    async def after_trigger(self, requested_message: str, **kw: Any) -> None:
        if requested_message == "StatusNotification":
            await self.call(status16(50, "Unavailable"))

    @on(Action16.unlock_connector)  # type: ignore[untyped-decorator]
    async def on_unlock(self, **kw: Any) -> Any:
        self.got.append(("UnlockConnector", kw))
        return result16.UnlockConnector(status="Unlocked")

    @on(Action16.change_availability)  # type: ignore[untyped-decorator]
    async def on_availability(self, **kw: Any) -> Any:
        self.got.append(("ChangeAvailability", kw))
        return result16.ChangeAvailability(status="Accepted")


class Commanded201(ChargePoint201):  # type: ignore[misc]
    """Accepts every command, keeps the variables set; a TriggerMessage(BootNotification)
    boots again."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.variables: dict[tuple[str, str], str] = {("OCPPCommCtrlr", "HeartbeatInterval"): "5"}

    @on(Action201.request_start_transaction)  # type: ignore[untyped-decorator]
    async def on_request_start(self, **kw: Any) -> Any:
        self.got.append(("RequestStartTransaction", kw))
        return result201.RequestStartTransaction(status="Accepted", transaction_id="TX-R")

    @on(Action201.request_stop_transaction)  # type: ignore[untyped-decorator]
    async def on_request_stop(self, **kw: Any) -> Any:
        self.got.append(("RequestStopTransaction", kw))
        return result201.RequestStopTransaction(status="Accepted")

    @on(Action201.reset)  # type: ignore[untyped-decorator]
    async def on_reset(self, **kw: Any) -> Any:
        self.got.append(("Reset", kw))
        return result201.Reset(status="Accepted")

    @on(Action201.set_variables)  # type: ignore[untyped-decorator]
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.got.append(("SetVariables", {"set_variable_data": set_variable_data, **kw}))
        results = []
        for item in set_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            self.variables[key] = item["attribute_value"]
            results.append(
                {
                    "attribute_status": "Accepted",
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return result201.SetVariables(set_variable_result=results)

    @on(Action201.get_variables)  # type: ignore[untyped-decorator]
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.got.append(("GetVariables", {"get_variable_data": get_variable_data, **kw}))
        results = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            results.append(
                {
                    "attribute_status": "Accepted",
                    "attribute_value": self.variables[key],
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return result201.GetVariables(get_variable_result=results)

    @on(Action201.trigger_message)  # type: ignore[untyped-decorator]
    async def on_trigger(self, **kw: Any) -> Any:
        self.got.append(("TriggerMessage", kw))
        return result201.TriggerMessage(status="Accepted")

    @after(Action201.trigger_message)  # type: ignore[untyped-decorator]
    async def after_trigger(self, requested_message: str, **kw: Any) -> None:
        if requested_message == "BootNotification":
            await self.call(
                call201.BootNotification(
                    charging_station={"model": "Model201", "vendor_name": "VendorY"},
                    reason="Triggered",
                )
            )

    @on(Action201.unlock_connector)  # type: ignore[untyped-decorator]
    async def on_unlock(self, **kw: Any) -> Any:
        self.got.append(("UnlockConnector", kw))
        return result201.UnlockConnector(status="Unlocked")

    @on(Action201.change_availability)  # type: ignore[untyped-decorator]
    async def on_availability(self, **kw: Any) -> Any:
        self.got.append(("ChangeAvailability", kw))
        return result201.ChangeAvailability(status="Accepted")


async def check_commands(
    rig: Rig, charger_id: str, version: str, done: list[CommandResult], verbs: list[str]
) -> None:
    """Each command accepted and stored as returned; the charger's answers archived."""
    cmd = rig.service.commands
    assert [d.command for d in done] == verbs
    for d in done:
        assert (d.status, d.protocol, d.device, d.error) == ("accepted", version, charger_id, None)
        assert d.sent_at is not None and d.replied_at is not None
        assert await cmd.get(d.id) == d
    assert await rig.count("commands", "device_id = $1", charger_id) == len(done)
    n = len(done)
    answers = "device_id = $1 AND convert_from(frame, 'UTF8')::jsonb ->> 0 = '3'"
    await rig.eventually("raw_frames", answers, charger_id, n=n)


@pytest.mark.asyncio
async def test_commands_1_6(rig: Rig) -> None:
    cmd = rig.service.commands
    async with rig.charge_point("CP16", V16, Commanded16, KEY16) as cp:
        assert (await cp.call(BOOT16)).status == "Accepted"  # now indexed by the server
        done = [
            await cmd.remote_start("CP16", "TAG-OK", connector_id=1),
            await cmd.remote_stop("CP16", 7),
            await cmd.reset("CP16", "hard"),
            await cmd.change_configuration("CP16", "HeartbeatInterval", 60),
            await cmd.trigger_message("CP16", "StatusNotification", connector_id=1),
            await cmd.unlock_connector("CP16", 1),
            await cmd.change_availability("CP16", False, connector_id=1),
        ]
        # the triggered StatusNotification arrives and is stored
        await rig.eventually("charger_status", "charger_id = 'CP16' AND status = 'Unavailable'")
    assert cp.got == [
        ("RemoteStartTransaction", {"id_tag": "TAG-OK", "connector_id": 1}),
        ("RemoteStopTransaction", {"transaction_id": 7}),
        ("Reset", {"type": "Hard"}),
        ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}),
        ("TriggerMessage", {"requested_message": "StatusNotification", "connector_id": 1}),
        ("UnlockConnector", {"connector_id": 1}),
        ("ChangeAvailability", {"connector_id": 1, "type": "Inoperative"}),
    ]
    assert done[5].reply == {"status": "Unlocked"}
    await check_commands(
        rig,
        "CP16",
        V16,
        done,
        [
            "remote_start",
            "remote_stop",
            "reset",
            "change_configuration",
            "trigger_message",
            "unlock_connector",
            "change_availability",
        ],
    )
    await rig.no_dead_letters()


@pytest.mark.asyncio
async def test_commands_2_0_1(rig: Rig) -> None:
    cmd = rig.service.commands
    async with rig.charge_point("CS201", V201, Commanded201, KEY201) as cs:
        assert (await cs.call(BOOT201)).status == "Accepted"
        variable = ("OCPPCommCtrlr", "HeartbeatInterval")
        done = [
            await cmd.remote_start("CS201", "TOK-201", evse_id=1, remote_start_id=5),
            await cmd.remote_stop("CS201", "TX-R"),
            await cmd.reset("CS201", "soft"),
            await cmd.set_variables("CS201", [(*variable, 60)]),
            await cmd.get_variables("CS201", [variable]),
            await cmd.trigger_message("CS201", "BootNotification"),
            await cmd.unlock_connector("CS201", 1, evse_id=1),
            await cmd.change_availability("CS201", True, evse_id=1),
        ]
        # the triggered BootNotification arrives, is answered and stored
        await rig.eventually("charger_events", "charger_id = 'CS201' AND event = 'boot'", n=2)
    assert done[0].reply == {"status": "Accepted", "transactionId": "TX-R"}
    got = done[4].reply
    assert got is not None
    assert [(r["variable"]["name"], r["attributeValue"]) for r in got["getVariableResult"]] == [
        ("HeartbeatInterval", "60")  # the value set just before
    ]
    component, name = {"name": "OCPPCommCtrlr"}, {"name": "HeartbeatInterval"}
    assert cs.got == [
        (
            "RequestStartTransaction",
            {
                "id_token": {"id_token": "TOK-201", "type": "Central"},
                "remote_start_id": 5,
                "evse_id": 1,
            },
        ),
        ("RequestStopTransaction", {"transaction_id": "TX-R"}),
        ("Reset", {"type": "OnIdle"}),
        (
            "SetVariables",
            {
                "set_variable_data": [
                    {"component": component, "variable": name, "attribute_value": "60"}
                ]
            },
        ),
        ("GetVariables", {"get_variable_data": [{"component": component, "variable": name}]}),
        ("TriggerMessage", {"requested_message": "BootNotification"}),
        ("UnlockConnector", {"evse_id": 1, "connector_id": 1}),
        ("ChangeAvailability", {"operational_status": "Operative", "evse": {"id": 1}}),
    ]
    boots = await rig.db.fetch(
        "SELECT detail FROM charger_events WHERE charger_id = 'CS201' AND event = 'boot'"
        " ORDER BY time"
    )
    assert [json.loads(b["detail"])["reason"] for b in boots] == ["PowerUp", "Triggered"]
    assert [json.loads(b["detail"])["status"] for b in boots] == ["Accepted", "Accepted"]
    await check_commands(
        rig,
        "CS201",
        V201,
        done,
        [
            "remote_start",
            "remote_stop",
            "reset",
            "set_variables",
            "get_variables",
            "trigger_message",
            "unlock_connector",
            "change_availability",
        ],
    )
    await rig.no_dead_letters()


# ------------------------------------------------------------------------------ refusals


@pytest.mark.asyncio
async def test_bad_credentials_and_sub_protocol(rig: Rig) -> None:
    async def refused(identity: str, password: bytes | None) -> int:
        with pytest.raises(InvalidStatus) as info:
            await rig.open(identity, [V16], password)
        status: int = info.value.response.status_code
        if status == 401:
            assert info.value.response.headers["WWW-Authenticate"].startswith("Basic")
        return status

    assert await refused("CP16", b"not-the-key") == 401
    assert await refused("CP16", KEY201) == 401  # another charger's key
    assert await refused("CP16", None) == 401
    assert await refused("NOBODY", KEY16) == 404

    # no common sub-protocol: the handshake completes (no Sec-WebSocket-Protocol), then 1002
    async with await rig.open("CP16", ["ocpp1.5"], KEY16) as ws:
        assert ws.subprotocol is None
        cp = Cp16("CP16", ws, response_timeout=TIMEOUT)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(cp.start(), TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
    assert "CP16" not in rig.service.links

    # the right key and version still get in
    async with rig.charge_point("CP16", V16, Cp16, KEY16) as cp:
        assert (await cp.call(BOOT16)).status == "Accepted"
    assert await rig.count("raw_frames", "device_id = 'CP16'") == 1
    await rig.eventually("charger_events", "event = 'disconnect'")
    assert await rig.count("charger_events", "event = 'connect'") == 1
    await rig.no_dead_letters()
