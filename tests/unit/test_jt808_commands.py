"""JT/T 808 platform commands and the terminal's answers: 0x8103 / 0x8104 / 0x8106 / 0x0104 /
0x8105 / 0x8300 bodies (hand-built wire bytes, errors with offsets, round trips in 2013 and 2019,
accelerator == reference) and the terminal parameter table (``params``)."""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codecs import jt808 as package
from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.jt808 import _accel, reference
from gateway.codecs.jt808 import constants as c
from gateway.codecs.jt808 import params as p
from gateway.codecs.jt808.messages import (
    BODY_TYPES,
    Body,
    Frame,
    QueryAllParams,
    QueryParams,
    QueryParamsResponse,
    RawBody,
    SetParams,
    TerminalControl,
    TerminalParam,
    TextMessage,
)

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
VERSIONS = (2013, 2019)
#: Offset of the first body byte in a frame (flag + header) without subpackage items.
BODY_AT = {2013: 1 + c.HEADER_SIZE_2013, 2019: 1 + c.HEADER_SIZE_2019}
COMMAND_IDS = (0x8103, 0x8104, 0x8106, 0x0104, 0x8105, 0x8300)
NAMES = {
    0x8103: "set_params",
    0x8104: "query_all_params",
    0x8106: "query_params",
    0x0104: "query_params_response",
    0x8105: "terminal_control",
    0x8300: "text_message",
}


def frame_bytes(jt808: ModuleType, msg_id: int, body: bytes, version: int) -> bytes:
    """A frame around ``body``: phone all zeros, serial 5, 2019 protocol version 1."""
    attrs = len(body) | (c.ATTR_VERSION_2019 if version == 2019 else 0)
    header = msg_id.to_bytes(2, "big") + attrs.to_bytes(2, "big")
    header += b"\x01" + bytes(10) if version == 2019 else bytes(6)
    payload = header + b"\x00\x05" + body
    escaped: bytes = jt808.escape(payload + bytes((jt808.checksum(payload),)))
    return b"\x7e" + escaped + b"\x7e"


def decoded(jt808: ModuleType, msg_id: int, body: bytes, version: int) -> Body:
    """The body decode_frame gives; the frame must re-encode to the same bytes."""
    raw = frame_bytes(jt808, msg_id, body, version)
    frame: Frame = jt808.decode_frame(raw)
    assert frame.msg_id == msg_id and frame.version == version
    assert jt808.encode_frame(frame) == raw
    assert jt808.decode_body(msg_id, body, version) == frame.body
    assert jt808.encode_body(msg_id, frame.body, version) == body
    return frame.body


def error(fn: Any, *args: Any) -> tuple[Reason, int]:
    with pytest.raises(ProtocolError) as exc:
        fn(*args)
    return exc.value.reason, exc.value.offset


# --------------------------------------------------------------------- hand-built vectors

SET_PARAMS_HEX = (
    "03"  # parameter count 3
    "00000001" "04" "0000001E"  # 0x0001 heartbeat interval, DWORD: 30 s
    "00000013" "09" "3132372E302E302E31"  # 0x0013 main server address, STRING: "127.0.0.1"
    "00000084" "01" "02"  # 0x0084 plate colour, BYTE: 2 (yellow)
)  # fmt: skip
SET_PARAMS = SetParams(
    params=(
        TerminalParam(param_id=0x0001, data=bytes.fromhex("0000001E")),
        TerminalParam(param_id=0x0013, data=b"127.0.0.1"),
        TerminalParam(param_id=0x0084, data=b"\x02"),
    )
)

QUERY_PARAMS_HEX = (
    "02"  # parameter id count 2
    "00000001"  # 0x0001 heartbeat interval
    "00000083"  # 0x0083 plate
)  # fmt: skip

RESPONSE_HEX = (
    "0007"  # reply serial 7 (the 0x8104 / 0x8106 answered)
    "03"  # parameter count 3
    "00000055" "04" "00000064"  # 0x0055 max speed, DWORD: 100 km/h
    "00000083" "08" "D4C1413132333435"  # 0x0083 plate, STRING (GBK): "粤A12345"
    "0000F001" "03" "AABBCC"  # 0xF001 vendor id: 3 raw bytes
)  # fmt: skip

CONTROL_HEX = (
    "02"  # command word 2: connect to a specified server
    # parameters, ';'-separated GBK: control 0; auth code "AUTH"; APN "cmnet"; user and
    # password empty; address "10.0.0.1"; TCP port 8808; UDP port 0; time limit 5 min
    "303B415554483B636D6E65743B3B3B31302E302E302E313B383830383B303B35"
)
CONTROL = TerminalControl(
    command=c.CONTROL_CONNECT_SERVER,
    params=("0", "AUTH", "cmnet", "", "", "10.0.0.1", "8808", "0", "5"),
)

TEXT_2013_HEX = (
    "0D"  # flags: bit 0 emergency, bit 2 display, bit 3 TTS
    "C4E3BAC3"  # text (GBK): "你好"
)  # fmt: skip
TEXT_2019_HEX = (
    "0F"  # flags: bits 0-1 priority 3 (notice), bit 2 display, bit 3 TTS
    "02"  # text type 2: service
    "C4E3BAC3"  # text (GBK): "你好"
)  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
def test_set_params(jt808: ModuleType, version: int) -> None:
    body = decoded(jt808, 0x8103, bytes.fromhex(SET_PARAMS_HEX), version)
    assert body == SET_PARAMS
    assert isinstance(body, SetParams)
    assert p.param_values(body.params) == {0x0001: 30, 0x0013: "127.0.0.1", 0x0084: 2}
    assert p.param_items({0x0001: 30, 0x0013: "127.0.0.1", 0x0084: 2}) == SET_PARAMS.params
    assert decoded(jt808, 0x8103, b"\x00", version) == SetParams(params=())


@pytest.mark.parametrize("version", VERSIONS)
def test_queries(jt808: ModuleType, version: int) -> None:
    assert decoded(jt808, 0x8104, b"", version) == QueryAllParams()
    body = decoded(jt808, 0x8106, bytes.fromhex(QUERY_PARAMS_HEX), version)
    assert body == QueryParams(param_ids=(0x0001, 0x0083))
    assert decoded(jt808, 0x8106, b"\x00", version) == QueryParams(param_ids=())


@pytest.mark.parametrize("version", VERSIONS)
def test_query_params_response(jt808: ModuleType, version: int) -> None:
    body = decoded(jt808, 0x0104, bytes.fromhex(RESPONSE_HEX), version)
    assert isinstance(body, QueryParamsResponse) and body.reply_serial == 7
    assert [(x.param_id, x.data) for x in body.params] == [
        (0x0055, bytes.fromhex("00000064")),
        (0x0083, "粤A12345".encode("gbk")),
        (0xF001, bytes.fromhex("AABBCC")),
    ]
    assert p.param_values(body.params) == {0x0055: 100, 0x0083: "粤A12345", 0xF001: b"\xaa\xbb\xcc"}


@pytest.mark.parametrize("version", VERSIONS)
def test_terminal_control(jt808: ModuleType, version: int) -> None:
    assert decoded(jt808, 0x8105, bytes.fromhex(CONTROL_HEX), version) == CONTROL
    reset = decoded(jt808, 0x8105, b"\x04", version)  # command word 4 (reset), no parameters
    assert reset == TerminalControl(command=c.CONTROL_RESET)
    # a platform that NUL-terminates the (empty) parameter STRING: still no parameters
    assert jt808.decode_terminal_control(b"\x04\x00", version) == reset
    # one empty parameter is written as no parameters at all
    assert jt808.encode_terminal_control(TerminalControl(command=4, params=("",)), version) == (
        b"\x04"
    )


def test_text_message(jt808: ModuleType) -> None:
    msg = decoded(jt808, 0x8300, bytes.fromhex(TEXT_2013_HEX), 2013)
    assert msg == TextMessage(
        flags=c.TEXT_FLAG_EMERGENCY | c.TEXT_FLAG_DISPLAY | c.TEXT_FLAG_TTS, text="你好"
    )
    msg = decoded(jt808, 0x8300, bytes.fromhex(TEXT_2019_HEX), 2019)
    assert msg == TextMessage(
        flags=c.TEXT_PRIORITY_NOTICE | c.TEXT_FLAG_DISPLAY | c.TEXT_FLAG_TTS,
        text="你好",
        text_type=c.TEXT_TYPE_SERVICE,
    )
    assert decoded(jt808, 0x8300, b"\x00", 2013) == TextMessage(flags=0, text="")
    assert decoded(jt808, 0x8300, b"\x00\x01", 2019) == TextMessage(flags=0, text="", text_type=1)
    # text_type exists in 2019 only: dropped in 2013, notice when unset in 2019
    both = TextMessage(flags=4, text="A", text_type=2)
    assert jt808.encode_text_message(both, 2013) == bytes.fromhex("0441")
    bare = TextMessage(flags=4, text="A")
    assert jt808.encode_text_message(bare, 2019) == bytes.fromhex("040141")


def test_message_table() -> None:
    assert {i: BODY_TYPES[i] for i in COMMAND_IDS} == {
        0x8103: SetParams,
        0x8104: QueryAllParams,
        0x8106: QueryParams,
        0x0104: QueryParamsResponse,
        0x8105: TerminalControl,
        0x8300: TextMessage,
    }
    for module in (reference, _accel):
        assert set(module.BODY_CODECS) == set(BODY_TYPES)
        for msg_id, name in NAMES.items():
            assert module.BODY_CODECS[msg_id] == (
                getattr(module, f"decode_{name}"),
                getattr(module, f"encode_{name}"),
            )


# ----------------------------------------------------------------------------- errors

# (message id, version, body hex, reason, offset of the fault in the body)
BAD_BODIES: list[tuple[int, int, str, Reason, int]] = [
    (0x8103, 2013, "", Reason.TRUNCATED, 0),  # no count
    (0x8103, 2013, "01000000", Reason.TRUNCATED, 1),  # id cut short
    (0x8103, 2019, "0100000001", Reason.TRUNCATED, 5),  # no length
    (0x8103, 2013, "0100000001040000", Reason.TRUNCATED, 6),  # value 2 of 4 bytes
    (0x8103, 2019, "02000000010105", Reason.TRUNCATED, 7),  # second item missing
    (0x8103, 2013, "01000000010105FF", Reason.TRAILING_BYTES, 7),  # a byte past the items
    (0x8104, 2013, "00", Reason.TRAILING_BYTES, 0),
    (0x8104, 2019, "0000", Reason.TRAILING_BYTES, 0),
    (0x8106, 2013, "", Reason.TRUNCATED, 0),
    (0x8106, 2019, "02000000010000", Reason.TRUNCATED, 5),  # second id 2 of 4 bytes
    (0x8106, 2013, "010000000100", Reason.TRAILING_BYTES, 5),
    (0x0104, 2013, "00", Reason.TRUNCATED, 0),  # reply serial 1 of 2 bytes
    (0x0104, 2019, "0001", Reason.TRUNCATED, 2),  # no count
    (0x0104, 2013, "00010100000055040000", Reason.TRUNCATED, 8),  # value 2 of 4 bytes
    (0x0104, 2019, "0001000A", Reason.TRAILING_BYTES, 3),  # count 0, then a byte
    (0x8105, 2013, "", Reason.TRUNCATED, 0),  # no command word
    (0x8105, 2019, "0141FF", Reason.BAD_VALUE, 2),  # parameters not GBK
    (0x8300, 2013, "", Reason.TRUNCATED, 0),  # no flags
    (0x8300, 2019, "01", Reason.TRUNCATED, 1),  # no text type
    (0x8300, 2013, "01FF", Reason.BAD_VALUE, 1),  # text not GBK
    (0x8300, 2019, "0101C4E3FF", Reason.BAD_VALUE, 4),
]


@pytest.mark.parametrize(
    ("msg_id", "version", "wire", "reason", "at"),
    BAD_BODIES,
    ids=[f"{m:04X}-{v}-{w or 'empty'}" for m, v, w, _, _ in BAD_BODIES],
)
def test_bad_body(
    jt808: ModuleType, msg_id: int, version: int, wire: str, reason: Reason, at: int
) -> None:
    body = bytes.fromhex(wire)
    decode = getattr(jt808, f"decode_{NAMES[msg_id]}")
    assert error(decode, body, version) == (reason, at)
    assert error(jt808.decode_body, msg_id, body, version) == (reason, at)
    raw = frame_bytes(jt808, msg_id, body, version)
    assert error(jt808.decode_frame, raw) == (reason, BODY_AT[version] + at)
    with pytest.raises(ProtocolError) as exc:
        jt808.decode_frame(raw)
    assert exc.value.raw == raw


def test_bad_encodes(jt808: ModuleType) -> None:
    many = tuple(TerminalParam(param_id=i, data=b"") for i in range(256))
    long_value = (TerminalParam(param_id=0x0013, data=b"x" * 256),)
    cases: list[tuple[int, Body, Reason]] = [
        (0x8103, SetParams(params=many), Reason.BAD_LENGTH),
        (0x8103, SetParams(params=long_value), Reason.BAD_LENGTH),
        (0x0104, QueryParamsResponse(reply_serial=1, params=many), Reason.BAD_LENGTH),
        (0x8106, QueryParams(param_ids=tuple(range(256))), Reason.BAD_LENGTH),
        (0x8105, TerminalControl(command=1, params=("a;b",)), Reason.BAD_VALUE),
        # values the wire cannot hold: encode_frame turns them into BAD_VALUE
        (0x8103, SetParams(params=(TerminalParam(param_id=1 << 32, data=b""),)), Reason.BAD_VALUE),
        (0x8106, QueryParams(param_ids=(-1,)), Reason.BAD_VALUE),
        (0x0104, QueryParamsResponse(reply_serial=0x10000, params=()), Reason.BAD_VALUE),
        (0x8105, TerminalControl(command=256), Reason.BAD_VALUE),
        (0x8300, TextMessage(flags=0, text="\U0001f600"), Reason.BAD_VALUE),  # not GBK
        (0x8300, TextMessage(flags=0, text="x" * 1024), Reason.BAD_LENGTH),  # body > 1023
        (0x8103, TextMessage(flags=0, text=""), Reason.BAD_VALUE),  # not the body of 0x8103
    ]
    for version in VERSIONS:
        for msg_id, body, reason in cases:
            msg = Frame(version=version, msg_id=msg_id, phone="1", serial=1, body=body)
            assert error(jt808.encode_frame, msg)[0] is reason, (msg_id, body)


# ------------------------------------------------------------------------ round trips

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
# no NUL (trailing NULs are stripped on decode) and no ';' (the 0x8105 separator)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcxyz0123456789-_.:/ 粤京沪川鲁苏浙你好"


def gbk_text(max_bytes: int) -> st.SearchStrategy[str]:
    return st.text(ALPHABET, max_size=max_bytes).filter(lambda s: len(s.encode("gbk")) <= max_bytes)


terminal_params = st.lists(
    st.builds(TerminalParam, param_id=u32, data=st.binary(max_size=24)), max_size=12
).map(tuple)
control_params = (
    st.lists(gbk_text(16), max_size=12).map(tuple).filter(lambda t: t != ("",))  # ("",) is ()
)


def text_messages(version: int) -> st.SearchStrategy[TextMessage]:
    text_type = u8 if version == 2019 else st.none()
    return st.builds(TextMessage, flags=u8, text=gbk_text(400), text_type=text_type)


def commands(version: int) -> st.SearchStrategy[tuple[int, Body]]:
    """(message id, body) of every command / answer, laid out for ``version``."""
    return st.one_of(
        st.builds(SetParams, params=terminal_params).map(lambda b: (0x8103, b)),
        st.just((0x8104, QueryAllParams())),
        st.builds(QueryParams, param_ids=st.lists(u32, max_size=60).map(tuple)).map(
            lambda b: (0x8106, b)
        ),
        st.builds(QueryParamsResponse, reply_serial=u16, params=terminal_params).map(
            lambda b: (0x0104, b)
        ),
        st.builds(TerminalControl, command=u8, params=control_params).map(lambda b: (0x8105, b)),
        text_messages(version).map(lambda b: (0x8300, b)),
    )


COMMANDS = {v: commands(v) for v in VERSIONS}


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_round_trip(jt808: ModuleType, version: int, data: st.DataObject) -> None:
    msg_id, body = data.draw(COMMANDS[version])
    wire = jt808.encode_body(msg_id, body, version)
    assert jt808.decode_body(msg_id, wire, version) == body
    name = NAMES[msg_id]
    assert getattr(jt808, f"encode_{name}")(body, version) == wire
    assert getattr(jt808, f"decode_{name}")(wire, version) == body
    digits = c.PHONE_DIGITS[version]
    msg = Frame(
        version=version,
        msg_id=msg_id,
        phone=data.draw(st.text("0123456789", min_size=digits, max_size=digits)),
        serial=data.draw(u16),
        body=body,
        protocol_version=data.draw(u8) if version == 2019 else None,
    )
    raw = jt808.encode_frame(msg)
    assert jt808.decode_frame(raw) == msg
    assert jt808.encode_frame(jt808.decode_frame(raw)) == raw


@pytest.mark.parametrize("msg_id", COMMAND_IDS)
@SETTINGS
@given(blob=st.binary(max_size=60), version=st.sampled_from(VERSIONS))
def test_any_bytes_only_protocol_errors(
    jt808: ModuleType, msg_id: int, blob: bytes, version: int
) -> None:
    decode = getattr(jt808, f"decode_{NAMES[msg_id]}")
    with contextlib.suppress(ProtocolError):
        body = decode(blob, version)
        assert jt808.decode_body(msg_id, blob, version) == body
    with contextlib.suppress(ProtocolError):
        jt808.decode_frame(frame_bytes(jt808, msg_id, blob, version))


# --------------------------------------------------------------- accelerator == reference


def outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except ProtocolError as exc:
        return ("protocol_error", exc.reason, exc.offset, exc.message, exc.raw)
    except Exception as exc:
        return ("other", type(exc))


@settings(SETTINGS, max_examples=300)
@given(data=st.data())
def test_accelerator_agrees(data: st.DataObject) -> None:
    version = data.draw(st.sampled_from(VERSIONS))
    msg_id, body = data.draw(COMMANDS[version])
    msg = Frame(version=version, msg_id=msg_id, phone="13912344329", serial=1, body=body)
    expected = outcome(reference.encode_frame, msg)
    assert outcome(_accel.encode_frame, msg) == expected
    raw = expected[1] if expected[0] == "ok" else frame_bytes(reference, msg_id, b"", version)
    # and a damaged copy: a byte changed or cut from the body, the checksum fixed
    payload = bytearray(reference.unescape(raw[1:-1])[:-1])
    body_at = BODY_AT[version] - 1
    if len(payload) > body_at:
        i = data.draw(st.integers(body_at, len(payload) - 1))
        payload[i] = data.draw(u8)
        del payload[data.draw(st.integers(body_at, len(payload))) :]
        length = (len(payload) - body_at) | (c.ATTR_VERSION_2019 if version == 2019 else 0)
        payload[2:4] = length.to_bytes(2, "big")
    check = bytes((reference.checksum(bytes(payload)),))
    damaged = b"\x7e" + reference.escape(bytes(payload) + check) + b"\x7e"
    for frame in (raw, damaged):
        result = outcome(reference.decode_frame, frame)
        assert result[0] != "other"
        assert outcome(_accel.decode_frame, frame) == result
        body_bytes = reference.unescape(frame[1:-1])[body_at:-1]
        want = outcome(reference.decode_body, msg_id, body_bytes, version)
        assert outcome(_accel.decode_body, msg_id, body_bytes, version) == want


def test_accelerator_exports_the_same_names() -> None:
    for name in NAMES.values():
        for prefix in ("decode_", "encode_"):
            assert getattr(_accel, prefix + name) is getattr(reference, prefix + name)


def test_raw_body_still_encodes(jt808: ModuleType) -> None:
    """A command given as RawBody is sent as is; received, it decodes typed."""
    msg = Frame(version=2013, msg_id=0x8300, phone="1", serial=1, body=RawBody(data=b"\x01hi"))
    assert jt808.decode_frame(jt808.encode_frame(msg)).body == TextMessage(flags=1, text="hi")


# ----------------------------------------------------------------------- parameter table


def test_param_table() -> None:
    kinds = {
        0x0001: (p.ParamKind.DWORD, 4, "s"),  # heartbeat interval
        0x0013: (p.ParamKind.STRING, 0, ""),  # main server address
        0x0018: (p.ParamKind.DWORD, 4, ""),  # server TCP port
        0x0029: (p.ParamKind.DWORD, 4, "s"),  # default report interval
        0x0031: (p.ParamKind.WORD, 2, "m"),  # electronic fence radius
        0x0032: (p.ParamKind.BYTES, 4, ""),  # 2019: illegal driving period
        0x0055: (p.ParamKind.DWORD, 4, "km/h"),  # max speed
        0x005B: (p.ParamKind.WORD, 2, "0.1 km/h"),  # overspeed warning delta
        0x0080: (p.ParamKind.DWORD, 4, "0.1 km"),  # odometer
        0x0081: (p.ParamKind.WORD, 2, ""),  # province
        0x0083: (p.ParamKind.STRING, 0, ""),  # plate
        0x0084: (p.ParamKind.BYTE, 1, ""),  # plate colour
        0x0026: (p.ParamKind.STRING, 0, ""),  # 2019: slave server address
        0x0110: (p.ParamKind.BYTES, 8, ""),  # CAN id collection
        0x01FF: (p.ParamKind.BYTES, 8, ""),  # CAN id collection (range)
    }
    for pid, (kind, size, unit) in kinds.items():
        spec = p.param_spec(pid)
        assert spec is not None and (spec.kind, spec.size, spec.unit) == (kind, size, unit), pid
    for pid in (0x0008, 0x001E, 0x0200, 0xF000, 0xFFFF, 0x10000):
        assert p.param_spec(pid) is None
    assert p.PARAM_IDS["heartbeat_interval_s"] == p.PARAM_HEARTBEAT_INTERVAL == 0x0001
    assert p.PARAM_IDS["plate"] == p.PARAM_PLATE == 0x0083
    assert len(p.PARAM_IDS) == len(p.PARAMS)  # names are unique
    assert package.param_items is p.param_items and package.PARAMS is p.PARAMS


ENCODED: list[tuple[int, p.ParamValue, str]] = [
    (0x0001, 30, "0000001E"),  # DWORD
    (0x0031, 500, "01F4"),  # WORD
    (0x0084, 2, "02"),  # BYTE
    (0x0083, "粤A12345", "D4C1413132333435"),  # STRING, GBK
    (0x0013, "", ""),  # empty STRING
    (0x0032, bytes.fromhex("16320A1E"), "16320A1E"),  # BYTE[4]
    (0xF001, b"\x01\x02", "0102"),  # vendor id: bytes as given
    (0x0001, b"\x00\x1e", "001E"),  # bytes for a known id: as given too
]


@pytest.mark.parametrize(("pid", "value", "wire"), ENCODED)
def test_param_value_encode(pid: int, value: p.ParamValue, wire: str) -> None:
    assert p.encode_param_value(pid, value) == bytes.fromhex(wire)


def test_param_value_decode() -> None:
    assert p.decode_param_value(0x0001, bytes.fromhex("0000001E")) == 30
    assert p.decode_param_value(0x0001, b"\x00\x1e") == b"\x00\x1e"  # wrong width: raw
    assert p.decode_param_value(0x0084, b"\x02") == 2
    assert p.decode_param_value(0x0083, bytes.fromhex("D4C1413132333435") + b"\x00") == "粤A12345"
    assert p.decode_param_value(0x0013, b"\xff\xfe") == b"\xff\xfe"  # not GBK: raw
    assert p.decode_param_value(0x0032, b"\x16\x32") == b"\x16\x32"
    assert p.decode_param_value(0xF001, b"ab") == b"ab"  # unknown id: raw
    dup = (TerminalParam(param_id=1, data=bytes(4)), TerminalParam(param_id=1, data=b"\0\0\0\1"))
    assert p.param_values(dup) == {1: 1}


@pytest.mark.parametrize(
    ("pid", "value"),
    [
        (0xF001, 5),  # unknown id: only bytes
        (0x0001, 1 << 32),  # DWORD range
        (0x0084, 256),  # BYTE range
        (0x0031, -1),  # WORD range
        (0x0001, "30"),  # DWORD given a str
        (0x0013, 5),  # STRING given an int
        (0x0032, 5),  # BYTE[4] given an int
        (0x0083, "\U0001f600"),  # not GBK
    ],
)
def test_param_value_errors(pid: int, value: p.ParamValue) -> None:
    assert error(p.encode_param_value, pid, value)[0] is Reason.BAD_VALUE
    assert error(p.param_items, {pid: value})[0] is Reason.BAD_VALUE


def _typed_values() -> st.SearchStrategy[tuple[int, p.ParamValue]]:
    def value(pid: int) -> st.SearchStrategy[p.ParamValue]:
        spec = p.PARAMS[pid]
        if spec.kind is p.ParamKind.STRING:
            return gbk_text(60)
        if spec.kind is p.ParamKind.BYTES:
            return st.binary(min_size=spec.size, max_size=spec.size)
        return st.integers(0, (1 << 8 * spec.size) - 1)

    return st.sampled_from(sorted(p.PARAMS)).flatmap(lambda pid: value(pid).map(lambda v: (pid, v)))


@SETTINGS
@given(pairs=st.lists(_typed_values(), max_size=15), version=st.sampled_from(VERSIONS))
def test_param_values_round_trip(
    jt808: ModuleType, pairs: list[tuple[int, p.ParamValue]], version: int
) -> None:
    values = dict(pairs)
    msg = SetParams(params=p.param_items(values))
    wire = jt808.encode_set_params(msg, version)
    assert p.param_values(jt808.decode_set_params(wire, version).params) == values
