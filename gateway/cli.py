"""The ``silkgate`` command line: ``decode`` frames from hex, ``info`` about this install."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from gateway import __version__
from gateway.codecs import gbt32960, jt808
from gateway.codecs.errors import ProtocolError
from gateway.normalize import normalize
from gateway.render import to_builtins, to_json

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

    from gateway.config import Config, ConfigError, load
    from gateway.runner import RunOptions, run

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = load(ns.config) if ns.config else Config()
    except ConfigError as exc:
        print(f"silkgate: {exc}", file=err)
        return 2
    opts = RunOptions(simulate=ns.simulate, interval_s=ns.interval, duration_s=ns.duration)
    return asyncio.run(run(cfg, opts, out))


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
        "--interval", type=float, default=1.0, metavar="S", help="simulated report interval (s)"
    )
    run.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S s")
    run.set_defaults(func=cmd_run)

    info = sub.add_parser("info", help="version and the active codec implementations")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    status: int = ns.func(ns, sys.stdout, sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
