"""Commands across the worker processes of ``silkgate run --workers N`` (docs/api.md, "Workers").

A device is connected to exactly one worker, but the API listens in every worker (the kernel
spreads HTTP connections over them with SO_REUSEPORT). Each worker also listens on a unix
socket of its own, ``<socket_dir>/w<i>.sock`` (mode 0600: only the gateway's user may
connect). A worker that takes a command for a device connected elsewhere:

1. runs it itself when the device is connected to it;
2. else asks every other worker, at once, whether it holds the device (``holds``: answered
   from memory, under a millisecond);
3. sends the command to the first worker that said yes (``run``), which runs it as if it had
   been asked directly and answers the :class:`~gateway.commands_types.CommandResult`;
4. when none holds it, runs it itself: the device is offline, which is recorded as usual.

Asking first and sending to one worker means that a device connected to two workers for a
moment (a reconnect whose old connection has not timed out yet) gets the command once. Nothing
about connections is kept anywhere: the answer is always the live state. The wire format is
one JSON line each way per unix connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import msgspec

from gateway.api.dispatch import CommandSpec, LocalCommands, NotServed
from gateway.commands_types import CommandError, CommandResult

log = logging.getLogger("silkgate.api.routing")

ASK_TIMEOUT_S: Final = 2.0  # a ``holds`` question
RUN_MARGIN_S: Final = 10.0  # a ``run`` may take its command's time limit and this much more
_MAX_LINE: Final = 4 << 20


class _Ask(msgspec.Struct, frozen=True, kw_only=True):
    op: Literal["holds", "run"]
    protocol: str = ""
    device: str = ""
    spec: CommandSpec | None = None


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    holds: bool = False
    result: CommandResult | None = None
    error: str | None = None
    code: Literal["bad_request", "not_served", "busy", "internal"] | None = None


_encode = msgspec.json.Encoder().encode
_decode_ask = msgspec.json.Decoder(_Ask).decode
_decode_answer = msgspec.json.Decoder(_Answer).decode


class PeerUnavailable(Exception):
    """The worker holding the device did not answer (it died, or its answer was lost)."""


@dataclass(frozen=True, slots=True)
class Routed:
    """A command's result and the worker that sent it down (None: a single process)."""

    result: CommandResult
    worker: int | None


def socket_path(socket_dir: Path, worker: int) -> Path:
    return socket_dir / f"w{worker}.sock"


class CommandRouter:
    """Runs API commands in the process that holds the device (see the module docstring).
    ``workers`` 1 (or ``socket_dir`` None) is a single process: everything runs here."""

    def __init__(
        self,
        local: LocalCommands,
        *,
        worker: int | None = None,
        workers: int = 1,
        socket_dir: Path | None = None,
    ) -> None:
        self.local = local
        self.worker = worker
        self.workers = workers
        self.socket_dir = socket_dir if workers > 1 else None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.forwarded = 0  # commands sent to another worker
        self.served = 0  # commands run here for another worker

    @property
    def peers(self) -> list[int]:
        if self.socket_dir is None or self.worker is None:
            return []
        return [i for i in range(self.workers) if i != self.worker]

    async def start(self) -> None:
        """Listen for the other workers (a no-op in a single process)."""
        if self.socket_dir is None or self.worker is None:
            return
        self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = socket_path(self.socket_dir, self.worker)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a predecessor that died
        old_umask = os.umask(0o177)  # the socket is created 0600
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(path), limit=_MAX_LINE
            )
        finally:
            os.umask(old_umask)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            if self.socket_dir is not None and self.worker is not None:
                with contextlib.suppress(FileNotFoundError):
                    socket_path(self.socket_dir, self.worker).unlink()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the API side -------------------------------------------------------------------------

    async def run(self, spec: CommandSpec) -> Routed:
        """Run ``spec`` where its device is connected (here when nowhere)."""
        if not self.local.holds(spec.protocol, spec.device):
            holder = await self.where(spec.protocol, spec.device)
            if holder is not None and holder != self.worker:
                return Routed(await self._run_at(holder, spec), holder)
        return Routed(await self.local.run(spec), self.worker)

    async def where(self, protocol: str, device: str) -> int | None:
        """The worker holding the device (this one first), or None when none does."""
        if self.local.holds(protocol, device):
            return self.worker if self.worker is not None else 0
        peers = self.peers
        if not peers:
            return None
        ask = _Ask(op="holds", protocol=protocol, device=device)
        answers = await asyncio.gather(*(self._ask(i, ask, ASK_TIMEOUT_S) for i in peers))
        for i, answer in zip(peers, answers, strict=True):
            if answer is not None and answer.holds:
                return i
        return None

    async def _run_at(self, worker: int, spec: CommandSpec) -> CommandResult:
        self.forwarded += 1
        answer = await self._ask(worker, _Ask(op="run", spec=spec), spec.timeout_s + RUN_MARGIN_S)
        if answer is None:
            raise PeerUnavailable(f"worker {worker}, which holds {spec.device}, did not answer")
        if answer.result is not None:
            return answer.result
        message = answer.error or "no result"
        if answer.code == "bad_request":
            raise CommandError(message)
        if answer.code in ("not_served", "busy"):
            raise NotServed(message, busy=answer.code == "busy")
        raise PeerUnavailable(f"worker {worker}: {message}")

    async def _ask(self, worker: int, ask: _Ask, timeout: float) -> _Answer | None:
        assert self.socket_dir is not None
        path = str(socket_path(self.socket_dir, worker))
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path, limit=_MAX_LINE)
                writer.write(_encode(ask) + b"\n")
                await writer.drain()
                line = await reader.readline()
            return _decode_answer(line) if line else None
        except (OSError, TimeoutError, ValueError, msgspec.DecodeError) as exc:
            log.debug("worker %d: %s: %r", worker, ask.op, exc)
            return None
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    # -- the peer side -----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            line = await reader.readline()
            try:
                ask = _decode_ask(line)
            except (msgspec.DecodeError, ValueError) as exc:
                answer = _Answer(error=f"bad request: {exc}", code="bad_request")
            else:
                answer = await self._answer(ask)
            writer.write(_encode(answer) + b"\n")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.debug("peer connection: %r", exc)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, ask: _Ask) -> _Answer:
        if ask.op == "holds":
            return _Answer(holds=self.local.holds(ask.protocol, ask.device))
        if ask.spec is None:
            return _Answer(error="run without a command", code="bad_request")
        self.served += 1
        try:
            return _Answer(result=await self.local.run(ask.spec))
        except CommandError as exc:
            return _Answer(error=str(exc), code="bad_request")
        except NotServed as exc:
            return _Answer(error=str(exc), code="busy" if exc.busy else "not_served")
        except Exception as exc:
            log.exception("command for another worker failed")
            return _Answer(error=repr(exc), code="internal")
