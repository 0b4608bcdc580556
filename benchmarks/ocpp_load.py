"""OCPP 1.6J load generator: thousands of simulated charge points on raw asyncio sockets.

A separate process from the server under test, and cheap per message: the machine has two
cores, so the client side must not be what limits the measurement. Each charge point is an
``asyncio.Protocol`` speaking just enough WebSocket (RFC 6455) itself: one HTTP upgrade with
``Sec-WebSocket-Protocol: ocpp1.6``, then client frames with an all-zero masking key (legal:
the key is XORed into the payload, so a zero key leaves the pre-encoded bytes as they are),
server frames parsed in place, pings answered with pongs. No extensions are offered.

Every charge point first sends BootNotification and StartTransaction (its transaction id is
then used in its MeterValues), untimed; then the measured load of Heartbeat and MeterValues
CALLs (``--meter-per-heartbeat`` MeterValues per Heartbeat, 1 by default), each with a
unique message id. A MeterValues carries ten sampled values of a DC
charger: energy (kWh register), power, current and voltage per phase, offered power, SoC,
with a fresh timestamp and energy reading per message. Like a real charge point, each keeps at
most one CALL outstanding (OCPP 1.6 section 4.1.1); the latency of a CALL is from the moment
its frame is written to the socket to the moment its answer is parsed.

Modes (one JSON object on stdout at the end):

* ``max``: closed loop, each charge point sends its next CALL when the last is answered;
  ``per_s`` over ``--seconds`` after ``--warmup``.
* ``rate``: open loop, ``--rate`` CALLs/s on a 1 ms tick, each from the charge point idle
  the longest; when every one is still waiting for an answer (the server fell behind) the
  CALL is counted in ``skipped`` instead.
* ``idle``: ``--charge-points`` connections booted then held; prints ``{"event": "held"}``,
  waits for a line on stdin (the caller measures the server), then checks every connection
  survived and exits.

    python benchmarks/ocpp_load.py --url ws://127.0.0.1:9000/ocpp --mode max \\
        --charge-points 2000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HEARTBEAT, METER = 0, 1
EPOCH = 1_795_000_000  # 2026-11-18: the meter timestamps count on from here, per charge point


def raise_nofile() -> None:
    """Raise the soft open-files limit to the hard one (10,000 connections need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame with the all-zero key: the payload goes out unchanged."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def _iso(t: int) -> bytes:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)).encode()


def _meter_parts(transaction_id: int | None) -> tuple[bytes, bytes, bytes]:
    """MeterValues split around the timestamp and the energy reading (the parts that change)."""
    tx = b"" if transaction_id is None else b',"transactionId":%d' % transaction_id
    head = b'","MeterValues",{"connectorId":1' + tx + b',"meterValue":[{"timestamp":"'
    mid = b'","sampledValue":[{"value":"'
    fixed: list[dict[str, str]] = [
        {"measurand": "Power.Active.Import", "value": "62.4", "unit": "kW"},
        {"measurand": "Power.Offered", "value": "150.0", "unit": "kW"},
        *(
            {"measurand": "Current.Import", "phase": p, "value": v, "unit": "A"}
            for p, v in (("L1", "90.2"), ("L2", "89.7"), ("L3", "90.5"))
        ),
        *(
            {"measurand": "Voltage", "phase": p, "value": v, "unit": "V"}
            for p, v in (("L1-N", "230.4"), ("L2-N", "229.8"), ("L3-N", "231.1"))
        ),
        {"measurand": "SoC", "value": "57", "unit": "Percent", "location": "EV"},
    ]
    for sv in fixed:
        sv.setdefault("location", "Outlet")
        sv["context"] = "Sample.Periodic"
    rest = json.dumps(fixed, separators=(",", ":")).encode()[1:]  # after the energy value
    tail = (
        b'","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register",'
        b'"location":"Outlet","unit":"kWh"},' + rest + b"}]}]"
    )
    return head, mid, tail


@dataclass(slots=True)
class Stats:
    """Answers and latencies (microseconds) of the measured CALLs, per action."""

    sent: int = 0
    answered: int = 0
    errors: int = 0  # CALLERROR answers, and answers to no outstanding CALL
    latency_us: list[list[int]] = field(default_factory=lambda: [[], []])
    recording: bool = False


class ChargePoint(asyncio.Protocol):
    """One charge point: handshake, then one outstanding CALL at a time."""

    def __init__(self, cp_id: str, host: str, path: str, stats: Stats, counter: list[int]) -> None:
        self.cp_id = cp_id
        self.host = host
        self.path = path
        self.stats = stats
        self.counter = counter  # the process-wide message id counter, shared
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.key = base64.b64encode(os.urandom(16))
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.close_reason = ""
        self.waiter: asyncio.Future[bytes] | None = None  # setup CALLs (boot, start)
        self.pending_id = b""  # the outstanding measured CALL's id, b"" when none
        self.pending_kind = HEARTBEAT
        self.sent_ns = 0
        self.chained = False  # closed loop: the next CALL goes out from the answer's callback
        self.ready: collections.deque[ChargePoint] | None = None  # open loop: idle ones
        self.seq = 0
        self.meter = _meter_parts(None)
        self.energy_wh = 10_000 + sum(cp_id.encode()) * 97 % 50_000
        self.meter_every = 1

    # -- WebSocket ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.transport.write(
            b"GET %s/%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
            % (self.path.encode(), self.cp_id.encode(), self.host.encode(), self.key)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.close_reason = self.close_reason or (repr(exc) if exc else "closed by server")
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"{self.cp_id}: {self.close_reason}"))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"{self.cp_id}: {self.close_reason}"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            del self.buf[: end + 4]
            accept = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).lower()
            if not head.startswith(b"http/1.1 101") or accept not in head:
                self.close_reason = bytes(head.split(b"\r\n", 1)[0]).decode(errors="replace")
                assert self.transport is not None
                self.transport.close()
                return
            if b"sec-websocket-protocol: ocpp1.6" not in head:
                self.close_reason = "no ocpp1.6 sub-protocol agreed"
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            self.open.set_result(None)
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1] & 0x7F
            at = 2
            if b1 == 126:
                if len(buf) < 4:
                    return
                b1, at = int.from_bytes(buf[2:4], "big"), 4
            elif b1 == 127:
                if len(buf) < 10:
                    return
                b1, at = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < at + b1:
                return
            payload = bytes(buf[at : at + b1])
            del buf[: at + b1]
            opcode = b0 & 0x0F
            if opcode in (0x1, 0x2):  # the servers under test send OCPP frames unfragmented
                self._message(payload)
            elif opcode == 0x9:
                assert self.transport is not None
                self.transport.write(client_frame(payload, 0xA))
            elif opcode == 0x8:
                self.close_reason = f"close frame {payload[:2].hex()} {payload[2:]!r}"
                assert self.transport is not None
                self.transport.write(client_frame(payload[:2], 0x8))
                self.transport.close()
                return

    def _message(self, text: bytes) -> None:
        if self.waiter is not None:
            waiter, self.waiter = self.waiter, None
            waiter.set_result(text)
            return
        # [3,"<id>",{...}] or [4,"<id>",...]: the id is between the first two quotes.
        start = text.find(b'"') + 1
        uid = text[start : text.find(b'"', start)]
        if uid != self.pending_id:
            self.stats.errors += 1  # an answer to nothing outstanding
            return
        self.pending_id = b""
        stats = self.stats
        if stats.recording:
            stats.answered += 1
            if text[1:2] == b"4":
                stats.errors += 1
            stats.latency_us[self.pending_kind].append(
                (time.perf_counter_ns() - self.sent_ns) // 1000
            )
        if self.chained:
            self.send()
        elif self.ready is not None:
            self.ready.append(self)

    # -- OCPP -----------------------------------------------------------------------------

    def _next_id(self) -> bytes:
        self.counter[0] += 1
        return b"%x" % self.counter[0]

    async def setup_call(self, action: str, payload: object, timeout: float) -> object:
        """An untimed CALL (boot, start transaction): its CALLRESULT payload."""
        uid = self._next_id()
        frame = b'[2,"%s","%s",%s]' % (uid, action.encode(), json.dumps(payload).encode())
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(client_frame(frame))
        answer = json.loads(await asyncio.wait_for(self.waiter, timeout))
        if answer[0] != 3:
            raise RuntimeError(f"{self.cp_id}: {action} answered {answer}")
        result: object = answer[2]
        return result

    async def boot(self, timeout: float, start_transaction: bool) -> str:
        """BootNotification (and StartTransaction): the boot status."""
        boot = await self.setup_call(
            "BootNotification",
            {
                "chargePointVendor": "Silkgate",
                "chargePointModel": "DC-150",
                "chargePointSerialNumber": f"SN-{self.cp_id}",
                "firmwareVersion": "1.4.2",
            },
            timeout,
        )
        assert isinstance(boot, dict)
        tx_id: int | None = None
        if start_transaction:
            start = await self.setup_call(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": f"TAG{self.cp_id[-6:]}",
                    "meterStart": self.energy_wh,
                    "timestamp": _iso(int(time.time())).decode(),
                },
                timeout,
            )
            assert isinstance(start, dict)
            tx_id = start.get("transactionId")
        self.meter = _meter_parts(tx_id)
        return str(boot.get("status"))

    def send(self) -> None:
        """The next measured CALL: Heartbeat or MeterValues."""
        uid = self._next_id()
        self.seq += 1
        if self.seq % (self.meter_every + 1) == 0:
            frame = b'[2,"' + uid + b'","Heartbeat",{}]'
            self.pending_kind = HEARTBEAT
        else:
            self.energy_wh += 42
            head, mid, tail = self.meter
            frame = (
                b'[2,"'
                + uid
                + head
                + _iso(EPOCH + self.seq * 10)
                + mid
                + b"%d.%03d" % divmod(self.energy_wh, 1000)
                + tail
            )
            self.pending_kind = METER
        self.pending_id = uid
        if self.stats.recording:
            self.stats.sent += 1
        assert self.transport is not None
        self.sent_ns = time.perf_counter_ns()
        self.transport.write(client_frame(frame))

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(client_frame(b"\x03\xe8", 0x8))
            self.transport.close()


class Fleet:
    """The charge points of one run."""

    def __init__(self, args: argparse.Namespace) -> None:
        url = urlsplit(args.url)
        self.addr = (url.hostname or "127.0.0.1", url.port or 80)
        self.host = url.netloc
        self.path = url.path.rstrip("/")
        self.args = args
        self.stats = Stats()
        self.counter = [0]
        self.cps: list[ChargePoint] = []
        self.retries = 0  # connections retried while connecting
        self.cpu = [0.0, 0.0]  # process CPU seconds at the start and end of the measured time

    async def connect(self) -> dict[str, int]:
        """Open and boot every charge point (``--connect-concurrency`` at a time)."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(self.args.connect_concurrency)
        statuses: dict[str, int] = {}

        async def dial(cp_id: str) -> ChargePoint:
            # A charge point retries a refused or reset connection (a full listen backlog).
            for attempt in range(5):
                try:
                    _, cp = await loop.create_connection(
                        lambda: ChargePoint(cp_id, self.host, self.path, self.stats, self.counter),
                        *self.addr,
                    )
                    await asyncio.wait_for(cp.open, self.args.timeout)
                    return cp
                except ConnectionError:
                    if attempt == 4:
                        raise
                    self.retries += 1
                    await asyncio.sleep(0.2 * (attempt + 1))
            raise AssertionError("unreachable")

        async def one(i: int) -> None:
            async with gate:
                cp = await dial(f"{self.args.prefix}{i:06d}")
                self.cps.append(cp)
                cp.meter_every = self.args.meter_per_heartbeat
                cp.seq = i % (cp.meter_every + 1)  # the mix holds in every time window
                status = await cp.boot(self.args.timeout, not self.args.no_transaction)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one(i) for i in range(self.args.charge_points)))
        return statuses

    def close(self) -> None:
        for cp in self.cps:
            cp.close()

    def alive(self) -> int:
        return sum(not cp.closed for cp in self.cps)

    async def closed_loop(self) -> float:
        """Each charge point sends its next CALL on the last one's answer; the measured s."""
        for cp in self.cps:
            cp.chained = True
            cp.send()
        await asyncio.sleep(self.args.warmup)
        event("measuring")
        self.cpu[0] = time.process_time()
        self.stats.recording = True
        began = time.perf_counter()
        await asyncio.sleep(self.args.seconds)
        self.stats.recording = False
        took = time.perf_counter() - began
        self.cpu[1] = time.process_time()
        event("measured")
        for cp in self.cps:
            cp.chained = False
        await asyncio.sleep(0.5)  # let the last answers in, unrecorded
        return took

    async def open_loop(self) -> tuple[float, int]:
        """``--rate`` CALLs/s over the charge points, the longest idle first: measured s and
        CALLs skipped (every charge point still waiting for an answer)."""
        rate, ready = self.args.rate, collections.deque(self.cps)
        for cp in self.cps:
            cp.ready = ready
        skipped = 0
        due = 0.0
        began = last = time.perf_counter()
        ends = began + self.args.warmup + self.args.seconds
        recording_from = began + self.args.warmup
        while (now := time.perf_counter()) < ends:
            if not self.stats.recording and now >= recording_from:
                event("measuring")
                self.cpu[0] = time.process_time()
                self.stats.recording = True
                recording_from = now
            due += (now - last) * rate
            last = now
            while due >= 1:
                due -= 1
                while ready and ready[0].closed:
                    ready.popleft()
                if ready:
                    ready.popleft().send()
                else:
                    skipped += 1
            await asyncio.sleep(0.001)
        self.stats.recording = False
        took = time.perf_counter() - recording_from
        self.cpu[1] = time.process_time()
        event("measured")
        for cp in self.cps:
            cp.ready = None
        await asyncio.sleep(0.5)
        return took, skipped


def event(name: str, **fields: object) -> None:
    """A progress line for the caller (it samples the server's CPU and memory on these)."""
    print(json.dumps({"event": name, **fields}), flush=True)


def percentile(sorted_us: list[int], q: float) -> float | None:
    if not sorted_us:
        return None
    return round(sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))] / 1000, 2)


def summary(stats: Stats, seconds: float) -> dict[str, object]:
    every = sorted(stats.latency_us[HEARTBEAT] + stats.latency_us[METER])
    hb, mv = sorted(stats.latency_us[HEARTBEAT]), sorted(stats.latency_us[METER])
    return {
        "per_s": round(stats.answered / seconds),
        "answered": stats.answered,
        "sent": stats.sent,
        "errors": stats.errors,
        "seconds": round(seconds, 2),
        "p50_ms": percentile(every, 0.50),
        "p99_ms": percentile(every, 0.99),
        "max_ms": percentile(every, 1.0),
        "heartbeat_p99_ms": percentile(hb, 0.99),
        "meter_values_p99_ms": percentile(mv, 0.99),
        "meter_values": len(mv),
        "heartbeats": len(hb),
    }


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    raise_nofile()
    fleet = Fleet(args)
    cpu0 = time.process_time()
    began = time.perf_counter()
    try:
        statuses = await fleet.connect()
        out: dict[str, object] = {
            "mode": args.mode,
            "charge_points": args.charge_points,
            "boot": statuses,
            "connect_s": round(time.perf_counter() - began, 2),
            "connect_retries": fleet.retries,
        }
        if args.mode == "max":
            out |= summary(fleet.stats, await fleet.closed_loop())
        elif args.mode == "rate":
            took, skipped = await fleet.open_loop()
            out |= summary(fleet.stats, took) | {"offered_per_s": args.rate, "skipped": skipped}
        else:
            await asyncio.sleep(args.settle)
            event("held", alive=fleet.alive())
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.readline)
            out["alive"] = fleet.alive()
        if args.mode != "idle":
            answered = max(1, fleet.stats.answered)
            out["load_cpu_us"] = round((fleet.cpu[1] - fleet.cpu[0]) / answered * 1e6, 1)
        out["load_cpu_s"] = round(time.process_time() - cpu0, 2)
        out["alive_end"] = fleet.alive()
        closed = [cp.close_reason for cp in fleet.cps if cp.closed]
        if closed:
            out["closed"] = len(closed)
            out["close_reason"] = closed[0]
        return out
    finally:
        fleet.close()
        await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="ws://host:port/path (id appended)")
    parser.add_argument("--mode", choices=("max", "rate", "idle"), default="max")
    parser.add_argument("--charge-points", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured lead-in, s")
    parser.add_argument("--rate", type=float, default=2000.0, help="CALLs/s (mode rate)")
    parser.add_argument("--meter-per-heartbeat", type=int, default=1, help="the message mix")
    parser.add_argument("--prefix", default="CP", help="charge point id prefix")
    parser.add_argument("--no-transaction", action="store_true", help="no StartTransaction")
    parser.add_argument("--connect-concurrency", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=60.0, help="connect / setup CALL, s")
    parser.add_argument("--settle", type=float, default=2.0, help="idle: wait before held")
    args = parser.parse_args()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(runner.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
