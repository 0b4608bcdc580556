"""What a protocol session state machine tells its connection to do, and what it asks of it.

Shared by :mod:`gateway.adapters.gbt32960_session` and :mod:`gateway.adapters.jt808_session`.
Both machines are sans-IO: inputs are decoded messages, the registry's answers and the clock
values passed in; outputs are :class:`Outcome` values. The TCP shell (:mod:`.tcp`) does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final, NamedTuple

from gateway.codecs.common import BadFrame
from gateway.records import SessionEvent
from gateway.registry import Registration


class State(Enum):
    """Where a session is. ``CONNECTED``: not (or no longer) logged in."""

    CONNECTED = "connected"
    VEHICLE = "vehicle"  # GB/T 32960 vehicle logged in (0x01)
    PLATFORM = "platform"  # GB/T 32960 platform logged in (0x05): frames of many VINs
    AUTHENTICATED = "authenticated"  # JT/T 808 terminal authenticated (0x0102)
    CLOSED = "closed"


class Lookup(NamedTuple):
    """A registry lookup the session needs before it can handle a message."""

    kind: str  # gateway.registry.VEHICLE or TERMINAL
    key: str  # VIN or phone


@dataclass(slots=True)
class Outcome:
    """The session's answer to one message or timer.

    The connection stores the frame's records (all of them when ``store``, else only the raw
    archive entry) plus ``events``, adds ``annotate`` to the detail of the frame's session
    events, and sends ``reply`` once all of that is durable, in receive order. ``send`` frames
    go out at once (no records wait for them). ``claim`` / ``release`` take or give up a device
    id in the listener's connection index (the newer connection wins). ``deliver`` hands the
    decoded frame to the listener's message hook (replies to platform commands). ``close``
    closes the connection after the replies: the reason. ``bad`` counts the frame towards
    ``max_bad_frames``; ``dead`` is a dead letter to store for content found bad by the
    session (a reassembled JT/T 808 body that does not decode). ``reassembled`` is a JT/T 808
    message rebuilt from subpackages: its normalized records are stored with this frame's.
    ``register`` / ``authenticated`` are registry writes to make before the reply (a failed
    registration closes the connection without a reply).
    """

    store: bool = True
    reply: bytes | None = None
    send: tuple[bytes, ...] = ()
    events: tuple[SessionEvent, ...] = ()
    annotate: dict[str, Any] | None = None
    claim: str | None = None
    release: str | None = None
    deliver: bool = False
    close: str | None = None
    bad: bool = False
    dead: BadFrame | None = None
    reassembled: Any = None
    register: Registration | None = None
    authenticated: str | None = None


#: Why a connection was closed (counted per listener; also in "disconnect" session events).
CLOSE_LOGIN_TIMEOUT: Final = "login_timeout"
CLOSE_HEARTBEAT_TIMEOUT: Final = "heartbeat_timeout"
CLOSE_IDLE_TIMEOUT: Final = "idle_timeout"
CLOSE_SLOW_SENDER: Final = "slow_sender"
CLOSE_SLOW_READER: Final = "slow_reader"  # does not read its replies
CLOSE_BAD_FRAMES: Final = "bad_frames"
CLOSE_DISPLACED: Final = "displaced"
CLOSE_PEER: Final = "peer_closed"
CLOSE_LOGOUT: Final = "logout"
CLOSE_NOT_DURABLE: Final = "not_durable"
CLOSE_REGISTRY: Final = "registry_unavailable"
CLOSE_SHUTDOWN: Final = "shutdown"


class SessionTimers:
    """The login and heartbeat clocks every session keeps, and its end.

    Before a login (and again after a logout) the session must log in by ``login_deadline``;
    once logged in, a frame must arrive every ``heartbeat_timeout_s`` (0: never required).
    """

    __slots__ = ("_heartbeat_s", "_login_s", "device_id", "last_frame", "login_deadline", "peer")

    def __init__(self, *, peer: str, now: float, login_timeout_s: float, heartbeat_s: float):
        self.peer = peer
        self._login_s = login_timeout_s
        self._heartbeat_s = heartbeat_s
        self.login_deadline: float | None = now + login_timeout_s
        self.last_frame = now
        self.device_id: str | None = None

    def logged_in(self) -> None:
        self.login_deadline = None

    def logged_out(self, now: float) -> None:
        self.login_deadline = now + self._login_s

    def deadline(self) -> float | None:
        """When the session times out unless a frame (or a login) arrives."""
        if self.login_deadline is not None:
            return self.login_deadline
        if self._heartbeat_s > 0:
            return self.last_frame + self._heartbeat_s
        return None

    def expired(self, now: float) -> str | None:
        """The close reason when the deadline has passed, else None."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return None
        return CLOSE_LOGIN_TIMEOUT if self.login_deadline is not None else CLOSE_HEARTBEAT_TIMEOUT


def event(device_id: str, protocol: str, name: str, wall: datetime, **detail: Any) -> SessionEvent:
    """A session event made by a session (not by normalization): stamped with the wall clock."""
    return SessionEvent(
        device_id=device_id,
        protocol=protocol,
        time=wall,
        event=name,
        detail=detail,
        received_at=wall,
    )


def earliest(*deadlines: float | None) -> float | None:
    """The earliest of the deadlines that are set."""
    out: float | None = None
    for d in deadlines:
        if d is not None and (out is None or d < out):
            out = d
    return out
