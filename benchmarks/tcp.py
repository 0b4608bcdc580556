"""Frames/s end to end through the TCP listeners into TimescaleDB, ack latency, idle memory.

The gateway under test is the production process: ``silkgate run --config <file>`` started
here as a child process with both listeners on free loopback ports (``unknown_devices =
"accept"``, the connection limits raised for 10,000 terminals), against its own throw-away
schema. The terminals are ``gateway.tcp_simulator.TerminalFleet`` in this process (frames made
with the real encoders); every report is acknowledged only after its rows are committed, so
acknowledged frames/s is the durable rate. Each GB/T 32960 realtime frame stores three rows
(vehicle_realtime, positions and the raw archive); a JT/T 808 0x0200 stores two.

Lines (``impl: silkgate``):

* ``tcp-gbt32960`` / ``tcp-jt808``: ``--terminals`` terminals of one protocol run closed-loop
  (each keeps ``--window`` reports in flight) for ``--seconds``; ``per_s`` = reports acked per
  second over the run, ``ack_p50_ms`` / ``ack_p99_ms`` their ack latency, ``stored`` the rows
  found in the store afterwards (checked against the acks).
* ``tcp-gbt32960-latency``: an open-loop load of ``--rate`` reports/s (the terminals report on
  a timer) for ``--seconds``: achieved rate and ack latency p50/p99.
* ``tcp-idle-memory``: ``--idle`` connections logged in and idle; ``kib_per_conn`` = growth of
  the gateway's resident memory (VmRSS) / connections.

Every line carries ``load1`` (the machine also runs the database and the terminals).

    .venv/bin/python benchmarks/tcp.py [--seconds 10] [--terminals 200] [--rate 20000]
                                       [--idle 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from gateway.adapters.tcp import loop_factory
from gateway.config import PipelineConfig
from gateway.procstats import cpu_s, postgres_cpu_s, raise_nofile, rss_kib
from gateway.store.testing import create_schema, drop_schema, local_dsn, with_search_path
from gateway.tcp_simulator import SimConfig, TerminalFleet

REPO = Path(__file__).resolve().parents[1]


def _dsn() -> str:
    return local_dsn(REPO)


def emit(bench: str, **fields: object) -> None:
    load1 = round(os.getloadavg()[0], 2)
    print(json.dumps({"bench": bench, "impl": "silkgate", **fields, "load1": load1}), flush=True)


class Gateway:
    """``silkgate run`` in a child process with both listeners on free ports."""

    def __init__(self, dsn: str, workdir: Path, max_connections: int, writers: int) -> None:
        self.config = workdir / "silkgate.toml"
        listener = (
            'enabled = true\nhost = "127.0.0.1"\nport = 0\nunknown_devices = "accept"\n'
            f"max_connections = {max_connections}\nmax_connections_per_ip = {max_connections}\n"
            "login_timeout_s = 120\nheartbeat_timeout_s = 0\nidle_timeout_s = 600\n"
            "max_unacked_frames = 256\n"
        )
        self.config.write_text(
            f'[database]\ndsn = "{dsn}"\npool_size = 6\n'
            f"[pipeline]\nwriters = {writers}\n"
            f'[spool]\npath = "{workdir / "spool"}"\n'
            f"[listeners.gbt32960]\n{listener}[listeners.jt808]\n{listener}"
        )
        self.proc: subprocess.Popen[str] | None = None
        self.ports: dict[str, int] = {}

    async def __aenter__(self) -> Gateway:
        env = {k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.config.parent,  # not the repo root: the source folder would shadow
            env=env | {"PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        while len(self.ports) < 2:
            line = await loop.run_in_executor(None, self.proc.stdout.readline)
            if not line:
                raise SystemExit(f"the gateway exited ({self.proc.wait()}) before listening")
            if line.startswith("listening: "):
                protocol, _, address = line.split()[1:4]
                self.ports[protocol] = int(address.rsplit(":", 1)[1])
        # Keep draining its status lines so the pipe never fills.
        loop.run_in_executor(None, self._drain)
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, self.proc.wait), 120)
        except TimeoutError:
            self.proc.kill()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@contextlib.asynccontextmanager
async def scratch(dsn: str) -> AsyncIterator[str]:
    schema = await create_schema(dsn, "silkgate_bench_tcp")
    try:
        yield with_search_path(dsn, schema)
    finally:
        await drop_schema(dsn, schema)


async def _count(dsn: str, table: str, protocol: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        where = "version IS NOT NULL" if table == "vehicle_realtime" else "protocol = $1"
        args = () if table == "vehicle_realtime" else (protocol,)
        n: int = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
        return n
    finally:
        await conn.close()


def _sim(gw: Gateway, **kw: object) -> SimConfig:
    return SimConfig(
        host="127.0.0.1",
        gbt_port=gw.ports["gbt32960"],
        jt_port=gw.ports["jt808"],
        heartbeat_s=0,
        connect_timeout_s=30,
        ack_timeout_s=60,
        **kw,  # type: ignore[arg-type]
    )


async def throughput(gw: Gateway, dsn: str, protocol: str, args: argparse.Namespace) -> None:
    """Closed loop: as many reports as the acks let through, for ``--seconds``."""
    counts = {"gbt32960": "gbt", "jt808": "jt"}
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=len(protocol))  # distinct keys
    cfg = _sim(
        gw,
        **{counts[protocol]: args.terminals},
        interval_s=0,
        duration_s=args.seconds,
        window=args.window,
        start_time=start,
        seed=len(protocol),
    )
    async with TerminalFleet(cfg) as fleet:
        await fleet.wait_online(120)
        cpu = (cpu_s(gw.pid), postgres_cpu_s(), time.process_time())
        stats = await fleet.run()
        gw_cpu, pg_cpu = cpu_s(gw.pid) - cpu[0], postgres_cpu_s() - cpu[1]
        sim_cpu = time.process_time() - cpu[2]
    s = getattr(stats, protocol)
    table = "vehicle_realtime" if protocol == "gbt32960" else "positions"
    stored = await _count(dsn, table, protocol)
    emit(
        f"tcp-{protocol}",
        per_s=round(s.acked / stats.reporting_s),
        writers=args.writers,
        terminals=args.terminals,
        window=args.window,
        acked=s.acked,
        stored=stored,
        ack_p50_ms=s.latency.percentile(0.50),
        ack_p99_ms=s.latency.percentile(0.99),
        seconds=round(stats.reporting_s, 1),
        # CPU per acknowledged frame, where it went (the machine has 2 cores in all):
        gateway_cpu_us=round(gw_cpu / s.acked * 1e6, 1),
        postgres_cpu_us=round(pg_cpu / s.acked * 1e6, 1),
        terminals_cpu_us=round(sim_cpu / s.acked * 1e6, 1),
    )
    if stored < s.acked:
        raise SystemExit(f"{s.acked} reports acknowledged but only {stored} rows stored")


async def latency(gw: Gateway, args: argparse.Namespace) -> None:
    """Open loop: ``--rate`` reports/s from ``--terminals`` GB/T terminals on a timer."""
    cfg = _sim(
        gw,
        gbt=args.terminals,
        interval_s=args.terminals / args.rate,
        duration_s=args.seconds,
        window=args.window,
        start_time=datetime(2026, 2, 1, tzinfo=UTC),
        seed=7,
    )
    async with TerminalFleet(cfg) as fleet:
        await fleet.wait_online(120)
        stats = await fleet.run()
    s = stats.gbt32960
    emit(
        "tcp-gbt32960-latency",
        offered_per_s=round(args.rate),
        per_s=round(s.acked / stats.reporting_s),
        ack_p50_ms=s.latency.percentile(0.50),
        ack_p99_ms=s.latency.percentile(0.99),
        terminals=args.terminals,
    )


async def idle_memory(gw: Gateway, args: argparse.Namespace) -> None:
    """``--idle`` terminals (half of each protocol) logged in, then idle."""
    before = rss_kib(gw.pid)
    cfg = _sim(
        gw,
        gbt=args.idle // 2,
        jt=args.idle - args.idle // 2,
        frames=0,
        interval_s=3600,
        logout=False,
        seed=11,
        connect_concurrency=512,
    )
    fleet = TerminalFleet(cfg)
    await fleet.start()
    try:
        await fleet.wait_online(300)
        await asyncio.sleep(2)  # let the gateway settle (registry writes, session events)
        after = rss_kib(gw.pid)
    finally:
        await fleet.stop()
    emit(
        "tcp-idle-memory",
        connections=args.idle,
        kib_per_conn=round((after - before) / args.idle, 2),
        rss_before_kib=before,
        rss_after_kib=after,
    )


async def main_async(args: argparse.Namespace) -> None:
    raise_nofile()
    started = time.perf_counter()
    async with scratch(_dsn()) as dsn:
        with tempfile.TemporaryDirectory(prefix="silkgate-tcp-bench-") as tmp:
            limit = max(args.idle, args.terminals) + 100
            async with Gateway(dsn, Path(tmp), limit, args.writers) as gw:
                if args.idle:  # first: later phases leave freed memory in the process
                    await idle_memory(gw, args)
                await throughput(gw, dsn, "gbt32960", args)
                await throughput(gw, dsn, "jt808", args)
                await latency(gw, args)
    print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="time per phase")
    parser.add_argument("--terminals", type=int, default=200, help="terminals per phase")
    parser.add_argument("--window", type=int, default=64, help="reports in flight per terminal")
    parser.add_argument("--rate", type=float, default=10_000, help="offered reports/s (latency)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections (0: skip)")
    parser.add_argument(
        "--writers", type=int, default=PipelineConfig().writers, help="[pipeline] writers"
    )
    with asyncio.Runner(loop_factory=loop_factory()) as runner:  # uvloop, as the gateway
        runner.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
