"""GB/T 32960.3 session state machine (sans-IO): vehicle and platform logins, what to answer.

A table maps (state, kind of message) to a handler. States: ``CONNECTED`` (not logged in),
``VEHICLE`` (0x01 accepted: frames of that VIN) and ``PLATFORM`` (0x05 accepted: an upstream
platform relaying frames of many VINs). The connection feeds it :class:`Inbound` messages (the
header of each verified frame; the body is decoded only for the session commands) with the
clock values, and the registry's answer when :meth:`Gbt32960Session.lookup` asks for one.

Responses follow the field practice in ``shared/protocols/gbt32960.md`` section 1.3, where
the sources disagree, so the variants are configuration (``[listeners.gbt32960]``):

* a response copies the command and the VIN and sets the response flag (0x01 success);
* its data unit is normally the 6-byte time only: the terryhart fixture answers a realtime frame
  (vector GB-03) with the request's own time (GB-03r), ``response_time = "request"``; a platform
  clock answer is ``response_time = "platform"``;
* EMQX echoes the whole login body with a new time instead: ``response_body = "echo"`` with
  ``response_time = "platform"`` (the echo carries the time ``response_time`` picks);
* EMQX does not acknowledge realtime reports while terryhart does: ``ack_realtime`` and
  ``ack_reissue``;
* a heartbeat response has an empty data unit; a time-sync (0x08) response carries the
  platform's current time;
* refusals use flag 0x02 (error), an unknown VIN 0x04 (listed by rtm_con for both editions;
  its 2016 status is uncertain), an undecodable 2025 frame 0x06 (structure invalid).

Frames of a session that is not logged in are answered with 0x02 and only archived raw (not
normalized into the store): the terminal keeps them and reissues after its login.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Final

import msgspec

from gateway.adapters.session import (
    Lookup,
    Outcome,
    SessionTimers,
    State,
    event,
)
from gateway.codecs import gbt32960 as gbt
from gateway.codecs.common import DeviceTime, utc_to_gmt8_fields
from gateway.codecs.gbt32960 import constants as c
from gateway.config import Gbt32960ListenerConfig
from gateway.records import SessionEvent
from gateway.registry import VEHICLE, Device

PROTOCOL: Final = "gbt32960"
PLATFORM_PREFIX: Final = "platform:"  # connection index key of a logged-in platform


class Kind(Enum):
    """What a received frame is, for the transition table."""

    LOGIN = "login"
    REPORT = "report"  # realtime 0x02, reissue 0x03
    LOGOUT = "logout"
    PLATFORM_LOGIN = "platform_login"
    PLATFORM_LOGOUT = "platform_logout"
    HEARTBEAT = "heartbeat"
    TIME_SYNC = "time_sync"
    REPLY = "reply"  # response flag != 0xFE: a terminal's answer to a platform command
    OTHER = "other"  # activation, custom and unknown commands
    UNDECODABLE = "undecodable"


_COMMAND_KINDS: Final[dict[int, Kind]] = {
    c.CMD_VEHICLE_LOGIN: Kind.LOGIN,
    c.CMD_REALTIME: Kind.REPORT,
    c.CMD_REISSUE: Kind.REPORT,
    c.CMD_VEHICLE_LOGOUT: Kind.LOGOUT,
    c.CMD_PLATFORM_LOGIN: Kind.PLATFORM_LOGIN,
    c.CMD_PLATFORM_LOGOUT: Kind.PLATFORM_LOGOUT,
    c.CMD_HEARTBEAT: Kind.HEARTBEAT,
    c.CMD_TIME_SYNC: Kind.TIME_SYNC,
}
#: Commands whose body the session reads (logins carry serials and credentials).
_SESSION_COMMANDS: Final = frozenset(
    {c.CMD_VEHICLE_LOGIN, c.CMD_VEHICLE_LOGOUT, c.CMD_PLATFORM_LOGIN, c.CMD_PLATFORM_LOGOUT}
)


class Inbound(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One received frame as the session sees it.

    ``data`` is the data unit; ``body`` is decoded for logins and logouts only (None for
    other commands, or when ``decodable`` is False: the frame is framed and checksummed
    correctly but its content could not be decoded, so it became a dead letter).
    """

    version: int
    command: int
    response: int
    vin: str
    encryption: int
    data: bytes
    body: gbt.Body | None = None
    decodable: bool = True


def _vin(raw: bytes) -> str:
    vin = raw.rstrip(b"\x00 ")
    return vin.decode("ascii") if vin.isascii() else vin.decode("gbk", "surrogateescape")


def inbound(raw: bytes, *, decodable: bool = True) -> Inbound:
    """The :class:`Inbound` of a frame a FrameReader yielded (start bytes, length and BCC are
    already verified). Decodes the body of the session commands; ProtocolError otherwise."""
    command, response = raw[2], raw[3]
    body: gbt.Body | None = None
    if decodable and response == c.RESP_COMMAND and command in _SESSION_COMMANDS:
        body = gbt.decode_frame(raw).body
    return Inbound(
        version=c.VERSION_BY_START_BYTE[raw[0]],
        command=command,
        response=response,
        vin=_vin(raw[4:21]),
        encryption=raw[21],
        data=raw[c.HEADER_SIZE : -1],
        body=body,
        decodable=decodable,
    )


_TIME_LENGTH: Final = c.TIME_SIZE.to_bytes(2, "big")


def time_response(msg: Inbound, flag: int, time: bytes) -> bytes:
    """A response whose data unit is a 6-byte time: equal to ``encode_frame`` of a
    ``TimeOnly`` body, made straight from bytes (it answers every acknowledged report)."""
    vin = msg.vin.encode("gbk", "surrogateescape").ljust(c.VIN_SIZE, b"\x00")
    head = bytes((msg.command, flag)) + vin + bytes((c.ENC_NONE,)) + _TIME_LENGTH + time
    return c.START_BY_VERSION[msg.version] + head + bytes((gbt.bcc(head),))


def platform_time(wall: datetime) -> DeviceTime:
    """The 6-byte GMT+8 time of a UTC instant (the platform clock in responses)."""
    y, mo, d, h, mi, s = utc_to_gmt8_fields(wall)
    return DeviceTime(raw=bytes((y % 100, mo, d, h, mi, s)), utc=wall.replace(microsecond=0))


_Handler = Callable[["Gbt32960Session", Inbound, float, datetime, Device | None], Outcome]


class Gbt32960Session:
    """One connection's GB/T 32960 session (see the module docstring).

    ``platforms`` maps the usernames allowed to log in with 0x05 to their passwords.
    """

    def __init__(
        self,
        cfg: Gbt32960ListenerConfig,
        *,
        peer: str,
        now: float,
        platforms: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.platforms = platforms or {}
        self.state = State.CONNECTED
        self.timers = SessionTimers(
            peer=peer,
            now=now,
            login_timeout_s=cfg.login_timeout_s,
            heartbeat_s=cfg.heartbeat_timeout_s,
        )
        self.version: int | None = None  # the edition the terminal speaks (2016 / 2025)
        self.flags: dict[str, object] = {}  # why the session is flagged (registered: False, ...)
        self._ack_commands = frozenset(
            cmd
            for cmd, on in ((c.CMD_REALTIME, cfg.ack_realtime), (c.CMD_REISSUE, cfg.ack_reissue))
            if on
        )

    @property
    def device_id(self) -> str | None:
        """The logged-in VIN, or ``platform:<username>``; None when not logged in."""
        return self.timers.device_id

    @property
    def peer(self) -> str:
        return self.timers.peer

    # -- inputs ------------------------------------------------------------------------------

    def lookup(self, msg: Inbound) -> Lookup | None:
        """The registry lookup needed before :meth:`receive` can handle ``msg`` (vehicle
        logins on a connection that is not a platform's)."""
        if (
            msg.decodable
            and msg.response == c.RESP_COMMAND
            and msg.command == c.CMD_VEHICLE_LOGIN
            and self.state is not State.PLATFORM
        ):
            return Lookup(VEHICLE, msg.vin)
        return None

    def receive(
        self, msg: Inbound, now: float, wall: datetime, device: Device | None = None
    ) -> Outcome:
        """Handle one frame received at ``now`` (monotonic) / ``wall`` (UTC)."""
        self.timers.last_frame = now
        if not msg.decodable:
            kind = Kind.UNDECODABLE
        elif msg.response != c.RESP_COMMAND:
            kind = Kind.REPLY
        else:
            kind = _COMMAND_KINDS.get(msg.command, Kind.OTHER)
        handler = _TABLE.get((self.state, kind), Gbt32960Session._ignore)
        return handler(self, msg, now, wall, device)

    def deadline(self) -> float | None:
        """When :meth:`on_timer` must be called unless a frame arrives first."""
        return None if self.state is State.CLOSED else self.timers.deadline()

    def on_timer(self, now: float, wall: datetime) -> Outcome:
        """Login or heartbeat timeout: close (the connection then calls :meth:`closed`)."""
        reason = self.timers.expired(now)
        return Outcome(store=False, close=reason) if reason else Outcome(store=False)

    def closed(self, reason: str, wall: datetime, **detail: object) -> tuple[SessionEvent, ...]:
        """The connection is gone: a ``disconnect`` event when a session was logged in."""
        was, device = self.state, self.device_id
        self.state = State.CLOSED
        if was in (State.VEHICLE, State.PLATFORM) and device is not None:
            return (
                event(
                    device, PROTOCOL, "disconnect", wall, reason=reason, peer=self.peer, **detail
                ),
            )
        return ()

    # -- responses ---------------------------------------------------------------------------

    def response(self, msg: Inbound, flag: int, wall: datetime) -> bytes:
        """The response frame to ``msg`` in its edition, per the configured variant."""
        body: gbt.Body
        if msg.command == c.CMD_HEARTBEAT:
            body = gbt.Empty()
        elif msg.command == c.CMD_TIME_SYNC:
            body = gbt.TimeOnly(time=platform_time(wall))
        else:
            own = msg.data[: c.TIME_SIZE]
            request_time = self.cfg.response_time == "request" and len(own) == c.TIME_SIZE
            time = own if request_time else platform_time(wall).raw
            if self.cfg.response_body == "echo" and len(msg.data) > c.TIME_SIZE:
                body = gbt.RawBody(data=time + msg.data[c.TIME_SIZE :])
            else:  # the answer to nearly every frame: built from bytes, no message objects
                return time_response(msg, flag, time)
        return gbt.encode_frame(
            gbt.Frame(
                version=msg.version,
                command=msg.command,
                response=flag,
                vin=msg.vin,
                encryption=c.ENC_NONE,
                body=body,
            )
        )

    def _answers(self, msg: Inbound) -> bool:
        return msg.command not in (c.CMD_REALTIME, c.CMD_REISSUE) or msg.command in (
            self._ack_commands
        )

    def _ok(self, msg: Inbound, wall: datetime) -> Outcome:
        return Outcome(
            reply=self.response(msg, c.RESP_SUCCESS, wall) if self._answers(msg) else None
        )

    # -- handlers ----------------------------------------------------------------------------

    def _login(self, msg: Inbound, now: float, wall: datetime, device: Device | None) -> Outcome:
        device = device or Device(device_id=msg.vin, known=False, verified=False)
        if device.verified and not device.known and self.cfg.unknown_devices == "reject":
            rejected = event(
                msg.vin, PROTOCOL, "login_rejected", wall, reason="unknown_vin", peer=self.peer
            )
            return Outcome(
                store=False, reply=self.response(msg, c.RESP_VIN_UNKNOWN, wall), events=(rejected,)
            )
        annotate: dict[str, object] | None = None
        if not device.verified:
            annotate = {"verified": False}
        elif not device.known:
            annotate = {"registered": False}
        previous = self.device_id
        self.state, self.version = State.VEHICLE, msg.version
        self.timers.device_id = msg.vin
        self.timers.logged_in()
        self.flags = dict(annotate or {})
        return Outcome(
            reply=self.response(msg, c.RESP_SUCCESS, wall),
            annotate=annotate,
            claim=msg.vin,
            release=previous if previous not in (None, msg.vin) else None,
        )

    def _platform_login(
        self, msg: Inbound, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        body = msg.body
        if not isinstance(body, gbt.PlatformLogin) or not self._credentials_ok(body):
            user = body.username if isinstance(body, gbt.PlatformLogin) else None
            rejected = event(
                msg.vin, PROTOCOL, "platform_login_rejected", wall, username=user, peer=self.peer
            )
            return Outcome(
                store=False, reply=self.response(msg, c.RESP_ERROR, wall), events=(rejected,)
            )
        previous = self.device_id
        key = PLATFORM_PREFIX + body.username
        self.state, self.version = State.PLATFORM, msg.version
        self.timers.device_id = key
        self.timers.logged_in()
        return Outcome(
            reply=self.response(msg, c.RESP_SUCCESS, wall),
            claim=key,
            release=previous if previous not in (None, key) else None,
        )

    def _credentials_ok(self, body: gbt.PlatformLogin) -> bool:
        expected = self.platforms.get(body.username)
        if expected is None:
            return False
        return hmac.compare_digest(body.password.encode(), expected.encode())

    def _vehicle_report(
        self, msg: Inbound, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        if msg.vin != self.device_id:  # one vehicle per connection
            return self._refuse(msg, now, wall, device)
        return self._ok(msg, wall)

    def _vehicle_logout(
        self, msg: Inbound, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        if msg.vin != self.device_id:
            return self._refuse(msg, now, wall, device)
        return self._logged_out(msg, now, wall)

    def _platform_logout(
        self, msg: Inbound, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        return self._logged_out(msg, now, wall)

    def _logged_out(self, msg: Inbound, now: float, wall: datetime) -> Outcome:
        released = self.device_id
        self.state = State.CONNECTED
        self.timers.device_id = None
        self.timers.logged_out(now)
        self.flags = {}
        return Outcome(reply=self.response(msg, c.RESP_SUCCESS, wall), release=released)

    def _relayed(self, msg: Inbound, now: float, wall: datetime, device: Device | None) -> Outcome:
        """A platform's frame about one of its vehicles: stored and acknowledged."""
        return self._ok(msg, wall)

    def _answer(self, msg: Inbound, now: float, wall: datetime, device: Device | None) -> Outcome:
        return Outcome(reply=self.response(msg, c.RESP_SUCCESS, wall))

    def _refuse(self, msg: Inbound, now: float, wall: datetime, device: Device | None) -> Outcome:
        """Not logged in (or another VIN): archived raw only, answered with 0x02 (error)."""
        reply = self.response(msg, c.RESP_ERROR, wall) if self._answers(msg) else None
        return Outcome(store=False, reply=reply)

    def _deliver(self, msg: Inbound, now: float, wall: datetime, device: Device | None) -> Outcome:
        return Outcome(deliver=True)

    def _ignore(self, msg: Inbound, now: float, wall: datetime, device: Device | None) -> Outcome:
        return Outcome(store=False)

    def _undecodable(
        self, msg: Inbound, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        """Framed and checksummed but not decodable: a dead letter; answered with 0x02
        (2016) or 0x06 structure invalid (2025) when the command is one that is answered."""
        reply = None
        if msg.response == c.RESP_COMMAND and msg.command in _COMMAND_KINDS and self._answers(msg):
            flag = c.RESP_STRUCTURE_INVALID if msg.version == c.V2025 else c.RESP_ERROR
            reply = self.response(msg, flag, wall)
        return Outcome(store=False, reply=reply, bad=True)


_S = Gbt32960Session
_K = Kind
_CONNECTED, _VEHICLE, _PLATFORM = State.CONNECTED, State.VEHICLE, State.PLATFORM

#: (state, kind) -> handler. Pairs not listed (a closed session) are ignored.
_TABLE: Final[dict[tuple[State, Kind], _Handler]] = {
    (_CONNECTED, _K.LOGIN): _S._login,
    (_CONNECTED, _K.PLATFORM_LOGIN): _S._platform_login,
    (_CONNECTED, _K.REPORT): _S._refuse,
    (_CONNECTED, _K.LOGOUT): _S._refuse,
    (_CONNECTED, _K.PLATFORM_LOGOUT): _S._refuse,
    (_CONNECTED, _K.HEARTBEAT): _S._refuse,
    (_CONNECTED, _K.TIME_SYNC): _S._answer,
    (_CONNECTED, _K.REPLY): _S._ignore,
    (_CONNECTED, _K.OTHER): _S._ignore,
    (_VEHICLE, _K.LOGIN): _S._login,
    (_VEHICLE, _K.PLATFORM_LOGIN): _S._refuse,
    (_VEHICLE, _K.REPORT): _S._vehicle_report,
    (_VEHICLE, _K.LOGOUT): _S._vehicle_logout,
    (_VEHICLE, _K.PLATFORM_LOGOUT): _S._refuse,
    (_VEHICLE, _K.HEARTBEAT): _S._answer,
    (_VEHICLE, _K.TIME_SYNC): _S._answer,
    (_VEHICLE, _K.REPLY): _S._deliver,
    (_VEHICLE, _K.OTHER): _S._deliver,
    (_PLATFORM, _K.LOGIN): _S._relayed,
    (_PLATFORM, _K.PLATFORM_LOGIN): _S._platform_login,
    (_PLATFORM, _K.REPORT): _S._relayed,
    (_PLATFORM, _K.LOGOUT): _S._relayed,
    (_PLATFORM, _K.PLATFORM_LOGOUT): _S._platform_logout,
    (_PLATFORM, _K.HEARTBEAT): _S._answer,
    (_PLATFORM, _K.TIME_SYNC): _S._answer,
    (_PLATFORM, _K.REPLY): _S._deliver,
    (_PLATFORM, _K.OTHER): _S._deliver,
    **{(state, _K.UNDECODABLE): _S._undecodable for state in (_CONNECTED, _VEHICLE, _PLATFORM)},
}
