"""JT/T 808 session state machine (2013 and 2019; sans-IO): registration, authentication, what
to answer, subpackage reassembly.

A table maps (state, kind of message) to a handler. States: ``CONNECTED`` (not authenticated)
and ``AUTHENTICATED``. The session sequence of ``shared/protocols/jt808.md`` section 2.3:

1. the terminal registers with 0x0100; the platform answers 0x8100 with an authentication code
   (result 0), or a refusal (result 4, terminal not in the database, when unknown devices are
   rejected). The code is stored in the registry as a hash before the answer is sent;
2. the terminal authenticates with 0x0102 on every connection; the platform answers 0x8001;
3. then come 0x0002 heartbeats, 0x0200 locations, 0x0704 batches (type 1: blind-area reissue),
   and the rest; the platform answers each terminal message with 0x8001 (0x8100 for 0x0100),
   echoing the request's serial and message id, with result 0 ok, 1 fail, 2 bad message,
   3 unsupported.

Messages before authentication are refused with 0x8001 result 1 and only archived raw: the
terminal keeps them for a blind-area reissue. Frames that do not decode are answered with result
2. Answers use the terminal's version and phone, and the session's next platform serial.
Subpackaged messages go through the codecs' Reassembler: each packet is answered; the
message's records are stored with its last packet; a set still incomplete after
``subpackage_timeout_s`` is re-requested once with 0x8003, then dropped.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Final, NamedTuple

from gateway.adapters.session import (
    Lookup,
    Outcome,
    SessionTimers,
    State,
    earliest,
    event,
)
from gateway.codecs import jt808 as jt
from gateway.codecs.common import BadFrame, DeviceTime
from gateway.codecs.errors import ProtocolError
from gateway.codecs.jt808 import constants as c
from gateway.config import Jt808ListenerConfig
from gateway.records import SessionEvent
from gateway.registry import TERMINAL, Device, Registration, check_auth_code

PROTOCOL: Final = "jt808"

#: Terminal messages that answer a platform command: handed to the message hook, not answered.
REPLY_IDS: Final = frozenset(
    {
        c.TERMINAL_GENERAL_RESPONSE,
        0x0104,  # query parameters answer
        0x0107,  # query attributes answer
        0x0201,  # location query answer
        0x0302,  # question answer
        0x0500,  # vehicle control answer
        0x0700,  # driving record upload
        0x0805,  # camera shot answer
    }
)
_REPORT_IDS: Final = frozenset({c.LOCATION, c.BATCH_LOCATION, c.CAN_BUS_DATA, c.TRANSPARENT_UPLINK})


class Kind(Enum):
    """What a received message is, for the transition table."""

    REGISTER = "register"
    AUTH = "auth"
    HEARTBEAT = "heartbeat"
    LOGOUT = "logout"
    REPORT = "report"  # 0x0200, 0x0704, 0x0705, 0x0900
    TIME_QUERY = "time_query"  # 0x0004 (2019)
    REPLY = "reply"  # answers to platform commands (REPLY_IDS)
    OTHER = "other"


_ID_KINDS: Final[dict[int, Kind]] = {
    c.REGISTER: Kind.REGISTER,
    c.AUTHENTICATE: Kind.AUTH,
    c.HEARTBEAT: Kind.HEARTBEAT,
    c.LOGOUT: Kind.LOGOUT,
    c.QUERY_SERVER_TIME: Kind.TIME_QUERY,
    **dict.fromkeys(_REPORT_IDS, Kind.REPORT),
    **dict.fromkeys(REPLY_IDS, Kind.REPLY),
}


class Header(NamedTuple):
    """The header fields of a frame whose body did not decode (to answer it with result 2)."""

    version: int
    msg_id: int
    phone: str
    serial: int
    protocol_version: int | None


def peek_header(raw: bytes) -> Header | None:
    """The header of an escaped frame (0x7E ... 0x7E), or None when even that is unreadable."""
    try:
        data = jt.unescape(raw[1:-1])
    except ProtocolError:
        return None
    if len(data) < c.HEADER_SIZE_2013:
        return None
    msg_id, attrs = struct.unpack_from(">HH", data)
    if attrs & c.ATTR_VERSION_2019:
        version, protocol_version, at = 2019, data[4], 5
    else:
        version, protocol_version, at = 2013, None, 4
    size = c.PHONE_DIGITS[version] // 2
    if len(data) < at + size + 2:
        return None
    phone = data[at : at + size].hex()
    if not phone.isdigit():
        return None
    (serial,) = struct.unpack_from(">H", data, at + size)
    return Header(version, msg_id, phone, serial, protocol_version)


_To = jt.Frame | Header
_Handler = Callable[["Jt808Session", jt.Frame, jt.Frame, float, datetime, Device | None], Outcome]


def new_auth_code(chars: int) -> str:
    """A random authentication code of ``chars`` upper-case hex digits."""
    return secrets.token_hex((chars + 1) // 2)[:chars].upper()


class Jt808Session:
    """One connection's JT/T 808 session (see the module docstring).

    ``auth_codes`` makes the codes issued at registration (tests pass a deterministic one).
    """

    def __init__(
        self,
        cfg: Jt808ListenerConfig,
        *,
        peer: str,
        now: float,
        auth_codes: Callable[[], str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.state = State.CONNECTED
        self.timers = SessionTimers(
            peer=peer,
            now=now,
            login_timeout_s=cfg.login_timeout_s,
            heartbeat_s=cfg.heartbeat_timeout_s,
        )
        self.version: int | None = None  # 2013 / 2019, as the terminal speaks
        self.protocol_version: int | None = None  # the 2019 header byte
        self.flags: dict[str, object] = {}
        self._serial = 0
        self._auth_codes = auth_codes or (lambda: new_auth_code(cfg.auth_code_chars))
        self.reassembler = jt.Reassembler(cfg.max_subpackage_sets, cfg.max_subpackage_bytes)
        self._poll_at: float | None = None
        self._rerequested: set[tuple[str, int, int, int]] = set()

    @property
    def device_id(self) -> str | None:
        """The authenticated terminal's phone number; None when not authenticated."""
        return self.timers.device_id

    @property
    def peer(self) -> str:
        return self.timers.peer

    def next_serial(self) -> int:
        """The next platform message serial of this connection (wraps at 0xFFFF)."""
        serial = self._serial
        self._serial = (serial + 1) & 0xFFFF
        return serial

    # -- inputs ------------------------------------------------------------------------------

    def lookup(self, frame: jt.Frame) -> Lookup | None:
        """The registry lookup needed before :meth:`receive` (registration, authentication)."""
        if frame.msg_id in (c.REGISTER, c.AUTHENTICATE) and frame.packet_total is None:
            return Lookup(TERMINAL, frame.phone)
        return None

    def receive(
        self, frame: jt.Frame, now: float, wall: datetime, device: Device | None = None
    ) -> Outcome:
        """Handle one decoded frame received at ``now`` (monotonic) / ``wall`` (UTC)."""
        self.timers.last_frame = now
        message = frame
        if frame.packet_total is not None and (frame.packet_total, frame.packet_index) != (1, 1):
            if self.state is not State.AUTHENTICATED or frame.phone != self.device_id:
                return self._refuse(frame, frame, now, wall, device)
            if self._poll_at is None:
                self._poll_at = now + min(1.0, self.cfg.subpackage_timeout_s)
            try:
                whole = self.reassembler.add(frame, now + self.cfg.subpackage_timeout_s)
            except ProtocolError as exc:
                dead = BadFrame(
                    raw=exc.raw, reason=exc.reason.value, offset=exc.offset, message=exc.message
                )
                return Outcome(
                    store=False,
                    reply=self.general(frame, c.RESULT_BAD_MESSAGE),
                    bad=True,
                    dead=dead,
                )
            if whole is None:
                return Outcome(reply=self.general(frame, c.RESULT_OK))
            message = whole
        kind = _ID_KINDS.get(message.msg_id, Kind.OTHER)
        handler = _TABLE.get((self.state, kind), Jt808Session._ignore)
        outcome = handler(self, message, frame, now, wall, device)
        if message is not frame and outcome.store:
            outcome.reassembled = message
        return outcome

    def undecodable(self, raw: bytes, now: float) -> Outcome:
        """A framed frame whose header or body did not decode (it became a dead letter):
        answered with result 2 when its header can be read."""
        self.timers.last_frame = now
        header = peek_header(raw)
        reply = None
        if header is not None and header.msg_id not in REPLY_IDS:
            reply = self.general(header, c.RESULT_BAD_MESSAGE)
        return Outcome(store=False, reply=reply, bad=True)

    def deadline(self) -> float | None:
        """When :meth:`on_timer` must be called unless a frame arrives first."""
        if self.state is State.CLOSED:
            return None
        return earliest(self.timers.deadline(), self._poll_at)

    def on_timer(self, now: float, wall: datetime) -> Outcome:
        """Login / heartbeat timeouts close; incomplete subpackage sets are re-requested."""
        reason = self.timers.expired(now)
        if reason:
            return Outcome(store=False, close=reason)
        sends: list[bytes] = []
        if self._poll_at is not None and now >= self._poll_at:
            for report in self.reassembler.poll(now):
                if report.reason != "timeout":
                    self._rerequested.discard(report.key)
                elif report.key in self._rerequested:
                    self.reassembler.discard(report.key)
                    self._rerequested.discard(report.key)
                else:
                    self._rerequested.add(report.key)
                    self.reassembler.rearm(report.key, now + self.cfg.subpackage_timeout_s)
                    sends.append(self._resend_request(report))
            pending = len(self.reassembler) > 0
            self._poll_at = now + min(1.0, self.cfg.subpackage_timeout_s) if pending else None
        return Outcome(store=False, send=tuple(sends))

    def closed(self, reason: str, wall: datetime, **detail: object) -> tuple[SessionEvent, ...]:
        """The connection is gone: a ``disconnect`` event when a terminal was authenticated."""
        was, device = self.state, self.device_id
        self.state = State.CLOSED
        if was is State.AUTHENTICATED and device is not None:
            return (
                event(
                    device, PROTOCOL, "disconnect", wall, reason=reason, peer=self.peer, **detail
                ),
            )
        return ()

    # -- answers -----------------------------------------------------------------------------

    def general(self, to: _To, result: int) -> bytes:
        """0x8001 answering ``to`` with ``result``."""
        body = jt.PlatformGeneralResponse(
            reply_serial=to.serial, reply_msg_id=to.msg_id, result=result
        )
        return self._encode(to, c.PLATFORM_GENERAL_RESPONSE, body)

    def command(self, msg_id: int, body: jt.Body) -> bytes:
        """A platform message to this session's terminal (commands down to trucks), with the
        next platform serial. Only valid once authenticated."""
        if self.device_id is None or self.version is None:
            raise RuntimeError("the terminal is not authenticated")
        header = Header(self.version, msg_id, self.device_id, 0, self.protocol_version)
        return self._encode(header, msg_id, body)

    def _encode(self, to: _To, msg_id: int, body: jt.Body) -> bytes:
        return jt.encode_frame(
            jt.Frame(
                version=to.version,
                msg_id=msg_id,
                phone=to.phone,
                serial=self.next_serial(),
                body=body,
                protocol_version=to.protocol_version,
            )
        )

    def _resend_request(self, report: jt.MissingPackets) -> bytes:
        header = Header(report.version, c.PLATFORM_RESEND_REQUEST, report.phone, 0, None)
        if report.version == 2019:
            header = header._replace(protocol_version=self.protocol_version or 1)
        return self._encode(header, c.PLATFORM_RESEND_REQUEST, report.resend_request())

    # -- handlers (msg: the message; to: the frame to answer, its last packet when reassembled)

    def _register(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        body = msg.body
        if not isinstance(body, jt.Register):
            return self._unsupported(msg, to, now, wall, device)
        device = device or Device(device_id=msg.phone, known=False, verified=False)
        if device.verified and not device.known and self.cfg.unknown_devices == "reject":
            refusal = jt.RegisterResponse(
                reply_serial=msg.serial, result=c.REGISTER_TERMINAL_UNKNOWN
            )
            rejected = event(
                msg.phone, PROTOCOL, "register_rejected", wall, reason="unknown", peer=self.peer
            )
            return Outcome(
                store=False,
                reply=self._encode(to, c.REGISTER_RESPONSE, refusal),
                events=(rejected,),
            )
        code = self._auth_codes()
        registration = Registration(
            phone=msg.phone,
            version=msg.version,
            auth_code=code,
            maker=body.maker,
            model=body.model,
            terminal_id=body.terminal_id,
            plate_color=body.plate_color,
            plate=body.plate,
            auto=not device.known,
        )
        released = self._drop_session(now)  # a new code: the terminal authenticates again
        answer = jt.RegisterResponse(reply_serial=msg.serial, result=c.REGISTER_OK, auth_code=code)
        return Outcome(
            reply=self._encode(to, c.REGISTER_RESPONSE, answer),
            register=registration,
            annotate={"registered": False} if not device.known else None,
            release=released,
        )

    def _auth(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        body = msg.body
        if not isinstance(body, jt.Authenticate):
            return self._unsupported(msg, to, now, wall, device)
        device = device or Device(device_id=msg.phone, known=False, verified=False)
        annotate: dict[str, object] | None = None
        if check_auth_code(body.auth_code, device.auth_code_hash):
            pass
        elif not device.verified:
            annotate = {"verified": False}  # registry away: let it in, flagged
        elif not device.auth_code_hash and self.cfg.unknown_devices == "accept":
            annotate = {"registered": False} if not device.known else {"auth_code": False}
        else:
            reason = "bad_auth_code" if device.auth_code_hash else "unknown_terminal"
            released = self._drop_session(now) if self.state is State.AUTHENTICATED else None
            failed = event(msg.phone, PROTOCOL, "auth_failed", wall, reason=reason, peer=self.peer)
            return Outcome(
                store=False,
                reply=self.general(to, c.RESULT_FAIL),
                events=(failed,),
                release=released,
            )
        previous = self.device_id
        self.state = State.AUTHENTICATED
        self.version, self.protocol_version = msg.version, msg.protocol_version
        self.timers.device_id = msg.phone
        self.timers.logged_in()
        self.flags = dict(annotate or {})
        return Outcome(
            reply=self.general(to, c.RESULT_OK),
            annotate=annotate,
            claim=msg.phone,
            release=previous if previous not in (None, msg.phone) else None,
            authenticated=msg.phone if device.known else None,
        )

    def _drop_session(self, now: float) -> str | None:
        """Back to CONNECTED (must authenticate again); the phone number given up, if any."""
        released = self.device_id
        if self.state is State.AUTHENTICATED:
            self.state = State.CONNECTED
            self.timers.device_id = None
            self.timers.logged_out(now)
            self.flags = {}
        return released

    def _logout(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        if msg.phone != self.device_id:
            return self._refuse(msg, to, now, wall, device)
        return Outcome(reply=self.general(to, c.RESULT_OK), release=self._drop_session(now))

    def _report(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        if msg.phone != self.device_id:
            return self._refuse(msg, to, now, wall, device)
        if isinstance(msg.body, jt.RawBody):  # encrypted: archived raw, not understood
            return self._unsupported(msg, to, now, wall, device)
        return Outcome(reply=self.general(to, c.RESULT_OK))

    def _time_query(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        body = jt.ServerTime(time=DeviceTime(raw=b"", utc=wall.replace(microsecond=0)))
        return Outcome(reply=self._encode(to, c.SERVER_TIME, body))

    def _deliver(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        return Outcome(deliver=True)

    def _other(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        """A message the gateway does not process: archived raw, handed to the message hook,
        answered 0 when it decoded (the codec knows it), 3 (unsupported) when it did not."""
        if msg.phone != self.device_id:
            return self._refuse(msg, to, now, wall, device)
        result = c.RESULT_UNSUPPORTED if isinstance(msg.body, jt.RawBody) else c.RESULT_OK
        return Outcome(reply=self.general(to, result), deliver=True)

    def _unsupported(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        return Outcome(store=False, reply=self.general(to, c.RESULT_UNSUPPORTED))

    def _refuse(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        """Not authenticated (or another phone number): archived raw only, result 1."""
        return Outcome(store=False, reply=self.general(to, c.RESULT_FAIL))

    def _ignore(
        self, msg: jt.Frame, to: jt.Frame, now: float, wall: datetime, device: Device | None
    ) -> Outcome:
        return Outcome(store=False)


_S = Jt808Session
_K = Kind
_CONNECTED, _AUTHENTICATED = State.CONNECTED, State.AUTHENTICATED

#: (state, kind) -> handler. Pairs not listed (a closed session) are ignored.
_TABLE: Final[dict[tuple[State, Kind], _Handler]] = {
    (_CONNECTED, _K.REGISTER): _S._register,
    (_CONNECTED, _K.AUTH): _S._auth,
    (_CONNECTED, _K.HEARTBEAT): _S._refuse,
    (_CONNECTED, _K.LOGOUT): _S._refuse,
    (_CONNECTED, _K.REPORT): _S._refuse,
    (_CONNECTED, _K.TIME_QUERY): _S._time_query,
    (_CONNECTED, _K.REPLY): _S._ignore,
    (_CONNECTED, _K.OTHER): _S._refuse,
    (_AUTHENTICATED, _K.REGISTER): _S._register,
    (_AUTHENTICATED, _K.AUTH): _S._auth,
    (_AUTHENTICATED, _K.HEARTBEAT): _S._report,
    (_AUTHENTICATED, _K.LOGOUT): _S._logout,
    (_AUTHENTICATED, _K.REPORT): _S._report,
    (_AUTHENTICATED, _K.TIME_QUERY): _S._time_query,
    (_AUTHENTICATED, _K.REPLY): _S._deliver,
    (_AUTHENTICATED, _K.OTHER): _S._other,
}
