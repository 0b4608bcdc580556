"""OCPP message layer: the generated Structs against the official schemas (the `ocpp` package's),
payloads built from the schemas for every action, error codes cross-checked with jsonschema."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest

from gateway.ocpp import messages, v16, v201
from gateway.ocpp.messages import (
    ACTIONS,
    ERROR_CODES,
    OcppVersion,
    PayloadError,
    Violation,
    decode_request,
    decode_response,
    encode,
    known_action,
)

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "scripts" / "gen_ocpp_messages.py"
V16, V201 = OcppVersion.V16, OcppVersion.V201
PACKAGE_DIR = {V16: "v16", V201: "v201"}
REQUEST_SUFFIX = {V16: "", V201: "Request"}

# -- the official schemas --------------------------------------------------------------------


def _load_schemas() -> dict[tuple[OcppVersion, str, bool], dict[str, Any]]:
    """(version, action, is_response) -> schema, floats as Decimal as the ocpp library loads them
    (jsonschema's float multipleOf refuses 12.3 as a multiple of 0.1)."""
    out: dict[tuple[OcppVersion, str, bool], dict[str, Any]] = {}
    for version, folder in PACKAGE_DIR.items():
        for path in resources.files("ocpp").joinpath(folder, "schemas").iterdir():
            stem = path.name.removesuffix(".json")
            is_response = stem.endswith("Response")
            action = stem.removesuffix("Response" if is_response else REQUEST_SUFFIX[version])
            schema = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
            out[version, action, is_response] = schema
    return out


SCHEMAS = _load_schemas()
CASES = sorted({(version, action) for version, action, _ in SCHEMAS})


def _validator(version: OcppVersion, action: str, is_response: bool) -> Any:
    schema = SCHEMAS[version, action, is_response]
    return jsonschema.validators.validator_for(schema)(schema)


def _schema_errors(version: OcppVersion, action: str, is_response: bool, payload: Any) -> set[str]:
    """The jsonschema keywords the payload fails (numbers compared as decimals)."""
    exact = json.loads(json.dumps(payload), parse_float=Decimal)
    return {e.validator for e in _validator(version, action, is_response).iter_errors(exact)}


def _decode(version: OcppVersion, action: str, is_response: bool, payload: Any) -> msgspec.Struct:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    decode = decode_response if is_response else decode_request
    return decode(version, action, raw)


# -- payloads built from the schemas ---------------------------------------------------------

FULL_TIME = "2024-05-06T07:08:09.123+08:00"  # fraction and offset kept as written
MINIMAL_TIME = "2024-05-06T07:08:09Z"


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        resolved: dict[str, Any] = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        return resolved
    return node


def build(node: dict[str, Any], schema: dict[str, Any], full: bool) -> Any:
    """A valid value: required fields only (full=False) or every field at its limits (full)."""
    node = _resolve(node, schema)
    if "enum" in node:
        return node["enum"][-1 if full else 0]
    kind = node.get("type")
    if kind is None:  # 2.0.1 DataTransfer data: any JSON
        return {"opaque": [1, "two", None, 2.5, True, {"timestamp": "x"}]} if full else "x"
    if kind == "object":
        required = node.get("required", [])
        return {
            name: build(sub, schema, full)
            for name, sub in node.get("properties", {}).items()
            if full or name in required
        }
    if kind == "array":
        count = node.get("minItems", 0)
        if full:
            count = min(max(count, 2), node.get("maxItems", 2))
        return [build(node["items"], schema, full) for _ in range(count)]
    if kind == "string":
        if node.get("format") == "date-time":
            return FULL_TIME if full else MINIMAL_TIME
        # é: maxLength counts characters, not UTF-8 bytes
        return "é" * node.get("maxLength", 8) if full else "a"
    if kind == "integer":
        if full:
            return int(node.get("maximum", node.get("minimum", 2_000_000_000)))
        return int(node.get("minimum", 0))
    if kind == "number":
        return 12.3 if full else 0.5
    if kind == "boolean":
        return full
    raise AssertionError(f"unexpected schema node {node}")


def payload(version: OcppVersion, action: str, is_response: bool, full: bool) -> dict[str, Any]:
    schema = SCHEMAS[version, action, is_response]
    built: dict[str, Any] = build(schema, schema, full)
    return built


# -- the generated modules -------------------------------------------------------------------


def test_generated_modules_are_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr


def test_check_mode_fails_on_a_stale_module(tmp_path: Path) -> None:
    for name in ("v16.py", "v201.py"):
        target = tmp_path / "gateway" / "ocpp" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((ROOT / "gateway" / "ocpp" / name).read_text())
    stale = tmp_path / "gateway" / "ocpp" / "v201.py"
    stale.write_text(stale.read_text().replace("max_length=36", "max_length=37", 1))
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert "v201.py is out of date" in proc.stderr
    assert "v16.py is out of date" not in proc.stderr


def test_generated_modules_say_so() -> None:
    for module in (v16, v201):
        assert module.__file__ is not None
        head = Path(module.__file__).read_text().splitlines()[0]
        assert head.startswith("# GENERATED by scripts/gen_ocpp_messages.py")


def test_every_action_of_both_versions_is_in_actions() -> None:
    for version in OcppVersion:
        from_schemas = {a for v, a, _ in SCHEMAS if v == version}
        assert set(ACTIONS[version]) == from_schemas
        for action, (request, response) in ACTIONS[version].items():
            assert request.__name__ == f"{action}Request"
            assert response.__name__ == f"{action}Response"
    assert len(ACTIONS[V16]) == 39  # 28 of OCPP 1.6 + 11 of the security whitepaper
    assert len(ACTIONS[V201]) == 64


# -- every action: valid payloads round-trip -------------------------------------------------


@pytest.mark.parametrize(("version", "action"), CASES)
def test_minimal_and_full_payloads_round_trip(version: OcppVersion, action: str) -> None:
    for is_response in (False, True):
        for full in (False, True):
            sent = payload(version, action, is_response, full)
            assert not _schema_errors(version, action, is_response, sent)  # the builder is right
            message = _decode(version, action, is_response, sent)
            assert type(message) is ACTIONS[version][action][is_response]
            out = json.loads(encode(message))
            assert out == sent
            assert not _schema_errors(version, action, is_response, out)


# -- every action: invalid payloads get the right error code ---------------------------------

# jsonschema keyword -> violation: the same table the module applies to msgspec's messages.
KEYWORD_VIOLATION = {
    "required": Violation.OCCURRENCE,
    "minItems": Violation.OCCURRENCE,
    "maxItems": Violation.OCCURRENCE,
    "type": Violation.TYPE,
    "maxLength": Violation.PROPERTY,
    "enum": Violation.PROPERTY,
    "minimum": Violation.PROPERTY,
    "maximum": Violation.PROPERTY,
    "multipleOf": Violation.PROPERTY,
    "additionalProperties": Violation.STRUCTURE,
}
WRONG_TYPE = {
    "string": 12345,
    "integer": "12",
    "number": "1.5",
    "boolean": "true",
    "object": "x",
    "array": {"a": 1},
}


def mutations(
    version: OcppVersion, action: str, is_response: bool
) -> Iterator[tuple[str, dict[str, Any], str, str]]:
    """(what, invalid payload, the jsonschema keyword it breaks, error path), one change each."""
    schema = SCHEMAS[version, action, is_response]
    base = payload(version, action, is_response, full=True)
    yield "unknown field", {**base, "notInTheSchema": 1}, "additionalProperties", "$"
    for name, raw_node in schema.get("properties", {}).items():
        node = _resolve(raw_node, schema)
        if name in schema.get("required", []):
            yield f"{name} missing", {k: v for k, v in base.items() if k != name}, "required", "$"
        kind = node.get("type")
        if kind is None:
            continue  # any JSON is valid
        bad: list[tuple[str, Any, str]] = [("null", None, "type")]
        bad.append(("wrong type", WRONG_TYPE[kind], "type"))
        if "enum" in node:
            bad.append(("not in enum", "NotAnEnumValue", "enum"))
        if "maxLength" in node:
            bad.append(("too long", "x" * (node["maxLength"] + 1), "maxLength"))
        if "maximum" in node:
            bad.append(("above maximum", int(node["maximum"]) + 1, "maximum"))
        if "minimum" in node:
            bad.append(("below minimum", int(node["minimum"]) - 1, "minimum"))
        if node.get("minItems", 0) >= 1:
            bad.append(("empty", [], "minItems"))
        if "maxItems" in node:
            bad.append(("too many", [base[name][0]] * (node["maxItems"] + 1), "maxItems"))
        for what, value, keyword in bad:
            yield f"{name} {what}", {**base, name: value}, keyword, f"$.{name}"


@pytest.mark.parametrize(("version", "action"), CASES)
def test_invalid_payloads_map_to_the_spec_error_codes(version: OcppVersion, action: str) -> None:
    checked = 0
    for is_response in (False, True):
        for what, bad, keyword, path in mutations(version, action, is_response):
            assert keyword in _schema_errors(version, action, is_response, bad), what
            with pytest.raises(PayloadError) as caught:
                _decode(version, action, is_response, bad)
            expected = ERROR_CODES[version][KEYWORD_VIOLATION[keyword]]
            assert caught.value.code == expected, (what, caught.value.description)
            assert caught.value.details["path"] == path, what
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("version", list(OcppVersion))
@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b"[]", b"null", b'"x"', b"1", b"{}x"])
def test_not_json_or_not_an_object_is_a_format_violation(version: OcppVersion, raw: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_request(version, "Heartbeat", raw)
    assert caught.value.code == {V16: "FormationViolation", V201: "FormatViolation"}[version]


def test_error_code_table() -> None:
    assert ERROR_CODES[V16] == {
        Violation.FORMAT: "FormationViolation",
        Violation.STRUCTURE: "FormationViolation",
        Violation.OCCURRENCE: "OccurenceConstraintViolation",  # sic, OCPP-J 1.6
        Violation.TYPE: "TypeConstraintViolation",
        Violation.PROPERTY: "PropertyConstraintViolation",
        Violation.NOT_IMPLEMENTED: "NotImplemented",
        Violation.GENERIC: "GenericError",
    }
    assert ERROR_CODES[V201][Violation.FORMAT] == "FormatViolation"
    assert ERROR_CODES[V201][Violation.STRUCTURE] == "ProtocolError"
    assert ERROR_CODES[V201][Violation.OCCURRENCE] == "OccurrenceConstraintViolation"


@pytest.mark.parametrize("version", list(OcppVersion))
def test_unknown_action_is_not_implemented(version: OcppVersion) -> None:
    for decode in (decode_request, decode_response):
        with pytest.raises(PayloadError) as caught:
            decode(version, "NoSuchAction" * 50, b"{}")
        assert caught.value.code == "NotImplemented"
        assert len(caught.value.description) <= 255


# -- nested values, time, numbers -------------------------------------------------------------


def _meter_values_16(sampled: dict[str, Any], timestamp: str = MINIMAL_TIME) -> dict[str, Any]:
    return {"connectorId": 1, "meterValue": [{"timestamp": timestamp, "sampledValue": [sampled]}]}


def _code(version: OcppVersion, action: str, body: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(PayloadError) as caught:
        decode_request(version, action, json.dumps(body).encode())
    return caught.value.code, caught.value.details["path"]


def test_nested_errors_carry_the_path() -> None:
    bad_measurand = _meter_values_16({"value": "1", "measurand": "Energy"})
    assert _code(V16, "MeterValues", bad_measurand) == (
        "PropertyConstraintViolation",
        "$.meterValue[0].sampledValue[0].measurand",
    )
    assert _code(V16, "MeterValues", _meter_values_16({"unit": "Wh"})) == (
        "OccurenceConstraintViolation",
        "$.meterValue[0].sampledValue[0]",
    )
    assert _code(V16, "MeterValues", _meter_values_16({"value": 1.5})) == (
        "TypeConstraintViolation",
        "$.meterValue[0].sampledValue[0].value",
    )
    assert _code(V16, "MeterValues", {"connectorId": 1, "meterValue": []}) == (
        "OccurenceConstraintViolation",
        "$.meterValue",
    )
    sampled_201 = {"value": 1.5, "unitOfMeasure": {"unit": "kWh", "multiplier": 3}, "x": 1}
    body = {"evseId": 1, "meterValue": [{"timestamp": MINIMAL_TIME, "sampledValue": [sampled_201]}]}
    assert _code(V201, "MeterValues", body) == ("ProtocolError", "$.meterValue[0].sampledValue[0]")


def test_the_16_celcius_spelling_is_accepted_as_the_schema_says() -> None:
    for unit in ("Celcius", "Celsius"):
        msg = decode_request(
            V16, "MeterValues", json.dumps(_meter_values_16({"value": "21", "unit": unit})).encode()
        )
        assert isinstance(msg, v16.MeterValuesRequest)
        assert msg.meterValue[0].sampledValue[0].unit == unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (
            "2024-01-02T03:04:05.5+08:00",
            datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=timezone(timedelta(hours=8))),
        ),
        ("2024-01-02t03:04:05z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # RFC 3339 5.6 NOTE
        ("2024-01-02 03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # RFC 3339 5.6 NOTE
    ],
)
def test_rfc3339_date_times_decode_timezone_aware(text: str, expected: datetime) -> None:
    msg = decode_request(
        V16, "MeterValues", json.dumps(_meter_values_16({"value": "1"}, text)).encode()
    )
    assert isinstance(msg, v16.MeterValuesRequest)
    assert msg.meterValue[0].timestamp == expected
    assert msg.meterValue[0].timestamp.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    ["2024-01-02T03:04:05", "2024-01-02", "20240102T030405Z", "2024-01-02T03:04Z", "yesterday"],
)
def test_date_times_without_offset_or_not_rfc3339_are_type_violations(text: str) -> None:
    body = _meter_values_16({"value": "1"}, text)
    assert _code(V16, "MeterValues", body) == (
        "TypeConstraintViolation",
        "$.meterValue[0].timestamp",
    )


def _profile_16(limit: float) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        },
    }


@pytest.mark.parametrize(
    ("limit", "valid"), [(0.3, True), (16, True), (32.1, True), (0.35, False), (6.01, False)]
)
def test_16_multiple_of_is_decimal(limit: float, valid: bool) -> None:
    body = _profile_16(limit)
    assert (not _schema_errors(V16, "SetChargingProfile", False, body)) is valid
    if valid:
        msg = decode_request(V16, "SetChargingProfile", json.dumps(body).encode())
        assert isinstance(msg, v16.SetChargingProfileRequest)
        assert json.loads(encode(msg)) == body
    else:
        code, path = _code(V16, "SetChargingProfile", body)
        assert code == "PropertyConstraintViolation"
        assert path == "$.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0]"


def test_201_integer_range() -> None:
    params = {
        "requestedEnergyTransfer": "DC",
        "dcChargingParameters": {"evMaxCurrent": 1, "evMaxVoltage": 1, "stateOfCharge": 101},
    }
    assert _code(V201, "NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": params}) == (
        "PropertyConstraintViolation",
        "$.chargingNeeds.dcChargingParameters.stateOfCharge",
    )


def test_201_custom_data_is_open_and_everything_else_closed() -> None:
    body = {"customData": {"vendorId": "acme", "extra": [1, 2]}}
    msg = decode_request(V201, "Heartbeat", json.dumps(body).encode())
    assert isinstance(msg, v201.HeartbeatRequest)
    assert msg.customData == v201.CustomDataType(vendorId="acme")  # extra accepted, dropped
    assert not _schema_errors(V201, "Heartbeat", False, body)
    assert _code(V201, "Heartbeat", {"customData": {"extra": 1}}) == (
        "OccurrenceConstraintViolation",
        "$.customData",
    )


def test_string_length_counts_characters() -> None:
    body = {"chargePointVendor": "é" * 20, "chargePointModel": "m"}  # 40 bytes of UTF-8
    assert isinstance(
        decode_request(V16, "BootNotification", json.dumps(body).encode()),
        v16.BootNotificationRequest,
    )
    assert (
        _code(V16, "BootNotification", {**body, "chargePointVendor": "é" * 21})[0]
        == "PropertyConstraintViolation"
    )


def test_descriptions_stay_within_255_characters() -> None:
    body = {"connectorId": 1, "errorCode": "x" * 5000, "status": "Available"}
    with pytest.raises(PayloadError) as caught:
        decode_request(V16, "StatusNotification", json.dumps(body).encode())
    assert caught.value.code == "PropertyConstraintViolation"
    assert len(caught.value.description) == 255


# -- the spec's own examples (OCPP-J 1.6) -----------------------------------------------------


def test_spec_boot_notification_and_its_interval_field() -> None:
    msg = decode_request(
        V16,
        "BootNotification",
        b'{"chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger"}',
    )
    assert msg == v16.BootNotificationRequest(
        chargePointVendor="VendorX", chargePointModel="SingleSocketCharger"
    )
    # The OCPP-J document's CALLRESULT says heartbeatInterval; the schema says interval.
    ok = b'{"status":"Accepted","currentTime":"2013-02-01T20:53:32.486Z","interval":300}'
    reply = decode_response(V16, "BootNotification", ok)
    assert isinstance(reply, v16.BootNotificationResponse)
    assert reply.interval == 300
    assert encode(reply) == ok
    with pytest.raises(PayloadError) as caught:
        decode_response(V16, "BootNotification", ok.replace(b'"interval"', b'"heartbeatInterval"'))
    assert caught.value.code == "FormationViolation"


# -- encoding ---------------------------------------------------------------------------------


def test_encode_leaves_out_absent_fields() -> None:
    msg = v16.StopTransactionRequest(
        meterStop=10, timestamp=datetime(2024, 1, 1, tzinfo=UTC), transactionId=7
    )
    assert encode(msg) == b'{"meterStop":10,"timestamp":"2024-01-01T00:00:00Z","transactionId":7}'


def test_encode_writes_at_most_three_fraction_digits_and_leaves_strings_alone() -> None:
    at = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert (
        encode(v201.HeartbeatResponse(currentTime=at))
        == b'{"currentTime":"2024-01-02T03:04:05.123Z"}'
    )
    east = at.astimezone(timezone(timedelta(hours=8))).replace(microsecond=999)
    assert (
        encode(v201.HeartbeatResponse(currentTime=east))
        == b'{"currentTime":"2024-01-02T11:04:05+08:00"}'
    )
    looks_like_time = "03:04:05.123456"
    msg = v16.StatusNotificationRequest(
        connectorId=1, errorCode="NoError", status="Available", info=looks_like_time, timestamp=at
    )
    assert json.loads(encode(msg)) == {
        "connectorId": 1,
        "errorCode": "NoError",
        "status": "Available",
        "info": looks_like_time,
        "timestamp": "2024-01-02T03:04:05.123Z",
    }
    data = v201.DataTransferRequest(vendorId="v", data={"t": looks_like_time, "n": [1.5, None]})
    assert json.loads(encode(data)) == {
        "vendorId": "v",
        "data": {"t": looks_like_time, "n": [1.5, None]},
    }


def test_decode_accepts_raw_str_and_memoryview() -> None:
    text = '{"currentTime":"2024-01-02T03:04:05Z"}'
    expected = v16.HeartbeatResponse(currentTime=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    for raw in (
        msgspec.Raw(text.encode()),
        text,
        memoryview(text.encode()),
        bytearray(text.encode()),
    ):
        assert decode_response(V16, "Heartbeat", raw) == expected


# -- the API ----------------------------------------------------------------------------------


def test_known_action_and_plain_version_strings() -> None:
    assert known_action("ocpp1.6", "StartTransaction")
    assert not known_action("ocpp2.0.1", "StartTransaction")
    assert known_action(V201, "TransactionEvent")
    assert isinstance(decode_request("ocpp2.0.1", "Heartbeat", b"{}"), v201.HeartbeatRequest)
    with pytest.raises(ValueError, match="unsupported OCPP version"):
        decode_request("ocpp2.1", "Heartbeat", b"{}")


def test_decoders_are_built_once_per_version_action_direction() -> None:
    decode_request(V16, "Authorize", b'{"idTag":"a"}')
    decode_response(V16, "Authorize", b'{"idTagInfo":{"status":"Accepted"}}')
    request_decoder = messages._DECODERS[V16, "Authorize", False]
    assert messages._DECODERS[V16, "Authorize", True] is not request_decoder
    decode_request("ocpp1.6", "Authorize", b'{"idTag":"b"}')
    assert messages._DECODERS[V16, "Authorize", False] is request_decoder


def test_deeply_nested_any_data_is_a_format_violation() -> None:
    body = b'{"vendorId":"v","data":' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(PayloadError) as caught:
        decode_request(V201, "DataTransfer", body)
    assert caught.value.code == "FormatViolation"
