"""GB/T 32960 bad input: ProtocolError reasons from decode_frame, BadFrame from the reader."""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codecs.common import BadFrame
from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.gbt32960 import messages as m

LOGOUT = "232304FE4C5A595441474257394A313030343136340100081206161015150046EA"  # GB-07
REALTIME = (  # GB-15: one alarm block
    "232302FE484155563442474E36533530303232313901002C190A1B14020207030000000300000007000100"
    "030008000200080003000C0004000D000100060920000A000BC9"
)
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def codec(gbt32960: ModuleType) -> ModuleType:
    """The implementation under test; skipped while the accelerator is still a placeholder."""
    if not hasattr(gbt32960, "decode_frame"):
        pytest.skip(f"{gbt32960.__name__} is not implemented yet")
    return gbt32960


def reframe(
    codec: ModuleType,
    frame: bytes,
    body: bytes,
    *,
    command: int | None = None,
    encryption: int | None = None,
) -> bytes:
    """``frame``'s header with a new body, command or encryption; length and BCC fixed up."""
    head = bytearray(frame[:24])
    if command is not None:
        head[2] = command
    if encryption is not None:
        head[21] = encryption
    head[22:24] = len(body).to_bytes(2, "big")
    inner = bytes(head[2:]) + body
    return bytes(head[:2]) + inner + bytes((codec.bcc(inner),))


def reason_of(codec: ModuleType, frame: bytes) -> Reason:
    with pytest.raises(ProtocolError) as info:
        codec.decode_frame(frame)
    assert info.value.raw == frame
    reason: Reason = info.value.reason
    return reason


# --------------------------------------------------------------------------- decode_frame


def test_bcc(codec: ModuleType) -> None:
    frame = bytes.fromhex(LOGOUT)
    assert codec.bcc(frame[2:-1]) == frame[-1]
    assert codec.bcc(b"") == 0
    assert codec.bcc(b"\x01\x02\x04\x08\xff") == 0xF0


def test_bad_checksum(codec: ModuleType) -> None:
    frame = bytearray.fromhex(LOGOUT)
    frame[-1] ^= 0x55
    with pytest.raises(ProtocolError) as info:
        codec.decode_frame(bytes(frame))
    assert info.value.reason is Reason.BAD_CHECKSUM
    assert info.value.offset == len(frame) - 1


@pytest.mark.parametrize("size", [0, 1, 2, 10, 24, 32])
def test_truncated_frame(codec: ModuleType, size: int) -> None:
    assert reason_of(codec, bytes.fromhex(LOGOUT)[:size]) is Reason.TRUNCATED


def test_bad_start(codec: ModuleType) -> None:
    frame = bytes.fromhex(LOGOUT)
    assert reason_of(codec, b"#$" + frame[2:]) is Reason.BAD_START
    assert reason_of(codec, b"**" + frame[2:]) is Reason.BAD_START


def test_length_field_out_of_range(codec: ModuleType) -> None:
    frame = bytearray.fromhex(LOGOUT)
    frame[22:24] = b"\xff\xff"
    assert reason_of(codec, bytes(frame)) is Reason.BAD_LENGTH


def test_frame_longer_than_header(codec: ModuleType) -> None:
    assert reason_of(codec, bytes.fromhex(LOGOUT) + b"\x00") is Reason.BAD_LENGTH


def test_trailing_bytes_in_fixed_body(codec: ModuleType) -> None:
    frame = bytes.fromhex(LOGOUT)
    assert reason_of(codec, reframe(codec, frame, frame[24:-1] + b"\x00")) is Reason.TRAILING_BYTES


def test_truncated_fixed_body(codec: ModuleType) -> None:
    frame = bytes.fromhex(LOGOUT)
    assert reason_of(codec, reframe(codec, frame, frame[24:-2])) is Reason.TRUNCATED


def test_count_past_the_end(codec: ModuleType) -> None:
    frame = bytes.fromhex(REALTIME)
    motors = frame[24:30] + bytes((0x02, 5)) + bytes(12)  # 5 motors announced, 1 sent
    assert reason_of(codec, reframe(codec, frame, motors)) is Reason.TRUNCATED
    custom = frame[24:30] + b"\x90\x00\x10abc"  # custom block length 16, 3 bytes sent
    assert reason_of(codec, reframe(codec, frame, custom)) is Reason.TRUNCATED


def test_heartbeat_with_body(codec: ModuleType) -> None:
    frame = bytes.fromhex("232307FE4838323230363530303030303030303030010000BB")
    assert reason_of(codec, reframe(codec, frame, b"\x01")) is Reason.TRAILING_BYTES


def test_encrypted_and_unknown_bodies_are_raw(codec: ModuleType) -> None:
    frame = bytes.fromhex(LOGOUT)
    for enc in (2, 3, 4, 5):
        body = codec.decode_frame(reframe(codec, frame, b"\x01\x02\x03", encryption=enc)).body
        assert body == m.RawBody(data=b"\x01\x02\x03")
    unknown = codec.decode_frame(reframe(codec, frame, b"\xaa", command=0x7F))
    assert unknown.body == m.RawBody(data=b"\xaa") and unknown.command == 0x7F
    reserved_2016 = codec.decode_frame(reframe(codec, frame, b"", command=0x09))
    assert reserved_2016.body == m.RawBody(data=b"")


def test_unknown_info_type_keeps_the_rest(codec: ModuleType) -> None:
    frame = bytes.fromhex(REALTIME)
    body = frame[24:-1] + b"\x2a\x01\x02\x03"
    decoded = codec.decode_frame(reframe(codec, frame, body)).body
    assert isinstance(decoded, m.RealtimeData)
    assert decoded.blocks[-1] == m.Unparsed(info_type=0x2A, data=b"\x01\x02\x03")
    assert codec.encode_frame(codec.decode_frame(reframe(codec, frame, body))) == reframe(
        codec, frame, body
    )


def test_unknown_parameter_stops_parsing(codec: ModuleType) -> None:
    frame = bytes.fromhex(LOGOUT)
    body = frame[24:30] + b"\x03" + b"\x09\x1e" + b"\x42\x01\x02" + b"\x09\x05"
    decoded = codec.decode_frame(reframe(codec, frame, body, command=0x81)).body
    assert decoded == m.ParamValues(
        time=decoded.time,
        params=[m.Param(id=0x09, value=30)],
        unparsed_count=2,
        unparsed=b"\x42\x01\x02\x09\x05",
    )


def test_parameter_widths_differ_by_version(codec: ModuleType) -> None:
    frame16 = bytes.fromhex(LOGOUT)
    frame25 = b"$$" + frame16[2:]
    body = frame16[24:30] + b"\x01\x02\x00\x0a"
    got16 = codec.decode_frame(reframe(codec, frame16, body, command=0x81)).body
    assert got16.params == [m.Param(id=0x02, value=10)]
    assert reason_of(codec, reframe(codec, frame25, body, command=0x81)) is Reason.TRAILING_BYTES
    got25 = codec.decode_frame(reframe(codec, frame25, body[:-1], command=0x81)).body
    assert got25.params == [m.Param(id=0x02, value=0)]


def test_response_echoing_the_login_body(codec: ModuleType) -> None:
    login = bytes.fromhex(
        "232301FE4C46574144524A463031313030323334360100281206050B2C1D00013833363035333337393831363035343930313837020531303030313130303032C2"
    )
    echo = bytearray(login)
    echo[3] = 0x01
    echo[-1] = codec.bcc(bytes(echo[2:-1]))
    decoded = codec.decode_frame(bytes(echo))
    assert isinstance(decoded.body, m.VehicleLogin) and decoded.response == 0x01


# --------------------------------------------------------------------------- reader


def _drain(reader: Any, data: bytes) -> list[bytes | BadFrame]:
    reader.feed(data)
    return list(reader)


def test_reader_bad_checksum_then_carries_on(codec: ModuleType) -> None:
    good = bytes.fromhex(LOGOUT)
    bad = bytearray(good)
    bad[-1] ^= 0x01
    events = _drain(codec.FrameReader(), bytes(bad) + good)
    assert isinstance(events[0], BadFrame) and events[0].reason == "bad_checksum"
    assert events[0].raw == bytes(bad)
    assert events[1:] == [good]


def test_reader_false_start_inside_bad_frame(codec: ModuleType) -> None:
    """A stray '##' whose length would swallow a real frame: resync one byte later finds it."""
    good = bytes.fromhex(LOGOUT)
    fake = b"##" + bytes(20) + (len(good)).to_bytes(2, "big")  # a header claiming the next bytes
    events = _drain(codec.FrameReader(), fake + good + b"\x00")
    assert good in events
    assert isinstance(events[0], BadFrame) and events[0].reason == "bad_checksum"


def test_reader_over_size_and_bad_length(codec: ModuleType) -> None:
    good = bytes.fromhex(LOGOUT)
    reader = codec.FrameReader(max_frame_size=30)
    events = _drain(
        reader, good + bytes.fromhex("232307FE4838323230363530303030303030303030010000BB")
    )
    assert isinstance(events[0], BadFrame) and events[0].reason == "too_large"
    assert events[-1] == bytes.fromhex("232307FE4838323230363530303030303030303030010000BB")
    huge = bytearray(good)
    huge[22:24] = b"\xff\xff"
    events = _drain(codec.FrameReader(), bytes(huge) + good)
    assert isinstance(events[0], BadFrame) and events[0].reason == "bad_length"
    assert events[-1] == good
    assert sum(len(e.raw) for e in events if isinstance(e, BadFrame)) == len(huge)


def test_reader_truncated_frame_is_buffered(codec: ModuleType) -> None:
    good = bytes.fromhex(LOGOUT)
    reader = codec.FrameReader()
    assert _drain(reader, good[:-3]) == []
    assert reader.buffered == len(good) - 3
    assert _drain(reader, good[-3:]) == [good]


def test_reader_long_garbage_is_linear(codec: ModuleType) -> None:
    good = bytes.fromhex(LOGOUT)
    junk = b"#x" * 200_000  # many near-misses
    reader = codec.FrameReader()
    events: list[bytes | BadFrame] = []
    for i in range(0, len(junk), 4096):
        events += _drain(reader, junk[i : i + 4096])
    events += _drain(reader, good)
    assert events[-1] == good
    assert sum(len(e.raw) for e in events if isinstance(e, BadFrame)) == len(junk)


# --------------------------------------------------------------------------- fuzz


def _vectors_bytes() -> list[bytes]:
    return [bytes.fromhex(LOGOUT), bytes.fromhex(REALTIME)]


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_raise_only_protocol_error(codec: ModuleType, data: bytes) -> None:
    for candidate in (data, b"##" + data, b"$$" + data):
        with contextlib.suppress(ProtocolError):
            codec.decode_frame(candidate)
        reader = codec.FrameReader()
        reader.feed(candidate)
        list(reader)


@FUZZ
@given(
    which=st.integers(0, 1),
    version=st.sampled_from([b"##", b"$$"]),
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 200),
)
def test_mutated_bodies_raise_only_protocol_error(
    codec: ModuleType, which: int, version: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    frame = bytearray(_vectors_bytes()[which])
    body = bytearray(frame[24:-1])
    for pos, value in edits:
        if body:
            body[pos % len(body)] = value
    body = body[: max(cut, 6)]
    candidate = reframe(codec, version + bytes(frame[2:]), bytes(body))
    try:
        decoded = codec.decode_frame(candidate)
    except ProtocolError:
        return
    assert isinstance(decoded, m.Frame)
