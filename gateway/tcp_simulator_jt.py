"""A simulated JT/T 808 terminal: register (once; the auth code is kept across reconnects),
authenticate, location reports, heartbeats, blind-area batches (0x0704 type 1) for what was
not acknowledged, logout, and answers to platform commands: 0x8103 set parameters -> 0x0001,
0x8104 / 0x8106 query parameters -> 0x0104, 0x8105 terminal control -> 0x0001, 0x8300 text ->
0x0001, anything else -> 0x0001 with result 3 (not supported). Command bodies come typed from
the codec; one that does not decode is answered with result 2 (bad message) and counted as an
error.

Every terminal message is acknowledged by a 0x8001 naming its serial and message id.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.codecs import jt808 as jt
from gateway.codecs.errors import ProtocolError
from gateway.codecs.jt808 import constants as jc
from gateway.codecs.jt808 import params as jp
from gateway.simulator import Fleet, Truck
from gateway.tcp_simulator_frames import JT_HEADER, JT_SERIAL_AT, JtFrames
from gateway.tcp_simulator_params import JtParams
from gateway.tcp_simulator_terminal import Context, Terminal


class JtTerminal(Terminal):
    """One JT/T 808 road-transport terminal."""

    PROTOCOL: ClassVar[str] = "jt808"

    __slots__ = ("auth_code", "batches", "frames", "params", "pending", "refresh_every", "truck")

    def __init__(self, ctx: Context, fleet: Fleet, truck: Truck, quota: int | None) -> None:
        # the phone as on the wire: 12 BCD digits in 2013, 20 in 2019
        super().__init__(
            ctx, truck.phone.rjust(20, "0") if truck.version >= 2019 else truck.phone, quota
        )
        cfg = ctx.config
        self.truck = truck
        self.refresh_every = cfg.refresh_every
        self.frames = JtFrames(
            fleet, truck, refresh_every=cfg.refresh_every, step_s=max(cfg.interval_s, 1.0)
        )
        self.params = JtParams()
        self.auth_code: str | None = None
        self.pending: dict[int, tuple[float, bytes]] = {}  # serial -> (sent at, 0x0200 frame)
        self.batches: dict[int, tuple[float, list[bytes]]] = {}  # serial -> (sent at, reports)

    # -- reports -----------------------------------------------------------------------------

    def new_reader(self) -> Any:
        return jt.FrameReader()

    def make_report(self, epoch: int) -> bytes:
        return self.frames.location(epoch, self.refresh_every)[1]

    def send_report(self, epoch: int, now: float) -> None:
        serial, frame = self.frames.location(epoch, self.refresh_every)
        self.queue(frame)
        self.stats.sent += 1
        if self.ack:
            self.pending[serial] = (now, frame)

    def send_resend(self, frames: list[bytes], now: float) -> int:
        batches = self.frames.blind_area(frames)
        for _, frame, _ in batches:
            self.queue(frame)
        for serial, _, carried in batches:
            self.stats.sent += len(carried)
            self.stats.resent += len(carried)
            if self.ack:
                self.batches[serial] = (now, carried)
        return len(batches)

    def requeue(self) -> list[bytes]:
        entries = [(t, [f]) for t, f in self.pending.values()] + list(self.batches.values())
        self.pending.clear()
        self.batches.clear()
        entries.sort(key=lambda e: e[0])
        return [f for _, frames in entries for f in frames]

    def in_flight(self) -> int:
        return len(self.pending) + len(self.batches)

    def unacked_reports(self) -> int:
        return len(self.pending) + sum(len(frames) for _, frames in self.batches.values())

    # -- what the platform sends -------------------------------------------------------------

    def on_frame(self, raw: bytes, now: float) -> None:
        try:
            msg = jt.decode_frame(raw)
        except ProtocolError:
            self.stats.errors += 1
            self._refuse(raw)
            return
        body = msg.body
        if isinstance(body, jt.PlatformGeneralResponse):
            self._ack(body, now)
        elif isinstance(body, jt.RegisterResponse):
            if not self.answer(body.reply_serial, body):
                self.stats.errors += 1
        elif msg.msg_id & 0x8000:
            self._command(msg)
        else:
            self.stats.errors += 1  # a terminal message sent to a terminal

    def _ack(self, body: jt.PlatformGeneralResponse, now: float) -> None:
        serial, msg_id = body.reply_serial, body.reply_msg_id
        ok = body.result == jc.RESULT_OK
        if msg_id == jc.LOCATION:
            entry = self.pending.pop(serial, None)
            if entry is not None:
                self.stats.latency.add(now - entry[0])
                self._count(ok, 1)
            elif self.ack:
                self.stats.errors += 1
        elif msg_id == jc.BATCH_LOCATION:
            batch = self.batches.pop(serial, None)
            if batch is not None:
                for _ in batch[1]:
                    self.stats.latency.add(now - batch[0])
                self._count(ok, len(batch[1]))
            elif self.ack:
                self.stats.errors += 1
        elif msg_id == jc.HEARTBEAT:
            self.stats.heartbeat_acks += 1
        elif not self.answer(serial, body):
            self.stats.errors += 1

    def _count(self, ok: bool, n: int) -> None:
        if ok:
            self.stats.acked += n
        else:
            self.stats.rejected += n

    def _refuse(self, raw: bytes) -> None:
        """Answer a platform message whose body does not decode with 0x0001 result 2."""
        payload = jt.unescape(raw[1:-1])
        if len(payload) < JT_HEADER[2013] or not payload[0] & 0x80:
            return  # not even a header, or not a platform message: nothing to answer
        version = 2019 if payload[2] & 0x40 else 2013
        at = JT_SERIAL_AT[version]
        if len(payload) < at + 2:
            return
        msg_id = int.from_bytes(payload[:2], "big")
        serial = int.from_bytes(payload[at : at + 2], "big")
        self.write(self.frames.general_response(serial, msg_id, jc.RESULT_BAD_MESSAGE))
        self.stats.commands += 1

    def _general(self, msg: jt.Frame, result: int) -> None:
        self.write(self.frames.general_response(msg.serial, msg.msg_id, result))
        self.stats.commands += 1

    def _command(self, msg: jt.Frame) -> None:
        # a body that does not decode never gets here: on_frame answers it with result 2
        body = msg.body
        if isinstance(body, jt.SetParams):
            self.params.set(body.params)
            self._general(msg, jc.RESULT_OK)
            heartbeat = jt.param_values(body.params).get(jp.PARAM_HEARTBEAT_INTERVAL)
            if isinstance(heartbeat, int) and heartbeat:
                self.set_heartbeat(float(heartbeat))
        elif isinstance(body, jt.QueryAllParams | jt.QueryParams):
            ids = body.param_ids if isinstance(body, jt.QueryParams) else None
            answer = jt.QueryParamsResponse(reply_serial=msg.serial, params=self.params.answer(ids))
            try:
                frame = self.frames.message(jc.QUERY_PARAMS_RESPONSE, answer)
            except ProtocolError:  # more than one message holds (1023 bytes, 255 items)
                self.stats.errors += 1
                self._general(msg, jc.RESULT_FAIL)
                return
            self.write(frame)
            self.stats.commands += 1
        elif isinstance(body, jt.TerminalControl):
            self._general(msg, jc.RESULT_OK)
            if body.command == jc.CONTROL_RESET:  # a real terminal drops the link, comes back
                self.ctx.loop.call_soon(self.disconnect)
        elif isinstance(body, jt.TextMessage):
            self._general(msg, jc.RESULT_OK)
        else:
            self._general(msg, jc.RESULT_UNSUPPORTED)

    # -- session -----------------------------------------------------------------------------

    async def handshake(self) -> bool:
        if self.auth_code is None:
            serial, frame = self.frames.register()
            reply = await self.request(frame, serial)
            if reply.result != jc.RESULT_OK or not reply.auth_code:
                self.stats.login_failures += 1
                return False
            self.auth_code = reply.auth_code
            self.stats.registrations += 1
        serial, frame = self.frames.authenticate(self.auth_code)
        ack = await self.request(frame, serial)
        if ack.result != jc.RESULT_OK:
            self.auth_code = None  # register again next time
            self.stats.login_failures += 1
            return False
        self.stats.logins += 1
        return True

    async def logout(self) -> None:
        serial, frame = self.frames.logout()
        await self.request(frame, serial)

    def send_heartbeat(self) -> None:
        self.write(self.frames.heartbeat()[1])
