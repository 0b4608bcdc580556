"""``silkgate run --workers N``: N gateway processes behind one supervisor (see docs/workers.md).

The supervisor applies the migrations once, then starts N workers, each ``silkgate run
--workers N --worker-index i``: a whole gateway (pipeline, pool, forwarders) with a config
adjusted by :func:`worker_config`: its own spool directory ``<spool.path>/worker-<i>`` (a
restarted worker replays its own spool), the TCP listeners and the OCPP endpoint bound with
SO_REUSEPORT on the configured ports (the kernel spreads the connections), MQTT as client
``<client_id>-<i>`` with every route filter in the shared subscription
``$share/<client_id>/<filter>`` (MQTT 5; the broker spreads the messages); the forwarders and
the scheduled maintenance run in worker 0 only. Each worker prefixes its output lines ``[w<i>]``.

A worker that exits abnormally (non-zero status, killed by a signal) is restarted after a
backoff (0.5 s doubling to 30 s; reset once a worker has run for a minute). Exit status 2 (a
configuration error) is not retried, nor are :data:`MAX_FAST_CRASHES` crashes in a row each
within :data:`FAST_CRASH_S` of the start: the supervisor then stops the other workers and exits
with status 1. A worker that exits 0 was stopped on purpose and is not restarted.
SIGINT / SIGTERM are passed to the workers, which drain as a single gateway does; the supervisor
exits 0 once every worker has exited 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from gateway.api.config import command_socket_dir
from gateway.config import Config, ConfigError
from gateway.metrics import WorkerState
from gateway.metrics_config import metrics_dir
from gateway.mqtt_config import split_shared

if TYPE_CHECKING:
    from gateway.metrics_server import SupervisorMetrics

#: A crash this soon after the start counts as a fast crash.
FAST_CRASH_S = 10.0
#: Fast crashes in a row of one worker after which the supervisor gives up.
MAX_FAST_CRASHES = 5
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
#: A worker that has run this long starts again from the initial backoff.
BACKOFF_RESET_S = 60.0
#: ``silkgate run``'s exit status for a configuration error: restarting cannot help.
EXIT_CONFIG = 2

_PR_SET_PDEATHSIG = 1


def check_workers(cfg: Config, workers: int) -> None:
    """Raise :class:`ConfigError` when ``cfg`` cannot run as ``workers`` processes."""
    if workers < 1:
        raise ConfigError(f"--workers {workers}: at least 1")
    if workers == 1:
        return
    lst = cfg.listeners
    for name, listener in (("gbt32960", lst.gbt32960), ("jt808", lst.jt808)):
        if listener.enabled and listener.port == 0:
            raise ConfigError(
                f"listeners.{name}.port: 0 (any free port) cannot be shared by {workers} "
                "workers; name the port"
            )
    if cfg.ocpp.enabled and cfg.ocpp.port == 0:
        raise ConfigError(
            f"ocpp.port: 0 (any free port) cannot be shared by {workers} workers; name the port"
        )
    if cfg.api.enabled and cfg.api.port == 0:
        raise ConfigError(
            f"api.port: 0 (any free port) cannot be shared by {workers} workers; name the port"
        )
    mqtt = cfg.mqtt
    if mqtt.enabled:
        if mqtt.protocol != "5":
            raise ConfigError(
                f'mqtt.protocol: "{mqtt.protocol}" with --workers {workers}: the workers share '
                'the routes\' subscriptions ($share/..., MQTT 5); set protocol = "5"'
            )
        if any(c in mqtt.client_id for c in "/+#"):
            raise ConfigError(
                f"mqtt.client_id: {mqtt.client_id!r} names the workers' shared subscription "
                "group and may not contain '/', '+' or '#'"
            )


def shared_filter(topic_filter: str, group: str) -> str:
    """``$share/<group>/<filter>``; a filter that is shared already is kept as it is."""
    if split_shared(topic_filter)[0] is not None:
        return topic_filter
    return f"$share/{group}/{topic_filter}"


def worker_config(cfg: Config, index: int, workers: int) -> Config:
    """The configuration of worker ``index`` of ``workers`` (see the module docstring)."""
    check_workers(cfg, workers)
    if not 0 <= index < workers:
        raise ConfigError(f"--worker-index {index}: expected 0..{workers - 1}")
    replace = msgspec.structs.replace
    lst = cfg.listeners
    listeners = replace(
        lst,
        gbt32960=replace(lst.gbt32960, reuse_port=True),
        jt808=replace(lst.jt808, reuse_port=True),
    )
    spool = replace(cfg.spool, path=str(Path(cfg.spool.path) / f"worker-{index}"))
    mqtt = cfg.mqtt
    if mqtt.enabled:
        routes = [replace(r, filter=shared_filter(r.filter, mqtt.client_id)) for r in mqtt.routes]
        mqtt = replace(mqtt, client_id=f"{mqtt.client_id}-{index}", routes=routes)
    # Forwarders read the one archive all workers write, each with one durable cursor: worker 0
    # alone runs them (and the scheduled maintenance, see gateway.runner).
    forward = cfg.forward if index == 0 else replace(cfg.forward, gbt32960=[], json=[])
    # Snapshot files beside the workers' spools, where the supervisor reads them; the
    # supervisor alone serves /metrics (gateway.metrics_server).
    metrics = replace(cfg.metrics, dir=str(metrics_dir(cfg.metrics, cfg.spool.path)))
    # The API's command sockets (gateway.api.routing): one directory every worker knows.
    api = replace(cfg.api, socket_dir=str(command_socket_dir(cfg.api, cfg.spool.path)))
    return replace(
        cfg,
        listeners=listeners,
        spool=spool,
        mqtt=mqtt,
        forward=forward,
        metrics=metrics,
        api=api,
    )


def die_with_parent() -> None:
    """Have the kernel send SIGTERM to this process when its parent (the supervisor) dies
    (Linux), so that workers never outlive it holding the ports."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


class PrefixedWriter(io.TextIOBase):
    """Writes whole lines, each prefixed (``[w1] ``), to ``out``: the workers share the
    supervisor's stdout, and a status line is never redrawn in place there."""

    def __init__(self, out: TextIO, prefix: str) -> None:
        self._out = out
        self._prefix = prefix
        self._partial = ""

    def write(self, s: str) -> int:
        lines = (self._partial + s.replace("\r", "")).split("\n")
        self._partial = lines.pop()
        if lines:
            self._out.write("".join(f"{self._prefix}{ln}\n" for ln in lines))
            self._out.flush()
        return len(s)

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    fast_crashes: int = 0
    restarts: int = 0
    backoff: float = BACKOFF_INITIAL_S
    rc: int | None = None  # the last exit status


class Supervisor:
    """Runs ``workers`` worker processes of ``silkgate run --config config_path`` until
    SIGINT / SIGTERM or ``duration_s``; see the module docstring (``backoff_initial_s`` and
    ``max_fast_crashes`` default to :data:`BACKOFF_INITIAL_S` and :data:`MAX_FAST_CRASHES`)."""

    def __init__(
        self,
        cfg: Config,
        config_path: str | None,
        workers: int,
        out: TextIO = sys.stdout,
        *,
        duration_s: float | None = None,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        max_fast_crashes: int = MAX_FAST_CRASHES,
    ) -> None:
        check_workers(cfg, workers)
        self.cfg = cfg
        self.backoff_initial_s = backoff_initial_s
        self.max_fast_crashes = max_fast_crashes
        self.config_path = config_path
        self.out = out
        self.duration_s = duration_s
        self.workers = [_Worker(i, backoff=backoff_initial_s) for i in range(workers)]
        self.stop = asyncio.Event()
        self.stopping = False
        self.gave_up: str | None = None
        self.metrics: SupervisorMetrics | None = None  # [metrics] enabled: serves /metrics

    def worker_states(self) -> list[WorkerState]:
        """Per worker: the pid running it now (None: none) and its restarts (for /metrics)."""
        return [
            WorkerState(
                w.index,
                w.proc.pid if w.proc is not None and w.proc.returncode is None else None,
                w.restarts,
            )
            for w in self.workers
        ]

    def say(self, line: str) -> None:
        self.out.write(f"supervisor: {line}\n")
        self.out.flush()

    async def run(self) -> int:
        """Migrate, start the workers, keep them running; 0 after a clean stop."""
        from gateway.runner import migrate_and_connect

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        if self.duration_s is not None:
            loop.call_later(self.duration_s, self.stop.set)
        migrating = asyncio.create_task(migrate_and_connect(self.cfg, self.out))
        stop_wait = asyncio.create_task(self.stop.wait())
        await asyncio.wait([migrating, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if not migrating.done():  # stopped while waiting for the database
            migrating.cancel()
            await asyncio.gather(migrating, return_exceptions=True)
            self.say("stopped before the database was reachable")
            return 0
        try:
            pool = migrating.result()
        except Exception as exc:
            self.say(f"database: {type(exc).__name__}: {exc}")
            return 1
        await pool.close()
        if self.cfg.metrics.enabled:
            from gateway.metrics_server import SupervisorMetrics

            self.metrics = SupervisorMetrics(self)
            try:
                self.say(f"metrics: {await self.metrics.start()}")
            except OSError as exc:
                where = f"{self.cfg.metrics.host}:{self.cfg.metrics.port}"
                self.say(f"metrics: cannot listen on {where}: {exc.strerror or exc}")
                return 1
        self.say(f"{len(self.workers)} workers, pid {os.getpid()} (Ctrl-C to stop)")
        keepers = [
            asyncio.create_task(self._keep(w), name=f"worker-{w.index}") for w in self.workers
        ]
        # until a stop (a signal, the duration, a worker given up) or every worker exited 0
        stopped: asyncio.Future[Any] = asyncio.create_task(self.stop.wait())
        ended: asyncio.Future[Any] = asyncio.gather(*keepers)
        await asyncio.wait([stopped, ended], return_when=asyncio.FIRST_COMPLETED)
        await self._stop_all()
        if self.metrics is not None:
            await self.metrics.close()
        stopped.cancel()
        if ended.done():
            ended.exception()  # retrieved: the loop below reports it
        for result in await asyncio.gather(*keepers, return_exceptions=True):
            if isinstance(result, BaseException) and self.gave_up is None:
                self.gave_up = f"{type(result).__name__}: {result}"
        if self.gave_up is not None:
            self.say(f"gave up: {self.gave_up}")
            return 1
        failed = [w for w in self.workers if w.rc not in (0, None)]
        for w in failed:
            self.say(f"worker {w.index} ended with {_describe(w.rc)}")
        self.say("stopped")
        return 1 if failed else 0

    def _argv(self, index: int) -> list[str]:
        # -P: the working directory is not put on sys.path (a source checkout's gateway/ folder
        # there would shadow the installed package)
        argv = [sys.executable, "-P", "-m", "gateway.cli", "run"]
        if self.config_path is not None:
            argv += ["--config", self.config_path]
        return [*argv, "--workers", str(len(self.workers)), "--worker-index", str(index)]

    async def _spawn(self, w: _Worker) -> asyncio.subprocess.Process:
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(*self._argv(w.index), env=env)
        w.proc, w.started = proc, time.monotonic()
        self.say(f"worker {w.index} started, pid {proc.pid}")
        return proc

    async def _keep(self, w: _Worker) -> None:
        """Run worker ``w``, restarting it after abnormal exits, until the stop."""
        while not self.stopping:
            proc = await self._spawn(w)
            if self.stopping:  # the stop came while it was starting
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            w.rc = await proc.wait()
            ran = time.monotonic() - w.started
            if self.stopping:
                return
            if w.rc == 0:
                self.say(f"worker {w.index} (pid {proc.pid}) stopped; not restarted")
                return
            if w.rc == EXIT_CONFIG:
                self.gave_up = f"worker {w.index} reported a configuration error (exit status 2)"
                self.stop.set()
                return
            if ran >= BACKOFF_RESET_S:
                w.backoff, w.fast_crashes = self.backoff_initial_s, 0
            elif ran < FAST_CRASH_S:
                w.fast_crashes += 1
                if w.fast_crashes >= self.max_fast_crashes:
                    self.gave_up = (
                        f"worker {w.index} crashed {w.fast_crashes} times in a row within "
                        f"{FAST_CRASH_S:.0f} s of its start (last: {_describe(w.rc)})"
                    )
                    self.stop.set()
                    return
            w.restarts += 1
            self.say(
                f"worker {w.index} (pid {proc.pid}) ended with {_describe(w.rc)} after "
                f"{ran:.1f} s; restart {w.restarts} in {w.backoff:.1f} s"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), w.backoff)
            w.backoff = min(w.backoff * 2, BACKOFF_MAX_S)

    async def _stop_all(self) -> None:
        """SIGTERM to every running worker; SIGKILL to those still running after their drain
        time (the pipeline's grace, the listeners' drain, and some)."""
        self.stopping = True
        live = [w.proc for w in self.workers if w.proc is not None and w.proc.returncode is None]
        if not live:
            return
        self.say(f"stopping {len(live)} workers")
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        lst = self.cfg.listeners
        grace = (
            self.cfg.pipeline.shutdown_grace_s
            + max(lst.gbt32960.drain_timeout_s, lst.jt808.drain_timeout_s)
            + 30.0
        )
        _, late = await asyncio.wait([asyncio.create_task(p.wait()) for p in live], timeout=grace)
        if late:
            self.say(f"{len(late)} workers did not stop within {grace:.0f} s: killed")
            for proc in live:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*late, return_exceptions=True)


def _describe(rc: int | None) -> str:
    if rc is None:
        return "no exit status"
    if rc < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-rc).name}"
        return f"signal {-rc}"
    return f"exit status {rc}"


def run_supervisor(
    cfg: Config,
    config_path: str | None,
    workers: int,
    out: TextIO = sys.stdout,
    *,
    duration_s: float | None = None,
) -> int:
    """``silkgate run --workers N`` (N > 1): supervise N workers until stopped."""
    supervisor = Supervisor(cfg, config_path, workers, out, duration_s=duration_s)
    return asyncio.run(supervisor.run())
