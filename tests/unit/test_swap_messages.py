"""The swap-station message set: every message kind decoded and normalized, every error reason
with its JSON path, station identity, the published schema (up to date, and accepting the
documented examples) and dead letters."""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.records import BatteryCharging, BatteryInventory, StationStatus, SwapEvent
from gateway.swap import schema as swap_schema
from gateway.swap.messages import (
    MAX_PAYLOAD,
    TYPES,
    ChargingBay,
    ChargingMessage,
    InventoryBay,
    InventoryMessage,
    Reason,
    StatusMessage,
    SwapMessage,
    SwapPayloadError,
    decode,
    encode,
)
from gateway.swap.normalize import PROTOCOL, dead_letter, records

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_FILE = DOCS / "swap-station.schema.json"
GUIDE = DOCS / "swap-station.md"
RECEIVED = datetime(2026, 3, 2, 6, 16, 0, 125000, tzinfo=UTC)
RIYADH = timezone(timedelta(hours=3))

STATUS: dict[str, Any] = {
    "v": 1,
    "type": "station_status",
    "station_id": "SW-T-1",
    "time": "2026-03-02T09:15:00+03:00",
    "state": "operating",
    "bays_total": 10,
    "bays_available": 4,
    "batteries_charged": 4,
    "batteries_charging": 5,
    "power_w": 612500,
    "faults": ["COOLING_FAN_2"],
    "extra": {"firmware": "2.4.1"},
}
INVENTORY: dict[str, Any] = {
    "v": 1,
    "type": "inventory",
    "station_id": "SW-T-1",
    "time": "2026-03-02T06:15:00Z",
    "bays": [
        {
            "bay": 1,
            "state": "ready",
            "pack_id": "P-1",
            "soc_pct": 97,
            "soh_pct": 98.5,
            "energy_wh": 273540,
            "temperature_c": -5.5,
        },
        {"bay": 3, "state": "empty"},
    ],
}
CHARGING: dict[str, Any] = {
    "v": 1,
    "type": "charging",
    "station_id": "SW-T-1",
    "time": "2026-03-02T06:15:00.250Z",
    "bays": [
        {
            "bay": 2,
            "state": "charging",
            "pack_id": "P-2",
            "soc_pct": 41.0,
            "power_w": 120500,
            "voltage_v": 702.4,
            "current_a": -171.6,
            "energy_wh": 64300,
            "temperature_c": 33.0,
        },
        {"bay": 5, "state": "waiting"},
    ],
}
SWAP: dict[str, Any] = {
    "v": 1,
    "type": "swap",
    "station_id": "SW-T-1",
    "time": "2026-03-02T09:15:40+03:00",
    "swap_id": "20260302-0042",
    "bay": 1,
    "vin": "LZGJLGM46RX123456",
    "started_at": "2026-03-02T09:10:05+03:00",
    "ended_at": "2026-03-02T09:15:38.500+03:00",
    "result": "success",
    "pack_out": {"pack_id": "P-OUT", "soc_pct": 18.5, "energy_wh": 52170, "soh_pct": 96, "bay": 2},
    "pack_in": {"pack_id": "P-IN", "soc_pct": 97.0, "energy_wh": 273540},
    "faults": ["LOCK_RETRY"],
    "extra": {"robot": "R2"},
}
MESSAGES = {"station_status": STATUS, "inventory": INVENTORY, "charging": CHARGING, "swap": SWAP}


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


DROP: Any = object()
"""A change's value that removes the field."""


def _edited(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with the values at dotted paths (``bays.0.soc_pct``) replaced, or
    removed where the value is DROP."""
    obj = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, last = path.split(".")
        target: Any = obj
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key: Any = int(last) if isinstance(target, list) else last
        if value is DROP:
            del target[key]
        else:
            target[key] = value
    return obj


def _with(base: dict[str, Any], path: str, value: Any = DROP) -> bytes:
    """``base`` as JSON with one change (see _edited)."""
    return _json(_edited(base, {path: value}))


def _refused(payload: bytes | str, station_id: str | None = None) -> SwapPayloadError:
    with pytest.raises(SwapPayloadError) as info:
        decode(payload, station_id=station_id)
    return info.value


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _doc_examples() -> list[str]:
    return re.findall(r"```json\n(.*?)```", GUIDE.read_text(), re.S)


# --------------------------------------------------------------------------- schema and docs


def test_schema_file_is_the_generated_one() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == swap_schema.schema()
    assert SCHEMA_FILE.read_text() == swap_schema.schema_text()


def test_documented_examples_decode_and_validate() -> None:
    examples = _doc_examples()
    assert len(examples) == 5
    validator = _validator()
    kinds = set()
    for text in examples:
        errors = [e.message for e in validator.iter_errors(json.loads(text))]
        assert errors == [], text
        message = decode(text)
        kinds.add(json.loads(text)["type"])
        assert decode(encode(message)) == message
        assert records(message, RECEIVED)
    assert kinds == set(TYPES)


def test_test_messages_validate_and_schema_refuses_bad_ones() -> None:
    validator = _validator()
    for message in MESSAGES.values():
        assert list(validator.iter_errors(message)) == []
    bad = [
        _with(STATUS, "time", "2026-03-02T09:15:00"),  # no offset
        _with(STATUS, "v", 2),
        _with(STATUS, "type", "status"),
        _with(STATUS, "state"),
        _with(STATUS, "bays_total", -1),
        _with(INVENTORY, "bays.0.soc_pct", 100.5),
        _with(INVENTORY, "bays.1.state", "full"),
        _with(INVENTORY, "bays", []),
        _with(CHARGING, "bays.0.bay", "2"),
        _with(SWAP, "vin", "LZGJLGM46RX12345O"),  # O is not a VIN character
        _with(SWAP, "pack_in.pack_id"),
        _with(SWAP, "station_id", "SW/1"),
    ]
    for payload in bad:
        assert list(validator.iter_errors(json.loads(payload))), payload
        with pytest.raises(SwapPayloadError):
            decode(payload, station_id="SW-T-1")


# --------------------------------------------------------------------------- every kind


def test_station_status() -> None:
    message = decode(_json(STATUS))
    assert isinstance(message, StatusMessage)
    assert message.time == datetime(2026, 3, 2, 9, 15, tzinfo=RIYADH)
    (status,) = records(message, RECEIVED)
    assert status == StationStatus(
        station_id="SW-T-1",
        time=datetime(2026, 3, 2, 6, 15, tzinfo=UTC),
        state="operating",
        bays_total=10,
        bays_available=4,
        batteries_charged=4,
        batteries_charging=5,
        power_w=612500.0,
        faults=["COOLING_FAN_2"],
        extra={"firmware": "2.4.1"},
        received_at=RECEIVED,
    )
    assert status.time.tzinfo is UTC and isinstance(status.power_w, float)
    minimal = decode(
        b'{"v":1,"type":"station_status","time":"2026-03-02T06:15:00Z","state":"offline"}',
        station_id="SW-T-2",
    )
    assert records(minimal, RECEIVED) == [
        StationStatus(
            station_id="SW-T-2",
            time=datetime(2026, 3, 2, 6, 15, tzinfo=UTC),
            state="offline",
            received_at=RECEIVED,
        )
    ]


def test_inventory() -> None:
    message = decode(_json(INVENTORY))
    assert isinstance(message, InventoryMessage)
    time = datetime(2026, 3, 2, 6, 15, tzinfo=UTC)
    assert records(message, RECEIVED) == [
        BatteryInventory(
            station_id="SW-T-1",
            time=time,
            bay=1,
            state="ready",
            pack_id="P-1",
            soc_pct=97.0,
            soh_pct=98.5,
            energy_wh=273540.0,
            temperature_c=-5.5,
            received_at=RECEIVED,
        ),
        BatteryInventory(
            station_id="SW-T-1", time=time, bay=3, state="empty", received_at=RECEIVED
        ),
    ]


def test_charging() -> None:
    message = decode(_json(CHARGING))
    assert isinstance(message, ChargingMessage)
    time = datetime(2026, 3, 2, 6, 15, 0, 250000, tzinfo=UTC)
    assert records(message, RECEIVED) == [
        BatteryCharging(
            station_id="SW-T-1",
            time=time,
            bay=2,
            state="charging",
            pack_id="P-2",
            soc_pct=41.0,
            power_w=120500.0,
            voltage_v=702.4,
            current_a=-171.6,
            energy_wh=64300.0,
            temperature_c=33.0,
            received_at=RECEIVED,
        ),
        BatteryCharging(
            station_id="SW-T-1", time=time, bay=5, state="waiting", received_at=RECEIVED
        ),
    ]


def test_swap() -> None:
    message = decode(_json(SWAP))
    assert isinstance(message, SwapMessage)
    (event,) = records(message, RECEIVED)
    assert event == SwapEvent(
        station_id="SW-T-1",
        time=datetime(2026, 3, 2, 6, 10, 5, tzinfo=UTC),  # started_at, in UTC
        result="success",
        bay=1,
        swap_id="20260302-0042",
        vin="LZGJLGM46RX123456",
        pack_out_id="P-OUT",
        pack_out_soc_pct=18.5,
        pack_out_energy_wh=52170.0,
        pack_in_id="P-IN",
        pack_in_soc_pct=97.0,
        pack_in_energy_wh=273540.0,
        duration_s=333.5,
        faults=["LOCK_RETRY"],
        extra={"pack_out_soh_pct": 96.0, "pack_out_bay": 2, "vendor": {"robot": "R2"}},
        received_at=RECEIVED,
    )
    # A re-sent swap with a new message time is the same record (same key).
    again = decode(_with(SWAP, "time", "2026-03-02T07:00:00Z"))
    assert records(again, RECEIVED) == [event]
    aborted = decode(
        b'{"v":1,"type":"swap","station_id":"S","time":"2026-03-02T06:15:00Z",'
        b'"started_at":"2026-03-02T06:14:00Z","ended_at":"2026-03-02T06:14:00Z",'
        b'"result":"aborted"}'
    )
    (short,) = records(aborted, RECEIVED)
    assert isinstance(short, SwapEvent)
    assert (short.duration_s, short.pack_in_id, short.pack_out_id, short.extra, short.bay) == (
        0.0,
        None,
        None,
        None,
        None,
    )


def test_encode_leaves_defaults_out_and_round_trips() -> None:
    for obj in MESSAGES.values():
        message = decode(_json(obj))
        assert decode(encode(message)) == message
    minimal = decode(
        b'{"v":1,"type":"inventory","time":"2026-03-02T06:15:00Z","bays":[{"bay":1,"state":"empty"}]}',
        station_id="S",
    )
    assert json.loads(encode(minimal)) == {
        "type": "inventory",
        "v": 1,
        "time": "2026-03-02T06:15:00Z",
        "station_id": "S",
        "bays": [{"bay": 1, "state": "empty"}],
    }


def test_nulls_mean_absent_and_unknown_fields_are_ignored() -> None:
    payload = _with(INVENTORY, "bays.0.soh_pct", None)
    first = records(decode(payload), RECEIVED)[0]
    assert isinstance(first, BatteryInventory) and first.soh_pct is None
    obj = copy.deepcopy(SWAP)
    obj["weather"] = {"temp_c": 41}
    obj["pack_in"]["chemistry"] = "LFP"
    assert decode(_json(obj)) == decode(_json(SWAP))


def test_records_needs_an_aware_receive_time_and_a_station() -> None:
    message = decode(_json(STATUS))
    with pytest.raises(ValueError, match="timezone-aware"):
        records(message, datetime(2026, 3, 2, 6, 16))
    anonymous = msgspec.structs.replace(message, station_id=None)
    with pytest.raises(ValueError, match="station_id"):
        records(anonymous, RECEIVED)


# --------------------------------------------------------------------------- station identity


def test_station_from_topic_payload_or_both() -> None:
    no_station = _with(STATUS, "station_id")
    assert decode(no_station, station_id="SW-TOPIC").station_id == "SW-TOPIC"
    assert decode(_json(STATUS)).station_id == "SW-T-1"
    assert decode(_json(STATUS), station_id="SW-T-1").station_id == "SW-T-1"
    assert decode(_with(STATUS, "station_id", None), station_id="SW-TOPIC").station_id == (
        "SW-TOPIC"
    )

    err = _refused(_json(STATUS), station_id="SW-OTHER")
    assert (err.reason, err.path) == (Reason.STATION_MISMATCH, "$.station_id")
    assert "'SW-T-1'" in err.message and "'SW-OTHER'" in err.message

    err = _refused(no_station)
    assert (err.reason, err.path) == (Reason.MISSING_FIELD, "$.station_id")

    err = _refused(no_station, station_id="bad/topic+id")
    assert (err.reason, err.path) == (Reason.BAD_VALUE, "$.station_id")
    assert "transport" in err.message


# --------------------------------------------------------------------------- every error reason


_DEEP = b"[" * 100_000 + b"]" * 100_000
_NO_STATION = _edited(STATUS, {"station_id": DROP})

# (case, payload, station from the topic, reason, path)
ERRORS: list[tuple[str, bytes, str | None, Reason, str]] = [
    ("over 1 MiB", b" " * (MAX_PAYLOAD + 1), None, Reason.TOO_LARGE, "$"),
    ("truncated", b'{"v":1,', None, Reason.NOT_JSON, "$"),
    ("empty", b"", None, Reason.NOT_JSON, "$"),
    ("not utf-8", b'{"v":1,"type":"\xff"}', None, Reason.NOT_JSON, "$"),
    ("NaN", b'{"v":NaN}', None, Reason.NOT_JSON, "$"),
    ("trailing bytes", _json(STATUS) + b" x", None, Reason.NOT_JSON, "$"),
    ("array", b"[1, 2]", None, Reason.BAD_TYPE, "$"),
    ("string", b'"swap"', None, Reason.BAD_TYPE, "$"),
    ("no v", _with(STATUS, "v"), None, Reason.MISSING_FIELD, "$.v"),
    ("v text", _with(STATUS, "v", "1"), None, Reason.BAD_TYPE, "$.v"),
    ("v float", _with(STATUS, "v", 1.0), None, Reason.BAD_TYPE, "$.v"),
    ("v bool", _with(STATUS, "v", True), None, Reason.BAD_TYPE, "$.v"),
    ("v null", _with(STATUS, "v", None), None, Reason.BAD_TYPE, "$.v"),
    ("v 2", _with(STATUS, "v", 2), None, Reason.UNSUPPORTED_VERSION, "$.v"),
    ("v 0", _with(SWAP, "v", 0), None, Reason.UNSUPPORTED_VERSION, "$.v"),
    (
        "v 2 is reported before its other errors",
        _json(_edited(SWAP, {"v": 2, "vin": 5, "result": "done", "started_at": DROP})),
        None,
        Reason.UNSUPPORTED_VERSION,
        "$.v",
    ),
    (
        "v 2 is reported before an unknown type",
        _json(_edited(SWAP, {"v": 2, "type": "queue"})),
        None,
        Reason.UNSUPPORTED_VERSION,
        "$.v",
    ),
    ("no type", _with(STATUS, "type"), None, Reason.MISSING_FIELD, "$.type"),
    ("type number", _with(STATUS, "type", 5), None, Reason.BAD_TYPE, "$.type"),
    ("type unknown", _with(STATUS, "type", "status"), None, Reason.UNKNOWN_TYPE, "$.type"),
    ("type empty", _with(STATUS, "type", ""), None, Reason.UNKNOWN_TYPE, "$.type"),
    (
        "unknown type is reported before other errors",
        _json(_edited(SWAP, {"type": "queue", "time": "soon"})),
        None,
        Reason.UNKNOWN_TYPE,
        "$.type",
    ),
    ("no time", _with(STATUS, "time"), None, Reason.MISSING_FIELD, "$.time"),
    ("no state", _with(STATUS, "state"), None, Reason.MISSING_FIELD, "$.state"),
    ("no bays", _with(INVENTORY, "bays"), None, Reason.MISSING_FIELD, "$.bays"),
    (
        "no bay state",
        _with(INVENTORY, "bays.1.state"),
        None,
        Reason.MISSING_FIELD,
        "$.bays[1].state",
    ),
    ("no bay", _with(CHARGING, "bays.0.bay"), None, Reason.MISSING_FIELD, "$.bays[0].bay"),
    ("no started_at", _with(SWAP, "started_at"), None, Reason.MISSING_FIELD, "$.started_at"),
    (
        "no pack id",
        _with(SWAP, "pack_out.pack_id"),
        None,
        Reason.MISSING_FIELD,
        "$.pack_out.pack_id",
    ),
    ("success without pack_in", _with(SWAP, "pack_in"), None, Reason.MISSING_FIELD, "$.pack_in"),
    (
        "success without pack_out",
        _with(SWAP, "pack_out", None),
        None,
        Reason.MISSING_FIELD,
        "$.pack_out",
    ),
    ("no station anywhere", _json(_NO_STATION), None, Reason.MISSING_FIELD, "$.station_id"),
    ("count as text", _with(STATUS, "bays_total", "10"), None, Reason.BAD_TYPE, "$.bays_total"),
    ("state null", _with(STATUS, "state", None), None, Reason.BAD_TYPE, "$.state"),
    ("faults not a list", _with(STATUS, "faults", "E1"), None, Reason.BAD_TYPE, "$.faults"),
    ("fault not text", _with(STATUS, "faults", [1]), None, Reason.BAD_TYPE, "$.faults[0]"),
    ("extra a list", _with(STATUS, "extra", []), None, Reason.BAD_TYPE, "$.extra"),
    ("time a number", _with(STATUS, "time", 1772431200), None, Reason.BAD_TYPE, "$.time"),
    ("bays an object", _with(INVENTORY, "bays", {}), None, Reason.BAD_TYPE, "$.bays"),
    ("bay as text", _with(CHARGING, "bays.0.bay", "2"), None, Reason.BAD_TYPE, "$.bays[0].bay"),
    ("pack a string", _with(SWAP, "pack_in", "P-IN"), None, Reason.BAD_TYPE, "$.pack_in"),
    ("naive time", _with(STATUS, "time", "2026-03-02T09:15:00"), None, Reason.NAIVE_TIME, "$.time"),
    (
        "naive started_at",
        _with(SWAP, "started_at", "2026-03-02 09:10:05"),
        None,
        Reason.NAIVE_TIME,
        "$.started_at",
    ),
    (
        "naive ended_at",
        _with(SWAP, "ended_at", "2026-03-02T09:15:38.5"),
        None,
        Reason.NAIVE_TIME,
        "$.ended_at",
    ),
    (
        "no such date",
        _with(STATUS, "time", "2026-02-30T00:00:00Z"),
        None,
        Reason.BAD_VALUE,
        "$.time",
    ),
    ("time not a date", _with(STATUS, "time", "yesterday"), None, Reason.BAD_VALUE, "$.time"),
    ("state unknown", _with(STATUS, "state", "busy"), None, Reason.BAD_VALUE, "$.state"),
    ("count negative", _with(STATUS, "bays_total", -1), None, Reason.BAD_VALUE, "$.bays_total"),
    (
        "power infinite",
        _json(STATUS)[:-1] + b',"power_w":1e400}',
        None,
        Reason.BAD_VALUE,
        "$.power_w",
    ),
    ("too many faults", _with(STATUS, "faults", ["E"] * 65), None, Reason.BAD_VALUE, "$.faults"),
    ("empty fault code", _with(STATUS, "faults", [""]), None, Reason.BAD_VALUE, "$.faults[0]"),
    (
        "available above total",
        _with(STATUS, "bays_available", 11),
        None,
        Reason.BAD_VALUE,
        "$.bays_available",
    ),
    (
        "charged + charging above total",
        _with(STATUS, "batteries_charging", 7),
        None,
        Reason.BAD_VALUE,
        "$.batteries_charging",
    ),
    (
        "soc above 100",
        _with(INVENTORY, "bays.0.soc_pct", 100.5),
        None,
        Reason.BAD_VALUE,
        "$.bays[0].soc_pct",
    ),
    (
        "soh negative",
        _with(INVENTORY, "bays.0.soh_pct", -1),
        None,
        Reason.BAD_VALUE,
        "$.bays[0].soh_pct",
    ),
    (
        "too hot",
        _with(INVENTORY, "bays.0.temperature_c", 151),
        None,
        Reason.BAD_VALUE,
        "$.bays[0].temperature_c",
    ),
    ("bay 0", _with(INVENTORY, "bays.1.bay", 0), None, Reason.BAD_VALUE, "$.bays[1].bay"),
    (
        "bay state unknown",
        _with(INVENTORY, "bays.1.state", "full"),
        None,
        Reason.BAD_VALUE,
        "$.bays[1].state",
    ),
    ("no bays listed", _with(INVENTORY, "bays", []), None, Reason.BAD_VALUE, "$.bays"),
    (
        "bay listed twice",
        _with(INVENTORY, "bays.1.bay", 1),
        None,
        Reason.BAD_VALUE,
        "$.bays[1].bay",
    ),
    (
        "empty bay with a pack",
        _with(INVENTORY, "bays.1.pack_id", "P-9"),
        None,
        Reason.BAD_VALUE,
        "$.bays[1].state",
    ),
    (
        "current too high",
        _with(CHARGING, "bays.0.current_a", 6000),
        None,
        Reason.BAD_VALUE,
        "$.bays[0].current_a",
    ),
    (
        "charging bay twice",
        _with(CHARGING, "bays.1.bay", 2),
        None,
        Reason.BAD_VALUE,
        "$.bays[1].bay",
    ),
    ("bad VIN", _with(SWAP, "vin", "LZGJLGM46RX12345"), None, Reason.BAD_VALUE, "$.vin"),
    ("result unknown", _with(SWAP, "result", "ok"), None, Reason.BAD_VALUE, "$.result"),
    ("swap id too long", _with(SWAP, "swap_id", "x" * 65), None, Reason.BAD_VALUE, "$.swap_id"),
    ("pack bay 0", _with(SWAP, "pack_out.bay", 0), None, Reason.BAD_VALUE, "$.pack_out.bay"),
    (
        "ended before started",
        _with(SWAP, "ended_at", "2026-03-02T06:10:04.999Z"),
        None,
        Reason.BAD_VALUE,
        "$.ended_at",
    ),
    (
        "same pack out and in",
        _with(SWAP, "pack_in.pack_id", "P-OUT"),
        None,
        Reason.BAD_VALUE,
        "$.pack_in.pack_id",
    ),
    (
        "station id with /",
        _with(STATUS, "station_id", "SW/1"),
        None,
        Reason.BAD_VALUE,
        "$.station_id",
    ),
    ("station id empty", _with(STATUS, "station_id", ""), None, Reason.BAD_VALUE, "$.station_id"),
    (
        "station id too long",
        _with(STATUS, "station_id", "S" * 65),
        None,
        Reason.BAD_VALUE,
        "$.station_id",
    ),
    ("topic station invalid", _json(_NO_STATION), "a b", Reason.BAD_VALUE, "$.station_id"),
    (
        "nested too deeply",
        _json(STATUS)[:-1] + b',"extra":{"a":' + _DEEP + b"}}",
        None,
        Reason.BAD_VALUE,
        "$",
    ),
    (
        "topic names another station",
        _json(STATUS),
        "SW-T-2",
        Reason.STATION_MISMATCH,
        "$.station_id",
    ),
    (
        "payload names another station",
        _json(SWAP),
        "sw-t-1",
        Reason.STATION_MISMATCH,
        "$.station_id",
    ),
]


def test_every_reason_is_tested() -> None:
    assert {reason for *_, reason, _ in ERRORS} == set(Reason)


@pytest.mark.parametrize(
    ("payload", "station", "reason", "path"),
    [pytest.param(*case[1:], id=case[0]) for case in ERRORS],
)
def test_error_reason_and_path(
    payload: bytes, station: str | None, reason: Reason, path: str
) -> None:
    err = _refused(payload, station_id=station)
    assert (err.reason, err.path) == (reason, path), err.message
    assert err.message.startswith(f"{path}: ")
    assert str(err) == f"{reason}: {err.message}"
    assert isinstance(err, ValueError)
    # str payloads decode alike
    if len(payload) <= MAX_PAYLOAD and reason is not Reason.NOT_JSON:
        assert _refused(payload.decode(), station_id=station).reason == reason


def test_error_messages_name_the_field() -> None:
    err = _refused(_with(INVENTORY, "bays.0.soc_pct", 100.5))
    assert err.message == "$.bays[0].soc_pct: Expected `float` <= 100.0"
    err = _refused(_with(STATUS, "v", 3))
    assert err.message == "$.v: version 3; supported: [1]"
    err = _refused(_with(INVENTORY, "bays.1.state"))
    assert err.message == "$.bays[1].state: Object missing required field `state`"


# --------------------------------------------------------------------------- dead letters


def test_dead_letter_keeps_the_payload_and_reason() -> None:
    payload = _with(STATUS, "time", "2026-03-02T09:15:00")
    err = _refused(payload, station_id="SW-T-1")
    frame_id = uuid.uuid4()
    letter = dead_letter(
        payload,
        err,
        frame_id=frame_id,
        received_at=RECEIVED,
        peer="mqtt:sw-t-1",
        station_id="SW-T-1",
    )
    assert letter.frame_id == frame_id and letter.received_at == RECEIVED
    assert (letter.protocol, letter.reason, letter.device_id) == (PROTOCOL, "naive_time", "SW-T-1")
    assert letter.message.startswith("$.time: ") and letter.raw == payload
    assert letter.peer == "mqtt:sw-t-1" and letter.offset is None


# --------------------------------------------------------------------------- robustness

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(MESSAGES)),
    field=st.sampled_from(
        [
            "v",
            "type",
            "time",
            "state",
            "bays",
            "bays.0",
            "bays.0.bay",
            "bays.0.state",
            "bays.0.soc_pct",
            "station_id",
            "pack_in",
            "started_at",
            "faults",
            "extra",
        ]
    ),
    value=_JSON_VALUES,
)
def test_any_field_value_decodes_or_is_refused_with_a_reason(
    kind: str, field: str, value: Any
) -> None:
    base = MESSAGES[kind]
    head = field.split(".")[0]
    if head not in base or (field.startswith("bays.0.") and "bays" not in base):
        return
    payload = _with(base, field, value)
    try:
        message = decode(payload)
    except SwapPayloadError as err:
        assert err.message.startswith(err.path + ": ")
        assert err.reason in set(Reason)
    else:
        assert records(message, RECEIVED)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_decode_or_are_refused(data: bytes) -> None:
    try:
        decode(data, station_id="S")
    except SwapPayloadError as err:  # and nothing else
        assert err.message.startswith(err.path + ": ")


@pytest.mark.parametrize(
    ("bay", "record"), [(InventoryBay, BatteryInventory), (ChargingBay, BatteryCharging)]
)
def test_bay_entries_have_exactly_their_records_fields(bay: type, record: type) -> None:
    """Normalization copies a bay entry's fields by name: a field on one side only would be
    dropped or missing."""
    message_wide = {"station_id", "time", "received_at"}
    record_fields = {f.name for f in msgspec.structs.fields(record)} - message_wide
    assert {f.name for f in msgspec.structs.fields(bay)} == record_fields
