"""JT/T 808 session state machine (2013 and 2019): registration, authentication, every transition
of the table, answers and serials, subpackages, timers. Sans-IO: frames from the real encoders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from gateway.adapters import jt808_session as js
from gateway.adapters.jt808_session import Jt808Session, Kind, peek_header
from gateway.adapters.session import State
from gateway.codecs import jt808 as jt
from gateway.codecs.jt808 import constants as c
from gateway.config import Jt808ListenerConfig
from gateway.registry import TERMINAL, Device, hash_auth_code
from gateway.simulator import jt_time

WALL = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)
T0 = 500.0
CFG = Jt808ListenerConfig(login_timeout_s=30, heartbeat_timeout_s=120, subpackage_timeout_s=10)
PHONE13 = "013800000001"
PHONE19 = "00000000013800000002"
CODE = "C0DE1234"
REGISTERED = Device(device_id="x", known=True, auth_code_hash=hash_auth_code(CODE))
NO_CODE = Device(device_id="x", known=True)
UNKNOWN = Device(device_id="x", known=False)
AWAY = Device(device_id="x", known=False, verified=False)


class Terminal:
    """Frames of one terminal (2013 or 2019), with its own serials."""

    def __init__(self, version: int = 2013) -> None:
        self.version = version
        self.phone = PHONE13 if version == 2013 else PHONE19
        self.serial = 100

    def frame(self, msg_id: int, body: jt.Body, **kw: Any) -> jt.Frame:
        self.serial += 1
        return jt.Frame(
            version=self.version,
            msg_id=msg_id,
            phone=kw.pop("phone", self.phone),
            serial=self.serial,
            body=body,
            protocol_version=1 if self.version == 2019 else None,
            **kw,
        )

    def register(self) -> jt.Frame:
        body = jt.Register(
            province=44,
            city=300,
            maker="SILK",
            model="T1",
            terminal_id="0000001",
            plate_color=0,
            plate="LSG00000000000001",
        )
        return self.frame(c.REGISTER, body)

    def auth(self, code: str = CODE) -> jt.Frame:
        if self.version == 2019:
            body = jt.Authenticate(auth_code=code, imei="860000000000001", software_version="1.0")
        else:
            body = jt.Authenticate(auth_code=code)
        return self.frame(c.AUTHENTICATE, body)

    def location(self, **kw: Any) -> jt.Frame:
        return self.frame(c.LOCATION, self.location_body(), **kw)

    def location_body(self) -> jt.Location:
        return jt.Location(
            alarm_flags=0,
            status_flags=3,
            latitude=1.3,
            longitude=103.8,
            altitude_m=20,
            speed_kmh=40.0,
            direction=90,
            time=jt_time(WALL),
            items=(jt.Odometer(km=1234.5),),
        )

    def batch(self, n: int) -> jt.Frame:
        body = jt.BatchLocation(batch_type=1, items=tuple(self.location_body() for _ in range(n)))
        return self.frame(c.BATCH_LOCATION, body)

    def simple(self, msg_id: int) -> jt.Frame:
        bodies: dict[int, jt.Body] = {
            c.HEARTBEAT: jt.Heartbeat(),
            c.LOGOUT: jt.Logout(),
            c.QUERY_SERVER_TIME: jt.QueryServerTime(),
        }
        body = bodies[msg_id]
        return self.frame(msg_id, body)


def terminal_ack() -> jt.TerminalGeneralResponse:
    return jt.TerminalGeneralResponse(reply_serial=1, reply_msg_id=0x8103, result=0)


def session(cfg: Jt808ListenerConfig = CFG) -> Jt808Session:
    return Jt808Session(cfg, peer="10.0.0.9:7000", now=T0, auth_codes=lambda: CODE)


def feed(
    sess: Jt808Session, frame: jt.Frame, device: Device | None = None, now: float = T0 + 1
) -> Any:
    # every message goes through the wire and back, as on a connection
    frame = jt.decode_frame(jt.encode_frame(frame))
    if device is None and sess.lookup(frame) is not None:
        device = REGISTERED
    return sess.receive(frame, now, WALL, device)


def answer(out: Any) -> jt.Frame:
    assert out.reply is not None
    return jt.decode_frame(out.reply)


def general(out: Any, to: jt.Frame) -> int:
    """The result of a 0x8001 answer, after checking it echoes ``to``."""
    resp = answer(out)
    assert resp.msg_id == c.PLATFORM_GENERAL_RESPONSE and resp.phone == to.phone
    assert resp.version == to.version and resp.protocol_version == to.protocol_version
    assert isinstance(resp.body, jt.PlatformGeneralResponse)
    assert (resp.body.reply_serial, resp.body.reply_msg_id) == (to.serial, to.msg_id)
    return resp.body.result


def authed(term: Terminal) -> Jt808Session:
    sess = session()
    out = feed(sess, term.auth(), REGISTERED)
    assert sess.state is State.AUTHENTICATED and out.claim == term.phone
    return sess


@pytest.fixture(params=[2013, 2019])
def term(request: pytest.FixtureRequest) -> Terminal:
    return Terminal(request.param)


# ------------------------------------------------------------------------------ the table


def test_table_covers_every_state_and_kind() -> None:
    for state in (State.CONNECTED, State.AUTHENTICATED):
        for kind in Kind:
            assert (state, kind) in js._TABLE, (state, kind)


# ------------------------------------------------------------------------------ register


def test_register_issues_a_code_to_store(term: Terminal) -> None:
    sess = session()
    frame = term.register()
    assert sess.lookup(frame) == (TERMINAL, term.phone)
    out = feed(sess, frame, NO_CODE)
    resp = answer(out)
    assert resp.msg_id == c.REGISTER_RESPONSE and resp.version == term.version
    assert resp.body == jt.RegisterResponse(reply_serial=frame.serial, result=0, auth_code=CODE)
    reg = out.register
    assert reg is not None and (reg.phone, reg.auth_code, reg.auto) == (term.phone, CODE, False)
    assert (reg.maker, reg.plate_color, reg.plate) == ("SILK", 0, "LSG00000000000001")
    assert out.store and out.annotate is None and sess.state is State.CONNECTED


def test_register_unknown_terminal_accepted(term: Terminal) -> None:
    out = feed(session(), term.register(), UNKNOWN)
    assert out.register is not None and out.register.auto
    assert out.annotate == {"registered": False}


def test_register_unknown_terminal_rejected(term: Terminal) -> None:
    sess = session(Jt808ListenerConfig(unknown_devices="reject"))
    frame = term.register()
    out = feed(sess, frame, UNKNOWN)
    resp = answer(out)
    assert resp.body == jt.RegisterResponse(
        reply_serial=frame.serial, result=c.REGISTER_TERMINAL_UNKNOWN
    )
    assert not out.store and out.register is None
    assert out.events[0].event == "register_rejected"


def test_register_when_authenticated_drops_the_session(term: Terminal) -> None:
    sess = authed(term)
    out = feed(sess, term.register(), REGISTERED, now=T0 + 5)
    assert out.register is not None and out.release == term.phone
    assert sess.state is State.CONNECTED and sess.deadline() == T0 + 5 + CFG.login_timeout_s


# ------------------------------------------------------------------------------ auth


def test_auth_with_the_stored_code(term: Terminal) -> None:
    sess = session()
    frame = term.auth()
    assert sess.lookup(frame) == (TERMINAL, term.phone)
    out = feed(sess, frame, REGISTERED)
    assert general(out, frame) == c.RESULT_OK
    assert sess.state is State.AUTHENTICATED and sess.device_id == term.phone
    assert out.store and out.claim == term.phone and out.authenticated == term.phone
    assert sess.version == term.version and out.annotate is None


def test_auth_with_a_wrong_code_fails(term: Terminal) -> None:
    sess = session()
    frame = term.auth("WRONG")
    out = feed(sess, frame, REGISTERED)
    assert general(out, frame) == c.RESULT_FAIL
    assert not out.store and out.claim is None and sess.state is State.CONNECTED
    assert (
        out.events[0].event == "auth_failed" and out.events[0].detail["reason"] == "bad_auth_code"
    )


def test_auth_failure_when_authenticated_drops_the_session(term: Terminal) -> None:
    sess = authed(term)
    out = feed(sess, term.auth("WRONG"), REGISTERED)
    assert out.release == term.phone and sess.state is State.CONNECTED


@pytest.mark.parametrize(
    ("device", "policy", "ok", "annotate"),
    [
        (UNKNOWN, "accept", True, {"registered": False}),
        (UNKNOWN, "reject", False, None),
        (NO_CODE, "accept", True, {"auth_code": False}),
        (NO_CODE, "reject", False, None),
        (AWAY, "reject", True, {"verified": False}),
    ],
)
def test_auth_policy(
    term: Terminal, device: Device, policy: Any, ok: bool, annotate: dict[str, Any] | None
) -> None:
    sess = session(Jt808ListenerConfig(unknown_devices=policy))
    frame = term.auth("ANY")
    out = feed(sess, frame, device)
    assert general(out, frame) == (c.RESULT_OK if ok else c.RESULT_FAIL)
    assert (sess.state is State.AUTHENTICATED) == ok and out.annotate == annotate
    if ok:
        assert out.authenticated == (term.phone if device.known else None)


# ------------------------------------------------------------------------------ before auth


@pytest.mark.parametrize("what", ["location", "batch", "heartbeat", "logout", "unknown"])
def test_messages_before_authentication_are_refused(term: Terminal, what: str) -> None:
    makers: dict[str, Callable[[], jt.Frame]] = {
        "location": term.location,
        "batch": lambda: term.batch(2),
        "heartbeat": lambda: term.simple(c.HEARTBEAT),
        "logout": lambda: term.simple(c.LOGOUT),
        "unknown": lambda: term.frame(0x0F00, jt.RawBody(data=b"\x01")),
    }
    frame = makers[what]()
    sess = session()
    out = feed(sess, frame)
    assert general(out, frame) == c.RESULT_FAIL and not out.store and not out.deliver
    assert sess.state is State.CONNECTED


@pytest.mark.parametrize("state", ["connected", "authenticated"])
def test_server_time_query(term: Terminal, state: str) -> None:
    sess = session() if state == "connected" else authed(term)
    out = feed(sess, term.simple(c.QUERY_SERVER_TIME))
    resp = answer(out)
    assert resp.msg_id == c.SERVER_TIME and isinstance(resp.body, jt.ServerTime)
    assert resp.body.time.utc == WALL


def test_reply_before_authentication_is_only_archived(term: Terminal) -> None:
    frame = term.frame(c.TERMINAL_GENERAL_RESPONSE, terminal_ack())
    out = feed(session(), frame)
    assert out.reply is None and not out.store and not out.deliver


# ------------------------------------------------------------------------------ authenticated


@pytest.mark.parametrize("what", ["location", "batch", "heartbeat"])
def test_reports_are_stored_and_acknowledged(term: Terminal, what: str) -> None:
    sess = authed(term)
    makers: dict[str, Callable[[], jt.Frame]] = {
        "location": term.location,
        "batch": lambda: term.batch(3),
        "heartbeat": lambda: term.simple(c.HEARTBEAT),
    }
    frame = makers[what]()
    out = feed(sess, frame)
    assert out.store and general(out, frame) == c.RESULT_OK and not out.deliver


def test_answers_count_the_platform_serial(term: Terminal) -> None:
    sess = authed(term)  # the auth answer was serial 0
    serials = [answer(feed(sess, term.location())).serial for _ in range(3)]
    assert serials == [1, 2, 3]
    sess._serial = 0xFFFF
    assert answer(feed(sess, term.location())).serial == 0xFFFF
    assert answer(feed(sess, term.location())).serial == 0


def test_report_of_another_phone_is_refused(term: Terminal) -> None:
    sess = authed(term)
    frame = term.location(phone="0" * (len(term.phone) - 1) + "9")
    out = feed(sess, frame)
    assert general(out, frame) == c.RESULT_FAIL and not out.store


def test_logout_ends_the_session(term: Terminal) -> None:
    sess = authed(term)
    frame = term.simple(c.LOGOUT)
    out = feed(sess, frame, now=T0 + 7)
    assert general(out, frame) == c.RESULT_OK and out.store and out.release == term.phone
    assert sess.state is State.CONNECTED and sess.deadline() == T0 + 7 + CFG.login_timeout_s
    assert sess.closed("peer_closed", WALL) == ()


def test_terminal_replies_are_delivered_unanswered(term: Terminal) -> None:
    sess = authed(term)
    frame = term.frame(c.TERMINAL_GENERAL_RESPONSE, terminal_ack())
    out = feed(sess, frame)
    assert out.deliver and out.store and out.reply is None
    query_answer = term.frame(0x0104, jt.RawBody(data=b"\x00\x01\x00"))
    assert feed(sess, query_answer).deliver


def test_other_messages_are_delivered_and_answered(term: Terminal) -> None:
    sess = authed(term)
    unknown = term.frame(0x0F00, jt.RawBody(data=b"\x01"))
    out = feed(sess, unknown)
    assert out.deliver and general(out, unknown) == c.RESULT_UNSUPPORTED
    resend = term.frame(0x0005, jt.TerminalResendRequest(original_serial=1, packet_ids=(2,)))
    out = feed(sess, resend)
    assert out.deliver and general(out, resend) == c.RESULT_OK


def test_encrypted_report_is_unsupported(term: Terminal) -> None:
    sess = authed(term)
    frame = term.frame(c.LOCATION, jt.RawBody(data=b"\x00" * 28), encryption=1)
    out = feed(sess, frame)
    assert general(out, frame) == c.RESULT_UNSUPPORTED and not out.store


def test_command_to_the_terminal_uses_its_version_and_next_serial(term: Terminal) -> None:
    sess = session()
    with pytest.raises(RuntimeError):
        sess.command(0x8F01, jt.RawBody(data=b"\x01hi"))
    feed(sess, term.auth(), REGISTERED)
    cmd = jt.decode_frame(sess.command(0x8F01, jt.RawBody(data=b"\x01hi")))
    assert (cmd.msg_id, cmd.phone, cmd.version, cmd.serial) == (0x8F01, term.phone, term.version, 1)


# ------------------------------------------------------------------------------ undecodable


def test_undecodable_frame_is_answered_bad_message(term: Terminal) -> None:
    frame = term.location()
    raw = jt.encode_frame(msgspec.structs.replace(frame, body=jt.RawBody(data=b"\x00" * 5)))
    with pytest.raises(ValueError):
        jt.decode_frame(raw)  # a 0x0200 body of 5 bytes
    header = (term.version, c.LOCATION, term.phone, frame.serial, frame.protocol_version)
    assert peek_header(raw) == header
    sess = session()
    out = sess.undecodable(raw, T0 + 1)
    assert out.bad and not out.store and general(out, frame) == c.RESULT_BAD_MESSAGE


def test_unreadable_header_is_not_answered() -> None:
    out = session().undecodable(b"\x7e\x02\x00\x7e", T0 + 1)
    assert out.bad and out.reply is None
    assert peek_header(b"\x7e\x7d\x05\x7e") is None


# ------------------------------------------------------------------------------ subpackages


def packets(term: Terminal, n: int = 60) -> tuple[jt.Frame, list[jt.Frame]]:
    whole = term.batch(n)
    parts = jt.split_frame(whole, 500)
    term.serial += len(parts)
    return whole, [jt.decode_frame(jt.encode_frame(p)) for p in parts]


def test_subpackages_are_acknowledged_and_reassembled(term: Terminal) -> None:
    sess = authed(term)
    whole, parts = packets(term)
    assert len(parts) >= 3
    for part in parts[:-1]:
        out = sess.receive(part, T0 + 2, WALL)
        assert general(out, part) == c.RESULT_OK and out.reassembled is None
    out = sess.receive(parts[-1], T0 + 2, WALL)
    assert general(out, parts[-1]) == c.RESULT_OK
    assert out.reassembled is not None and out.reassembled.body == whole.body


def test_subpackages_before_authentication_are_refused(term: Terminal) -> None:
    _, parts = packets(term)
    out = session().receive(parts[0], T0 + 2, WALL)
    assert general(out, parts[0]) == c.RESULT_FAIL and not out.store


def test_reassembled_body_that_does_not_decode_is_a_dead_letter(term: Terminal) -> None:
    sess = authed(term)
    frame = term.frame(c.LOCATION, jt.RawBody(data=b"\x00" * 10))
    parts = [jt.decode_frame(jt.encode_frame(p)) for p in jt.split_frame(frame, 4)]
    for part in parts[:-1]:
        sess.receive(part, T0 + 2, WALL)
    out = sess.receive(parts[-1], T0 + 2, WALL)
    assert out.bad and out.dead is not None and out.dead.raw == b"\x00" * 10
    assert general(out, parts[-1]) == c.RESULT_BAD_MESSAGE


def test_incomplete_set_is_rerequested_once_then_dropped(term: Terminal) -> None:
    sess = authed(term)
    _, parts = packets(term)
    sess.receive(parts[0], T0 + 2, WALL)
    sess.receive(parts[2], T0 + 2, WALL)
    assert sess.deadline() == T0 + 3  # polled every second while a set is open
    assert sess.on_timer(T0 + 3, WALL).send == ()
    out = sess.on_timer(T0 + 12, WALL)
    (req,) = [jt.decode_frame(f) for f in out.send]
    assert req.msg_id == c.PLATFORM_RESEND_REQUEST and req.version == term.version
    missing = tuple(i for i in range(1, len(parts) + 1) if i not in (1, 3))
    assert req.body == jt.PlatformResendRequest(original_serial=parts[0].serial, packet_ids=missing)
    assert sess.on_timer(T0 + 23, WALL).send == () and len(sess.reassembler) == 0
    assert sess.deadline() == sess.timers.deadline()


# ------------------------------------------------------------------------------ timers


def test_login_timeout() -> None:
    sess = session()
    assert sess.on_timer(T0 + 29.9, WALL).close is None
    assert sess.on_timer(T0 + 30, WALL).close == "login_timeout"


def test_heartbeat_timeout(term: Terminal) -> None:
    sess = authed(term)
    feed(sess, term.simple(c.HEARTBEAT), now=T0 + 60)
    assert sess.deadline() == T0 + 60 + CFG.heartbeat_timeout_s
    assert sess.on_timer(T0 + 180, WALL).close == "heartbeat_timeout"


def test_closed_records_a_disconnect(term: Terminal) -> None:
    sess = authed(term)
    (ev,) = sess.closed("idle_timeout", WALL)
    assert (ev.event, ev.device_id, ev.detail["reason"]) == (
        "disconnect",
        term.phone,
        "idle_timeout",
    )
    assert sess.state is State.CLOSED and sess.deadline() is None
    assert session().closed("login_timeout", WALL) == ()
