"""Swap-station messages to records, and refused payloads to dead letters: pure, no I/O.

:func:`records` maps one decoded message (:mod:`gateway.swap.messages`) to what the store
writes (:mod:`gateway.records`), times in UTC:

- ``station_status``: one :class:`StationStatus` (table ``station_status``);
- ``inventory``: one :class:`BatteryInventory` per bay (``battery_inventory``);
- ``charging``: one :class:`BatteryCharging` per bay (``battery_charging``);
- ``swap``: one :class:`SwapEvent` (``swap_events``) whose ``time`` is the swap's
  ``started_at`` (stable when a station re-sends the swap with a new message time) and
  ``duration_s`` the time to ``ended_at``. Fields without a column go to ``extra``:
  ``pack_out_soh_pct``, ``pack_out_bay``, ``pack_in_soh_pct``, ``pack_in_bay``, and the
  message's own ``extra`` as ``vendor``.

Each table's natural key (station, bay, time) makes a re-sent message a no-op in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import msgspec

from gateway.records import (
    BatteryCharging,
    BatteryInventory,
    DeadLetter,
    StationStatus,
    SwapEvent,
)
from gateway.swap.messages import (
    ChargingBay,
    ChargingMessage,
    InventoryBay,
    InventoryMessage,
    Message,
    StatusMessage,
    SwapMessage,
    SwapPayloadError,
)

__all__ = ["PROTOCOL", "SwapRecord", "dead_letter", "records"]

PROTOCOL: Final = "silkgate-swap"
"""The ``protocol`` of the swap messages' raw frames and dead letters."""

SwapRecord = StationStatus | BatteryInventory | BatteryCharging | SwapEvent
"""What a swap message becomes."""


def records(message: Message, received_at: datetime) -> list[SwapRecord]:
    """The records of one message from :func:`gateway.swap.messages.decode`.

    ``received_at`` must be timezone-aware. A message without a station id (made by hand, not
    decoded with one) is a ValueError.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    station = message.station_id
    if station is None:
        raise ValueError("the message has no station_id")
    received = received_at.astimezone(UTC)
    time = message.time.astimezone(UTC)
    if isinstance(message, StatusMessage):
        return [
            StationStatus(
                station_id=station,
                time=time,
                state=message.state,
                bays_total=message.bays_total,
                bays_available=message.bays_available,
                batteries_charged=message.batteries_charged,
                batteries_charging=message.batteries_charging,
                power_w=message.power_w,
                faults=list(message.faults),
                extra=message.extra,
                received_at=received,
            )
        ]
    if isinstance(message, InventoryMessage):
        return _per_bay(BatteryInventory, message.bays, station, time, received)
    if isinstance(message, ChargingMessage):
        return _per_bay(BatteryCharging, message.bays, station, time, received)
    return [_swap_event(message, station, received)]


#: The fields a bay entry and its record share (all but the message-wide three), by record type.
_BAY_FIELDS: dict[type, tuple[str, ...]] = {
    kind: tuple(
        f.name
        for f in msgspec.structs.fields(kind)
        if f.name not in ("station_id", "time", "received_at")
    )
    for kind in (BatteryInventory, BatteryCharging)
}


def _per_bay(
    kind: type[BatteryInventory] | type[BatteryCharging],
    bays: Sequence[InventoryBay] | Sequence[ChargingBay],
    station: str,
    time: datetime,
    received: datetime,
) -> list[SwapRecord]:
    """One record per bay entry; the entry's fields have the record's names (a unit test keeps
    the two Structs' fields equal)."""
    names = _BAY_FIELDS[kind]
    return [
        kind(
            station_id=station,
            time=time,
            received_at=received,
            **{name: getattr(b, name) for name in names},
        )
        for b in bays
    ]


def _swap_event(message: SwapMessage, station: str, received: datetime) -> SwapEvent:
    out, into = message.pack_out, message.pack_in
    extra: dict[str, Any] = {}
    for prefix, pack in (("pack_out", out), ("pack_in", into)):
        if pack is not None:
            if pack.soh_pct is not None:
                extra[f"{prefix}_soh_pct"] = pack.soh_pct
            if pack.bay is not None:
                extra[f"{prefix}_bay"] = pack.bay
    if message.extra is not None:
        extra["vendor"] = message.extra
    return SwapEvent(
        station_id=station,
        time=message.started_at.astimezone(UTC),
        result=message.result,
        bay=message.bay,
        swap_id=message.swap_id,
        vin=message.vin,
        pack_out_id=None if out is None else out.pack_id,
        pack_out_soc_pct=None if out is None else out.soc_pct,
        pack_out_energy_wh=None if out is None else out.energy_wh,
        pack_in_id=None if into is None else into.pack_id,
        pack_in_soc_pct=None if into is None else into.soc_pct,
        pack_in_energy_wh=None if into is None else into.energy_wh,
        duration_s=(message.ended_at - message.started_at).total_seconds(),
        faults=list(message.faults),
        extra=extra or None,
        received_at=received,
    )


def dead_letter(
    raw: bytes,
    error: SwapPayloadError,
    *,
    frame_id: UUID,
    received_at: datetime,
    peer: str,
    station_id: str | None = None,
) -> DeadLetter:
    """The dead letter of a refused payload: the payload as received, the error's reason and
    message (which starts with the JSON path). ``station_id``: the transport's (topic's)."""
    return DeadLetter(
        frame_id=frame_id,
        received_at=received_at,
        peer=peer,
        protocol=PROTOCOL,
        reason=str(error.reason),
        message=error.message[:1000],
        raw=bytes(raw),
        device_id=station_id,
    )
