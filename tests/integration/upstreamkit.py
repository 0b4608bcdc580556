"""A GB/T 32960 upstream platform for the tests (forwarding): it answers the platform login,
heartbeats and every relayed frame, and records what it received; it can go away mid-stream.
Shared by test_forward_gbt.py and the end-to-end chain test."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.codecs import gbt32960 as gbt
from gateway.codecs.gbt32960 import constants as C
from gateway.forward.gbt_link import device_time

PASSWORD_ENV = "SILKGATE_TEST_UPSTREAM_PASSWORD"
PASSWORD = "s3cret-platform"

# (VIN, command, device time): one relayed frame, whatever edition it travels in.
Key = tuple[str, int, bytes]


class Upstream:
    """A GB/T 32960 platform for the tests: records every relayed frame it answers."""

    def __init__(
        self,
        *,
        version: int = 2016,
        ack_realtime: bool = True,
        login_answer: int = C.RESP_SUCCESS,
        ssl_ctx: ssl.SSLContext | None = None,
        stop_after: int | None = None,
        abort: bool = False,
    ) -> None:
        self.version = version
        self.stop_after = stop_after  # go away the moment this many frames are recorded ...
        self.abort = abort  # ... with a reset instead of a clean close
        self.ack_realtime = ack_realtime
        self.login_answer = login_answer
        self.ssl_ctx = ssl_ctx
        self.frames: list[bytes] = []  # relayed frames, in the order received
        self.logins: list[gbt.PlatformLogin] = []
        self.logouts = 0
        self.heartbeats = 0
        self.errors: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._recording = True
        self._changed = asyncio.Event()
        self.gone = asyncio.Event()

    async def start(self) -> Upstream:
        self._recording = True
        self.gone.clear()
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.ssl_ctx
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def go_away(self, *, abort: bool = False) -> None:
        """Refuse new connections; end the open ones cleanly (the answers already written,
        then FIN; nothing after is recorded) or, with ``abort``, with a reset."""
        self._recording = False
        assert self._server is not None
        self._server.close()
        for w in list(self._links):
            if abort:
                w.transport.abort()
            else:
                w.write_eof()
        self.gone.set()

    async def stopped(self) -> None:
        """Wait until gone (``stop_after``) and every connection has ended."""
        assert self._server is not None
        async with asyncio.timeout(10):  # the forwarder hangs up on the FIN
            await self.gone.wait()
            await self._server.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._links):
            w.transport.abort()

    async def wait(self, pred: Callable[[Upstream], bool], timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not pred(self):
                self._changed.clear()
                await self._changed.wait()

    def keys(self) -> list[Key]:
        return [key(f) for f in self.frames]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._links.add(writer)
        frames = gbt.FrameReader()
        try:
            while data := await reader.read(65536):
                if not self._recording:
                    continue  # gone away cleanly: read and drop until the forwarder hangs up
                frames.feed(data)
                for item in frames:
                    if not isinstance(item, bytes):
                        self.errors.append(f"bad frame: {item}")
                        continue
                    self._on_frame(item, writer)
                    if self.stop_after is not None and len(self.frames) >= self.stop_after:
                        # Mid-stream: the frames behind this one were sent and get no answer.
                        self.go_away(abort=self.abort)
                        break
                self._changed.set()
        except ConnectionError:
            pass
        finally:
            self._links.discard(writer)
            writer.close()

    def _on_frame(self, raw: bytes, writer: asyncio.StreamWriter) -> None:
        frame = gbt.decode_frame(raw)
        if frame.version != self.version:
            self.errors.append(f"a {frame.version} frame sent to a {self.version} platform")
        answer: gbt.Body = gbt.TimeOnly(time=device_time_now())
        response = C.RESP_SUCCESS
        if frame.command == C.CMD_PLATFORM_LOGIN:
            assert isinstance(frame.body, gbt.PlatformLogin)
            self.logins.append(frame.body)
            response = self.login_answer if frame.body.password == PASSWORD else C.RESP_ERROR
        elif frame.command == C.CMD_PLATFORM_LOGOUT:
            self.logouts += 1
        elif frame.command == C.CMD_HEARTBEAT:
            self.heartbeats += 1
            answer = gbt.Empty()
        elif frame.command in (C.CMD_REALTIME, C.CMD_REISSUE, C.CMD_VEHICLE_LOGIN, 0x04):
            self.frames.append(raw)
            if frame.command in (C.CMD_REALTIME, C.CMD_REISSUE) and not self.ack_realtime:
                return
        else:
            self.errors.append(f"unexpected command 0x{frame.command:02X}")
            return
        out = gbt.Frame(
            version=self.version,
            command=frame.command,
            response=response,
            vin=frame.vin,
            encryption=C.ENC_NONE,
            body=answer,
        )
        writer.write(gbt.encode_frame(out))


def device_time_now() -> gbt.DeviceTime:
    return device_time(datetime.now(UTC))


def key(raw: bytes) -> Key:
    frame = gbt.decode_frame(raw)
    time = getattr(frame.body, "time", None)
    assert time is not None
    return (frame.vin, frame.command, bytes(time.raw))
