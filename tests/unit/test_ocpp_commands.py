"""Commands to chargers (gateway.ocpp.commands), the pure parts: the request each high-level
call builds for OCPP 1.6 and 2.0.1 (checked field by field and against the official JSON schemas
the `ocpp` package ships), argument and version errors, and the status each response means.

The flow (links, stored rows, timeouts, CALLERRORs) is in tests/integration/test_ocpp_commands.py,
against PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest

from gateway.ocpp import commands as oc
from gateway.ocpp import v16, v201
from gateway.ocpp.commands import V16, V201, CommandError, WrongVersion
from gateway.ocpp.messages import ACTIONS

VERSIONS = (V16, V201)


@cache
def _schema(version: str, action: str) -> dict[str, Any]:
    folder, name = (
        ("v16", f"{action}.json") if version == V16 else ("v201", f"{action}Request.json")
    )
    text = resources.files("ocpp").joinpath(folder, "schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def sent(built: oc.Built, version: str) -> dict[str, Any]:
    """The payload JSON as it goes out, validated against the official schema."""
    assert type(built.request) is ACTIONS[version][built.action][0]
    payload: dict[str, Any] = json.loads(msgspec.json.encode(built.request))
    jsonschema.validate(payload, _schema(version, built.action))
    return payload


# ------------------------------------------------------------------------------ requests


def test_remote_start() -> None:
    one = oc.build_remote_start(V16, "04A2B3C4", connector_id=2, remote_start_id=9)
    assert one.action == "RemoteStartTransaction"
    assert sent(one, V16) == {"connectorId": 2, "idTag": "04A2B3C4"}
    assert sent(oc.build_remote_start(V16, "T"), V16) == {"idTag": "T"}
    assert sent(oc.build_remote_start(V16, "T", evse_id=3), V16) == {"connectorId": 3, "idTag": "T"}

    two = oc.build_remote_start(V201, "04A2B3C4", connector_id=2, remote_start_id=9)
    assert two.action == "RequestStartTransaction"
    assert sent(two, V201) == {
        "evseId": 2,
        "idToken": {"idToken": "04A2B3C4", "type": "Central"},
        "remoteStartId": 9,
    }
    both = oc.build_remote_start(
        V201, "T", connector_id=1, evse_id=4, remote_start_id=1, id_token_type="ISO14443"
    )
    assert sent(both, V201) == {
        "evseId": 4,
        "idToken": {"idToken": "T", "type": "ISO14443"},
        "remoteStartId": 1,
    }
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
        },
    }
    with_profile = oc.build_remote_start(V16, "T", connector_id=1, charging_profile=profile)
    assert sent(with_profile, V16)["chargingProfile"] == profile


@pytest.mark.parametrize(
    ("version", "kwargs", "match"),
    [
        (V16, {"id_tag": "x" * 21}, r"length <= 20 - at `\$.idTag`"),
        (V201, {"id_tag": "x" * 37, "remote_start_id": 1}, r"length <= 36"),
        (V16, {"id_tag": ""}, "non-empty"),
        (V16, {"id_tag": 5}, "non-empty"),
        (V16, {"id_tag": "T", "connector_id": 0}, ">= 1"),
        (V16, {"id_tag": "T", "connector_id": True}, ">= 1"),
        (V16, {"id_tag": "T", "connector_id": 1, "evse_id": 2}, "connector_id alone"),
        (V201, {"id_tag": "T"}, "remote_start_id is required"),
        (V201, {"id_tag": "T", "remote_start_id": 1, "id_token_type": "Card"}, "Invalid enum"),
        (V16, {"id_tag": "T", "charging_profile": {"stackLevel": 0}}, "missing required"),
    ],
)
def test_remote_start_bad(version: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(CommandError, match=match):
        oc.build_remote_start(version, **kwargs)


def test_remote_stop() -> None:
    assert sent(oc.build_remote_stop(V16, "42"), V16) == {"transactionId": 42}
    assert sent(oc.build_remote_stop(V16, 42), V16) == {"transactionId": 42}
    stop = oc.build_remote_stop(V201, "b5f3-77")
    assert stop.action == "RequestStopTransaction"
    assert sent(stop, V201) == {"transactionId": "b5f3-77"}
    assert sent(oc.build_remote_stop(V201, 42), V201) == {"transactionId": "42"}
    with pytest.raises(WrongVersion, match="integers"):
        oc.build_remote_stop(V16, "b5f3-77")
    with pytest.raises(CommandError, match="length <= 36"):
        oc.build_remote_stop(V201, "x" * 37)
    with pytest.raises(CommandError, match="text or an integer"):
        oc.build_remote_stop(V201, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "native16", "native201"),
    [
        ("soft", "Soft", "OnIdle"),
        ("hard", "Hard", "Immediate"),
        ("Soft", "Soft", "OnIdle"),
        ("HARD", "Hard", "Immediate"),
        ("OnIdle", "Soft", "OnIdle"),
        ("Immediate", "Hard", "Immediate"),
    ],
)
def test_reset_kinds(kind: str, native16: str, native201: str) -> None:
    assert sent(oc.build_reset(V16, kind), V16) == {"type": native16}
    assert sent(oc.build_reset(V201, kind), V201) == {"type": native201}


def test_reset_evse_and_errors() -> None:
    assert sent(oc.build_reset(V201, "soft", evse_id=2), V201) == {"type": "OnIdle", "evseId": 2}
    with pytest.raises(WrongVersion, match="whole charge point"):
        oc.build_reset(V16, "soft", evse_id=2)
    for bad in ("reboot", "", None):
        with pytest.raises(CommandError, match="not soft, hard"):
            oc.build_reset(V16, bad)  # type: ignore[arg-type]


def test_configuration_1_6() -> None:
    change = oc.build_change_configuration(V16, "HeartbeatInterval", 300)
    assert sent(change, V16) == {"key": "HeartbeatInterval", "value": "300"}
    flag = oc.build_change_configuration(V16, "AuthorizeRemoteTxRequests", True)
    assert sent(flag, V16)["value"] == "true"
    assert sent(oc.build_change_configuration(V16, "K", "a b"), V16)["value"] == "a b"
    assert sent(oc.build_get_configuration(V16), V16) == {}
    assert sent(oc.build_get_configuration(V16, ["A", "B"]), V16) == {"key": ["A", "B"]}
    assert sent(oc.build_get_configuration(V16, iter(["A"])), V16) == {"key": ["A"]}
    with pytest.raises(CommandError, match="length <= 50"):
        oc.build_change_configuration(V16, "k" * 51, "1")
    with pytest.raises(CommandError, match="length <= 500"):
        oc.build_change_configuration(V16, "K", "v" * 501)
    with pytest.raises(CommandError, match="not a text, an integer or a boolean"):
        oc.build_change_configuration(V16, "K", None)
    with pytest.raises(CommandError, match="list of texts"):
        oc.build_get_configuration(V16, "HeartbeatInterval")  # a str is not a list of keys
    with pytest.raises(CommandError, match="Expected `str`"):
        oc.build_get_configuration(V16, [1])  # type: ignore[list-item]


def test_variables_2_0_1() -> None:
    built = oc.build_set_variables(
        V201,
        [
            ("OCPPCommCtrlr", "HeartbeatInterval", 60),
            ({"name": "EVSE", "evse": {"id": 1}}, {"name": "Power"}, "11000", "Target"),
            {
                "component": {"name": "AuthCtrlr"},
                "variable": {"name": "Enabled"},
                "attributeValue": "false",
            },
        ],
    )
    assert sent(built, V201) == {
        "setVariableData": [
            {
                "attributeValue": "60",
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            },
            {
                "attributeType": "Target",
                "attributeValue": "11000",
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Power"},
            },
            {
                "attributeValue": "false",
                "component": {"name": "AuthCtrlr"},
                "variable": {"name": "Enabled"},
            },
        ]
    }
    got = oc.build_get_variables(
        V201, [("OCPPCommCtrlr", "HeartbeatInterval"), ("EVSE", "Power", "MaxSet")]
    )
    assert sent(got, V201) == {
        "getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
            {
                "attributeType": "MaxSet",
                "component": {"name": "EVSE"},
                "variable": {"name": "Power"},
            },
        ]
    }


@pytest.mark.parametrize(
    ("variables", "match"),
    [
        ([], "no variables"),
        ("OCPPCommCtrlr", "a list of variables"),
        ([("C", "V")], r"\(component, variable, value\[, attribute\]\)"),
        ([("C", "V", "1", "Target", "x")], "is not"),
        ([("C", "V", "1", "Desired")], "Invalid enum value 'Desired'"),
        ([(5, "V", "1")], "neither a name"),
        ([("C" * 51, "V", "1")], "length <= 50"),
        ([{"component": {"name": "C"}}], "missing required field"),
        (["CV1"], "not a tuple"),
    ],
)
def test_set_variables_bad(variables: Any, match: str) -> None:
    with pytest.raises(CommandError, match=match):
        oc.build_set_variables(V201, variables)


def test_version_mismatches_name_the_right_call() -> None:
    cases: list[tuple[Callable[[], oc.Built], str]] = [
        (lambda: oc.build_change_configuration(V201, "K", "1"), "use set_variables"),
        (lambda: oc.build_get_configuration(V201), "use get_variables"),
        (lambda: oc.build_set_variables(V16, [("C", "V", "1")]), "use change_configuration"),
        (lambda: oc.build_get_variables(V16, [("C", "V")]), "use get_configuration"),
        (
            lambda: oc.build_trigger_message(V16, "TransactionEvent"),
            "not a message OCPP 1.6 can trigger",
        ),
    ]
    for make, match in cases:
        with pytest.raises(WrongVersion, match=match):
            make()
    # argument errors come before the version's: a bad value is reported as such
    with pytest.raises(CommandError, match="not a text") as info:
        oc.build_change_configuration(V201, "K", object())
    assert not isinstance(info.value, WrongVersion)


@pytest.mark.parametrize(
    ("message", "action16", "native16", "native201"),
    [
        ("BootNotification", "TriggerMessage", "BootNotification", "BootNotification"),
        ("boot_notification", "TriggerMessage", "BootNotification", "BootNotification"),
        ("heartbeat", "TriggerMessage", "Heartbeat", "Heartbeat"),
        ("METER_VALUES", "TriggerMessage", "MeterValues", "MeterValues"),
        ("status_notification", "TriggerMessage", "StatusNotification", "StatusNotification"),
        ("FirmwareStatusNotification", "TriggerMessage", "FirmwareStatusNotification", None),
        (
            "DiagnosticsStatusNotification",
            "TriggerMessage",
            "DiagnosticsStatusNotification",
            "LogStatusNotification",
        ),
        (
            "LogStatusNotification",
            "ExtendedTriggerMessage",
            "LogStatusNotification",
            "LogStatusNotification",
        ),
        (
            "SignChargingStationCertificate",
            "ExtendedTriggerMessage",
            "SignChargePointCertificate",
            "SignChargingStationCertificate",
        ),
    ],
)
def test_trigger_message_names(
    message: str, action16: str, native16: str, native201: str | None
) -> None:
    one = oc.build_trigger_message(V16, message, connector_id=1)
    assert one.action == action16
    assert sent(one, V16) == {"requestedMessage": native16, "connectorId": 1}
    two = oc.build_trigger_message(V201, message)
    assert two.action == "TriggerMessage"
    assert sent(two, V201) == {"requestedMessage": native201 or native16}


def test_trigger_message_evse_and_errors() -> None:
    two = oc.build_trigger_message(V201, "StatusNotification", evse_id=1, connector_id=2)
    assert sent(two, V201) == {
        "requestedMessage": "StatusNotification",
        "evse": {"id": 1, "connectorId": 2},
    }
    alone = oc.build_trigger_message(V201, "MeterValues", connector_id=2)
    assert sent(alone, V201) == {"requestedMessage": "MeterValues", "evse": {"id": 2}}
    assert sent(oc.build_trigger_message(V201, "transaction_event"), V201) == {
        "requestedMessage": "TransactionEvent"
    }
    with pytest.raises(CommandError, match=r"BootNotification, .*StatusNotification") as info:
        oc.build_trigger_message(V16, "Authorize")
    assert not isinstance(info.value, WrongVersion)
    with pytest.raises(CommandError, match="not a message name"):
        oc.build_trigger_message(V16, None)  # type: ignore[arg-type]


def test_unlock_connector() -> None:
    assert sent(oc.build_unlock_connector(V16, 2), V16) == {"connectorId": 2}
    assert sent(oc.build_unlock_connector(V16, 2, evse_id=2), V16) == {"connectorId": 2}
    assert sent(oc.build_unlock_connector(V201, 2), V201) == {"evseId": 2, "connectorId": 1}
    assert sent(oc.build_unlock_connector(V201, 2, evse_id=1), V201) == {
        "evseId": 1,
        "connectorId": 2,
    }
    with pytest.raises(WrongVersion, match="connector_id alone"):
        oc.build_unlock_connector(V16, 2, evse_id=1)
    with pytest.raises(CommandError, match=">= 1"):
        oc.build_unlock_connector(V16, 0)


def test_change_availability() -> None:
    assert sent(oc.build_change_availability(V16, False), V16) == {
        "connectorId": 0,
        "type": "Inoperative",
    }
    assert sent(oc.build_change_availability(V16, True, connector_id=2), V16) == {
        "connectorId": 2,
        "type": "Operative",
    }
    assert sent(oc.build_change_availability(V201, False), V201) == {
        "operationalStatus": "Inoperative"
    }
    assert sent(oc.build_change_availability(V201, True, connector_id=0), V201) == {
        "operationalStatus": "Operative"
    }
    assert sent(oc.build_change_availability(V201, True, connector_id=2), V201) == {
        "evse": {"id": 2},
        "operationalStatus": "Operative",
    }
    assert sent(oc.build_change_availability(V201, True, evse_id=1, connector_id=2), V201) == {
        "evse": {"id": 1, "connectorId": 2},
        "operationalStatus": "Operative",
    }
    with pytest.raises(CommandError, match="True or False"):
        oc.build_change_availability(V16, "Operative")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ send()


def test_request_generic() -> None:
    built = oc.request(
        V16, "UpdateFirmware", {"location": "ftp://x/fw", "retrieveDate": "2026-01-01T00:00:00Z"}
    )
    assert sent(built, V16) == {"location": "ftp://x/fw", "retrieveDate": "2026-01-01T00:00:00Z"}
    struct = v201.ClearCacheRequest()
    assert oc.request("2.0.1", "ClearCache", struct).request == struct
    for version, action, payload, match in (
        (V16, "Heartbeat", {}, "not a central system -> charger action of OCPP 1.6"),
        (V16, "SetVariables", {}, "not a central system -> charger action"),
        (V201, "Bogus", {}, "not a central system"),
        (V16, "Reset", {"type": "Reboot"}, r"Reset: Invalid enum value 'Reboot' - at `\$.type`"),
        (V16, "Reset", {}, "missing required field `type`"),
        (V16, "Reset", {"type": "Soft", "x": 1}, "unknown field `x`"),
        (V201, "Reset", [1], "must be a JSON object"),
        (V16, "UpdateFirmware", {"location": "x", "retrieveDate": "2026-01-01"}, "datetime"),
    ):
        with pytest.raises(CommandError, match=match):
            oc.request(version, action, payload)  # type: ignore[arg-type]
    with pytest.raises(CommandError, match="unknown OCPP version"):
        oc.request("ocpp2.1", "Reset", {})


def test_csms_actions_are_the_schemas_outgoing_ones() -> None:
    for version in VERSIONS:
        assert oc.CSMS_ACTIONS[version] <= set(ACTIONS[version])
        # what a charger sends: requests whose names say so, never in the set
        for action in ACTIONS[version]:
            if action.endswith("Notification") or action in {
                "Authorize",
                "Heartbeat",
                "StartTransaction",
                "StopTransaction",
                "TransactionEvent",
                "SignCertificate",
                "NotifyEvent",
                "NotifyReport",
            }:
                assert action not in oc.CSMS_ACTIONS[version], action
    assert len(oc.CSMS_ACTIONS[V16]) == 26 and len(oc.CSMS_ACTIONS[V201]) == 40


# ------------------------------------------------------------------------------ statuses


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (v16.RemoteStartTransactionResponse(status="Accepted"), "accepted"),
        (v16.RemoteStartTransactionResponse(status="Rejected"), "rejected"),
        (v16.ChangeConfigurationResponse(status="RebootRequired"), "accepted"),
        (v16.ChangeConfigurationResponse(status="NotSupported"), "unsupported"),
        (v16.ChangeAvailabilityResponse(status="Scheduled"), "accepted"),
        (v16.TriggerMessageResponse(status="NotImplemented"), "unsupported"),
        (v16.UnlockConnectorResponse(status="Unlocked"), "accepted"),
        (v16.UnlockConnectorResponse(status="UnlockFailed"), "failed"),
        (v16.UnlockConnectorResponse(status="NotSupported"), "unsupported"),
        (v16.DataTransferResponse(status="UnknownMessageId"), "unsupported"),
        (v16.DataTransferResponse(status="UnknownVendorId"), "unsupported"),
        (v16.ReserveNowResponse(status="Occupied"), "rejected"),
        (v16.DeleteCertificateResponse(status="Failed"), "failed"),
        (v16.GetConfigurationResponse(), "accepted"),
        (v16.GetConfigurationResponse(unknownKey=["X"]), "rejected"),
        (v16.GetLocalListVersionResponse(listVersion=3), "accepted"),
        (v201.ResetResponse(status="Scheduled"), "accepted"),
        (v201.UnlockConnectorResponse(status="UnknownConnector"), "rejected"),
        (v201.UnlockConnectorResponse(status="OngoingAuthorizedTransaction"), "rejected"),
        (v201.GetReportResponse(status="EmptyResultSet"), "accepted"),
        (v201.SetDisplayMessageResponse(status="NotSupportedPriority"), "unsupported"),
        (v201.UnpublishFirmwareResponse(status="Unpublished"), "accepted"),
        ({"status": "Accepted"}, "accepted"),
        ({"status": "SomethingNew"}, "rejected"),
        ({}, "accepted"),
    ],
)
def test_status_of(response: Any, status: str) -> None:
    assert oc.status_of(response) == status


def _set_result(status: str) -> v201.SetVariableResultType:
    return v201.SetVariableResultType(
        attributeStatus=status,  # type: ignore[arg-type]
        component=v201.ComponentType(name="C"),
        variable=v201.VariableType(name="V"),
    )


def test_status_of_per_variable() -> None:
    def set_status(*statuses: str) -> str:
        return oc.status_of(
            v201.SetVariablesResponse(setVariableResult=[_set_result(s) for s in statuses])
        )

    assert set_status("Accepted", "RebootRequired") == "accepted"
    assert set_status("Accepted", "UnknownVariable") == "rejected"
    assert set_status("NotSupportedAttributeType") == "rejected"
    got = v201.GetVariablesResponse(
        getVariableResult=[
            v201.GetVariableResultType(
                attributeStatus="Accepted",
                attributeValue="60",
                component=v201.ComponentType(name="C"),
                variable=v201.VariableType(name="V"),
            )
        ]
    )
    assert oc.status_of(got) == "accepted"
    as_json = msgspec.to_builtins(got)
    assert oc.status_of(as_json) == "accepted"
    as_json["getVariableResult"][0]["attributeStatus"] = "UnknownComponent"
    assert oc.status_of(as_json) == "rejected"


def test_normalize_version() -> None:
    assert oc.normalize_version("1.6") == V16 == oc.normalize_version("ocpp1.6")
    assert oc.normalize_version("2.0.1") == V201
    with pytest.raises(CommandError):
        oc.normalize_version("ocpp2.1")
