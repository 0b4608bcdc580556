"""The API as ``silkgate run`` starts it: its pool, the application on uvicorn (in this event
loop, port shared with SO_REUSEPORT by the worker processes of ``--workers N``), and the
command router over the listeners' and the OCPP endpoint's connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import uvicorn

from gateway.api.app import create_app
from gateway.api.audit import AuditLog
from gateway.api.auth import TokenStore
from gateway.api.config import ApiConfig
from gateway.api.db import create_api_pool
from gateway.api.deps import ApiContext
from gateway.api.dispatch import LocalCommands
from gateway.api.ratelimit import RateLimiter
from gateway.api.routing import CommandRouter
from gateway.commands import Commands
from gateway.ocpp.commands import ChargerCommands
from gateway.reports.config import ReportsConfig


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the runner owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiService:
    """``[api]`` in one gateway process. ``worker`` / ``workers``: this process's index and
    the number of worker processes (None / 1: a single process); ``sockets``: the directory
    of the workers' command sockets; ``reports``: the rules of ``/v1/reports``."""

    def __init__(
        self,
        cfg: ApiConfig,
        dsn: str,
        *,
        trucks: Commands | None,
        chargers: ChargerCommands | None,
        worker: int | None = None,
        workers: int = 1,
        sockets: Path | None = None,
        connect_timeout_s: float = 5.0,
        reports: ReportsConfig | None = None,
    ) -> None:
        self.cfg = cfg
        self.reports = reports or ReportsConfig()
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self.router = CommandRouter(
            LocalCommands(trucks, chargers), worker=worker, workers=workers, socket_dir=sockets
        )
        self.worker = worker
        self.reuse_port = workers > 1
        self.pool: asyncpg.Pool | None = None
        self.ctx: ApiContext | None = None
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("API not started")
        port: int = self._sock.getsockname()[1]
        return port

    async def start(self) -> None:
        """Open the pool, listen for the other workers, then serve HTTP(S)."""
        cfg = self.cfg
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # a line per connection
        self.pool = await create_api_pool(
            self.dsn, cfg, connect_timeout_s=self.connect_timeout_s, min_size=0
        )
        try:
            self.ctx = ApiContext(
                cfg=cfg,
                pool=self.pool,
                tokens=TokenStore(self.pool, cache_s=cfg.token_cache_s),
                limiter=RateLimiter(cfg.rate_per_s, cfg.burst),
                audit=AuditLog(self.pool),
                router=self.router,
                worker=self.worker,
                reports=self.reports,
            )
            await self.router.start()
            config = uvicorn.Config(
                create_app(self.ctx),
                http="httptools",
                ws="none",
                lifespan="off",
                access_log=False,
                log_config=None,
                proxy_headers=False,
                server_header=False,
                timeout_graceful_shutdown=5,
                limit_concurrency=cfg.max_connections,
                ssl_certfile=cfg.tls_cert or None,
                ssl_keyfile=cfg.tls_key or None,
            )
            config.load()  # TLS files are read here, before binding
            family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
            self._sock = socket.create_server(
                (cfg.host, cfg.port), family=family, backlog=1024, reuse_port=self.reuse_port
            )
            self._server = _Server(config)
            self._serving = asyncio.get_running_loop().create_task(
                self._server.serve(sockets=[self._sock]), name="api-uvicorn"
            )
            while not self._server.started:
                if self._serving.done():
                    self._serving.result()
                    raise RuntimeError("uvicorn stopped during startup")
                await asyncio.sleep(0.005)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop taking requests (those in flight may finish for 5 s), then the router and
        the pool."""
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._serving
        self._server = self._serving = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        await self.router.stop()
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), 10)
            except TimeoutError:
                self.pool.terminate()
            self.pool = None

    def status(self) -> str:
        """The status line's API part."""
        limiter = self.ctx.limiter.refused if self.ctx is not None else 0
        routed = ""
        if self.router.peers:
            routed = f", {self.router.forwarded} forwarded, {self.router.served} for peers"
        return f"api :{self.port if self._sock else '-'}{routed}, {limiter} rate-limited"
