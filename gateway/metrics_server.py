"""Serving ``/metrics`` and writing the snapshot files (docs/metrics.md).

* :class:`MetricsHttp`: a minimal HTTP/1.1 server on asyncio streams (GET / HEAD, one request
  per connection, gzip when asked) for Prometheus' scrapes. No web framework: the supervisor
  serves it too and must stay light.
* :class:`GatewayMetrics`: in every gateway process (single or worker), writes its snapshot
  to ``<metrics dir>/worker-<i>.json`` every ``metrics.interval_s`` (and ``state: stopped`` at
  a clean stop); a single process with ``metrics.enabled`` also serves ``/metrics`` from a
  snapshot taken on each scrape.
* :class:`SupervisorMetrics`: with ``--workers N`` the supervisor alone binds the port and
  serves the merge of its live workers' snapshot files (:func:`gateway.metrics.merge`).

Whichever serves ``/metrics`` also serves the status page, ``/status`` and ``/status.json``
(:mod:`gateway.status_page`), from the same merged snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Literal, Protocol, TextIO

from gateway.metrics import (
    CONTENT_TYPE,
    Snapshot,
    WorkerState,
    merge,
    read_snapshots,
    render,
    write_snapshot,
)
from gateway.metrics_config import MetricsConfig, metrics_dir, snapshot_path
from gateway.status_page import LastPositions, Page, StatusPage

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.runner import Gateway

log = logging.getLogger("silkgate.metrics")

_REQUEST_TIMEOUT_S: Final = 10.0
_MAX_HEAD: Final = 16 * 1024
_GZIP_MIN: Final = 1024
_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_INDEX: Final = b"silkgate metrics: /metrics (Prometheus text format 0.0.4)\n"


class MetricsHttp:
    """``GET /metrics`` answered with ``render()``; ``/`` names it; the paths of ``pages``
    answered by their handlers (the status page); anything else 404."""

    def __init__(
        self,
        host: str,
        port: int,
        render: Callable[[], str],
        pages: Mapping[str, Page] | None = None,
    ) -> None:
        self.host, self.requested_port, self.render = host, port, render
        self.pages: dict[str, Page] = dict(pages or {})
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and listen (an OSError when the address is taken or unusable)."""
        self._server = await asyncio.start_server(
            self._handle, self.host, self.requested_port, reuse_address=True, limit=_MAX_HEAD
        )

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("metrics server not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT_S)
            status, headers, body = await self._page(head) or self._answer(head)
            writer.write(_response(status, headers, body))
            await asyncio.wait_for(writer.drain(), _REQUEST_TIMEOUT_S)
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _page(self, head: bytes) -> tuple[int, dict[str, str], bytes] | None:
        """The answer of one of ``pages`` to a GET or HEAD of its path; None: not a page."""
        method, _, rest = head.partition(b" ")
        target = rest.split(b" ", 1)[0].split(b"?", 1)[0].decode("latin-1")
        page = self.pages.get(target)
        if page is None or method not in (b"GET", b"HEAD"):
            return None
        try:
            status, headers, body = await page()
        except Exception:  # a bug: say it, do not take the process down
            log.exception("page %s failed", target)
            return 500, {}, b"the page failed (see the log)\n"
        if method == b"HEAD":
            return status, {**headers, "Content-Length": str(len(body))}, b""
        return status, headers, body

    def _answer(self, head: bytes) -> tuple[int, dict[str, str], bytes]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, {}, b"bad request\n"
        method, target = parts[0], parts[1].split("?", 1)[0]
        fields = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip().lower()
        if method not in ("GET", "HEAD"):
            return 405, {"Allow": "GET, HEAD"}, b"method not allowed\n"
        if target == "/":
            index = _INDEX + (b"status page: /status\n" if "/status" in self.pages else b"")
            return 200, {}, index if method == "GET" else b""
        if target != "/metrics":
            return 404, {}, b"not found: try /metrics\n"
        try:
            body = self.render().encode()
        except Exception:  # a bug: say it, do not take the process down
            log.exception("rendering /metrics failed")
            return 500, {}, b"rendering the metrics failed (see the log)\n"
        headers = {"Content-Type": CONTENT_TYPE}
        accepted = {e.split(";")[0].strip() for e in fields.get("accept-encoding", "").split(",")}
        if "gzip" in accepted and len(body) >= _GZIP_MIN:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        if method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return 200, headers, b""
        return 200, headers, body


def _response(status: int, headers: dict[str, str], body: bytes) -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Internal Server Error')}"]
    headers = {"Content-Type": "text/plain; charset=utf-8", **headers, "Connection": "close"}
    headers.setdefault("Content-Length", str(len(body)))
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class GatewayMetrics:
    """The metrics of one gateway process (see the module docstring): ``start`` (binds the
    port when this process serves it; a ``ListenError`` if it cannot), ``run`` (the snapshot
    loop, a task), ``stop`` (the last snapshot, ``state: stopped``)."""

    def __init__(self, gw: Gateway, worker: int | None) -> None:
        self.gw = gw
        self.cfg: MetricsConfig = gw.cfg.metrics
        self.index = worker or 0
        # a worker's cfg.metrics.dir was set by gateway.supervisor.worker_config
        self.dir = metrics_dir(self.cfg, gw.cfg.spool.path)
        self.path = snapshot_path(self.dir, self.index)
        self.started = time.time()
        self.http: MetricsHttp | None = None
        self.status: StatusPage | None = None
        if self.cfg.enabled and worker is None:
            self.status = StatusPage(self.merged, LastPositions(gw.cfg.database_dsn()))
            self.http = MetricsHttp(self.cfg.host, self.cfg.port, self.render, self.status.pages())
        self._write_failed = False

    def snapshot(self, state: Literal["running", "stopped"] = "running") -> Snapshot:
        from gateway.metrics_collect import collect

        return collect(self.gw, self.index, started=self.started, state=state)

    def merged(self) -> list[Snapshot]:
        """This single process's snapshot now, as :func:`gateway.metrics.merge` gives it."""
        snap = self.snapshot()
        return merge([WorkerState(self.index, snap.pid)], {self.index: snap}, snap.time, 1)

    def render(self) -> str:
        """``/metrics`` of a single process: its snapshot now."""
        return render(self.merged())

    async def start(self, out: TextIO) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("metrics: cannot create %s (%s); no snapshot files", self.dir, exc)
        if self.http is not None:
            try:
                await self.http.start()
            except OSError as exc:
                from gateway.runner import ListenError

                where = f"{self.cfg.host}:{self.cfg.port}"
                raise ListenError(
                    f"metrics: cannot listen on {where}: {exc.strerror or exc}"
                ) from None
            out.write(f"metrics: {self.http.url}\n")
        self.write()

    def write(self, state: Literal["running", "stopped"] = "running") -> None:
        """Write this process's snapshot file; a failure is logged once, never raised."""
        try:
            write_snapshot(self.path, self.snapshot(state))
        except Exception as exc:
            if not self._write_failed:
                log.warning("metrics: snapshot %s not written: %s", self.path, exc)
                self._write_failed = True
        else:
            self._write_failed = False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.interval_s)
            self.write()

    async def stop(self) -> None:
        self.write("stopped")
        if self.http is not None:
            await self.http.close()
        if self.status is not None:
            await self.status.close()


class _Supervised(Protocol):
    """What :class:`SupervisorMetrics` needs of ``gateway.supervisor.Supervisor``."""

    cfg: Config

    def worker_states(self) -> list[WorkerState]: ...


class SupervisorMetrics:
    """``/metrics`` of ``--workers N``, served by the supervisor: every scrape reads the
    workers' snapshot files and serves those of the processes running now (fresh, the pid the
    supervisor started), with ``silkgate_worker_up`` 0 for the others."""

    def __init__(self, supervisor: _Supervised) -> None:
        self.supervisor = supervisor
        cfg = supervisor.cfg
        self.cfg = cfg.metrics
        self.dir = metrics_dir(cfg.metrics, cfg.spool.path)
        self.status = StatusPage(self.merged, LastPositions(cfg.database_dsn()))
        self.http = MetricsHttp(self.cfg.host, self.cfg.port, self.render, self.status.pages())

    async def start(self) -> str:
        """Create the snapshot directory, bind the port; the URL (OSError when it cannot)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        await self.http.start()
        return self.http.url

    def merged(self) -> list[Snapshot]:
        """The live workers' snapshots now (see :func:`gateway.metrics.merge`)."""
        snapshots = read_snapshots(self.dir)
        return merge(self.supervisor.worker_states(), snapshots, time.time(), self.cfg.stale_s)

    def render(self) -> str:
        return render(self.merged())

    async def close(self) -> None:
        await self.http.close()
        await self.status.close()
