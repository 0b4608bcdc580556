"""Charger messages to records: pure, no I/O; the records and tables of the OCPP central system.

:func:`records` maps one decoded message (:mod:`gateway.charger_json.messages`) to what the store
writes (:mod:`gateway.records`), times in UTC, ``protocol`` :data:`PROTOCOL`:

- ``connector_status``: one :class:`ChargerStatus` at the message's time (``charger_status``);
- ``meter_values``: one :class:`MeterValue` per sample (``meter_values``), in SI units as OCPP's
  are (:func:`gateway.ocpp.units.to_si`: kWh -> Wh, kW -> W, Fahrenheit -> Celsius, ...; the unit
  defaults to the measurand's, the context to Sample.Periodic), at the sample's time or the
  message's;
- ``session``: one :class:`ChargingSession` (``charging_sessions``). Its ``time`` is the
  session's ``started_at`` for a start and ``stopped_at`` for a stop (the message's time when
  absent, and then also their value), the message's time for an update, so a start or stop sent
  again with a new message time is one row. A stop's energy defaults to meter stop minus meter
  start. The ID tag is stored hashed (:func:`gateway.ocpp.normalize.id_tag_for_store`) unless
  ``hash_id_tags`` is off, exactly as OCPP's;
- ``event``: one :class:`ChargerEvent` (``charger_events``) at the message's time: ``detail`` is
  the message's ``detail`` plus its ``code``, ``info``, ``connector_id``, ``evse_id`` and
  ``request_id``; ``key`` the message's, else ``<evse_id>/<connector_id>:<request_id>:<code>``
  (absent parts empty; ``""`` when all are absent).

The messages' fields are named as the records' are, so they are copied by name; what differs
(times to UTC, units, defaults, hashing) is done here. Each table's natural key (migrations 0002
and 0008) makes a re-sent message a no-op in the store.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from gateway.charger_json import messages as msg
from gateway.ocpp.normalize import DEFAULT_CONTEXT, id_tag_for_store
from gateway.ocpp.units import SI_UNITS, default_unit, to_si
from gateway.records import ChargerEvent, ChargerStatus, ChargingSession, MeterValue

__all__ = ["PROTOCOL", "ChargerRecord", "event_key", "records"]

PROTOCOL: Final = "silkgate-charger"
"""The ``protocol`` of the records, raw frames and dead letters of charger messages."""

ChargerRecord = ChargerStatus | MeterValue | ChargingSession | ChargerEvent
"""What a charger message becomes."""


def records(
    message: msg.Message, received_at: datetime, *, hash_id_tags: bool = True
) -> list[ChargerRecord]:
    """The records of one message from :func:`gateway.charger_json.messages.decode`.

    ``received_at`` must be timezone-aware. A message without a charger id (made by hand, not
    decoded with one) is a ValueError.
    """
    if received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    if message.charger_id is None:
        raise ValueError("the message has no charger_id")
    # The fields every record of the message has; the rest come by name from the message (its
    # fields are named as the records' are), then from the code below.
    base: dict[str, Any] = {
        "charger_id": message.charger_id,
        "time": message.time.astimezone(UTC),
        "protocol": PROTOCOL,
        "station_id": message.station_id,
        "received_at": received_at.astimezone(UTC),
    }
    if isinstance(message, msg.StatusMessage):
        return [ChargerStatus(**_same(message, ChargerStatus) | base)]
    if isinstance(message, msg.MeterValuesMessage):
        return [_meter_value(message, sample, base) for sample in message.samples]
    if isinstance(message, msg.SessionMessage):
        return [_session(message, base, hash_id_tags)]
    detail = {**(message.detail or {}), **_same(message, msg.EVENT_FIELDS)}
    return [
        ChargerEvent(**base, event=message.event, key=event_key(message), detail=detail or None)
    ]


@functools.cache
def _names(
    source: type[msgspec.Struct], target: type[msgspec.Struct] | tuple[str, ...]
) -> tuple[str, ...]:
    """The fields of ``source`` that ``target`` (a Struct type, or names) has too."""
    names = target if isinstance(target, tuple) else target.__struct_fields__
    return tuple(n for n in source.__struct_fields__ if n in names)


def _same(source: msgspec.Struct, target: type[msgspec.Struct] | tuple[str, ...]) -> dict[str, Any]:
    """``source``'s values of the fields ``target`` has too, those that are not None."""
    values = ((n, getattr(source, n)) for n in _names(type(source), target))
    return {n: v for n, v in values if v is not None}


def _meter_value(
    message: msg.MeterValuesMessage, sample: msg.Sample, base: dict[str, Any]
) -> MeterValue:
    unit = default_unit(sample.measurand) if sample.unit is None else sample.unit
    si = SI_UNITS.get(unit) if sample.multiplier == 0 else None
    if si is None:
        value, si = to_si(sample.value, unit, sample.multiplier)
    else:
        value = sample.value
    fields = _same(message, MeterValue) | _same(sample, MeterValue) | base
    if sample.time is not None:
        fields["time"] = sample.time.astimezone(UTC)
    fields.update(value=value, unit=si, context=sample.context or DEFAULT_CONTEXT)
    return MeterValue(**fields)


def _session(
    message: msg.SessionMessage, base: dict[str, Any], hash_id_tags: bool
) -> ChargingSession:
    fields = _same(message, ChargingSession) | base
    for name in ("started_at", "stopped_at"):
        if name in fields:
            fields[name] = fields[name].astimezone(UTC)
    # A start is at its started_at, a stop at its stopped_at: one row however often it is sent.
    edge = {"start": "started_at", "stop": "stopped_at"}.get(message.event)
    if edge is not None:
        fields["time"] = fields.setdefault(edge, fields["time"])
    first, last = message.meter_start_wh, message.meter_stop_wh
    if message.energy_wh is None and first is not None and last is not None:
        fields["energy_wh"] = last - first
    tag = message.id_tag
    if tag and hash_id_tags:
        fields.update(id_tag=id_tag_for_store(tag), id_tag_hashed=True)
    return ChargingSession(**fields)


def event_key(message: msg.EventMessage) -> str:
    """The stored ``key`` of an event (see the module docstring)."""
    if message.key is not None:
        return message.key
    parts = (message.evse_id, message.connector_id, message.request_id, message.code)
    if all(p is None for p in parts):
        return ""
    evse, connector, request, code = ("" if p is None else str(p) for p in parts)
    return f"{evse}/{connector}:{request}:{code}"
