"""Local republish messages: topics (levels made safe, the operator placeholder), the JSON of
every record kind (the JSON feed's for vehicle records, the record plus ``kind`` otherwise), the
published schema (up to date, accepting every message), and the ``[republish]`` section."""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest

from gateway import records as rec
from gateway.batch import RECORD_TYPES
from gateway.codecs import gbt32960, jt808
from gateway.config import ConfigError, parse
from gateway.forward import feed
from gateway.mqtt_config import topic_matches
from gateway.normalize import normalize
from gateway.republish import message
from gateway.republish.config import ALL_KINDS, RepublishConfig
from gateway.republish.operators import CHARGER, STATION, TERMINAL, VEHICLE, registry_key
from gateway.simulator import Fleet
from gateway.store.tables import spec_for
from gateway.swap.messages import decode as swap_decode
from gateway.swap.normalize import records as swap_records

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_FILE = DOCS / "republish.schema.json"
RECEIVED = datetime(2026, 3, 2, 6, 16, 0, 125000, tzinfo=UTC)
T0 = datetime(2026, 3, 2, 6, 15, tzinfo=UTC)


def vehicle_records(gbt_vectors: list[dict[str, Any]]) -> list[Any]:
    """GB/T 32960 2016 / 2025 and JT/T 808 2013 / 2019 logins and reports, and vector frames
    with alarms; as normalize makes them (no received_at)."""
    fleet = Fleet(4)
    raw = fleet.logins() + fleet.reports() + fleet.logouts()
    raw += [bytes.fromhex(v["hex"]) for v in gbt_vectors if v["id"] in ("GB-02", "GB-13", "GB-15")]
    out: list[Any] = []
    for frame in raw:
        decoded = jt808.decode_frame(frame) if frame[0] == 0x7E else gbt32960.decode_frame(frame)
        out += normalize(decoded)
    return out


def charger_records() -> list[Any]:
    """One record of each OCPP kind (as gateway.ocpp.normalize makes them)."""
    common: dict[str, Any] = {"charger_id": "CP-1", "protocol": "ocpp1.6", "received_at": RECEIVED}
    return [
        rec.ChargerStatus(
            **common, time=T0, connector_id=1, status="Charging", error_code="NoError"
        ),
        rec.MeterValue(
            **common,
            time=T0,
            connector_id=1,
            measurand="Energy.Active.Import.Register",
            value=12345.0,
            unit="Wh",
            transaction_id="42",
            context="Sample.Periodic",
        ),
        rec.ChargingSession(
            **common,
            transaction_id="42",
            time=T0,
            event="start",
            connector_id=1,
            id_tag="sha256:ab",
            id_tag_hashed=True,
            started_at=T0,
            meter_start_wh=12000.0,
        ),
        rec.ChargerEvent(
            **common, time=T0, event="boot", key="", detail={"vendor": "ACME", "blob": b"\x01\x02"}
        ),
    ]


def station_records() -> list[Any]:
    """Every swap kind: the documented examples of docs/swap-station.md."""
    examples = re.findall(r"```json\n(.*?)```", (DOCS / "swap-station.md").read_text(), re.S)
    out: list[Any] = []
    for text in examples:
        out += swap_records(swap_decode(text.encode()), RECEIVED)
    return out


@pytest.fixture
def every_kind(gbt_vectors: list[dict[str, Any]]) -> list[Any]:
    records = vehicle_records(gbt_vectors) + charger_records() + station_records()
    assert {message.KINDS[type(r)] for r in records} == set(ALL_KINDS)
    return records


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


# --------------------------------------------------------------------------- kinds and schema


def test_kinds_cover_every_record_but_the_archive() -> None:
    stored = set(RECORD_TYPES.values())  # everything the pipeline carries
    assert set(message.KINDS) == stored - {rec.RawFrame, rec.DeadLetter}
    assert set(message.KINDS.values()) == set(ALL_KINDS)
    assert set(message.DEVICE_FIELDS) == set(message.KINDS)
    # the JSON feed's names where it has them
    assert {t: message.KINDS[t] for t in feed.FEED_TYPES} == {
        t: feed.FEED_TYPES[t].__struct_config__.tag for t in feed.FEED_TYPES
    }


def test_schema_file_is_the_generated_one() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == message.schema()
    assert SCHEMA_FILE.read_text() == message.schema_text()


# --------------------------------------------------------------------------- payloads


def test_every_kind_is_valid_json_of_its_type(every_kind: list[Any]) -> None:
    check = validator()
    decoder = msgspec.json.Decoder(message.Message)
    for record in every_kind:
        raw = message.payload(record, RECEIVED)
        body = json.loads(raw)
        assert next(iter(body)) == "kind" and body["kind"] == message.KINDS[type(record)]
        errors = list(check.iter_errors(body))
        assert not errors, (type(record).__name__, errors[:2])
        typed = decoder.decode(raw)
        assert type(typed) is message.MESSAGE_TYPES[type(record)]
        # every field of the record is there, and nothing else but kind
        assert set(body) == {"kind", *record.__struct_fields__}
    broken = json.loads(message.payload(every_kind[-1], RECEIVED)) | {"time": 1700000000}
    assert list(check.iter_errors(broken))


def test_vehicle_messages_are_the_json_feed_records(every_kind: list[Any]) -> None:
    vehicle = [r for r in every_kind if type(r) in feed.FEED_TYPES]
    assert {type(r) for r in vehicle} == set(feed.FEED_TYPES)
    for record in vehicle:
        fed = json.loads(msgspec.json.encode(feed.to_feed(record, uuid.uuid4(), 3, RECEIVED)))
        del fed["frame_id"], fed["index"]
        assert json.loads(message.payload(record, RECEIVED)) == fed
    first = json.loads(message.payload(vehicle[0], RECEIVED))
    realtime = next(
        json.loads(message.payload(r, RECEIVED))
        for r in vehicle
        if type(r) is rec.VehicleRealtime and len(r.cell_voltages) == 384
    )
    assert first["received_at"] == "2026-03-02T06:16:00.125000Z"  # filled in
    assert len(realtime["cell_voltages"]) == 192
    assert all(2.5 < v < 4.5 for v in realtime["cell_voltages"])


def test_other_messages_are_the_record_with_kind(every_kind: list[Any]) -> None:
    others = [r for r in every_kind if type(r) not in feed.FEED_TYPES]
    for record in others:
        assert record.received_at is not None
        expected = {"kind": message.KINDS[type(record)], **json.loads(msgspec.json.encode(record))}
        assert json.loads(message.payload(record, datetime(2000, 1, 1, tzinfo=UTC))) == expected
    event = json.loads(message.payload(charger_records()[3], RECEIVED))
    assert event["detail"] == {"vendor": "ACME", "blob": "AQI="}  # bytes inside detail: base64


def test_missing_times_are_filled_as_the_store_does() -> None:
    login = rec.SessionEvent(device_id="013800000001", protocol="jt808", time=None, event="auth")
    body = json.loads(message.payload(login, RECEIVED))
    assert body["time"] == body["received_at"] == "2026-03-02T06:16:00.125000Z"
    assert login.time is None and login.received_at is None  # the record itself is untouched
    status = rec.StationStatus(station_id="SW-1", time=T0, state="operating")
    assert json.loads(message.payload(status, RECEIVED))["received_at"].startswith("2026-03-02T06")
    stamped = rec.StationStatus(station_id="SW-1", time=T0, state="operating", received_at=T0)
    assert json.loads(message.payload(stamped, RECEIVED))["received_at"] == "2026-03-02T06:15:00Z"


def _volts_by_arithmetic(raw: bytes) -> list[float | None]:
    out: list[float | None] = []
    for i in range(0, len(raw) - 1, 2):
        v = raw[i] << 8 | raw[i + 1]
        out.append(None if v >= 0xFFFE else v / 1000)
    return out


def test_cells_and_probes_unpack_by_table_as_by_arithmetic() -> None:
    rng = random.Random(7)
    cases = [b"", b"\x0f", b"\xff\xfe\xff\xff\x00\x00\x10\x04", bytes([0xFE, 0xFF, 0, 40, 255])]
    cases += [os.urandom(rng.randrange(0, 500)) for _ in range(200)]
    for raw in cases:
        assert feed.cell_volts(raw) == _volts_by_arithmetic(raw)
        assert feed.probe_temps(raw) == [None if b >= 0xFE else b - 40 for b in raw]
    assert feed.cell_volts(b"\x10\x04\xff\xfe") == [4.1, None]


# --------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("LSGTEST0000000001", "LSGTEST0000000001"),
        ("acme_sg-1.x", "acme_sg-1.x"),
        ("a/b", "a%2Fb"),
        ("+", "%2B"),
        ("#", "%23"),
        ("50%", "50%25"),
        ("a%2Fb", "a%252Fb"),  # '%' itself is encoded: a/b and a%2Fb stay apart
        ("tab\there\x00", "tab%09here%00"),
        ("", "_"),
        (None, "_"),
        ("站点-1", "站点-1"),
    ],
)
def test_segment(value: str | None, level: str) -> None:
    assert message.segment(value) == level


def test_topic_of_every_kind(every_kind: list[Any]) -> None:
    seen: set[str] = set()
    for record in every_kind:
        topic = message.topic("silkgate/v1", "acme", record)
        prefix, _, op, kind, device = topic.split("/")
        assert (prefix, op, kind) == ("silkgate", "acme", message.KINDS[type(record)])
        assert device == getattr(record, message.DEVICE_FIELDS[type(record)])
        assert topic_matches("silkgate/v1/+/+/+", topic)
        seen.add(kind)
    assert seen == set(ALL_KINDS)
    status = rec.ChargerStatus(
        charger_id="site/7#2", time=T0, connector_id=0, status="Available", protocol="ocpp2.0.1"
    )
    assert message.topic("op/v1", None, status) == "op/v1/_/charger_status/site%2F7%232"
    assert message.topic("op/v1", "", status) == "op/v1/_/charger_status/site%2F7%232"
    assert (
        message.topic("a", "north+south", status) == "a/north%2Bsouth/charger_status/site%2F7%232"
    )


def test_registry_keys(every_kind: list[Any]) -> None:
    keys = {registry_key(r) for r in every_kind}
    kinds = {k for k, _ in keys}
    assert kinds == {VEHICLE, TERMINAL, CHARGER, STATION}
    jt = next(r for r in every_kind if type(r) is rec.Position and r.protocol == "jt808")
    assert registry_key(jt) == (TERMINAL, jt.device_id)
    gbt = next(r for r in every_kind if type(r) is rec.Alarm)
    assert registry_key(gbt) == (VEHICLE, gbt.device_id)


# --------------------------------------------------------------------------- [republish]


def test_config_defaults_and_keys() -> None:
    cfg = parse({}).republish
    assert not cfg.enabled and cfg.qos == 1 and cfg.topic_prefix == "silkgate/v1"
    assert cfg.kinds == list(ALL_KINDS) and cfg.start == "earliest" and not cfg.retain
    assert cfg.cursor_name == "republish:local"
    cfg = parse(
        {
            "republish": {
                "enabled": True,
                "name": "site-a",
                "qos": 2,
                "kinds": ["position", "station_status"],
                "topic_prefix": "acme/telemetry/v1",
                "username": "gw",
                "password_env": "X",
                "tls": {"ca_file": "/ca.pem"},
            }
        }
    ).republish
    assert cfg.qos == 2 and cfg.kinds == ["position", "station_status"]
    assert cfg.tls is not None and cfg.tls.ca_file == "/ca.pem" and cfg.tls.verify
    assert cfg.cursor_name == "republish:site-a"


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"qos": 3}, "republish.qos"),
        ({"kinds": ["raw_frame"]}, "republish.kinds[0]"),
        ({"kinds": []}, "kinds: name at least one kind"),
        ({"kinds": ["alarm", "alarm"]}, "listed twice"),
        ({"topic_prefix": "a/#"}, "wildcard"),
        ({"topic_prefix": "a/"}, "empty topic level"),
        ({"topic_prefix": "$SYS/x"}, "broker's"),
        ({"password_env": "X"}, "password_env without username"),
        ({"tls": {"server_name": "x"}}, "tls.server_name: not supported"),
        ({"tls": {"ca": "/ca.pem"}}, "republish.tls"),
        ({"max_in_flight": 70000}, "republish.max_in_flight"),
        ({"name": "a b"}, "republish.name"),
        ({"protocol": "4"}, "republish.protocol"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_config_errors_name_the_key(section: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        parse({"republish": section})
    assert isinstance(RepublishConfig(), RepublishConfig)


# --------------------------------------------------------------------------- docs/republish.md

GUIDE = DOCS / "republish.md"


def test_every_documented_example_is_a_valid_message() -> None:
    text = GUIDE.read_text()
    examples = re.findall(r"### `(\w+)`\n\nTopic `([^`]+)`:\n\n```json\n(.*?)```", text, re.S)
    assert [kind for kind, _, _ in examples] == list(ALL_KINDS)
    check = validator()
    decoder = msgspec.json.Decoder(message.Message)
    types = {t: r for r, t in message.MESSAGE_TYPES.items()}
    for kind, topic, body in examples:
        assert not list(check.iter_errors(json.loads(body))), kind
        typed = decoder.decode(body.encode())
        record_type = types[type(typed)]
        assert message.KINDS[record_type] == kind
        device = getattr(typed, message.DEVICE_FIELDS[record_type])
        assert topic == f"silkgate/v1/acme/{kind}/{device}"


def test_documented_kinds_devices_and_keys() -> None:
    rows = re.findall(
        r"^\| `(\w+)` \| [^|]+ \| `(\w+)`[^|]* \| ([^|]+) \|$", GUIDE.read_text(), re.M
    )
    assert [kind for kind, _, _ in rows] == list(ALL_KINDS)
    by_kind = {k: t for t, k in message.KINDS.items()}
    for kind, device, keys in rows:
        record_type = by_kind[kind]
        assert device == message.DEVICE_FIELDS[record_type]
        assert re.findall(r"`(\w+)`", keys) == list(spec_for(record_type).key), kind


def test_every_config_key_is_documented() -> None:
    table = GUIDE.read_text().split("## Configuration", 1)[1]
    for name in RepublishConfig.__struct_fields__:
        assert f"`{name}`" in table, name
