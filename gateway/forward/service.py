"""``Forwarders``: every configured forwarder of a gateway process, started and stopped together.

In ``silkgate run``, after the pool is open (migrations applied) and before the pool closes::

    forwarders = Forwarders(cfg.forward, pool)  # reads secrets: ConfigError if one is missing
    forwarders.start()
    ...
    await forwarders.close()  # graceful: answers awaited, platforms logged out, cursors saved
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from gateway.forward.config import ForwardConfig
from gateway.forward.gbt_platform import GbtForwarder
from gateway.forward.json_feed import JsonFeedForwarder
from gateway.forward.stats import ForwarderStats

log = logging.getLogger("silkgate.forward")


class Forwarders:
    """The forwarders of one ``[forward]`` section, each in its own named task."""

    def __init__(self, cfg: ForwardConfig, pool: asyncpg.Pool) -> None:
        rows, poll = cfg.page_rows, cfg.poll_interval_ms / 1000
        self.forwarders: list[GbtForwarder | JsonFeedForwarder] = [
            *(GbtForwarder(u, pool, page_rows=rows, poll_interval_s=poll) for u in cfg.gbt32960),
            *(JsonFeedForwarder(f, pool, page_rows=rows, poll_interval_s=poll) for f in cfg.json),
        ]
        self._grace = max(
            [u.close_grace_s + 2 for u in cfg.gbt32960] + [f.timeout_s + 2 for f in cfg.json],
            default=0.0,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self.forwarders)

    def start(self) -> None:
        """One task per forwarder (they load their cursors, then connect)."""
        if self._tasks:
            raise RuntimeError("the forwarders are already started")
        self._tasks = [
            asyncio.create_task(self._run(f), name=f"forward-{f.kind}-{f.name}")
            for f in self.forwarders
        ]

    async def _run(self, forwarder: GbtForwarder | JsonFeedForwarder) -> None:
        try:
            await forwarder.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: log it loudly, but never take ingest down with it
            log.exception("forwarder %s stopped", forwarder.name)
            forwarder.stats.connected = False
            forwarder.stats.error("stopped by an internal error (see the log)")

    async def close(self, timeout: float | None = None) -> None:
        """Stop every forwarder gracefully; cancel those still running after ``timeout``
        (default: the longest close grace / request timeout configured, plus 2 s)."""
        for f in self.forwarders:
            await f.close()
        if not self._tasks:
            return
        wait = self._grace if timeout is None else timeout
        _, pending = await asyncio.wait(self._tasks, timeout=wait)
        for task in pending:
            log.warning("%s did not stop in time; cancelled", task.get_name())
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def stats(self) -> list[ForwarderStats]:
        return [f.stats for f in self.forwarders]

    def status(self) -> str:
        """``fwd national: up 1,234 fwd, lag 0.2 s; regulator: ...`` (empty without any)."""
        if not self.forwarders:
            return ""
        return "fwd " + "; ".join(s.line() for s in self.stats())
