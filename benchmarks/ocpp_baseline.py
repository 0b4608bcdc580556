"""The baseline central system: OCPP 1.6J written the common way with the ``ocpp`` library.

As the library's README and examples do it: a ``ocpp.v16.ChargePoint`` subclass whose
``@on(Action...)`` handlers return ``call_result`` dataclasses, one instance per connection,
served by ``websockets.serve(..., subprotocols=["ocpp1.6"])`` and ``await cp.start()``; the
charge point id is the last path segment. Handlers answer BootNotification (Accepted),
Heartbeat, StatusNotification, Authorize, StartTransaction (a counter), StopTransaction and
MeterValues. The library validates every CALL and CALLRESULT against the JSON schemas (in the
default thread pool, its default).

Nothing is stored and nothing is logged (the library's INFO logging of every message, which
its examples switch on, is left off), and the event loop is uvloop as silkgate's: all three
favour this baseline over a real central system.

Prints ``listening: ocpp-library on host:port`` once it serves; stops on SIGINT/SIGTERM.

    python benchmarks/ocpp_baseline.py [--host 127.0.0.1] [--port 9100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import resource
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, this folder is sys.path[0], and benchmarks/ocpp.py would shadow the package.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

import websockets  # noqa: E402
from ocpp.routing import on  # type: ignore[import-untyped]  # noqa: E402
from ocpp.v16 import ChargePoint as Cp  # type: ignore[import-untyped]  # noqa: E402
from ocpp.v16 import call_result  # noqa: E402
from ocpp.v16.enums import (  # type: ignore[import-untyped]  # noqa: E402
    Action,
    AuthorizationStatus,
    RegistrationStatus,
)
from websockets.asyncio.server import ServerConnection  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

_transaction_ids = itertools.count(1)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ChargePoint(Cp):  # type: ignore[misc]
    """One connected charge point."""

    @on(Action.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> Any:
        return call_result.BootNotification(
            current_time=_now(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self) -> Any:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)  # type: ignore[untyped-decorator]
    def on_status_notification(self, **kwargs: Any) -> Any:
        return call_result.StatusNotification()

    @on(Action.authorize)  # type: ignore[untyped-decorator]
    def on_authorize(self, id_tag: str) -> Any:
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)  # type: ignore[untyped-decorator]
    def on_start_transaction(self, connector_id: int, id_tag: str, **kwargs: Any) -> Any:
        return call_result.StartTransaction(
            transaction_id=next(_transaction_ids),
            id_tag_info={"status": AuthorizationStatus.accepted},
        )

    @on(Action.stop_transaction)  # type: ignore[untyped-decorator]
    def on_stop_transaction(self, **kwargs: Any) -> Any:
        return call_result.StopTransaction()

    @on(Action.meter_values)  # type: ignore[untyped-decorator]
    def on_meter_values(self, connector_id: int, meter_value: list[Any], **kwargs: Any) -> Any:
        return call_result.MeterValues()


async def on_connect(websocket: ServerConnection) -> None:
    """The library's example handler: refuse a connection without the sub-protocol."""
    if websocket.subprotocol is None:
        await websocket.close()
        return
    assert websocket.request is not None
    cp = ChargePoint(websocket.request.path.rstrip("/").rsplit("/", 1)[-1], websocket)
    with contextlib.suppress(websockets.ConnectionClosed):
        await cp.start()


async def serve(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with websockets.serve(
        on_connect, host, port, subprotocols=[Subprotocol("ocpp1.6")]
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"listening: ocpp-library on {host}:{bound}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0: any free port")
    parser.add_argument("--no-uvloop", action="store_true", help="the default asyncio loop")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    factory = None
    if not args.no_uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
