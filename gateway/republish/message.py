"""What the republisher publishes: one MQTT message per normalized record.

Topic: ``<topic_prefix>/<operator>/<kind>/<device>`` (default prefix ``silkgate/v1``). ``kind``
names the record type (:data:`KINDS`, the names of the JSON feed where it has them); ``device``
is the record's VIN, terminal phone, charger identity or station id (:data:`DEVICE_FIELDS`);
``operator`` the registry's operator of that device, or :data:`UNKNOWN_OPERATOR`. Operator and
device levels are made safe (:func:`segment`): ``%``, ``/``, ``+``, ``#`` and control characters
are percent-encoded (so two ids never share a level), an empty value becomes ``_``.

Payload: JSON, the :mod:`gateway.records` record with every field plus ``kind`` first, values in
the record's units. Vehicle realtime rows are unpacked as the JSON feed does
(:func:`gateway.forward.feed.to_feed`): ``cell_voltages`` in V, ``probe_temps`` in degC (null for
a sentinel), custom blocks in hex. ``received_at`` is always set (a record without one gets the
time its batch was committed) and a session event without a device time carries its receive
time as ``time``, as the store does. Bytes inside ``extra`` / ``detail`` are base64.

The JSON Schema (docs/republish.schema.json) is generated from :data:`MESSAGE_TYPES`; a test
keeps the file equal to it. Regenerate from outside the repository root::

    python -m gateway.republish.message > docs/republish.schema.json
"""

from __future__ import annotations

import functools
import operator
from datetime import datetime
from typing import Any, Final

import msgspec

from gateway import records as rec
from gateway.forward import feed
from gateway.republish.config import Kind

UNKNOWN_OPERATOR: Final = "_"
"""The operator level of a device the registry does not know (and of any empty level)."""

KINDS: dict[type[msgspec.Struct], Kind] = {
    rec.VehicleRealtime: "vehicle_realtime",  # these four: the JSON feed's names
    rec.Position: "position",
    rec.Alarm: "alarm",
    rec.SessionEvent: "session_event",
    rec.ChargerStatus: "charger_status",
    rec.MeterValue: "meter_value",
    rec.ChargingSession: "charging_session",
    rec.ChargerEvent: "charger_event",
    rec.SwapEvent: "swap_event",
    rec.StationStatus: "station_status",
    rec.BatteryInventory: "battery_inventory",
    rec.BatteryCharging: "battery_charging",
}
"""Every republished record type and its kind (RawFrame and DeadLetter are not republished)."""

DEVICE_FIELDS: dict[type[msgspec.Struct], str] = {
    rec.VehicleRealtime: "vin",
    rec.Position: "device_id",
    rec.Alarm: "device_id",
    rec.SessionEvent: "device_id",
    rec.ChargerStatus: "charger_id",
    rec.MeterValue: "charger_id",
    rec.ChargingSession: "charger_id",
    rec.ChargerEvent: "charger_id",
    rec.SwapEvent: "station_id",
    rec.StationStatus: "station_id",
    rec.BatteryInventory: "station_id",
    rec.BatteryCharging: "station_id",
}
"""The field naming the device (the topic's last level)."""

_DOCS: dict[type, str] = {
    rec.ChargerStatus: "A connector's (connector_id 0: the whole charger's) status: OCPP "
    "StatusNotification, a 2.0.1 connector status.",
    rec.MeterValue: "One sampled value of OCPP MeterValues / TransactionEvent, in the SI unit "
    "named by `unit` (Wh, W, A, V, ...).",
    rec.ChargingSession: "A charging transaction event: start, update or stop.",
    rec.ChargerEvent: "Something a charger reported other than status, meter values and "
    "transactions (boot, security event, firmware status, ...); `detail` holds its fields.",
    rec.SwapEvent: "One battery swap at a swap station: the pack taken out and the pack put in.",
    rec.StationStatus: "A swap station's overall state.",
    rec.BatteryInventory: "One storage bay of a swap station and the pack in it.",
    rec.BatteryCharging: "A pack charging in a swap station's bay.",
}

_FEED_ONLY = frozenset({"frame_id", "index"})  # which archived frame: the outbox does not know


def _message_type(record_type: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """The record's fields, every one present (times UTC, ``received_at`` always set), tagged
    ``kind``: for vehicle records the JSON feed's record without ``frame_id`` and ``index``."""
    feed_type = feed.FEED_TYPES.get(record_type)
    if feed_type is not None:
        fields = [
            (f.name, f.type) for f in msgspec.structs.fields(feed_type) if f.name not in _FEED_ONLY
        ]
        doc = feed_type.__doc__
    else:
        fields = [
            (f.name, feed.RECEIVED_AT if f.name == "received_at" else feed.aware(f.type))
            for f in msgspec.structs.fields(record_type)
        ]
        doc = _DOCS[record_type]
    name = record_type.__name__ + "Message"
    cls = msgspec.defstruct(name, fields, tag=KINDS[record_type], **_OPTIONS)
    cls.__doc__ = doc
    return cls


_OPTIONS: dict[str, Any] = {
    "kw_only": True,
    "frozen": True,
    "gc": False,
    "tag_field": "kind",
    "module": __name__,
}


MESSAGE_TYPES: dict[type[msgspec.Struct], type[msgspec.Struct]] = {
    t: _message_type(t) for t in KINDS
}
"""Record type -> the type of its message (what a consumer can decode a payload into)."""

Message: Any = functools.reduce(operator.or_, MESSAGE_TYPES.values())
"""Any republished message (decode with ``msgspec.json.Decoder(Message)``)."""

_encode = msgspec.json.Encoder().encode
# A record's JSON with ``kind`` spliced in first is exactly its message type's JSON (a tagged
# Struct writes its tag first), without building a second Struct per record.
_HEADS: dict[type, bytes] = {t: b'{"kind":"' + k.encode() + b'",' for t, k in KINDS.items()}


def payload(record: Any, received_at: datetime) -> bytes:
    """The JSON message for ``record`` (``received_at`` fills a missing one)."""
    kind = type(record)
    if kind is rec.VehicleRealtime:
        return _encode(_vehicle(record, received_at))
    if record.received_at is None or (kind is rec.SessionEvent and record.time is None):
        record = _filled(record, received_at)
    return _HEADS[kind] + _encode(record)[1:]


def _vehicle(record: rec.VehicleRealtime, received_at: datetime) -> Any:
    values = {name: getattr(record, name) for name in record.__struct_fields__}
    values["received_at"] = record.received_at or received_at
    values["cell_voltages"] = feed.cell_volts(record.cell_voltages)
    values["probe_temps"] = feed.probe_temps(record.probe_temps)
    values["custom_blocks"] = [
        feed.FeedCustomBlock(b.type, bytes(b.data).hex()) for b in record.custom_blocks
    ]
    return MESSAGE_TYPES[rec.VehicleRealtime](**values)


def _filled(record: Any, received_at: datetime) -> Any:
    when = record.received_at or received_at
    if type(record) is rec.SessionEvent and record.time is None:
        return msgspec.structs.replace(record, received_at=when, time=when)
    return msgspec.structs.replace(record, received_at=when)


# Percent-encoded in a topic level: the separator, the wildcards, '%' itself (so the encoding is
# reversible and two ids never share a level) and control characters.
_UNSAFE = {ord(c): f"%{ord(c):02X}" for c in "%/+#"} | {
    c: f"%{c:02X}" for c in (*range(0x20), 0x7F)
}


def segment(value: str | None) -> str:
    """``value`` as one topic level (see the module docstring); ``_`` when empty or None."""
    if not value:
        return "_"
    return value.translate(_UNSAFE)


def device_of(record: Any) -> str | None:
    """The record's device id (the topic's last level, before :func:`segment`)."""
    value: str | None = getattr(record, DEVICE_FIELDS[type(record)])
    return value


def topic(prefix: str, operator_id: str | None, record: Any) -> str:
    """``<prefix>/<operator>/<kind>/<device>`` for ``record``."""
    return f"{prefix}/{segment(operator_id)}/{KINDS[type(record)]}/{segment(device_of(record))}"


def schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of one republished message."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "silkgate local republish",
        "description": "One MQTT message of silkgate's local republish, on "
        "<topic_prefix>/<operator>/<kind>/<device> (docs/republish.md): a normalized record "
        "with `kind`. Receivers ignore fields they do not know.",
        **msgspec.json.schema(Message),
    }


def schema_text() -> str:
    """:func:`schema` as the checked-in file's text (indented, newline at the end)."""
    return msgspec.json.format(msgspec.json.encode(schema()), indent=2).decode() + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
