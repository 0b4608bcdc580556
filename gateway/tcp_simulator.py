"""A fleet of simulated terminals talking to a platform over real TCP: ``silkgate simulate``.

N GB/T 32960 and M JT/T 808 terminals, one connection each, all in one asyncio process. The
trucks come from :class:`gateway.simulator.Fleet`, the frames from the real encoders
(:mod:`gateway.tcp_simulator_frames`), the per-terminal behaviour from
:mod:`gateway.tcp_simulator_gbt` / :mod:`gateway.tcp_simulator_jt`.

    config = SimConfig(gbt=100, jt=100, gbt_port=32960, jt_port=8808, frames=10, interval_s=0.1)
    async with TerminalFleet(config) as fleet:
        await fleet.wait_online()
        stats = await fleet.run()     # until ``frames`` reports each (or ``duration_s``)
    print(stats.summary())

Pacing: one task for the whole fleet splits the terminals into groups spread over the report
interval and wakes every few milliseconds to let one group report (no task or timer per
frame). With ``interval_s = 0`` the terminals run closed-loop: a new report whenever an ack
frees a slot of the in-flight window (the most a platform can take).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TextIO

from gateway.simulator import Fleet, Truck
from gateway.tcp_simulator_gbt import GbtTerminal
from gateway.tcp_simulator_jt import JtTerminal
from gateway.tcp_simulator_stats import FleetStats, TerminalStats
from gateway.tcp_simulator_terminal import Context, Terminal

__all__ = ["FleetStats", "SimConfig", "TerminalFleet", "TerminalStats"]

_TICK_S = 0.005  # the pacer wakes at most this often


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to simulate. Every field has a default; see ``silkgate simulate --help``."""

    host: str = "127.0.0.1"
    gbt_port: int = 32960
    jt_port: int = 8808
    gbt: int = 0  # GB/T 32960 terminals
    jt: int = 0  # JT/T 808 terminals
    gbt_versions: tuple[int, ...] = (2016,)  # alternated over the GB/T terminals
    jt_versions: tuple[int, ...] = (2013,)
    interval_s: float = 1.0  # report interval; 0 = closed loop (as fast as acks come back)
    duration_s: float | None = None  # run() stops after this long ...
    frames: int | None = None  # ... or once every terminal made this many reports (0: none)
    ack_reports: bool = True  # False: the platform does not ack reports; do not wait for acks
    ack_match: Literal["fifo", "time"] = "fifo"  # how GB/T acks find their report
    window: int = 64  # reports in flight (sent, not acked) per terminal
    heartbeat_s: float = 30.0  # heartbeat after this long without sending (0: never)
    ack_timeout_s: float = 10.0  # login / registration / authentication / logout answers
    connect_timeout_s: float = 5.0
    reconnect_min_s: float = 0.1  # reconnect backoff, doubling up to reconnect_max_s
    reconnect_max_s: float = 5.0
    connect_concurrency: int = 256  # connection attempts + logins in progress at once
    drain_timeout_s: float = 10.0  # at stop: how long to wait for outstanding acks
    buffer_limit: int = 10_000  # reports kept per terminal for resending; beyond: dropped
    refresh_every: int = 60  # reports per truck-model step and fresh encode
    coalesce_s: float = 0.2  # intervals shorter than this: several reports per send
    seed: int = 1  # trucks, VINs and phone numbers follow from it
    start_time: datetime | None = None  # None: wall-clock data times; else simulated from here
    time_sync: bool = False  # GB/T: ask for the platform time (0x08) after each login
    logout: bool = True  # log out at the end
    tls: bool = False
    tls_ca: str | None = None  # None with tls: do not verify (self-signed test gateways)
    tls_server_name: str | None = None

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool]] = [
            ("gbt", self.gbt >= 0),
            ("jt", self.jt >= 0),
            ("gbt_versions", bool(self.gbt_versions) and set(self.gbt_versions) <= {2016, 2025}),
            ("jt_versions", bool(self.jt_versions) and set(self.jt_versions) <= {2013, 2019}),
            ("interval_s", self.interval_s >= 0),
            ("duration_s", self.duration_s is None or self.duration_s >= 0),
            ("frames", self.frames is None or self.frames >= 0),
            ("ack_match", self.ack_match in ("fifo", "time")),
            ("window", self.window >= 1),
            ("heartbeat_s", self.heartbeat_s >= 0),
            ("ack_timeout_s", self.ack_timeout_s > 0),
            ("connect_timeout_s", self.connect_timeout_s > 0),
            ("reconnect_min_s", 0 < self.reconnect_min_s <= self.reconnect_max_s),
            ("connect_concurrency", self.connect_concurrency >= 1),
            ("drain_timeout_s", self.drain_timeout_s >= 0),
            ("buffer_limit", self.buffer_limit >= 1),
            ("refresh_every", self.refresh_every >= 1),
            ("coalesce_s", self.coalesce_s >= 0),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"SimConfig.{name}: invalid value {getattr(self, name)!r}")
        if self.start_time is not None and self.start_time.tzinfo is None:
            raise ValueError("SimConfig.start_time: must be timezone-aware")


@dataclass
class _Flags:
    online: asyncio.Event = field(default_factory=asyncio.Event)
    generated: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    quotas_left: int = 0


class TerminalFleet:
    """The simulated terminals of one :class:`SimConfig`; an async context manager."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._stats = FleetStats()
        self.terminals: list[Terminal] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._pacer: asyncio.Task[None] | None = None
        self._flags = _Flags()
        self._started_at = 0.0
        self._stopped_at: float | None = None
        self._first_online: float | None = None
        self._stop_asked: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- construction ------------------------------------------------------------------------

    def _build(self) -> None:
        cfg = self.config
        gate = asyncio.Semaphore(cfg.connect_concurrency)
        quota = cfg.frames
        self._flags.quotas_left = 0 if quota is None else cfg.gbt + cfg.jt
        if quota == 0:
            self._flags.generated.set()
        if not cfg.gbt + cfg.jt:
            self._flags.online.set()
        for protocol, count, port, versions, cls, first in (
            ("gbt32960", cfg.gbt, cfg.gbt_port, cfg.gbt_versions, GbtTerminal, 0),
            ("jt808", cfg.jt, cfg.jt_port, cfg.jt_versions, JtTerminal, cfg.gbt),
        ):
            if not count:
                continue
            stats: TerminalStats = getattr(self._stats, protocol)
            stats.terminals = count
            ctx = Context(cfg, port, stats, gate, self._online_changed, self._quota_done)
            model = Fleet(count, seed=cfg.seed, versions=versions, first_index=first)
            for truck in model.trucks:
                self.terminals.append(cls(ctx, model, truck, quota))

    def _online_changed(self) -> None:
        total = self._stats.gbt32960.online + self._stats.jt808.online
        if self._first_online is None and total and self._loop is not None:
            self._first_online = self._loop.time()
        if total == len(self.terminals):
            self._flags.online.set()
        else:
            self._flags.online.clear()

    def _quota_done(self) -> None:
        self._flags.quotas_left -= 1
        if self._flags.quotas_left <= 0:
            self._flags.generated.set()

    # -- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the terminals and start connecting them (returns at once)."""
        if self._loop is not None:
            raise RuntimeError("this fleet was started already")
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()
        self._build()
        for t in self.terminals:
            name = f"terminal-{t.PROTOCOL}-{t.device_id}"
            self._tasks.append(asyncio.create_task(t.run(), name=name))
        if self.config.interval_s > 0 and self.config.frames != 0 and self.terminals:
            self._pacer = asyncio.create_task(self._pace(), name="terminal-pacer")

    async def __aenter__(self) -> TerminalFleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_online(self, timeout: float | None = None) -> None:
        """Until every terminal is logged in (TimeoutError after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            await self._flags.online.wait()

    async def wait_generated(self, timeout: float | None = None) -> None:
        """Until every terminal made its ``frames`` reports (never, without ``frames``)."""
        async with asyncio.timeout(timeout):
            await self._flags.generated.wait()

    async def run(self) -> FleetStats:
        """Start (if needed), report until ``frames`` or ``duration_s``, stop; the counters.

        With neither, terminals stay connected (heartbeats only once quotas are used up) until
        :meth:`stop` is called from elsewhere.
        """
        if self._loop is None:
            await self.start()
        waits: list[asyncio.Task[Any]] = [asyncio.create_task(self._flags.stopping.wait())]
        if self.config.frames is not None:
            waits.append(asyncio.create_task(self._flags.generated.wait()))
        if self.config.duration_s is not None:
            waits.append(asyncio.create_task(asyncio.sleep(self.config.duration_s)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        await self.stop()
        return self.stats

    async def stop(self) -> None:
        """Stop reporting; every terminal drains its acks (bounded), logs out and closes."""
        self._flags.stopping.set()
        if self._stop_asked is None and self._loop is not None:
            self._stop_asked = self._loop.time()
        if self._pacer is not None:
            self._pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pacer
            self._pacer = None
        for t in self.terminals:
            t.request_stop()
        if self._tasks:
            await asyncio.gather(*self._tasks)
        if self._stopped_at is None and self._loop is not None:
            self._stopped_at = self._loop.time()

    # -- introspection -----------------------------------------------------------------------

    @property
    def stats(self) -> FleetStats:
        """The counters now (``unacked`` and ``elapsed_s`` computed on each read)."""
        for name in ("gbt32960", "jt808"):
            stats: TerminalStats = getattr(self._stats, name)
            stats.unacked = sum(
                t.unacked_reports() + t.buffered() for t in self.terminals if name == t.PROTOCOL
            )
        if self._loop is not None:
            now = self._loop.time()
            end = self._stopped_at if self._stopped_at is not None else now
            self._stats.elapsed_s = end - self._started_at
            if self._first_online is not None:
                until = self._stop_asked if self._stop_asked is not None else now
                self._stats.reporting_s = max(0.0, until - self._first_online)
        return self._stats

    def terminal(self, device_id: str) -> Terminal:
        """The terminal of a VIN (GB/T 32960) or phone number (JT/T 808)."""
        for t in self.terminals:
            if t.device_id == device_id:
                return t
        raise KeyError(device_id)

    def by_protocol(self, protocol: str) -> Iterator[Terminal]:
        return (t for t in self.terminals if protocol == t.PROTOCOL)

    # -- pacing ------------------------------------------------------------------------------

    async def _pace(self) -> None:
        """Let every terminal report once per interval, spread in groups over the interval.

        Below ``coalesce_s`` a terminal makes several reports per turn, written with one send
        (one system call per report would cap a benchmark far below what a platform takes).
        """
        loop = asyncio.get_running_loop()
        terminals: Sequence[Terminal] = self.terminals
        interval = self.config.interval_s
        per_turn = max(1, round(self.config.coalesce_s / interval))
        period_s = interval * per_turn  # each terminal's turn comes this often
        slots = max(1, min(len(terminals), int(period_s / _TICK_S)))
        groups = [terminals[i::slots] for i in range(slots)]
        step = period_s / slots
        start = loop.time()
        k = 0
        while not self._flags.generated.is_set() or self.config.frames is None:
            delay = start + k * step - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            if now - (start + k * step) > period_s:  # stalled (CPU starved): do not burst
                start = now - k * step
            while start + k * step <= now:
                for t in groups[k % slots]:
                    t.tick(now, per_turn)
                k += 1


def fleet_trucks(config: SimConfig) -> list[Truck]:
    """The trucks (VIN, phone, version) a :class:`TerminalFleet` of ``config`` simulates, GB/T
    32960 ones first, made as :meth:`TerminalFleet._build` makes them; nothing connects."""
    return [
        *Fleet(config.gbt, seed=config.seed, versions=config.gbt_versions).trucks,
        *Fleet(
            config.jt, seed=config.seed, versions=config.jt_versions, first_index=config.gbt
        ).trucks,
    ]


def wire_phone(truck: Truck) -> str:
    """A JT/T 808 truck's phone number as its terminal sends it (and the registry keys it):
    12 BCD digits in 2013, 20 in 2019 (as :class:`JtTerminal` pads it)."""
    return truck.phone.rjust(20, "0") if truck.version >= 2019 else truck.phone


def status_line(stats: FleetStats, terminals: int) -> str:
    """One line of live counts."""
    t = stats.total
    lat = t.latency
    p50, p99 = lat.percentile(0.5), lat.percentile(0.99)
    return (
        f"{stats.elapsed_s:7.1f}s online {t.online}/{terminals} sent {t.sent} acked {t.acked} "
        f"resent {t.resent} unacked {t.unacked} p50 {p50} ms p99 {p99} ms "
        f"reconnects {t.reconnects} errors {t.errors}"
    )


async def run_simulation(
    config: SimConfig,
    *,
    status: TextIO | None = None,
    stop: asyncio.Event | None = None,
    every_s: float = 1.0,
) -> FleetStats:
    """Run a fleet to its end (or until ``stop`` is set), writing live counts to ``status``."""
    async with TerminalFleet(config) as fleet:
        runner = asyncio.create_task(fleet.run(), name="terminal-fleet")
        stopper = asyncio.create_task(stop.wait()) if stop is not None else None
        waits: set[asyncio.Task[Any]] = {runner} if stopper is None else {runner, stopper}
        try:
            while True:
                done, _ = await asyncio.wait(
                    waits, timeout=every_s, return_when=asyncio.FIRST_COMPLETED
                )
                if status is not None:
                    print(status_line(fleet.stats, len(fleet.terminals)), file=status, flush=True)
                if done:
                    break
            await fleet.stop()
            await runner
        finally:
            if stopper is not None:
                stopper.cancel()
    return fleet.stats
