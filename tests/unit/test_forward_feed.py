"""The JSON feed's wire format: records in, JSON out that its published schema accepts, and the
schema file in docs/ equal to the one the code generates."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import msgspec

from gateway.codecs import gbt32960, jt808
from gateway.forward import feed
from gateway.normalize import normalize
from gateway.records import SessionEvent, VehicleRealtime
from gateway.simulator import Fleet

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "forward-feed.schema.json"
RECEIVED = datetime(2026, 1, 1, 8, tzinfo=UTC)


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_schema_file_is_the_generated_one() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == feed.schema()
    assert SCHEMA_FILE.read_text() == feed.schema_text()


def test_every_record_kind_validates(gbt_vectors: list[dict[str, Any]]) -> None:
    fleet = Fleet(4)  # GB/T 2016 and 2025, JT/T 808 2013 and 2019
    raw = fleet.logins() + fleet.reports() + fleet.logouts()
    raw += [bytes.fromhex(v["hex"]) for v in gbt_vectors if v["id"] in ("GB-02", "GB-13", "GB-15")]
    records: list[Any] = []
    for frame in raw:
        decoded = jt808.decode_frame(frame) if frame[0] == 0x7E else gbt32960.decode_frame(frame)
        fid = uuid.uuid4()
        records += [feed.to_feed(r, fid, i, RECEIVED) for i, r in enumerate(normalize(decoded))]
    kinds = {type(r).__struct_config__.tag for r in records}
    assert kinds == {"vehicle_realtime", "position", "alarm", "session_event"}
    body = json.loads(msgspec.json.encode(feed.make_batch("regulator", records, RECEIVED)))
    errors = list(validator().iter_errors(body))
    assert not errors, errors[:3]
    assert body["schema_version"] == 1 and body["feed"] == "regulator"
    rt = next(r for r in body["records"] if r["kind"] == "vehicle_realtime")
    assert len(rt["cell_voltages"]) == 192 and all(3.0 < v < 4.2 for v in rt["cell_voltages"])
    assert len(rt["probe_temps"]) == 48 and all(10 <= t <= 60 for t in rt["probe_temps"])
    jt_login = next(
        r for r in body["records"] if r["kind"] == "session_event" and r["protocol"] == "jt808"
    )
    assert jt_login["time"] == jt_login["received_at"] == "2026-01-01T08:00:00Z"
    broken = {**body, "records": [{**rt, "soc_pct": "full"}]}
    assert list(validator().iter_errors(broken))


def test_packed_values_unpacked_and_sentinels_null() -> None:
    rt = VehicleRealtime(
        vin="V",
        time=RECEIVED,
        version=2016,
        cell_voltages=bytes.fromhex("0ce4fffeffff"),
        cell_count=3,
        probe_temps=bytes((65, 0xFE, 0xFF, 0)),
        probe_count=4,
    )
    out = feed.to_feed(rt, uuid.uuid4(), 0, RECEIVED)
    assert out.cell_voltages == [3.3, None, None]
    assert out.probe_temps == [25, None, None, -40]
    assert out.received_at == RECEIVED
    ev = SessionEvent(device_id="P", protocol="jt808", time=None, event="auth")
    assert feed.to_feed(ev, uuid.uuid4(), 0, RECEIVED).time == RECEIVED


def test_batch_id_is_stable_for_the_same_records() -> None:
    fid = uuid.uuid4()
    ev = SessionEvent(device_id="P", protocol="jt808", time=RECEIVED, event="auth")
    recs = [feed.to_feed(ev, fid, i, RECEIVED) for i in range(3)]
    assert feed.batch_id("a", recs) == feed.batch_id("a", list(recs))
    assert feed.batch_id("a", recs) != feed.batch_id("b", recs)
    assert feed.batch_id("a", recs) != feed.batch_id("a", recs[:2])
