"""The sans-IO part of a GB/T 32960 platform link: the frames a forwarding platform sends
(platform login 0x05, logout 0x06, heartbeat 0x07), what is relayed, and the window of frames
sent and not yet acknowledged.

GB/T 32960 answers carry no sequence number: an answer names its command and VIN only. The
window therefore matches an answer to the oldest unanswered frame with the same command and
VIN (upstreams answer in order; one that answers out of order across vehicles is still
matched right). The cursor may pass a frame once it and everything before it are done.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime

from gateway.codecs import gbt32960 as gbt
from gateway.codecs.common import DeviceTime, utc_to_gmt8_fields
from gateway.codecs.gbt32960 import constants as C
from gateway.forward.archive import ArchiveRow, Position
from gateway.forward.convert import ConversionError, convert

RELAYED = frozenset({C.CMD_VEHICLE_LOGIN, C.CMD_REALTIME, C.CMD_REISSUE, C.CMD_VEHICLE_LOGOUT})
"""Commands relayed to an upstream platform (as the vehicle sent them: requests, not answers)."""

RELAYED_SQL = "get_byte(f.frame, 2) BETWEEN 1 AND 4 AND get_byte(f.frame, 3) = 254"
"""The same choice in SQL over ``raw_frames f`` (command byte 2, response flag byte 3)."""

_VERSION_BY_START = {b"##": C.V2016, b"$$": C.V2025}


def device_time(utc: datetime) -> DeviceTime:
    """The GB/T 32960 BYTE[6] time (GMT+8 wall clock) of a UTC instant."""
    y, mo, d, h, mi, s = utc_to_gmt8_fields(utc)
    return DeviceTime(raw=bytes((y - 2000, mo, d, h, mi, s)), utc=utc.replace(microsecond=0))


def beijing_day(utc: datetime) -> date:
    """The GMT+8 calendar day: platform login serials restart daily."""
    y, mo, d, *_ = utc_to_gmt8_fields(utc)
    return date(y, mo, d)


def next_login_serial(day: date, last_day: date | None, last_serial: int | None) -> int:
    """1 for the first login of a (GMT+8) day, then +1 per login, wrapping after 65531."""
    if last_day != day or not last_serial:
        return 1
    return last_serial % 65531 + 1


class Platform:
    """Builds the frames this gateway sends as a platform to one upstream."""

    def __init__(self, version: int, platform_id: str, username: str, password: str) -> None:
        self.version = version
        self.platform_id = platform_id
        self.username = username
        self.password = password
        self.serial = 0

    def _frame(self, command: int, body: gbt.Body) -> bytes:
        return gbt.encode_frame(
            gbt.Frame(
                version=self.version,
                command=command,
                response=C.RESP_COMMAND,
                vin=self.platform_id,
                encryption=C.ENC_NONE,
                body=body,
            )
        )

    def login(self, serial: int, now: datetime | None = None) -> bytes:
        self.serial = serial
        body = gbt.PlatformLogin(
            time=device_time(now or datetime.now(UTC)),
            serial=serial,
            username=self.username,
            password=self.password,
            encryption_rule=C.ENC_NONE,
        )
        return self._frame(C.CMD_PLATFORM_LOGIN, body)

    def logout(self, now: datetime | None = None) -> bytes:
        body = gbt.PlatformLogout(time=device_time(now or datetime.now(UTC)), serial=self.serial)
        return self._frame(C.CMD_PLATFORM_LOGOUT, body)

    def heartbeat(self) -> bytes:
        return self._frame(C.CMD_HEARTBEAT, gbt.Empty())

    def relay(self, row: ArchiveRow, dropped: list[str] | None = None) -> bytes:
        """The bytes to send for an archived vehicle frame: as received when the editions
        match (a 2025 signature stays intact), else decoded, converted and re-encoded.
        Raises ConversionError or ProtocolError when that cannot be done."""
        if _VERSION_BY_START.get(row.frame[:2]) == self.version:
            return row.frame
        frame = gbt.decode_frame(row.frame)
        if frame.command not in RELAYED or frame.response != C.RESP_COMMAND:
            raise ConversionError(f"command 0x{frame.command:02X} is not relayed")
        return gbt.encode_frame(convert(frame, self.version, dropped))


@dataclass(slots=True)
class Sent:
    """One entry of the window: a frame sent (or a position passed without sending)."""

    position: Position
    row: ArchiveRow | None  # None for a horizon marker
    command: int = 0
    vin: str = ""
    awaiting: bool = False  # an answer is expected and has not come
    sent_at: float = 0.0


class AckWindow:
    """Frames in flight, in cursor order; see the module docstring."""

    def __init__(self) -> None:
        self._entries: deque[Sent] = deque()
        self.awaiting = 0  # entries still waiting for their answer

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: Sent) -> None:
        self._entries.append(entry)
        if entry.awaiting:
            self.awaiting += 1

    def answer(self, command: int, vin: str) -> Sent | None:
        """Mark the oldest frame waiting for this (command, VIN) answered; None if none."""
        for entry in self._entries:
            if entry.awaiting and entry.command == command and entry.vin == vin:
                entry.awaiting = False
                self.awaiting -= 1
                return entry
        return None

    def pop_done(self) -> list[Sent]:
        """Remove and return the leading entries that need nothing more."""
        done: list[Sent] = []
        entries = self._entries
        while entries and not entries[0].awaiting:
            done.append(entries.popleft())
        return done

    def oldest_wait(self) -> float | None:
        """``sent_at`` of the oldest frame still waiting for its answer."""
        return next((e.sent_at for e in self._entries if e.awaiting), None)

    def oldest_row(self) -> ArchiveRow | None:
        return next((e.row for e in self._entries if e.row is not None), None)

    def clear(self) -> None:
        self._entries.clear()
        self.awaiting = 0
