"""Frames of one simulated terminal, made with the real encoders and cheap to vary.

A report is encoded once from the truck model (:class:`gateway.simulator.Fleet`) with the real
encoder, then every send patches only the data time (and, for JT/T 808, the message serial)
into that template and updates the XOR checksum incrementally: XOR is linear, so the new
checksum is the old one with the old bytes XORed out and the new ones in. Every
``refresh_every`` reports the truck drives on and the template is encoded again, so values
change over time. This makes a report in about a microsecond instead of the tens of
microseconds a full model step plus encode costs (see :func:`measure_generation`).

Data times are whole seconds and the key of a report (the store de-duplicates on VIN/phone and
time), so :class:`DataClock` hands each terminal strictly increasing times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache, reduce
from operator import xor
from typing import Final

from gateway.codecs import gbt32960 as gbt
from gateway.codecs import jt808 as jt
from gateway.codecs.gbt32960 import constants as gc
from gateway.simulator import Fleet, Truck

_BYTE: Final = [bytes((i,)) for i in range(256)]
_GMT8: Final = 8 * 3600
GBT_TIME_AT: Final = 24  # the data unit, and its 6-byte time, start after the 24-byte header
JT_HEADER: Final = {2013: 12, 2019: 17}
JT_SERIAL_AT: Final = {2013: 10, 2019: 15}
JT_LOCATION_TIME_AT: Final = 22  # in the 0x0200 body
JT_MAX_BODY: Final = 1023
REALTIME: Final = 0x02
REISSUE: Final = 0x03


class DataClock:
    """Strictly increasing whole-second data times (epoch seconds) for one terminal.

    With no ``start`` the wall clock is used, but never the same second twice: a terminal that
    reports faster than once a second runs ahead of the wall clock. With ``start`` the clock is
    simulated: ``start``, ``start + step``, ...
    """

    __slots__ = ("last", "step", "wall")

    def __init__(self, start: datetime | None = None, step: int = 1) -> None:
        self.wall = start is None
        self.step = max(1, step)
        self.last = 0 if start is None else int(start.timestamp()) - self.step

    def next(self) -> int:
        t = max(int(time.time()), self.last + 1) if self.wall else self.last + self.step
        self.last = t
        return t


@lru_cache(maxsize=16384)
def gbt_time_raw(epoch: int) -> bytes:
    """GB/T 32960 BYTE[6] time (GMT+8 wall clock) of a UTC epoch second."""
    tm = time.gmtime(epoch + _GMT8)
    return bytes((tm.tm_year - 2000, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec))


@lru_cache(maxsize=16384)
def jt_time_raw(epoch: int) -> bytes:
    """JT/T 808 BCD[6] time (GMT+8 wall clock) of a UTC epoch second."""
    tm = time.gmtime(epoch + _GMT8)
    fields = (tm.tm_year % 100, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
    return bytes((v // 10) << 4 | v % 10 for v in fields)


def _xor(data: bytes) -> int:
    return reduce(xor, data, 0)


def gbt_patch_time(frame: bytes, raw_time: bytes) -> bytes:
    """``frame`` (whose data unit starts with the time) with its time replaced, BCC updated."""
    old = frame[GBT_TIME_AT : GBT_TIME_AT + 6]
    check = frame[-1] ^ _xor(old) ^ _xor(raw_time)
    return frame[:GBT_TIME_AT] + raw_time + frame[GBT_TIME_AT + 6 : -1] + _BYTE[check]


def gbt_as_reissue(frame: bytes) -> bytes:
    """A realtime 0x02 frame as reissue 0x03: same bytes, command and BCC changed."""
    if frame[2] != REALTIME:
        return frame
    return frame[:2] + _BYTE[REISSUE] + frame[3:-1] + _BYTE[frame[-1] ^ REALTIME ^ REISSUE]


class GbtFrames:
    """The frames one GB/T 32960 terminal sends."""

    __slots__ = ("_base", "_head", "_heartbeat", "_tail", "_uses", "fleet", "step_s", "truck")

    def __init__(self, fleet: Fleet, truck: Truck, *, refresh_every: int, step_s: float) -> None:
        self.fleet = fleet
        self.truck = truck
        self.step_s = step_s * max(1, refresh_every)
        self._uses = max(1, refresh_every)
        self._head = self._tail = b""
        self._base = 0
        self._heartbeat = gbt.encode_frame(fleet.gbt_frame(truck, gc.CMD_HEARTBEAT, gbt.Empty()))
        self._encode()

    def _encode(self) -> None:
        raw = self.fleet.report(self.truck)
        self._head = raw[:GBT_TIME_AT]
        self._tail = raw[GBT_TIME_AT + 6 : -1]
        self._base = raw[-1] ^ _xor(raw[GBT_TIME_AT : GBT_TIME_AT + 6])
        self._uses = 0

    def realtime(self, epoch: int, refresh_every: int) -> bytes:
        """A realtime 0x02 report with data time ``epoch``."""
        if self._uses >= refresh_every:
            self.fleet.step(self.truck, self.step_s)
            self._encode()
        self._uses += 1
        t = gbt_time_raw(epoch)
        check = self._base ^ t[0] ^ t[1] ^ t[2] ^ t[3] ^ t[4] ^ t[5]
        return b"".join((self._head, t, self._tail, _BYTE[check]))

    def login(self, epoch: int) -> bytes:
        """Vehicle login 0x01 with the next login serial."""
        return gbt_patch_time(self.fleet.login(self.truck), gbt_time_raw(epoch))

    def logout(self, epoch: int) -> bytes:
        return gbt_patch_time(self.fleet.logout(self.truck), gbt_time_raw(epoch))

    def heartbeat(self) -> bytes:
        return self._heartbeat

    def time_sync(self) -> bytes:
        return gbt.encode_frame(self.fleet.gbt_frame(self.truck, gc.CMD_TIME_SYNC, gbt.Empty()))

    def answer(self, command: int, body: gbt.Body, *, ok: bool = True) -> bytes:
        """The terminal's answer to a platform command (flag 0x01 success / 0x02 error)."""
        flag = gc.RESP_SUCCESS if ok else gc.RESP_ERROR
        return gbt.encode_frame(self.fleet.gbt_frame(self.truck, command, body, response=flag))


class JtFrames:
    """The messages one JT/T 808 terminal sends; each call takes the truck's next serial."""

    __slots__ = ("_base", "_head", "_mid", "_tail", "_uses", "fleet", "step_s", "truck")

    def __init__(self, fleet: Fleet, truck: Truck, *, refresh_every: int, step_s: float) -> None:
        self.fleet = fleet
        self.truck = truck
        self.step_s = step_s * max(1, refresh_every)
        self._head = self._mid = self._tail = b""
        self._base = 0
        self._encode()

    def _encode(self) -> None:
        raw = self.fleet.report(self.truck)
        payload = jt.unescape(raw[1:-1])[:-1]  # header + body, no checksum
        at = JT_SERIAL_AT[self.truck.version]
        time_at = JT_HEADER[self.truck.version] + JT_LOCATION_TIME_AT
        self._head = payload[:at]
        self._mid = payload[at + 2 : time_at]
        self._tail = payload[time_at + 6 :]
        self._base = _xor(self._head) ^ _xor(self._mid) ^ _xor(self._tail)
        self._uses = 0

    def _serial(self) -> tuple[int, bytes]:
        serial = self.truck.next_jt_serial()
        return serial, serial.to_bytes(2, "big")

    def location(self, epoch: int, refresh_every: int) -> tuple[int, bytes]:
        """(serial, frame) of a 0x0200 location report with time ``epoch``."""
        if self._uses >= refresh_every:
            self.fleet.step(self.truck, self.step_s)
            self._encode()
        self._uses += 1
        serial, s = self._serial()
        t = jt_time_raw(epoch)
        check = self._base ^ s[0] ^ s[1] ^ t[0] ^ t[1] ^ t[2] ^ t[3] ^ t[4] ^ t[5]
        payload = b"".join((self._head, s, self._mid, t, self._tail, _BYTE[check]))
        return serial, b"\x7e" + jt.escape(payload) + b"\x7e"

    def _message(self, msg_id: int, body: jt.Body) -> tuple[int, bytes]:
        frame = jt.encode_frame(self.fleet.jt_frame(self.truck, msg_id, body))
        return self.truck.jt_serial, frame

    def message(self, msg_id: int, body: jt.Body) -> bytes:
        """Any message with a typed body (e.g. a 0x0104 parameters answer), framed by the codec."""
        return self._message(msg_id, body)[1]

    def register(self) -> tuple[int, bytes]:
        frame = self.fleet.login(self.truck)
        return self.truck.jt_serial, frame

    def authenticate(self, code: str) -> tuple[int, bytes]:
        if self.truck.version >= 2019:
            imei = self.truck.phone[-15:].rjust(15, "0")
            body = jt.Authenticate(auth_code=code, imei=imei, software_version="SILK-SIM-1.0")
        else:
            body = jt.Authenticate(auth_code=code)
        return self._message(0x0102, body)

    def heartbeat(self) -> tuple[int, bytes]:
        return self._message(0x0002, jt.Heartbeat())

    def logout(self) -> tuple[int, bytes]:
        frame = self.fleet.logout(self.truck)
        return self.truck.jt_serial, frame

    def general_response(self, reply_serial: int, reply_msg_id: int, result: int) -> bytes:
        body = jt.TerminalGeneralResponse(
            reply_serial=reply_serial, reply_msg_id=reply_msg_id, result=result
        )
        return self._message(0x0001, body)[1]

    def blind_area(self, frames: Sequence[bytes]) -> list[tuple[int, bytes, list[bytes]]]:
        """0x0704 blind-area batches (type 1) carrying the reports of these 0x0200 ``frames``.

        Returns (serial, batch frame, the 0x0200 frames it carries) per batch; batches stay
        within the 1023-byte body limit.
        """
        out: list[tuple[int, bytes, list[bytes]]] = []
        items: list[jt.Location] = []
        carried: list[bytes] = []
        size = 3  # count WORD + type BYTE
        for frame in frames:
            body = jt.decode_frame(frame).body
            if not isinstance(body, jt.Location):
                continue
            item_size = 2 + len(frame)  # a frame is longer than its body: a safe bound
            if items and size + item_size > JT_MAX_BODY:
                out.append(self._batch(items, carried))
                items, carried, size = [], [], 3
            items.append(body)
            carried.append(frame)
            size += item_size
        if items:
            out.append(self._batch(items, carried))
        return out

    def _batch(
        self, items: list[jt.Location], carried: list[bytes]
    ) -> tuple[int, bytes, list[bytes]]:
        serial, frame = self._message(0x0704, jt.BatchLocation(batch_type=1, items=tuple(items)))
        return serial, frame, carried


def measure_generation(
    seconds: float = 1.0, *, version: int = 2016, refresh_every: int = 60
) -> float:
    """Reports per second one process makes for ``version`` (2016/2025 GB/T, 2013/2019 JT)."""
    fleet = Fleet(100, versions=(version,))
    clocks = [DataClock() for _ in fleet.trucks]
    makers: list[Callable[[int, int], object]]
    if version in (2016, 2025):
        makers = [
            GbtFrames(fleet, t, refresh_every=refresh_every, step_s=1.0).realtime
            for t in fleet.trucks
        ]
    else:
        makers = [
            JtFrames(fleet, t, refresh_every=refresh_every, step_s=1.0).location
            for t in fleet.trucks
        ]
    made = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for make, clock in zip(makers, clocks, strict=True):
            make(clock.next(), refresh_every)
        made += len(makers)
    return made / (time.perf_counter() - start)
