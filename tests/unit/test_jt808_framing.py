"""JT/T 808 framing: escaping, checksum, header errors, encode checks, FrameReader edge cases."""

from __future__ import annotations

from types import ModuleType

import pytest
from msgspec.structs import replace

from gateway.codecs.common import BadFrame, DeviceTime
from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.jt808.constants import DEFAULT_MAX_FRAME
from gateway.codecs.jt808.messages import (
    Frame,
    Heartbeat,
    Location,
    PlatformGeneralResponse,
    RawBody,
    TransparentUplink,
)

HEARTBEAT_2013 = Frame(
    version=2013, msg_id=0x0002, phone="013800138000", serial=7, body=Heartbeat()
)


def wrap(jt808: ModuleType, payload: bytes, fix_checksum: bool = True) -> bytes:
    """A frame around an unescaped header+body, with a correct checksum by default."""
    cs: int = jt808.checksum(payload) ^ (0 if fix_checksum else 0xFF)
    escaped: bytes = jt808.escape(payload + bytes((cs,)))
    return b"\x7e" + escaped + b"\x7e"


def events(jt808: ModuleType, stream: bytes, **kw: int) -> list[bytes | BadFrame]:
    reader = jt808.FrameReader(**kw)
    reader.feed(stream)
    return list(reader)


# ------------------------------------------------------------------------------ escaping


def test_escape_examples(jt808: ModuleType) -> None:
    assert jt808.escape(b"\x30\x7e\x08\x7d\x55") == b"\x30\x7d\x02\x08\x7d\x01\x55"
    assert jt808.unescape(b"\x30\x7d\x02\x08\x7d\x01\x55") == b"\x30\x7e\x08\x7d\x55"
    assert jt808.escape(b"\x7d\x02") == b"\x7d\x01\x02"
    assert jt808.unescape(b"\x7d\x01\x02") == b"\x7d\x02"


@pytest.mark.parametrize("data", [b"\x7d", b"\x01\x7d\x03", b"\x7d\x7d\x01", b"\x7d\x01\x7d"])
def test_bad_escape(jt808: ModuleType, data: bytes) -> None:
    with pytest.raises(ProtocolError) as exc:
        jt808.unescape(data)
    assert exc.value.reason is Reason.BAD_ESCAPE


def test_bad_escape_offset(jt808: ModuleType) -> None:
    with pytest.raises(ProtocolError) as exc:
        jt808.unescape(b"\x00\x7d\x01\x7d\x05")
    assert exc.value.offset == 3


def test_checksum(jt808: ModuleType) -> None:
    assert jt808.checksum(b"") == 0
    assert jt808.checksum(b"\x01\x02\x04\xff") == 0xF8


# --------------------------------------------------------------------------- decode errors


def test_encoded_frame_escapes_checksum_and_body(jt808: ModuleType) -> None:
    msg = Frame(
        version=2013,
        msg_id=0x0900,
        phone="000000000000",
        serial=0x7E7D,
        body=TransparentUplink(kind=0x7E, content=b"\x7d\x7e\x7e"),
    )
    raw = jt808.encode_frame(msg)
    assert raw.count(b"\x7e") == 2
    assert jt808.decode_frame(raw) == msg


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", Reason.TRUNCATED),
        (b"\x7e\x7e", Reason.TRUNCATED),
        (b"\x7e\x00\x02\x00\x7e", Reason.BAD_CHECKSUM),
        (b"\x00\x02\x00\x00\x02\x7e", Reason.BAD_START),
        (b"\x7e\x00\x7d\x03\x7e", Reason.BAD_ESCAPE),
        (b"\x7e\x00\x7e\x00\x7e", Reason.BAD_START),
    ],
)
def test_decode_frame_errors(jt808: ModuleType, frame: bytes, reason: Reason) -> None:
    with pytest.raises(ProtocolError) as exc:
        jt808.decode_frame(frame)
    assert exc.value.reason is reason


def test_truncated_header(jt808: ModuleType) -> None:
    for size in range(0, 12):
        payload = bytes.fromhex("000200000138001380000007")[:size]
        with pytest.raises(ProtocolError) as exc:
            jt808.decode_frame(wrap(jt808, payload))
        assert exc.value.reason is Reason.TRUNCATED, size
    # 2019 flag set, header needs 17 bytes
    with pytest.raises(ProtocolError) as exc:
        jt808.decode_frame(wrap(jt808, bytes.fromhex("000240000101380013800000000007")))
    assert exc.value.reason is Reason.TRUNCATED


def test_body_length_mismatch(jt808: ModuleType) -> None:
    good = jt808.encode_frame(HEARTBEAT_2013)
    payload = jt808.unescape(good[1:-2])
    for attrs in (b"\x00\x01", b"\x03\xff"):
        with pytest.raises(ProtocolError) as exc:
            jt808.decode_frame(wrap(jt808, payload[:2] + attrs + payload[4:]))
        assert exc.value.reason is Reason.BAD_LENGTH
    with pytest.raises(ProtocolError) as exc:
        jt808.decode_frame(wrap(jt808, payload + b"\x00"))
    assert exc.value.reason is Reason.BAD_LENGTH


def test_bad_bcd_phone(jt808: ModuleType) -> None:
    payload = bytes.fromhex("0002000001380013800A0007")
    with pytest.raises(ProtocolError) as exc:
        jt808.decode_frame(wrap(jt808, payload))
    assert exc.value.reason is Reason.BAD_VALUE
    assert exc.value.offset == 5


def test_bad_checksum_offset_and_raw(jt808: ModuleType) -> None:
    raw = wrap(jt808, bytes.fromhex("000200000138001380000007"), fix_checksum=False)
    with pytest.raises(ProtocolError) as exc:
        jt808.decode_frame(raw)
    assert exc.value.reason is Reason.BAD_CHECKSUM
    assert exc.value.raw == raw


def test_body_error_offset_counts_from_frame(jt808: ModuleType) -> None:
    body = b"\x00" * 27  # one byte short of the 28-byte basic block
    raw = wrap(jt808, bytes.fromhex("0200001b013800138000000a") + body)
    with pytest.raises(ProtocolError) as exc:
        jt808.decode_frame(raw)
    assert exc.value.reason is Reason.TRUNCATED
    assert exc.value.offset == 1 + 12 + 22


def test_encrypted_and_unknown_bodies_raw(jt808: ModuleType) -> None:
    rsa = Frame(version=2013, msg_id=0x0200, phone="0" * 12, serial=1, body=RawBody(data=b"x"))
    rsa = replace(rsa, encryption=1)
    assert jt808.decode_frame(jt808.encode_frame(rsa)) == rsa
    unknown = Frame(version=2019, msg_id=0x0F0F, phone="1" * 20, serial=2, body=RawBody(data=b"ab"))
    decoded = jt808.decode_frame(jt808.encode_frame(unknown))
    assert decoded.body == RawBody(data=b"ab")
    assert decoded.protocol_version == 1


def test_subpackaged_packet_body_is_raw(jt808: ModuleType) -> None:
    body = bytes(28)
    part = Frame(
        version=2013,
        msg_id=0x0200,
        phone="0" * 12,
        serial=1,
        body=RawBody(data=body),
        packet_total=2,
        packet_index=1,
    )
    assert jt808.decode_frame(jt808.encode_frame(part)).body == RawBody(data=body)
    single = replace(part, packet_total=1)
    assert isinstance(jt808.decode_frame(jt808.encode_frame(single)).body, Location)


# --------------------------------------------------------------------------- encode checks


def test_encode_pads_short_phone(jt808: ModuleType) -> None:
    short = replace(HEARTBEAT_2013, phone="12345")
    assert jt808.decode_frame(jt808.encode_frame(short)).phone == "000000012345"


@pytest.mark.parametrize("phone", ["1" * 13, "12a", "１２"])
def test_encode_rejects_bad_phone(jt808: ModuleType, phone: str) -> None:
    with pytest.raises(ProtocolError):
        jt808.encode_frame(replace(HEARTBEAT_2013, phone=phone))


def test_encode_rejects_large_body_and_wrong_type(jt808: ModuleType) -> None:
    big = replace(HEARTBEAT_2013, msg_id=0x0900, body=RawBody(data=bytes(1024)))
    with pytest.raises(ProtocolError) as exc:
        jt808.encode_frame(big)
    assert exc.value.reason is Reason.BAD_LENGTH
    wrong = replace(
        HEARTBEAT_2013, body=PlatformGeneralResponse(reply_serial=1, reply_msg_id=2, result=0)
    )
    with pytest.raises(ProtocolError):
        jt808.encode_frame(wrong)
    overflow = replace(HEARTBEAT_2013, serial=70000)
    with pytest.raises(ProtocolError):
        jt808.encode_frame(overflow)
    nan = Location(
        alarm_flags=0,
        status_flags=0,
        latitude=float("nan"),
        longitude=0.0,
        altitude_m=0,
        speed_kmh=-1.0,
        direction=0,
        time=DeviceTime(raw=bytes(6), utc=None),
    )
    with pytest.raises(ValueError):  # reference: ProtocolError; accelerator: plain ValueError
        jt808.encode_frame(replace(HEARTBEAT_2013, msg_id=0x0200, body=nan))


# ----------------------------------------------------------------------------- the reader


def test_reader_empty_frames_and_shared_flags(jt808: ModuleType) -> None:
    raw = jt808.encode_frame(HEARTBEAT_2013)
    assert events(jt808, b"\x7e\x7e\x7e" + raw + b"\x7e" + raw) == [raw, raw]
    assert events(jt808, raw + raw[1:] + raw[1:]) == [raw, raw, raw]


def test_reader_bad_frames_then_recovery(jt808: ModuleType) -> None:
    raw = jt808.encode_frame(HEARTBEAT_2013)
    bad_cs = raw[:-2] + bytes((raw[-2] ^ 1,)) + b"\x7e"
    bad_escape = raw[:5] + b"\x7d\x03" + raw[7:]
    short = b"\x7e\x00\x02\x7e"
    out = events(jt808, bad_cs + raw + bad_escape + raw + short + raw)
    assert [e if isinstance(e, bytes) else e.reason for e in out] == [
        "bad_checksum",
        raw,
        "bad_escape",
        raw,
        "truncated",
        raw,
    ]
    assert out[0] == BadFrame(bad_cs, "bad_checksum", len(bad_cs) - 2, out[0].message)  # type: ignore[union-attr]


def test_reader_garbage_before_first_flag(jt808: ModuleType) -> None:
    raw = jt808.encode_frame(HEARTBEAT_2013)
    out = events(jt808, b"abc" + raw)
    assert out[0] == BadFrame(b"abc", "garbage", 0, out[0].message)  # type: ignore[union-attr]
    assert out[1:] == [raw]


def test_reader_too_large_resyncs(jt808: ModuleType) -> None:
    raw = jt808.encode_frame(HEARTBEAT_2013)
    huge = b"\x7e" + b"\x01" * (DEFAULT_MAX_FRAME + 10) + b"\x7e"
    reader = jt808.FrameReader()
    got: list[bytes | BadFrame] = []
    for i in range(0, len(huge + raw), 100):
        reader.feed((huge + raw)[i : i + 100])
        got.extend(reader)
        assert reader.buffered <= DEFAULT_MAX_FRAME
    bad = [e for e in got if isinstance(e, BadFrame)]
    assert bad and all(b.reason == "too_large" for b in bad)
    assert sum(len(b.raw) for b in bad) == len(huge) - 1
    assert [e for e in got if isinstance(e, bytes)] == [raw]


def test_reader_max_frame_size_boundary(jt808: ModuleType) -> None:
    body = TransparentUplink(kind=1, content=b"0123456789")
    raw = jt808.encode_frame(replace(HEARTBEAT_2013, msg_id=0x0900, body=body))
    assert events(jt808, raw, max_frame_size=len(raw)) == [raw]
    out = events(jt808, raw, max_frame_size=len(raw) - 1)
    assert isinstance(out[0], BadFrame) and out[0].reason == "too_large"


def test_reader_largest_legal_frame(jt808: ModuleType) -> None:
    msg = Frame(
        version=2019,
        msg_id=0x0900,
        phone="7" * 20,
        serial=0x7E7E,
        body=TransparentUplink(kind=0x7E, content=b"\x7e" * 1022),
        protocol_version=0x7D,
        packet_total=0x7E7E,
        packet_index=0x7D7D,
    )
    raw = jt808.encode_frame(msg)
    assert len(raw) <= DEFAULT_MAX_FRAME
    assert events(jt808, raw) == [raw]
    assert jt808.decode_frame(raw).body == RawBody(data=b"\x7e" * 1023)


def test_reader_garbage_without_flag_is_bounded(jt808: ModuleType) -> None:
    reader = jt808.FrameReader(max_frame_size=100)
    reader.feed(b"\x00" * 250)
    out = list(reader)
    assert [(e.reason, len(e.raw)) for e in out if isinstance(e, BadFrame)] == [("garbage", 250)]
    assert reader.buffered == 0
