"""The bridge to an operator's own upstream CSMS: silkgate connects to it as each bridged charge
point and relays both ways, translating 1.6 <-> 2.0.1 (:mod:`gateway.ocpp.translate`) when the
sides speak different versions.

:class:`Bridge` holds the ``[[ocpp.bridge]]`` entries; :meth:`Bridge.open` starts a
:class:`BridgeLink` for a connected charger (a WebSocket client to ``url/<identity>``,
reconnecting with backoff and jitter). :meth:`BridgeLink.relay` carries a charger's CALL upstream
and returns the upstream's answer (None when it cannot: the central system then answers the
charger itself). CALLs from the upstream are sent to the charger through its
:class:`~gateway.ocpp.link.ChargerLink` and the outcome answered upstream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import ssl
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gateway.config import OcppBridgeConfig
from gateway.ocpp import messages
from gateway.ocpp import translate as tr
from gateway.ocpp.link import ChargerLink
from gateway.ocpp.rpc import (
    BadMessage,
    CallAborted,
    CallError,
    CallResult,
    CallTimeout,
    Event,
    IncomingCall,
    InvalidResult,
    RpcConnection,
    RpcUsageError,
    Unmatched,
)

__all__ = ["Bridge", "BridgeLink", "BridgeStats"]

log = logging.getLogger("silkgate.ocpp.bridge")

_MAX_STATES: Final = 50_000  # chargers whose translation state is kept between connections
_OPEN_TIMEOUT_S: Final = 10.0
_NOT_CARRIED: Final = frozenset({"unsupported_action", "unknown_action"})  # upstream CALLs


@dataclass(slots=True)
class BridgeStats:
    """Counters over all links of a :class:`Bridge`."""

    connects: int = 0  # upstream connections established
    connect_failures: int = 0
    relayed: int = 0  # charger CALLs answered by the upstream
    not_relayed: int = 0  # charger CALLs the central system answered itself (any reason below)
    upstream_down: int = 0
    upstream_timeouts: int = 0
    upstream_errors: int = 0  # CALLERROR or unusable answer from the upstream
    untranslatable: int = 0
    upstream_calls: int = 0  # CALLs from the upstream
    upstream_calls_failed: int = 0  # answered with a CALLERROR


class Bridge:
    """The configured upstream CSMSs (``OcppConfig.bridge``)."""

    def __init__(self, cfgs: list[OcppBridgeConfig]) -> None:
        self.cfgs = list(cfgs)
        self.stats = BridgeStats()
        self._states: OrderedDict[str, tr.TxState] = OrderedDict()

    def for_charger(self, charger_id: str) -> OcppBridgeConfig | None:
        """The bridge entry of a charger: one naming it, else the first with ``"*"``."""
        for cfg in self.cfgs:
            if charger_id in cfg.chargers:
                return cfg
        for cfg in self.cfgs:
            if "*" in cfg.chargers:
                return cfg
        return None

    def state(self, charger_id: str) -> tr.TxState:
        """The translation state of a charger (kept across its reconnections, bounded)."""
        st = self._states.get(charger_id)
        if st is None:
            st = self._states[charger_id] = tr.TxState()
            while len(self._states) > _MAX_STATES:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(charger_id)
        return st

    async def open(
        self, link: ChargerLink, session_password: bytes | None = None
    ) -> BridgeLink | None:
        """Start relaying a connected charger (None when it is not bridged). The upstream
        connection is made in the background; the link relays as soon as it is up.

        The HTTP Basic password is the ``password_env`` variable's value; when the entry names
        none, ``session_password`` (the charger's own, as it presented it) is passed through;
        neither: no Authorization header."""
        cfg = self.for_charger(link.charger_id)
        if cfg is None:
            return None
        password = session_password
        if cfg.password_env:
            value = os.environ.get(cfg.password_env)
            if value is None:
                log.error(
                    "bridge %s: environment variable %s is not set; connecting %s without it",
                    cfg.name,
                    cfg.password_env,
                    link.charger_id,
                )
            else:
                password = value.encode()
        bl = BridgeLink(cfg, link, self.state(link.charger_id), self.stats, password)
        bl.start()
        return bl


class _Down(Exception):
    """The upstream cannot take a CALL now."""


class BridgeLink:
    """One charger's connection to the upstream CSMS."""

    def __init__(
        self,
        cfg: OcppBridgeConfig,
        link: ChargerLink,
        state: tr.TxState,
        stats: BridgeStats,
        password: bytes | None = None,
    ) -> None:
        self.cfg = cfg
        self.link = link
        self.state = state
        self.stats = stats
        self.charger_version = link.version
        self.upstream_version = link.version if cfg.version == "same" else cfg.version
        self.same = self.upstream_version == self.charger_version
        self._supported = tr.supported_downstream(self.upstream_version, self.charger_version)
        self._password = password
        self._ws: ClientConnection | None = None
        self._rpc: RpcConnection | None = None
        self._up = asyncio.Event()
        self._connecting = True  # an attempt is in progress (relay waits for it)
        self._waiters: dict[str, asyncio.Future[Event]] = {}
        self._incoming: asyncio.Queue[tuple[RpcConnection, IncomingCall]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def connected(self) -> bool:
        """True while the upstream connection is open."""
        return self._up.is_set()

    @property
    def uri(self) -> str:
        """The upstream URL of this charger: ``url/<percent-encoded identity>``."""
        return self.cfg.url.rstrip("/") + "/" + quote(self.link.charger_id, safe="")

    def start(self) -> None:
        """Start the connection and the worker answering the upstream's CALLs."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._run(), name=f"bridge-{self.link.charger_id}"),
            asyncio.create_task(self._serve_upstream(), name=f"bridge-in-{self.link.charger_id}"),
        ]

    async def close(self) -> None:
        """The charger disconnected: close the upstream connection, stop reconnecting."""
        self._closed = True
        self._connecting = False
        ws = self._ws
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        self._lost()

    async def wait_connected(self, timeout: float) -> bool:
        """Wait for the upstream connection (tests, diagnostics)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), timeout)
        return self._up.is_set()

    # -- charger -> upstream -------------------------------------------------------------------

    async def relay(self, action: str, request: Any) -> Any | None:
        """The upstream's answer to the charger's CALL, as a response Struct of the charger's
        version; None when the upstream is down, does not answer within ``answer_timeout_s``,
        answers with a CALLERROR, or the message has no translation."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.answer_timeout_s
        answers: list[Any] = []
        try:
            if self.same:
                plan = tr.Plan(((action, request),), lambda answers: answers[0])
            else:
                plan = tr.to_upstream(
                    self.state,
                    self.charger_version,
                    self.upstream_version,
                    action,
                    request,
                    datetime.now(UTC),
                )
            for step_action, step_request in plan.steps:
                answers.append(await self._call_upstream(step_action, step_request, deadline))
            answer = plan.back(answers)
        except _Down as exc:
            level = logging.DEBUG if not self.connected else logging.INFO
            log.log(level, "bridge %s: %s not relayed: %s", self.link.charger_id, action, exc)
            self.stats.not_relayed += 1
            return None
        except tr.Untranslatable as exc:
            log.debug("bridge %s: %s not translated: %s", self.link.charger_id, action, exc)
            self.stats.untranslatable += 1
            self.stats.not_relayed += 1
            return None
        except Exception:
            log.exception("bridge %s: relaying %s failed", self.link.charger_id, action)
            self.stats.not_relayed += 1
            return None
        self.stats.relayed += 1
        return answer

    async def _call_upstream(self, action: str, request: Any, deadline: float) -> Any:
        loop = asyncio.get_running_loop()
        if not self._up.is_set() and self._connecting:
            # The first CALLs of a charger (BootNotification) come while we connect.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), max(0.0, deadline - loop.time()))
        ws, rpc = self._ws, self._rpc
        if ws is None or rpc is None or not self._up.is_set():
            self.stats.upstream_down += 1
            raise _Down("upstream not connected")
        timeout = deadline - loop.time()
        if timeout <= 0:
            self.stats.upstream_timeouts += 1
            raise _Down("no time left")
        try:
            out = rpc.call(action, request, loop.time(), timeout)
        except RpcUsageError as exc:
            self.stats.upstream_errors += 1
            raise _Down(str(exc)) from None
        fut: asyncio.Future[Event] = loop.create_future()
        self._waiters[out.unique_id] = fut
        try:
            if out.text is not None:
                await self._send(ws, out.text)
            try:
                event = await asyncio.wait_for(asyncio.shield(fut), timeout)
            except TimeoutError:
                if rpc is self._rpc:
                    self._dispatch(rpc, rpc.on_timer(max(loop.time(), deadline)))
                event = (
                    fut.result()
                    if fut.done()
                    else CallTimeout(out.unique_id, action, request, True)
                )
        finally:
            self._waiters.pop(out.unique_id, None)
        if type(event) is CallResult:
            return event.payload
        if type(event) is CallTimeout:
            self.stats.upstream_timeouts += 1
            raise _Down(f"no answer within {self.cfg.answer_timeout_s} s")
        if type(event) is CallAborted:
            self.stats.upstream_down += 1
            raise _Down("upstream connection lost")
        self.stats.upstream_errors += 1
        if type(event) is CallError:
            raise _Down(f"CALLERROR {event.code}: {event.description}")
        assert type(event) is InvalidResult
        raise _Down(f"invalid answer {event.code}: {event.description}")

    # -- the connection ------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self._password is None:
            return {}
        token = base64.b64encode(self.link.charger_id.encode() + b":" + self._password)
        return {"Authorization": "Basic " + token.decode("ascii")}

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.cfg.url.startswith("wss://"):
            return None
        if self.cfg.tls_ca:
            return ssl.create_default_context(cafile=self.cfg.tls_ca)
        return ssl.create_default_context()

    async def _run(self) -> None:
        delay = self.cfg.reconnect_min_s
        while not self._closed:
            self._connecting = True
            try:
                ws = await connect(
                    self.uri,
                    subprotocols=[Subprotocol(self.upstream_version)],
                    additional_headers=self._headers(),
                    ssl=self._ssl(),
                    open_timeout=_OPEN_TIMEOUT_S,
                    compression=None,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connecting = False
                self.stats.connect_failures += 1
                log.warning("bridge %s: cannot connect to %s: %s", self.cfg.name, self.uri, exc)
            else:
                if ws.subprotocol != self.upstream_version:
                    self._connecting = False
                    self.stats.connect_failures += 1
                    log.warning(
                        "bridge %s: %s did not agree to %s",
                        self.cfg.name,
                        self.uri,
                        self.upstream_version,
                    )
                    await ws.close()
                else:
                    delay = self.cfg.reconnect_min_s
                    await self._session(ws)
            if self._closed:
                break
            # Full jitter over the upper half: reconnections of many chargers spread out.
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.cfg.reconnect_max_s)

    async def _session(self, ws: ClientConnection) -> None:
        rpc = RpcConnection(self.upstream_version, messages, supported=self._supported)
        self._ws, self._rpc = ws, rpc
        self._connecting = False
        self._up.set()
        self.stats.connects += 1
        log.info("bridge %s: %s connected to %s", self.cfg.name, self.link.charger_id, self.uri)
        loop = asyncio.get_running_loop()
        try:
            async for text in ws:
                self._dispatch(rpc, rpc.receive_text(text, loop.time()))
        except ConnectionClosed:
            pass
        finally:
            self._lost()
            log.info(
                "bridge %s: %s disconnected from upstream", self.cfg.name, self.link.charger_id
            )

    def _lost(self) -> None:
        self._up.clear()
        rpc = self._rpc
        self._ws = self._rpc = None
        if rpc is not None:
            self._dispatch(rpc, rpc.abort())

    def _dispatch(self, rpc: RpcConnection, events: list[Event]) -> None:
        for event in events:
            if type(event) is IncomingCall:
                self._incoming.put_nowait((rpc, event))
            elif type(event) is BadMessage and event.reason in _NOT_CARRIED:
                self.stats.upstream_calls += 1
                self.stats.upstream_calls_failed += 1
                log.info("bridge %s: %s", self.cfg.name, event.description)
                if event.reply is not None:
                    self._send_soon(rpc, event.reply)
            elif type(event) is BadMessage:
                log.warning(
                    "bridge %s: bad message from upstream: %s", self.cfg.name, event.description
                )
                if event.reply is not None:
                    self._send_soon(rpc, event.reply)
            elif type(event) is Unmatched:
                log.info(
                    "bridge %s: unmatched answer %s from upstream", self.cfg.name, event.unique_id
                )
            elif isinstance(
                event, CallResult | CallError | InvalidResult | CallTimeout | CallAborted
            ):
                fut = self._waiters.get(event.unique_id)
                if fut is not None and not fut.done():
                    fut.set_result(event)
        text = rpc.next_outgoing()
        if text is not None:
            self._send_soon(rpc, text)

    def _send_soon(self, rpc: RpcConnection, text: str) -> None:
        ws = self._ws
        if ws is not None and rpc is self._rpc:
            task = asyncio.create_task(self._send(ws, text))
            self._sending.add(task)  # a reference, so the task is not collected mid-send
            task.add_done_callback(self._sending.discard)

    async def _send(self, ws: ClientConnection, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    # -- upstream -> charger -------------------------------------------------------------------

    async def _serve_upstream(self) -> None:
        """Answer the upstream's CALLs one at a time, in order."""
        while True:
            rpc, call = await self._incoming.get()
            if rpc is not self._rpc:
                continue  # its connection is gone: the upstream no longer waits for it
            self.stats.upstream_calls += 1
            try:
                text = await self._answer(rpc, call)
            except RpcUsageError:
                continue  # that upstream connection is gone: nothing to answer on
            except Exception:
                log.exception("bridge %s: %s from upstream failed", self.cfg.name, call.action)
                if rpc is not self._rpc:
                    continue
                text = rpc.answer_error(call.unique_id, "InternalError", "bridge failure")
            ws = self._ws
            if rpc is self._rpc and ws is not None:
                await self._send(ws, text)

    async def _answer(self, rpc: RpcConnection, call: IncomingCall) -> str:
        if self.same:
            plan = tr.Plan(((call.action, call.payload),), lambda answers: answers[0])
        else:
            try:
                plan = tr.to_charger(
                    self.state,
                    self.upstream_version,
                    self.charger_version,
                    call.action,
                    call.payload,
                )
            except tr.Untranslatable as exc:
                self.stats.upstream_calls_failed += 1
                return rpc.answer_error(call.unique_id, "NotSupported", str(exc))
        answers: list[Any] = []
        for action, request in plan.steps:
            outcome = await self.link.call(action, request, self.cfg.answer_timeout_s)
            if type(outcome) is CallResult:
                answers.append(outcome.payload)
                continue
            self.stats.upstream_calls_failed += 1
            if type(outcome) is CallError:
                return rpc.answer_error(
                    call.unique_id, outcome.code, outcome.description, outcome.details
                )
            if type(outcome) is CallTimeout:
                return rpc.answer_error(
                    call.unique_id, "GenericError", "the charge point did not answer in time"
                )
            if type(outcome) is CallAborted:
                return rpc.answer_error(
                    call.unique_id, "GenericError", "the charge point disconnected"
                )
            return rpc.answer_error(
                call.unique_id, "InternalError", "the charge point's answer was invalid"
            )
        try:
            answer = plan.back(answers)
        except tr.Untranslatable as exc:
            self.stats.upstream_calls_failed += 1
            return rpc.answer_error(call.unique_id, "InternalError", str(exc))
        return rpc.answer(call.unique_id, answer)
