"""Live charger connections as the rest of the gateway sees them: a :class:`ChargerLink` per
connected charge point (send it a CALL, wait for the outcome) and :class:`Links`, the index by
charge point identity that commands and the bridge look chargers up in.

The WebSocket shell (``gateway.adapters.ocpp_ws``) implements :class:`ChargerLink`; a newer
connection of the same identity displaces the older one in the index.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.ocpp.rpc_events import CallAborted, CallError, CallResult, CallTimeout, InvalidResult

CallOutcome = CallResult | CallError | InvalidResult | CallTimeout | CallAborted
"""How a CALL of ours ended: answered, refused, answered wrongly, timed out, connection gone."""


class ChargerLink(Protocol):
    """One connected charge point."""

    @property
    def charger_id(self) -> str:
        """The charge point identity (the URL path's last segment, decoded)."""
        ...

    @property
    def version(self) -> str:
        """The negotiated sub-protocol: ``"ocpp1.6"`` or ``"ocpp2.0.1"``."""
        ...

    @property
    def peer(self) -> str:
        """``ip:port`` of the charger."""
        ...

    async def call(self, action: str, request: Any, timeout_s: float) -> CallOutcome:
        """Send a CALL (a request Struct of this link's version) and wait for its outcome.

        CALLs are sent one at a time per connection (queued behind an outstanding one); the
        timeout counts from this call, time in the queue included. Never raises for the
        charger's behaviour; a closed connection gives :class:`CallAborted`.
        """
        ...


class Links:
    """The connected chargers by identity (one link per identity: the newest)."""

    def __init__(self) -> None:
        self._links: dict[str, ChargerLink] = {}

    def get(self, charger_id: str) -> ChargerLink | None:
        """The live link of a charger, or None when it is not connected."""
        return self._links.get(charger_id)

    def add(self, link: ChargerLink) -> ChargerLink | None:
        """Index a new connection; returns the link it displaces (to be closed), if any."""
        old = self._links.get(link.charger_id)
        self._links[link.charger_id] = link
        return old if old is not link else None

    def remove(self, link: ChargerLink) -> None:
        """Forget a closed connection (a no-op when a newer one has displaced it)."""
        if self._links.get(link.charger_id) is link:
            del self._links[link.charger_id]

    def __len__(self) -> int:
        return len(self._links)

    def __contains__(self, charger_id: object) -> bool:
        return charger_id in self._links

    def ids(self) -> list[str]:
        """The identities connected now."""
        return list(self._links)
