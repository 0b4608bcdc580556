"""The OCPP central system's WebSocket server: FastAPI on uvicorn (httptools, websockets
sans-I/O), ``ws[s]://host:port/<path>/<charge point identity>``.

The handshake, before anything is accepted: the identity (percent-decoded; one path segment,
1 to 48 characters, no ``:``) or HTTP 400; the connection limits (in total and per IP) or 503;
the registry (``Registry.charger``): an unknown charge point gets 404 under
``unknown_chargers = "reject"`` and is let in, flagged, under ``"accept"``; then the security
profile (:mod:`gateway.adapters.ocpp_auth`): HTTP Basic with the per-charger key (401 with
``WWW-Authenticate`` when missing or wrong), profile 2 only over TLS (403). The sub-protocol
is the first of ``subprotocols`` that the charger offers; when it offers none of them the
handshake completes without a ``Sec-WebSocket-Protocol`` header and the connection is closed
at once (1002, naming the versions spoken here), as OCPP-J requires.

An accepted charger becomes a :class:`~gateway.adapters.ocpp_link.ChargerConnection` (its
message loop lives there), indexed in :class:`~gateway.ocpp.link.Links`: a newer connection
of the same identity displaces the older one (closed with 1000). Limits: ``max_message_bytes``
is the RPC layer's (a larger message gets a CALLERROR, the connection stays); uvicorn's
``ws_max_size`` is a hard cap of 4x that plus 1 KiB (only absurd messages close the connection,
1009). WebSocket pings every ``ping_interval_s`` (0: none) and a pong within
``ping_timeout_s``, inside the WebSocket protocol; ``idle_timeout_s`` without any message
closes the connection (1001). Permessage-deflate is not offered (CPU per message; chargers
rarely use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import uvicorn
from fastapi import FastAPI
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from gateway.adapters.limits import ConnectionLimiter, ListenerStats
from gateway.adapters.ocpp_auth import (
    Refusal,
    check_access,
    choose_subprotocol,
    identity_from_path,
    identity_problem,
    parse_basic,
)
from gateway.adapters.ocpp_link import (
    ACTIVITY,
    DISPLACED,
    IDLE_TIMEOUT,
    WIRE,
    ChargerConnection,
    RelayLink,
    Shared,
)
from gateway.adapters.tcp import Submitter
from gateway.config import OcppConfig
from gateway.frame_ids import FrameIds
from gateway.ocpp import messages
from gateway.ocpp.central import CentralSystem, ChargerSession
from gateway.ocpp.link import ChargerLink, Links
from gateway.ocpp.rpc import RpcConnection
from gateway.registry import Registry

__all__ = ["ChargerConnection", "OcppServer"]

log = logging.getLogger("silkgate.ocpp")

_CLOSE_NO_SUBPROTOCOL: Final = 1002
_GRACEFUL_S: Final = 5
_FIN_TEXT: Final = 0x81  # a server frame: FIN, opcode 1 (text), unmasked
_HEAD16: Final = struct.Struct("!BBH")
_HEAD64: Final = struct.Struct("!BBQ")


class BridgeOpener(Protocol):
    """What the server needs of ``gateway.ocpp.bridge.Bridge``."""

    def for_charger(self, charger_id: str) -> Any | None: ...

    async def open(
        self, link: ChargerLink, session_password: bytes | None = None
    ) -> RelayLink | None: ...


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the runner owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Inbox:
    """What uvicorn's protocol uses of its ``asyncio.Queue`` (``put_nowait``, ``get``,
    ``empty``), for its one consumer (the app's task): a list and a future. An asyncio.Queue
    is four deques and an Event, about 3.5 KiB per idle connection."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class _WsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets sans-I/O protocol, plus the time of the last bytes received (data,
    pings and pongs alike; the app sees only data) in the scope's extension
    ``silkgate.activity`` (``{"last": loop time}``), itself in the extension ``silkgate.wire``
    (the connection's fast path: :meth:`receive` and :meth:`send_text` without the ASGI
    wrappers), and minus a spurious error log: after a denial response (401, 404, ...) uvicorn
    takes the handshake for never completed and logs "ASGI callable returned without
    completing handshake" for every refused charger. Lighter per idle connection: an
    :class:`_Inbox` for uvicorn's queue, and the handshake's request and response let go once
    accepted."""

    _activity: dict[str, float] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the app runs: the handshake is up to it
            self._activity = {"last": self.loop.time()}
            extensions = scope.setdefault("extensions", {})
            extensions[ACTIVITY] = self._activity
            extensions[WIRE] = self

    def data_received(self, data: bytes) -> None:
        if self._activity is not None:
            self._activity["last"] = self.loop.time()
        super().data_received(data)

    async def send(self, message: Any) -> None:
        await super().send(message)
        kind = message["type"]
        if kind == "websocket.accept":
            # The handshake's request and response (their headers: 3 KiB) are not read again.
            self.__dict__.pop("request", None)
            self.__dict__.pop("response", None)
        elif kind == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True

    async def send_text(self, text: str) -> None:
        """``send({"type": "websocket.send", "text": text})``, cheaper: no ASGI message, and
        the frame (unmasked, unfragmented, no extension: the only kind sent here) is made here
        instead of by websockets' ``Frame.serialize``. Anything else than an open connection
        takes :meth:`send` (which raises ``ClientDisconnected`` when the peer is gone)."""
        if not self.writable.is_set():
            await self.writable.wait()
        conn = self.conn
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or conn.state is not State.OPEN
            or conn.expect_continuation_frame
            or conn.extensions
            or conn.debug
        ):
            await self.send({"type": "websocket.send", "text": text})
            return
        data = text.encode()
        n = len(data)
        if n < 126:
            head = bytes((_FIN_TEXT, n))
        elif n < 65536:
            head = _HEAD16.pack(_FIN_TEXT, 126, n)
        else:
            head = _HEAD64.pack(_FIN_TEXT, 127, n)
        queued = conn.data_to_send()  # normally empty: uvicorn flushes after every event
        self.transport.write(b"".join((*queued, head, data)) if queued else head + data)


class _Front:
    """The ASGI app uvicorn runs: a WebSocket to the charger route goes straight to the
    endpoint with uvicorn's own ``receive`` and ``send``; anything else to the FastAPI app.
    FastAPI's middleware stack would wrap both callables and sit in every connection's task
    for its lifetime (about 20 coroutine frames resumed on every message, and kept in memory
    per connection); it has nothing to do for this route. The route's own matching decides,
    so what reaches the endpoint is exactly what FastAPI would route to it."""

    def __init__(self, server: OcppServer, route: BaseRoute) -> None:
        self._server = server
        self._route = route

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            match, child = self._route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                await self._server._endpoint(WebSocket(scope, receive, send))
                return
        await self._server.app(scope, receive, send)


def _bind(host: str, port: int, backlog: int = 2048, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog, reuse_port=reuse_port)


class OcppServer:
    """The WebSocket server of the OCPP central system (see the module docstring).

    ``central`` answers the chargers' CALLs; ``pipeline`` makes records durable;
    ``registry`` knows the chargers and their keys; ``links`` (shared with the commands API)
    indexes the connected chargers; ``bridge`` relays chosen chargers to an upstream CSMS.
    """

    def __init__(
        self,
        cfg: OcppConfig,
        central: CentralSystem,
        pipeline: Submitter,
        registry: Registry,
        links: Links | None = None,
        bridge: BridgeOpener | None = None,
    ) -> None:
        self.cfg = cfg
        self.central = central
        self.pipeline = pipeline
        self.registry = registry
        self.links = links if links is not None else Links()
        self.bridge = bridge
        self.stats = ListenerStats("ocpp")
        self.limiter = ConnectionLimiter(cfg.max_connections, cfg.max_connections_per_ip)
        self.connections: set[ChargerConnection] = set()
        self._shared = Shared(central, pipeline, self.stats, FrameIds())
        self._prefix = cfg.path.rstrip("/") + "/"
        #: SO_REUSEPORT: set before :meth:`start` when worker processes share the port.
        self.reuse_port = False
        self._stopping = False
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._ended: set[asyncio.Future[None]] = (
            set()
        )  # one per admitted handshake, done at its end
        self.app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        self.app.add_api_websocket_route(self._prefix + "{charge_point_id:path}", self._endpoint)
        self._front = _Front(self, self.app.router.routes[-1])

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (in this event loop; ``cfg.port`` 0 picks a free port: see :attr:`port`)."""
        cfg = self.cfg
        config = uvicorn.Config(
            self._front,
            http="httptools",
            ws=_WsProtocol,
            ws_max_size=4 * cfg.max_message_bytes + 1024,
            ws_ping_interval=cfg.ping_interval_s or None,
            ws_ping_timeout=cfg.ping_timeout_s if cfg.ping_interval_s else None,
            ws_per_message_deflate=False,
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=_GRACEFUL_S,
            ssl_certfile=cfg.tls_cert or None,
            ssl_keyfile=cfg.tls_key or None,
        )
        config.load()  # TLS files and the app are checked here, before binding
        self._sock = _bind(cfg.host, cfg.port, reuse_port=self.reuse_port)
        self._server = _Server(config)
        self._serving = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[self._sock]), name="ocpp-uvicorn"
        )
        while not self._server.started:
            if self._serving.done():
                self._serving.result()  # raises what stopped uvicorn
                raise RuntimeError("uvicorn stopped during startup")
            await asyncio.sleep(0.005)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="ocpp-idle")

    @property
    def port(self) -> int:
        """The bound port."""
        if self._sock is None:
            raise RuntimeError("OCPP server not started")
        port: int = self._sock.getsockname()[1]
        return port

    async def stop(self, timeout: float | None = None) -> None:
        """Refuse new chargers (503), close the connected ones with 1001 once the message each
        is handling is answered, then stop uvicorn; connections still open after ``timeout``
        (default 10 s) are dropped by uvicorn's shutdown."""
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for conn in list(self.connections):
            conn.shutdown()
        ended = list(self._ended)
        if ended:
            await asyncio.wait(ended, timeout=10.0 if timeout is None else timeout)
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
        self._server = self._serving = self._sock = None

    async def _sweep(self) -> None:
        """Close connections silent for ``idle_timeout_s``."""
        idle = self.cfg.idle_timeout_s
        period = min(max(idle / 4, 0.05), 5.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            limit = loop.time() - idle
            for conn in list(self.connections):
                if conn.last_active() < limit and not conn.busy and not conn.closing:
                    conn.spawn(conn.close(1001, "idle timeout", IDLE_TIMEOUT))

    # -- the handshake -----------------------------------------------------------------------

    async def _endpoint(self, websocket: WebSocket) -> None:
        client = websocket.scope.get("client") or ("?", 0)
        ip = str(client[0])
        peer = f"[{ip}]:{client[1]}" if ":" in ip else f"{ip}:{client[1]}"
        try:
            identity = self._identity(websocket)
        except ValueError as exc:
            await self._deny(websocket, Refusal(400, str(exc)), "bad_identity")
            return
        if self._stopping:
            await self._deny(websocket, Refusal(503, "shutting down"), "shutdown")
            return
        limit = self.limiter.acquire(ip)
        if limit is not None:
            await self._deny(
                websocket, Refusal(503, "too many connections", {"Retry-After": "30"}), limit
            )
            return
        ended: asyncio.Future[None] = (
            asyncio.get_running_loop().create_future()
        )  # (an Event: 1 KiB)
        self._ended.add(ended)
        try:
            await self._admit(websocket, identity, peer)
        finally:
            self.limiter.release(ip)
            ended.set_result(None)
            self._ended.discard(ended)

    def _identity(self, websocket: WebSocket) -> str:
        raw_path = websocket.scope.get("raw_path")
        prefix = self._prefix.encode("latin-1")
        if isinstance(raw_path, bytes) and raw_path.startswith(prefix):
            return identity_from_path(raw_path[len(prefix) :])
        identity = str(websocket.path_params.get("charge_point_id", ""))  # already decoded
        problem = identity_problem(identity)
        if problem:
            raise ValueError(problem)
        return identity

    async def _deny(self, websocket: WebSocket, refusal: Refusal, why: str) -> None:
        self.stats.refused[why] = self.stats.refused.get(why, 0) + 1
        response = PlainTextResponse(
            refusal.reason + "\n", status_code=refusal.status, headers=refusal.headers
        )
        with contextlib.suppress(Exception):  # the client may be gone already
            await websocket.send_denial_response(response)

    async def _admit(self, websocket: WebSocket, identity: str, peer: str) -> None:
        cfg = self.cfg
        try:
            device = await self.registry.charger(identity)
        except Exception:
            log.exception("%s: registry lookup failed", identity)
            await self._deny(websocket, Refusal(503, "registry lookup failed"), "http_503")
            return
        credentials = parse_basic(websocket.headers.get("authorization"))
        refusal = check_access(
            identity,
            device,
            credentials,
            default_profile=cfg.security_profile,
            unknown_chargers=cfg.unknown_chargers,
            tls=cfg.tls,
        )
        if refusal is not None:
            await self._deny(websocket, refusal, f"http_{refusal.status}")
            return
        version = choose_subprotocol(websocket.scope.get("subprotocols") or (), cfg.subprotocols)
        if version is None:
            self.stats.refused["subprotocol"] = self.stats.refused.get("subprotocol", 0) + 1
            await websocket.accept()
            with contextlib.suppress(Exception):
                await websocket.close(
                    _CLOSE_NO_SUBPROTOCOL,
                    "no supported OCPP version offered; supported: " + ", ".join(cfg.subprotocols),
                )
            return
        await websocket.accept(subprotocol=version)
        session = ChargerSession(charger_id=identity, version=version, peer=peer, device=device)
        bridged = self.bridge is not None and self.bridge.for_charger(identity) is not None
        rpc = RpcConnection(
            version,
            messages,
            supported=self.central.supported(version, bridged=bridged),
            max_message_bytes=cfg.max_message_bytes,
            max_open_calls=cfg.max_open_calls,
        )
        conn = ChargerConnection(websocket, self._shared, session, rpc)
        await self._serve(conn, credentials.password if credentials else None)

    async def _serve(self, conn: ChargerConnection, password: bytes | None) -> None:
        stats = self.stats
        self.connections.add(conn)
        stats.connections_open += 1
        stats.connections_total += 1
        displaced = self.links.add(conn)
        if isinstance(displaced, ChargerConnection):
            await displaced.close(1000, "replaced by a newer connection", DISPLACED)
        try:
            await self._records(self.central.connected(conn.session, datetime.now(UTC)))
            if self._stopping:  # accepted while stop() was closing the others
                conn.shutdown()
            if self.bridge is not None and self.bridge.for_charger(conn.charger_id) is not None:
                try:
                    conn.bridge = await self.bridge.open(conn, password)
                except Exception:
                    log.exception("%s: the bridge could not be opened", conn.charger_id)
            await conn.run()
        finally:
            self.connections.discard(conn)
            self.links.remove(conn)
            conn.finish()
            stats.connections_open -= 1
            reason = conn.disconnect_reason
            stats.closed[reason] = stats.closed.get(reason, 0) + 1
            if conn.bridge is not None:
                try:
                    await conn.bridge.close()
                except Exception:
                    log.exception("%s: closing the bridge failed", conn.charger_id)
            await self._records(self.central.disconnected(conn.session, datetime.now(UTC), reason))

    async def _records(self, records: list[Any]) -> None:
        """Submit connect / disconnect events (not awaited: nothing is answered for them)."""
        if not records:
            return
        try:
            fut = await self.pipeline.submit(records)
        except Exception as exc:
            log.warning("OCPP connection events not stored: %s", exc)
            return
        fut.add_done_callback(_log_failure)


def _log_failure(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("OCPP connection events not stored: %s", fut.exception())
