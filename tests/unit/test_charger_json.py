"""The charger JSON message set: every message type decoded and normalized to the OCPP records
in SI units, every error reason with its JSON path, charger identity, the published schema (up to
date, accepting the documented examples) and the shared decoding's rules."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.charger_json import schema as charger_schema
from gateway.charger_json.messages import (
    MAX_PAYLOAD,
    TYPES,
    ChargerPayloadError,
    EventMessage,
    Reason,
    decode,
    encode,
)
from gateway.charger_json.normalize import PROTOCOL, event_key, records
from gateway.json_messages import COMMON_REASONS, PayloadError
from gateway.ocpp.normalize import id_tag_for_store
from gateway.records import ChargerStatus, ChargingSession, MeterValue

DOCS = Path(__file__).resolve().parents[2] / "docs"
RECEIVED = datetime(2026, 3, 2, 6, 16, 0, 500000, tzinfo=UTC)
PLUS3 = timezone(timedelta(hours=3))
T0 = "2026-03-02T09:15:00+03:00"  # 06:15:00Z
T0_UTC = datetime(2026, 3, 2, 6, 15, tzinfo=UTC)

STATUS: dict[str, Any] = {
    "v": 1,
    "type": "connector_status",
    "charger_id": "CP-1",
    "station_id": "SITE-1",
    "time": T0,
    "connector_id": 1,
    "status": "Faulted",
    "evse_id": 1,
    "error_code": "GroundFailure",
    "vendor_error_code": "E-0412",
    "vendor_id": "com.example",
    "info": "insulation low",
}
METER: dict[str, Any] = {
    "v": 1,
    "type": "meter_values",
    "charger_id": "CP-1",
    "time": T0,
    "connector_id": 2,
    "evse_id": 1,
    "transaction_id": "TX-9",
    "samples": [
        {"measurand": "Energy.Active.Import.Register", "value": 1234.567, "unit": "kWh"},
        {"measurand": "Current.Import", "value": 171.6, "phase": "L1", "location": "Outlet"},
        {
            "measurand": "SoC",
            "value": 41,
            "location": "EV",
            "context": "Transaction.Begin",
            "time": "2026-03-02T06:14:00Z",
        },
    ],
}
SESSION: dict[str, Any] = {
    "v": 1,
    "type": "session",
    "charger_id": "CP-1",
    "time": T0,
    "event": "stop",
    "transaction_id": "TX-9",
    "connector_id": 2,
    "id_tag": "04A2B3C4",
    "started_at": "2026-03-02T08:00:00+03:00",
    "stopped_at": "2026-03-02T09:14:59.5+03:00",
    "meter_start_wh": 1000,
    "meter_stop_wh": 51000.5,
    "soc_start_pct": 20,
    "soc_pct": 80,
    "stop_reason": "EVDisconnected",
    "extra": {"tariff": "T2"},
}
EVENT: dict[str, Any] = {
    "v": 1,
    "type": "event",
    "charger_id": "CP-1",
    "time": T0,
    "event": "fault",
    "code": "E-0412",
    "info": "insulation low",
    "connector_id": 2,
    "detail": {"severity": "error"},
}
BASES = {"connector_status": STATUS, "meter_values": METER, "session": SESSION, "event": EVENT}


DROP: Any = ...
"""A change's value that removes the field."""


def payload(base: dict[str, Any], **changes: Any) -> bytes:
    """``base`` as JSON, with fields changed; a key ``a__0__b`` is the path a[0].b, and the
    value DROP removes the field."""
    doc = json.loads(json.dumps(base))
    for dotted, value in changes.items():
        *parents, last = (int(k) if k.isdigit() else k for k in dotted.split("__"))
        parent = doc
        for k in parents:
            parent = parent[k]
        if value is DROP:
            del parent[last]
        else:
            parent[last] = value
    return json.dumps(doc).encode()


def refusal(data: bytes | str, charger_id: str | None = None) -> ChargerPayloadError:
    with pytest.raises(ChargerPayloadError) as caught:
        decode(data, charger_id=charger_id)
    return caught.value


def one(data: bytes | str, *, charger_id: str | None = None, hashed: bool = True) -> Any:
    (record,) = records(decode(data, charger_id=charger_id), RECEIVED, hash_id_tags=hashed)
    return record


def stored(record: msgspec.Struct) -> dict[str, Any]:
    """A record's fields that are set, times as RFC 3339 strings (UTC: ``Z``), without the
    receive time (checked on its own)."""
    fields = msgspec.to_builtins(record)
    assert fields.pop("received_at") == "2026-03-02T06:16:00.500000Z"
    return {k: v for k, v in fields.items() if v is not None}


def sent(base: dict[str, Any], *leave_out: str) -> dict[str, Any]:
    """A message's fields that its record keeps as they are (all but the envelope's)."""
    return {k: v for k, v in base.items() if k not in {"v", "type", "time", *leave_out}}


# ------------------------------------------------------------------ schema and documentation


def schema_validator() -> jsonschema.Draft202012Validator:
    doc = json.loads((DOCS / "charger-json.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return jsonschema.Draft202012Validator(doc, format_checker=checker)


def test_the_checked_in_schema_is_generated_from_the_structs() -> None:
    text = (DOCS / "charger-json.schema.json").read_text()
    assert text == charger_schema.schema_text()
    assert json.loads(text)["discriminator"]["mapping"].keys() == TYPES.keys()


def test_every_documented_example_validates_decodes_and_normalizes() -> None:
    guide = (DOCS / "charger-json.md").read_text()
    examples = re.findall(r"```json\n(.*?)```", guide, re.S)
    assert len(examples) == 9
    validator = schema_validator()
    seen = set()
    for text in examples:
        assert not list(validator.iter_errors(json.loads(text))), text
        message = decode(text)
        seen.add(type(message))
        assert decode(encode(message)) == message
        assert records(message, RECEIVED)
    assert seen == set(TYPES.values())


def test_the_schema_refuses_what_decode_refuses() -> None:
    validator = schema_validator()
    for base in BASES.values():
        assert not list(validator.iter_errors(base))
    refused = [
        payload(STATUS, time="2026-03-02T09:15:00"),
        payload(STATUS, v=2),
        payload(STATUS, status="Busy"),
        payload(STATUS, connector_id=-1),
        payload(STATUS, charger_id="CP:1"),
        payload(METER, samples=[]),
        payload(METER, samples__0__phase="L4"),
        payload(METER, samples__1__measurand=DROP),
        payload(SESSION, event="pause"),
        payload(SESSION, soc_pct=101),
        payload(EVENT, event="Boot"),
        payload(EVENT, request_id=-3),
    ]
    for data in refused:
        assert list(validator.iter_errors(json.loads(data))), data
        with pytest.raises(ChargerPayloadError):
            decode(data)


# ------------------------------------------------------------------ every message type


def test_connector_status_is_a_charger_status_row() -> None:
    status = one(payload(STATUS))
    assert isinstance(status, ChargerStatus) and status.time == T0_UTC
    assert stored(status) == sent(STATUS) | {"time": "2026-03-02T06:15:00Z", "protocol": PROTOCOL}
    assert PROTOCOL == "silkgate-charger"
    minimal = one(payload(STATUS, connector_id=0, status="Occupied"), charger_id="CP-1")
    assert (minimal.connector_id, minimal.status, minimal.station_id) == (0, "Occupied", "SITE-1")
    bare = payload(STATUS, **dict.fromkeys(["evse_id", "error_code", "info", "charger_id"], DROP))
    row = one(bare, charger_id="CP-TOPIC")
    assert (row.charger_id, row.evse_id, row.error_code, row.info) == ("CP-TOPIC", None, None, None)


def test_meter_values_are_one_row_per_sample_in_si_units() -> None:
    rows = records(decode(payload(METER)), RECEIVED)
    assert all(isinstance(r, MeterValue) for r in rows)
    common = sent(METER, "samples") | {"protocol": PROTOCOL, "time": "2026-03-02T06:15:00Z"}
    energy = {"measurand": "Energy.Active.Import.Register", "value": 1234567.0, "unit": "Wh"}
    current = sent(METER["samples"][1]) | {"unit": "A"}  # the measurand's unit
    soc = sent(METER["samples"][2]) | {"unit": "Percent", "time": "2026-03-02T06:14:00Z"}
    periodic = {"context": "Sample.Periodic"}
    assert [stored(r) for r in rows] == [
        common | energy | periodic,  # exact decimal scaling: not 1234566.9999999998
        common | current | periodic,
        common | soc,  # its own time and context
    ]


# "<measurand> <value> [<unit>] [*10^<multiplier>] = <stored value> [<stored unit>]"
CONVERSIONS = [
    "Energy.Active.Import.Register 12.5 = 12.5 Wh",  # the measurand's unit
    "Energy.Active.Import.Register 1.001 kWh = 1001.0 Wh",  # exact, not 1000.9999999999999
    "Energy.Active.Export.Register 2 MWh = 2000000 Wh",
    "Energy.Active.Import.Register 7.2 Wh *10^3 = 7200 Wh",
    "Energy.Reactive.Import.Register 3 kvarh = 3000 varh",
    "Power.Active.Import 7200 = 7200 W",
    "Power.Active.Import 7.2 kW = 7200 W",
    "Power.Active.Import 50 kw = 50000 W",  # a free-text spelling
    "Power.Offered 1500 W *10^-3 = 1.5 W",
    "Current.Import 1500 mA = 1.5 A",
    "Current.Offered 25 A *10^1 = 250 A",
    "Voltage 0.4 kV = 400 V",
    "Voltage 230.1 = 230.1 V",
    "Frequency 50 Hertz = 50 Hz",
    "Temperature 212 Fahrenheit = 100 Celsius",
    "Temperature 300 K = 26.85 Celsius",
    "Temperature 31.5 Celcius = 31.5 Celsius",  # OCPP 1.6's spelling
    "Temperature -5 degC = -5 Celsius",
    "SoC 88 % = 88 Percent",
    "SoC 88 = 88 Percent",
    "Power.Factor 0.98 = 0.98",  # a ratio: no unit
    "Pressure.Coolant 2.5 bar = 2.5 bar",  # a unit to_si does not know: as sent
    "Pressure.Coolant 25 kPa *10^1 = 250 kPa",
]


@pytest.mark.parametrize("case", CONVERSIONS)
def test_sample_units_are_converted_as_ocpp_does(case: str) -> None:
    given_, _, expected = case.partition(" = ")
    measurand, value, *rest = given_.split()
    sample: dict[str, Any] = {"measurand": measurand, "value": float(value)}
    for word in rest:
        if word.startswith("*10^"):
            sample["multiplier"] = int(word.removeprefix("*10^"))
        else:
            sample["unit"] = word
    number, *unit = expected.split()
    row = one(payload(METER, samples=[sample]))
    assert isinstance(row, MeterValue) and isinstance(row.value, float)
    assert (row.value, row.unit) == (float(number), "".join(unit))


def test_session_stop_computes_its_energy_and_hashes_the_tag() -> None:
    session = one(payload(SESSION))
    assert isinstance(session, ChargingSession)
    stop = "2026-03-02T06:14:59.500000Z"
    assert stored(session) == sent(SESSION) | {
        "time": stop,  # the stop's own time: one row however often it is sent
        "started_at": "2026-03-02T05:00:00Z",
        "stopped_at": stop,
        "id_tag": id_tag_for_store("04A2B3C4"),
        "id_tag_hashed": True,
        "energy_wh": 50000.5,  # stop minus start
        "protocol": PROTOCOL,
    }
    # OCPP ID tokens are case-insensitive: the same hash as an OCPP charger's tag
    assert one(payload(SESSION, id_tag="04a2b3c4")).id_tag == session.id_tag
    plain = one(payload(SESSION), hashed=False)
    assert (plain.id_tag, plain.id_tag_hashed) == ("04A2B3C4", False)
    # the energy sent wins; without meter readings there is none
    assert one(payload(SESSION, energy_wh=49000)).energy_wh == 49000.0
    assert one(payload(SESSION, meter_stop_wh=DROP)).energy_wh is None
    # a stop without stopped_at stopped at the message's time
    bare = one(payload(SESSION, stopped_at=DROP))
    assert bare.time == bare.stopped_at == T0_UTC


def test_session_start_and_update_times() -> None:
    start = json.loads(
        payload(SESSION, event="start", stopped_at=DROP, meter_stop_wh=DROP, stop_reason=DROP)
    )
    row = one(payload(start))
    assert row.event == "start" and row.time == row.started_at
    assert row.started_at == datetime(2026, 3, 2, 5, 0, tzinfo=UTC) and row.energy_wh is None
    # sent again later with a new message time: the same row (same natural key)
    assert one(payload(start, time="2026-03-02T07:00:00Z")) == row
    # a start without started_at started at the message's time
    bare = one(payload(start, started_at=DROP))
    assert bare.time == bare.started_at == T0_UTC
    upd = one(payload(start, event="update", energy_wh=12000, soc_pct=55, started_at=DROP))
    assert (upd.event, upd.time, upd.started_at, upd.energy_wh) == ("update", T0_UTC, None, 12000)
    assert one(payload(start, id_tag=DROP)).id_tag_hashed is False


def test_event_detail_and_key() -> None:
    fault = stored(one(payload(EVENT)))
    detail = EVENT["detail"] | sent(EVENT, "charger_id", "event", "detail")
    assert detail == {
        "severity": "error",
        "code": "E-0412",
        "info": "insulation low",
        "connector_id": 2,
    }
    assert fault == {
        "charger_id": "CP-1",
        "time": "2026-03-02T06:15:00Z",
        "event": "fault",
        "protocol": PROTOCOL,
        "key": "/2::E-0412",
        "detail": detail,
    }
    boot = payload(EVENT, event="boot", code=DROP, info=DROP, connector_id=DROP, detail=DROP)
    assert (one(boot).key, one(boot).detail) == ("", None)
    assert one(payload(EVENT, key="seq-77", evse_id=3, request_id=9)).key == "seq-77"
    message = decode(payload(EVENT, evse_id=3, request_id=9, connector_id=0, code=DROP))
    assert isinstance(message, EventMessage) and event_key(message) == "3/0:9:"


# ------------------------------------------------------------------ identity and leniency


def test_the_charger_comes_from_the_topic_the_payload_or_both() -> None:
    anonymous = payload(STATUS, charger_id=DROP)
    assert decode(anonymous, charger_id="CP-T").charger_id == "CP-T"
    assert decode(payload(STATUS, charger_id=None), charger_id="CP-T").charger_id == "CP-T"
    assert decode(payload(STATUS)).charger_id == "CP-1"
    assert decode(payload(STATUS), charger_id="CP-1").charger_id == "CP-1"
    err = refusal(payload(STATUS), charger_id="CP-2")
    assert (err.reason, err.path) == (Reason.CHARGER_MISMATCH, "$.charger_id")
    assert "'CP-1'" in err.message and "'CP-2'" in err.message
    err = refusal(anonymous, charger_id="cp 1")
    assert (err.reason, err.path) == (Reason.BAD_VALUE, "$.charger_id")
    assert "from the transport" in err.message


def test_unknown_fields_are_ignored_nulls_are_absent_and_encode_round_trips() -> None:
    for kind, base in BASES.items():
        message = decode(payload(base))
        assert type(message) is TYPES[kind]
        assert decode(encode(message)) == message
        assert decode(payload(base, firmware="3.2.7", v2_field={"x": 1})) == message
    assert decode(payload(STATUS, info=None)) == decode(payload(STATUS, info=DROP))
    minimal = decode(payload(EVENT, code=DROP, info=DROP, connector_id=DROP, detail=DROP))
    assert json.loads(encode(minimal)) == sent(EVENT, "code", "info", "connector_id", "detail") | {
        "v": 1,
        "type": "event",
        "time": T0,
    }


def test_records_need_an_aware_receive_time_and_a_charger() -> None:
    message = decode(payload(STATUS))
    with pytest.raises(ValueError, match="timezone-aware"):
        records(message, datetime(2026, 3, 2, 6, 16))
    with pytest.raises(ValueError, match="charger_id"):
        records(msgspec.structs.replace(message, charger_id=None), RECEIVED)
    (row,) = records(message, RECEIVED.astimezone(PLUS3))
    assert row.received_at == RECEIVED and row.received_at.tzinfo is UTC


# ------------------------------------------------------------------ every error reason

TOO_LARGE, NOT_JSON, NO_VERSION, NO_TYPE = (
    Reason.TOO_LARGE,
    Reason.NOT_JSON,
    Reason.UNSUPPORTED_VERSION,
    Reason.UNKNOWN_TYPE,
)
MISSING, TYPE, VALUE, NAIVE = (
    Reason.MISSING_FIELD,
    Reason.BAD_TYPE,
    Reason.BAD_VALUE,
    Reason.NAIVE_TIME,
)


def raw(data: bytes, reason: Reason, name: str) -> Any:
    """A refused payload given whole; the path is ``$``."""
    return pytest.param(data, None, reason, "$", id=name)


def bad(
    base: dict[str, Any],
    key: str,
    value: Any,
    reason: Reason,
    path: str = "",
    topic: str | None = None,
    **more: Any,
) -> Any:
    """``base`` with ``key`` (dotted: ``samples.2.time``) set to ``value`` (and ``more``
    changes), refused for ``reason`` at ``path`` (default: the key's own)."""
    path = path or "$" + "".join(f"[{k}]" if k.isdigit() else f".{k}" for k in key.split("."))
    data = payload(base, **{key.replace(".", "__"): value}, **more)
    return pytest.param(data, topic, reason, path, id=f"{base['type']}:{key}={value!r:.24}")


_NESTED = payload(EVENT, detail={}).replace(b"{}", b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}")
_SAME_SAMPLE = {"samples__1__phase": DROP, "samples__1__location": DROP}

# (payload, charger id from the topic, reason, path)
ERRORS = [
    raw(b" " * (MAX_PAYLOAD + 1), TOO_LARGE, "over 1 MiB"),
    raw(b"", NOT_JSON, "empty"),
    raw(payload(STATUS)[:-9], NOT_JSON, "cut short"),
    raw(payload(STATUS).replace(b"low", b"\xe9"), NOT_JSON, "latin-1"),
    raw(payload(EVENT) + b"}", NOT_JSON, "bytes after"),
    raw(b"[]", TYPE, "an array"),
    raw(b"42", TYPE, "a number"),
    raw(_NESTED, VALUE, "nested too deeply"),
    bad(EVENT, "v", DROP, MISSING),
    bad(EVENT, "v", "1", TYPE),
    bad(EVENT, "v", True, TYPE),
    bad(EVENT, "v", 1.0, TYPE),
    bad(METER, "v", 2, NO_VERSION),
    bad(SESSION, "v", 0, NO_VERSION, type="charge", soc_pct="lots"),  # before any other error
    bad(STATUS, "type", DROP, MISSING),
    bad(STATUS, "type", None, TYPE),
    bad(STATUS, "type", "status", NO_TYPE),
    bad(STATUS, "type", "station_status", NO_TYPE),  # the swap set's
    bad(EVENT, "type", "heartbeat", NO_TYPE, time="now"),  # before any other error
    bad(EVENT, "time", DROP, MISSING),
    bad(STATUS, "connector_id", DROP, MISSING),
    bad(STATUS, "status", DROP, MISSING),
    bad(METER, "samples", DROP, MISSING),
    bad(METER, "samples.2.measurand", DROP, MISSING),
    bad(METER, "samples.0.value", DROP, MISSING),
    bad(METER, "samples.1.measurand", "Pressure.Coolant", MISSING, "$.samples[1].unit"),
    bad(SESSION, "event", DROP, MISSING),
    bad(SESSION, "transaction_id", DROP, MISSING),
    bad(EVENT, "event", DROP, MISSING),
    bad(EVENT, "charger_id", DROP, MISSING),
    bad(STATUS, "connector_id", "1", TYPE),
    bad(STATUS, "status", None, TYPE),
    bad(METER, "samples", {}, TYPE),
    bad(METER, "samples.1.value", "171.6", TYPE),
    bad(METER, "samples.0.multiplier", 0.5, TYPE),
    bad(SESSION, "time", 1772431200, TYPE),
    bad(SESSION, "extra", [1], TYPE),
    bad(EVENT, "detail", "x", TYPE),
    bad(EVENT, "request_id", "9", TYPE),
    bad(STATUS, "time", "2026-03-02T09:15:00", NAIVE),
    bad(METER, "samples.2.time", "2026-03-02 06:14:00", NAIVE),
    bad(SESSION, "started_at", "2026-03-02T08:00:00", NAIVE),
    bad(SESSION, "stopped_at", "2026-03-02T09:14:59.5", NAIVE),
    bad(STATUS, "time", "2026-02-29T00:00:00Z", VALUE),  # no such day
    bad(STATUS, "status", "Busy", VALUE),
    bad(STATUS, "connector_id", -1, VALUE),
    bad(STATUS, "evse_id", 0, VALUE),
    bad(STATUS, "info", "i" * 501, VALUE),
    bad(STATUS, "charger_id", "CP:1", VALUE),
    bad(STATUS, "charger_id", "C" * 49, VALUE),
    bad(STATUS, "station_id", "S/1", VALUE),
    bad(METER, "samples", [], VALUE),
    bad(METER, "samples.1.phase", "L4", VALUE),
    bad(METER, "samples.1.location", "Tail", VALUE),
    bad(METER, "samples.2.context", "Sample.Hourly", VALUE),
    bad(METER, "samples.0.measurand", "Energy Import", VALUE),
    bad(METER, "samples.0.value", 2e15, VALUE),
    pytest.param(payload(METER).replace(b"1234.567", b"1e999"), None, VALUE, "$.samples[0].value"),
    bad(METER, "samples.0.multiplier", 10, VALUE),
    bad(
        METER,
        "samples.1.measurand",
        METER["samples"][0]["measurand"],
        VALUE,
        "$.samples[1]",
        **_SAME_SAMPLE,
    ),
    bad(SESSION, "event", "pause", VALUE),
    bad(SESSION, "soc_pct", 100.5, VALUE),
    bad(SESSION, "energy_wh", -1, VALUE),
    bad(SESSION, "id_tag", "t" * 65, VALUE),
    bad(SESSION, "event", "update", VALUE, "$.stopped_at"),  # stop-only fields
    bad(SESSION, "event", "start", VALUE, "$.stop_reason", stopped_at=DROP, meter_stop_wh=DROP),
    bad(SESSION, "stopped_at", "2026-03-02T04:59:59Z", VALUE),  # before started_at
    bad(SESSION, "meter_stop_wh", 999, VALUE),  # below meter_start_wh
    bad(EVENT, "event", "Boot", VALUE),
    bad(EVENT, "key", "k" * 129, VALUE),
    bad(EVENT, "detail", {"code": "E-1"}, VALUE, "$.detail.code"),  # also a field
    bad(EVENT, "charger_id", DROP, VALUE, "$.charger_id", "a+b"),  # the topic's is no id
    bad(EVENT, "info", "x", Reason.CHARGER_MISMATCH, "$.charger_id", "CP-2"),
    bad(STATUS, "info", "x", Reason.CHARGER_MISMATCH, "$.charger_id", "cp-1"),  # case matters
]


def test_every_reason_is_tested() -> None:
    assert {case.values[2] for case in ERRORS} == set(Reason)
    assert {str(r) for r in Reason} == COMMON_REASONS | {"charger_mismatch"}


@pytest.mark.parametrize(("data", "topic", "reason", "path"), ERRORS)
def test_refused_with_reason_and_path(
    data: bytes, topic: str | None, reason: Reason, path: str
) -> None:
    err = refusal(data, charger_id=topic)
    assert (err.reason, err.path) == (reason, path), err.message
    assert type(err.reason) is Reason and isinstance(err, PayloadError | ValueError)
    assert err.message.startswith(path + ": ") and str(err) == f"{reason}: {err.message}"
    if reason not in (TOO_LARGE, NOT_JSON):  # the same from a str payload
        assert refusal(data.decode(), charger_id=topic).reason == reason


def test_error_messages() -> None:
    assert refusal(payload(METER, samples__1__phase="L4")).message == (
        "$.samples[1].phase: Invalid enum value 'L4'"
    )
    assert refusal(payload(METER, v=7)).message == "$.v: version 7; supported: [1]"
    assert refusal(payload(EVENT, charger_id=DROP)).message == (
        "$.charger_id: no charger_id in the payload and none from the transport"
    )


# ------------------------------------------------------------------ the shared decoding


def test_a_message_set_error_must_know_the_common_reasons() -> None:
    class Partial(StrEnum):
        NOT_JSON = "not_json"

    with pytest.raises(TypeError, match="lacks"):
        type("PartialError", (PayloadError,), {"REASONS": Partial})


def decoded_or_refused(data: bytes, topic: str | None) -> None:
    """``data`` decodes to a message with records, or is refused with a reason and its path:
    never another exception."""
    try:
        message = decode(data, charger_id=topic)
    except ChargerPayloadError as err:
        assert err.reason in set(Reason) and err.message.startswith(err.path + ": ")
        return
    assert records(message, RECEIVED)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
FIELDS = ["v", "type", "time", "connector_id", "samples", "samples__0", "event", "detail"]


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(BASES)), field=st.sampled_from(FIELDS), value=JSON_VALUES)
def test_any_value_anywhere(kind: str, field: str, value: Any) -> None:
    if field == "samples__0" and kind != "meter_values":
        return
    decoded_or_refused(payload(BASES[kind], **{field: value}), None)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=48), topic=st.none() | st.text(max_size=8))
def test_any_bytes_any_topic(data: bytes, topic: str | None) -> None:
    decoded_or_refused(data, topic)
