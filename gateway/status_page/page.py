"""The ``/status`` page and its ``/status.json``, served beside ``/metrics`` by
:class:`gateway.metrics_server.MetricsHttp` (the single gateway process, or the supervisor of
``--workers N``).

The page is three static files of this package (HTML, a small script, a style sheet: no build
step, nothing from the network) read once at start. Its script polls ``status.json`` every
two seconds: the merged metric snapshots summarised (:mod:`gateway.status_page.summary`) and the
vehicles' last positions (:mod:`gateway.status_page.positions`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Final

import msgspec

from gateway.metrics import Snapshot
from gateway.status_page.positions import LastPositions, MapAnswer
from gateway.status_page.summary import Rates, summarize

log = logging.getLogger("silkgate.status")

#: An extra page of the metrics server: (status, headers, body) for a GET.
Answer = tuple[int, dict[str, str], bytes]
Page = Callable[[], Awaitable[Answer]]

_ASSETS: Final = {
    "/status": ("status.html", "text/html; charset=utf-8"),
    "/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/status.css": ("status.css", "text/css; charset=utf-8"),
}
#: The page loads nothing from elsewhere and runs no inline script.
_SECURITY: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_JSON_TYPE: Final = "application/json"
_encoder = msgspec.json.Encoder()


def asset(name: str) -> bytes:
    """A static file of the page (``status.html``, ``status.js``, ``status.css``)."""
    return resources.files(__package__ or "gateway.status_page").joinpath(name).read_bytes()


class StatusPage:
    """``/status`` (and its script and style sheet) and ``/status.json``.

    ``snapshots`` returns the merged snapshots ``/metrics`` would render now; ``positions``
    reads the map's positions from the database (its connection is opened on first use).
    """

    def __init__(
        self, snapshots: Callable[[], Sequence[Snapshot]], positions: LastPositions
    ) -> None:
        self.snapshots = snapshots
        self.positions = positions
        # the map never holds the answer up longer than a connection attempt and a query
        self.map_timeout_s = positions.connect_timeout_s + positions.query_timeout_s + 1.0
        self.rates = Rates()
        self._static = {
            path: (200, {"Content-Type": ctype, "Cache-Control": "no-cache", **_SECURITY}, body)
            for path, (name, ctype) in _ASSETS.items()
            for body in (asset(name),)
        }

    def pages(self) -> dict[str, Page]:
        """Path -> handler, for :class:`gateway.metrics_server.MetricsHttp`."""
        out: dict[str, Page] = {path: self._static_page(path) for path in self._static}
        out["/status.json"] = self.status_json
        return out

    def _static_page(self, path: str) -> Page:
        answer = self._static[path]

        async def page() -> Answer:
            return answer

        return page

    async def data(self) -> dict[str, object]:
        """What ``/status.json`` holds: the metrics summary and ``map``."""
        out: dict[str, object] = summarize(self.snapshots(), self.rates, time.time())
        try:
            answer = await asyncio.wait_for(self.positions.get(), self.map_timeout_s)
        except TimeoutError:
            answer = MapAnswer("unavailable", error="database did not answer in time")
        out["map"] = answer.to_json(self.positions.hours, self.positions.max_devices)
        return out

    async def status_json(self) -> Answer:
        body = _encoder.encode(await self.data())
        return 200, {"Content-Type": _JSON_TYPE, "Cache-Control": "no-store", **_SECURITY}, body

    async def close(self) -> None:
        await self.positions.close()
