"""JT/T 808 sample frames (../shared/vectors/jt808.json) through both implementations."""

from __future__ import annotations

from datetime import datetime
from types import ModuleType
from typing import Any

import pytest

from gateway.codecs.common import BadFrame
from gateway.codecs.errors import ProtocolError
from gateway.codecs.jt808.messages import (
    Authenticate,
    BatchLocation,
    Frame,
    Heartbeat,
    Location,
    PlatformGeneralResponse,
    Register,
    RegisterResponse,
)

Vector = dict[str, Any]
GARBAGE = b"\x00\x01junk\xff\x7d"


def good(vectors: list[Vector]) -> list[Vector]:
    return [v for v in vectors if v["checksum_ok"] == "yes"]


def raw(v: Vector) -> bytes:
    return bytes.fromhex(v["hex"])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_location(loc: Location, exp: dict[str, Any]) -> None:
    assert loc.latitude == pytest.approx(exp["lat"], abs=1e-9)
    assert loc.longitude == pytest.approx(exp["lon"], abs=1e-9)
    assert loc.speed_kmh == pytest.approx(exp["speed_kmh"])
    assert loc.time.utc == utc(exp["time_utc"])
    if "altitude_m" in exp:
        assert loc.altitude_m == exp["altitude_m"]
    if "direction" in exp:
        assert loc.direction == exp["direction"]
    if "alarm_flags" in exp:
        assert loc.alarm_flags == exp["alarm_flags"]
        assert loc.status_flags == exp["status_flags"]
    if "odometer_km" in exp:
        assert loc.odometer_km == pytest.approx(exp["odometer_km"])
        assert loc.fuel_l == pytest.approx(exp["fuel_l"])


def check_body(frame: Frame, exp: dict[str, Any]) -> None:
    body = frame.body
    match body:
        case Location():
            check_location(body, exp)
        case BatchLocation():
            assert len(body.items) == exp["item_count"]
            assert body.batch_type == exp["batch_type"]
            check_location(body.items[1], exp["second_item"])
        case PlatformGeneralResponse() if "reply_serial" in exp:
            assert body.reply_serial == exp["reply_serial"]
            assert body.reply_msg_id == int(exp["reply_msg_id"], 16)
            assert body.result == exp["result"]
        case RegisterResponse():
            assert (body.result, body.auth_code) == (exp["result"], exp["auth_code"])
        case Register():
            fields = ("province", "city", "maker", "model", "terminal_id", "plate_color", "plate")
            assert {k: getattr(body, k) for k in fields} == {k: exp[k] for k in fields}
        case Authenticate():
            assert body.auth_code == exp["auth_code"]
        case Heartbeat() | PlatformGeneralResponse():
            pass
        case _:
            raise AssertionError(f"unexpected body {body!r}")


def test_vectors_present(jt_vectors: list[Vector]) -> None:
    assert len(good(jt_vectors)) >= 12
    assert any(v["id"] == "JT-18" for v in jt_vectors)


def test_expected_values(jt808: ModuleType, jt_vectors: list[Vector]) -> None:
    for v in good(jt_vectors):
        exp = v["expect"]
        frame = jt808.decode_frame(raw(v))
        assert frame.msg_id == int(exp["msg_id"], 16), v["id"]
        assert frame.version == (2019 if "2019" in exp["protocol"] else 2013), v["id"]
        assert frame.protocol_version == exp.get("protocol_version", frame.protocol_version)
        if "phone" in exp:
            assert frame.phone == exp["phone"]
        if "serial" in exp:
            assert frame.serial == exp["serial"]
        check_body(frame, exp)


def test_header_details(jt808: ModuleType, jt_vectors: list[Vector]) -> None:
    by_id = {v["id"]: v for v in jt_vectors}
    jt07 = raw(by_id["JT-07"])
    assert jt07[3:5] == bytes.fromhex(by_id["JT-07"]["expect"]["body_attributes"][2:])
    frame = jt808.decode_frame(jt07)
    assert (frame.version, frame.protocol_version) == (2019, 1)
    assert frame.phone == "00000000000123456789"  # 20 digits, leading zeros kept
    jt03 = raw(by_id["JT-03"])  # checksum 0x7E travels as 7D 02
    assert jt03.endswith(b"\x7d\x02\x7e")
    assert jt808.checksum(jt808.unescape(jt03[1:-1])[:-1]) == 0x7E
    assert jt808.decode_frame(jt03).body == Heartbeat()
    jt01 = raw(by_id["JT-01"])
    assert jt808.checksum(jt808.unescape(jt01[1:-2])) == int(
        by_id["JT-01"]["expect"]["checksum"], 16
    )


def test_round_trip(jt808: ModuleType, jt_vectors: list[Vector]) -> None:
    for v in good(jt_vectors):
        frame = jt808.decode_frame(raw(v))
        assert jt808.encode_frame(frame) == raw(v), v["id"]
        assert jt808.decode_frame(jt808.encode_frame(frame)) == frame


def test_negative_vector_rejected(jt808: ModuleType, jt_vectors: list[Vector]) -> None:
    bad = [v for v in jt_vectors if v["checksum_ok"] != "yes"]
    assert bad
    for v in bad:
        with pytest.raises(ProtocolError):
            jt808.decode_frame(raw(v))
        reader = jt808.FrameReader()
        reader.feed(raw(v))
        events = list(reader)
        assert len(events) == 1 and isinstance(events[0], BadFrame)
        assert events[0].raw == raw(v)


def test_reader_whole(jt808: ModuleType, jt_vectors: list[Vector]) -> None:
    for v in good(jt_vectors):
        reader = jt808.FrameReader()
        reader.feed(raw(v))
        assert list(reader) == [raw(v)], v["id"]
        assert reader.buffered == 1  # the closing flag may open the next frame


def test_reader_byte_by_byte(jt808: ModuleType, jt_vectors: list[Vector]) -> None:
    stream = b"".join(raw(v) for v in jt_vectors)
    reader = jt808.FrameReader()
    events: list[bytes | BadFrame] = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        events.extend(reader)
    frames = [e for e in events if isinstance(e, bytes)]
    bad = [e for e in events if isinstance(e, BadFrame)]
    assert frames == [raw(v) for v in good(jt_vectors)]
    assert [b.reason for b in bad] == ["bad_checksum"]


def test_reader_garbage_between_frames(jt808: ModuleType, jt_vectors: list[Vector]) -> None:
    frames = [raw(v) for v in good(jt_vectors)]
    stream = GARBAGE + GARBAGE.join(frames) + GARBAGE
    for chunk in (len(stream), 7, 1):
        reader = jt808.FrameReader()
        events: list[bytes | BadFrame] = []
        for i in range(0, len(stream), chunk):
            reader.feed(stream[i : i + chunk])
            events.extend(reader)
        assert [e for e in events if isinstance(e, bytes)] == frames
        bad = [e for e in events if isinstance(e, BadFrame)]
        assert all(b.reason == "garbage" for b in bad)
        # leading garbage and every gap between frames come out whole
        assert [b.raw for b in bad] == [GARBAGE] * len(frames)
        assert reader.buffered == len(GARBAGE) + 1  # trailing garbage after the last flag


def test_reader_back_to_back_shared_flags(jt808: ModuleType, jt_vectors: list[Vector]) -> None:
    frames = [raw(v) for v in good(jt_vectors)]
    shared = frames[0] + b"".join(f[1:] for f in frames[1:])
    for stream in (b"".join(frames), shared):
        reader = jt808.FrameReader()
        reader.feed(stream)
        assert list(reader) == frames
