"""OCPP requests to records (gateway/ocpp/normalize.py) and units to SI (gateway/ocpp/units.py),
from realistic JSON payloads of both versions decoded with the message layer."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from gateway.ocpp.messages import decode_request, decode_response
from gateway.ocpp.normalize import (
    Context,
    Normalized,
    Problem,
    TxInfo,
    id_tag_for_store,
    records_for,
)
from gateway.ocpp.units import default_unit, to_si
from gateway.records import ChargerEvent, ChargerStatus, ChargingSession, MeterValue

V16, V201 = "ocpp1.6", "ocpp2.0.1"
RECEIVED = datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=UTC)
CTX16 = Context("CP-16", V16, RECEIVED, station_id="ST-1")
CTX201 = Context("CP-201", V201, RECEIVED, station_id="ST-2")
T0 = datetime(2026, 3, 1, 11, 59, 0, tzinfo=UTC)


def _request(version: str, action: str, payload: dict[str, Any]) -> msgspec.Struct:
    return decode_request(version, action, json.dumps(payload))


def _response(version: str, action: str, payload: dict[str, Any]) -> msgspec.Struct:
    return decode_response(version, action, json.dumps(payload))


def _run(
    ctx: Context,
    action: str,
    payload: dict[str, Any],
    response: dict[str, Any] | None = None,
    tx: TxInfo | None = None,
) -> Normalized:
    request = _request(ctx.version, action, payload)
    answer = None if response is None else _response(ctx.version, action, response)
    return records_for(ctx, action, request, answer, tx)


def _of(records: list[msgspec.Struct], kind: type[Any]) -> list[Any]:
    return [record for record in records if isinstance(record, kind)]


# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "multiplier", "expected", "si"),
    [
        (1.5, "kWh", 0, 1500.0, "Wh"),
        (1.001, "kWh", 0, 1001.0, "Wh"),  # exact, not 1000.9999999999999
        (12345.678, "kWh", 0, 12345678.0, "Wh"),
        (0.0072, "kW", 0, 7.2, "W"),
        (7.2, "kW", 0, 7200.0, "W"),
        (2.5, "kvarh", 0, 2500.0, "varh"),
        (3.0, "kvar", 0, 3000.0, "var"),
        (11.0, "kVA", 0, 11000.0, "VA"),
        (42.0, "Wh", 0, 42.0, "Wh"),
        (230.1, "V", 0, 230.1, "V"),
        (16.0, "A", 0, 16.0, "A"),
        (50.0, "Hertz", 0, 50.0, "Hz"),
        (80.0, "Percent", 0, 80.0, "Percent"),
        (21.5, "Celcius", 0, 21.5, "Celsius"),  # the 1.6 spelling
        (21.5, "Celsius", 0, 21.5, "Celsius"),
        (212.0, "Fahrenheit", 0, 100.0, "Celsius"),
        (32.0, "Fahrenheit", 0, 0.0, "Celsius"),
        (98.6, "Fahrenheit", 0, 37.0, "Celsius"),
        (-40.0, "Fahrenheit", 0, -40.0, "Celsius"),
        (293.15, "K", 0, 20.0, "Celsius"),
        (300.0, "K", 0, 26.85, "Celsius"),
        (12345.0, "Wh", -3, 12.345, "Wh"),  # 2.0.1 multiplier: a power of ten
        (12.345, "kWh", -3, 12.345, "Wh"),
        (5.0, "W", 3, 5000.0, "W"),
        (1.5, "kWh", 3, 1500000.0, "Wh"),
        (2.5, "kW", -3, 2.5, "W"),
        (3015.0, "K", -1, 28.35, "Celsius"),
        (7.0, None, 0, 7.0, "Wh"),  # no unit: Wh
        (5.0, "ppm", 2, 500.0, "ppm"),  # unknown: kept, multiplier applied
        (1.5, "kwh", 0, 1500.0, "Wh"),  # 2.0.1 free-text spellings
        (55.0, "%", 0, 55.0, "Percent"),
    ],
)
def test_to_si(value: float, unit: str | None, multiplier: int, expected: float, si: str) -> None:
    assert to_si(value, unit, multiplier) == (expected, si)


def test_to_si_scaling_is_decimal_exact() -> None:
    rng = random.Random(5)
    for _ in range(20000):
        text = f"{rng.uniform(0, 10 ** rng.randint(0, 8)):.{rng.randint(0, 6)}f}"
        for unit, multiplier, exp in (("kWh", 0, 3), ("Wh", -3, -3), ("kW", 3, 6), ("W", 1, 1)):
            want = float(Decimal(text).scaleb(exp))
            assert to_si(float(text), unit, multiplier)[0] == want, (text, unit, multiplier)


@pytest.mark.parametrize(
    ("measurand", "unit"),
    [
        ("Energy.Active.Import.Register", "Wh"),
        ("Energy.Active.Export.Interval", "Wh"),
        ("Energy.Reactive.Import.Register", "varh"),
        ("Energy.Apparent.Net", "VAh"),
        ("Power.Active.Import", "W"),
        ("Power.Offered", "W"),
        ("Power.Reactive.Export", "var"),
        ("Current.Import", "A"),
        ("Voltage", "V"),
        ("Frequency", "Hz"),
        ("Temperature", "Celsius"),
        ("SoC", "Percent"),
        ("Something.New", "Wh"),
    ],
)
def test_default_unit(measurand: str, unit: str) -> None:
    assert default_unit(measurand) == unit


# -- ID tags ----------------------------------------------------------------------------------


def test_id_tag_for_store() -> None:
    stored = id_tag_for_store("04A2B3C4D5E6F7")
    assert stored == "sha256:" + hashlib.sha256(b"04a2b3c4d5e6f7").hexdigest()[:32]
    assert id_tag_for_store("04a2b3c4d5e6f7") == stored  # ID tokens are case-insensitive
    assert id_tag_for_store("04A2B3C4D5E6F8") != stored


# -- OCPP 1.6 ---------------------------------------------------------------------------------

START16 = {
    "connectorId": 2,
    "idTag": "04A2B3C4D5E6F7",
    "meterStart": 1_250_000,
    "timestamp": "2026-03-01T11:59:00Z",
}
START16_ANSWER = {"idTagInfo": {"status": "Accepted"}, "transactionId": 1042}
STOP16 = {
    "transactionId": 1042,
    "meterStop": 1_262_345,
    "timestamp": "2026-03-01T13:00:00+01:00",
    "transactionData": [
        {
            "timestamp": "2026-03-01T11:59:00Z",
            "sampledValue": [
                {"value": "1250.000", "unit": "kWh", "context": "Transaction.Begin"},
                {
                    "value": "20",
                    "measurand": "SoC",
                    "context": "Transaction.Begin",
                    "location": "EV",
                },
            ],
        },
        {
            "timestamp": "2026-03-01T12:00:00Z",
            "sampledValue": [
                {"value": "1262.345", "unit": "kWh", "context": "Transaction.End"},
                {"value": "65", "measurand": "SoC", "context": "Transaction.End", "location": "EV"},
            ],
        },
    ],
}
TX16 = TxInfo(
    "1042", connector_id=2, started_at=T0, meter_start_wh=1_250_000.0, id_tag="04a2b3c4d5e6f7"
)
METER16 = {
    "connectorId": 1,
    "transactionId": 1042,
    "meterValue": [
        {
            "timestamp": "2026-03-01T14:00:00+02:00",
            "sampledValue": [
                {"value": "1255000"},  # every default: the energy register, Wh, Sample.Periodic
                {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
                {"value": "231.5", "measurand": "Voltage", "phase": "L1-N"},  # no unit: V
                {"value": "n/a", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                {
                    "value": "31.2",
                    "measurand": "Temperature",
                    "unit": "Celcius",
                    "location": "Body",
                },
                {
                    "value": "AP///8AAAAA0b8TZQ==",
                    "format": "SignedData",
                    "context": "Sample.Clock",
                    "unit": "Wh",
                },
                {"value": "NaN", "measurand": "Frequency", "unit": "Hertz"},
                {"value": "51", "measurand": "SoC", "unit": "Percent", "location": "EV"},
            ],
        }
    ],
}


def test_status_notification_16() -> None:
    payload = {
        "connectorId": 1,
        "errorCode": "GroundFailure",
        "status": "Faulted",
        "info": "RCD tripped",
        "vendorId": "com.example",
        "vendorErrorCode": "E-17",
        "timestamp": "2026-03-01T13:00:00+01:00",
    }
    (row,) = _run(CTX16, "StatusNotification", payload).records
    assert row == ChargerStatus(
        charger_id="CP-16",
        time=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        connector_id=1,
        status="Faulted",
        protocol=V16,
        error_code="GroundFailure",
        vendor_error_code="E-17",
        vendor_id="com.example",
        info="RCD tripped",
        station_id="ST-1",
        received_at=RECEIVED,
    )
    assert row.time.tzinfo is UTC
    bare = {"connectorId": 0, "errorCode": "NoError", "status": "Available"}
    (row,) = _run(CTX16, "StatusNotification", bare).records
    assert isinstance(row, ChargerStatus)
    assert (row.time, row.connector_id, row.error_code, row.info) == (RECEIVED, 0, "NoError", None)


def test_meter_values_16() -> None:
    out = _run(CTX16, "MeterValues", METER16)
    rows = _of(out.records, MeterValue)
    time = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert [(r.measurand, r.value, r.unit, r.phase, r.location, r.context) for r in rows] == [
        ("Energy.Active.Import.Register", 1255000.0, "Wh", None, None, "Sample.Periodic"),
        ("Power.Active.Import", 7400.0, "W", None, None, "Sample.Periodic"),
        ("Voltage", 231.5, "V", "L1-N", None, "Sample.Periodic"),
        ("Temperature", 31.2, "Celsius", None, "Body", "Sample.Periodic"),
        ("SoC", 51.0, "Percent", None, "EV", "Sample.Periodic"),
    ]
    for row in rows:
        assert (row.time, row.connector_id, row.evse_id, row.transaction_id) == (
            time,
            1,
            None,
            "1042",
        )
    assert out.problems == [
        Problem(
            "bad_meter_value",
            "meter value 'n/a' is not a number at $.meterValue[0].sampledValue[3].value",
        ),
        Problem(
            "bad_meter_value",
            "meter value 'NaN' is not a number at $.meterValue[0].sampledValue[6].value",
        ),
    ]
    (signed,) = _of(out.records, ChargerEvent)
    assert signed.event == "signed_meter_value" and signed.time == time
    assert signed.key == "1:Energy.Active.Import.Register:::Sample.Clock"
    assert signed.detail == {
        "connector_id": 1,
        "transaction_id": "1042",
        "measurand": "Energy.Active.Import.Register",
        "timestamp": "2026-03-01T12:00:00Z",
        "context": "Sample.Clock",
        "signed_data": "AP///8AAAAA0b8TZQ==",
        "unit": "Wh",
    }


def test_meter_values_16_number_spellings() -> None:
    """Values the one-call parse refuses (not JSON numbers) still go through float()."""
    values = ["0012.5", "+3", " 4.25 ", "1e3", "-0.5", ".5"]
    payload: dict[str, Any] = {
        "connectorId": 3,
        "meterValue": [
            {
                "timestamp": "2026-03-01T12:00:00Z",
                "sampledValue": [
                    {"value": v, "measurand": "Current.Import", "unit": "A", "phase": p}
                    for v, p in zip(values, ["L1", "L2", "L3", "N", "L1-N", "L2-N"], strict=True)
                ],
            }
        ],
    }
    out = _run(CTX16, "MeterValues", payload)
    assert out.problems == []
    assert [r.value for r in _of(out.records, MeterValue)] == [12.5, 3.0, 4.25, 1000.0, -0.5, 0.5]
    # A comma inside one value must not shift the others; out of range is not a number.
    payload["meterValue"][0]["sampledValue"] = [
        {"value": "1,5", "measurand": "Voltage"},
        {"value": "230", "measurand": "Voltage", "phase": "L1"},
        {"value": "1e999", "measurand": "Voltage", "phase": "L2"},
        {"value": "-Infinity", "measurand": "Voltage", "phase": "L3"},
    ]
    out = _run(CTX16, "MeterValues", payload)
    assert [r.value for r in _of(out.records, MeterValue)] == [230.0]
    assert [p.message.split(" at ")[1] for p in out.problems] == [
        f"$.meterValue[0].sampledValue[{j}].value" for j in (0, 2, 3)
    ]


def test_meter_values_16_transaction_from_tx() -> None:
    payload = {k: v for k, v in METER16.items() if k != "transactionId"}
    rows = _of(_run(CTX16, "MeterValues", payload).records, MeterValue)
    assert {r.transaction_id for r in rows} == {None}
    rows = _of(_run(CTX16, "MeterValues", payload, tx=TX16).records, MeterValue)
    assert {r.transaction_id for r in rows} == {"1042"}


@pytest.mark.parametrize("hashed", [True, False])
def test_start_transaction_16(hashed: bool) -> None:
    ctx = Context("CP-16", V16, RECEIVED, station_id="ST-1", hash_id_tags=hashed)
    payload = {**START16, "reservationId": 7}
    (session,) = _run(ctx, "StartTransaction", payload, START16_ANSWER).records
    assert session == ChargingSession(
        charger_id="CP-16",
        transaction_id="1042",
        time=T0,
        event="start",
        protocol=V16,
        connector_id=2,
        id_tag=id_tag_for_store("04A2B3C4D5E6F7") if hashed else "04A2B3C4D5E6F7",
        id_tag_hashed=hashed,
        started_at=T0,
        meter_start_wh=1_250_000.0,
        station_id="ST-1",
        extra={"id_tag_status": "Accepted", "reservation_id": 7},
        received_at=RECEIVED,
    )


def test_start_transaction_16_needs_an_id() -> None:
    request = _request(V16, "StartTransaction", START16)
    (session,) = records_for(CTX16, "StartTransaction", request, None, TX16).records
    assert isinstance(session, ChargingSession) and session.transaction_id == "1042"
    with pytest.raises(ValueError, match="transaction id"):
        records_for(CTX16, "StartTransaction", request)


def test_stop_transaction_16() -> None:
    out = _run(CTX16, "StopTransaction", STOP16, {"idTagInfo": {"status": "Accepted"}}, TX16)
    assert out.problems == []
    session, *rows = out.records
    assert session == ChargingSession(
        charger_id="CP-16",
        transaction_id="1042",
        time=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        event="stop",
        protocol=V16,
        connector_id=2,
        id_tag=id_tag_for_store("04A2B3C4D5E6F7"),  # from tx: the request has none
        id_tag_hashed=True,
        started_at=T0,
        stopped_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        meter_start_wh=1_250_000.0,
        meter_stop_wh=1_262_345.0,
        energy_wh=12_345.0,
        soc_start_pct=20.0,
        soc_pct=65.0,
        stop_reason="Local",  # the 1.6 default
        station_id="ST-1",
        extra={"id_tag_status": "Accepted"},
        received_at=RECEIVED,
    )
    assert len(rows) == 4
    values = _of(rows, MeterValue)
    assert [(r.measurand, r.value, r.unit, r.context) for r in values] == [
        ("Energy.Active.Import.Register", 1_250_000.0, "Wh", "Transaction.Begin"),
        ("SoC", 20.0, "Percent", "Transaction.Begin"),
        ("Energy.Active.Import.Register", 1_262_345.0, "Wh", "Transaction.End"),
        ("SoC", 65.0, "Percent", "Transaction.End"),
    ]
    assert all(r.transaction_id == "1042" and r.connector_id == 2 for r in values)


def test_stop_transaction_16_without_tx() -> None:
    payload = {
        "transactionId": 77,
        "meterStop": 5000,
        "timestamp": "2026-03-01T12:00:00Z",
        "idTag": "ABC",
        "reason": "EVDisconnected",
        "transactionData": [
            {"timestamp": "2026-03-01T12:00:00Z", "sampledValue": [{"value": "oops"}]}
        ],
    }
    ctx = Context("CP-16", V16, RECEIVED, hash_id_tags=False)
    out = _run(ctx, "StopTransaction", payload)
    (session,) = out.records
    assert isinstance(session, ChargingSession)
    assert (session.transaction_id, session.meter_stop_wh, session.energy_wh) == (
        "77",
        5000.0,
        None,
    )
    assert (session.stop_reason, session.id_tag, session.id_tag_hashed) == (
        "EVDisconnected",
        "ABC",
        False,
    )
    assert (session.connector_id, session.started_at, session.extra) == (None, None, None)
    assert out.problems == [
        Problem(
            "bad_meter_value",
            "meter value 'oops' is not a number at $.transactionData[0].sampledValue[0].value",
        )
    ]


def test_boot_notification_16() -> None:
    payload = {
        "chargePointVendor": "Alfen BV",
        "chargePointModel": "NG920-61001",
        "chargePointSerialNumber": "ACE0123456",
        "firmwareVersion": "5.8.1-4123",
        "iccid": "8931081120000012345",
        "meterType": "Inepro PRO380",
    }
    answer = {"status": "Accepted", "currentTime": "2026-03-01T12:00:05Z", "interval": 300}
    (event,) = _run(CTX16, "BootNotification", payload, answer).records
    assert event == ChargerEvent(
        charger_id="CP-16",
        time=RECEIVED,
        event="boot",
        protocol=V16,
        key="",
        detail={**payload, "status": "Accepted", "interval": 300},
        station_id="ST-1",
        received_at=RECEIVED,
    )
    (event,) = _run(CTX16, "BootNotification", payload).records
    assert isinstance(event, ChargerEvent) and event.detail == payload


@pytest.mark.parametrize(
    ("action", "payload", "event", "key"),
    [
        ("FirmwareStatusNotification", {"status": "Downloading"}, "firmware_status", "Downloading"),
        (
            "SignedFirmwareStatusNotification",
            {"status": "SignatureVerified", "requestId": 12},
            "firmware_status",
            "12:SignatureVerified",
        ),
        ("DiagnosticsStatusNotification", {"status": "Uploaded"}, "diagnostics_status", "Uploaded"),
        (
            "LogStatusNotification",
            {"status": "Uploading", "requestId": 3},
            "log_status",
            "3:Uploading",
        ),
    ],
)
def test_status_events_16(action: str, payload: dict[str, Any], event: str, key: str) -> None:
    (record,) = _run(CTX16, action, payload).records
    assert record == ChargerEvent(
        charger_id="CP-16",
        time=RECEIVED,
        event=event,
        protocol=V16,
        key=key,
        detail=payload,
        station_id="ST-1",
        received_at=RECEIVED,
    )


def test_security_event_16() -> None:
    payload = {
        "type": "InvalidCentralSystemCertificate",
        "timestamp": "2026-03-01T11:58:00.123Z",
        "techInfo": "CN mismatch",
    }
    (record,) = _run(CTX16, "SecurityEventNotification", payload).records
    assert isinstance(record, ChargerEvent)
    assert record.time == datetime(2026, 3, 1, 11, 58, 0, 123000, tzinfo=UTC)
    assert record.key == "InvalidCentralSystemCertificate:CN mismatch"
    assert record.detail == {**payload, "timestamp": "2026-03-01T11:58:00.123000Z"}
    (bare,) = _run(CTX16, "SecurityEventNotification", {**payload, "techInfo": "other"}).records
    assert isinstance(bare, ChargerEvent) and bare.key != record.key


def test_data_transfer_16() -> None:
    payload = {"vendorId": "com.example", "messageId": "Tariff", "data": '{"eur_kwh": 0.39}'}
    answer = {"status": "Accepted", "data": "ok"}
    (record,) = _run(CTX16, "DataTransfer", payload, answer).records
    assert isinstance(record, ChargerEvent)
    assert (record.event, record.key, record.time) == (
        "data_transfer",
        "com.example:Tariff",
        RECEIVED,
    )
    assert record.detail == {**payload, "status": "Accepted", "response_data": "ok"}


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        (V16, "Heartbeat", {}),
        (V16, "Authorize", {"idTag": "04A2B3C4D5E6F7"}),
        (V201, "Heartbeat", {}),
        (V201, "Authorize", {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}}),
        (V201, "ClearedChargingLimit", {"chargingLimitSource": "EMS"}),
    ],
)
def test_no_records(version: str, action: str, payload: dict[str, Any]) -> None:
    ctx = CTX16 if version == V16 else CTX201
    assert _run(ctx, action, payload) == Normalized([], [])


def test_misuse() -> None:
    heartbeat = _request(V16, "Heartbeat", {})
    with pytest.raises(TypeError):
        records_for(CTX16, "StatusNotification", heartbeat)
    with pytest.raises(TypeError):  # a 1.6 Struct on a 2.0.1 connection
        records_for(CTX201, "MeterValues", _request(V16, "MeterValues", METER16))
    with pytest.raises(ValueError, match="version"):
        records_for(Context("CP", "ocpp2.1", RECEIVED), "Heartbeat", heartbeat)


# -- OCPP 2.0.1 -------------------------------------------------------------------------------


def _sampled(value: float, measurand: str | None = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value, **fields}
    if measurand is not None:
        out["measurand"] = measurand
    return out


STARTED = {
    "eventType": "Started",
    "timestamp": "2026-03-01T11:59:00Z",
    "triggerReason": "Authorized",
    "seqNo": 0,
    "transactionInfo": {
        "transactionId": "a1b2c3d4-0001",
        "chargingState": "EVConnected",
        "remoteStartId": 9,
    },
    "evse": {"id": 1, "connectorId": 1},
    "idToken": {"idToken": "04A2B3C4D5E6F7", "type": "ISO14443"},
    "reservationId": 4,
    "meterValue": [
        {
            "timestamp": "2026-03-01T11:59:00Z",
            "sampledValue": [
                _sampled(1250.0, context="Transaction.Begin", unitOfMeasure={"unit": "kWh"}),
                _sampled(20, "SoC", context="Transaction.Begin", location="EV"),
            ],
        }
    ],
}
UPDATED = {
    "eventType": "Updated",
    "timestamp": "2026-03-01T12:30:00Z",
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 1,
    "offline": True,
    "numberOfPhasesUsed": 3,
    "transactionInfo": {"transactionId": "a1b2c3d4-0001", "chargingState": "Charging"},
    "meterValue": [
        {
            "timestamp": "2026-03-01T12:29:00Z",
            "sampledValue": [_sampled(1_255_000.0), _sampled(40, "SoC", location="EV")],
        },
        {
            "timestamp": "2026-03-01T12:30:00Z",
            "sampledValue": [
                _sampled(1_256_500.0),
                _sampled(420.0, phase="L1", unitOfMeasure={"unit": "Wh"}),  # per phase: ignored
                _sampled(1_300_000.0, location="EV"),  # not the Outlet: ignored
                _sampled(45, "SoC", location="EV"),
                _sampled(11.0, "Power.Active.Import", unitOfMeasure={"unit": "kW"}),
                _sampled(
                    1604,
                    "Current.Import",
                    phase="L1",
                    unitOfMeasure={"unit": "A", "multiplier": -2},
                ),
            ],
        },
    ],
}
ENDED = {
    "eventType": "Ended",
    "timestamp": "2026-03-01T13:00:00+01:00",
    "triggerReason": "EVDeparted",
    "seqNo": 2,
    "transactionInfo": {"transactionId": "a1b2c3d4-0001", "stoppedReason": "EVDisconnected"},
    "evse": {"id": 1},
    "meterValue": [
        {
            "timestamp": "2026-03-01T12:00:00Z",
            "sampledValue": [
                _sampled(
                    1262.345,
                    context="Transaction.End",
                    unitOfMeasure={"unit": "kWh"},
                    signedMeterValue={
                        "signedMeterData": "OCMF|{...}|{...}",
                        "signingMethod": "ECDSA-secp256r1-SHA256",
                        "encodingMethod": "OCMF",
                        "publicKey": "3059301306072A8648CE3D0201",
                    },
                ),
                _sampled(80, "SoC", context="Transaction.End", location="EV"),
            ],
        }
    ],
}
TX201 = TxInfo(
    "a1b2c3d4-0001",
    connector_id=1,
    evse_id=1,
    started_at=T0,
    meter_start_wh=1_250_000.0,
    id_tag="04A2B3C4D5E6F7",
)


def test_status_notification_201() -> None:
    payload = {
        "timestamp": "2026-03-01T12:00:00Z",
        "connectorStatus": "Occupied",
        "evseId": 2,
        "connectorId": 1,
    }
    (row,) = _run(CTX201, "StatusNotification", payload).records
    assert row == ChargerStatus(
        charger_id="CP-201",
        time=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        connector_id=1,
        status="Occupied",
        protocol=V201,
        evse_id=2,
        station_id="ST-2",
        received_at=RECEIVED,
    )


def test_meter_values_201() -> None:
    payload = {
        "evseId": 1,
        "meterValue": [
            {
                "timestamp": "2026-03-01T20:00:00+08:00",
                "sampledValue": [
                    _sampled(12345678.0, unitOfMeasure={"unit": "Wh", "multiplier": -3}),
                    _sampled(3.3, "Power.Active.Import", unitOfMeasure={"unit": "kW"}),
                    _sampled(230.0, "Voltage", phase="L1-N"),  # no unit: V
                    _sampled(0.98, "Power.Factor"),
                    _sampled(50.0, "Frequency", unitOfMeasure={"unit": "Hz"}),
                    _sampled(
                        5.0,
                        unitOfMeasure={"multiplier": 3},  # unit left out: Wh
                        context="Sample.Clock",
                        signedMeterValue={
                            "signedMeterData": "AAEC",
                            "signingMethod": "",
                            "encodingMethod": "EDL",
                            "publicKey": "",
                        },
                    ),
                ],
            }
        ],
    }
    out = _run(CTX201, "MeterValues", payload)
    assert out.problems == []
    rows = _of(out.records, MeterValue)
    time = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert [(r.measurand, r.value, r.unit, r.phase, r.context) for r in rows] == [
        ("Energy.Active.Import.Register", 12345.678, "Wh", None, "Sample.Periodic"),
        ("Power.Active.Import", 3300.0, "W", None, "Sample.Periodic"),
        ("Voltage", 230.0, "V", "L1-N", "Sample.Periodic"),
        ("Power.Factor", 0.98, "", None, "Sample.Periodic"),
        ("Frequency", 50.0, "Hz", None, "Sample.Periodic"),
        ("Energy.Active.Import.Register", 5000.0, "Wh", None, "Sample.Clock"),
    ]
    # 2.0.1 MeterValues names the EVSE only: connector 0, evse_id the evseId.
    assert {(r.time, r.connector_id, r.evse_id, r.transaction_id) for r in rows} == {
        (time, 0, 1, None)
    }
    (signed,) = _of(out.records, ChargerEvent)
    assert (signed.event, signed.time) == ("signed_meter_value", time)
    assert signed.key == "1/0:Energy.Active.Import.Register:::Sample.Clock"
    assert signed.detail is not None
    assert signed.detail["signed_data"] == "AAEC" and signed.detail["encoding_method"] == "EDL"
    assert (signed.detail["value"], signed.detail["unit"]) == (5000.0, "Wh")
    rows = _of(_run(CTX201, "MeterValues", payload, tx=TX201).records, MeterValue)
    assert {r.transaction_id for r in rows} == {"a1b2c3d4-0001"}


def test_transaction_started() -> None:
    answer = {"idTokenInfo": {"status": "Accepted"}}
    out = _run(CTX201, "TransactionEvent", STARTED, answer)
    session, *rows = out.records
    assert session == ChargingSession(
        charger_id="CP-201",
        transaction_id="a1b2c3d4-0001",
        time=T0,
        event="start",
        protocol=V201,
        connector_id=1,
        evse_id=1,
        id_tag=id_tag_for_store("04A2B3C4D5E6F7"),
        id_tag_hashed=True,
        started_at=T0,
        meter_start_wh=1_250_000.0,
        energy_wh=0.0,
        soc_start_pct=20.0,
        soc_pct=20.0,
        station_id="ST-2",
        extra={
            "seq_no": 0,
            "trigger_reason": "Authorized",
            "charging_state": "EVConnected",
            "remote_start_id": 9,
            "reservation_id": 4,
            "id_token_type": "ISO14443",
            "id_token_status": "Accepted",
        },
        received_at=RECEIVED,
    )
    assert len(rows) == 2
    values = _of(rows, MeterValue)
    assert [(r.measurand, r.value, r.unit) for r in values] == [
        ("Energy.Active.Import.Register", 1_250_000.0, "Wh"),
        ("SoC", 20.0, "Percent"),
    ]
    assert all(
        (r.transaction_id, r.evse_id, r.connector_id) == ("a1b2c3d4-0001", 1, 1) for r in values
    )


def test_transaction_updated() -> None:
    (session, *rows) = _run(CTX201, "TransactionEvent", UPDATED, tx=TX201).records
    assert isinstance(session, ChargingSession)
    assert (session.event, session.evse_id, session.connector_id) == ("update", 1, 1)  # from tx
    assert session.started_at == T0 and session.meter_start_wh == 1_250_000.0
    assert session.energy_wh == 6_500.0  # the latest total register at the Outlet
    assert (session.soc_pct, session.soc_start_pct) == (45.0, None)
    assert (session.meter_stop_wh, session.stopped_at, session.stop_reason) == (None, None, None)
    assert session.id_tag == id_tag_for_store("04A2B3C4D5E6F7")  # from tx
    assert session.extra == {
        "seq_no": 1,
        "trigger_reason": "MeterValuePeriodic",
        "charging_state": "Charging",
        "offline": True,
        "number_of_phases": 3,
    }
    assert len(rows) == 8
    current = next(r for r in rows if isinstance(r, MeterValue) and r.measurand == "Current.Import")
    assert (current.value, current.unit, current.phase) == (16.04, "A", "L1")
    # tx times in any offset come out in UTC
    paris = TxInfo("a1b2c3d4-0001", started_at=T0.astimezone(timezone(timedelta(hours=1))))
    (session, *_) = _run(CTX201, "TransactionEvent", UPDATED, tx=paris).records
    assert isinstance(session, ChargingSession) and session.started_at is not None
    assert session.started_at == T0 and session.started_at.tzinfo is UTC
    # Without tx: no start reading, no energy, no EVSE.
    (session, *_) = _run(CTX201, "TransactionEvent", UPDATED).records
    assert isinstance(session, ChargingSession)
    assert (session.energy_wh, session.evse_id, session.connector_id, session.id_tag) == (None,) * 4
    assert session.started_at is None


def test_transaction_ended() -> None:
    out = _run(CTX201, "TransactionEvent", ENDED, tx=TX201)
    session = out.records[0]
    end = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert isinstance(session, ChargingSession)
    assert (session.event, session.time, session.stopped_at) == ("stop", end, end)
    assert (session.evse_id, session.connector_id) == (1, 1)  # connector from tx
    assert session.meter_stop_wh == 1_262_345.0 and session.energy_wh == 12_345.0
    assert session.stop_reason == "EVDisconnected" and session.soc_pct == 80.0
    signed = _of(out.records, ChargerEvent)
    assert [(e.event, e.detail["signed_data"]) for e in signed if e.detail] == [
        ("signed_meter_value", "OCMF|{...}|{...}")
    ]
    assert signed[0].detail is not None and signed[0].detail["transaction_id"] == "a1b2c3d4-0001"
    # stoppedReason may be left out only when it is Local.
    local = {**ENDED, "transactionInfo": {"transactionId": "a1b2c3d4-0001"}}
    (session, *_) = _run(CTX201, "TransactionEvent", local, tx=TX201).records
    assert isinstance(session, ChargingSession) and session.stop_reason == "Local"


@pytest.mark.parametrize("hashed", [True, False])
def test_transaction_id_tokens(hashed: bool) -> None:
    ctx = Context("CP-201", V201, RECEIVED, hash_id_tags=hashed)
    (session, *_) = _run(ctx, "TransactionEvent", STARTED).records
    assert isinstance(session, ChargingSession)
    expected = id_tag_for_store("04A2B3C4D5E6F7") if hashed else "04A2B3C4D5E6F7"
    assert (session.id_tag, session.id_tag_hashed) == (expected, hashed)
    free = {**STARTED, "idToken": {"idToken": "", "type": "NoAuthorization"}}
    (session, *_) = _run(ctx, "TransactionEvent", free).records
    assert isinstance(session, ChargingSession)
    assert (session.id_tag, session.id_tag_hashed) == (None, False)
    assert session.extra is not None and session.extra["id_token_type"] == "NoAuthorization"


def test_boot_notification_201() -> None:
    payload = {
        "reason": "PowerUp",
        "chargingStation": {
            "model": "Wallbox XL",
            "vendorName": "Example GmbH",
            "serialNumber": "WB-000123",
            "firmwareVersion": "2.4.0",
            "modem": {"iccid": "8931081120000012345", "imsi": "262011234567890"},
        },
    }
    answer = {"currentTime": "2026-03-01T12:00:05Z", "interval": 60, "status": "Pending"}
    (event,) = _run(CTX201, "BootNotification", payload, answer).records
    assert isinstance(event, ChargerEvent)
    assert (event.event, event.time, event.key, event.protocol) == ("boot", RECEIVED, "", V201)
    assert event.detail == {**payload, "status": "Pending", "interval": 60}


def test_security_event_201() -> None:
    payload = {"type": "SettingSystemTime", "timestamp": "2026-03-01T12:00:00-05:00"}
    (event,) = _run(CTX201, "SecurityEventNotification", payload).records
    assert isinstance(event, ChargerEvent)
    assert event.time == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    assert (event.event, event.key) == ("security_event", "SettingSystemTime")
    assert event.detail == {"type": "SettingSystemTime", "timestamp": "2026-03-01T12:00:00-05:00"}


def _notify_event(seq_no: int, *event_ids: int) -> dict[str, Any]:
    return {
        "generatedAt": "2026-03-01T12:00:00Z",
        "seqNo": seq_no,
        "tbc": False,
        "eventData": [
            {
                "eventId": event_id,
                "timestamp": "2026-03-01T11:59:59Z",
                "trigger": "Alerting",
                "actualValue": "Faulted",
                "techCode": "E42",
                "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
                "variable": {"name": "Problem"},
                "eventNotificationType": "HardWiredNotification",
            }
            for event_id in event_ids
        ],
    }


def test_notify_event() -> None:
    (event,) = _run(CTX201, "NotifyEvent", _notify_event(3, 101, 102)).records
    assert isinstance(event, ChargerEvent)
    assert (event.event, event.time, event.key) == (
        "notify_event",
        T0 + timedelta(minutes=1),
        "3:101,102",
    )
    assert event.detail is not None and event.detail["eventData"][1]["eventId"] == 102
    (many,) = _run(CTX201, "NotifyEvent", _notify_event(4, *range(200, 220))).records
    assert isinstance(many, ChargerEvent) and many.key == "4:200..219#20"
    (other,) = _run(CTX201, "NotifyEvent", _notify_event(3, 103)).records
    assert isinstance(other, ChargerEvent) and other.key != event.key


def test_notify_report() -> None:
    payload = {
        "requestId": 17,
        "generatedAt": "2026-03-01T12:00:00Z",
        "seqNo": 2,
        "tbc": True,
        "reportData": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "variableAttribute": [
                    {"type": "Actual", "value": "300", "mutability": "ReadWrite"}
                ],
                "variableCharacteristics": {
                    "dataType": "integer",
                    "supportsMonitoring": False,
                    "unit": "s",
                },
            }
        ],
    }
    (event,) = _run(CTX201, "NotifyReport", payload).records
    assert isinstance(event, ChargerEvent)
    assert (event.event, event.key, event.time) == (
        "notify_report",
        "17:2",
        T0 + timedelta(minutes=1),
    )
    assert event.detail is not None
    assert event.detail["reportData"][0]["variableAttribute"][0]["value"] == "300"


@pytest.mark.parametrize(
    ("action", "payload", "event", "key"),
    [
        (
            "FirmwareStatusNotification",
            {"status": "Installed", "requestId": 5},
            "firmware_status",
            "5:Installed",
        ),
        ("FirmwareStatusNotification", {"status": "Idle"}, "firmware_status", "Idle"),
        (
            "LogStatusNotification",
            {"status": "Uploaded", "requestId": 8},
            "log_status",
            "8:Uploaded",
        ),
    ],
)
def test_status_events_201(action: str, payload: dict[str, Any], event: str, key: str) -> None:
    (record,) = _run(CTX201, action, payload).records
    assert isinstance(record, ChargerEvent)
    assert (record.event, record.key, record.time, record.detail) == (event, key, RECEIVED, payload)


def test_data_transfer_201() -> None:
    payload = {
        "vendorId": "org.openchargealliance.iso15118pnc",
        "data": {"certificate": "MIIB", "n": [1, 2]},
    }
    (record,) = _run(CTX201, "DataTransfer", payload, {"status": "UnknownVendorId"}).records
    assert isinstance(record, ChargerEvent)
    assert record.key == "org.openchargealliance.iso15118pnc"
    assert record.detail == {**payload, "status": "UnknownVendorId"}


# -- every message: common fields, idempotence, keys ------------------------------------------

CATALOG: list[tuple[Context, str, dict[str, Any], dict[str, Any] | None, TxInfo | None]] = [
    (
        CTX16,
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Charging"},
        None,
        None,
    ),
    (CTX16, "MeterValues", METER16, None, None),
    (CTX16, "StartTransaction", START16, START16_ANSWER, None),
    (CTX16, "StopTransaction", STOP16, None, TX16),
    (CTX16, "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}, None, None),
    (
        CTX16,
        "SecurityEventNotification",
        {"type": "StartupOfTheDevice", "timestamp": "2026-03-01T11:00:00Z"},
        None,
        None,
    ),
    (CTX16, "FirmwareStatusNotification", {"status": "Installed"}, None, None),
    (CTX16, "DiagnosticsStatusNotification", {"status": "Idle"}, None, None),
    (CTX16, "DataTransfer", {"vendorId": "v"}, None, None),
    (
        CTX201,
        "StatusNotification",
        {
            "timestamp": "2026-03-01T12:00:00Z",
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
        },
        None,
        None,
    ),
    (CTX201, "TransactionEvent", STARTED, None, None),
    (CTX201, "TransactionEvent", UPDATED, None, TX201),
    (CTX201, "TransactionEvent", ENDED, None, TX201),
    (CTX201, "NotifyEvent", _notify_event(1, 1), None, None),
    (CTX201, "NotifyEvent", _notify_event(2, 2), None, None),
    (
        CTX201,
        "SecurityEventNotification",
        {"type": "StartupOfTheDevice", "timestamp": "2026-03-01T11:00:00Z"},
        None,
        None,
    ),
    (CTX201, "LogStatusNotification", {"status": "Idle"}, None, None),
]


def test_common_fields_and_idempotence() -> None:
    seen: set[tuple[str, str, str, datetime]] = set()
    for ctx, action, payload, response, tx in CATALOG:
        first = _run(ctx, action, payload, response, tx)
        again = _run(ctx, action, payload, response, tx)
        assert first == again, action  # a retried message gives the same records
        assert first.records, action
        for record in first.records:
            assert isinstance(record, ChargerStatus | MeterValue | ChargingSession | ChargerEvent)
            assert record.charger_id == ctx.charger_id
            assert record.protocol == ctx.version
            assert record.station_id == ctx.station_id
            assert record.received_at == RECEIVED
            assert record.time.utcoffset() == timedelta(0)
            if isinstance(record, ChargerEvent):
                identity = (record.charger_id, record.event, record.key, record.time)
                assert identity not in seen, identity  # distinct messages do not collide
                seen.add(identity)
                json.dumps(record.detail)  # JSON-able


def test_times_are_utc_from_any_offset() -> None:
    ctx = Context("CP", V201, RECEIVED)
    payload = {"type": "X", "timestamp": "2026-03-01T12:00:00+05:30"}
    (event,) = _run(ctx, "SecurityEventNotification", payload).records
    assert isinstance(event, ChargerEvent)
    assert event.time == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert event.time.tzinfo is UTC
    assert event.time == datetime(
        2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
