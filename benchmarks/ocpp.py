"""OCPP 1.6J central systems under load: silkgate vs one written with the ``ocpp`` library.

Both servers run on this machine in the same run, each in its own process, one after the
other, against the same load (the idle phase gets a fresh process of its own, see bench()):

* ``impl: silkgate``: the production process, ``silkgate run --config <file>`` with ``[ocpp]``
  on a free loopback port (``unknown_chargers = "accept"``, ``security_profile = 0``) against a
  throw-away schema; every MeterValues is answered only once its rows are committed.
  The generated configuration is printed first (``bench: ocpp-config``).
* ``impl: ocpp-library``: ``benchmarks/ocpp_baseline.py``, the common way with the library's
  ChargePoint handlers; it stores nothing (see its ``note``).

The charge points are ``benchmarks/ocpp_load.py`` in a third process (raw sockets: 30 to 50 us
of CPU per CALL and its answer at full rate, where the ``websockets`` client took 87 us).
Each connects, sends BootNotification and StartTransaction, then Heartbeat and MeterValues
(ten sampled values) alternately, one CALL outstanding at a time.

Lines, in the order run (each with ``load1``: server, load and PostgreSQL share two cores):

* ``ocpp-p99-<rate>``: an open-loop load of ``--rate`` CALLs/s over ``--charge-points``
  charge points for ``--seconds``: the rate achieved and latency p50/p99 (``skipped``: sends
  passed over because every charge point was still waiting for an answer: the server fell
  behind).
* ``ocpp-heartbeat-meter-max``: the charge points closed loop for ``--seconds``: ``per_s``
  CALLs answered per second and their latency.
* ``ocpp-idle``: ``--idle`` charge points booted and holding their connections, against a
  fresh server process; ``kib_per_conn`` = growth of its resident memory (VmRSS) /
  connections.

Both load lines carry the CPU per CALL of the server and of PostgreSQL over the measured time;
silkgate's carry ``stored_meter_rows`` (checked: every answered MeterValues has its ten rows in
the store) and ``dead_letters``, and ``vs: ocpp-library`` with ``ratio``: ours / theirs of
``per_s`` (of ``kib_per_conn`` for ``ocpp-idle``), measured in the same run.

    .venv/bin/python benchmarks/ocpp.py [--charge-points 2000] [--seconds 10] [--rate 2000]
                                        [--idle 10000] [--impl both] [--quick]
                                        [--writers 1] [--batch-age-ms 20] [--phases idle,p99,max]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from gateway.procstats import cpu_s, postgres_cpu_s, raise_nofile, rss_kib
from gateway.store.testing import create_schema, drop_schema, local_dsn, with_search_path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
BASELINE_NOTE = (
    "ocpp-library: ocpp 2.1.0 ChargePoint handlers on websockets.serve, schema validation on "
    "(the library's default), nothing stored, no logging, uvloop: all of it favours the baseline"
)
METER_SAMPLES = 10  # sampled values per MeterValues (ocpp_load.py)
Fields = dict[str, Any]  # the fields of one output line


def emit(bench: str, impl: str, **fields: object) -> None:
    load1 = round(os.getloadavg()[0], 2)
    print(json.dumps({"bench": bench, "impl": impl, **fields, "load1": load1}), flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _toml(sections: dict[str, dict[str, object]]) -> str:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")  # str/int/float/bool: JSON is TOML
    return "\n".join(lines) + "\n"


class Server:
    """A central system in a child process; ``url`` once it accepts connections."""

    impl = ""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self.port = 0
        self._drain: asyncio.Task[None] | None = None

    def command(self) -> tuple[list[str], Path]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aenter__(self) -> Server:
        argv, cwd = self.command()
        env = {k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,  # not the repo root: its gateway/ folder would shadow the installed package
            env=env | {"PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1"},
        )
        self._drain = asyncio.create_task(self._read())
        deadline = time.monotonic() + 120
        while not await self._accepts():
            if self.proc.returncode is not None or time.monotonic() > deadline:
                tail = "".join(self.output[-30:])
                raise SystemExit(f"{self.impl} did not start ({self.proc.returncode}):\n{tail}")
            await asyncio.sleep(0.2)
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.output.append(line)
            if line.startswith("listening: ocpp-library on "):
                self.port = int(line.rsplit(":", 1)[1])

    async def _accepts(self) -> bool:
        if not self.port:
            return False
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 120)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            await self._drain


class Baseline(Server):
    impl = "ocpp-library"

    def command(self) -> tuple[list[str], Path]:
        return [sys.executable, str(HERE / "ocpp_baseline.py"), "--port", "0"], HERE


class Silkgate(Server):
    impl = "silkgate"

    def __init__(self, dsn: str, workdir: Path, max_connections: int, pipeline: Fields) -> None:
        super().__init__()
        self.port = _free_port()
        self.workdir = workdir
        self.sections: dict[str, dict[str, object]] = {
            "database": {"dsn": dsn, "pool_size": 6},
            "pipeline": pipeline,
            "spool": {"path": str(workdir / "spool")},
            "ocpp": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": self.port,
                "subprotocols": ["ocpp1.6"],
                "unknown_chargers": "accept",
                "unknown_boot_status": "Accepted",
                "unknown_id_tokens": "Accepted",
                "security_profile": 0,
                "max_connections": max_connections,
                "max_connections_per_ip": max_connections,
            },
        }
        self.config = workdir / "silkgate.toml"
        self.config.write_text(_toml(self.sections))

    def shown_config(self) -> dict[str, dict[str, object]]:
        """The configuration without the DSN (it may carry a password)."""
        return {k: v for k, v in self.sections.items() if k not in ("database", "spool")}

    def command(self) -> tuple[list[str], Path]:
        argv = [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)]
        return argv, self.workdir


async def run_load(
    server: Server,
    mode: str,
    args: argparse.Namespace,
    *extra: str,
    on_event: Callable[[dict[str, object]], Awaitable[None]] | None = None,
) -> dict[str, object]:
    """``ocpp_load.py`` against the server: its result object. Its progress lines (``held``,
    ``measuring``, ``measured``) go to ``on_event``; ``held`` is released once that returns."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "ocpp_load.py"),
        "--url",
        server.url,
        "--mode",
        mode,
        "--seconds",
        str(args.seconds),
        "--rate",
        str(args.rate),
        *extra,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONSAFEPATH": "1"},
    )
    assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
    result: dict[str, object] = {}
    async for raw in proc.stdout:
        obj = json.loads(raw)
        if "event" not in obj:
            result = obj
            continue
        if on_event is not None:
            await on_event(obj)
        if obj["event"] == "held":
            proc.stdin.write(b"\n")
            await proc.stdin.drain()
    err = (await proc.stderr.read()).decode(errors="replace")
    if await proc.wait() != 0 or not result:
        tail = "".join(server.output[-20:])
        raise SystemExit(f"load ({mode}) against {server.impl} failed:\n{err}\n{tail}")
    return result


class CpuWindow:
    """CPU seconds of the server and of PostgreSQL over the load's measured time."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = (0.0, 0.0)
        self.used = (0.0, 0.0)

    async def __call__(self, event: dict[str, object]) -> None:
        now = (cpu_s(self.pid), postgres_cpu_s())
        if event["event"] == "measuring":
            self.start = now
        elif event["event"] == "measured":
            self.used = (now[0] - self.start[0], now[1] - self.start[1])

    def per_call(self, answered: int) -> dict[str, object]:
        return {
            "server_cpu_us": round(self.used[0] / answered * 1e6, 1),
            "postgres_cpu_us": round(self.used[1] / answered * 1e6, 1),
        }


async def idle(server: Server, args: argparse.Namespace) -> Fields:
    """``--idle`` charge points booted, then held; the server's memory per connection."""
    before = rss_kib(server.pid)
    seen: dict[str, object] = {}

    async def held(event: dict[str, object]) -> None:
        if event["event"] != "held":
            return
        seen["rss"] = rss_kib(server.pid)
        seen["alive"] = event["alive"]

    res = await run_load(
        server,
        "idle",
        args,
        "--charge-points",
        str(args.idle),
        "--prefix",
        "IDLE",
        "--no-transaction",
        "--connect-concurrency",
        "200",
        "--settle",
        "3",
        on_event=held,
    )
    after = seen["rss"]
    assert isinstance(after, int)
    fields: dict[str, object] = {
        "connections": seen["alive"],
        "kib_per_conn": round((after - before) / args.idle, 2),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "connect_s": res["connect_s"],
        "connect_retries": res["connect_retries"],
        "alive_at_end": res["alive"],
    }
    return fields


async def closed_loop(server: Server, args: argparse.Namespace) -> Fields:
    cpu = CpuWindow(server.pid)
    res = await run_load(
        server,
        "max",
        args,
        "--charge-points",
        str(args.charge_points),
        "--prefix",
        "MAX",
        on_event=cpu,
    )
    answered = res["answered"]
    assert isinstance(answered, int) and answered > 0, res
    return _latency_fields(res) | cpu.per_call(answered) | {"load_cpu_us": res["load_cpu_us"]}


async def open_loop(server: Server, args: argparse.Namespace) -> Fields:
    cpu = CpuWindow(server.pid)
    res = await run_load(
        server,
        "rate",
        args,
        "--charge-points",
        str(args.charge_points),
        "--prefix",
        "P99",
        on_event=cpu,
    )
    answered = res["answered"]
    assert isinstance(answered, int) and answered > 0, res
    return (
        {"offered_per_s": round(args.rate)}
        | _latency_fields(res)
        | {"skipped": res["skipped"]}
        | cpu.per_call(answered)
    )


def _latency_fields(res: dict[str, object]) -> dict[str, object]:
    keys = ("per_s", "p50_ms", "p99_ms", "max_ms", "heartbeat_p99_ms", "meter_values_p99_ms")
    more = ("answered", "errors", "meter_values", "heartbeats", "seconds", "charge_points")
    return {k: res[k] for k in keys + more}


async def stored_meter_rows(dsn: str, prefix: str) -> tuple[int, int]:
    """Rows in meter_values of the charge points ``prefix*`` and dead letters in all."""
    conn = await asyncpg.connect(dsn)
    try:
        rows: int = await conn.fetchval(
            "SELECT count(*) FROM meter_values WHERE charger_id LIKE $1", prefix + "%"
        )
        dead: int = await conn.fetchval("SELECT count(*) FROM dead_letters")
        return rows, dead
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch(dsn: str) -> AsyncIterator[str]:
    schema = await create_schema(dsn, "silkgate_bench_ocpp")
    try:
        yield with_search_path(dsn, schema)
    finally:
        await drop_schema(dsn, schema)


async def bench(
    start: Callable[[], Server], args: argparse.Namespace, dsn: str | None
) -> dict[str, Fields]:
    """Every phase against one implementation: the fields of its lines by bench name.

    The idle phase runs last in a server process of its own: its memory figure starts from a
    fresh process, and the load phases do not run in its aftermath (10,000 chargers registered
    and disconnected: with the database still busy from that, silkgate's p99 measured 2 to 3
    times higher than after a minute's rest)."""
    out: dict[str, Fields] = {}
    wanted = set(args.phases.split(","))
    extra: Fields = {"note": BASELINE_NOTE} if dsn is None else {}
    # Latency before the closed loop, whose backlog of commits could linger into it.
    phases = [(f"ocpp-p99-{round(args.rate)}", open_loop, "P99", "p99")]
    phases.append(("ocpp-heartbeat-meter-max", closed_loop, "MAX", "max"))
    if wanted & {"p99", "max"}:
        async with start() as server:
            for name, phase, prefix, key in phases:
                if key not in wanted:
                    continue
                fields = out[name] = await phase(server, args) | extra
                if dsn is not None:
                    rows, dead = await stored_meter_rows(dsn, prefix)
                    fields |= {"stored_meter_rows": rows, "dead_letters": dead}
                    if rows < fields["meter_values"] * METER_SAMPLES:
                        raise SystemExit(
                            f"{name}: {fields['meter_values']} MeterValues answered, "
                            f"{rows} rows stored"
                        )
    if args.idle and "idle" in wanted:
        async with start() as server:
            out["ocpp-idle"] = await idle(server, args) | extra
    return out


async def main_async(args: argparse.Namespace) -> None:
    raise_nofile()
    started = time.perf_counter()
    impls = ["ocpp-library", "silkgate"] if args.impl == "both" else [args.impl]
    results: dict[str, dict[str, Fields]] = {}
    if "ocpp-library" in impls:
        results["ocpp-library"] = await bench(Baseline, args, None)
        for name, fields in results["ocpp-library"].items():
            emit(name, "ocpp-library", **fields)
    if "silkgate" in impls:
        async with scratch(local_dsn(REPO)) as dsn:
            with tempfile.TemporaryDirectory(prefix="silkgate-ocpp-bench-") as tmp:
                limit = max(args.idle, args.charge_points) + 100
                pipeline = {"batch_age_ms": args.batch_age_ms, "writers": args.writers}
                gw = Silkgate(dsn, Path(tmp), limit, pipeline)
                emit("ocpp-config", "silkgate", config=gw.shown_config())
                results["silkgate"] = await bench(
                    lambda: Silkgate(dsn, Path(tmp), limit, pipeline), args, dsn
                )
        theirs = results.get("ocpp-library", {})
        for name, fields in results["silkgate"].items():
            base_fields = theirs.get(name)
            if base_fields and name == "ocpp-idle":
                fields |= {
                    "vs": "ocpp-library",
                    "ratio": round(fields["kib_per_conn"] / base_fields["kib_per_conn"], 2),
                }
            elif base_fields and base_fields.get("per_s"):
                fields |= {
                    "vs": "ocpp-library",
                    "ratio": round(fields["per_s"] / base_fields["per_s"], 2),
                }
            emit(name, "silkgate", **fields)
    print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charge-points", type=int, default=2000, help="simulated chargers")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per phase")
    parser.add_argument("--rate", type=float, default=2000.0, help="offered CALLs/s (p99)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections (0: skip)")
    parser.add_argument(
        "--impl", choices=("both", "silkgate", "ocpp-library"), default="both", help="servers"
    )
    parser.add_argument("--writers", type=int, default=1, help="silkgate [pipeline] writers")
    parser.add_argument(
        "--batch-age-ms", type=int, default=20, help="silkgate [pipeline] batch_age_ms"
    )
    parser.add_argument(
        "--phases", default="idle,p99,max", help="comma-separated subset of idle,p99,max"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 200 chargers, 3 s, 500/s, 500 idle"
    )
    if parser.parse_known_args()[0].quick:  # new defaults; options given still win
        parser.set_defaults(charge_points=200, seconds=3.0, rate=500.0, idle=500)
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
