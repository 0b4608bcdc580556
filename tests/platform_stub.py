"""A small GB/T 32960 + JT/T 808 platform over real TCP, for testing the terminal simulator.

Built on the codecs only (stream readers, ``decode_frame``, ``encode_frame``): it answers GB/T
vehicle logins, logouts, heartbeats and time syncs, JT/T 808 registrations (0x8100 with an
auth code), authentications, heartbeats and logouts (0x8001), acknowledges reports, records
everything it received, and sends platform commands and returns the terminal's answer.

Switches (attributes; they may be changed while running):

* ``ack_reports``: acknowledge GB/T 0x02/0x03 and JT/T 808 0x0200/0x0704 (default True);
* ``ack_delay_s``: acknowledge reports this much later (acks keep their order);
* ``drop_after`` / ``drops``: abort a connection right after receiving its ``drop_after``-th
  report (that report is recorded, never acknowledged), for the first ``drops`` connections
  that get that far;
* ``echo_time``: GB/T acks carry the report's data time (else the platform's time);
* ``refuse_logins``: refuse that many GB/T logins / JT/T 808 authentications first.

``ssl`` (constructor only): serve TLS with this server context.

Tests add ``tests/`` to ``sys.path`` and ``import platform_stub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl as ssl_module
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType

from gateway.codecs import gbt32960 as gbt
from gateway.codecs import jt808 as jt
from gateway.codecs.common import BadFrame
from gateway.codecs.errors import ProtocolError
from gateway.simulator import gbt_time

GBT, JT = "gbt32960", "jt808"
RESPONSE_OK, RESPONSE_ERROR, COMMAND = 0x01, 0x02, 0xFE


@dataclass
class Report:
    """One report as received: ``kind`` is realtime / reissue (GB/T) or location / blind."""

    device: str
    kind: str
    time: bytes  # the raw 6-byte data time: with the device, the report's identity
    connection: int
    acked: bool = False


@dataclass(eq=False)
class _Conn:
    number: int
    protocol: str
    writer: asyncio.StreamWriter
    device: str = ""
    version: int = 0
    reports: int = 0
    serial: int = 0  # JT/T 808: serial of the platform's messages
    dropped: bool = False


@dataclass
class _Pending:
    key: tuple[str, int]
    future: asyncio.Future[gbt.Frame | jt.Frame] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PlatformStub:
    """Two listeners on 127.0.0.1 (ephemeral ports ``gbt_port``, ``jt_port``)."""

    def __init__(
        self,
        *,
        ack_reports: bool = True,
        ack_delay_s: float = 0.0,
        drop_after: int | None = None,
        drops: int = 1,
        echo_time: bool = True,
        refuse_logins: int = 0,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.ssl = ssl
        self.ack_reports = ack_reports
        self.ack_delay_s = ack_delay_s
        self.drop_after = drop_after
        self.drops = drops
        self.echo_time = echo_time
        self.refuse_logins = refuse_logins
        self.reports: list[Report] = []
        self.events: Counter[str] = Counter()  # login, register, auth, heartbeat, logout, ...
        self.logins: Counter[str] = Counter()  # per device: accepted logins / authentications
        self.bad_frames = 0
        self.connections = 0
        self.open_connections = 0
        self.gbt_port = self.jt_port = 0
        self._servers: list[asyncio.Server] = []
        self._live: dict[str, _Conn] = {}  # device -> its latest connection
        self._conns: set[_Conn] = set()
        self._pending: list[_Pending] = []
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (on new ephemeral ports the first time, on the same ports afterwards)."""
        for protocol in (GBT, JT):
            port = self.gbt_port if protocol == GBT else self.jt_port
            server = await asyncio.start_server(
                functools.partial(self._serve, protocol),
                "127.0.0.1",
                port,
                backlog=1024,
                ssl=self.ssl,
            )
            port = server.sockets[0].getsockname()[1]
            if protocol == GBT:
                self.gbt_port = port
            else:
                self.jt_port = port
            self._servers.append(server)

    async def close(self) -> None:
        """Stop listening and abort every connection (what a killed platform looks like)."""
        for server in self._servers:
            server.close()
        for conn in list(self._conns):
            conn.writer.transport.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def __aenter__(self) -> PlatformStub:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what tests look at ------------------------------------------------------------------

    def reports_of(self, device: str, *kinds: str) -> list[Report]:
        return [r for r in self.reports if r.device == device and (not kinds or r.kind in kinds)]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until ``predicate()`` holds; it is checked whenever the stub handled something."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def command_gbt(self, vin: str, command: int, body: gbt.Body) -> gbt.Frame:
        """Send a GB/T 32960 platform command (0x80/0x81/0x82) and return the answer."""
        conn = self._live[vin]
        frame = gbt.Frame(
            version=conn.version, command=command, response=COMMAND, vin=vin, encryption=1,
            body=body,
        )  # fmt: skip
        pending = _Pending(key=(vin, command))
        self._pending.append(pending)
        conn.writer.write(gbt.encode_frame(frame))
        answer = await asyncio.wait_for(pending.future, 5.0)
        assert isinstance(answer, gbt.Frame)
        return answer

    async def command_jt(self, phone: str, msg_id: int, body: jt.Body) -> jt.Frame:
        """Send a JT/T 808 platform message (a ``RawBody`` goes out as given, malformed or not)
        and return the terminal's answer (0x0001 or 0x0104)."""
        conn = self._live[phone]
        serial = self._send_jt(conn, phone, msg_id, body)
        pending = _Pending(key=(phone, serial))
        self._pending.append(pending)
        answer = await asyncio.wait_for(pending.future, 5.0)
        assert isinstance(answer, jt.Frame)
        return answer

    # -- connections -------------------------------------------------------------------------

    async def _serve(self, protocol: str, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        conn = _Conn(number=self.connections, protocol=protocol, writer=w)
        self._conns.add(conn)
        reader = gbt.FrameReader() if protocol == GBT else jt.FrameReader()
        try:
            while not conn.dropped and (data := await r.read(65536)):
                reader.feed(data)
                for item in reader:
                    if isinstance(item, BadFrame):
                        self.bad_frames += 1
                        continue
                    if protocol == GBT:
                        self._on_gbt(conn, item)
                    else:
                        self._on_jt(conn, item)
                    if conn.dropped:
                        break
                self._changed.set()
        except (ConnectionError, ProtocolError):
            self.bad_frames += 1
        finally:
            self._conns.discard(conn)
            self.open_connections -= 1
            if not conn.dropped:
                w.close()
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()
            self._changed.set()

    def _count_report(self, conn: _Conn, report: Report) -> bool:
        """Record a report; True when the connection is dropped because of it."""
        self.reports.append(report)
        conn.reports += 1
        if self.drop_after is not None and self.drops > 0 and conn.reports >= self.drop_after:
            self.drops -= 1
            conn.dropped = True
            conn.writer.transport.abort()
            return True
        return False

    def _ack(self, conn: _Conn, frame: bytes, reports: list[Report]) -> None:
        def send() -> None:
            if not conn.writer.is_closing():
                conn.writer.write(frame)
                for r in reports:
                    r.acked = True
                self._changed.set()

        if self.ack_delay_s > 0:
            asyncio.get_running_loop().call_later(self.ack_delay_s, send)
        else:
            send()

    def _resolve(self, key: tuple[str, int], answer: gbt.Frame | jt.Frame) -> None:
        for p in self._pending:
            if p.key == key and not p.future.done():
                p.future.set_result(answer)
                self._pending.remove(p)
                return
        self.events["unexpected answer"] += 1

    # -- GB/T 32960 --------------------------------------------------------------------------

    def _gbt_reply(
        self, conn: _Conn, f: gbt.Frame, body: gbt.Body, flag: int = RESPONSE_OK
    ) -> bytes:
        reply = gbt.Frame(
            version=f.version, command=f.command, response=flag, vin=f.vin, encryption=1,
            body=body,
        )  # fmt: skip
        return gbt.encode_frame(reply)

    def _on_gbt(self, conn: _Conn, raw: bytes) -> None:
        f = gbt.decode_frame(raw)
        conn.device, conn.version = f.vin, f.version
        if f.response != COMMAND:  # the terminal's answer to a platform command
            self._resolve((f.vin, f.command), f)
            return
        now = gbt.TimeOnly(time=gbt_time(datetime.now(UTC)))
        body = f.body
        if f.command == 0x01:
            self.events["login"] += 1
            if self.refuse_logins > 0:
                self.refuse_logins -= 1
                conn.writer.write(self._gbt_reply(conn, f, now, RESPONSE_ERROR))
                return
            self.logins[f.vin] += 1
            self._live[f.vin] = conn
            conn.writer.write(self._gbt_reply(conn, f, now))
        elif f.command in (0x02, 0x03) and isinstance(body, gbt.RealtimeData):
            kind = "realtime" if f.command == 0x02 else "reissue"
            report = Report(f.vin, kind, body.time.raw, conn.number)
            if self._count_report(conn, report) or not self.ack_reports:
                return
            ack = gbt.TimeOnly(time=body.time) if self.echo_time else now
            self._ack(conn, self._gbt_reply(conn, f, ack), [report])
        elif f.command == 0x04:
            self.events["logout"] += 1
            conn.writer.write(self._gbt_reply(conn, f, now))
        elif f.command == 0x07:
            self.events["heartbeat"] += 1
            conn.writer.write(self._gbt_reply(conn, f, gbt.Empty()))
        elif f.command == 0x08:
            self.events["time sync"] += 1
            conn.writer.write(self._gbt_reply(conn, f, now))
        else:
            self.events["unknown"] += 1

    # -- JT/T 808 ----------------------------------------------------------------------------

    def _send_jt(self, conn: _Conn, phone: str, msg_id: int, body: jt.Body) -> int:
        conn.serial = (conn.serial + 1) & 0xFFFF
        frame = jt.Frame(
            version=conn.version, msg_id=msg_id, phone=phone, serial=conn.serial, body=body,
            protocol_version=1 if conn.version == 2019 else None,
        )  # fmt: skip
        conn.writer.write(jt.encode_frame(frame))
        return conn.serial

    def _jt_ack(self, conn: _Conn, m: jt.Frame, result: int = 0) -> bytes:
        conn.serial = (conn.serial + 1) & 0xFFFF
        body = jt.PlatformGeneralResponse(
            reply_serial=m.serial, reply_msg_id=m.msg_id, result=result
        )
        frame = jt.Frame(
            version=m.version, msg_id=0x8001, phone=m.phone, serial=conn.serial, body=body,
            protocol_version=m.protocol_version,
        )  # fmt: skip
        return jt.encode_frame(frame)

    @staticmethod
    def auth_code(phone: str) -> str:
        return f"AUTH{phone[-6:]}"

    def _on_jt(self, conn: _Conn, raw: bytes) -> None:
        m = jt.decode_frame(raw)
        conn.device, conn.version = m.phone, m.version
        body = m.body
        if m.msg_id == 0x0100:
            self.events["register"] += 1
            reply = jt.RegisterResponse(
                reply_serial=m.serial, result=0, auth_code=self.auth_code(m.phone)
            )
            self._send_jt(conn, m.phone, 0x8100, reply)
        elif m.msg_id == 0x0102 and isinstance(body, jt.Authenticate):
            self.events["auth"] += 1
            ok = body.auth_code == self.auth_code(m.phone)
            if ok and self.refuse_logins > 0:
                self.refuse_logins -= 1
                ok = False
            if ok:
                self.logins[m.phone] += 1
                self._live[m.phone] = conn
            conn.writer.write(self._jt_ack(conn, m, 0 if ok else 1))
        elif m.msg_id == 0x0200 and isinstance(body, jt.Location):
            report = Report(m.phone, "location", body.time.raw, conn.number)
            if self._count_report(conn, report) or not self.ack_reports:
                return
            self._ack(conn, self._jt_ack(conn, m), [report])
        elif m.msg_id == 0x0704 and isinstance(body, jt.BatchLocation):
            kind = "blind" if body.batch_type == 1 else "batch"
            reports = [Report(m.phone, kind, item.time.raw, conn.number) for item in body.items]
            dropped = False
            for report in reports:
                dropped = self._count_report(conn, report) or dropped
            if dropped or not self.ack_reports:
                return
            self._ack(conn, self._jt_ack(conn, m), reports)
        elif m.msg_id in (0x0002, 0x0003):
            self.events["heartbeat" if m.msg_id == 0x0002 else "logout"] += 1
            conn.writer.write(self._jt_ack(conn, m))
        elif isinstance(body, jt.TerminalGeneralResponse | jt.QueryParamsResponse):
            self._resolve((m.phone, body.reply_serial), m)
        else:
            self.events["unknown"] += 1
