"""The silkgate swap message set, version 1: JSON messages from battery-swap stations.

No public national wire format exists for swap-station data (GB/T 29772-2024 and QC/T 1295.2
describe stations and the vehicle link, not station-to-platform telemetry), so silkgate defines
its own, documented in docs/swap-station.md with its JSON Schema in docs/swap-station.schema.json
(generated from these Structs by :mod:`gateway.swap.schema`).

Every message is one JSON object with ``v`` (the message set version, 1), ``type`` (one of
:data:`TYPES`), ``station_id`` and ``time`` (RFC 3339 with an offset) plus its own fields:

- ``station_status``: the station as a whole (:class:`StatusMessage`),
- ``inventory``: what every storage bay holds (:class:`InventoryMessage`),
- ``charging``: the packs charging in the station (:class:`ChargingMessage`),
- ``swap``: one battery swap, sent when it ended (:class:`SwapMessage`).

:func:`decode` reads one payload with one msgspec decode (a tagged union on ``type``) and then
checks what a schema cannot say (bay numbers unique, ``ended_at`` not before ``started_at``, ...).
Anything refused raises :class:`SwapPayloadError` with a stable :class:`Reason` and the JSON path
of the culprit. Unknown fields are ignored: a station may send fields of a later minor revision.

The station's identity comes from the payload's ``station_id`` or from the caller (the MQTT
topic), or both; when both are given they must be equal (``station_mismatch``): a station must
not write another station's data, and the topic is what the broker's ACL authenticates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

import msgspec

from gateway.json_messages import TZ_AWARE, MessageSet, PayloadError

__all__ = [
    "MAX_PAYLOAD",
    "SUPPORTED_VERSIONS",
    "TYPES",
    "VERSION",
    "ChargingBay",
    "ChargingMessage",
    "InventoryBay",
    "InventoryMessage",
    "Message",
    "Reason",
    "StatusMessage",
    "SwapMessage",
    "SwapPack",
    "SwapPayloadError",
    "decode",
    "encode",
]

VERSION: Final = 1
"""The message set version this module writes and documents."""

SUPPORTED_VERSIONS: Final = frozenset({1})
"""The ``v`` values :func:`decode` accepts."""

MAX_PAYLOAD: Final = 1 << 20
"""Largest payload accepted, in bytes (characters for a str); a 500-bay inventory is about
60 KB."""


class Reason(StrEnum):
    """Why a payload was refused: the dead letter's ``reason`` (stable; documented)."""

    TOO_LARGE = "too_large"  # more than MAX_PAYLOAD bytes
    NOT_JSON = "not_json"  # not well-formed JSON (or not UTF-8)
    UNSUPPORTED_VERSION = "unsupported_version"  # "v" is an integer this gateway does not know
    UNKNOWN_TYPE = "unknown_type"  # "type" is a string that names no message
    MISSING_FIELD = "missing_field"  # a required field is absent (station_id: from neither side)
    BAD_TYPE = "bad_type"  # a JSON value of the wrong type (null included where not allowed)
    BAD_VALUE = "bad_value"  # out of range, not in the enumeration, inconsistent, bad format
    NAIVE_TIME = "naive_time"  # a date-time without a UTC offset
    STATION_MISMATCH = "station_mismatch"  # payload's station_id differs from the topic's


class SwapPayloadError(PayloadError):
    """A payload refused by :func:`decode`: ``reason``, ``message`` (starting with the JSON
    path, e.g. ``"$.bays[2].soc_pct: Expected `float` <= 100.0"``) and ``path``."""

    REASONS = Reason
    reason: Reason


_error = SwapPayloadError.at


# --------------------------------------------------------------------------- field types

_TZ: Final = TZ_AWARE
SentAt = Annotated[
    datetime, _TZ, msgspec.Meta(description="when the station made the message, RFC 3339")
]
StartedAt = Annotated[
    datetime, _TZ, msgspec.Meta(description="when the swap started, RFC 3339; identifies it")
]
EndedAt = Annotated[datetime, _TZ, msgspec.Meta(description="when the swap ended, RFC 3339")]


StationId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="the station's id (letters, digits, . _ : -); may be left to the topic",
    ),
]
Bay = Annotated[int, msgspec.Meta(ge=1, le=9999, description="bay number, from 1")]
PackId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, description="battery pack id (code on pack)")
]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
EnergyWh = Annotated[float, msgspec.Meta(ge=0, le=10_000_000)]
TemperatureC = Annotated[float, msgspec.Meta(ge=-50, le=150, description="degC")]
Count = Annotated[int, msgspec.Meta(ge=0, le=9999)]
FaultCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Faults = Annotated[
    list[FaultCode],
    msgspec.Meta(max_length=64, description="fault codes, as the station names them"),
]
Vin = Annotated[
    str, msgspec.Meta(pattern=r"^[A-HJ-NPR-Z0-9]{17}$", description="vehicle VIN (17 characters)")
]
Extra = Annotated[
    dict[str, Any], msgspec.Meta(description="vendor data, kept as JSON (not interpreted)")
]
Version = Annotated[
    Literal[1], msgspec.Meta(description="message set version (1); see docs/swap-station.md")
]

StationState = Literal["operating", "maintenance", "fault", "offline"]
BayState = Literal["empty", "ready", "charging", "waiting", "reserved", "fault", "disabled"]
ChargingState = Literal["waiting", "charging", "paused", "complete", "fault"]
SwapResult = Literal["success", "failed", "aborted"]


# --------------------------------------------------------------------------- messages


class _Message(msgspec.Struct, frozen=True, omit_defaults=True, tag_field="type"):
    """Fields every message has (positional so they come first; the messages' own fields are
    keyword-only)."""

    v: Version
    time: SentAt
    station_id: StationId | None = None


class StatusMessage(_Message, tag="station_status", kw_only=True, frozen=True):
    """The station as a whole: state, bays, packs, power draw, active faults."""

    state: Annotated[
        StationState,
        msgspec.Meta(description="operating: swapping; maintenance; fault; offline: closed"),
    ]
    bays_total: (
        Annotated[Count, msgspec.Meta(description="storage bays, in service or not")] | None
    ) = None
    bays_available: (
        Annotated[Count, msgspec.Meta(description="bays holding a pack ready for a swap")] | None
    ) = None
    batteries_charged: Annotated[Count, msgspec.Meta(description="packs fully charged")] | None = (
        None
    )
    batteries_charging: Annotated[Count, msgspec.Meta(description="packs charging now")] | None = (
        None
    )
    power_w: (
        Annotated[float, msgspec.Meta(ge=0, le=100_000_000, description="grid power drawn, W")]
        | None
    ) = None
    faults: Faults = []
    extra: Extra | None = None


class InventoryBay(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One storage bay and the pack in it (none when ``state`` is ``empty``)."""

    bay: Bay
    state: Annotated[
        BayState,
        msgspec.Meta(
            description="empty: no pack; ready: charged, can be swapped in; charging; "
            "waiting: pack neither charging nor ready; reserved: held for a vehicle; "
            "fault; disabled: bay out of service"
        ),
    ]
    pack_id: PackId | None = None
    soc_pct: Annotated[Percent, msgspec.Meta(description="state of charge, %")] | None = None
    soh_pct: Annotated[Percent, msgspec.Meta(description="state of health, %")] | None = None
    energy_wh: (
        Annotated[EnergyWh, msgspec.Meta(description="energy stored in the pack now, Wh")] | None
    ) = None
    temperature_c: TemperatureC | None = None


class InventoryMessage(_Message, tag="inventory", kw_only=True, frozen=True):
    """What the storage bays hold: one entry per bay (all bays, or those that changed)."""

    bays: Annotated[list[InventoryBay], msgspec.Meta(min_length=1, max_length=2000)]


class ChargingBay(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A pack charging (or waiting to) in one bay: the charger's readings."""

    bay: Bay
    state: Annotated[
        ChargingState,
        msgspec.Meta(description="waiting, charging, paused, complete or fault"),
    ]
    pack_id: PackId | None = None
    soc_pct: Annotated[Percent, msgspec.Meta(description="state of charge, %")] | None = None
    power_w: (
        Annotated[
            float, msgspec.Meta(ge=-10_000_000, le=10_000_000, description="charging power, W")
        ]
        | None
    ) = None
    voltage_v: Annotated[float, msgspec.Meta(ge=0, le=2000, description="V")] | None = None
    current_a: (
        Annotated[float, msgspec.Meta(ge=-5000, le=5000, description="A, positive into the pack")]
        | None
    ) = None
    energy_wh: (
        Annotated[EnergyWh, msgspec.Meta(description="energy charged in this charge so far, Wh")]
        | None
    ) = None
    temperature_c: TemperatureC | None = None


class ChargingMessage(_Message, tag="charging", kw_only=True, frozen=True):
    """The packs charging in the station: one entry per bay with a charge in progress."""

    bays: Annotated[list[ChargingBay], msgspec.Meta(min_length=1, max_length=2000)]


class SwapPack(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """A pack taken out of the vehicle (``pack_out``) or put into it (``pack_in``)."""

    pack_id: PackId
    soc_pct: Annotated[Percent, msgspec.Meta(description="state of charge, %")] | None = None
    energy_wh: Annotated[EnergyWh, msgspec.Meta(description="energy stored, Wh")] | None = None
    soh_pct: Annotated[Percent, msgspec.Meta(description="state of health, %")] | None = None
    bay: (
        Annotated[
            Bay, msgspec.Meta(description="storage bay the pack went to (out) or came from (in)")
        ]
        | None
    ) = None


class SwapMessage(_Message, tag="swap", kw_only=True, frozen=True):
    """One battery swap, sent once it ended (successfully or not)."""

    started_at: StartedAt
    ended_at: EndedAt
    result: Annotated[SwapResult, msgspec.Meta(description="success, failed or aborted")]
    swap_id: (
        Annotated[
            str, msgspec.Meta(min_length=1, max_length=64, description="station's order number")
        ]
        | None
    ) = None
    bay: Annotated[Bay, msgspec.Meta(description="swap bay (lane) the vehicle stood in")] | None = (
        None
    )
    vin: Vin | None = None
    pack_out: SwapPack | None = None
    pack_in: SwapPack | None = None
    faults: Faults = []
    extra: Extra | None = None


Message = StatusMessage | InventoryMessage | ChargingMessage | SwapMessage
"""Any message of the set."""

TYPES: Final[dict[str, type[Message]]] = {
    "station_status": StatusMessage,
    "inventory": InventoryMessage,
    "charging": ChargingMessage,
    "swap": SwapMessage,
}
"""``type`` value -> its Struct."""

# The shared decoding (gateway.json_messages): size limit, envelope, path-carrying errors.
_SET: Final = MessageSet[Message](
    Message, versions=SUPPORTED_VERSIONS, error=SwapPayloadError, max_payload=MAX_PAYLOAD
)


def encode(message: Message) -> bytes:
    """The JSON payload of a message (fields left at their default are omitted)."""
    return _SET.encode(message)


# --------------------------------------------------------------------------- decoding


def decode(
    payload: bytes | bytearray | memoryview | str, *, station_id: str | None = None
) -> Message:
    """One payload as its message, with ``station_id`` filled in from the argument if the payload
    has none. ``station_id`` is the station named by the transport (the MQTT topic), or None.

    Raises :class:`SwapPayloadError`.
    """
    message = _SET.decode(payload)
    message = _SET.identify(message, "station_id", station_id, StationId, Reason.STATION_MISMATCH)
    _check(message)
    return message


def _check(message: Message) -> None:
    """What the schema cannot say; raises SwapPayloadError (bad_value or missing_field)."""
    if isinstance(message, StatusMessage):
        total = message.bays_total
        if total is not None:
            for name in ("bays_available", "batteries_charged", "batteries_charging"):
                value = getattr(message, name)
                if value is not None and value > total:
                    raise _error(
                        Reason.BAD_VALUE, f"$.{name}", f"{value} is more than bays_total {total}"
                    )
            charged, charging = message.batteries_charged, message.batteries_charging
            if charged is not None and charging is not None and charged + charging > total:
                raise _error(
                    Reason.BAD_VALUE,
                    "$.batteries_charging",
                    f"batteries_charged + batteries_charging = {charged + charging} "
                    f"is more than bays_total {total}",
                )
    elif isinstance(message, InventoryMessage):
        _unique_bays(message.bays)
        for i, entry in enumerate(message.bays):
            if entry.state == "empty" and entry.pack_id is not None:
                raise _error(
                    Reason.BAD_VALUE, f"$.bays[{i}].state", "an empty bay cannot hold a pack"
                )
    elif isinstance(message, ChargingMessage):
        _unique_bays(message.bays)
    else:
        if message.ended_at < message.started_at:
            raise _error(Reason.BAD_VALUE, "$.ended_at", "ended_at is before started_at")
        if message.result == "success":
            for name in ("pack_out", "pack_in"):
                if getattr(message, name) is None:
                    raise _error(
                        Reason.MISSING_FIELD, f"$.{name}", f"a successful swap needs {name}"
                    )
        if (
            message.pack_out is not None
            and message.pack_in is not None
            and message.pack_out.pack_id == message.pack_in.pack_id
        ):
            raise _error(Reason.BAD_VALUE, "$.pack_in.pack_id", "the same pack went out and in")


def _unique_bays(bays: Sequence[InventoryBay | ChargingBay]) -> None:
    seen: set[int] = set()
    for i, entry in enumerate(bays):
        if entry.bay in seen:
            raise _error(Reason.BAD_VALUE, f"$.bays[{i}].bay", f"bay {entry.bay} is listed twice")
        seen.add(entry.bay)
