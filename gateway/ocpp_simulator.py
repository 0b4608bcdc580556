"""Simulated OCPP charge points (1.6J and 2.0.1) for ``silkgate run --simulate`` and tests.

Each charger connects over WebSocket to a central system, boots, reports its connector
available, then charges in cycles: authorize, start a transaction (1.6 StartTransaction, 2.0.1
TransactionEvent Started), meter values every ``interval_s`` (energy, power, current and
voltage per phase, SoC), stop, available again; Heartbeat at the interval the boot answer
gave. It answers the central system's commands (remote start/stop, reset, configuration,
trigger, unlock, availability) with Accepted, and reconnects after a lost connection. The
OCPP-J framing is :class:`gateway.ocpp.rpc.RpcConnection`, as on the server side.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from gateway.ocpp import messages
from gateway.ocpp.rpc import CallResult, IncomingCall, RpcConnection
from gateway.ocpp.rpc_events import BadMessage, Event

log = logging.getLogger("silkgate.ocpp.simulator")

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"

# What a simulated charger answers to the central system's CALLs (converted to the response
# Struct of the action); actions not listed get NotImplemented.
_ANSWERS: dict[str, dict[str, dict[str, Any]]] = {
    V16: {
        "RemoteStartTransaction": {"status": "Accepted"},
        "RemoteStopTransaction": {"status": "Accepted"},
        "Reset": {"status": "Accepted"},
        "ChangeConfiguration": {"status": "Accepted"},
        "GetConfiguration": {
            "configurationKey": [
                {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
                {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
            ]
        },
        "TriggerMessage": {"status": "Accepted"},
        "UnlockConnector": {"status": "Unlocked"},
        "ChangeAvailability": {"status": "Accepted"},
        "ClearCache": {"status": "Accepted"},
        "DataTransfer": {"status": "Accepted"},
    },
    V201: {
        "RequestStartTransaction": {"status": "Accepted"},
        "RequestStopTransaction": {"status": "Accepted"},
        "Reset": {"status": "Accepted"},
        "SetVariables": {"setVariableResult": []},  # filled per request
        "GetVariables": {"getVariableResult": []},  # filled per request
        "TriggerMessage": {"status": "Accepted"},
        "UnlockConnector": {"status": "Unlocked"},
        "ChangeAvailability": {"status": "Accepted"},
        "ClearCache": {"status": "Accepted"},
        "DataTransfer": {"status": "Accepted"},
    },
}


@dataclass(frozen=True)
class ChargerSimConfig:
    """What to simulate: ``chargers`` charge points against ``url`` (``ws://host:port/ocpp``)."""

    url: str
    chargers: int
    versions: tuple[str, ...] = (V16, V201)  # assigned in turn
    interval_s: float = 10.0  # meter values while charging
    samples_per_session: int = 6  # meter value messages per charging session
    pause_s: float = 5.0  # between sessions
    id_prefix: str = "SIM-CP-"
    password: bytes | None = None  # HTTP Basic (security profile 1), same for all
    seed: int = 1
    connect_concurrency: int = 50


@dataclass
class ChargerStats:
    """Counts over the whole fleet."""

    online: int = 0
    sent: int = 0  # CALLs sent
    answered: int = 0  # CALLRESULTs received for them
    errors: int = 0  # CALLERRORs, timeouts, aborted
    commands: int = 0  # central system CALLs answered
    connects: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def p99_ms(self) -> float | None:
        lat = sorted(self.latencies_ms[-10_000:])
        return lat[int(len(lat) * 0.99) - 1] if len(lat) >= 100 else None


class _Charger:
    """One simulated charge point (its own connection, state and meter)."""

    def __init__(self, cfg: ChargerSimConfig, index: int, stats: ChargerStats) -> None:
        self.cfg = cfg
        self.version = cfg.versions[index % len(cfg.versions)]
        self.identity = f"{cfg.id_prefix}{index:05d}"
        self.stats = stats
        self.rng = random.Random(cfg.seed * 1_000_003 + index)
        self.energy_wh = float(self.rng.randrange(100_000, 5_000_000))
        self.soc = 20.0
        self.seq_no = 0
        self.heartbeat_s = 300.0
        self._ws: ClientConnection | None = None
        self._rpc: RpcConnection | None = None
        self._waiters: dict[str, asyncio.Future[Event]] = {}
        self._stopping = False

    # -- connection --------------------------------------------------------------------------

    async def run(self, gate: asyncio.Semaphore) -> None:
        delay = 1.0
        while not self._stopping:
            try:
                async with gate:
                    ws = await connect(
                        f"{self.cfg.url.rstrip('/')}/{quote(self.identity, safe='')}",
                        subprotocols=[self.version],  # type: ignore[list-item]
                        additional_headers=self._headers(),
                        open_timeout=30,
                    )
                delay = 1.0
                await self._session(ws)
            except (OSError, WebSocketException, TimeoutError) as exc:
                log.debug("%s: %s", self.identity, exc)
            if not self._stopping:
                await asyncio.sleep(delay * (0.5 + self.rng.random()))
                delay = min(delay * 2, 30.0)

    def _headers(self) -> dict[str, str]:
        if self.cfg.password is None:
            return {}
        token = base64.b64encode(self.identity.encode() + b":" + self.cfg.password).decode()
        return {"Authorization": f"Basic {token}"}

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()

    async def _session(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._rpc = RpcConnection(self.version, messages, supported=_ANSWERS[self.version])
        self.stats.connects += 1
        self.stats.online += 1
        reader = asyncio.create_task(self._read(ws))
        try:
            await self._operate()
        finally:
            self.stats.online -= 1
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            for ev in self._rpc.abort():
                self._resolve(ev)
            self._ws = None
            await ws.close()

    async def _read(self, ws: ClientConnection) -> None:
        assert self._rpc is not None
        async for text in ws:
            for ev in self._rpc.receive_text(text, time.monotonic()):
                if isinstance(ev, IncomingCall):
                    await ws.send(self._rpc.answer(ev.unique_id, self._answer(ev)))
                    self.stats.commands += 1
                elif isinstance(ev, BadMessage):
                    if ev.reply:
                        await ws.send(ev.reply)
                else:
                    self._resolve(ev)
            nxt = self._rpc.next_outgoing()
            if nxt is not None:
                await ws.send(nxt)

    def _answer(self, ev: IncomingCall) -> msgspec.Struct:
        body = dict(_ANSWERS[self.version][ev.action])
        if ev.action == "SetVariables":
            body["setVariableResult"] = [
                {
                    "attributeStatus": "Accepted",
                    "component": msgspec.to_builtins(d.component),
                    "variable": msgspec.to_builtins(d.variable),
                }
                for d in ev.payload.setVariableData
            ]
        elif ev.action == "GetVariables":
            body["getVariableResult"] = [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "300",
                    "component": msgspec.to_builtins(d.component),
                    "variable": msgspec.to_builtins(d.variable),
                }
                for d in ev.payload.getVariableData
            ]
        response = messages.ACTIONS[self.version][ev.action][1]
        return msgspec.convert(body, response)

    def _resolve(self, ev: Event) -> None:
        fut = self._waiters.pop(getattr(ev, "unique_id", ""), None)
        if fut is not None and not fut.done():
            fut.set_result(ev)

    async def call(self, action: str, payload: dict[str, Any]) -> Any:
        """Send a CALL and wait for its answer payload (None: refused, timed out, closed)."""
        assert self._rpc is not None and self._ws is not None
        request = msgspec.convert(payload, messages.ACTIONS[self.version][action][0])
        started = time.perf_counter()
        out = self._rpc.call(action, request, time.monotonic(), timeout=30.0)
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters[out.unique_id] = fut
        self.stats.sent += 1
        if out.text is not None:
            await self._ws.send(out.text)
        try:
            ev = await asyncio.wait_for(fut, 35.0)
        except TimeoutError:
            self._waiters.pop(out.unique_id, None)
            self.stats.errors += 1
            return None
        if isinstance(ev, CallResult):
            self.stats.answered += 1
            self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            if len(self.stats.latencies_ms) > 20_000:
                del self.stats.latencies_ms[:10_000]
            return ev.payload
        self.stats.errors += 1
        return None

    # -- behaviour ---------------------------------------------------------------------------

    async def _operate(self) -> None:
        boot = await self.call("BootNotification", self._boot())
        while boot is None or boot.status != "Accepted":
            await asyncio.sleep(boot.interval if boot is not None else 10)
            boot = await self.call("BootNotification", self._boot())
        self.heartbeat_s = float(boot.interval or 300)
        heartbeat = asyncio.create_task(self._heartbeats())
        try:
            await self._status("Available")
            while True:
                await self._charge_once()
                await asyncio.sleep(self.cfg.pause_s * (0.5 + self.rng.random()))
        finally:
            heartbeat.cancel()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self.call("Heartbeat", {})

    def _boot(self) -> dict[str, Any]:
        if self.version == V16:
            return {
                "chargePointVendor": "Silkgate",
                "chargePointModel": "SIM-DC-360",
                "chargePointSerialNumber": self.identity,
                "firmwareVersion": "1.0.0",
            }
        return {
            "chargingStation": {
                "vendorName": "Silkgate",
                "model": "SIM-DC-360",
                "serialNumber": self.identity,
                "firmwareVersion": "1.0.0",
            },
            "reason": "PowerUp",
        }

    async def _status(self, status16: str) -> None:
        if self.version == V16:
            await self.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": status16, "timestamp": _now()},
            )
            return
        status = "Available" if status16 == "Available" else "Occupied"
        await self.call(
            "StatusNotification",
            {"timestamp": _now(), "connectorStatus": status, "evseId": 1, "connectorId": 1},
        )

    async def _charge_once(self) -> None:
        tag = f"TAG{self.rng.randrange(10_000):04d}"
        if self.version == V16:
            auth = await self.call("Authorize", {"idTag": tag})
            if auth is None or auth.idTagInfo.status != "Accepted":
                return
            await self._status("Preparing")
            start = await self.call(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": tag,
                    "meterStart": int(self.energy_wh),
                    "timestamp": _now(),
                },
            )
            if start is None:
                return
            tx: int | str = start.transactionId
            await self._status("Charging")
            for _ in range(self.cfg.samples_per_session):
                await asyncio.sleep(self.cfg.interval_s)
                self._advance()
                await self.call(
                    "MeterValues",
                    {"connectorId": 1, "transactionId": tx, "meterValue": [self._sample16()]},
                )
            await self.call(
                "StopTransaction",
                {
                    "transactionId": tx,
                    "meterStop": int(self.energy_wh),
                    "timestamp": _now(),
                    "idTag": tag,
                    "reason": "EVDisconnected",
                },
            )
            await self._status("Available")
            return
        auth = await self.call("Authorize", {"idToken": {"idToken": tag, "type": "ISO14443"}})
        if auth is None or auth.idTokenInfo.status != "Accepted":
            return
        tx = f"{self.identity}-{int(time.time() * 1000)}"
        await self._event("Started", "Authorized", tx, tag)
        await self._status("Occupied")
        for _ in range(self.cfg.samples_per_session):
            await asyncio.sleep(self.cfg.interval_s)
            self._advance()
            await self._event("Updated", "MeterValuePeriodic", tx, None)
        await self._event("Ended", "EVDeparted", tx, None, stopped="EVDisconnected")
        await self._status("Available")

    async def _event(
        self, kind: str, trigger: str, tx: str, tag: str | None, stopped: str | None = None
    ) -> None:
        info: dict[str, Any] = {"transactionId": tx, "chargingState": "Charging"}
        if stopped:
            info = {"transactionId": tx, "chargingState": "Idle", "stoppedReason": stopped}
        body: dict[str, Any] = {
            "eventType": kind,
            "timestamp": _now(),
            "triggerReason": trigger,
            "seqNo": self.seq_no,
            "transactionInfo": info,
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [self._sample201()],
        }
        self.seq_no += 1
        if tag is not None:
            body["idToken"] = {"idToken": tag, "type": "ISO14443"}
        await self.call("TransactionEvent", body)

    def _advance(self) -> None:
        self.energy_wh += self.cfg.interval_s * 150_000 / 3600 * (0.8 + 0.4 * self.rng.random())
        self.soc = min(100.0, self.soc + 0.5)

    def _readings(self) -> Iterable[tuple[str, str | None, float, str]]:
        power = 150_000 * (0.8 + 0.4 * self.rng.random())
        yield "Energy.Active.Import.Register", None, round(self.energy_wh / 1000, 3), "kWh"
        yield "Power.Active.Import", None, round(power / 1000, 2), "kW"
        for phase in ("L1", "L2", "L3"):
            yield "Current.Import", phase, round(power / 3 / 230, 1), "A"
            yield "Voltage", f"{phase}-N", round(228 + 4 * self.rng.random(), 1), "V"
        yield "SoC", None, round(self.soc, 1), "Percent"
        yield "Temperature", None, round(30 + 5 * self.rng.random(), 1), "Celsius"

    def _sample16(self) -> dict[str, Any]:
        values = []
        for measurand, phase, value, unit in self._readings():
            sv: dict[str, Any] = {"value": str(value), "measurand": measurand, "unit": unit}
            if phase:
                sv["phase"] = phase
            values.append(sv)
        return {"timestamp": _now(), "sampledValue": values}

    def _sample201(self) -> dict[str, Any]:
        values = []
        for measurand, phase, value, unit in self._readings():
            if measurand == "Temperature":
                continue  # not in the 2.0.1 TransactionEvent measurands
            sv: dict[str, Any] = {
                "value": value,
                "measurand": measurand,
                "unitOfMeasure": {"unit": unit},
            }
            if phase:
                sv["phase"] = phase
            values.append(sv)
        return {"timestamp": _now(), "sampledValue": values}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def charger_identities(cfg: ChargerSimConfig) -> list[tuple[str, str]]:
    """The (charge point identity, OCPP version) of each charger a :class:`ChargerFleet` of
    ``cfg`` simulates; nothing connects."""
    stats = ChargerStats()
    return [(c.identity, c.version) for c in (_Charger(cfg, i, stats) for i in range(cfg.chargers))]


class ChargerFleet:
    """Many simulated chargers; ``async with ChargerFleet(cfg) as fleet: await fleet.run()``."""

    def __init__(self, cfg: ChargerSimConfig) -> None:
        self.cfg = cfg
        self.stats = ChargerStats()
        self.chargers = [_Charger(cfg, i, self.stats) for i in range(cfg.chargers)]
        self._tasks: list[asyncio.Task[None]] = []
        self._done = asyncio.Event()

    async def __aenter__(self) -> ChargerFleet:
        gate = asyncio.Semaphore(self.cfg.connect_concurrency)
        self._tasks = [asyncio.create_task(c.run(gate)) for c in self.chargers]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Until :meth:`stop`."""
        await self._done.wait()

    async def stop(self) -> None:
        """Close every charger's connection and end :meth:`run`."""
        for c in self.chargers:
            await c.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        self._done.set()

    def summary(self) -> str:
        s = self.stats
        p99 = s.p99_ms()
        return (
            f"chargers {s.online}/{len(self.chargers)} online, {s.answered:,} answered, "
            f"{s.errors} errors" + (f", p99 {p99:.0f} ms" if p99 is not None else "")
        )
