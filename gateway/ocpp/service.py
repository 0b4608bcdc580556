"""The OCPP central system as one unit for ``silkgate run``: the central system's logic, the
WebSocket server, the commands API over its connections and the optional bridge to the
operators' own CSMS, started and stopped together."""

from __future__ import annotations

import asyncpg

from gateway.adapters.ocpp_ws import OcppServer
from gateway.config import OcppConfig
from gateway.ocpp.bridge import Bridge
from gateway.ocpp.central import CentralSystem
from gateway.ocpp.commands import ChargerCommands
from gateway.ocpp.link import Links
from gateway.pipeline import Pipeline
from gateway.registry import Registry


class OcppService:
    """Everything of ``[ocpp]``; :meth:`start` listens, :meth:`stop` closes the chargers."""

    def __init__(
        self,
        cfg: OcppConfig,
        pool: asyncpg.Pool,
        pipeline: Pipeline,
        registry: Registry,
        *,
        max_pending: int = 10_000,
    ) -> None:
        self.cfg = cfg
        self.links = Links()
        self.central = CentralSystem(cfg, pool, registry)
        self.bridge = Bridge(cfg.bridge) if cfg.bridge else None
        self.server = OcppServer(
            cfg, self.central, pipeline, registry, links=self.links, bridge=self.bridge
        )
        self.commands = ChargerCommands(self.links, pool, cfg, max_pending=max_pending)

    @property
    def port(self) -> int:
        """The port the server listens on (``cfg.port`` may be 0)."""
        return self.server.port

    async def start(self) -> None:
        await self.server.start()

    async def stop(self, timeout: float | None = None) -> None:
        await self.server.stop(timeout)

    def status(self) -> str:
        """The status line's OCPP part."""
        return self.server.stats.summary()
