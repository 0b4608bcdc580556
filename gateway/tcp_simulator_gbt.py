"""A simulated GB/T 32960 terminal: vehicle login, realtime reports, reissue, heartbeat,
time sync, logout, and answers to parameter query/set (0x80/0x81) and terminal control (0x82).

Acks of realtime (0x02) and reissue (0x03) reports carry no serial: by default they are matched
first in, first out per command (one TCP connection keeps the order); with ``ack_match =
"time"`` an ack whose 6-byte time equals a pending report's data time acknowledges that report
(platforms that echo the data time), otherwise the oldest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from gateway.codecs import gbt32960 as gbt
from gateway.codecs.errors import ProtocolError
from gateway.codecs.gbt32960 import constants as gc
from gateway.simulator import Fleet, Truck, gbt_time
from gateway.tcp_simulator_frames import (
    GBT_TIME_AT,
    REALTIME,
    REISSUE,
    GbtFrames,
    gbt_as_reissue,
)
from gateway.tcp_simulator_params import GbtParams
from gateway.tcp_simulator_terminal import Context, Terminal

_RESET_COMMANDS = frozenset({gc.CTRL_RESET, gc.CTRL_DISCONNECT})
_Pending = dict[bytes, tuple[float, bytes]]  # data time -> (sent at, frame)


def _key(frame: bytes) -> bytes:
    return frame[GBT_TIME_AT : GBT_TIME_AT + 6]


class GbtTerminal(Terminal):
    """One GB/T 32960 vehicle terminal (T-Box)."""

    PROTOCOL: ClassVar[str] = "gbt32960"

    __slots__ = ("frames", "params", "pending_re", "pending_rt", "refresh_every", "truck")

    def __init__(self, ctx: Context, fleet: Fleet, truck: Truck, quota: int | None) -> None:
        super().__init__(ctx, truck.vin, quota)
        cfg = ctx.config
        self.truck = truck
        self.refresh_every = cfg.refresh_every
        self.frames = GbtFrames(
            fleet, truck, refresh_every=cfg.refresh_every, step_s=max(cfg.interval_s, 1.0)
        )
        self.params = GbtParams()
        self.pending_rt: _Pending = {}
        self.pending_re: _Pending = {}

    # -- reports -----------------------------------------------------------------------------

    def new_reader(self) -> Any:
        return gbt.FrameReader()

    def make_report(self, epoch: int) -> bytes:
        return self.frames.realtime(epoch, self.refresh_every)

    def send_report(self, epoch: int, now: float) -> None:
        frame = self.frames.realtime(epoch, self.refresh_every)
        self.queue(frame)
        self.stats.sent += 1
        if self.ack:
            self.pending_rt[_key(frame)] = (now, frame)

    def send_resend(self, frames: list[bytes], now: float) -> int:
        out = [gbt_as_reissue(f) for f in frames]
        for frame in out:
            self.queue(frame)
        self.stats.sent += len(out)
        self.stats.resent += len(out)
        if self.ack:
            for frame in out:
                self.pending_re[_key(frame)] = (now, frame)
        return len(out)

    def requeue(self) -> list[bytes]:
        frames = [f for _, f in self.pending_re.values()] + [f for _, f in self.pending_rt.values()]
        self.pending_re.clear()
        self.pending_rt.clear()
        frames.sort(key=_key)  # YY MM DD hh mm ss: byte order is time order
        return frames

    def in_flight(self) -> int:
        return len(self.pending_rt) + len(self.pending_re)

    def unacked_reports(self) -> int:
        return len(self.pending_rt) + len(self.pending_re)

    # -- what the platform sends -------------------------------------------------------------

    def on_frame(self, raw: bytes, now: float) -> None:
        command, flag = raw[2], raw[3]
        if flag == gc.RESP_COMMAND:
            self._command(raw)
        elif command in (REALTIME, REISSUE):
            self._ack(command, flag, raw, now)
        elif command == gc.CMD_HEARTBEAT:
            self.stats.heartbeat_acks += 1
        elif self.answer(command, raw):
            pass
        elif command == gc.CMD_TIME_SYNC:
            self.stats.time_syncs += 1
        else:
            self.stats.errors += 1

    def _ack(self, command: int, flag: int, raw: bytes, now: float) -> None:
        pending = self.pending_rt if command == REALTIME else self.pending_re
        if not pending:
            if self.ack:
                self.stats.errors += 1  # an ack for nothing we sent
            return
        entry = None
        if self.ctx.config.ack_match == "time" and len(raw) == GBT_TIME_AT + 7:
            entry = pending.pop(_key(raw), None)
        if entry is None:
            entry = pending.pop(next(iter(pending)))
        self.stats.latency.add(now - entry[0])
        if flag == gc.RESP_SUCCESS:
            self.stats.acked += 1
        else:
            self.stats.rejected += 1

    def _reply(self, command: int, body: gbt.Body, *, ok: bool = True) -> None:
        self.write(self.frames.answer(command, body, ok=ok))
        self.stats.commands += 1

    def _command(self, raw: bytes) -> None:
        try:
            frame = gbt.decode_frame(raw)
        except ProtocolError:
            self.stats.errors += 1
            return
        body, command = frame.body, frame.command
        now = gbt_time(datetime.now(UTC))
        if command == gc.CMD_PARAM_QUERY and isinstance(body, gbt.ParamQuery):
            params = self.params.answer(body.ids)
            self._reply(command, gbt.ParamValues(time=now, params=params))
        elif command == gc.CMD_PARAM_SET and isinstance(body, gbt.ParamValues):
            ok = not body.unparsed_count and self.params.set(body.params)
            self._reply(command, gbt.TimeOnly(time=now), ok=ok)
            for p in body.params:
                if ok and p.id == gc.PARAM_HEARTBEAT_PERIOD and isinstance(p.value, int):
                    self.set_heartbeat(float(p.value))
        elif command == gc.CMD_CONTROL and isinstance(body, gbt.Control):
            self._reply(command, gbt.TimeOnly(time=now))
            if body.command in _RESET_COMMANDS:  # a real terminal drops the link and comes back
                self.ctx.loop.call_soon(self.disconnect)
        else:
            self._reply(command, gbt.TimeOnly(time=now), ok=False)

    # -- session -----------------------------------------------------------------------------

    def _epoch(self) -> int:
        return self._wall() if self.clock.wall else self.clock.last

    @staticmethod
    def _wall() -> int:
        return int(datetime.now(UTC).timestamp())

    async def handshake(self) -> bool:
        raw = await self.request(self.frames.login(self._epoch()), gc.CMD_VEHICLE_LOGIN)
        if raw[3] != gc.RESP_SUCCESS:
            self.stats.login_failures += 1
            return False
        self.stats.logins += 1
        if self.ctx.config.time_sync:
            await self.request(self.frames.time_sync(), gc.CMD_TIME_SYNC)
            self.stats.time_syncs += 1
        return True

    async def logout(self) -> None:
        await self.request(self.frames.logout(self._epoch()), gc.CMD_VEHICLE_LOGOUT)

    def send_heartbeat(self) -> None:
        self.write(self.frames.heartbeat())
