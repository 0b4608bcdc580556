"""Parameter stores of a simulated terminal: what a parameter set changes and a query returns.

Command bodies come typed from the codecs: GB/T 32960 query/set (0x80/0x81) as ``Param``
lists, JT/T 808 0x8103 / 0x0104 items as ``TerminalParam`` (id and the value bytes as sent,
typed by ``gateway.codecs.jt808.params``). A set followed by a query returns the new value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from gateway.codecs import jt808 as jt
from gateway.codecs.gbt32960 import Param
from gateway.codecs.gbt32960 import constants as gc
from gateway.codecs.jt808 import params as jp

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

_JT_MAX_ITEMS: Final = 255  # a BYTE count

_JT_DEFAULTS: Final[dict[int, jt.TerminalParam]] = {
    p.param_id: p
    for p in jt.param_items(
        {
            jp.PARAM_HEARTBEAT_INTERVAL: 30,  # s
            jp.PARAM_TCP_TIMEOUT: 10,  # s
            jp.PARAM_MAIN_SERVER: "127.0.0.1",
            jp.PARAM_SERVER_TCP_PORT: 8808,
            jp.PARAM_REPORT_INTERVAL: 30,  # s
            jp.PARAM_MAX_SPEED: 100,  # km/h
            jp.PARAM_ODOMETER: 10000,  # 0.1 km
        }
    )
}


class JtParams:
    """One terminal's JT/T 808 parameters (only what was set is stored per terminal), kept as
    the items were sent, so a query answers them byte for byte."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        self.changed: dict[int, jt.TerminalParam] | None = None

    def set(self, params: Iterable[jt.TerminalParam]) -> None:
        if self.changed is None:
            self.changed = {}
        self.changed.update((p.param_id, p) for p in params)

    def answer(self, ids: Iterable[int] | None) -> tuple[jt.TerminalParam, ...]:
        """The items of a 0x0104 answer: every parameter (``ids`` None) or the known ones asked."""
        merged = {**_JT_DEFAULTS, **(self.changed or {})}
        if ids is None:
            return tuple(merged[pid] for pid in sorted(merged)[:_JT_MAX_ITEMS])
        return tuple(merged[pid] for pid in ids if pid in merged)
