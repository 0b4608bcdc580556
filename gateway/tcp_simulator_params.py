"""Parameter stores of a simulated terminal, and the JT/T 808 command bodies it reads.

GB/T 32960 parameter query/set (0x80/0x81) bodies come typed from the codec; JT/T 808 0x8103
(set), 0x8104 / 0x8106 (query all / some), 0x8105 (control), 0x8300 (text) and the terminal's
0x0104 answer are not modelled by the codec (it keeps them as ``RawBody``), so their few
fields are read and written here. A set followed by a query returns the new value.
"""

from __future__ import annotations

import struct
from typing import Final

from gateway.codecs.gbt32960 import Param
from gateway.codecs.gbt32960 import constants as gc

# ---------------------------------------------------------------------------- GB/T 32960

_GBT_DEFAULTS: Final[dict[int, int | bytes]] = {
    gc.PARAM_STORAGE_PERIOD: 1000,
    gc.PARAM_REPORT_PERIOD: 10,
    gc.PARAM_ALARM_REPORT_PERIOD: 1,
    gc.PARAM_DOMAIN_LENGTH: 9,
    gc.PARAM_DOMAIN: b"127.0.0.1",
    gc.PARAM_PORT: 32960,
    gc.PARAM_HARDWARE_VERSION: b"HW001",
    gc.PARAM_FIRMWARE_VERSION: b"FW001",
    gc.PARAM_HEARTBEAT_PERIOD: 30,
    gc.PARAM_TERMINAL_TIMEOUT: 10,
    gc.PARAM_PLATFORM_TIMEOUT: 10,
    gc.PARAM_RELOGIN_INTERVAL: 1,
    gc.PARAM_PUBLIC_DOMAIN_LENGTH: 0,
    gc.PARAM_PUBLIC_DOMAIN: b"",
    gc.PARAM_PUBLIC_PORT: 0,
    gc.PARAM_SAMPLING_CHECK: 2,
}
_GBT_READ_ONLY: Final = frozenset({gc.PARAM_HARDWARE_VERSION, gc.PARAM_FIRMWARE_VERSION})


class GbtParams:
    """One terminal's GB/T 32960 parameters (only what was set is stored per terminal)."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        self.changed: dict[int, int | bytes] | None = None

    def get(self, pid: int) -> int | bytes | None:
        if self.changed is not None and pid in self.changed:
            return self.changed[pid]
        return _GBT_DEFAULTS.get(pid)

    def set(self, params: list[Param]) -> bool:
        """Apply a 0x81 set; False (nothing applied) if a read-only id is in it."""
        if any(p.id in _GBT_READ_ONLY for p in params):
            return False
        if self.changed is None:
            self.changed = {}
        for p in params:
            self.changed[p.id] = p.value
        return True

    def answer(self, ids: list[int]) -> list[Param]:
        """The (id, value) pairs of a 0x80 answer: known ids in the order asked, each
        variable-length value preceded by its length id (the codec needs it to encode)."""
        out: list[Param] = []
        given: set[int] = set()
        for pid in ids:
            value = self.get(pid)
            if value is None or pid in given:
                continue
            length_id = gc.PARAM_LENGTH_ID.get(pid)
            if length_id is not None and length_id not in given:
                out.append(Param(id=length_id, value=len(value) if isinstance(value, bytes) else 0))
                given.add(length_id)
            out.append(Param(id=pid, value=value))
            given.add(pid)
        return out


# ------------------------------------------------------------------------------ JT/T 808

JT_SET_PARAMS: Final = 0x8103
JT_QUERY_ALL_PARAMS: Final = 0x8104
JT_CONTROL: Final = 0x8105
JT_QUERY_PARAMS: Final = 0x8106
JT_TEXT: Final = 0x8300
JT_PARAMS_ANSWER: Final = 0x0104
JT_HEARTBEAT_PARAM: Final = 0x0001

_JT_DEFAULTS: Final[dict[int, bytes]] = {
    0x0001: struct.pack(">I", 30),  # heartbeat interval, s
    0x0002: struct.pack(">I", 10),  # TCP response timeout, s
    0x0013: b"127.0.0.1",  # main server address
    0x0018: struct.pack(">I", 8808),  # server TCP port
    0x0029: struct.pack(">I", 30),  # default report interval, s
    0x0055: struct.pack(">I", 100),  # maximum speed, km/h
    0x0080: struct.pack(">I", 10000),  # odometer, 0.1 km
}


class JtBodyError(ValueError):
    """A JT/T 808 command body that does not parse (answered with result 2, bad message)."""


def parse_set_params(body: bytes) -> list[tuple[int, bytes]]:
    """0x8103: count BYTE, then (id DWORD, length BYTE, value) items."""
    if not body:
        raise JtBodyError("empty 0x8103 body")
    count, at, out = body[0], 1, []
    for _ in range(count):
        if at + 5 > len(body):
            raise JtBodyError("0x8103 item header truncated")
        pid, size = struct.unpack_from(">IB", body, at)
        at += 5
        if at + size > len(body):
            raise JtBodyError(f"0x8103 item 0x{pid:04X} value truncated")
        out.append((pid, body[at : at + size]))
        at += size
    if at != len(body):
        raise JtBodyError("trailing bytes after the 0x8103 items")
    return out


def parse_query_params(body: bytes) -> list[int]:
    """0x8106: count BYTE, then DWORD ids."""
    if not body or len(body) != 1 + 4 * body[0]:
        raise JtBodyError("0x8106 body length does not match its count")
    return list(struct.unpack_from(f">{body[0]}I", body, 1))


def encode_params_answer(reply_serial: int, items: list[tuple[int, bytes]]) -> bytes:
    """0x0104 body: reply serial WORD, count BYTE, then (id DWORD, length BYTE, value) items."""
    parts = [struct.pack(">HB", reply_serial, len(items))]
    parts += [struct.pack(">IB", pid, len(value)) + value for pid, value in items]
    return b"".join(parts)


class JtParams:
    """One terminal's JT/T 808 parameters (only what was set is stored per terminal)."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        self.changed: dict[int, bytes] | None = None

    def set(self, items: list[tuple[int, bytes]]) -> None:
        if self.changed is None:
            self.changed = {}
        self.changed.update(items)

    def answer(self, ids: list[int] | None) -> list[tuple[int, bytes]]:
        """The items of a 0x0104 answer: every parameter (``ids`` None) or the known ones asked."""
        merged = {**_JT_DEFAULTS, **(self.changed or {})}
        if ids is None:
            return sorted(merged.items())[:255]
        return [(pid, merged[pid]) for pid in ids if pid in merged]

    def heartbeat_s(self) -> int | None:
        value = (self.changed or {}).get(JT_HEARTBEAT_PARAM)
        return int.from_bytes(value, "big") if value and len(value) == 4 else None
