"""OCPP 1.6 / 2.0.1 requests to records: pure functions, no I/O.

:func:`records_for` turns one decoded request (a Struct of gateway/ocpp/v16.py or v201.py) into
the records the pipeline stores (gateway/records.py):

- StatusNotification: one :class:`ChargerStatus`. 1.6 without ``timestamp``: the receive time.
- MeterValues: one :class:`MeterValue` per sampled value, in SI units (gateway/ocpp/units.py);
  measurand defaults to Energy.Active.Import.Register, context to Sample.Periodic (both
  versions' defaults). The 2.0.1 message names an EVSE only: ``connector_id`` is 0 and
  ``evse_id`` the evseId. A signed value (1.6 ``format`` SignedData, 2.0.1 ``signedMeterValue``)
  is kept as a ChargerEvent ``signed_meter_value``; a 1.6 signed value carries no number, so it
  has no MeterValue row. A 1.6 value that is not a finite number is a :class:`Problem`
  (``bad_meter_value``); the message's other values are kept.
- StartTransaction / StopTransaction (1.6), TransactionEvent (2.0.1): one :class:`ChargingSession`
  (``start`` / ``update`` / ``stop``) plus the MeterValue rows they carry, with the transaction
  id. Energy is the Energy.Active.Import.Register reading (1.6 meterStop; 2.0.1 the latest
  register value without phase at the Outlet, the spec's default location) minus the meter
  start the central system knows (:class:`TxInfo`). ID tags are hashed per :class:`Context`.
- BootNotification, SecurityEventNotification, FirmwareStatusNotification (and the 1.6 security
  extension's SignedFirmwareStatusNotification), DiagnosticsStatusNotification,
  LogStatusNotification, NotifyEvent, NotifyReport, DataTransfer: one :class:`ChargerEvent`
  whose ``detail`` is the request as JSON (dates as ISO strings) plus the answer's status where
  it matters. Its ``time`` is the message's own time where it has one, else the receive time;
  ``key`` keeps a retried message one row and tells distinct ones apart.
- Heartbeat, Authorize and every other action: no records (the raw frame archive has them).

Every record's ``protocol`` is the Context's version ("ocpp1.6" / "ocpp2.0.1"), ``station_id``
and ``received_at`` the Context's. Times are UTC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, cast

import msgspec
from msgspec import UNSET

from gateway.ocpp import v16, v201
from gateway.ocpp.messages import ACTIONS
from gateway.ocpp.units import SI_UNITS, default_unit, to_si
from gateway.records import ChargerEvent, ChargerStatus, ChargingSession, MeterValue

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_MEASURAND",
    "Context",
    "Normalized",
    "Problem",
    "TxInfo",
    "id_tag_for_store",
    "records_for",
]

DEFAULT_MEASURAND: Final = "Energy.Active.Import.Register"
DEFAULT_CONTEXT: Final = "Sample.Periodic"
_SOC: Final = "SoC"
_BEGIN: Final = "Transaction.Begin"


@dataclass(frozen=True, slots=True)
class Context:
    """Who sent the message and when it arrived."""

    charger_id: str
    version: str  # "ocpp1.6" | "ocpp2.0.1"
    received_at: datetime  # UTC-aware; the time of records whose message carries none
    station_id: str | None = None
    hash_id_tags: bool = True  # ChargingSession.id_tag = id_tag_for_store(tag), id_tag_hashed


@dataclass(frozen=True, slots=True)
class TxInfo:
    """What the central system knows of a transaction when one of its messages arrives."""

    transaction_id: str
    connector_id: int | None = None
    evse_id: int | None = None
    started_at: datetime | None = None
    meter_start_wh: float | None = None
    id_tag: str | None = None  # as sent (records_for hashes it per Context)


class Problem(NamedTuple):
    """Part of a message that could not be normalized (the shell stores a dead letter)."""

    reason: str  # "bad_meter_value"
    message: str  # names the JSON path


class Normalized(NamedTuple):
    """The records of one message and what was wrong in it."""

    records: list[msgspec.Struct]
    problems: list[Problem]


def id_tag_for_store(tag: str) -> str:
    """The stored form of an ID tag when tags are hashed: ``sha256:`` and 32 hex digits.

    Both versions define ID tokens as case-insensitive, so the hash is of the case-folded tag:
    ``abc123`` and ``ABC123`` are one tag."""
    digest = hashlib.sha256(tag.casefold().encode("utf-8", "surrogatepass")).hexdigest()
    return "sha256:" + digest[:32]


_Handler = Callable[[Context, Any, "msgspec.Struct | None", "TxInfo | None"], Normalized]


def records_for(
    ctx: Context,
    action: str,
    request: msgspec.Struct,
    response: msgspec.Struct | None = None,
    tx: TxInfo | None = None,
) -> Normalized:
    """The records of one CALL from a charger (see the module docstring).

    ``response``: the answer given (StartTransaction needs it: the transaction id; Boot and
    DataTransfer store its status). ``tx``: the transaction the message belongs to, as the
    central system knows it (meter start, start time, connector, ID tag).

    Raises ValueError for an unknown version or a StartTransaction with neither response nor
    tx (no transaction id), TypeError when ``request`` is not the version's Struct of ``action``.
    """
    table = _HANDLERS.get(ctx.version)
    if table is None:
        raise ValueError(f"unsupported OCPP version {ctx.version!r}")
    entry = table.get(action)
    if entry is None:
        return Normalized([], [])
    kind, handler = entry
    if type(request) is not kind:
        raise TypeError(f"{action} of {ctx.version} is a {kind.__name__}, not {type(request)!r}")
    return handler(ctx, request, response, tx)


# -- sampled values ---------------------------------------------------------------------------


class _Readings:
    """What a transaction's sampled values said: the energy register and the SoC."""

    __slots__ = ("energy", "energy_time", "soc", "soc_begin", "soc_time")

    def __init__(self) -> None:
        self.energy: float | None = None
        self.energy_time: datetime | None = None
        self.soc: float | None = None
        self.soc_time: datetime | None = None
        self.soc_begin: float | None = None

    def see(
        self,
        measurand: str,
        value: float,
        time: datetime,
        phase: str | None,
        location: str | None,
        context: str,
    ) -> None:
        """Take in one sampled value (already in SI units)."""
        if measurand == DEFAULT_MEASURAND:
            # The total (no phase) at the Outlet, the spec's default location; the latest one.
            if (
                phase is None
                and (location is None or location == "Outlet")
                and (self.energy_time is None or time >= self.energy_time)
            ):
                self.energy, self.energy_time = value, time
        elif measurand == _SOC:
            if self.soc_time is None or time >= self.soc_time:
                self.soc, self.soc_time = value, time
            if context == _BEGIN and self.soc_begin is None:
                self.soc_begin = value


def _utc(time: datetime) -> datetime:
    return time if time.tzinfo is UTC else time.astimezone(UTC)


def _iso(time: datetime) -> str:
    text: str = msgspec.to_builtins(time)
    return text


_Sampled16 = Sequence[v16.SampledValue | v16.StopTransactionSampledValue]


_FLOATS: Final = msgspec.json.Decoder(list[float])


def _numbers(samples: _Sampled16) -> list[float] | None:
    """The values as numbers, parsed in one msgspec call (float() on each costs twice as much);
    None when any of them is not a JSON number (signed data, garbage, inf, nan)."""
    texts = [sampled.value for sampled in samples]
    try:
        numbers = _FLOATS.decode(f"[{','.join(texts)}]")
    except msgspec.DecodeError:
        return None
    # A value with a comma in it ("1,2") would add a number; the count tells.
    return numbers if len(numbers) == len(texts) else None


def _samples16(
    ctx: Context,
    meter_values: Sequence[v16.MeterValue | v16.TransactionData],
    connector_id: int,
    transaction_id: str | None,
    path: str,
    records: list[msgspec.Struct],
    problems: list[Problem],
    readings: _Readings | None,
) -> None:
    """MeterValue rows of OCPP 1.6 meterValue / transactionData (``path``: "$.meterValue")."""
    charger_id, protocol = ctx.charger_id, ctx.version
    station_id, received_at = ctx.station_id, ctx.received_at
    measurand: str
    phase: str | None
    location: str | None
    context: str
    for i, meter_value in enumerate(meter_values):
        time = meter_value.timestamp
        if time.tzinfo is not UTC:
            time = time.astimezone(UTC)
        # (cast: mypy joins list[SampledValue] | list[StopTransactionSampledValue] to a base)
        samples = cast(_Sampled16, meter_value.sampledValue)
        numbers = _numbers(samples)
        for j, sampled in enumerate(samples):
            # UNSET is falsy, and no enum value is an empty string.
            measurand = sampled.measurand or DEFAULT_MEASURAND
            phase = sampled.phase or None
            location = sampled.location or None
            context = sampled.context or DEFAULT_CONTEXT
            text = sampled.value
            if sampled.format == "SignedData":
                detail: dict[str, Any] = {
                    "connector_id": connector_id,
                    "measurand": measurand,
                    "timestamp": _iso(time),
                    "context": context,
                    "signed_data": text,
                }
                if transaction_id is not None:
                    detail["transaction_id"] = transaction_id
                if phase is not None:
                    detail["phase"] = phase
                if location is not None:
                    detail["location"] = location
                if sampled.unit is not UNSET:
                    detail["unit"] = sampled.unit
                key = f"{connector_id}:{measurand}:{phase or ''}:{location or ''}:{context}"
                records.append(_event(ctx, "signed_meter_value", time, key, detail))
                continue
            if numbers is not None:
                number: float | None = numbers[j]
            else:
                try:
                    number = float(text)
                except ValueError:
                    number = None
                if number is not None and number - number != 0.0:  # inf, nan
                    number = None
            if number is None:
                problems.append(
                    Problem(
                        "bad_meter_value",
                        f"meter value {text[:40]!r} is not a number"
                        f" at {path}[{i}].sampledValue[{j}].value",
                    )
                )
                continue
            unit = default_unit(measurand) if sampled.unit is UNSET else sampled.unit
            si = SI_UNITS.get(unit)
            if si is None:
                value, si = to_si(number, unit)
            else:
                value = number
            records.append(
                MeterValue(
                    charger_id=charger_id,
                    time=time,
                    connector_id=connector_id,
                    measurand=measurand,
                    value=value,
                    unit=si,
                    protocol=protocol,
                    transaction_id=transaction_id,
                    phase=phase,
                    location=location,
                    context=context,
                    station_id=station_id,
                    received_at=received_at,
                )
            )
            if readings is not None:
                readings.see(measurand, value, time, phase, location, context)


def _samples201(
    ctx: Context,
    meter_values: Sequence[v201.MeterValueType],
    connector_id: int,
    evse_id: int | None,
    transaction_id: str | None,
    records: list[msgspec.Struct],
    readings: _Readings | None,
) -> None:
    """MeterValue rows of OCPP 2.0.1 meterValue (MeterValues, TransactionEvent)."""
    charger_id, protocol = ctx.charger_id, ctx.version
    station_id, received_at = ctx.station_id, ctx.received_at
    measurand: str
    phase: str | None
    location: str | None
    context: str
    for meter_value in meter_values:
        time = meter_value.timestamp
        if time.tzinfo is not UTC:
            time = time.astimezone(UTC)
        for sampled in meter_value.sampledValue:
            # UNSET is falsy, and no enum value is an empty string.
            measurand = sampled.measurand or DEFAULT_MEASURAND
            phase = sampled.phase or None
            location = sampled.location or None
            context = sampled.context or DEFAULT_CONTEXT
            measure = sampled.unitOfMeasure
            if measure is UNSET:
                unit = default_unit(measurand)
                multiplier = 0
            else:
                unit = default_unit(measurand) if measure.unit is UNSET else measure.unit
                multiplier = 0 if measure.multiplier is UNSET else measure.multiplier
            si = SI_UNITS.get(unit) if multiplier == 0 else None
            if si is None:
                value, si = to_si(sampled.value, unit, multiplier)
            else:
                value = sampled.value
            records.append(
                MeterValue(
                    charger_id=charger_id,
                    time=time,
                    connector_id=connector_id,
                    measurand=measurand,
                    value=value,
                    unit=si,
                    protocol=protocol,
                    evse_id=evse_id,
                    transaction_id=transaction_id,
                    phase=phase,
                    location=location,
                    context=context,
                    station_id=station_id,
                    received_at=received_at,
                )
            )
            if readings is not None:
                readings.see(measurand, value, time, phase, location, context)
            signed = sampled.signedMeterValue
            if signed is not UNSET:
                detail: dict[str, Any] = {
                    "evse_id": evse_id,
                    "connector_id": connector_id,
                    "measurand": measurand,
                    "timestamp": _iso(time),
                    "context": context,
                    "value": value,
                    "unit": si,
                    "signed_data": signed.signedMeterData,
                    "signing_method": signed.signingMethod,
                    "encoding_method": signed.encodingMethod,
                    "public_key": signed.publicKey,
                }
                if transaction_id is not None:
                    detail["transaction_id"] = transaction_id
                if phase is not None:
                    detail["phase"] = phase
                if location is not None:
                    detail["location"] = location
                key = (
                    f"{evse_id}/{connector_id}:{measurand}:{phase or ''}:{location or ''}:{context}"
                )
                records.append(_event(ctx, "signed_meter_value", time, key, detail))


# -- status and meter values ------------------------------------------------------------------


def _status16(
    ctx: Context, req: v16.StatusNotificationRequest, _r: msgspec.Struct | None, _t: TxInfo | None
) -> Normalized:
    return Normalized(
        [
            ChargerStatus(
                charger_id=ctx.charger_id,
                time=ctx.received_at if req.timestamp is UNSET else _utc(req.timestamp),
                connector_id=req.connectorId,
                status=req.status,
                protocol=ctx.version,
                error_code=req.errorCode,
                vendor_error_code=None if req.vendorErrorCode is UNSET else req.vendorErrorCode,
                vendor_id=None if req.vendorId is UNSET else req.vendorId,
                info=None if req.info is UNSET else req.info,
                station_id=ctx.station_id,
                received_at=ctx.received_at,
            )
        ],
        [],
    )


def _status201(
    ctx: Context, req: v201.StatusNotificationRequest, _r: msgspec.Struct | None, _t: TxInfo | None
) -> Normalized:
    return Normalized(
        [
            ChargerStatus(
                charger_id=ctx.charger_id,
                time=_utc(req.timestamp),
                connector_id=req.connectorId,
                status=req.connectorStatus,
                protocol=ctx.version,
                evse_id=req.evseId,
                station_id=ctx.station_id,
                received_at=ctx.received_at,
            )
        ],
        [],
    )


def _meter_values16(
    ctx: Context, req: v16.MeterValuesRequest, _r: msgspec.Struct | None, tx: TxInfo | None
) -> Normalized:
    records: list[msgspec.Struct] = []
    problems: list[Problem] = []
    if req.transactionId is not UNSET:
        transaction_id: str | None = str(req.transactionId)
    else:
        transaction_id = None if tx is None else tx.transaction_id
    _samples16(
        ctx,
        req.meterValue,
        req.connectorId,
        transaction_id,
        "$.meterValue",
        records,
        problems,
        None,
    )
    return Normalized(records, problems)


def _meter_values201(
    ctx: Context, req: v201.MeterValuesRequest, _r: msgspec.Struct | None, tx: TxInfo | None
) -> Normalized:
    records: list[msgspec.Struct] = []
    transaction_id = None if tx is None else tx.transaction_id
    _samples201(ctx, req.meterValue, 0, req.evseId, transaction_id, records, None)
    return Normalized(records, [])


# -- transactions -----------------------------------------------------------------------------


def _id_tag(ctx: Context, tag: str | None) -> tuple[str | None, bool]:
    """(the tag to store, whether it is hashed); an empty tag (2.0.1 NoAuthorization) is None."""
    if not tag:
        return None, False
    if ctx.hash_id_tags:
        return id_tag_for_store(tag), True
    return tag, False


def _start16(
    ctx: Context,
    req: v16.StartTransactionRequest,
    response: msgspec.Struct | None,
    tx: TxInfo | None,
) -> Normalized:
    extra: dict[str, Any] = {}
    if isinstance(response, v16.StartTransactionResponse):
        transaction_id = str(response.transactionId)
        extra["id_tag_status"] = response.idTagInfo.status
    elif tx is not None:
        transaction_id = tx.transaction_id
    else:
        raise ValueError("StartTransaction needs the response (or tx) for its transaction id")
    if req.reservationId is not UNSET:
        extra["reservation_id"] = req.reservationId
    time = _utc(req.timestamp)
    id_tag, hashed = _id_tag(ctx, req.idTag)
    session = ChargingSession(
        charger_id=ctx.charger_id,
        transaction_id=transaction_id,
        time=time,
        event="start",
        protocol=ctx.version,
        connector_id=req.connectorId,
        id_tag=id_tag,
        id_tag_hashed=hashed,
        started_at=time,
        meter_start_wh=float(req.meterStart),
        station_id=ctx.station_id,
        extra=extra or None,
        received_at=ctx.received_at,
    )
    return Normalized([session], [])


def _stop16(
    ctx: Context,
    req: v16.StopTransactionRequest,
    response: msgspec.Struct | None,
    tx: TxInfo | None,
) -> Normalized:
    transaction_id = str(req.transactionId)
    connector_id = None if tx is None else tx.connector_id
    rows: list[msgspec.Struct] = []
    problems: list[Problem] = []
    readings = _Readings()
    if req.transactionData is not UNSET:
        _samples16(
            ctx,
            req.transactionData,
            0 if connector_id is None else connector_id,
            transaction_id,
            "$.transactionData",
            rows,
            problems,
            readings,
        )
    meter_stop = float(req.meterStop)
    meter_start = None if tx is None else tx.meter_start_wh
    tag = req.idTag if req.idTag is not UNSET else (None if tx is None else tx.id_tag)
    id_tag, hashed = _id_tag(ctx, tag)
    extra: dict[str, Any] = {}
    if isinstance(response, v16.StopTransactionResponse) and response.idTagInfo is not UNSET:
        extra["id_tag_status"] = response.idTagInfo.status
    time = _utc(req.timestamp)
    session = ChargingSession(
        charger_id=ctx.charger_id,
        transaction_id=transaction_id,
        time=time,
        event="stop",
        protocol=ctx.version,
        connector_id=connector_id,
        id_tag=id_tag,
        id_tag_hashed=hashed,
        started_at=None if tx is None or tx.started_at is None else _utc(tx.started_at),
        stopped_at=time,
        meter_start_wh=meter_start,
        meter_stop_wh=meter_stop,
        energy_wh=None if meter_start is None else meter_stop - meter_start,
        soc_start_pct=readings.soc_begin,
        soc_pct=readings.soc,
        stop_reason="Local" if req.reason is UNSET else req.reason,  # the 1.6 default
        station_id=ctx.station_id,
        extra=extra or None,
        received_at=ctx.received_at,
    )
    records: list[msgspec.Struct] = [session]
    records.extend(rows)
    return Normalized(records, problems)


_TX_EVENTS: Final = {"Started": "start", "Updated": "update", "Ended": "stop"}


def _transaction_event(
    ctx: Context,
    req: v201.TransactionEventRequest,
    response: msgspec.Struct | None,
    tx: TxInfo | None,
) -> Normalized:
    info = req.transactionInfo
    transaction_id = info.transactionId
    evse = req.evse
    connector_id: int | None
    if evse is not UNSET:
        evse_id: int | None = evse.id
        if evse.connectorId is not UNSET:
            connector_id = evse.connectorId
        else:
            connector_id = None if tx is None else tx.connector_id
    else:
        evse_id = None if tx is None else tx.evse_id
        connector_id = None if tx is None else tx.connector_id
    rows: list[msgspec.Struct] = []
    readings = _Readings()
    if req.meterValue is not UNSET:
        _samples201(
            ctx,
            req.meterValue,
            0 if connector_id is None else connector_id,
            evse_id,
            transaction_id,
            rows,
            readings,
        )
    event = _TX_EVENTS[req.eventType]
    started = event == "start"
    ended = event == "stop"
    time = _utc(req.timestamp)
    register = readings.energy
    meter_start = None if tx is None else tx.meter_start_wh
    if meter_start is None and started:
        meter_start = register
    extra: dict[str, Any] = {"seq_no": req.seqNo, "trigger_reason": req.triggerReason}
    if info.chargingState is not UNSET:
        extra["charging_state"] = info.chargingState
    if info.timeSpentCharging is not UNSET:
        extra["time_spent_charging_s"] = info.timeSpentCharging
    if info.remoteStartId is not UNSET:
        extra["remote_start_id"] = info.remoteStartId
    if req.offline is not UNSET:
        extra["offline"] = req.offline
    if req.numberOfPhasesUsed is not UNSET:
        extra["number_of_phases"] = req.numberOfPhasesUsed
    if req.cableMaxCurrent is not UNSET:
        extra["cable_max_current_a"] = req.cableMaxCurrent
    if req.reservationId is not UNSET:
        extra["reservation_id"] = req.reservationId
    token = req.idToken
    if token is not UNSET:
        tag: str | None = token.idToken
        extra["id_token_type"] = token.type
    else:
        tag = None if tx is None else tx.id_tag
    if isinstance(response, v201.TransactionEventResponse) and response.idTokenInfo is not UNSET:
        extra["id_token_status"] = response.idTokenInfo.status
    id_tag, hashed = _id_tag(ctx, tag)
    if info.stoppedReason is not UNSET:
        stop_reason: str | None = info.stoppedReason
    else:
        stop_reason = "Local" if ended else None  # may only be left out when Local (2.0.1)
    started_at = None if tx is None or tx.started_at is None else _utc(tx.started_at)
    if started_at is None and started:
        started_at = time
    soc_start = readings.soc_begin
    if soc_start is None and started:
        soc_start = readings.soc
    session = ChargingSession(
        charger_id=ctx.charger_id,
        transaction_id=transaction_id,
        time=time,
        event=event,
        protocol=ctx.version,
        connector_id=connector_id,
        evse_id=evse_id,
        id_tag=id_tag,
        id_tag_hashed=hashed,
        started_at=started_at,
        stopped_at=time if ended else None,
        meter_start_wh=meter_start,
        meter_stop_wh=register if ended else None,
        energy_wh=None if register is None or meter_start is None else register - meter_start,
        soc_start_pct=soc_start,
        soc_pct=readings.soc,
        stop_reason=stop_reason,
        station_id=ctx.station_id,
        extra=extra,
        received_at=ctx.received_at,
    )
    records: list[msgspec.Struct] = [session]
    records.extend(rows)
    return Normalized(records, [])


# -- charger events ---------------------------------------------------------------------------


def _event(
    ctx: Context, event: str, time: datetime, key: str, detail: dict[str, Any] | None
) -> ChargerEvent:
    return ChargerEvent(
        charger_id=ctx.charger_id,
        time=time,
        event=event,
        protocol=ctx.version,
        key=key,
        detail=detail,
        station_id=ctx.station_id,
        received_at=ctx.received_at,
    )


def _detail(request: msgspec.Struct) -> dict[str, Any]:
    detail: dict[str, Any] = msgspec.to_builtins(request)
    return detail


def _one(ctx: Context, event: str, time: datetime, key: str, detail: dict[str, Any]) -> Normalized:
    return Normalized([_event(ctx, event, time, key, detail)], [])


def _boot(
    ctx: Context,
    req: v16.BootNotificationRequest | v201.BootNotificationRequest,
    response: msgspec.Struct | None,
    _t: TxInfo | None,
) -> Normalized:
    detail = _detail(req)
    if isinstance(response, v16.BootNotificationResponse | v201.BootNotificationResponse):
        detail["status"] = response.status
        detail["interval"] = response.interval
    # A boot has no time of its own; two boots never arrive in one microsecond.
    return _one(ctx, "boot", ctx.received_at, "", detail)


def _security_event(
    ctx: Context,
    req: v16.SecurityEventNotificationRequest | v201.SecurityEventNotificationRequest,
    _r: msgspec.Struct | None,
    _t: TxInfo | None,
) -> Normalized:
    # Two events of one type at one timestamp differ by techInfo at most.
    key = req.type if req.techInfo is UNSET else f"{req.type}:{req.techInfo}"
    return _one(ctx, "security_event", _utc(req.timestamp), key, _detail(req))


def _status_key(status: str, request_id: int | msgspec.UnsetType) -> str:
    return status if request_id is UNSET else f"{request_id}:{status}"


def _firmware_status(
    ctx: Context,
    req: v16.FirmwareStatusNotificationRequest
    | v16.SignedFirmwareStatusNotificationRequest
    | v201.FirmwareStatusNotificationRequest,
    _r: msgspec.Struct | None,
    _t: TxInfo | None,
) -> Normalized:
    request_id = UNSET if isinstance(req, v16.FirmwareStatusNotificationRequest) else req.requestId
    key = _status_key(req.status, request_id)
    return _one(ctx, "firmware_status", ctx.received_at, key, _detail(req))


def _diagnostics_status(
    ctx: Context,
    req: v16.DiagnosticsStatusNotificationRequest,
    _r: msgspec.Struct | None,
    _t: TxInfo | None,
) -> Normalized:
    return _one(ctx, "diagnostics_status", ctx.received_at, req.status, _detail(req))


def _log_status(
    ctx: Context,
    req: v16.LogStatusNotificationRequest | v201.LogStatusNotificationRequest,
    _r: msgspec.Struct | None,
    _t: TxInfo | None,
) -> Normalized:
    key = _status_key(req.status, req.requestId)
    return _one(ctx, "log_status", ctx.received_at, key, _detail(req))


def _notify_event(
    ctx: Context, req: v201.NotifyEventRequest, _r: msgspec.Struct | None, _t: TxInfo | None
) -> Normalized:
    ids = [str(item.eventId) for item in req.eventData]
    listed = ",".join(ids) if len(ids) <= 8 else f"{ids[0]}..{ids[-1]}#{len(ids)}"
    return _one(ctx, "notify_event", _utc(req.generatedAt), f"{req.seqNo}:{listed}", _detail(req))


def _notify_report(
    ctx: Context, req: v201.NotifyReportRequest, _r: msgspec.Struct | None, _t: TxInfo | None
) -> Normalized:
    key = f"{req.requestId}:{req.seqNo}"
    return _one(ctx, "notify_report", _utc(req.generatedAt), key, _detail(req))


def _data_transfer(
    ctx: Context,
    req: v16.DataTransferRequest | v201.DataTransferRequest,
    response: msgspec.Struct | None,
    _t: TxInfo | None,
) -> Normalized:
    detail = _detail(req)
    if isinstance(response, v16.DataTransferResponse | v201.DataTransferResponse):
        detail["status"] = response.status
        if response.data is not UNSET:
            detail["response_data"] = msgspec.to_builtins(response.data)
    key = req.vendorId if req.messageId is UNSET else f"{req.vendorId}:{req.messageId}"
    return _one(ctx, "data_transfer", ctx.received_at, key, detail)


def _table(version: str, handlers: dict[str, _Handler]) -> dict[str, tuple[type, _Handler]]:
    return {action: (ACTIONS[version][action][0], handler) for action, handler in handlers.items()}


_HANDLERS: Final[dict[str, dict[str, tuple[type, _Handler]]]] = {
    "ocpp1.6": _table(
        "ocpp1.6",
        {
            "StatusNotification": _status16,
            "MeterValues": _meter_values16,
            "StartTransaction": _start16,
            "StopTransaction": _stop16,
            "BootNotification": _boot,
            "SecurityEventNotification": _security_event,
            "FirmwareStatusNotification": _firmware_status,
            "SignedFirmwareStatusNotification": _firmware_status,
            "DiagnosticsStatusNotification": _diagnostics_status,
            "LogStatusNotification": _log_status,
            "DataTransfer": _data_transfer,
        },
    ),
    "ocpp2.0.1": _table(
        "ocpp2.0.1",
        {
            "StatusNotification": _status201,
            "MeterValues": _meter_values201,
            "TransactionEvent": _transaction_event,
            "BootNotification": _boot,
            "SecurityEventNotification": _security_event,
            "FirmwareStatusNotification": _firmware_status,
            "LogStatusNotification": _log_status,
            "NotifyEvent": _notify_event,
            "NotifyReport": _notify_report,
            "DataTransfer": _data_transfer,
        },
    ),
}
