"""The ``silkgate`` command line: ``decode`` frames from hex, ``run`` the gateway, ``simulate``
terminals over TCP, ``status`` of a running gateway, ``info`` about this install."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from gateway import __version__
from gateway.codecs import gbt32960, jt808
from gateway.codecs.errors import ProtocolError
from gateway.normalize import normalize
from gateway.render import to_builtins, to_json
from gateway.reports.cli import add_parser as add_report_parser

if TYPE_CHECKING:
    from gateway.tcp_simulator import SimConfig

PROTOCOLS = ("auto", "gbt32960", "jt808")


def detect_protocol(frame: bytes) -> str:
    """``gbt32960`` for ``##``/``$$`` frames, ``jt808`` for 0x7E frames."""
    if frame[:2] in (b"##", b"$$"):
        return "gbt32960"
    if frame[:1] == b"\x7e":
        return "jt808"
    raise ValueError("unknown protocol: expected ## or $$ (GB/T 32960) or 7E (JT/T 808)")


def describe(frame: gbt32960.Frame | jt808.Frame) -> dict[str, Any]:
    """A decoded frame as JSON-able builtins, with a protocol summary first."""
    if isinstance(frame, gbt32960.Frame):
        head: dict[str, Any] = {
            "protocol": "gbt32960",
            "version": frame.version,
            "command": f"0x{frame.command:02X}",
            "device_id": frame.vin,
        }
    else:
        head = {
            "protocol": "jt808",
            "version": frame.version,
            "command": f"0x{frame.msg_id:04X}",
            "device_id": frame.phone,
        }
    fields: dict[str, Any] = to_builtins(frame)
    # the summary first; it wins over the header fields of the same name
    return head | {k: v for k, v in fields.items() if k not in head}


def decode_hex(text: str, protocol: str) -> gbt32960.Frame | jt808.Frame:
    """Decode one frame given as hex (spaces allowed)."""
    try:
        raw = bytes.fromhex("".join(text.split()))
    except ValueError as exc:
        raise ValueError(f"not hex: {exc}") from None
    if protocol == "auto":
        protocol = detect_protocol(raw)
    if protocol == "gbt32960":
        gbt_frame: gbt32960.Frame = gbt32960.decode_frame(raw)
        return gbt_frame
    jt_frame: jt808.Frame = jt808.decode_frame(raw)
    return jt_frame


def _inputs(args: Sequence[str], stdin: TextIO) -> Iterator[str]:
    sources: Iterable[str] = stdin if not args or list(args) == ["-"] else args
    for line in sources:
        if line.strip():
            yield line.strip()


def cmd_decode(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    status = 0
    for n, text in enumerate(_inputs(ns.frames, sys.stdin), 1):
        try:
            frame = decode_hex(text, ns.protocol)
            if ns.normalize:
                docs = [{"record": type(r).__name__, **to_builtins(r)} for r in normalize(frame)]
            else:
                docs = [describe(frame)]
        except (ProtocolError, ValueError) as exc:
            reason = exc.reason.value if isinstance(exc, ProtocolError) else "bad_input"
            print(f"frame {n}: {reason}: {exc}", file=err)
            status = 1
            continue
        for doc in docs:
            out.write(to_json(doc).decode() + "\n")
    return status


def cmd_status(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gateway.metrics import status_command

    return status_command(ns.config, out, err)


def cmd_info(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    out.write(
        to_json(
            {
                "silkgate": __version__,
                "codecs": {"gbt32960": gbt32960.IMPLEMENTATION, "jt808": jt808.IMPLEMENTATION},
            }
        ).decode()
        + "\n"
    )
    return 0


def cmd_run(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import asyncio
    import logging
    import os

    from gateway.config import Config, ConfigError, load
    from gateway.runner import RunOptions, run

    worker = ns.worker_index
    tag = f"[w{worker}] " if worker is not None else ""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {tag}%(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = load(ns.config) if ns.config else Config()
        if ns.workers > 1 or worker is not None:
            from gateway import supervisor

            if worker is None:
                if ns.simulate or ns.chargers or ns.swap_stations or ns.charger_sites:
                    raise ConfigError(
                        "--simulate / --chargers / --swap-stations / --charger-sites run in a "
                        "single process only"
                    )
                return supervisor.run_supervisor(
                    cfg, ns.config, ns.workers, out, duration_s=ns.duration
                )
            supervisor.die_with_parent()
            cfg = supervisor.worker_config(cfg, worker, ns.workers)
            out = cast(TextIO, supervisor.PrefixedWriter(out, tag))
            out.write(f"worker {worker} of {ns.workers}, pid {os.getpid()}\n")
    except ConfigError as exc:
        print(f"silkgate: {exc}", file=err)
        return 2
    opts = RunOptions(
        simulate=ns.simulate,
        chargers=ns.chargers,
        interval_s=ns.interval,
        charger_interval_s=ns.charger_interval,
        swap_stations=ns.swap_stations,
        charger_sites=ns.charger_sites,
        swap_interval_s=ns.swap_interval,
        duration_s=ns.duration,
        worker=worker,
        workers=ns.workers,
    )
    from gateway.adapters.tcp import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:  # uvloop when installed
        return runner.run(run(cfg, opts, out))


def _simulate_config(ns: argparse.Namespace) -> SimConfig:
    from datetime import datetime

    from gateway.tcp_simulator import SimConfig

    versions: list[int] = ns.version or []
    start = datetime.fromisoformat(ns.start_time) if ns.start_time else None
    return SimConfig(
        host=ns.host,
        gbt_port=ns.gbt_port,
        jt_port=ns.jt_port,
        gbt=ns.gbt,
        jt=ns.jt,
        gbt_versions=tuple(v for v in versions if v in (2016, 2025)) or (2016,),
        jt_versions=tuple(v for v in versions if v in (2013, 2019)) or (2013,),
        interval_s=ns.interval,
        duration_s=ns.duration,
        frames=ns.frames,
        ack_reports=not ns.no_realtime_acks,
        ack_match=ns.ack_match,
        window=ns.window,
        heartbeat_s=ns.heartbeat,
        seed=ns.seed,
        start_time=start,
        time_sync=ns.time_sync,
        tls=ns.tls,
        tls_ca=ns.tls_ca,
    )


def cmd_simulate(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import asyncio
    import signal

    from gateway.tcp_simulator import run_simulation
    from gateway.tcp_simulator_frames import measure_generation

    if ns.measure_generation:
        for version in (2016, 2025, 2013, 2019):
            rate = measure_generation(ns.measure_generation, version=version)
            protocol = "gbt32960" if version in (2016, 2025) else "jt808"
            doc = {"bench": f"simulate-generate-{protocol}-{version}", "per_s": round(rate)}
            out.write(to_json(doc).decode() + "\n")
        return 0
    try:
        config = _simulate_config(ns)
    except ValueError as exc:
        print(f"silkgate simulate: {exc}", file=err)
        return 2

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_simulation(config, status=None if ns.quiet else err, stop=stop)

    from gateway.adapters.tcp import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        stats = runner.run(main())
    out.write(to_json(stats.summary()).decode() + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="silkgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"silkgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    dec = sub.add_parser(
        "decode",
        help="decode hex frames to JSON lines",
        description="Decode frames given as hex (arguments, or stdin one per line) to JSON lines. "
        "A frame that fails prints its reason on stderr and the exit status is 1.",
    )
    dec.add_argument("--protocol", choices=PROTOCOLS, default="auto")
    dec.add_argument("--normalize", action="store_true", help="print the normalized records")
    dec.add_argument("frames", nargs="*", metavar="HEX", help="hex frames, or - for stdin")
    dec.set_defaults(func=cmd_decode)

    run = sub.add_parser(
        "run",
        help="run the gateway (store, spool, pipeline; optionally the built-in simulator)",
        description="Run the gateway until Ctrl-C / SIGTERM, then drain in-flight records.",
    )
    run.add_argument("--config", metavar="PATH", help="TOML configuration file")
    run.add_argument("--simulate", type=int, default=0, metavar="N", help="simulate N trucks")
    run.add_argument(
        "--chargers", type=int, default=0, metavar="N", help="simulate N OCPP charge points"
    )
    run.add_argument(
        "--charger-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="simulated chargers' meter value interval (s)",
    )
    run.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="simulated report interval (s)"
    )
    run.add_argument(
        "--swap-stations",
        type=int,
        default=0,
        metavar="N",
        help="simulate N battery-swap stations publishing swap JSON over MQTT (needs [mqtt])",
    )
    run.add_argument(
        "--charger-sites",
        type=int,
        default=0,
        metavar="N",
        help="simulate N charger site controllers publishing charger JSON over MQTT",
    )
    run.add_argument(
        "--swap-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="simulated swap stations' (and charger sites') report interval (s)",
    )
    run.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S s")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N gateway processes sharing the ports and MQTT subscriptions, under a "
        "supervisor that restarts them (see docs/workers.md)",
    )
    run.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    sim = sub.add_parser(
        "simulate",
        help="simulated GB/T 32960 and JT/T 808 terminals talking to a platform over TCP",
        description="Run N GB/T 32960 and M JT/T 808 terminals (one TCP connection each): log in, "
        "report every interval, heartbeat, answer platform commands, resend what was not "
        "acknowledged after a reconnect. Live counts go to stderr; at the end one JSON summary "
        "line goes to stdout. Without --duration or --frames it runs until Ctrl-C.",
    )
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--gbt-port", type=int, default=32960, metavar="PORT")
    sim.add_argument("--jt-port", type=int, default=8808, metavar="PORT")
    sim.add_argument("--gbt", type=int, default=0, metavar="N", help="GB/T 32960 terminals")
    sim.add_argument("--jt", type=int, default=0, metavar="M", help="JT/T 808 terminals")
    sim.add_argument(
        "--version",
        type=int,
        action="append",
        choices=(2016, 2025, 2013, 2019),
        help="protocol versions (repeatable; alternated): 2016/2025 for GB/T 32960, 2013/2019 "
        "for JT/T 808 (default 2016 and 2013)",
    )
    sim.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="report interval; 0: closed loop"
    )
    sim.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S s")
    sim.add_argument("--frames", type=int, default=None, metavar="K", help="K reports each")
    sim.add_argument(
        "--no-realtime-acks",
        action="store_true",
        help="the platform does not acknowledge reports: do not wait for acks",
    )
    sim.add_argument("--ack-match", choices=("fifo", "time"), default="fifo")
    sim.add_argument("--window", type=int, default=64, help="reports in flight per terminal")
    sim.add_argument("--heartbeat", type=float, default=30.0, metavar="S")
    sim.add_argument("--seed", type=int, default=1, help="VINs and phone numbers follow from it")
    sim.add_argument(
        "--start-time", default=None, metavar="ISO", help="simulated data times from here"
    )
    sim.add_argument("--time-sync", action="store_true", help="GB/T time sync after login")
    sim.add_argument("--tls", action="store_true")
    sim.add_argument("--tls-ca", default=None, metavar="PEM", help="verify the server with it")
    sim.add_argument("--quiet", action="store_true", help="no live counts on stderr")
    sim.add_argument(
        "--measure-generation",
        type=float,
        default=None,
        metavar="S",
        help="only measure how many reports/s this process makes (S s per version)",
    )
    sim.set_defaults(func=cmd_simulate)

    status = sub.add_parser(
        "status",
        help="the live counts of a running gateway, one line per worker",
        description="Read the snapshot files the gateway processes of this configuration "
        "write every second (<spool.path>/metrics, or metrics.dir) and print one status line "
        "per worker. Exit status 0 when at least one is running.",
    )
    status.add_argument("--config", metavar="PATH", help="TOML configuration file")
    status.set_defaults(func=cmd_status)

    from gateway.api.cli import add_parser as add_token_parser  # no FastAPI import

    add_token_parser(sub)

    add_report_parser(sub)  # silkgate report: gateway/reports/cli.py

    info = sub.add_parser("info", help="version and the active codec implementations")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    status: int = ns.func(ns, sys.stdout, sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
