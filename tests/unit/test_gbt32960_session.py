"""GB/T 32960 session state machine: every transition of the table, responses per variant,
timers, and the end of a session. Sans-IO: frames from the real encoders, no sockets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from gateway.adapters import gbt32960_session as gs
from gateway.adapters.gbt32960_session import Gbt32960Session, Inbound, Kind, inbound
from gateway.adapters.session import State
from gateway.codecs import gbt32960 as gbt
from gateway.codecs.common import DeviceTime
from gateway.codecs.gbt32960 import constants as c
from gateway.config import Gbt32960ListenerConfig
from gateway.registry import VEHICLE, Device
from gateway.simulator import Fleet, gbt_time

WALL = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)
T0 = 1000.0
CFG = Gbt32960ListenerConfig(login_timeout_s=30, heartbeat_timeout_s=120)
KNOWN = Device(device_id="x", known=True)
UNKNOWN = Device(device_id="x", known=False)
AWAY = Device(device_id="x", known=False, verified=False)


class Rig:
    """A fleet of two trucks (2016 and 2025) and the frames they send."""

    def __init__(self) -> None:
        self.fleet = Fleet(2, gbt_only=True, start=datetime(2026, 3, 1, tzinfo=UTC))
        self.t16, self.t25 = self.fleet.trucks

    def frame(self, truck: Any, command: int, body: gbt.Body, response: int = 0xFE) -> bytes:
        return gbt.encode_frame(
            gbt.Frame(
                version=truck.version,
                command=command,
                response=response,
                vin=truck.vin,
                encryption=1,
                body=body,
            )
        )

    def login(self, truck: Any) -> bytes:
        return next(f for f in self.fleet.logins() if f[4:21].decode() == truck.vin)

    def report(self, truck: Any, reissue: bool = False) -> bytes:
        return self.fleet.report(truck, reissue=reissue)

    def logout(self, truck: Any) -> bytes:
        body = gbt.VehicleLogout(time=gbt_time(self.fleet.now), serial=1)
        return self.frame(truck, c.CMD_VEHICLE_LOGOUT, body)

    def empty(self, truck: Any, command: int) -> bytes:
        return self.frame(truck, command, gbt.Empty())

    def platform_login(self, user: str = "reg1", password: str = "pw-1") -> bytes:
        body = gbt.PlatformLogin(
            time=gbt_time(self.fleet.now),
            serial=1,
            username=user,
            password=password,
            encryption_rule=1,
        )
        return self.frame(self.t16, c.CMD_PLATFORM_LOGIN, body)

    def platform_logout(self) -> bytes:
        body = gbt.PlatformLogout(time=gbt_time(self.fleet.now), serial=1)
        return self.frame(self.t16, c.CMD_PLATFORM_LOGOUT, body)

    def reply(self, truck: Any) -> bytes:
        """A terminal's answer to a parameter query (response flag 0x01)."""
        body = gbt.ParamValues(time=gbt_time(self.fleet.now), params=[])
        return self.frame(truck, c.CMD_PARAM_QUERY, body, response=c.RESP_SUCCESS)

    def other(self, truck: Any) -> bytes:
        """A platform-exchange custom command (0xC0): not a session command."""
        return self.frame(truck, 0xC0, gbt.RawBody(data=b"\x01\x02"))


@pytest.fixture
def rig() -> Rig:
    return Rig()


def session(cfg: Gbt32960ListenerConfig = CFG, **kw: Any) -> Gbt32960Session:
    return Gbt32960Session(cfg, peer="10.0.0.1:5000", now=T0, platforms={"reg1": "pw-1"}, **kw)


def feed(
    sess: Gbt32960Session, raw: bytes, device: Device | None = None, now: float = T0 + 1
) -> Any:
    msg = inbound(raw)
    if device is None and sess.lookup(msg) is not None:
        device = KNOWN
    return sess.receive(msg, now, WALL, device)


def reply_of(out: Any) -> gbt.Frame:
    assert out.reply is not None
    return gbt.decode_frame(out.reply)


def logged_in(rig: Rig, truck: Any = None) -> Gbt32960Session:
    sess = session()
    feed(sess, rig.login(truck or rig.t16), KNOWN)
    assert sess.state is State.VEHICLE
    return sess


def platform(rig: Rig) -> Gbt32960Session:
    sess = session()
    out = feed(sess, rig.platform_login())
    assert sess.state is State.PLATFORM and out.claim == "platform:reg1"
    return sess


# ------------------------------------------------------------------------------ the table


def test_table_covers_every_state_and_kind() -> None:
    for state in (State.CONNECTED, State.VEHICLE, State.PLATFORM):
        for kind in Kind:
            assert (state, kind) in gs._TABLE, (state, kind)


def test_inbound_reads_the_header_and_session_bodies(rig: Rig) -> None:
    msg = inbound(rig.login(rig.t25))
    assert (msg.version, msg.command, msg.response, msg.vin) == (2025, 1, 0xFE, rig.t25.vin)
    assert isinstance(msg.body, gbt.VehicleLogin2025)
    report = inbound(rig.report(rig.t16))
    assert report.body is None and report.data[:6] == gbt_time(rig.fleet.now).raw


# ------------------------------------------------------------------------------ CONNECTED


def test_login_of_a_known_vehicle(rig: Rig) -> None:
    sess = session()
    raw = rig.login(rig.t16)
    assert sess.lookup(inbound(raw)) == (VEHICLE, rig.t16.vin)
    out = feed(sess, raw, KNOWN)
    assert sess.state is State.VEHICLE and sess.device_id == rig.t16.vin
    assert out.store and out.claim == rig.t16.vin and out.release is None and out.annotate is None
    resp = reply_of(out)
    assert (resp.command, resp.response, resp.vin, resp.version) == (1, 1, rig.t16.vin, 2016)
    assert isinstance(resp.body, gbt.TimeOnly)
    assert resp.body.time.raw == inbound(raw).data[:6]  # the request's own time (GB-03r)
    assert sess.deadline() == T0 + 1 + CFG.heartbeat_timeout_s


def test_login_2025_is_answered_in_2025(rig: Rig) -> None:
    sess = session()
    out = feed(sess, rig.login(rig.t25), KNOWN)
    assert out.reply is not None and out.reply[:2] == b"$$"
    assert reply_of(out).version == 2025 and sess.version == 2025


def test_unknown_vin_accepted_and_flagged(rig: Rig) -> None:
    sess = session()
    out = feed(sess, rig.login(rig.t16), UNKNOWN)
    assert sess.state is State.VEHICLE and out.annotate == {"registered": False}
    assert sess.flags == {"registered": False} and reply_of(out).response == c.RESP_SUCCESS


def test_unknown_vin_rejected(rig: Rig) -> None:
    sess = session(CFG.__class__(unknown_devices="reject"))
    out = feed(sess, rig.login(rig.t16), UNKNOWN)
    assert sess.state is State.CONNECTED and not out.store and out.claim is None
    assert reply_of(out).response == c.RESP_VIN_UNKNOWN
    (ev,) = out.events
    assert (ev.event, ev.device_id, ev.detail["reason"]) == (
        "login_rejected",
        rig.t16.vin,
        "unknown_vin",
    )


def test_registry_away_lets_the_vehicle_in_flagged(rig: Rig) -> None:
    sess = session(CFG.__class__(unknown_devices="reject"))
    out = feed(sess, rig.login(rig.t16), AWAY)
    assert sess.state is State.VEHICLE and out.annotate == {"verified": False}


@pytest.mark.parametrize("ack_realtime", [True, False])
def test_report_before_login_is_refused(rig: Rig, ack_realtime: bool) -> None:
    sess = session(CFG.__class__(ack_realtime=ack_realtime))
    out = feed(sess, rig.report(rig.t16))
    assert not out.store and sess.state is State.CONNECTED
    if ack_realtime:
        assert reply_of(out).response == c.RESP_ERROR
    else:
        assert out.reply is None


@pytest.mark.parametrize("what", ["logout", "heartbeat", "platform_logout", "reissue"])
def test_other_commands_before_login_are_refused(rig: Rig, what: str) -> None:
    raw = {
        "logout": rig.logout(rig.t16),
        "heartbeat": rig.empty(rig.t16, c.CMD_HEARTBEAT),
        "platform_logout": rig.platform_logout(),
        "reissue": rig.report(rig.t16, reissue=True),
    }[what]
    sess = session()
    out = feed(sess, raw)
    assert not out.store and reply_of(out).response == c.RESP_ERROR
    assert sess.state is State.CONNECTED and out.release is None


def test_heartbeat_answer_is_empty(rig: Rig) -> None:
    sess = logged_in(rig)
    out = feed(sess, rig.empty(rig.t16, c.CMD_HEARTBEAT))
    resp = reply_of(out)
    assert resp.response == c.RESP_SUCCESS and isinstance(resp.body, gbt.Empty)


@pytest.mark.parametrize("state", ["connected", "vehicle", "platform"])
def test_time_sync_answers_the_platform_time(rig: Rig, state: str) -> None:
    makers: dict[str, Callable[[], Gbt32960Session]] = {
        "connected": session,
        "vehicle": lambda: logged_in(rig),
        "platform": lambda: platform(rig),
    }
    sess = makers[state]()
    out = feed(sess, rig.empty(rig.t16, c.CMD_TIME_SYNC))
    resp = reply_of(out)
    assert resp.command == c.CMD_TIME_SYNC and resp.response == c.RESP_SUCCESS
    assert isinstance(resp.body, gbt.TimeOnly) and resp.body.time.utc == WALL


def test_replies_and_other_commands_before_login_are_only_archived(rig: Rig) -> None:
    sess = session()
    for raw in (rig.reply(rig.t16), rig.other(rig.t16)):
        out = feed(sess, raw)
        assert not out.store and out.reply is None and not out.deliver


@pytest.mark.parametrize(("version", "flag"), [(2016, c.RESP_ERROR), (2025, 0x06)])
def test_undecodable_frame_is_bad_and_answered(rig: Rig, version: int, flag: int) -> None:
    truck = rig.t16 if version == 2016 else rig.t25
    sess = session()
    out = sess.receive(inbound(rig.report(truck), decodable=False), T0 + 1, WALL)
    assert out.bad and not out.store and reply_of(out).response == flag


def test_undecodable_unknown_command_is_not_answered(rig: Rig) -> None:
    out = session().receive(inbound(rig.other(rig.t16), decodable=False), T0 + 1, WALL)
    assert out.bad and out.reply is None


# ------------------------------------------------------------------------------ VEHICLE


@pytest.mark.parametrize("reissue", [False, True])
def test_reports_of_the_logged_in_vehicle(rig: Rig, reissue: bool) -> None:
    sess = logged_in(rig)
    raw = rig.report(rig.t16, reissue=reissue)
    out = feed(sess, raw)
    assert out.store and not out.bad
    resp = reply_of(out)
    assert resp.command == (3 if reissue else 2) and resp.response == c.RESP_SUCCESS
    assert isinstance(resp.body, gbt.TimeOnly) and resp.body.time.raw == inbound(raw).data[:6]


@pytest.mark.parametrize(("ack_realtime", "ack_reissue"), [(False, True), (True, False)])
def test_report_acknowledgement_is_configurable(
    rig: Rig, ack_realtime: bool, ack_reissue: bool
) -> None:
    sess = session(CFG.__class__(ack_realtime=ack_realtime, ack_reissue=ack_reissue))
    feed(sess, rig.login(rig.t16), KNOWN)
    realtime = feed(sess, rig.report(rig.t16))
    reissue = feed(sess, rig.report(rig.t16, reissue=True))
    assert realtime.store and reissue.store
    assert (realtime.reply is not None, reissue.reply is not None) == (ack_realtime, ack_reissue)


def test_report_of_another_vin_is_refused(rig: Rig) -> None:
    sess = logged_in(rig)
    out = feed(sess, rig.report(rig.t25))
    assert not out.store and reply_of(out).response == c.RESP_ERROR
    assert sess.device_id == rig.t16.vin


def test_logout_ends_the_session_and_restarts_the_login_clock(rig: Rig) -> None:
    sess = logged_in(rig)
    out = feed(sess, rig.logout(rig.t16), now=T0 + 50)
    assert sess.state is State.CONNECTED and sess.device_id is None
    assert out.store and out.release == rig.t16.vin and reply_of(out).response == 1
    assert sess.deadline() == T0 + 50 + CFG.login_timeout_s
    assert sess.closed("peer_closed", WALL) == ()  # logged out: no disconnect event


def test_logout_of_another_vin_is_refused(rig: Rig) -> None:
    sess = logged_in(rig)
    out = feed(sess, rig.logout(rig.t25))
    assert sess.state is State.VEHICLE and not out.store and out.release is None


def test_relogin_same_and_other_vin(rig: Rig) -> None:
    sess = logged_in(rig)
    again = feed(sess, rig.login(rig.t16), KNOWN)
    assert again.claim == rig.t16.vin and again.release is None
    other = feed(sess, rig.login(rig.t25), KNOWN)
    assert other.claim == rig.t25.vin and other.release == rig.t16.vin
    assert sess.device_id == rig.t25.vin and sess.version == 2025


def test_unknown_vin_relogin_rejected_keeps_the_session(rig: Rig) -> None:
    sess = session(CFG.__class__(unknown_devices="reject"))
    feed(sess, rig.login(rig.t16), KNOWN)
    out = feed(sess, rig.login(rig.t25), UNKNOWN)
    assert out.reply is not None and reply_of(out).response == c.RESP_VIN_UNKNOWN
    assert sess.device_id == rig.t16.vin


@pytest.mark.parametrize("what", ["platform_login", "platform_logout"])
def test_platform_commands_on_a_vehicle_session_are_refused(rig: Rig, what: str) -> None:
    sess = logged_in(rig)
    raw = rig.platform_login() if what == "platform_login" else rig.platform_logout()
    out = feed(sess, raw)
    assert not out.store and reply_of(out).response == c.RESP_ERROR
    assert sess.state is State.VEHICLE


def test_replies_and_other_commands_are_delivered(rig: Rig) -> None:
    sess = logged_in(rig)
    for raw in (rig.reply(rig.t16), rig.other(rig.t16)):
        out = feed(sess, raw)
        assert out.deliver and out.store and out.reply is None


# ------------------------------------------------------------------------------ PLATFORM


def test_platform_login_bad_credentials(rig: Rig) -> None:
    for raw in (rig.platform_login(password="wrong"), rig.platform_login(user="nobody")):
        sess = session()
        out = feed(sess, raw)
        assert sess.state is State.CONNECTED and not out.store and out.claim is None
        assert reply_of(out).response == c.RESP_ERROR
        assert out.events[0].event == "platform_login_rejected"
        assert "password" not in out.events[0].detail


def test_platform_relays_frames_of_many_vins(rig: Rig) -> None:
    sess = platform(rig)
    for raw in (
        rig.login(rig.t16),
        rig.report(rig.t16),
        rig.report(rig.t25),
        rig.report(rig.t25, reissue=True),
        rig.logout(rig.t25),
    ):
        msg = inbound(raw)
        assert sess.lookup(msg) is None  # relayed logins: no registry check
        out = sess.receive(msg, T0 + 2, WALL)
        assert out.store and out.claim is None and out.release is None
        assert reply_of(out).vin == msg.vin and reply_of(out).response == c.RESP_SUCCESS
    assert sess.state is State.PLATFORM and sess.device_id == "platform:reg1"


def test_platform_heartbeat_replies_and_relogin(rig: Rig) -> None:
    sess = platform(rig)
    assert reply_of(feed(sess, rig.empty(rig.t16, c.CMD_HEARTBEAT))).response == 1
    assert feed(sess, rig.reply(rig.t16)).deliver
    assert feed(sess, rig.other(rig.t16)).deliver
    again = feed(sess, rig.platform_login())
    assert again.claim == "platform:reg1" and again.release is None


def test_platform_logout(rig: Rig) -> None:
    sess = platform(rig)
    out = feed(sess, rig.platform_logout(), now=T0 + 9)
    assert sess.state is State.CONNECTED and out.release == "platform:reg1"
    assert reply_of(out).response == c.RESP_SUCCESS
    assert sess.deadline() == T0 + 9 + CFG.login_timeout_s


# ------------------------------------------------------------------------------ variants


def test_echo_response_with_platform_time(rig: Rig) -> None:
    cfg = Gbt32960ListenerConfig(response_body="echo", response_time="platform")
    sess = session(cfg)
    raw = rig.login(rig.t16)
    resp = reply_of(feed(sess, raw, KNOWN))
    assert isinstance(resp.body, gbt.VehicleLogin)  # the login body echoed ...
    assert resp.body.time.utc == WALL  # ... with the platform's time
    sent = inbound(raw).body
    assert isinstance(sent, gbt.VehicleLogin)
    assert msgspec.structs.replace(resp.body, time=sent.time) == sent


def test_time_only_response_with_platform_time(rig: Rig) -> None:
    sess = session(Gbt32960ListenerConfig(response_time="platform"))
    resp = reply_of(feed(sess, rig.login(rig.t16), KNOWN))
    assert isinstance(resp.body, gbt.TimeOnly) and resp.body.time.utc == WALL


# ------------------------------------------------------------------------------ timers


def test_login_timeout() -> None:
    sess = session()
    assert sess.deadline() == T0 + CFG.login_timeout_s
    assert sess.on_timer(T0 + 29, WALL).close is None
    assert sess.on_timer(T0 + 30, WALL).close == "login_timeout"


def test_heartbeat_timeout_and_frames_push_it_back(rig: Rig) -> None:
    sess = logged_in(rig)
    feed(sess, rig.empty(rig.t16, c.CMD_HEARTBEAT), now=T0 + 100)
    assert sess.deadline() == T0 + 100 + CFG.heartbeat_timeout_s
    assert sess.on_timer(T0 + 219, WALL).close is None
    assert sess.on_timer(T0 + 220, WALL).close == "heartbeat_timeout"


def test_heartbeat_timeout_disabled(rig: Rig) -> None:
    sess = session(Gbt32960ListenerConfig(heartbeat_timeout_s=0))
    feed(sess, rig.login(rig.t16), KNOWN)
    assert sess.deadline() is None and sess.on_timer(T0 + 1e6, WALL).close is None


def test_closed_records_a_disconnect_once(rig: Rig) -> None:
    sess = logged_in(rig)
    (ev,) = sess.closed("displaced", WALL, by="10.0.0.2:6000")
    assert (ev.event, ev.device_id, ev.time) == ("disconnect", rig.t16.vin, WALL)
    assert ev.detail == {"reason": "displaced", "peer": "10.0.0.1:5000", "by": "10.0.0.2:6000"}
    assert sess.state is State.CLOSED and sess.deadline() is None
    assert sess.closed("again", WALL) == ()
    assert not feed(sess, rig.report(rig.t16)).store  # a closed session takes nothing


def test_closed_before_login_records_nothing() -> None:
    assert session().closed("login_timeout", WALL) == ()


def test_inbound_is_a_struct() -> None:
    assert issubclass(Inbound, msgspec.Struct)


@pytest.mark.parametrize("version", [2016, 2025])
@pytest.mark.parametrize("vin", ["LSVAU2180N2183294", "LSV短VIN", ""])
@pytest.mark.parametrize("flag", [c.RESP_SUCCESS, c.RESP_ERROR])
def test_time_response_equals_the_encoded_frame(version: int, vin: str, flag: int) -> None:
    """The bytes-built answer is exactly ``encode_frame`` of a TimeOnly response."""
    time = bytes((26, 3, 1, 12, 0, 5))
    msg = Inbound(
        version=version,
        command=c.CMD_REALTIME,
        response=c.RESP_COMMAND,
        vin=vin,
        encryption=c.ENC_NONE,
        data=time + b"\x01\x02",
        body=None,
        decodable=True,
    )
    expected = gbt.encode_frame(
        gbt.Frame(
            version=version,
            command=c.CMD_REALTIME,
            response=flag,
            vin=vin,
            encryption=c.ENC_NONE,
            body=gbt.TimeOnly(time=DeviceTime(raw=time, utc=None)),
        )
    )
    assert gs.time_response(msg, flag, time) == expected
