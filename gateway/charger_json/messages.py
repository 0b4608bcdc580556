"""The silkgate charger message set, version 1: JSON messages from charging piles and site
controllers that do not speak OCPP over WebSocket but publish over MQTT.

Documented in docs/charger-json.md, with its JSON Schema in docs/charger-json.schema.json
(generated from these Structs by :mod:`gateway.charger_json.schema`). Names and values follow
OCPP (connector statuses, measurands, phases, locations, reading contexts, stop reasons), so a
small adapter script on a site controller can map a charger's data over one to one, and the
records are those of the OCPP central system (:mod:`gateway.charger_json.normalize`).

Every message is one JSON object with ``v`` (the message set version, 1), ``type`` (one of
:data:`TYPES`), ``charger_id``, ``time`` (RFC 3339 with an offset), optionally ``station_id``
(the site), plus its own fields:

- ``connector_status``: a connector's (or the whole charger's) status (:class:`StatusMessage`),
- ``meter_values``: sampled values of any measurand, phase and unit (:class:`MeterValuesMessage`),
- ``session``: a charging session started, going on, or stopped (:class:`SessionMessage`),
- ``event``: boot, fault, firmware status and the like, with detail (:class:`EventMessage`).

:func:`decode` is the shared decoding of :mod:`gateway.json_messages` (one msgspec decode, a
tagged union on ``type``; errors with a stable :class:`Reason` and the JSON path, raised as
:class:`ChargerPayloadError`) plus the checks a schema cannot express. Unknown fields are
ignored. The charger is named by the payload's ``charger_id``, by the transport (the MQTT topic)
or by both, which must then be equal (``charger_mismatch``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum, auto
from typing import Annotated, Any, Final, Literal, get_args

import msgspec

from gateway.json_messages import AwareTime, MessageSet, Payload, PayloadError
from gateway.ocpp import v16, v201

__all__ = [
    "MAX_PAYLOAD",
    "MESSAGE_SET",
    "TYPES",
    "VERSION",
    "ChargerPayloadError",
    "EventMessage",
    "Message",
    "MeterValuesMessage",
    "Reason",
    "Sample",
    "SessionMessage",
    "StatusMessage",
    "decode",
    "encode",
]

VERSION: Final = 1
"""The version (``v``) of the messages defined here: the one :func:`decode` accepts."""

MAX_PAYLOAD: Final = 1 << 20
"""Largest payload accepted, in bytes (characters for a str); 1000 samples are about 150 KB."""


class Reason(StrEnum):
    """Why a payload was refused: the dead letter's ``reason`` (stable; documented). The
    reasons of :data:`gateway.json_messages.CommonReason` plus ``charger_mismatch``."""

    TOO_LARGE = auto()
    NOT_JSON = auto()
    UNSUPPORTED_VERSION = auto()
    UNKNOWN_TYPE = auto()
    MISSING_FIELD = auto()
    BAD_TYPE = auto()
    BAD_VALUE = auto()
    NAIVE_TIME = auto()
    CHARGER_MISMATCH = auto()  # the payload's charger_id differs from the topic's


class ChargerPayloadError(PayloadError):
    """A payload refused by :func:`decode`: ``reason``, ``message`` (starting with the JSON
    path, e.g. ``"$.samples[2].phase: Invalid enum value 'L4'"``) and ``path``."""

    REASONS = Reason
    reason: Reason


_error = ChargerPayloadError.at


# --------------------------------------------------------------------------- field types


SentAt = Annotated[AwareTime, msgspec.Meta(description="when the charger made the message")]
SampledAt = Annotated[AwareTime, msgspec.Meta(description="when sampled; default: the message's")]
StartedAt = Annotated[AwareTime, msgspec.Meta(description="start; default for start: message's")]
StoppedAt = Annotated[AwareTime, msgspec.Meta(description="stop (stop only); default: message's")]


def _id(max_length: int, punctuation: str, description: str) -> msgspec.Meta:
    """An id of letters, digits and ``punctuation``, starting with a letter or digit."""
    pattern = rf"^[A-Za-z0-9][A-Za-z0-9{punctuation}]*$"
    return msgspec.Meta(
        min_length=1, max_length=max_length, pattern=pattern, description=description
    )


ChargerId = Annotated[
    str,
    _id(
        48,
        "._-",
        "the charger (letters, digits, . _ -; like an OCPP 2.0.1 identity); may be "
        "left to the topic",
    ),
]
StationId = Annotated[str, _id(64, "._:-", "the site of the charger (letters, digits, . _ : -)")]
ConnectorId = Annotated[
    int, msgspec.Meta(ge=0, le=9999, description="connector, from 1; 0: the charger as a whole")
]
EvseId = Annotated[
    int,
    msgspec.Meta(ge=1, le=9999, description="EVSE (OCPP 2.0.1), from 1: connectors count in it"),
]
TransactionId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, description="the charger's transaction id")
]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=500)]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
EnergyWh = Annotated[float, msgspec.Meta(ge=0, le=1e12, description="Wh")]
StopReason = Annotated[
    Code,
    msgspec.Meta(description="why it stopped (stop only): an OCPP reason (Local, Remote, ...)"),
]
Extra = Annotated[
    dict[str, Any], msgspec.Meta(description="vendor data, kept as JSON (not interpreted)")
]
Version = Annotated[
    Literal[1], msgspec.Meta(description="message set version (1); see docs/charger-json.md")
]

# OCPP's own enumerations (both versions name phases, locations and contexts alike).
ConnectorState = Literal[v16.StatusNotificationRequestStatus, v201.ConnectorStatusEnumType]
Phase = v201.PhaseEnumType
Location = v201.LocationEnumType
ReadingContext = v201.ReadingContextEnumType
SessionEvent = Literal["start", "update", "stop"]


# --------------------------------------------------------------------------- messages


class _Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    """The envelope: version, the charger (may be left to the topic) and its site, the time."""

    v: Version
    charger_id: ChargerId | None = None
    station_id: StationId | None = None
    time: SentAt


class StatusMessage(_Message, tag="connector_status", kw_only=True, frozen=True):
    """A connector's status (OCPP StatusNotification); connector 0 is the charger itself."""

    connector_id: ConnectorId
    status: Annotated[
        ConnectorState,
        msgspec.Meta(description="OCPP 1.6 ChargePointStatus or 2.0.1 ConnectorStatus"),
    ]
    evse_id: EvseId | None = None
    error_code: (
        Annotated[
            Code, msgspec.Meta(description="OCPP 1.6 errorCode (NoError, GroundFailure, ...)")
        ]
        | None
    ) = None
    vendor_error_code: Annotated[Code, msgspec.Meta(description="the charger's own")] | None = None
    vendor_id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    info: Annotated[Text, msgspec.Meta(description="free text")] | None = None


class Sample(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One sampled value (an OCPP SampledValue); stored in SI units."""

    measurand: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=64,
            pattern=r"^[A-Za-z][A-Za-z0-9._-]*$",
            description="what was measured: an OCPP measurand (Energy.Active.Import.Register, "
            "Power.Active.Import, Current.Import, Voltage, SoC, Temperature, ...) or another name",
        ),
    ]
    value: Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)]
    unit: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=32,
                description="Wh, kWh, W, kW, A, V, Hz, Celsius, Percent, ... (OCPP units); "
                "default: the measurand's (Wh for energy, W for power, ...)",
            ),
        ]
        | None
    ) = None
    multiplier: Annotated[
        int, msgspec.Meta(ge=-9, le=9, description="the value is times 10 to this power")
    ] = 0
    phase: Phase | None = None
    location: Location | None = None
    context: (
        Annotated[ReadingContext, msgspec.Meta(description="default Sample.Periodic")] | None
    ) = None
    time: SampledAt | None = None


class MeterValuesMessage(_Message, tag="meter_values", kw_only=True, frozen=True):
    """Sampled values of one connector (OCPP MeterValues)."""

    connector_id: ConnectorId
    samples: Annotated[list[Sample], msgspec.Meta(min_length=1, max_length=1000)]
    evse_id: EvseId | None = None
    transaction_id: TransactionId | None = None


class SessionMessage(_Message, tag="session", kw_only=True, frozen=True):
    """A charging session (transaction) started, going on, or stopped."""

    event: Annotated[SessionEvent, msgspec.Meta(description="start, update or stop")]
    transaction_id: TransactionId
    connector_id: ConnectorId | None = None
    evse_id: EvseId | None = None
    id_tag: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1, max_length=64, description="the ID tag or token that authorized it"
            ),
        ]
        | None
    ) = None
    started_at: StartedAt | None = None
    stopped_at: StoppedAt | None = None
    meter_start_wh: (
        Annotated[EnergyWh, msgspec.Meta(description="energy register at the start")] | None
    ) = None
    meter_stop_wh: (
        Annotated[EnergyWh, msgspec.Meta(description="energy register at the stop (stop only)")]
        | None
    ) = None
    energy_wh: (
        Annotated[
            EnergyWh,
            msgspec.Meta(description="delivered so far; default for stop: stop minus start"),
        ]
        | None
    ) = None
    soc_start_pct: Annotated[Percent, msgspec.Meta(description="SoC at the start")] | None = None
    soc_pct: Annotated[Percent, msgspec.Meta(description="SoC now")] | None = None
    stop_reason: StopReason | None = None
    extra: Extra | None = None


class EventMessage(_Message, tag="event", kw_only=True, frozen=True):
    """Something that happened to the charger: boot, fault, firmware status, ..."""

    event: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=64,
            pattern=r"^[a-z][a-z0-9_]*$",
            description="boot, fault, fault_cleared, firmware_status, diagnostics_status, "
            "log_status, security_event, or another name (lower case, digits, _)",
        ),
    ]
    code: (
        Annotated[Code, msgspec.Meta(description="fault code, status (Downloading, ...), type")]
        | None
    ) = None
    info: Annotated[Text, msgspec.Meta(description="free text")] | None = None
    connector_id: ConnectorId | None = None
    evse_id: EvseId | None = None
    request_id: (
        Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1, description="the request it answers")]
        | None
    ) = None
    key: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=128,
                description="tells apart events of one kind at one time; default: from "
                "evse_id, connector_id, request_id and code",
            ),
        ]
        | None
    ) = None
    detail: (
        Annotated[
            dict[str, Any],
            msgspec.Meta(description="more about it (vendor, model, firmware_version, ...)"),
        ]
        | None
    ) = None


Message = StatusMessage | MeterValuesMessage | SessionMessage | EventMessage
"""Any message of the set."""

MESSAGE_SET: Final = MessageSet[Message](
    Message, versions=frozenset({VERSION}), error=ChargerPayloadError, max_payload=MAX_PAYLOAD
)
"""The set's decoding, encoding and schema (:class:`gateway.json_messages.MessageSet`)."""

TYPES: Final = MESSAGE_SET.types
"""``type`` value -> its Struct: ``connector_status``, ``meter_values``, ``session``,
``event``."""

OCPP_MEASURANDS: Final = frozenset(get_args(v16.SampledValueMeasurand)) | frozenset(
    get_args(v201.MeasurandEnumType)
)
"""The measurands of OCPP 1.6 and 2.0.1: a sample of any other needs its ``unit``."""

EVENT_FIELDS: Final = ("code", "info", "connector_id", "evse_id", "request_id")
"""The event fields stored in the event's ``detail`` beside the message's own ``detail``."""


def encode(message: Message) -> bytes:
    """The JSON payload of a message (fields left at their default are omitted)."""
    return MESSAGE_SET.encode(message)


def decode(payload: Payload, *, charger_id: str | None = None) -> Message:
    """One payload as its message, with ``charger_id`` filled in from the argument if the payload
    has none. ``charger_id`` is the charger named by the transport (the MQTT topic), or None.

    Raises :class:`ChargerPayloadError`.
    """
    message = MESSAGE_SET.decode(payload)
    message = MESSAGE_SET.identify(
        message, "charger_id", charger_id, ChargerId, Reason.CHARGER_MISMATCH
    )
    _check(message)
    return message


def _check(message: Message) -> None:
    """What the schema cannot say; raises ChargerPayloadError (bad_value)."""
    if isinstance(message, MeterValuesMessage):
        seen: dict[tuple[str, str | None, str | None, datetime], int] = {}
        for i, s in enumerate(message.samples):
            if s.unit is None and s.measurand not in OCPP_MEASURANDS:
                raise _error(
                    Reason.MISSING_FIELD,
                    f"$.samples[{i}].unit",
                    f"measurand {s.measurand!r} is not OCPP's: it has no default unit",
                )
            key = (s.measurand, s.phase, s.location, s.time or message.time)
            if key in seen:
                raise _error(
                    Reason.BAD_VALUE,
                    f"$.samples[{i}]",
                    f"the same measurand, phase, location and time as samples[{seen[key]}]",
                )
            seen[key] = i
    elif isinstance(message, SessionMessage):
        if message.event != "stop":
            for name in ("stopped_at", "meter_stop_wh", "stop_reason"):
                if getattr(message, name) is not None:
                    raise _error(Reason.BAD_VALUE, f"$.{name}", f"only a stop has {name}")
        start, stop = message.started_at, message.stopped_at or message.time
        if message.event == "stop" and start is not None and stop < start:
            raise _error(Reason.BAD_VALUE, "$.stopped_at", "the session stopped before it started")
        first, last = message.meter_start_wh, message.meter_stop_wh
        if first is not None and last is not None and last < first:
            raise _error(Reason.BAD_VALUE, "$.meter_stop_wh", "less than meter_start_wh")
    elif isinstance(message, EventMessage) and message.detail:
        for name in EVENT_FIELDS:
            if name in message.detail and getattr(message, name) is not None:
                raise _error(
                    Reason.BAD_VALUE, f"$.detail.{name}", f"{name} is a field of the message too"
                )
