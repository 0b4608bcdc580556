"""``silkgate run``: the gateway process. Store, spool and pipeline up; the TCP listeners of
``[listeners]`` (GB/T 32960, JT/T 808) accepting terminals; the built-in simulator (optional)
(``--simulate N``: N terminals of :mod:`gateway.tcp_simulator` connecting to those listeners
over TCP); the commands service on the listeners' connections; the forwarders of ``[forward]``;
retention and rollups on a schedule; live counts; graceful stop (simulated terminals log out,
listeners stop so the acks in flight still go out, then the pipeline, then the forwarders).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import asyncpg

from gateway.adapters.tcp import ConnectionIndex, Listener, listeners_from_config
from gateway.commands import Commands
from gateway.config import Config
from gateway.forward import Forwarders
from gateway.ingest import GBT32960, JT808
from gateway.metrics_server import GatewayMetrics
from gateway.pipeline import Pipeline, is_outage
from gateway.registry import Registry
from gateway.sink import StoreWriter
from gateway.spool import AsyncSpool, SpoolConfig
from gateway.store.connection import connect, create_pool
from gateway.store.migrate import migrate
from gateway.store.timescale import HYPERTABLES, detect_features, refresh_rollups, run_retention
from gateway.tcp_simulator import SimConfig, TerminalFleet

if TYPE_CHECKING:
    from gateway.adapters.mqtt import MqttAdapter
    from gateway.api.service import ApiService
    from gateway.mqtt_simulator import MqttSimConfig, MqttSimulator
    from gateway.ocpp.service import OcppService
    from gateway.ocpp_simulator import ChargerFleet, ChargerSimConfig
    from gateway.republish.service import Republisher

log = logging.getLogger("silkgate.run")

_ARCHIVE_TABLES = {"raw_frames": "raw_frames_days", "dead_letters": "dead_letters_days"}


class ListenError(OSError):
    """A listener could not start; the message names its config section and the reason."""


@dataclass(frozen=True)
class RunOptions:
    simulate: int = 0  # simulated trucks (0: none)
    chargers: int = 0  # simulated OCPP charge points (0: none)
    interval_s: float = 1.0  # each simulated truck reports this often
    charger_interval_s: float = 10.0  # simulated chargers' meter values while charging
    swap_stations: int = 0  # simulated swap stations over MQTT (0: none)
    charger_sites: int = 0  # simulated charger-JSON site controllers over MQTT (0: none)
    swap_interval_s: float = 10.0  # their report interval
    duration_s: float | None = None  # stop after this long (None: until Ctrl-C / SIGTERM)
    status_every_s: float = 1.0
    rollups_every_s: float = 300.0
    retention_every_s: float = 3600.0
    worker: int | None = None  # this process is worker i of ``run --workers N`` (supervisor)
    workers: int = 1  # the N of ``--workers N``


async def migrate_and_connect(cfg: Config, out: TextIO) -> asyncpg.Pool:
    """Apply pending migrations, then open the store's pool (its connections need the tables);
    waits up to two minutes for a database that is still starting."""
    dsn = cfg.database_dsn()
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=cfg.database.connect_timeout_s)
            try:
                applied = await migrate(conn)
            finally:
                await conn.close()
            if applied:
                out.write(f"migrations applied: {', '.join(m.name for m in applied)}\n")
            return await create_pool(
                dsn,
                max_size=cfg.database.pool_size,
                timeout=cfg.database.connect_timeout_s,
                command_timeout=cfg.database.command_timeout_s,
            )
        except Exception as exc:
            if not is_outage(exc) or time.monotonic() > deadline:
                raise
            out.write(f"waiting for the database ({type(exc).__name__})...\n")
            await asyncio.sleep(2)


def spool_config(cfg: Config) -> SpoolConfig:
    s = cfg.spool
    return SpoolConfig(
        max_bytes=s.max_bytes,
        segment_bytes=min(s.segment_bytes, s.max_bytes),
        fsync=s.fsync,
        batch_interval=s.fsync_interval_ms / 1000,
        nearly_full_fraction=s.nearly_full,
    )


class Gateway:
    """One gateway process; see :func:`run`."""

    def __init__(self, cfg: Config, opts: RunOptions, out: TextIO) -> None:
        self.cfg, self.opts, self.out = cfg, opts, out
        self.stop = asyncio.Event()
        self.pool: asyncpg.Pool | None = None
        self.pipeline: Pipeline | None = None
        self.spool: AsyncSpool | None = None
        self.index = ConnectionIndex()  # live terminal connections by device id (commands)
        self.listeners: list[Listener] = []
        self.commands: Commands | None = None
        self.terminals: TerminalFleet | None = None  # --simulate
        self.forwarders: Forwarders | None = None
        self.ocpp: OcppService | None = None
        self.mqtt: MqttAdapter | None = None
        self.charger_fleet: ChargerFleet | None = None  # --chargers
        self.mqtt_sim: MqttSimulator | None = None  # --swap-stations / --charger-sites
        self.republisher: Republisher | None = None  # [republish], one process / worker 0
        self.metrics: GatewayMetrics | None = None  # snapshot files, /metrics of one process
        self.api: ApiService | None = None  # [api]

    async def serve(self) -> None:
        self.pool = await migrate_and_connect(self.cfg, self.out)
        try:
            Path(self.cfg.spool.path).mkdir(parents=True, exist_ok=True)
            self.spool = await AsyncSpool.open(self.cfg.spool.path, spool_config(self.cfg))
            # Every worker writes the republish outbox; one republisher drains it (below).
            writer = StoreWriter(
                self.pool, dedup=self.cfg.pipeline.dedup, outbox=self.cfg.republish.enabled
            )
            self.pipeline = Pipeline(writer, self.spool, self.cfg.pipeline)
            self.pipeline.start()
            # Forwarders read committed archive rows; a missing secret is a ConfigError here.
            self.forwarders = Forwarders(self.cfg.forward, self.pool)
            if self.cfg.republish.enabled and not self.opts.worker:
                self._start_republish()  # a missing secret is a ConfigError here too
            self.forwarders.start()
            try:
                await self._start_listeners()
                await self._register_simulated()  # before the simulators connect
                await self._serve_tasks()
            finally:
                if self.api is not None:  # first: its commands in flight need the connections
                    await self.api.stop()
                for listener in self.listeners:  # before the pipeline: their acks need it
                    await listener.stop()
                if self.ocpp is not None:
                    await self.ocpp.stop()
                if self.mqtt is not None:  # before the pipeline: its acks wait for commits
                    await self.mqtt.stop(timeout=self.cfg.pipeline.shutdown_grace_s)
                await self.pipeline.close(timeout=self.cfg.pipeline.shutdown_grace_s)
                await self.forwarders.close()  # after the last commits: they may forward them
                if self.republisher is not None:  # the same: it publishes the last commits
                    await self.republisher.stop()
                if self.metrics is not None:
                    await self.metrics.stop()  # the last snapshot, marked stopped
            self._print_status(final=True)
        finally:
            if self.spool is not None:
                await self.spool.close()
            await self.pool.close()

    async def _start_listeners(self) -> None:
        assert self.pool is not None and self.pipeline is not None
        registry = Registry(
            self.pool,
            ttl_s=self.cfg.registry.cache_ttl_s,
            max_entries=self.cfg.registry.cache_entries,
        )
        self.commands = Commands(self.index, self.pool, self.cfg.commands)
        self.listeners = listeners_from_config(
            self.cfg, self.pipeline, registry, index=self.index, on_message=self.commands.on_message
        )
        for listener in self.listeners:
            where = f"{listener.cfg.host}:{listener.cfg.port}"
            try:
                await listener.start()
            except OSError as exc:  # port taken, no such address, unreadable TLS files
                why = exc.strerror or str(exc)
                raise ListenError(
                    f"listeners.{listener.protocol}: cannot listen on {where}: {why}"
                ) from None
            tls = " (TLS)" if listener.cfg.tls else ""
            self.out.write(
                f"listening: {listener.protocol} on {listener.cfg.host}:{listener.port}{tls}\n"
            )
        if self.cfg.ocpp.enabled:
            await self._start_ocpp(registry)
        if self.cfg.mqtt.enabled:
            self._start_mqtt()
        if self.cfg.api.enabled:
            await self._start_api()
        self.metrics = GatewayMetrics(self, self.opts.worker)
        await self.metrics.start(self.out)  # a ListenError when its port is taken

    def _start_republish(self) -> None:
        from gateway.republish.service import Republisher  # aiomqtt only when enabled

        assert self.pool is not None
        rep = self.cfg.republish
        self.republisher = Republisher(rep, self.pool, self.cfg.registry)
        self.republisher.start()  # loads its cursor, connects in the background
        self.out.write(
            f"republish: {rep.host}:{rep.port} as {rep.client_id!r}, QoS {rep.qos}, "
            f"topics {rep.topic_prefix}/<operator>/<kind>/<device>\n"
        )

    def _start_mqtt(self) -> None:
        from gateway.adapters.mqtt import MqttAdapter  # aiomqtt only when enabled

        assert self.pool is not None and self.pipeline is not None
        mqtt = self.cfg.mqtt
        self.mqtt = MqttAdapter(mqtt, self.pipeline, self.pool)
        self.mqtt.start()  # connects in the background, retrying with backoff
        self.out.write(
            f"mqtt: {mqtt.host}:{mqtt.port} as {mqtt.client_id!r}, "
            f"{len(mqtt.routes)} route{'s' if len(mqtt.routes) != 1 else ''}\n"
        )

    async def _start_api(self) -> None:
        from gateway.api.config import command_socket_dir
        from gateway.api.service import ApiService  # FastAPI only when enabled

        api = self.cfg.api
        self.api = ApiService(
            api,
            self.cfg.database_dsn(),
            trucks=self.commands,
            chargers=self.ocpp.commands if self.ocpp is not None else None,
            worker=self.opts.worker,
            workers=self.opts.workers,
            sockets=command_socket_dir(api, self.cfg.spool.path),
            connect_timeout_s=self.cfg.database.connect_timeout_s,
            reports=self.cfg.reports,
        )
        try:
            await self.api.start()
        except OSError as exc:
            where = f"{api.host}:{api.port}"
            raise ListenError(f"api: cannot listen on {where}: {exc.strerror or exc}") from None
        scheme = "https" if api.tls else "http"
        self.out.write(f"listening: api on {scheme}://{api.host}:{self.api.port}/docs\n")

    async def _start_ocpp(self, registry: Registry) -> None:
        from gateway.ocpp.service import OcppService  # FastAPI / uvicorn only when enabled

        assert self.pool is not None and self.pipeline is not None
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # a line per handshake
        ocpp = self.cfg.ocpp
        self.ocpp = OcppService(
            ocpp, self.pool, self.pipeline, registry, max_pending=self.cfg.commands.max_pending
        )
        self.ocpp.server.reuse_port = self.opts.worker is not None  # workers share the port
        where = f"{ocpp.host}:{ocpp.port}"
        try:
            await self.ocpp.start()
        except OSError as exc:
            raise ListenError(f"ocpp: cannot listen on {where}: {exc.strerror or exc}") from None
        scheme = "wss" if ocpp.tls else "ws"
        self.out.write(
            f"listening: ocpp on {scheme}://{ocpp.host}:{self.ocpp.port}{ocpp.path}/<id>\n"
        )

    async def _serve_tasks(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._status(), name="status")]
            if self.metrics is not None:
                tasks.append(tg.create_task(self.metrics.run(), name="metrics"))
            if not self.opts.worker:  # one process (or worker 0 of --workers) maintains
                tasks.append(tg.create_task(self._maintenance(), name="maintenance"))
            if self.opts.simulate:
                tasks.append(tg.create_task(self._simulate(), name="simulator"))
            if self.opts.chargers:
                tasks.append(tg.create_task(self._simulate_chargers(), name="chargers"))
            if self.opts.swap_stations or self.opts.charger_sites:
                tasks.append(tg.create_task(self._simulate_mqtt(), name="mqtt-simulator"))
            await self.stop.wait()
            if self.mqtt_sim is not None:  # before the MQTT adapter stops: its last acks
                await self.mqtt_sim.stop()
            if self.terminals is not None:  # log the simulated terminals out while we listen
                await self.terminals.stop()
            if self.charger_fleet is not None:
                await self.charger_fleet.stop()
            for task in tasks:
                task.cancel()

    # -- the simulator feed ------------------------------------------------------------------

    async def _simulate(self) -> None:
        """``--simulate N``: N terminals over TCP to this gateway's own listeners (half GB/T
        32960 2016/2025, half JT/T 808 2013/2019 when both listen), the path a real truck takes:
        session, ack after commit, resend of what was not acknowledged."""
        async with TerminalFleet(self._terminal_config()) as fleet:
            self.terminals = fleet
            await fleet.run()  # until the fleet is stopped with the gateway

    def _terminal_config(self) -> SimConfig:
        ports = {lst.protocol: lst.port for lst in self.listeners}
        n = self.opts.simulate
        gbt = n - n // 2 if JT808 in ports else n
        if GBT32960 not in ports:
            gbt = 0
        return SimConfig(
            host="127.0.0.1",
            gbt_port=ports.get(GBT32960, 0),
            jt_port=ports.get(JT808, 0),
            gbt=gbt,
            jt=n - gbt,
            gbt_versions=(2016, 2025),
            jt_versions=(2013, 2019),
            interval_s=self.opts.interval_s,
            heartbeat_s=30.0,
            logout=True,
            tls=False,
        )

    async def _simulate_chargers(self) -> None:
        """``--chargers N``: N OCPP charge points (1.6 and 2.0.1 in turn) on this gateway's own
        OCPP endpoint, charging in cycles with meter values every ``--charger-interval`` s."""
        from gateway.ocpp_simulator import ChargerFleet

        async with ChargerFleet(self._charger_config()) as fleet:
            self.charger_fleet = fleet
            await fleet.run()

    def _charger_config(self) -> ChargerSimConfig:
        from gateway.ocpp_simulator import ChargerSimConfig

        assert self.ocpp is not None
        ocpp = self.cfg.ocpp
        url = f"{'wss' if ocpp.tls else 'ws'}://127.0.0.1:{self.ocpp.port}{ocpp.path}"
        return ChargerSimConfig(
            url=url, chargers=self.opts.chargers, interval_s=self.opts.charger_interval_s
        )

    async def _simulate_mqtt(self) -> None:
        """``--swap-stations N`` / ``--charger-sites M``: stations and site controllers of
        :mod:`gateway.mqtt_simulator` publishing to the topics of this gateway's ``[mqtt]``
        routes, once its MQTT adapter has subscribed (a new session gets nothing earlier)."""
        from gateway.mqtt_simulator import MqttSimulator

        assert self.mqtt is not None
        with contextlib.suppress(TimeoutError):
            await self.mqtt.intake.wait_connected(30)
        async with MqttSimulator(self._mqtt_config()) as sim:
            self.mqtt_sim = sim
            await sim.run()

    def _mqtt_config(self) -> MqttSimConfig:
        from gateway.mqtt_simulator import sim_config

        return sim_config(
            self.cfg.mqtt,
            swap_stations=self.opts.swap_stations,
            charger_sites=self.opts.charger_sites,
            interval_s=self.opts.swap_interval_s,
        )

    async def _register_simulated(self) -> None:
        """The simulated devices in the registry as operator ``demo``'s
        (:mod:`gateway.demo_registry`), so the API lists them and the reports cover them. A
        database outage skips it (logged); the run goes on."""
        from gateway.demo_registry import devices_of, register_demo

        opts = self.opts
        devices = devices_of(
            self._terminal_config() if opts.simulate else None,
            self._charger_config() if opts.chargers else None,
            self._mqtt_config() if opts.swap_stations or opts.charger_sites else None,
        )
        if not devices:
            return
        assert self.pool is not None
        try:
            async with self.pool.acquire() as conn:
                registered = await register_demo(conn, devices)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("simulated devices not registered, database unavailable: %s", exc)
            return
        self.out.write(registered.summary() + "\n")

    # -- scheduled maintenance ---------------------------------------------------------------

    async def _maintenance(self) -> None:
        """Rollup refresh, retention where TimescaleDB has no policies (Apache), and the
        report rollup's refresh (``[reports] refresh_every_s``, first ``refresh_delay_s`` after
        start-up)."""
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            feats = await detect_features(conn)
        last_rollup = last_retention = time.monotonic()
        reports = self.cfg.reports
        next_reports = last_rollup + reports.refresh_delay_s
        tick = min(self.opts.rollups_every_s, self.opts.retention_every_s, 60)
        while True:
            await asyncio.sleep(min(tick, reports.refresh_every_s or tick))
            now = time.monotonic()
            if reports.refresh_every_s and now >= next_reports:
                next_reports = now + reports.refresh_every_s  # after a failure too
                await self._refresh_reports()
            try:
                async with self.pool.acquire() as conn:
                    if now - last_rollup >= self.opts.rollups_every_s:
                        await refresh_rollups(conn, feats)
                        last_rollup = now
                    if not feats.policies and now - last_retention >= self.opts.retention_every_s:
                        await self.retention(conn)
                        last_retention = now
            except Exception as exc:
                if not is_outage(exc):
                    raise
                log.warning("maintenance skipped, database unavailable: %s", exc)

    async def _refresh_reports(self) -> None:
        """:meth:`refresh_reports`, logged; a failure skips this turn (never stops the gateway)."""
        try:
            written = await self.refresh_reports()
        except Exception as exc:
            if not is_outage(exc):
                log.exception("report rollup refresh failed")
            else:
                log.warning("report rollup refresh skipped, database unavailable: %s", exc)
            return
        log.info("report rollup refreshed: %d vehicle-days", written)

    async def refresh_reports(self) -> int:
        """Recompute the vehicle report's rollup (``report_vehicle_days``) for the last
        ``[reports] refresh_days`` complete days; returns the rows written. On a connection
        of its own, not the ingest pool's: it takes about 3 s per day at 1,000 vehicles."""
        from gateway.reports.vehicles import refresh_recent

        conn = await connect(
            self.cfg.database_dsn(),
            staging=False,
            timeout=self.cfg.database.connect_timeout_s,
            server_settings={"application_name": "silkgate-reports"},
        )
        try:
            written = await refresh_recent(conn, self.cfg.reports)
        except BaseException:
            conn.terminate()  # a stop cancels us mid-query: drop the connection, do not wait
            raise
        await conn.close(timeout=5)
        return written

    async def retention(self, conn: Any) -> list[str]:
        dropped: list[str] = []
        r = self.cfg.retention
        for table in HYPERTABLES:
            days = (
                getattr(r, _ARCHIVE_TABLES[table]) if table in _ARCHIVE_TABLES else r.telemetry_days
            )
            if days:
                dropped += await run_retention(conn, table, timedelta(days=days))
        return dropped

    # -- live counts -------------------------------------------------------------------------

    async def _status(self) -> None:
        while True:
            await asyncio.sleep(self.opts.status_every_s)
            self._print_status()

    def _print_status(self, *, final: bool = False) -> None:
        line = self.status_line()
        if line is None:
            return
        tty = self.out.isatty()
        self.out.write(("\r" + line + "\x1b[K") if tty and not final else line + "\n")
        if final and tty:
            self.out.write("\n")
        self.out.flush()

    def status_line(self) -> str | None:
        """The live counts on one line (None before the pipeline runs)."""
        if self.pipeline is None:
            return None
        st = self.pipeline.stats
        ingestors = [lst.ingest for lst in self.listeners]
        frames = sum(i.stats.frames for i in ingestors)
        dead = sum(i.stats.dead_letters for i in ingestors)
        queued = sum(self.pipeline.queued_rows().values())
        spool = self.spool.usage() if self.spool else None
        line = (
            f"frames {frames:,}  committed {st.committed_rows:,} rows  "
            f"spooled {st.spooled_rows:,}  replayed {st.replayed_rows:,}  "
            f"dead letters {dead:,}  queued {queued:,}  "
            f"spool {spool.bytes if spool else 0:,} B  "
            f"{'SPOOLING' if self.pipeline.spooling else 'db ok'}"
        )
        for listener in self.listeners:
            line += "  | " + listener.stats.summary()
        if self.ocpp is not None:
            line += "  | " + self.ocpp.status()
        if self.api is not None:
            line += "  | " + self.api.status()
        if self.mqtt is not None:
            line += "  | " + self.mqtt.status()
        if self.charger_fleet is not None:
            line += "  | " + self.charger_fleet.summary()
        if self.mqtt_sim is not None:
            line += "  | " + self.mqtt_sim.summary()
        if self.forwarders is not None and len(self.forwarders):
            line += "  | " + self.forwarders.status()
        if self.republisher is not None:
            line += "  | " + self.republisher.status()
        return line


def _simulating(opts: RunOptions) -> str:
    """The start-up line's ", simulating 200 trucks, 20 OCPP chargers, ..." (or nothing)."""
    parts = [
        f"{n} {what}"
        for n, what in (
            (opts.simulate, "trucks"),
            (opts.chargers, "OCPP chargers"),
            (opts.swap_stations, "swap stations"),
            (opts.charger_sites, "charger sites"),
        )
        if n
    ]
    return ", simulating " + ", ".join(parts) if parts else ""


def tune_gc() -> None:
    """Fewer cyclic garbage collections. Every frame allocates records, futures and buffers
    (mostly freed by reference counting); at the default gen-0 threshold of 700 allocations
    the collector ran hundreds of times a second and rescanned the long-lived objects each time
    its older generations came round. The objects alive after start-up are frozen out of its
    scans (``gc.freeze``). Measured with benchmarks/tcp.py: 13,100 -> 16,400 GB/T 32960
    frames/s end to end."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


async def run(cfg: Config, opts: RunOptions, out: TextIO = sys.stdout) -> int:
    """Run until SIGINT/SIGTERM or ``opts.duration_s``; drain in-flight work before returning."""
    tune_gc()
    gw = Gateway(cfg, opts, out)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, gw.stop.set)
    if opts.duration_s is not None:
        loop.call_later(opts.duration_s, gw.stop.set)
    out.write(
        f"silkgate running: database {cfg.database.dsn.split('@')[-1]}, spool {cfg.spool.path}"
        + _simulating(opts)
        + " (Ctrl-C to stop)\n"
    )
    if opts.simulate and not (cfg.listeners.gbt32960.enabled or cfg.listeners.jt808.enabled):
        out.write("silkgate: --simulate needs a listener: enable [listeners.gbt32960] or ")
        out.write("[listeners.jt808]\n")
        return 2
    if opts.chargers and not cfg.ocpp.enabled:
        out.write("silkgate: --chargers needs the OCPP endpoint: enable [ocpp]\n")
        return 2
    if opts.swap_stations or opts.charger_sites:
        from gateway.mqtt_simulator import sim_config

        try:  # [mqtt] enabled, with a route for each simulated kind
            sim_config(cfg.mqtt, swap_stations=opts.swap_stations, charger_sites=opts.charger_sites)
        except ValueError as exc:
            out.write(f"silkgate: {exc}\n")
            return 2
    try:
        await gw.serve()
    except ListenError as exc:
        out.write(f"silkgate: {exc}\n")
        return 1
    return 0
