"""OCPP 1.6 <-> 2.0.1 translation of the bridge (gateway.ocpp.translate): every translated action in
both directions, requests and answers valid against the other version's schema, the transaction
id maps, seqNo, remote starts, configuration keys, and round trips."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from gateway.ocpp import messages
from gateway.ocpp import translate as tr
from gateway.ocpp.translate import V16, V201, Plan, TxState, Untranslatable

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
T0 = "2026-11-27T09:00:00Z"
T1 = "2026-11-27T09:30:00Z"
OTHER = {V16: V201, V201: V16}


def req(version: str, action: str, payload: dict[str, Any]) -> Any:
    return messages.decode_request(version, action, msgspec.json.encode(payload))


def resp(version: str, action: str, payload: dict[str, Any]) -> Any:
    return messages.decode_response(version, action, msgspec.json.encode(payload))


def as_dict(struct: Any) -> Any:
    return msgspec.json.decode(messages.encode(struct))


def step(plan: Plan, version: str, index: int = 0) -> tuple[str, dict[str, Any]]:
    """A planned CALL, checked against ``version``'s schema, as (action, JSON dict)."""
    action, request = plan.steps[index]
    assert type(request) is messages.ACTIONS[version][action][0]
    checked = messages.decode_request(version, action, messages.encode(request))
    return action, as_dict(checked)


def back(plan: Plan, version: str, action: str, *answers: dict[str, Any]) -> dict[str, Any]:
    """The plan's answer (a response of ``version``'s ``action``, schema-checked) to
    ``answers``, given as JSON dicts of the other version's step actions."""
    decoded = [
        resp(OTHER[version], step_action, a)
        for (step_action, _), a in zip(plan.steps, answers, strict=True)
    ]
    answer = plan.back(decoded)
    assert type(answer) is messages.ACTIONS[version][action][1]
    out: dict[str, Any] = as_dict(
        messages.decode_response(version, action, messages.encode(answer))
    )
    return out


def up(st: TxState, version: str, action: str, payload: dict[str, Any]) -> Plan:
    return tr.to_upstream(st, version, OTHER[version], action, req(version, action, payload), NOW)


def down(st: TxState, version: str, action: str, payload: dict[str, Any]) -> Plan:
    """An upstream CALL of ``version`` planned for a charger of the other version."""
    return tr.to_charger(st, version, OTHER[version], action, req(version, action, payload))


def state() -> TxState:
    return TxState(int_ids=lambda now: 1_800_000_000)


# -- charger 1.6 -> upstream 2.0.1 --------------------------------------------------------------


def test_boot_16_to_201() -> None:
    plan = up(
        state(),
        V16,
        "BootNotification",
        {
            "chargePointVendor": "Acme",
            "chargePointModel": "AC22",
            "chargeBoxSerialNumber": "SN-1",
            "firmwareVersion": "1.2.3",
            "iccid": "8986",
            "imsi": "4600",
            "meterType": "M1",
        },
    )
    assert step(plan, V201) == (
        "BootNotification",
        {
            "chargingStation": {
                "serialNumber": "SN-1",
                "model": "AC22",
                "modem": {"iccid": "8986", "imsi": "4600"},
                "vendorName": "Acme",
                "firmwareVersion": "1.2.3",
            },
            "reason": "PowerUp",
        },
    )
    answer = {"currentTime": T0, "interval": 300, "status": "Pending"}
    assert back(plan, V16, "BootNotification", answer) == {
        "status": "Pending",
        "currentTime": T0,
        "interval": 300,
    }


def test_boot_201_to_16() -> None:
    plan = up(
        state(),
        V201,
        "BootNotification",
        {
            "chargingStation": {
                "model": "DC60",
                "vendorName": "A vendor name longer than twenty",
                "serialNumber": "S9",
                "modem": {"imsi": "4600"},
            },
            "reason": "Watchdog",
        },
    )
    assert step(plan, V16) == (
        "BootNotification",
        {
            "chargePointVendor": "A vendor name longer",
            "chargePointModel": "DC60",
            "chargePointSerialNumber": "S9",
            "imsi": "4600",
        },
    )
    answer = {"status": "Accepted", "currentTime": T0, "interval": 60}
    assert back(plan, V201, "BootNotification", answer) == {
        "currentTime": T0,
        "interval": 60,
        "status": "Accepted",
    }


@pytest.mark.parametrize("version", [V16, V201])
def test_heartbeat(version: str) -> None:
    plan = up(state(), version, "Heartbeat", {})
    assert step(plan, OTHER[version]) == ("Heartbeat", {})
    assert back(plan, version, "Heartbeat", {"currentTime": T0}) == {"currentTime": T0}


@pytest.mark.parametrize(
    ("status16", "status201"),
    [
        ("Available", "Available"),
        ("Preparing", "Occupied"),
        ("Charging", "Occupied"),
        ("SuspendedEV", "Occupied"),
        ("SuspendedEVSE", "Occupied"),
        ("Finishing", "Occupied"),
        ("Reserved", "Reserved"),
        ("Unavailable", "Unavailable"),
        ("Faulted", "Faulted"),
    ],
)
def test_status_16_to_201(status16: str, status201: str) -> None:
    plan = up(
        state(),
        V16,
        "StatusNotification",
        {"connectorId": 2, "errorCode": "NoError", "status": status16},
    )
    assert step(plan, V201) == (
        "StatusNotification",
        {
            "timestamp": "2026-11-27T10:00:00Z",
            "connectorStatus": status201,
            "evseId": 2,
            "connectorId": 1,
        },
    )
    assert back(plan, V16, "StatusNotification", {}) == {}


def test_status_16_connector_0_is_not_relayed() -> None:
    with pytest.raises(Untranslatable):
        up(
            state(),
            V16,
            "StatusNotification",
            {"connectorId": 0, "errorCode": "NoError", "status": "Available"},
        )


def status_201(st: TxState, status: str, evse: int = 1) -> dict[str, Any]:
    plan = up(
        st,
        V201,
        "StatusNotification",
        {"timestamp": T0, "connectorStatus": status, "evseId": evse, "connectorId": 1},
    )
    _, request = step(plan, V16)
    assert back(plan, V201, "StatusNotification", {}) == {}
    return request


@pytest.mark.parametrize("status", ["Available", "Reserved", "Unavailable"])
def test_status_201_to_16_plain(status: str) -> None:
    assert status_201(state(), status, evse=3) == {
        "connectorId": 3,
        "errorCode": "NoError",
        "status": status,
        "timestamp": T0,
    }


def test_status_201_faulted_has_an_error_code() -> None:
    assert status_201(state(), "Faulted")["errorCode"] == "OtherError"


# -- transactions: 1.6 charger, 2.0.1 upstream --------------------------------------------------


def start_16(st: TxState, id_tag: str = "TAG1", connector: int = 1) -> tuple[Plan, dict[str, Any]]:
    plan = up(
        st,
        V16,
        "StartTransaction",
        {"connectorId": connector, "idTag": id_tag, "meterStart": 1000, "timestamp": T0},
    )
    return plan, step(plan, V201)[1]


def test_start_transaction_16_to_201() -> None:
    st = state()
    plan, event = start_16(st)
    assert event == {
        "eventType": "Started",
        "meterValue": [
            {
                "sampledValue": [
                    {
                        "value": 1000.0,
                        "context": "Transaction.Begin",
                        "measurand": "Energy.Active.Import.Register",
                    }
                ],
                "timestamp": T0,
            }
        ],
        "timestamp": T0,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "1800000000"},
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "TAG1", "type": "ISO14443"},
    }
    answer = back(plan, V16, "StartTransaction", {"idTokenInfo": {"status": "Blocked"}})
    assert answer == {"idTagInfo": {"status": "Blocked"}, "transactionId": 1800000000}
    assert st.txs["1800000000"].int_id == 1800000000


def test_start_transaction_ids_are_unique_and_retries_reuse_them() -> None:
    st = state()
    first, _ = start_16(st)
    retry, _ = start_16(st)
    other, event = start_16(st, connector=2)
    ids = [back(p, V16, "StartTransaction", {})["transactionId"] for p in (first, retry, other)]
    assert ids == [1800000000, 1800000000, 1800000001]
    assert event["transactionInfo"]["transactionId"] == "1800000001"
    assert event["seqNo"] == 2  # one counter per charger
    # No idTokenInfo from the upstream: Accepted.
    assert back(other, V16, "StartTransaction", {})["idTagInfo"] == {"status": "Accepted"}


def test_meter_values_16_to_201() -> None:
    st = state()
    sampled = [
        {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW", "phase": "L1"},
        {"value": "50", "measurand": "Frequency", "unit": "Hertz"},
        {"value": "21", "measurand": "Temperature", "unit": "Celcius"},  # not in 2.0.1
        {"value": "signed-blob", "format": "SignedData"},  # not a number
    ]
    payload = {
        "connectorId": 1,
        "transactionId": 42,
        "meterValue": [{"timestamp": T1, "sampledValue": sampled}],
    }
    plan = up(st, V16, "MeterValues", payload)
    action, event = step(plan, V201)
    assert action == "TransactionEvent"
    assert event["eventType"] == "Updated"
    assert event["triggerReason"] == "MeterValuePeriodic"
    assert event["transactionInfo"] == {"transactionId": "42"}
    assert event["timestamp"] == T1
    assert event["meterValue"][0]["sampledValue"] == [
        {
            "value": 1234.5,
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "Wh"},
        },
        {
            "value": 7.2,
            "measurand": "Power.Active.Import",
            "phase": "L1",
            "unitOfMeasure": {"unit": "kW"},
        },
        {"value": 50.0, "measurand": "Frequency", "unitOfMeasure": {"unit": "Hz"}},
    ]
    assert back(plan, V16, "MeterValues", {}) == {}
    # Without a transaction: 2.0.1 MeterValues of the EVSE.
    del payload["transactionId"]
    plan = up(st, V16, "MeterValues", payload)
    action, values = step(plan, V201)
    assert (action, values["evseId"]) == ("MeterValues", 1)
    assert back(plan, V16, "MeterValues", {}) == {}


def test_meter_values_16_nothing_to_carry() -> None:
    payload = {
        "connectorId": 1,
        "meterValue": [{"timestamp": T1, "sampledValue": [{"value": "1", "measurand": "RPM"}]}],
    }
    with pytest.raises(Untranslatable):
        up(state(), V16, "MeterValues", payload)


def test_stop_transaction_16_to_201() -> None:
    st = state()
    plan, _ = start_16(st, connector=2)
    tx_id = back(plan, V16, "StartTransaction", {})["transactionId"]
    stop = up(
        st,
        V16,
        "StopTransaction",
        {
            "idTag": "TAG1",
            "meterStop": 5000,
            "timestamp": T1,
            "transactionId": tx_id,
            "reason": "EVDisconnected",
            "transactionData": [
                {
                    "timestamp": T1,
                    "sampledValue": [{"value": "80", "measurand": "SoC", "unit": "Percent"}],
                }
            ],
        },
    )
    _, event = step(stop, V201)
    assert event["eventType"] == "Ended"
    assert event["seqNo"] == 1
    assert event["triggerReason"] == "EVCommunicationLost"
    assert event["transactionInfo"] == {
        "transactionId": str(tx_id),
        "stoppedReason": "EVDisconnected",
    }
    assert event["evse"] == {"id": 2, "connectorId": 1}  # from the map
    assert event["idToken"] == {"idToken": "TAG1", "type": "ISO14443"}
    assert [mv["sampledValue"][0]["measurand"] for mv in event["meterValue"]] == [
        "SoC",
        "Energy.Active.Import.Register",
    ]
    assert event["meterValue"][1]["sampledValue"][0]["value"] == 5000.0
    answer = back(stop, V16, "StopTransaction", {"idTokenInfo": {"status": "Accepted"}})
    assert answer == {"idTagInfo": {"status": "Accepted"}}
    assert not st.txs


@pytest.mark.parametrize(
    ("reason", "trigger", "stopped"),
    [
        (None, "StopAuthorized", "Local"),
        ("Remote", "RemoteStop", "Remote"),
        ("HardReset", "ResetCommand", "ImmediateReset"),
        ("SoftReset", "ResetCommand", "Reboot"),
        ("DeAuthorized", "Deauthorized", "DeAuthorized"),
        ("UnlockCommand", "UnlockCommand", "Other"),
        ("PowerLoss", "AbnormalCondition", "PowerLoss"),
    ],
)
def test_stop_reasons_16_to_201(reason: str | None, trigger: str, stopped: str) -> None:
    payload: dict[str, Any] = {"meterStop": 1, "timestamp": T1, "transactionId": 7}
    if reason:
        payload["reason"] = reason
    _, event = step(up(state(), V16, "StopTransaction", payload), V201)
    assert (event["triggerReason"], event["transactionInfo"]["stoppedReason"]) == (
        trigger,
        stopped,
    )
    assert "evse" not in event  # a transaction the bridge did not see start: still relayed


def test_stop_without_id_tag_info() -> None:
    plan = up(
        state(), V16, "StopTransaction", {"meterStop": 1, "timestamp": T1, "transactionId": 7}
    )
    assert back(plan, V16, "StopTransaction", {}) == {}


def test_authorize_16_to_201() -> None:
    plan = up(state(), V16, "Authorize", {"idTag": "CARD-9"})
    assert step(plan, V201) == ("Authorize", {"idToken": {"idToken": "CARD-9", "type": "ISO14443"}})
    answer = back(
        plan,
        V16,
        "Authorize",
        {
            "idTokenInfo": {
                "status": "NotAtThisTime",
                "cacheExpiryDateTime": T1,
                "groupIdToken": {"idToken": "FLEET", "type": "Central"},
            }
        },
    )
    assert answer == {"idTagInfo": {"expiryDate": T1, "parentIdTag": "FLEET", "status": "Invalid"}}
    plan = up(state(), V16, "Authorize", {"idTag": "CARD-9"})
    assert back(plan, V16, "Authorize", {"idTokenInfo": {"status": "Accepted"}}) == {
        "idTagInfo": {"status": "Accepted"}
    }


def test_authorize_201_to_16() -> None:
    plan = up(state(), V201, "Authorize", {"idToken": {"idToken": "CARD-9", "type": "eMAID"}})
    assert step(plan, V16) == ("Authorize", {"idTag": "CARD-9"})
    answer = back(plan, V201, "Authorize", {"idTagInfo": {"status": "Expired", "parentIdTag": "P"}})
    assert answer == {
        "idTokenInfo": {"status": "Expired", "groupIdToken": {"idToken": "P", "type": "Central"}}
    }


def test_authorize_201_long_token_is_not_relayed() -> None:
    with pytest.raises(Untranslatable):
        up(state(), V201, "Authorize", {"idToken": {"idToken": "X" * 21, "type": "eMAID"}})


@pytest.mark.parametrize("version", [V16, V201])
def test_data_transfer_up(version: str) -> None:
    payload: dict[str, Any] = {"vendorId": "acme", "messageId": "m", "data": "hello"}
    plan = up(state(), version, "DataTransfer", payload)
    assert step(plan, OTHER[version]) == ("DataTransfer", payload)
    data: Any = {"k": [1, 2]} if version == V16 else "text"
    answer = back(plan, version, "DataTransfer", {"status": "Accepted", "data": data})
    assert answer == {"status": "Accepted", "data": '{"k":[1,2]}' if version == V16 else "text"}


def test_data_transfer_201_structured_data_to_16() -> None:
    plan = up(state(), V201, "DataTransfer", {"vendorId": "acme", "data": {"a": 1}})
    assert step(plan, V16)[1] == {"vendorId": "acme", "data": '{"a":1}'}


@pytest.mark.parametrize("version", [V16, V201])
def test_same_shape_up(version: str) -> None:
    plan = up(
        state(), version, "SecurityEventNotification", {"type": "FirmwareUpdated", "timestamp": T0}
    )
    assert step(plan, OTHER[version]) == (
        "SecurityEventNotification",
        {"type": "FirmwareUpdated", "timestamp": T0},
    )
    assert back(plan, version, "SecurityEventNotification", {}) == {}


def test_same_shape_up_values_the_other_schema_refuses() -> None:
    with pytest.raises(Untranslatable):
        up(state(), V201, "FirmwareStatusNotification", {"status": "InstallScheduled"})


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        (V16, "DiagnosticsStatusNotification", {"status": "Idle"}),
        (
            V201,
            "NotifyEvent",
            {
                "generatedAt": T0,
                "seqNo": 0,
                "eventData": [
                    {
                        "eventId": 1,
                        "timestamp": T0,
                        "trigger": "Alerting",
                        "actualValue": "x",
                        "eventNotificationType": "HardWiredNotification",
                        "component": {"name": "C"},
                        "variable": {"name": "V"},
                    }
                ],
            },
        ),
    ],
)
def test_no_counterpart_up(version: str, action: str, payload: dict[str, Any]) -> None:
    with pytest.raises(Untranslatable):
        up(state(), version, action, payload)


def test_same_versions_are_refused() -> None:
    with pytest.raises(ValueError):
        tr.to_upstream(state(), V16, V16, "Heartbeat", req(V16, "Heartbeat", {}), NOW)


# -- transactions: 2.0.1 charger, 1.6 upstream --------------------------------------------------


def tx_event(event_type: str, seq: int, **extra: Any) -> dict[str, Any]:
    payload = {
        "eventType": event_type,
        "timestamp": T0,
        "triggerReason": "Authorized",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "tx-abc"},
    }
    payload.update(extra)
    return payload


def energy(wh: float, context: str = "Transaction.Begin", **uom: Any) -> list[dict[str, Any]]:
    sv: dict[str, Any] = {"value": wh, "context": context}
    if uom:
        sv["unitOfMeasure"] = uom
    return [{"timestamp": T0, "sampledValue": [sv]}]


def start_201(st: TxState) -> None:
    plan = up(
        st,
        V201,
        "TransactionEvent",
        tx_event(
            "Started",
            0,
            evse={"id": 2, "connectorId": 1},
            idToken={"idToken": "TAG2", "type": "ISO14443"},
            meterValue=energy(2.5, unit="kWh"),
        ),
    )
    assert step(plan, V16) == (
        "StartTransaction",
        {"connectorId": 2, "idTag": "TAG2", "meterStart": 2500, "timestamp": T0},
    )
    answer = back(
        plan, V201, "TransactionEvent", {"idTagInfo": {"status": "Accepted"}, "transactionId": 77}
    )
    assert answer == {"idTokenInfo": {"status": "Accepted"}}


def test_transaction_201_to_16() -> None:
    st = state()
    start_201(st)
    assert st.txs["tx-abc"].int_id == 77
    # Updated with meter values -> MeterValues with the upstream's id.
    plan = up(
        st,
        V201,
        "TransactionEvent",
        tx_event(
            "Updated",
            1,
            triggerReason="MeterValuePeriodic",
            meterValue=energy(3100, "Sample.Periodic"),
        ),
    )
    assert step(plan, V16) == (
        "MeterValues",
        {
            "connectorId": 2,
            "transactionId": 77,
            "meterValue": [
                {"timestamp": T0, "sampledValue": [{"value": "3100", "context": "Sample.Periodic"}]}
            ],
        },
    )
    assert back(plan, V201, "TransactionEvent", {}) == {}
    # Ended -> StopTransaction, meterStop from its meter value.
    plan = up(
        st,
        V201,
        "TransactionEvent",
        tx_event(
            "Ended",
            2,
            triggerReason="EVDeparted",
            transactionInfo={"transactionId": "tx-abc", "stoppedReason": "SOCLimitReached"},
            meterValue=energy(4200, "Transaction.End", multiplier=0),
        ),
    )
    action, stop = step(plan, V16)
    assert action == "StopTransaction"
    assert stop == {
        "meterStop": 4200,
        "timestamp": T0,
        "transactionId": 77,
        "reason": "Other",
        "transactionData": [
            {"timestamp": T0, "sampledValue": [{"value": "4200", "context": "Transaction.End"}]}
        ],
    }
    assert back(plan, V201, "TransactionEvent", {}) == {}
    assert "tx-abc" not in st.txs


def test_transaction_201_authorized_after_start() -> None:
    st = state()
    started = tx_event(
        "Started",
        0,
        triggerReason="CablePluggedIn",
        evse={"id": 1, "connectorId": 1},
        meterValue=energy(100),
    )
    with pytest.raises(Untranslatable):  # no idTag yet: nothing to start on a 1.6 upstream
        up(st, V201, "TransactionEvent", started)
    plan = up(
        st,
        V201,
        "TransactionEvent",
        tx_event("Updated", 1, idToken={"idToken": "LATE", "type": "ISO14443"}),
    )
    assert step(plan, V16) == (
        "StartTransaction",
        {"connectorId": 1, "idTag": "LATE", "meterStart": 100, "timestamp": T0},
    )
    back(plan, V201, "TransactionEvent", {"idTagInfo": {"status": "Accepted"}, "transactionId": 5})
    assert st.txs["tx-abc"].int_id == 5


def test_transaction_201_never_authorized_is_not_relayed() -> None:
    st = state()
    with pytest.raises(Untranslatable):
        up(st, V201, "TransactionEvent", tx_event("Started", 0, evse={"id": 1}))
    with pytest.raises(Untranslatable):
        up(st, V201, "TransactionEvent", tx_event("Ended", 1, meterValue=energy(5)))
    assert not st.txs


def test_transaction_201_unknown_is_not_relayed() -> None:
    with pytest.raises(Untranslatable):
        up(state(), V201, "TransactionEvent", tx_event("Updated", 3, meterValue=energy(5)))


def test_transaction_201_ended_without_meter_value_uses_the_last() -> None:
    st = state()
    start_201(st)
    plan = up(st, V201, "TransactionEvent", tx_event("Ended", 1))
    assert step(plan, V16)[1]["meterStop"] == 2500


def test_status_201_occupied_follows_the_transaction() -> None:
    st = state()
    assert status_201(st, "Occupied", evse=2)["status"] == "Preparing"
    start_201(st)
    assert status_201(st, "Occupied", evse=2)["status"] == "Charging"
    # A charging state change is told to a 1.6 CSMS by a StatusNotification.
    suspended = tx_event(
        "Updated",
        1,
        triggerReason="ChargingStateChanged",
        transactionInfo={"transactionId": "tx-abc", "chargingState": "SuspendedEV"},
    )
    plan = up(st, V201, "TransactionEvent", suspended)
    assert step(plan, V16) == (
        "StatusNotification",
        {"connectorId": 2, "errorCode": "NoError", "status": "SuspendedEV", "timestamp": T0},
    )
    assert back(plan, V201, "TransactionEvent", {}) == {}
    with pytest.raises(Untranslatable):  # the same state again: nothing to tell
        up(st, V201, "TransactionEvent", suspended)
    assert status_201(st, "Occupied", evse=2)["status"] == "SuspendedEV"
    # Meter values and a state change at once: both.
    charging = tx_event(
        "Updated",
        2,
        meterValue=energy(3000, "Sample.Periodic"),
        transactionInfo={"transactionId": "tx-abc", "chargingState": "Charging"},
    )
    plan = up(st, V201, "TransactionEvent", charging)
    assert [a for a, _ in plan.steps] == ["MeterValues", "StatusNotification"]
    assert step(plan, V16, 1)[1]["status"] == "Charging"
    assert back(plan, V201, "TransactionEvent", {}, {}) == {}
    back(up(st, V201, "TransactionEvent", tx_event("Ended", 3)), V201, "TransactionEvent", {})
    assert status_201(st, "Occupied", evse=2)["status"] == "Finishing"
    assert status_201(st, "Available", evse=2)["status"] == "Available"
    assert status_201(st, "Occupied", evse=2)["status"] == "Preparing"


def test_meter_values_201_to_16() -> None:
    payload = {
        "evseId": 1,
        "meterValue": [
            {
                "timestamp": T0,
                "sampledValue": [
                    {
                        "value": 2.5,
                        "measurand": "Energy.Active.Import.Register",
                        "unitOfMeasure": {"unit": "kWh", "multiplier": 1},
                    },
                    {"value": 1.0, "measurand": "Energy.Active.Net"},  # not in 1.6
                    {
                        "value": 3.0,
                        "measurand": "Current.Import",
                        "unitOfMeasure": {"unit": "mA"},
                    },  # unit
                    {"value": 49.9, "measurand": "Frequency", "unitOfMeasure": {"unit": "Hz"}},
                ],
            }
        ],
    }
    plan = up(state(), V201, "MeterValues", payload)
    assert step(plan, V16) == (
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": T0,
                    "sampledValue": [
                        {
                            "value": "25",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "kWh",
                        },
                        {"value": "49.9", "measurand": "Frequency", "unit": "Hertz"},
                    ],
                }
            ],
        },
    )
    assert back(plan, V201, "MeterValues", {}) == {}


def test_energy_wh() -> None:
    mv = req(
        V201,
        "MeterValues",
        {
            "evseId": 1,
            "meterValue": [
                {
                    "timestamp": T0,
                    "sampledValue": [
                        {"value": 1.0, "phase": "L1"},
                        {"value": 12.0, "unitOfMeasure": {"unit": "kWh"}},
                        {"value": 9.0, "measurand": "Power.Active.Import"},
                        {"value": 1.0, "unitOfMeasure": {"unit": "varh"}},
                    ],
                }
            ],
        },
    ).meterValue
    assert tr.energy_wh(mv) == 12000
    assert tr.energy_wh(msgspec.UNSET) is None


# -- upstream 1.6 -> charger 2.0.1 --------------------------------------------------------------


def test_remote_start_16_to_201() -> None:
    st = state()
    plan = down(st, V16, "RemoteStartTransaction", {"connectorId": 2, "idTag": "APP"})
    assert step(plan, V201) == (
        "RequestStartTransaction",
        {"evseId": 2, "idToken": {"idToken": "APP", "type": "Central"}, "remoteStartId": 1},
    )
    assert back(plan, V16, "RemoteStartTransaction", {"status": "Accepted"}) == {
        "status": "Accepted"
    }
    plan = down(st, V16, "RemoteStartTransaction", {"idTag": "APP"})
    assert step(plan, V201)[1] == {
        "idToken": {"idToken": "APP", "type": "Central"},
        "remoteStartId": 2,
    }


def test_remote_stop_16_to_201_uses_the_map() -> None:
    st = state()
    plan = up(
        st,
        V201,
        "TransactionEvent",
        tx_event("Started", 0, evse={"id": 1}, idToken={"idToken": "T", "type": "Local"}),
    )
    back(plan, V201, "TransactionEvent", {"idTagInfo": {"status": "Accepted"}, "transactionId": 31})
    plan = down(st, V16, "RemoteStopTransaction", {"transactionId": 31})
    assert step(plan, V201) == ("RequestStopTransaction", {"transactionId": "tx-abc"})
    assert back(plan, V16, "RemoteStopTransaction", {"status": "Rejected"}) == {
        "status": "Rejected"
    }
    unknown = down(st, V16, "RemoteStopTransaction", {"transactionId": 32})
    assert unknown.steps == ()
    assert back(unknown, V16, "RemoteStopTransaction") == {"status": "Rejected"}


@pytest.mark.parametrize(("t16", "t201"), [("Soft", "OnIdle"), ("Hard", "Immediate")])
def test_reset_16_to_201(t16: str, t201: str) -> None:
    plan = down(state(), V16, "Reset", {"type": t16})
    assert step(plan, V201) == ("Reset", {"type": t201})
    assert back(plan, V16, "Reset", {"status": "Scheduled"}) == {"status": "Accepted"}
    plan = down(state(), V16, "Reset", {"type": t16})
    assert back(plan, V16, "Reset", {"status": "Rejected"}) == {"status": "Rejected"}


@pytest.mark.parametrize(
    ("status201", "status16"),
    [
        ("Accepted", "Accepted"),
        ("RebootRequired", "RebootRequired"),
        ("Rejected", "Rejected"),
        ("UnknownVariable", "NotSupported"),
        ("NotSupportedAttributeType", "NotSupported"),
    ],
)
def test_change_configuration_16_to_201(status201: str, status16: str) -> None:
    plan = down(
        state(), V16, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "60"}
    )
    cv = {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}
    assert step(plan, V201) == (
        "SetVariables",
        {"setVariableData": [{"attributeValue": "60", **cv}]},
    )
    answer = back(
        plan,
        V16,
        "ChangeConfiguration",
        {"setVariableResult": [{"attributeStatus": status201, **cv}]},
    )
    assert answer == {"status": status16}


def test_change_configuration_instance_and_unknown_key() -> None:
    plan = down(
        state(), V16, "ChangeConfiguration", {"key": "TransactionMessageAttempts", "value": "3"}
    )
    assert step(plan, V201)[1]["setVariableData"][0]["variable"] == {
        "name": "MessageAttempts",
        "instance": "TransactionEvent",
    }
    plan = down(state(), V16, "ChangeConfiguration", {"key": "VendorThing", "value": "1"})
    assert plan.steps == ()
    assert back(plan, V16, "ChangeConfiguration") == {"status": "NotSupported"}


def test_get_configuration_16_to_201() -> None:
    plan = down(
        state(),
        V16,
        "GetConfiguration",
        {"key": ["HeartbeatInterval", "Nope", "AuthorizationKey", "LocalPreAuthorize"]},
    )
    action, get = step(plan, V201)
    assert action == "GetVariables"
    assert get == {
        "getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
            {"component": {"name": "AuthCtrlr"}, "variable": {"name": "LocalPreAuthorize"}},
        ]
    }
    answer = back(
        plan,
        V16,
        "GetConfiguration",
        {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "300",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                },
                {
                    "attributeStatus": "UnknownVariable",
                    "component": {"name": "AuthCtrlr"},
                    "variable": {"name": "LocalPreAuthorize"},
                },
            ]
        },
    )
    assert answer == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
        "unknownKey": ["Nope", "AuthorizationKey", "LocalPreAuthorize"],
    }


def test_get_configuration_all_and_none_known() -> None:
    plan = down(state(), V16, "GetConfiguration", {})
    readable = [c for c in tr.CONFIG_KEYS if c.readable]
    assert len(step(plan, V201)[1]["getVariableData"]) == len(readable)
    plan = down(state(), V16, "GetConfiguration", {"key": ["Nope"]})
    assert plan.steps == ()
    assert back(plan, V16, "GetConfiguration") == {"unknownKey": ["Nope"]}


@pytest.mark.parametrize(
    ("m16", "m201"),
    [
        ("BootNotification", "BootNotification"),
        ("Heartbeat", "Heartbeat"),
        ("DiagnosticsStatusNotification", "LogStatusNotification"),
        ("FirmwareStatusNotification", "FirmwareStatusNotification"),
        ("MeterValues", "MeterValues"),
        ("StatusNotification", "StatusNotification"),
    ],
)
def test_trigger_16_to_201(m16: str, m201: str) -> None:
    plan = down(state(), V16, "TriggerMessage", {"requestedMessage": m16, "connectorId": 3})
    assert step(plan, V201) == (
        "TriggerMessage",
        {"evse": {"id": 3, "connectorId": 1}, "requestedMessage": m201},
    )
    assert back(plan, V16, "TriggerMessage", {"status": "NotImplemented"}) == {
        "status": "NotImplemented"
    }


@pytest.mark.parametrize(
    ("s201", "s16"),
    [
        ("Unlocked", "Unlocked"),
        ("UnlockFailed", "UnlockFailed"),
        ("OngoingAuthorizedTransaction", "UnlockFailed"),
        ("UnknownConnector", "NotSupported"),
    ],
)
def test_unlock_16_to_201(s201: str, s16: str) -> None:
    plan = down(state(), V16, "UnlockConnector", {"connectorId": 2})
    assert step(plan, V201) == ("UnlockConnector", {"evseId": 2, "connectorId": 1})
    assert back(plan, V16, "UnlockConnector", {"status": s201}) == {"status": s16}


@pytest.mark.parametrize("connector", [0, 2])
def test_change_availability_16_to_201(connector: int) -> None:
    plan = down(
        state(), V16, "ChangeAvailability", {"connectorId": connector, "type": "Inoperative"}
    )
    expected: dict[str, Any] = {"operationalStatus": "Inoperative"}
    if connector:
        expected["evse"] = {"id": connector}
    assert step(plan, V201) == ("ChangeAvailability", expected)
    assert back(plan, V16, "ChangeAvailability", {"status": "Scheduled"}) == {"status": "Scheduled"}


@pytest.mark.parametrize("version", [V16, V201])
def test_data_transfer_down(version: str) -> None:
    plan = down(state(), version, "DataTransfer", {"vendorId": "acme", "data": "x"})
    assert step(plan, OTHER[version]) == ("DataTransfer", {"vendorId": "acme", "data": "x"})
    assert back(plan, version, "DataTransfer", {"status": "Rejected"}) == {"status": "Rejected"}


@pytest.mark.parametrize("version", [V16, V201])
def test_same_shape_down(version: str) -> None:
    plan = down(state(), version, "ClearCache", {})
    assert step(plan, OTHER[version]) == ("ClearCache", {})
    answer = {"status": "Accepted"}
    if version == V16:
        answer["statusInfo"] = {"reasonCode": "x"}  # type: ignore[assignment]
    assert back(plan, version, "ClearCache", answer) == {"status": "Accepted"}


# -- upstream 2.0.1 -> charger 1.6 --------------------------------------------------------------


def test_remote_start_201_to_16_and_the_start_that_follows() -> None:
    st = state()
    plan = down(
        st,
        V201,
        "RequestStartTransaction",
        {"evseId": 1, "idToken": {"idToken": "APP", "type": "Central"}, "remoteStartId": 9},
    )
    assert step(plan, V16) == ("RemoteStartTransaction", {"connectorId": 1, "idTag": "APP"})
    assert back(plan, V201, "RequestStartTransaction", {"status": "Accepted"}) == {
        "status": "Accepted"
    }
    _, event = start_16(st, id_tag="APP")
    assert event["triggerReason"] == "RemoteStart"
    assert event["transactionInfo"]["remoteStartId"] == 9
    assert event["idToken"] == {"idToken": "APP", "type": "Central"}
    _, again = start_16(st, id_tag="APP", connector=2)  # used once only
    assert again["triggerReason"] == "Authorized"


def test_remote_start_201_rejected_is_forgotten_and_long_token_refused() -> None:
    st = state()
    plan = down(
        st,
        V201,
        "RequestStartTransaction",
        {"idToken": {"idToken": "APP", "type": "Central"}, "remoteStartId": 9},
    )
    back(plan, V201, "RequestStartTransaction", {"status": "Rejected"})
    assert not st.remote_starts
    plan = down(
        st,
        V201,
        "RequestStartTransaction",
        {"idToken": {"idToken": "A" * 30, "type": "eMAID"}, "remoteStartId": 9},
    )
    assert plan.steps == ()
    assert back(plan, V201, "RequestStartTransaction")["status"] == "Rejected"


def test_remote_stop_201_to_16() -> None:
    st = state()
    plan = down(st, V201, "RequestStopTransaction", {"transactionId": "1800000000"})
    assert step(plan, V16) == ("RemoteStopTransaction", {"transactionId": 1800000000})
    assert back(plan, V201, "RequestStopTransaction", {"status": "Accepted"}) == {
        "status": "Accepted"
    }
    plan = down(st, V201, "RequestStopTransaction", {"transactionId": "not-ours"})
    assert back(plan, V201, "RequestStopTransaction") == {"status": "Rejected"}


@pytest.mark.parametrize(("t201", "t16"), [("OnIdle", "Soft"), ("Immediate", "Hard")])
def test_reset_201_to_16(t201: str, t16: str) -> None:
    plan = down(state(), V201, "Reset", {"type": t201})
    assert step(plan, V16) == ("Reset", {"type": t16})
    assert back(plan, V201, "Reset", {"status": "Accepted"}) == {"status": "Accepted"}
    evse = down(state(), V201, "Reset", {"type": t201, "evseId": 1})
    assert back(evse, V201, "Reset")["status"] == "Rejected"


def test_set_variables_201_to_16() -> None:
    hb = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    tx = {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}
    nope = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "Nope"}}
    comp = {"component": {"name": "VendorCtrlr"}, "variable": {"name": "X"}}
    target = {"attributeType": "Target", **hb}
    plan = down(
        state(),
        V201,
        "SetVariables",
        {
            "setVariableData": [
                {"attributeValue": "120", **hb},
                {"attributeValue": "1", **nope},
                {"attributeValue": "30", **tx},
                {"attributeValue": "1", **comp},
                {"attributeValue": "1", **target},
            ]
        },
    )
    assert step(plan, V16, 0) == (
        "ChangeConfiguration",
        {"key": "HeartbeatInterval", "value": "120"},
    )
    assert step(plan, V16, 1) == (
        "ChangeConfiguration",
        {"key": "MeterValueSampleInterval", "value": "30"},
    )
    answer = back(
        plan, V201, "SetVariables", {"status": "RebootRequired"}, {"status": "NotSupported"}
    )
    assert answer == {
        "setVariableResult": [
            {"attributeStatus": "RebootRequired", **hb},
            {"attributeStatus": "UnknownVariable", **nope},
            {"attributeStatus": "UnknownVariable", **tx},
            {"attributeStatus": "UnknownComponent", **comp},
            {"attributeType": "Target", "attributeStatus": "NotSupportedAttributeType", **hb},
        ]
    }


def test_get_variables_201_to_16() -> None:
    hb = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    pre = {"component": {"name": "AuthCtrlr"}, "variable": {"name": "LocalPreAuthorize"}}
    key = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    plan = down(state(), V201, "GetVariables", {"getVariableData": [hb, pre, key]})
    assert step(plan, V16) == (
        "GetConfiguration",
        {"key": ["HeartbeatInterval", "LocalPreAuthorize"]},
    )
    answer = back(
        plan,
        V201,
        "GetVariables",
        {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
            "unknownKey": ["LocalPreAuthorize"],
        },
    )
    assert answer == {
        "getVariableResult": [
            {"attributeStatus": "Accepted", "attributeValue": "300", **hb},
            {"attributeStatus": "UnknownVariable", **pre},
            {"attributeStatus": "Rejected", **key},
        ]
    }


def test_get_variables_201_nothing_known() -> None:
    comp = {"component": {"name": "VendorCtrlr"}, "variable": {"name": "X"}}
    plan = down(state(), V201, "GetVariables", {"getVariableData": [comp]})
    assert plan.steps == ()
    assert back(plan, V201, "GetVariables") == {
        "getVariableResult": [{"attributeStatus": "UnknownComponent", **comp}]
    }


@pytest.mark.parametrize(
    ("m201", "m16"),
    [
        ("BootNotification", "BootNotification"),
        ("Heartbeat", "Heartbeat"),
        ("LogStatusNotification", "DiagnosticsStatusNotification"),
        ("FirmwareStatusNotification", "FirmwareStatusNotification"),
        ("MeterValues", "MeterValues"),
        ("TransactionEvent", "MeterValues"),
        ("StatusNotification", "StatusNotification"),
    ],
)
def test_trigger_201_to_16(m201: str, m16: str) -> None:
    plan = down(state(), V201, "TriggerMessage", {"requestedMessage": m201, "evse": {"id": 2}})
    assert step(plan, V16) == ("TriggerMessage", {"requestedMessage": m16, "connectorId": 2})
    assert back(plan, V201, "TriggerMessage", {"status": "Rejected"}) == {"status": "Rejected"}


def test_trigger_201_without_counterpart() -> None:
    plan = down(state(), V201, "TriggerMessage", {"requestedMessage": "SignV2GCertificate"})
    assert back(plan, V201, "TriggerMessage") == {"status": "NotImplemented"}


@pytest.mark.parametrize("status", ["Unlocked", "UnlockFailed", "NotSupported"])
def test_unlock_201_to_16(status: str) -> None:
    plan = down(state(), V201, "UnlockConnector", {"evseId": 2, "connectorId": 1})
    assert step(plan, V16) == ("UnlockConnector", {"connectorId": 2})
    answer = back(plan, V201, "UnlockConnector", {"status": status})
    if status == "NotSupported":
        assert answer == {"status": "UnlockFailed", "statusInfo": {"reasonCode": "NotSupported"}}
    else:
        assert answer == {"status": status}


def test_change_availability_201_to_16() -> None:
    plan = down(state(), V201, "ChangeAvailability", {"operationalStatus": "Operative"})
    assert step(plan, V16) == ("ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    assert back(plan, V201, "ChangeAvailability", {"status": "Accepted"}) == {"status": "Accepted"}


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        (V16, "GetDiagnostics", {"location": "ftp://x"}),
        (V201, "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}),
    ],
)
def test_no_counterpart_down(version: str, action: str, payload: dict[str, Any]) -> None:
    with pytest.raises(Untranslatable):
        down(state(), version, action, payload)
    assert action not in tr.supported_downstream(version, OTHER[version])


def test_supported_downstream() -> None:
    assert tr.supported_downstream(V16, V16) == tr.TO_CHARGER[V16]
    assert tr.supported_downstream(V201, V201) == tr.TO_CHARGER[V201]
    assert "RequestStartTransaction" in tr.supported_downstream(V201, V16)
    assert "RemoteStartTransaction" in tr.supported_downstream(V16, V201)
    assert "ClearCache" in tr.supported_downstream(V16, V201)
    for version in (V16, V201):
        assert tr.TO_CHARGER[version] <= set(messages.ACTIONS[version])


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        (
            V16,
            "BootNotification",
            {
                "chargePointVendor": "V",
                "chargePointModel": "M",
                "chargePointSerialNumber": "S",
                "firmwareVersion": "F",
                "iccid": "I",
                "imsi": "J",
            },
        ),
        (
            V201,
            "BootNotification",
            {
                "chargingStation": {
                    "model": "M",
                    "vendorName": "V",
                    "serialNumber": "S",
                    "firmwareVersion": "F",
                    "modem": {"iccid": "I", "imsi": "J"},
                },
                "reason": "PowerUp",
            },
        ),
        (V16, "Authorize", {"idTag": "T"}),
        (V16, "Heartbeat", {}),
        (V201, "Heartbeat", {}),
        (V16, "DataTransfer", {"vendorId": "v", "messageId": "m", "data": "d"}),
        (V201, "DataTransfer", {"vendorId": "v", "messageId": "m", "data": "d"}),
        (
            V16,
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [
                    {
                        "timestamp": T0,
                        "sampledValue": [
                            {
                                "value": "1.5",
                                "measurand": "Current.Import",
                                "unit": "A",
                                "phase": "L2",
                                "context": "Sample.Clock",
                                "location": "Outlet",
                            }
                        ],
                    }
                ],
            },
        ),
        (
            V201,
            "MeterValues",
            {
                "evseId": 1,
                "meterValue": [
                    {
                        "timestamp": T0,
                        "sampledValue": [
                            {
                                "value": 1.5,
                                "measurand": "Current.Import",
                                "unitOfMeasure": {"unit": "A"},
                                "phase": "L2",
                                "context": "Sample.Clock",
                                "location": "Outlet",
                            }
                        ],
                    }
                ],
            },
        ),
        (
            V201,
            "StatusNotification",
            {"timestamp": T0, "connectorStatus": "Faulted", "evseId": 1, "connectorId": 1},
        ),
    ],
)
def test_round_trip_requests(version: str, action: str, payload: dict[str, Any]) -> None:
    there = up(state(), version, action, payload)
    there_action, there_request = step(there, OTHER[version])
    again = up(state(), OTHER[version], there_action, there_request)
    assert step(again, version) == (action, payload)


def test_round_trip_transaction_ids() -> None:
    """1.6 charger -> 2.0.1 upstream -> (RequestStop) -> 1.6 charger and back."""
    st = state()
    plan, event = start_16(st)
    tx_id = back(plan, V16, "StartTransaction", {})["transactionId"]
    stop = down(
        st,
        V201,
        "RequestStopTransaction",
        {"transactionId": event["transactionInfo"]["transactionId"]},
    )
    assert step(stop, V16) == ("RemoteStopTransaction", {"transactionId": tx_id})


def test_state_is_bounded() -> None:
    st = state()
    for i in range(300):
        st.remember(tr._Tx(1, f"t{i}", i))
    assert len(st.txs) == len(st.by_int) == 256
    assert st.tx_by_int(0) is None and st.tx_by_int(299) is not None
    for i in range(20):
        st.add_remote_start(tr._RemoteStart(f"T{i}", None, i, "Central"))
    assert len(st.remote_starts) == 16
