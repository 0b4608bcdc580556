"""The gateway's built-in status page: ``/status`` on the metrics port (docs/dashboards.md).

Connections by protocol, ingest rates, errors by reason, queue and spool depth and the workers,
from the same merged metric snapshots ``/metrics`` renders, and a map of the vehicles' last
positions read from the database. Self-contained: no external tiles, fonts or scripts.
"""

from gateway.status_page.page import Page, StatusPage
from gateway.status_page.positions import LastPositions, MapAnswer
from gateway.status_page.summary import Rates, summarize

__all__ = ["LastPositions", "MapAnswer", "Page", "Rates", "StatusPage", "summarize"]
