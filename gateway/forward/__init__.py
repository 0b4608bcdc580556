"""Forwarding committed data to regulators and upstream platforms, each with a durable cursor.

Forwarders read the raw frame archive (committed rows only, in a gap-free order:
:mod:`.archive`) and deliver the selected vehicles' frames: to upstream GB/T 32960 platforms
(:mod:`.gbt_platform`, with :mod:`.gbt_link` and the edition converter :mod:`.convert`) and as a
normalized JSON feed over HTTPS (:mod:`.json_feed`, wire format :mod:`.feed`). Configuration:
:mod:`.config`; the set of them in a gateway process: :class:`Forwarders` (:mod:`.service`).
How it works: docs/forward.md.

The names below load on first use (PEP 562): ``gateway.config`` imports :mod:`.config`, which
must not pull in the forwarders (and through them ``gateway.config`` again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import lazy_getattr

if TYPE_CHECKING:
    from gateway.forward.config import ForwardConfig, GbtUpstream, JsonFeed, Selection
    from gateway.forward.service import Forwarders
    from gateway.forward.stats import ForwarderStats

__all__ = ["ForwardConfig", "ForwarderStats", "Forwarders", "GbtUpstream", "JsonFeed", "Selection"]

_WHERE = {
    "ForwardConfig": "config",
    "GbtUpstream": "config",
    "JsonFeed": "config",
    "Selection": "config",
    "Forwarders": "service",
    "ForwarderStats": "stats",
}

__getattr__ = lazy_getattr(__name__, _WHERE)
