"""OCPP-J RPC layer (sans-IO): frames byte-exact per version, the CALLERROR for every malformed
input (version x case), one outstanding CALL per direction, ids, size limit, and fuzzing.

The payload codec here is a tiny one of this file (the generated messages are tested on their
own): a few actions with real field names, raising a PayloadError like the real codec's.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ocpp import rpc_errors as errs
from gateway.ocpp import rpc_frames as frames
from gateway.ocpp.rpc import (
    BadMessage,
    CallAborted,
    CallError,
    CallQueueFull,
    CallResult,
    CallTimeout,
    Event,
    IncomingCall,
    InvalidResult,
    OutgoingCall,
    RpcConnection,
    RpcUsageError,
    Unmatched,
)

V16, V201 = errs.V16, errs.V201
VERSIONS = (V16, V201)
FORMAT = {V16: "FormationViolation", V201: "FormatViolation"}
NOW = 1000.0

# -- a tiny payload codec ---------------------------------------------------------------------


class PayloadError(Exception):
    def __init__(self, code: str, description: str, details: dict[str, Any] | None = None):
        super().__init__(code, description)
        self.code, self.description, self.details = code, description, details or {}


class Empty(msgspec.Struct):
    pass


class BootRequest16(msgspec.Struct):
    chargePointVendor: Annotated[str, msgspec.Meta(max_length=20)]
    chargePointModel: Annotated[str, msgspec.Meta(max_length=20)]


class BootResponse16(msgspec.Struct):
    status: str
    currentTime: str
    interval: int


class ChargingStation(msgspec.Struct):
    model: str
    vendorName: str


class BootRequest201(msgspec.Struct):
    reason: str
    chargingStation: ChargingStation


class BootResponse201(msgspec.Struct):
    currentTime: str
    interval: int
    status: str


class HeartbeatResponse(msgspec.Struct):
    currentTime: str


class DataTransferRequest(msgspec.Struct, omit_defaults=True):
    vendorId: Annotated[str, msgspec.Meta(max_length=255)]
    messageId: Annotated[str, msgspec.Meta(max_length=50)] | None = None


class DataTransferResponse(msgspec.Struct):
    status: str


class ResetRequest(msgspec.Struct):
    type: str


class ResetResponse(msgspec.Struct):
    status: str


_COMMON = {
    "Heartbeat": (Empty, HeartbeatResponse),
    "DataTransfer": (DataTransferRequest, DataTransferResponse),
    "Reset": (ResetRequest, ResetResponse),  # CS -> charger: known, not answered by the CS
    "Explode": (Empty, Empty),  # the codec fails on it
}
ACTIONS: dict[str, dict[str, tuple[type, type]]] = {
    V16: {"BootNotification": (BootRequest16, BootResponse16), **_COMMON},
    V201: {"BootNotification": (BootRequest201, BootResponse201), **_COMMON},
}
SUPPORTED = ("BootNotification", "Heartbeat", "DataTransfer", "Explode")


def _decode(payload: bytes, typ: type) -> Any:
    try:
        return msgspec.json.decode(payload, type=typ)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "missing required field" in text:
            code = "OccurrenceConstraintViolation"  # 2.0.1 spelling: the layer respells it
        elif "length" in text:
            code = "PropertyConstraintViolation"
        else:
            code = "TypeConstraintViolation"
        raise PayloadError(code, text, {"path": text.rpartition("at `")[2].rstrip("`")}) from None


class TinyCodec:
    def __init__(self) -> None:
        self.decoded = 0

    def known_action(self, version: str, action: str) -> bool:
        return action in ACTIONS[version]

    def decode_request(self, version: str, action: str, payload: bytes) -> Any:
        self.decoded += 1
        if action == "Explode":
            raise RuntimeError("codec bug")
        return _decode(payload, ACTIONS[version][action][0])

    def decode_response(self, version: str, action: str, payload: bytes) -> Any:
        self.decoded += 1
        return _decode(payload, ACTIONS[version][action][1])

    def encode(self, struct: Any) -> bytes:
        if isinstance(struct, str):
            raise TypeError("not a Struct")
        return msgspec.json.encode(struct)


def conn(version: str = V16, **kw: Any) -> RpcConnection:
    kw.setdefault("supported", SUPPORTED)
    kw.setdefault("id_prefix", "")
    return RpcConnection(version, TinyCodec(), **kw)


def one(events: list[Event]) -> Event:
    assert len(events) == 1, events
    return events[0]


# -- frames, byte-exact -----------------------------------------------------------------------

BOOT16 = (
    '[2,"19223201","BootNotification",'
    '{"chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger"}]'
)
BOOT201 = (
    '[2,"19223201","BootNotification",{"reason":"PowerUp",'
    '"chargingStation":{"model":"SingleSocketCharger","vendorName":"VendorX"}}]'
)


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_parse_every_frame_type(as_bytes: bool) -> None:
    def p(text: str) -> frames.Frame:
        return frames.parse(text.encode() if as_bytes else text, 65536)

    assert p(BOOT16) == frames.CallFrame(
        "19223201",
        "BootNotification",
        b'{"chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger"}',
    )
    assert p(' [ 3 , "7" , { "a" : "é" } ]\n') == frames.ResultFrame("7", '{ "a" : "é" }'.encode())
    assert p('[4,"162376037","NotSupported","SetDisplayMessageRequest not implemented",{}]') == (
        frames.ErrorFrame(
            "162376037", "NotSupported", "SetDisplayMessageRequest not implemented", {}
        )
    )
    # null for {} is read as {}; a peer's CALLERROR without description / details is kept
    assert p('[2,"1","Heartbeat",null]') == frames.CallFrame("1", "Heartbeat", b"{}")
    assert p('[3,"1",null]') == frames.ResultFrame("1", b"{}")
    assert p('[4,"1","GenericError"]') == frames.ErrorFrame("1", "GenericError", "", {})
    assert p('[4,"1","GenericError","x","y"]') == frames.ErrorFrame(
        "1", "GenericError", "x", {"details": "y"}
    )


def test_encode_every_frame_type() -> None:
    assert frames.encode_call("1", "Reset", b'{"type":"Soft"}') == '[2,"1","Reset",{"type":"Soft"}]'
    assert frames.encode_result('a"b', b"{}") == '[3,"a\\"b",{}]'
    assert (
        frames.encode_error("162376037", "NotSupported", "SetDisplayMessageRequest not implemented")
        == '[4,"162376037","NotSupported","SetDisplayMessageRequest not implemented",{}]'
    )
    long = frames.encode_error("1", "GenericError", "é" * 300, {"k": [1]})
    assert json.loads(long) == [4, "1", "GenericError", "é" * 255, {"k": [1]}]
    # a lone surrogate in a description cannot be sent as UTF-8: replaced, not raised
    assert json.loads(frames.encode_error("1", "GenericError", "a\ud800"))[3] == "a?"
    assert json.loads(frames.encode_error("1", "GenericError", "x", {"k": object()}))[4] == {}


def test_incoming_call_and_answer_16() -> None:
    c = conn(V16)
    ev = one(c.receive_text(BOOT16, NOW))
    assert ev == IncomingCall(
        "19223201", "BootNotification", BootRequest16("VendorX", "SingleSocketCharger")
    )
    assert c.open_calls == ("19223201",)
    text = c.answer("19223201", BootResponse16("Accepted", "2013-02-01T20:53:32.486Z", 300))
    assert text == (
        '[3,"19223201",{"status":"Accepted","currentTime":"2013-02-01T20:53:32.486Z",'
        '"interval":300}]'
    )
    assert not c.open_calls
    with pytest.raises(RpcUsageError):
        c.answer("19223201", BootResponse16("Accepted", "x", 1))  # answered already


def test_incoming_call_and_answer_201() -> None:
    c = conn(V201)
    ev = one(c.receive_text(BOOT201.encode(), NOW))
    assert ev == IncomingCall(
        "19223201",
        "BootNotification",
        BootRequest201("PowerUp", ChargingStation("SingleSocketCharger", "VendorX")),
    )
    text = c.answer("19223201", BootResponse201("2013-02-01T20:53:32.486Z", 300, "Accepted"))
    assert text == (
        '[3,"19223201",{"currentTime":"2013-02-01T20:53:32.486Z","interval":300,'
        '"status":"Accepted"}]'
    )


def test_answer_error_spec_example_and_respelling() -> None:
    c = conn(V201)
    c.receive_text('[2,"162376037","Heartbeat",{}]', NOW)
    assert (
        c.answer_error("162376037", "NotSupported", "SetDisplayMessageRequest not implemented")
        == '[4,"162376037","NotSupported","SetDisplayMessageRequest not implemented",{}]'
    )
    with pytest.raises(RpcUsageError):
        c.answer_error("162376037", "InternalError")
    for version, given_code, sent in [
        (V16, "FormatViolation", "FormationViolation"),
        (V16, "OccurrenceConstraintViolation", "OccurenceConstraintViolation"),
        (V16, "RpcFrameworkError", "GenericError"),
        (V16, "MessageTypeNotSupported", "GenericError"),
        (V201, "FormationViolation", "FormatViolation"),
        (V201, "OccurenceConstraintViolation", "OccurrenceConstraintViolation"),
        (V201, "InternalError", "InternalError"),
        (V201, "Bogus", "GenericError"),
    ]:
        c = conn(version)
        c.receive_text('[2,"9","Heartbeat",{}]', NOW)
        assert c.answer_error("9", given_code, "d", {"x": 1}) == f'[4,"9","{sent}","d",{{"x":1}}]'


def test_handler_failure_is_answered_with_internal_error() -> None:
    c = conn(V16)
    c.receive_text('[2,"5","Heartbeat",{}]', NOW)
    with pytest.raises(TypeError):
        c.answer("5", "not a struct")  # the codec cannot encode it: the CALL stays open
    assert c.open_calls == ("5",)
    assert c.answer_error("5", errs.INTERNAL_ERROR, "store unavailable") == (
        '[4,"5","InternalError","store unavailable",{}]'
    )


def test_payload_is_decoded_once_and_null_payload_is_empty() -> None:
    c = conn(V16)
    codec = c.codec
    assert isinstance(codec, TinyCodec)
    assert one(c.receive_text('[2,"1","Heartbeat",null]', NOW)) == IncomingCall(
        "1", "Heartbeat", Empty()
    )
    c.receive_text(BOOT16, NOW)
    assert codec.decoded == 2


# -- malformed input: the exact CALLERROR per version ----------------------------------------

ID37 = "x" * 37
LIMIT = 16384
HB = '"Heartbeat"'
DT = '[2,"abc","DataTransfer",'
DEEP = '[2,"abc","Heartbeat",' + "[" * 5000 + "]" * 5000 + "]"
BIG = DT + '{"vendorId":"' + "v" * LIMIT + '"}]'
BIG_RESULT = '[3,"abc",{"k":"' + "v" * LIMIT + '"}]'
LONG_FIELD = DT + '{"vendorId":"v","messageId":"' + "m" * 51 + '"}]'
F, R = "F", "R"  # the version's format code; format code, or RpcFrameworkError in 2.0.1
MTNS, OCC = "MessageTypeNotSupported", "OccurrenceConstraintViolation"
NI, NS, IE = "NotImplemented", "NotSupported", "InternalError"
TCV, PCV = "TypeConstraintViolation", "PropertyConstraintViolation"
# (case, input, reason, id answered, 1.6 code, 2.0.1 code); code None: no answer
MALFORMED: list[tuple[str, str | bytes, str, str | None, str | None, str | None]] = [
    ("not-json", "hello", "not_json", "-1", F, R),
    ("empty", "", "not_json", "-1", F, R),
    ("truncated", f'[2,"abc",{HB},{{', "not_json", "abc", F, F),
    ("trailing", f'[2,"abc",{HB},{{}}] x', "not_json", "abc", F, F),
    ("bad-utf8", b'[2,"abc","Heart\xffbeat",{}]', "not_json", "abc", F, F),
    ("surrogate", f'[2,"a\ud800",{HB},{{}}]', "not_json", "-1", F, R),
    ("deep", DEEP, "not_json", "abc", F, F),
    ("object", '{"a":1}', "not_array", "-1", F, R),
    ("empty-array", "[]", "not_array", "-1", F, R),
    ("string", '"abc"', "not_array", "-1", F, R),
    ("type-string", f'["2","abc",{HB},{{}}]', "bad_type_id", "-1", F, R),
    ("type-float", f'[2.0,"abc",{HB},{{}}]', "bad_type_id", "-1", F, R),
    ("type-bool", f'[true,"abc",{HB},{{}}]', "bad_type_id", "-1", F, R),
    ("type-7", '[7,"abc",{}]', "unknown_type", "abc", None, MTNS),
    ("type-5", '[5,"abc","x",{}]', "unknown_type", "abc", None, MTNS),
    ("type-6-no-id", "[6,1]", "unknown_type", "-1", None, MTNS),
    ("no-id", "[2]", "bad_id", "-1", F, R),
    ("int-id", f"[2,17,{HB},{{}}]", "bad_id", "-1", F, R),
    ("empty-id", f'[2,"",{HB},{{}}]', "invalid_id", "", F, F),
    ("long-id", f'[2,"{ID37}",{HB},{{}}]', "invalid_id", ID37, F, F),
    ("no-payload", f'[2,"abc",{HB}]', "bad_call", "abc", F, F),
    ("extra", f'[2,"abc",{HB},{{}},{{}}]', "bad_call", "abc", F, F),
    ("int-action", '[2,"abc",5,{}]', "bad_call", "abc", F, F),
    ("array-payload", f'[2,"abc",{HB},[]]', "bad_call", "abc", F, F),
    ("string-payload", f'[2,"abc",{HB},"x"]', "bad_call", "abc", F, F),
    ("unknown-action", '[2,"abc","Nope",{}]', "unknown_action", "abc", NI, NI),
    ("unsupported", '[2,"abc","Reset",{"type":"Soft"}]', "unsupported_action", "abc", NS, NS),
    ("missing-field", DT + "{}]", "payload", "abc", "OccurenceConstraintViolation", OCC),
    ("wrong-type", DT + '{"vendorId":5}]', "payload", "abc", TCV, TCV),
    ("too-long-field", LONG_FIELD, "payload", "abc", PCV, PCV),
    ("codec-fails", '[2,"abc","Explode",{}]', "codec_failure", "abc", IE, IE),
    ("too-large", BIG, "too_large", "abc", F, F),
    ("too-large-garbage", "x" * (LIMIT + 1), "too_large", "-1", F, R),
    # answers to answers are never sent (no CALL of ours is outstanding here)
    ("result-short", '[3,"abc"]', "bad_result", None, None, None),
    ("result-array", '[3,"abc",[]]', "bad_result", None, None, None),
    ("result-int-id", "[3,17,{}]", "bad_id", None, None, None),
    ("result-truncated", '[3,"abc",{', "not_json", None, None, None),
    ("result-too-large", BIG_RESULT, "too_large", None, None, None),
    ("error-int-code", '[4,"abc",5,"d",{}]', "bad_error", None, None, None),
    ("error-too-long", '[4,"abc","GenericError","d",{},1]', "bad_error", None, None, None),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("data", "reason", "uid", "code16", "code201"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_gets_exactly_the_right_callerror(
    version: str,
    data: str | bytes,
    reason: str,
    uid: str | None,
    code16: str | None,
    code201: str | None,
) -> None:
    c = conn(version, max_message_bytes=LIMIT)
    ev = one(c.receive_text(data, NOW))
    assert isinstance(ev, BadMessage)
    assert ev.reason == reason
    code = code16 if version == V16 else code201
    if code is None:
        assert ev.reply is None and ev.code is None
        return
    if code == F or (code == R and version == V16):
        code = FORMAT[version]
    elif code == R:
        code = "RpcFrameworkError"
    assert ev.code == code
    assert ev.reply is not None
    reply = json.loads(ev.reply)
    assert reply[:3] == [4, uid, code]
    assert ev.reply == frames.encode_error(reply[1], code, ev.description, ev.details)
    assert 0 < len(reply[3]) <= 255
    assert reply[4] == ev.details
    assert c.open_calls == ()
    assert (ev.error is not None) == (reason == "codec_failure")


def test_malformed_replies_byte_exact() -> None:
    c16, c201 = conn(V16), conn(V201)
    ev = one(c16.receive_text('[2,"abc","Nope",{}]', NOW))
    assert isinstance(ev, BadMessage)
    assert ev.reply == '[4,"abc","NotImplemented","unknown action Nope",{}]'
    ev = one(c201.receive_text("[]", NOW))
    assert isinstance(ev, BadMessage)
    assert ev.reply == ('[4,"-1","RpcFrameworkError","message is not a non-empty JSON array",{}]')
    ev = one(c201.receive_text('[7,"abc",{}]', NOW))
    assert isinstance(ev, BadMessage)
    assert ev.reply == '[4,"abc","MessageTypeNotSupported","message type 7 is not supported",{}]'
    ev = one(c16.receive_text('[2,"abc","DataTransfer",{"vendorId":5}]', NOW))
    assert isinstance(ev, BadMessage)
    assert ev.reply == (
        '[4,"abc","TypeConstraintViolation","Expected `str`, got `int` - at `$.vendorId`",'
        '{"path":"$.vendorId"}]'
    )


def test_duplicate_and_too_many_open_calls() -> None:
    c = conn(V201, max_open_calls=2)
    assert isinstance(one(c.receive_text('[2,"a","Heartbeat",{}]', NOW)), IncomingCall)
    dup = one(c.receive_text('[2,"a","Heartbeat",{}]', NOW))
    assert dup == BadMessage("duplicate_id", "CALL a is still being answered", "a", None, None)
    assert isinstance(one(c.receive_text('[2,"b","Heartbeat",{}]', NOW)), IncomingCall)
    full = one(c.receive_text('[2,"c","Heartbeat",{}]', NOW))
    assert isinstance(full, BadMessage) and full.reason == "too_many_calls"
    assert full.reply == (
        '[4,"c","GenericError","2 CALLs are still unanswered; send one at a time",{}]'
    )
    # answered in receive order; then the id may come again
    assert c.open_calls == ("a", "b")
    c.answer("a", HeartbeatResponse("t"))
    c.answer("b", HeartbeatResponse("t"))
    assert isinstance(one(c.receive_text('[2,"a","Heartbeat",{}]', NOW)), IncomingCall)


def test_supported_none_answers_every_known_action() -> None:
    c = conn(V16, supported=None)
    assert one(c.receive_text('[2,"r","Reset",{"type":"Hard"}]', NOW)) == IncomingCall(
        "r", "Reset", ResetRequest("Hard")
    )


# -- size limit -------------------------------------------------------------------------------


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_size_limit_counts_utf8_bytes(as_bytes: bool) -> None:
    def message(n: int) -> str:
        return '[2,"1","DataTransfer",{"vendorId":"' + "é" * n + '"}]'

    limit = len(message(40).encode())
    for n, ok in [(40, True), (41, False)]:
        c = conn(V16, max_message_bytes=limit)
        text = message(n)
        ev = one(c.receive_text(text.encode() if as_bytes else text, NOW))
        if ok:
            assert isinstance(ev, IncomingCall)
        else:
            assert isinstance(ev, BadMessage) and ev.reason == "too_large"
            assert ev.reply == (
                f'[4,"1","FormationViolation","message of {limit + 2} bytes exceeds the limit '
                f'of {limit}",{{}}]'
            )


# -- our CALLs: one outstanding, queue, matching, timeouts ------------------------------------


def test_call_byte_exact_and_result() -> None:
    c = conn(V16)
    out = c.call("Reset", ResetRequest("Soft"), NOW, 30)
    assert out == OutgoingCall("1", '[2,"1","Reset",{"type":"Soft"}]')
    assert c.outstanding == "1" and c.deadline() == NOW + 30
    ev = one(c.receive_text('[3,"1",{"status":"Accepted"}]', NOW + 1))
    assert ev == CallResult("1", "Reset", ResetResponse("Accepted"), ResetRequest("Soft"))
    assert c.outstanding is None and c.deadline() is None


def test_one_outstanding_call_queue_in_order() -> None:
    c = conn(V201)
    a = c.call("Reset", ResetRequest("Immediate"), NOW, 30)
    b = c.call("Reset", ResetRequest("OnIdle"), NOW, 30)
    d = c.call("DataTransfer", DataTransferRequest("v"), NOW, 30)
    assert a.text is not None and b.text is None and d.text is None
    assert c.queued == 2 and c.next_outgoing() is None  # a is outstanding
    ev = one(c.receive_text(f'[3,"{a.unique_id}",{{"status":"Accepted"}}]', NOW))
    assert isinstance(ev, CallResult) and ev.unique_id == a.unique_id
    assert c.next_outgoing() == f'[2,"{b.unique_id}","Reset",{{"type":"OnIdle"}}]'
    assert c.next_outgoing() is None
    # a CALLERROR ends b; then d goes out
    ev = one(c.receive_text(f'[4,"{b.unique_id}","NotSupported","no",{{"x":1}}]', NOW))
    assert ev == CallError(
        b.unique_id, "Reset", "NotSupported", "no", {"x": 1}, ResetRequest("OnIdle")
    )
    assert c.next_outgoing() == f'[2,"{d.unique_id}","DataTransfer",{{"vendorId":"v"}}]'
    assert c.queued == 0 and c.outstanding == d.unique_id


def test_unmatched_results_do_not_end_the_call() -> None:
    c = conn(V16)
    out = c.call("Reset", ResetRequest("Soft"), NOW, 30)
    assert one(c.receive_text('[3,"zzz",{"status":"Accepted"}]', NOW)) == Unmatched("zzz", 3, False)
    assert one(c.receive_text('[4,"zzz","GenericError","oops",{}]', NOW)) == Unmatched(
        "zzz", 4, False, "GenericError", "oops"
    )
    assert c.outstanding == out.unique_id


def test_callerror_under_minus_one_ends_the_outstanding_call() -> None:
    c = conn(V201)
    out = c.call("Reset", ResetRequest("Immediate"), NOW, 30)
    ev = one(c.receive_text('[4,"-1","RpcFrameworkError","cannot read id",{}]', NOW))
    assert isinstance(ev, CallError) and ev.unique_id == out.unique_id
    assert ev.code == "RpcFrameworkError"
    # without an outstanding CALL it is unmatched
    assert isinstance(one(c.receive_text('[4,"-1","GenericError","",{}]', NOW)), Unmatched)


def test_timeout_then_late_result_is_unmatched() -> None:
    c = conn(V16)
    out = c.call("Reset", ResetRequest("Soft"), NOW, 10)
    assert c.on_timer(NOW + 9.99) == []
    assert c.on_timer(NOW + 10) == [CallTimeout(out.unique_id, "Reset", ResetRequest("Soft"), True)]
    assert c.outstanding is None and c.deadline() is None
    late = one(c.receive_text(f'[3,"{out.unique_id}",{{"status":"Accepted"}}]', NOW + 11))
    assert late == Unmatched(out.unique_id, 3, True)


def test_answer_after_deadline_times_out_first() -> None:
    c = conn(V16)
    out = c.call("Reset", ResetRequest("Soft"), NOW, 10)
    events = c.receive_text(f'[3,"{out.unique_id}",{{"status":"Accepted"}}]', NOW + 10)
    assert events == [
        CallTimeout(out.unique_id, "Reset", ResetRequest("Soft"), True),
        Unmatched(out.unique_id, 3, True),
    ]


def test_queued_calls_time_out_too_and_deadline_is_earliest() -> None:
    c = conn(V16)
    a = c.call("Reset", ResetRequest("Soft"), NOW, 100)
    b = c.call("Reset", ResetRequest("Hard"), NOW, 5)
    d = c.call("Reset", ResetRequest("Soft"), NOW, 50)
    assert c.deadline() == NOW + 5
    assert c.on_timer(NOW + 5) == [CallTimeout(b.unique_id, "Reset", ResetRequest("Hard"), False)]
    assert c.outstanding == a.unique_id and c.queued == 1 and c.deadline() == NOW + 50
    events = c.on_timer(NOW + 100)
    assert [(type(e), e.unique_id) for e in events] == [
        (CallTimeout, a.unique_id),
        (CallTimeout, d.unique_id),
    ]
    assert c.next_outgoing() is None and c.deadline() is None


def test_bad_answers_to_our_call() -> None:
    c = conn(V16)
    a = c.call("Reset", ResetRequest("Soft"), NOW, 30)
    ev = one(c.receive_text(f'[3,"{a.unique_id}"]', NOW))  # malformed, carries our id
    assert ev == InvalidResult(
        a.unique_id,
        "Reset",
        "FormationViolation",
        "a CALLRESULT has 3 elements, got 2",
        ResetRequest("Soft"),
    )
    b = c.call("Reset", ResetRequest("Soft"), NOW, 30)
    ev = one(c.receive_text(f'[3,"{b.unique_id}",{{"status":5}}]', NOW))  # payload refused
    assert isinstance(ev, InvalidResult) and ev.code == "TypeConstraintViolation"
    assert ev.error is None and c.outstanding is None
    d = c.call("Reset", ResetRequest("Soft"), NOW, 30)
    ev = one(c.receive_text(f'[4,"{d.unique_id}",5]', NOW))
    assert isinstance(ev, InvalidResult) and ev.unique_id == d.unique_id


def test_call_limits_and_misuse() -> None:
    c = conn(V16, max_queued_calls=1)
    c.call("Reset", ResetRequest("Soft"), NOW, 30)
    c.call("Reset", ResetRequest("Soft"), NOW, 30)
    with pytest.raises(CallQueueFull):
        c.call("Reset", ResetRequest("Soft"), NOW, 30)
    with pytest.raises(RpcUsageError):
        c.call("Nope", Empty(), NOW, 30)
    with pytest.raises(RpcUsageError):
        c.call("Reset", ResetRequest("Soft"), NOW, 0)
    with pytest.raises(RpcUsageError):
        c.answer("never", Empty())
    with pytest.raises(ValueError):
        RpcConnection("ocpp2.0", TinyCodec())


def test_abort_gives_up_every_call() -> None:
    c = conn(V201)
    a = c.call("Reset", ResetRequest("Immediate"), NOW, 30)
    b = c.call("Reset", ResetRequest("OnIdle"), NOW, 30)
    c.receive_text('[2,"in","Heartbeat",{}]', NOW)
    assert c.abort() == [
        CallAborted(a.unique_id, "Reset", ResetRequest("Immediate"), True),
        CallAborted(b.unique_id, "Reset", ResetRequest("OnIdle"), False),
    ]
    assert c.outstanding is None and c.queued == 0 and c.open_calls == ()


def test_incoming_and_outgoing_ids_are_separate() -> None:
    c = conn(V16)
    out = c.call("Reset", ResetRequest("Soft"), NOW, 30)
    ev = one(c.receive_text(f'[2,"{out.unique_id}","Heartbeat",{{}}]', NOW))
    assert ev == IncomingCall(out.unique_id, "Heartbeat", Empty())
    assert c.outstanding == out.unique_id


def test_ids_short_and_unique_per_connection() -> None:
    c = RpcConnection(V16, TinyCodec())
    ids = set()
    for _ in range(2000):
        out = c.call("Heartbeat", Empty(), NOW, 30)
        ids.add(out.unique_id)
        c.receive_text(f'[3,"{out.unique_id}",{{"currentTime":"t"}}]', NOW)
        c.next_outgoing()
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[0-9a-f]{4}-[0-9]+", i) and len(i) <= 9 for i in ids)
    with pytest.raises(ValueError):
        RpcConnection(V16, TinyCodec(), id_prefix="p" * 17)


# -- rpc_errors -------------------------------------------------------------------------------


def test_code_tables() -> None:
    assert errs.normalize_version("ocpp2.0.1") == V201 == "ocpp2.0.1"
    assert errs.normalize_version("1.6") == V16 == "ocpp1.6"
    assert errs.malformed_code(V16, "unknown_type", True) is None
    assert errs.malformed_code(V201, "not_json", False) == "RpcFrameworkError"
    assert errs.malformed_code(V201, "not_json", True) == "FormatViolation"
    with pytest.raises(ValueError):
        errs.malformed_code(V16, "payload", True)
    assert len(errs.CODES[V16]) == 10 and len(errs.CODES[V201]) == 12


# -- fuzz: every input gives events, never an exception; replies are valid CALLERRORs --------

_SAFE_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_SAFE_TEXT, inner, max_size=4),
    max_leaves=8,
)
_ACTION = st.sampled_from(["Heartbeat", "DataTransfer", "BootNotification", "Reset", "Nope", ""])
_FRAMEY = st.one_of(
    st.tuples(st.sampled_from([2, 3, 4, 5, 0, -1]), _SAFE_TEXT | st.integers()).map(list),
    st.tuples(st.just(2), _SAFE_TEXT, _ACTION, _JSON).map(list),
    st.tuples(st.just(3), st.sampled_from(["1", "2", "x"]), _JSON).map(list),
    st.tuples(st.just(4), st.sampled_from(["1", "-1"]), _SAFE_TEXT, _SAFE_TEXT, _JSON).map(list),
    st.lists(_JSON, max_size=6),
)


def _check(c: RpcConnection, events: list[Event]) -> None:
    assert events
    for ev in events:
        if isinstance(ev, BadMessage):
            assert (ev.code is None) == (ev.reply is None)
            if ev.reply is not None:
                reply = json.loads(ev.reply)
                assert len(reply) == 5 and reply[0] == 4 and reply[2] == ev.code
                assert isinstance(reply[1], str) and isinstance(reply[4], dict)
                assert ev.code in errs.CODES[c.version]
                assert isinstance(reply[3], str) and len(reply[3]) <= 255


def _fuzz_conn(version: str) -> RpcConnection:
    c = conn(version, max_message_bytes=512, max_open_calls=4)
    c.call("Reset", ResetRequest("Soft"), NOW, 30)  # id "1" outstanding: answers can match
    return c


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600))
def test_fuzz_bytes(version: str, data: bytes) -> None:
    c = _fuzz_conn(version)
    _check(c, c.receive_text(data, NOW))


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_fuzz_text(version: str, text: str) -> None:
    c = _fuzz_conn(version)
    _check(c, c.receive_text(text, NOW))


@pytest.mark.parametrize("version", VERSIONS)
@settings(max_examples=60, deadline=None)
@given(values=st.lists(_FRAMEY | _JSON, min_size=1, max_size=4))
def test_fuzz_json_frames(version: str, values: list[Any]) -> None:
    c = _fuzz_conn(version)
    for i, value in enumerate(values):
        _check(c, c.receive_text(msgspec.json.encode(value), NOW + i))
        c.next_outgoing()


@settings(max_examples=150, deadline=None)
@given(value=_FRAMEY | _JSON)
def test_fast_path_agrees_with_reference(value: Any) -> None:
    data = msgspec.json.encode(value)
    assert frames.parse(data, 1 << 20) == frames.from_value(value)
