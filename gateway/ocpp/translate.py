"""OCPP 1.6 <-> 2.0.1 translation for the bridge to an operator's upstream CSMS (pure, no I/O).

A translation is a :class:`Plan`: the CALLs to send to the other side (``steps``, usually one,
none when the answer is known here) and ``back``, which turns their responses into the response
the original sender expects. :func:`to_upstream` plans a charger's CALL for the upstream CSMS,
:func:`to_charger` an upstream CALL for the charger. Both raise :class:`Untranslatable` when the
other version has no counterpart; the bridge then lets the central system answer the charger
itself, or answers the upstream NotSupported.

What cannot be carried in the message itself lives in a :class:`TxState` per charger: the
transaction id maps, the 2.0.1 ``seqNo`` counter, pending remote starts, the charging state per
EVSE. Assumptions (docs/ocpp.md, "Bridge"): one connector per EVSE (1.6 connector N <-> 2.0.1 EVSE
N, connector 1); 1.6 idTags become ``ISO14443`` tokens, except a tag the upstream remote-started,
which keeps the type the upstream gave; a 1.6 transaction id sent to a 2.0.1 upstream is the
decimal string of the integer id, so the mapping also holds for transactions begun before the
bridge knew them.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple, get_args

import msgspec
from msgspec import UNSET

from gateway.ocpp import v16, v201

__all__ = [
    "CONFIG_KEYS",
    "TO_CHARGER",
    "V16",
    "V201",
    "ConfigKey",
    "Plan",
    "TxState",
    "Untranslatable",
    "supported_downstream",
    "to_charger",
    "to_upstream",
]

V16: Final = "ocpp1.6"
V201: Final = "ocpp2.0.1"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


TO_CHARGER: Final[dict[str, frozenset[str]]] = {
    V16: _names(
        "CancelReservation ChangeAvailability ChangeConfiguration ClearCache ClearChargingProfile "
        "DataTransfer GetCompositeSchedule GetConfiguration GetDiagnostics GetLocalListVersion "
        "RemoteStartTransaction RemoteStopTransaction ReserveNow Reset SendLocalList "
        "SetChargingProfile TriggerMessage UnlockConnector UpdateFirmware CertificateSigned "
        "DeleteCertificate ExtendedTriggerMessage GetInstalledCertificateIds GetLog "
        "InstallCertificate SignedUpdateFirmware"
    ),
    V201: _names(
        "CancelReservation CertificateSigned ChangeAvailability ClearCache ClearChargingProfile "
        "ClearDisplayMessage ClearVariableMonitoring CostUpdated CustomerInformation DataTransfer "
        "DeleteCertificate GetBaseReport GetChargingProfiles GetCompositeSchedule "
        "GetDisplayMessages GetInstalledCertificateIds GetLocalListVersion GetLog "
        "GetMonitoringReport GetReport GetTransactionStatus GetVariables InstallCertificate "
        "PublishFirmware RequestStartTransaction RequestStopTransaction ReserveNow Reset "
        "SendLocalList SetChargingProfile SetDisplayMessage SetMonitoringBase SetMonitoringLevel "
        "SetNetworkProfile SetVariableMonitoring SetVariables TriggerMessage UnlockConnector "
        "UnpublishFirmware UpdateFirmware"
    ),
}
"""The actions a CSMS sends to a charge point, per version."""

# Actions whose payloads have the same fields in both versions: relayed by re-validating the
# payload against the other version's schema (extra 2.0.1 fields such as statusInfo dropped).
_SAME_SHAPE_UP: Final = frozenset(
    {
        "SecurityEventNotification",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "SignCertificate",
    }
)
_SAME_SHAPE_DOWN: Final = frozenset(
    {
        "CancelReservation",
        "ClearCache",
        "DeleteCertificate",
        "InstallCertificate",
        "CertificateSigned",
        "GetLog",
    }
)

_ID_TAG_MAX: Final = 20  # 1.6 idTag length; 2.0.1 idToken allows 36
_MAX_TX: Final = 256  # transactions remembered per charger
_MAX_REMOTE_STARTS: Final = 16
_DEFAULT_TOKEN_TYPE: Final = "ISO14443"
_ENERGY: Final = "Energy.Active.Import.Register"


class Untranslatable(Exception):
    """The message has no counterpart in the other version (the reason says why)."""


Back = Callable[[Sequence[Any]], Any]


class Plan(NamedTuple):
    """CALLs to send (``(action, request Struct)``, in order) and how their responses (same
    order) become the answer to the original CALL."""

    steps: tuple[tuple[str, Any], ...]
    back: Back


def _local(answer: Any) -> Plan:
    """A plan answered here, without sending anything."""
    return Plan((), lambda _responses: answer)


def _one(action: str, request: Any, back: Callable[[Any], Any]) -> Plan:
    return Plan(((action, request),), lambda responses: back(responses[0]))


# -- per-charger state --------------------------------------------------------------------------


@dataclass(slots=True)
class _Tx:
    """A transaction as the bridge knows it."""

    evse: int
    str_id: str
    int_id: int | None = None  # None: 2.0.1 transaction not (yet) started on the 1.6 upstream
    id_tag: str | None = None
    meter_start_wh: int = 0
    last_wh: int | None = None


@dataclass(slots=True)
class _RemoteStart:
    id_tag: str
    evse: int | None
    remote_start_id: int
    token_type: str


@dataclass(slots=True)
class TxState:
    """What translation remembers about one charger (bounded). Kept by the bridge per charge
    point identity, so it outlives a reconnection of the charger.

    ``int_ids``: the integer transaction ids given to a 1.6 charger for a 2.0.1 upstream, by
    default the current UNIX second, incremented when already used: above any id the central
    system's own counter gives, unique across reconnections."""

    int_ids: Callable[[datetime], int] = lambda now: int(now.timestamp())
    seq_no: int = 0
    remote_start_id: int = 0
    last_int_id: int = 0
    txs: OrderedDict[str, _Tx] = field(default_factory=OrderedDict)  # by 2.0.1 transaction id
    by_int: dict[int, str] = field(default_factory=dict)
    starts: OrderedDict[tuple[Any, ...], int] = field(default_factory=OrderedDict)
    remote_starts: list[_RemoteStart] = field(default_factory=list)
    charging_state: dict[int, str] = field(default_factory=dict)  # evse -> 2.0.1 chargingState
    finished: set[int] = field(default_factory=set)  # evses whose transaction just ended

    def next_seq(self) -> int:
        """The seqNo of the next TransactionEvent this bridge generates."""
        seq = self.seq_no
        self.seq_no += 1
        return seq

    def next_remote_start_id(self) -> int:
        self.remote_start_id += 1
        return self.remote_start_id

    def allocate_int(self, now: datetime) -> int:
        tx_id = max(self.int_ids(now), self.last_int_id + 1)
        self.last_int_id = tx_id
        return tx_id

    def remember(self, tx: _Tx) -> None:
        self.txs[tx.str_id] = tx
        self.txs.move_to_end(tx.str_id)
        if tx.int_id is not None:
            self.by_int[tx.int_id] = tx.str_id
        while len(self.txs) > _MAX_TX:
            _, old = self.txs.popitem(last=False)
            if old.int_id is not None and self.by_int.get(old.int_id) == old.str_id:
                del self.by_int[old.int_id]

    def tx_by_int(self, int_id: int) -> _Tx | None:
        str_id = self.by_int.get(int_id)
        return self.txs.get(str_id) if str_id is not None else None

    def forget(self, tx: _Tx) -> None:
        self.txs.pop(tx.str_id, None)
        if tx.int_id is not None and self.by_int.get(tx.int_id) == tx.str_id:
            del self.by_int[tx.int_id]

    def add_remote_start(self, rs: _RemoteStart) -> None:
        self.remote_starts.append(rs)
        del self.remote_starts[:-_MAX_REMOTE_STARTS]

    def take_remote_start(self, id_tag: str, evse: int) -> _RemoteStart | None:
        for i, rs in enumerate(self.remote_starts):
            if rs.id_tag == id_tag and rs.evse in (None, evse):
                return self.remote_starts.pop(i)
        return None


# -- shared pieces -----------------------------------------------------------------------------


def _reshape(struct: Any, target: type[Any]) -> Any:
    """``struct`` as ``target`` when their fields agree (fields ``target`` lacks are dropped);
    Untranslatable when the values do not fit its schema."""
    data = msgspec.to_builtins(struct, builtin_types=(datetime,))
    names = set(target.__struct_fields__)
    try:
        return msgspec.convert({k: v for k, v in data.items() if k in names}, target)
    except msgspec.ValidationError as exc:
        raise Untranslatable(f"{type(struct).__name__}: {exc}") from None


def _num(value: float) -> str:
    """A 2.0.1 number as a 1.6 sampled value string."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


_UNIT_TO_201: Final = {"Celcius": "Celsius", "Hertz": "Hz"}
_UNIT_TO_16: Final = {"Hz": "Hertz"}
_UNITS_16: Final = frozenset(get_args(v16.SampledValueUnit))
_MEASURANDS_201: Final = frozenset(get_args(v201.MeasurandEnumType))
_MEASURANDS_16: Final = frozenset(get_args(v16.SampledValueMeasurand))


def meter_values_to_201(values: Sequence[v16.MeterValue | v16.TransactionData]) -> list[Any]:
    """1.6 meter values as 2.0.1 ``MeterValueType``. Samples that 2.0.1 cannot carry are left
    out: a value that is not a number (signed data), measurands RPM and Temperature."""
    out: list[v201.MeterValueType] = []
    for mv in values:
        samples: list[v201.SampledValueType] = []
        for sv in mv.sampledValue:
            try:
                value = float(sv.value)
            except ValueError:
                continue
            if not math.isfinite(value) or (
                sv.measurand is not UNSET and sv.measurand not in _MEASURANDS_201
            ):
                continue
            unit = (
                v201.UnitOfMeasureType(unit=_UNIT_TO_201.get(sv.unit, sv.unit))
                if sv.unit is not UNSET
                else UNSET
            )
            samples.append(
                v201.SampledValueType(
                    value=value,
                    context=sv.context,
                    measurand=sv.measurand,  # type: ignore[arg-type]  # RPM/Temperature left out above
                    phase=sv.phase,
                    location=sv.location,
                    unitOfMeasure=unit,
                )
            )
        if samples:
            out.append(v201.MeterValueType(sampledValue=samples, timestamp=mv.timestamp))
    return out


def _sample_to_16(sv: v201.SampledValueType, stop: bool) -> Any:
    if sv.measurand is not UNSET and sv.measurand not in _MEASURANDS_16:
        return None
    value = sv.value
    unit: Any = UNSET
    if sv.unitOfMeasure is not UNSET:
        if sv.unitOfMeasure.multiplier is not UNSET and sv.unitOfMeasure.multiplier:
            value = value * 10.0**sv.unitOfMeasure.multiplier
        if sv.unitOfMeasure.unit is not UNSET:
            unit = _UNIT_TO_16.get(sv.unitOfMeasure.unit, sv.unitOfMeasure.unit)
            if unit not in _UNITS_16 or (stop and unit == "Hertz"):
                return None
    cls = v16.StopTransactionSampledValue if stop else v16.SampledValue
    return cls(
        value=_num(value),
        context=sv.context,
        measurand=sv.measurand,  # type: ignore[arg-type]  # 2.0.1-only measurands left out above
        phase=sv.phase,
        location=sv.location,
        unit=unit,
    )


def meter_values_to_16(values: Sequence[v201.MeterValueType], stop: bool = False) -> list[Any]:
    """2.0.1 meter values as 1.6 ``MeterValue`` (``TransactionData`` when ``stop``). The
    multiplier is applied to the value; samples 1.6 cannot carry are left out (2.0.1-only
    measurands and units, signed data keeps only its value)."""
    out: list[Any] = []
    for mv in values:
        samples = [s for s in (_sample_to_16(sv, stop) for sv in mv.sampledValue) if s is not None]
        if samples:
            cls = v16.TransactionData if stop else v16.MeterValue
            out.append(cls(timestamp=mv.timestamp, sampledValue=samples))
    return out


def energy_wh(values: Sequence[v201.MeterValueType] | Any) -> int | None:
    """The Energy.Active.Import.Register reading (Wh) of 2.0.1 meter values: the last one
    without a phase, else the last one; None when there is none."""
    if values is UNSET:
        return None
    best: float | None = None
    for mv in values:
        for sv in mv.sampledValue:
            if sv.measurand not in (UNSET, _ENERGY):
                continue
            value = sv.value
            uom = sv.unitOfMeasure
            if uom is not UNSET:
                if uom.multiplier is not UNSET:
                    value *= 10.0**uom.multiplier
                if uom.unit == "kWh":
                    value *= 1000.0
                elif uom.unit not in (UNSET, "Wh"):
                    continue
            if sv.phase is UNSET or best is None:
                best = value
    return None if best is None else round(best)


def _id_tag(token: v201.IdTokenType) -> str:
    if len(token.idToken) > _ID_TAG_MAX:
        raise Untranslatable(f"idToken longer than {_ID_TAG_MAX} characters")
    return token.idToken


_AUTH_TO_16: Final = {"Accepted", "Blocked", "ConcurrentTx", "Expired", "Invalid"}


def id_tag_info(info: v201.IdTokenInfoType) -> v16.IdTagInfo:
    """2.0.1 idTokenInfo as 1.6 idTagInfo: statuses 1.6 lacks (NoCredit, NotAtThisTime, ...)
    become Invalid; the group token becomes the parent idTag when it fits."""
    parent: Any = UNSET
    if info.groupIdToken is not UNSET and len(info.groupIdToken.idToken) <= _ID_TAG_MAX:
        parent = info.groupIdToken.idToken
    status = info.status if info.status in _AUTH_TO_16 else "Invalid"
    return v16.IdTagInfo(
        expiryDate=info.cacheExpiryDateTime,
        parentIdTag=parent,
        status=status,  # type: ignore[arg-type]
    )


def id_token_info(info: v16.IdTagInfo) -> v201.IdTokenInfoType:
    """1.6 idTagInfo as 2.0.1 idTokenInfo (parentIdTag: a ``Central`` group token)."""
    group: Any = UNSET
    if info.parentIdTag is not UNSET:
        group = v201.IdTokenType(idToken=info.parentIdTag, type="Central")
    return v201.IdTokenInfoType(
        status=info.status, cacheExpiryDateTime=info.expiryDate, groupIdToken=group
    )


def _token(id_tag: str, token_type: str = _DEFAULT_TOKEN_TYPE) -> v201.IdTokenType:
    return v201.IdTokenType(idToken=id_tag, type=token_type)  # type: ignore[arg-type]


def _data_to_16(data: Any) -> Any:
    if data is UNSET or isinstance(data, str):
        return data
    return json.dumps(data, separators=(",", ":"))


# -- charger 1.6 -> upstream 2.0.1 --------------------------------------------------------------


def _boot_16_201(st: TxState, r: v16.BootNotificationRequest, now: datetime) -> Plan:
    modem: Any = UNSET
    if r.iccid is not UNSET or r.imsi is not UNSET:
        modem = v201.ModemType(iccid=r.iccid, imsi=r.imsi)
    serial = r.chargePointSerialNumber
    if serial is UNSET:
        serial = r.chargeBoxSerialNumber
    req = v201.BootNotificationRequest(
        chargingStation=v201.ChargingStationType(
            serialNumber=serial,
            model=r.chargePointModel,
            modem=modem,
            vendorName=r.chargePointVendor,
            firmwareVersion=r.firmwareVersion,
        ),
        reason="PowerUp",
    )

    def back(a: v201.BootNotificationResponse) -> v16.BootNotificationResponse:
        return v16.BootNotificationResponse(
            status=a.status, currentTime=a.currentTime, interval=a.interval
        )

    return _one("BootNotification", req, back)


def _heartbeat_to(version: str) -> Callable[[TxState, Any, datetime], Plan]:
    mod: Any = v201 if version == V201 else v16
    other: Any = v16 if version == V201 else v201

    def plan(st: TxState, r: Any, now: datetime) -> Plan:
        return _one(
            "Heartbeat",
            mod.HeartbeatRequest(),
            lambda a: other.HeartbeatResponse(currentTime=a.currentTime),
        )

    return plan


_STATUS_TO_201: Final = {
    "Available": "Available",
    "Preparing": "Occupied",
    "Charging": "Occupied",
    "SuspendedEVSE": "Occupied",
    "SuspendedEV": "Occupied",
    "Finishing": "Occupied",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}


def _status_16_201(st: TxState, r: v16.StatusNotificationRequest, now: datetime) -> Plan:
    if r.connectorId == 0:
        raise Untranslatable("StatusNotification of connector 0 (2.0.1 has no station status)")
    req = v201.StatusNotificationRequest(
        timestamp=now if r.timestamp is UNSET else r.timestamp,
        connectorStatus=_STATUS_TO_201[r.status],  # type: ignore[arg-type]
        evseId=r.connectorId,
        connectorId=1,
    )
    return _one("StatusNotification", req, lambda a: v16.StatusNotificationResponse())


def _authorize_16_201(st: TxState, r: v16.AuthorizeRequest, now: datetime) -> Plan:
    req = v201.AuthorizeRequest(idToken=_token(r.idTag))
    return _one(
        "Authorize",
        req,
        lambda a: v16.AuthorizeResponse(idTagInfo=id_tag_info(a.idTokenInfo)),
    )


def _accepted_16(a: v201.TransactionEventResponse) -> v16.IdTagInfo:
    if a.idTokenInfo is UNSET:
        return v16.IdTagInfo(status="Accepted")
    return id_tag_info(a.idTokenInfo)


def _start_16_201(st: TxState, r: v16.StartTransactionRequest, now: datetime) -> Plan:
    # A retried StartTransaction (offline queue) gets the same id again.
    key = (r.connectorId, r.idTag, r.meterStart, r.timestamp)
    int_id = st.starts.get(key)
    if int_id is None:
        int_id = st.allocate_int(now)
        st.starts[key] = int_id
        while len(st.starts) > _MAX_TX:
            st.starts.popitem(last=False)
    rs = st.take_remote_start(r.idTag, r.connectorId)
    tx = _Tx(r.connectorId, str(int_id), int_id, r.idTag, r.meterStart, r.meterStart)
    req = v201.TransactionEventRequest(
        eventType="Started",
        meterValue=[
            v201.MeterValueType(
                sampledValue=[
                    v201.SampledValueType(
                        value=float(r.meterStart),
                        context="Transaction.Begin",
                        measurand=_ENERGY,
                    )
                ],
                timestamp=r.timestamp,
            )
        ],
        timestamp=r.timestamp,
        triggerReason="RemoteStart" if rs else "Authorized",
        seqNo=st.next_seq(),
        reservationId=r.reservationId,
        transactionInfo=v201.TransactionType(
            transactionId=tx.str_id,
            remoteStartId=rs.remote_start_id if rs else UNSET,
        ),
        evse=v201.EVSEType(id=r.connectorId, connectorId=1),
        idToken=_token(r.idTag, rs.token_type if rs else _DEFAULT_TOKEN_TYPE),
    )

    def back(a: v201.TransactionEventResponse) -> v16.StartTransactionResponse:
        st.remember(tx)
        return v16.StartTransactionResponse(idTagInfo=_accepted_16(a), transactionId=int_id)

    return _one("TransactionEvent", req, back)


def _meter_values_16_201(st: TxState, r: v16.MeterValuesRequest, now: datetime) -> Plan:
    values = meter_values_to_201(r.meterValue)
    if not values:
        raise Untranslatable("no meter value 2.0.1 can carry")
    if r.transactionId is UNSET:
        req: Any = v201.MeterValuesRequest(evseId=r.connectorId, meterValue=values)
        return _one("MeterValues", req, lambda a: v16.MeterValuesResponse())
    req = v201.TransactionEventRequest(
        eventType="Updated",
        meterValue=values,
        timestamp=values[-1].timestamp,
        triggerReason="MeterValuePeriodic",
        seqNo=st.next_seq(),
        transactionInfo=v201.TransactionType(transactionId=str(r.transactionId)),
        evse=v201.EVSEType(id=r.connectorId, connectorId=1) if r.connectorId else UNSET,
    )
    return _one("TransactionEvent", req, lambda a: v16.MeterValuesResponse())


_STOP_TRIGGER_201: Final = {
    "EmergencyStop": "AbnormalCondition",
    "EVDisconnected": "EVCommunicationLost",
    "HardReset": "ResetCommand",
    "Local": "StopAuthorized",
    "Other": "AbnormalCondition",
    "PowerLoss": "AbnormalCondition",
    "Reboot": "ResetCommand",
    "Remote": "RemoteStop",
    "SoftReset": "ResetCommand",
    "UnlockCommand": "UnlockCommand",
    "DeAuthorized": "Deauthorized",
}
_STOP_REASON_201: Final = {
    "EmergencyStop": "EmergencyStop",
    "EVDisconnected": "EVDisconnected",
    "HardReset": "ImmediateReset",
    "Local": "Local",
    "Other": "Other",
    "PowerLoss": "PowerLoss",
    "Reboot": "Reboot",
    "Remote": "Remote",
    "SoftReset": "Reboot",
    "UnlockCommand": "Other",
    "DeAuthorized": "DeAuthorized",
}


def _stop_16_201(st: TxState, r: v16.StopTransactionRequest, now: datetime) -> Plan:
    reason = "Local" if r.reason is UNSET else r.reason
    tx = st.tx_by_int(r.transactionId)
    values = meter_values_to_201(r.transactionData) if r.transactionData is not UNSET else []
    values.append(
        v201.MeterValueType(
            sampledValue=[
                v201.SampledValueType(
                    value=float(r.meterStop), context="Transaction.End", measurand=_ENERGY
                )
            ],
            timestamp=r.timestamp,
        )
    )
    req = v201.TransactionEventRequest(
        eventType="Ended",
        meterValue=values,
        timestamp=r.timestamp,
        triggerReason=_STOP_TRIGGER_201[reason],  # type: ignore[arg-type]
        seqNo=st.next_seq(),
        transactionInfo=v201.TransactionType(
            transactionId=str(r.transactionId),
            stoppedReason=_STOP_REASON_201[reason],  # type: ignore[arg-type]
        ),
        evse=v201.EVSEType(id=tx.evse, connectorId=1) if tx else UNSET,
        idToken=_token(r.idTag) if r.idTag is not UNSET else UNSET,
    )

    def back(a: v201.TransactionEventResponse) -> v16.StopTransactionResponse:
        if tx is not None:
            st.forget(tx)
        if a.idTokenInfo is UNSET:
            return v16.StopTransactionResponse()
        return v16.StopTransactionResponse(idTagInfo=id_tag_info(a.idTokenInfo))

    return _one("TransactionEvent", req, back)


def _data_16_201(st: TxState, r: v16.DataTransferRequest, now: datetime) -> Plan:
    req = v201.DataTransferRequest(messageId=r.messageId, data=r.data, vendorId=r.vendorId)
    return _one(
        "DataTransfer",
        req,
        lambda a: v16.DataTransferResponse(status=a.status, data=_data_to_16(a.data)),
    )


# -- charger 2.0.1 -> upstream 1.6 --------------------------------------------------------------


def _boot_201_16(st: TxState, r: v201.BootNotificationRequest, now: datetime) -> Plan:
    cs = r.chargingStation
    modem = cs.modem
    req = v16.BootNotificationRequest(
        chargePointVendor=cs.vendorName[:20],
        chargePointModel=cs.model,
        chargePointSerialNumber=cs.serialNumber,
        firmwareVersion=cs.firmwareVersion,
        iccid=modem.iccid if modem is not UNSET else UNSET,
        imsi=modem.imsi if modem is not UNSET else UNSET,
    )

    def back(a: v16.BootNotificationResponse) -> v201.BootNotificationResponse:
        return v201.BootNotificationResponse(
            currentTime=a.currentTime, interval=a.interval, status=a.status
        )

    return _one("BootNotification", req, back)


def _status_201_16(st: TxState, r: v201.StatusNotificationRequest, now: datetime) -> Plan:
    evse = r.evseId
    status: str = r.connectorStatus
    if status == "Occupied":
        status = _occupied_16(st, evse)
    elif status == "Available":
        st.finished.discard(evse)
    req = v16.StatusNotificationRequest(
        connectorId=evse,
        errorCode="OtherError" if status == "Faulted" else "NoError",
        status=status,  # type: ignore[arg-type]
        timestamp=r.timestamp,
    )
    return _one("StatusNotification", req, lambda a: v201.StatusNotificationResponse())


_STATE_TO_16: Final = {
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "EVConnected": "SuspendedEV",
    "Idle": "Preparing",
}


def _occupied_16(st: TxState, evse: int) -> str:
    """The 1.6 status of an Occupied 2.0.1 EVSE: during a transaction its charging state
    (Charging when unknown, EVConnected: SuspendedEV, Idle: Preparing), after one Finishing,
    before one Preparing."""
    if any(tx.evse == evse and tx.int_id is not None for tx in st.txs.values()):
        return _STATE_TO_16.get(st.charging_state.get(evse, "Charging"), "Charging")
    return "Finishing" if evse in st.finished else "Preparing"


def _authorize_201_16(st: TxState, r: v201.AuthorizeRequest, now: datetime) -> Plan:
    req = v16.AuthorizeRequest(idTag=_id_tag(r.idToken))
    return _one(
        "Authorize",
        req,
        lambda a: v201.AuthorizeResponse(idTokenInfo=id_token_info(a.idTagInfo)),
    )


def _meter_values_201_16(st: TxState, r: v201.MeterValuesRequest, now: datetime) -> Plan:
    values = meter_values_to_16(r.meterValue)
    if not values:
        raise Untranslatable("no meter value 1.6 can carry")
    req = v16.MeterValuesRequest(connectorId=r.evseId, meterValue=values)
    return _one("MeterValues", req, lambda a: v201.MeterValuesResponse())


_STOP_REASON_16: Final = {
    "DeAuthorized": "DeAuthorized",
    "EmergencyStop": "EmergencyStop",
    "EVDisconnected": "EVDisconnected",
    "ImmediateReset": "HardReset",
    "Local": "Local",
    "MasterPass": "Local",
    "PowerLoss": "PowerLoss",
    "Reboot": "Reboot",
    "Remote": "Remote",
}


def _tx_event_201_16(st: TxState, r: v201.TransactionEventRequest, now: datetime) -> Plan:
    info = r.transactionInfo
    tx = st.txs.get(info.transactionId)
    if tx is None:
        if r.evse is UNSET:
            raise Untranslatable(f"transaction {info.transactionId} unknown to the bridge")
        tx = _Tx(r.evse.id, info.transactionId)
        if r.eventType != "Ended":
            st.remember(tx)
    changed = info.chargingState is not UNSET and (
        st.charging_state.get(tx.evse) != info.chargingState
    )
    if info.chargingState is not UNSET:
        st.charging_state[tx.evse] = info.chargingState
    wh = energy_wh(r.meterValue)
    if wh is not None:
        tx.last_wh = wh
    if r.idToken is not UNSET and tx.id_tag is None:
        tx.id_tag = _id_tag(r.idToken)
    if r.eventType == "Ended":
        return _ended_201_16(st, r, tx)
    if tx.int_id is None:
        if tx.id_tag is None:
            # 2.0.1 may start a transaction before authorization (TxStartPoint); 1.6 starts it
            # with the idTag: StartTransaction waits for the event that brings the token.
            if tx.meter_start_wh == 0 and wh is not None:
                tx.meter_start_wh = wh
            raise Untranslatable("transaction not authorized yet: no StartTransaction to send")
        return _started_201_16(st, r, tx, wh)
    steps: list[tuple[str, Any]] = []
    values = meter_values_to_16(r.meterValue) if r.meterValue is not UNSET else []
    if values:
        steps.append(
            (
                "MeterValues",
                v16.MeterValuesRequest(
                    connectorId=tx.evse, transactionId=tx.int_id, meterValue=values
                ),
            )
        )
    if changed:
        # 1.6 tells the charging state by StatusNotification (Charging, SuspendedEV, ...).
        status = _occupied_16(st, tx.evse)
        steps.append(
            (
                "StatusNotification",
                v16.StatusNotificationRequest(
                    connectorId=tx.evse,
                    errorCode="NoError",
                    status=status,  # type: ignore[arg-type]
                    timestamp=r.timestamp,
                ),
            )
        )
    if not steps:
        raise Untranslatable("TransactionEvent Updated with nothing a 1.6 CSMS is told")
    return Plan(tuple(steps), lambda answers: v201.TransactionEventResponse())


def _started_201_16(st: TxState, r: v201.TransactionEventRequest, tx: _Tx, wh: int | None) -> Plan:
    assert tx.id_tag is not None
    meter_start = tx.meter_start_wh or (wh if wh is not None else 0)
    tx.meter_start_wh = meter_start
    req = v16.StartTransactionRequest(
        connectorId=tx.evse,
        idTag=tx.id_tag,
        meterStart=meter_start,
        reservationId=r.reservationId,
        timestamp=r.timestamp,
    )

    def back(a: v16.StartTransactionResponse) -> v201.TransactionEventResponse:
        tx.int_id = a.transactionId
        st.remember(tx)
        st.finished.discard(tx.evse)
        return v201.TransactionEventResponse(idTokenInfo=id_token_info(a.idTagInfo))

    return _one("StartTransaction", req, back)


def _ended_201_16(st: TxState, r: v201.TransactionEventRequest, tx: _Tx) -> Plan:
    if tx.int_id is None:
        st.forget(tx)
        raise Untranslatable(f"transaction {tx.str_id} was never started on the upstream")
    stopped = r.transactionInfo.stoppedReason
    meter_stop = tx.last_wh if tx.last_wh is not None else tx.meter_start_wh
    data = meter_values_to_16(r.meterValue, stop=True) if r.meterValue is not UNSET else []
    req = v16.StopTransactionRequest(
        idTag=_id_tag(r.idToken) if r.idToken is not UNSET else UNSET,
        meterStop=meter_stop,
        timestamp=r.timestamp,
        transactionId=tx.int_id,
        reason=UNSET if stopped is UNSET else _STOP_REASON_16.get(stopped, "Other"),  # type: ignore[arg-type]
        transactionData=data or UNSET,
    )

    def back(a: v16.StopTransactionResponse) -> v201.TransactionEventResponse:
        st.forget(tx)
        st.finished.add(tx.evse)
        st.charging_state.pop(tx.evse, None)
        if a.idTagInfo is UNSET:
            return v201.TransactionEventResponse()
        return v201.TransactionEventResponse(idTokenInfo=id_token_info(a.idTagInfo))

    return _one("StopTransaction", req, back)


def _data_201_16(st: TxState, r: v201.DataTransferRequest, now: datetime) -> Plan:
    req = v16.DataTransferRequest(
        vendorId=r.vendorId, messageId=r.messageId, data=_data_to_16(r.data)
    )
    return _one(
        "DataTransfer",
        req,
        lambda a: v201.DataTransferResponse(status=a.status, data=a.data),
    )


Planner = Callable[[TxState, Any, datetime], Plan]

_UP: Final[dict[tuple[str, str], Planner]] = {
    (V16, "BootNotification"): _boot_16_201,
    (V16, "Heartbeat"): _heartbeat_to(V201),
    (V16, "StatusNotification"): _status_16_201,
    (V16, "Authorize"): _authorize_16_201,
    (V16, "StartTransaction"): _start_16_201,
    (V16, "MeterValues"): _meter_values_16_201,
    (V16, "StopTransaction"): _stop_16_201,
    (V16, "DataTransfer"): _data_16_201,
    (V201, "BootNotification"): _boot_201_16,
    (V201, "Heartbeat"): _heartbeat_to(V16),
    (V201, "StatusNotification"): _status_201_16,
    (V201, "Authorize"): _authorize_201_16,
    (V201, "MeterValues"): _meter_values_201_16,
    (V201, "TransactionEvent"): _tx_event_201_16,
    (V201, "DataTransfer"): _data_201_16,
}


def _types(version: str, action: str) -> tuple[type[Any], type[Any]]:
    mod: Any = v16 if version == V16 else v201
    types: tuple[type[Any], type[Any]] = mod.ACTIONS[action]
    return types


def _same_shape(from_version: str, to_version: str, action: str, request: Any) -> Plan:
    req = _reshape(request, _types(to_version, action)[0])
    back_type = _types(from_version, action)[1]
    return _one(action, req, lambda a: _reshape(a, back_type))


def _check(charger_version: str, upstream_version: str) -> None:
    if {charger_version, upstream_version} != {V16, V201}:
        raise ValueError(f"no translation from {charger_version!r} to {upstream_version!r}")


def to_upstream(
    st: TxState,
    charger_version: str,
    upstream_version: str,
    action: str,
    request: Any,
    now: datetime,
) -> Plan:
    """Plan the charger's CALL (``request``, a Struct of ``charger_version``) for an upstream
    speaking the other version; ``now`` stands in for times 1.6 leaves out. The plan's answer
    is a response Struct of ``charger_version``. Raises :class:`Untranslatable`."""
    _check(charger_version, upstream_version)
    planner = _UP.get((charger_version, action))
    if planner is not None:
        return planner(st, request, now)
    if action in _SAME_SHAPE_UP:
        return _same_shape(charger_version, upstream_version, action, request)
    raise Untranslatable(f"{action} has no OCPP {upstream_version} counterpart")


# -- upstream 1.6 -> charger 2.0.1 --------------------------------------------------------------


class ConfigKey(NamedTuple):
    """A 1.6 configuration key and the 2.0.1 variable it corresponds to."""

    key: str
    component: str
    variable: str
    instance: str | None = None
    readable: bool = True  # False: write-only (never reported by GetConfiguration)


CONFIG_KEYS: Final[tuple[ConfigKey, ...]] = (
    ConfigKey("HeartbeatInterval", "OCPPCommCtrlr", "HeartbeatInterval"),
    ConfigKey("WebSocketPingInterval", "OCPPCommCtrlr", "WebSocketPingInterval"),
    ConfigKey("ResetRetries", "OCPPCommCtrlr", "ResetRetries"),
    ConfigKey("TransactionMessageAttempts", "OCPPCommCtrlr", "MessageAttempts", "TransactionEvent"),
    ConfigKey(
        "TransactionMessageRetryInterval",
        "OCPPCommCtrlr",
        "MessageAttemptInterval",
        "TransactionEvent",
    ),
    ConfigKey("MeterValueSampleInterval", "SampledDataCtrlr", "TxUpdatedInterval"),
    ConfigKey("MeterValuesSampledData", "SampledDataCtrlr", "TxUpdatedMeasurands"),
    ConfigKey("StopTxnSampledData", "SampledDataCtrlr", "TxEndedMeasurands"),
    ConfigKey("ClockAlignedDataInterval", "AlignedDataCtrlr", "Interval"),
    ConfigKey("MeterValuesAlignedData", "AlignedDataCtrlr", "Measurands"),
    ConfigKey("StopTxnAlignedData", "AlignedDataCtrlr", "TxEndedMeasurands"),
    ConfigKey("ConnectionTimeOut", "TxCtrlr", "EVConnectionTimeOut"),
    ConfigKey("StopTransactionOnEVSideDisconnect", "TxCtrlr", "StopTxOnEVSideDisconnect"),
    ConfigKey("StopTransactionOnInvalidId", "TxCtrlr", "StopTxOnInvalidId"),
    ConfigKey("LocalAuthorizeOffline", "AuthCtrlr", "LocalAuthorizeOffline"),
    ConfigKey("LocalPreAuthorize", "AuthCtrlr", "LocalPreAuthorize"),
    ConfigKey("AuthorizeRemoteTxRequests", "AuthCtrlr", "AuthorizeRemoteStart"),
    ConfigKey("AuthorizationCacheEnabled", "AuthCacheCtrlr", "Enabled"),
    ConfigKey("LocalAuthListEnabled", "LocalAuthListCtrlr", "Enabled"),
    ConfigKey("SecurityProfile", "SecurityCtrlr", "SecurityProfile"),
    ConfigKey("AuthorizationKey", "SecurityCtrlr", "BasicAuthPassword", readable=False),
)
"""The 1.6 configuration keys ChangeConfiguration / GetConfiguration translate (2.0.1 part 2
appendix, "Configuration keys migration"); any other key is NotSupported / unknown."""

_BY_KEY: Final = {c.key: c for c in CONFIG_KEYS}
_BY_VAR: Final = {(c.component, c.variable, c.instance): c for c in CONFIG_KEYS}
_COMPONENTS: Final = frozenset(c.component for c in CONFIG_KEYS)


def _component(c: ConfigKey) -> tuple[v201.ComponentType, v201.VariableType]:
    return (
        v201.ComponentType(name=c.component),
        v201.VariableType(name=c.variable, instance=UNSET if c.instance is None else c.instance),
    )


def _remote_start_16_201(st: TxState, r: v16.RemoteStartTransactionRequest) -> Plan:
    req = v201.RequestStartTransactionRequest(
        evseId=r.connectorId,
        idToken=_token(r.idTag, "Central"),
        remoteStartId=st.next_remote_start_id(),
    )
    return _one(
        "RequestStartTransaction",
        req,
        lambda a: v16.RemoteStartTransactionResponse(status=a.status),
    )


def _remote_stop_16_201(st: TxState, r: v16.RemoteStopTransactionRequest) -> Plan:
    tx = st.tx_by_int(r.transactionId)
    if tx is None:
        return _local(v16.RemoteStopTransactionResponse(status="Rejected"))
    req = v201.RequestStopTransactionRequest(transactionId=tx.str_id)
    return _one(
        "RequestStopTransaction",
        req,
        lambda a: v16.RemoteStopTransactionResponse(status=a.status),
    )


def _reset_16_201(st: TxState, r: v16.ResetRequest) -> Plan:
    req = v201.ResetRequest(type="OnIdle" if r.type == "Soft" else "Immediate")
    return _one(
        "Reset",
        req,
        lambda a: v16.ResetResponse(status="Rejected" if a.status == "Rejected" else "Accepted"),
    )


_SET_TO_16: Final = {
    "Accepted": "Accepted",
    "Rejected": "Rejected",
    "RebootRequired": "RebootRequired",
}


def _change_config_16_201(st: TxState, r: v16.ChangeConfigurationRequest) -> Plan:
    c = _BY_KEY.get(r.key)
    if c is None:
        return _local(v16.ChangeConfigurationResponse(status="NotSupported"))
    component, variable = _component(c)
    req = v201.SetVariablesRequest(
        setVariableData=[
            v201.SetVariableDataType(attributeValue=r.value, component=component, variable=variable)
        ]
    )

    def back(a: v201.SetVariablesResponse) -> v16.ChangeConfigurationResponse:
        status = _SET_TO_16.get(a.setVariableResult[0].attributeStatus, "NotSupported")
        return v16.ChangeConfigurationResponse(status=status)  # type: ignore[arg-type]

    return _one("SetVariables", req, back)


def _get_config_16_201(st: TxState, r: v16.GetConfigurationRequest) -> Plan:
    keys = [c.key for c in CONFIG_KEYS if c.readable] if r.key is UNSET else list(r.key)
    known = [_BY_KEY[k] for k in keys if k in _BY_KEY and _BY_KEY[k].readable]
    unknown = [k for k in keys if k not in _BY_KEY or not _BY_KEY[k].readable]
    if not known:
        return _local(v16.GetConfigurationResponse(unknownKey=unknown or UNSET))
    data = []
    for c in known:
        component, variable = _component(c)
        data.append(v201.GetVariableDataType(component=component, variable=variable))
    req = v201.GetVariablesRequest(getVariableData=data)

    def back(a: v201.GetVariablesResponse) -> v16.GetConfigurationResponse:
        found: list[v16.ConfigurationKey] = []
        missing = list(unknown)
        results = {
            (x.component.name, x.variable.name, x.variable.instance or None): x
            for x in a.getVariableResult
        }
        for c in known:
            res = results.get((c.component, c.variable, c.instance))
            if res is None or res.attributeStatus != "Accepted":
                missing.append(c.key)
                continue
            value = res.attributeValue
            found.append(
                v16.ConfigurationKey(
                    key=c.key,
                    readonly=False,
                    value=value[:500] if value is not UNSET else UNSET,
                )
            )
        return v16.GetConfigurationResponse(
            configurationKey=found or UNSET, unknownKey=missing or UNSET
        )

    return _one("GetVariables", req, back)


_TRIGGER_TO_201: Final = {
    "BootNotification": "BootNotification",
    "DiagnosticsStatusNotification": "LogStatusNotification",
    "FirmwareStatusNotification": "FirmwareStatusNotification",
    "Heartbeat": "Heartbeat",
    "MeterValues": "MeterValues",
    "StatusNotification": "StatusNotification",
}


def _trigger_16_201(st: TxState, r: v16.TriggerMessageRequest) -> Plan:
    evse: Any = UNSET
    if r.connectorId is not UNSET and r.connectorId > 0:
        evse = v201.EVSEType(id=r.connectorId, connectorId=1)
    req = v201.TriggerMessageRequest(
        evse=evse,
        requestedMessage=_TRIGGER_TO_201[r.requestedMessage],  # type: ignore[arg-type]
    )
    return _one("TriggerMessage", req, lambda a: v16.TriggerMessageResponse(status=a.status))


_UNLOCK_TO_16: Final = {
    "Unlocked": "Unlocked",
    "UnlockFailed": "UnlockFailed",
    "OngoingAuthorizedTransaction": "UnlockFailed",
    "UnknownConnector": "NotSupported",
}


def _unlock_16_201(st: TxState, r: v16.UnlockConnectorRequest) -> Plan:
    req = v201.UnlockConnectorRequest(evseId=r.connectorId, connectorId=1)
    return _one(
        "UnlockConnector",
        req,
        lambda a: v16.UnlockConnectorResponse(status=_UNLOCK_TO_16[a.status]),  # type: ignore[arg-type]
    )


def _availability_16_201(st: TxState, r: v16.ChangeAvailabilityRequest) -> Plan:
    req = v201.ChangeAvailabilityRequest(
        evse=v201.EVSEType(id=r.connectorId) if r.connectorId > 0 else UNSET,
        operationalStatus=r.type,
    )
    return _one(
        "ChangeAvailability", req, lambda a: v16.ChangeAvailabilityResponse(status=a.status)
    )


def _data_down_16_201(st: TxState, r: v16.DataTransferRequest) -> Plan:
    return _data_16_201(st, r, datetime.min)


# -- upstream 2.0.1 -> charger 1.6 --------------------------------------------------------------


def _remote_start_201_16(st: TxState, r: v201.RequestStartTransactionRequest) -> Plan:
    id_tag = r.idToken.idToken
    if len(id_tag) > _ID_TAG_MAX:
        return _local(
            v201.RequestStartTransactionResponse(
                status="Rejected",
                statusInfo=v201.StatusInfoType(
                    reasonCode="InvalidIdToken",
                    additionalInfo="a 1.6 charger takes idTags of at most 20 characters",
                ),
            )
        )
    req = v16.RemoteStartTransactionRequest(connectorId=r.evseId, idTag=id_tag)

    def back(a: v16.RemoteStartTransactionResponse) -> v201.RequestStartTransactionResponse:
        if a.status == "Accepted":
            evse = None if r.evseId is UNSET else r.evseId
            st.add_remote_start(_RemoteStart(id_tag, evse, r.remoteStartId, r.idToken.type))
        return v201.RequestStartTransactionResponse(status=a.status)

    return _one("RemoteStartTransaction", req, back)


def _remote_stop_201_16(st: TxState, r: v201.RequestStopTransactionRequest) -> Plan:
    tx = st.txs.get(r.transactionId)
    int_id = tx.int_id if tx is not None else None
    if int_id is None and r.transactionId.isdigit():
        int_id = int(r.transactionId)
    if int_id is None:
        return _local(v201.RequestStopTransactionResponse(status="Rejected"))
    req = v16.RemoteStopTransactionRequest(transactionId=int_id)
    return _one(
        "RemoteStopTransaction",
        req,
        lambda a: v201.RequestStopTransactionResponse(status=a.status),
    )


def _reset_201_16(st: TxState, r: v201.ResetRequest) -> Plan:
    if r.evseId is not UNSET:
        return _local(
            v201.ResetResponse(
                status="Rejected",
                statusInfo=v201.StatusInfoType(reasonCode="UnsupportedRequest"),
            )
        )
    req = v16.ResetRequest(type="Soft" if r.type == "OnIdle" else "Hard")
    return _one("Reset", req, lambda a: v201.ResetResponse(status=a.status))


def _lookup_var(component: v201.ComponentType, variable: v201.VariableType) -> str | ConfigKey:
    """The config key of a 2.0.1 variable, or the 2.0.1 status when there is none."""
    if component.name not in _COMPONENTS or component.evse is not UNSET:
        return "UnknownComponent"
    instance = None if variable.instance is UNSET else variable.instance
    c = _BY_VAR.get((component.name, variable.name, instance))
    return "UnknownVariable" if c is None else c


def _set_vars_201_16(st: TxState, r: v201.SetVariablesRequest) -> Plan:
    steps: list[tuple[str, Any]] = []
    slots: list[str | None] = []  # per item: a fixed status, or None: the next step's answer
    for item in r.setVariableData:
        c = _lookup_var(item.component, item.variable)
        if isinstance(c, str):
            slots.append(c)
        elif item.attributeType not in (UNSET, "Actual"):
            slots.append("NotSupportedAttributeType")
        elif len(item.attributeValue) > 500:
            slots.append("Rejected")
        else:
            slots.append(None)
            steps.append(
                (
                    "ChangeConfiguration",
                    v16.ChangeConfigurationRequest(key=c.key, value=item.attributeValue),
                )
            )

    def back(answers: Sequence[Any]) -> v201.SetVariablesResponse:
        it = iter(answers)
        results = []
        for item, slot in zip(r.setVariableData, slots, strict=True):
            status = slot
            if status is None:
                s16 = next(it).status
                status = "UnknownVariable" if s16 == "NotSupported" else s16
            results.append(
                v201.SetVariableResultType(
                    attributeType=item.attributeType,
                    attributeStatus=status,  # type: ignore[arg-type]
                    component=item.component,
                    variable=item.variable,
                )
            )
        return v201.SetVariablesResponse(setVariableResult=results)

    return Plan(tuple(steps), back)


def _get_vars_201_16(st: TxState, r: v201.GetVariablesRequest) -> Plan:
    lookups: list[str | ConfigKey] = []
    for item in r.getVariableData:
        c = _lookup_var(item.component, item.variable)
        if isinstance(c, ConfigKey) and not c.readable:
            c = "Rejected"
        elif isinstance(c, ConfigKey) and item.attributeType not in (UNSET, "Actual"):
            c = "NotSupportedAttributeType"
        lookups.append(c)
    keys = sorted({c.key for c in lookups if isinstance(c, ConfigKey)})

    def back(answers: Sequence[Any]) -> v201.GetVariablesResponse:
        values: dict[str, Any] = {}
        if answers and answers[0].configurationKey is not UNSET:
            values = {k.key: k.value for k in answers[0].configurationKey}
        results = []
        for item, c in zip(r.getVariableData, lookups, strict=True):
            value: Any = UNSET
            if isinstance(c, str):
                status = c
            elif c.key in values:
                status, value = "Accepted", values[c.key]
            else:
                status = "UnknownVariable"
            results.append(
                v201.GetVariableResultType(
                    attributeStatus=status,  # type: ignore[arg-type]
                    attributeType=item.attributeType,
                    attributeValue=value,
                    component=item.component,
                    variable=item.variable,
                )
            )
        return v201.GetVariablesResponse(getVariableResult=results)

    steps = (("GetConfiguration", v16.GetConfigurationRequest(key=keys)),) if keys else ()
    return Plan(steps, back)


_TRIGGER_TO_16: Final = {
    "BootNotification": "BootNotification",
    "LogStatusNotification": "DiagnosticsStatusNotification",
    "FirmwareStatusNotification": "FirmwareStatusNotification",
    "Heartbeat": "Heartbeat",
    "MeterValues": "MeterValues",
    "TransactionEvent": "MeterValues",
    "StatusNotification": "StatusNotification",
}


def _trigger_201_16(st: TxState, r: v201.TriggerMessageRequest) -> Plan:
    message = _TRIGGER_TO_16.get(r.requestedMessage)
    if message is None:
        return _local(v201.TriggerMessageResponse(status="NotImplemented"))
    req = v16.TriggerMessageRequest(
        requestedMessage=message,  # type: ignore[arg-type]
        connectorId=r.evse.id if r.evse is not UNSET else UNSET,
    )
    return _one("TriggerMessage", req, lambda a: v201.TriggerMessageResponse(status=a.status))


def _unlock_201_16(st: TxState, r: v201.UnlockConnectorRequest) -> Plan:
    req = v16.UnlockConnectorRequest(connectorId=r.evseId)

    def back(a: v16.UnlockConnectorResponse) -> v201.UnlockConnectorResponse:
        if a.status == "NotSupported":
            return v201.UnlockConnectorResponse(
                status="UnlockFailed", statusInfo=v201.StatusInfoType(reasonCode="NotSupported")
            )
        return v201.UnlockConnectorResponse(status=a.status)

    return _one("UnlockConnector", req, back)


def _availability_201_16(st: TxState, r: v201.ChangeAvailabilityRequest) -> Plan:
    req = v16.ChangeAvailabilityRequest(
        connectorId=r.evse.id if r.evse is not UNSET else 0, type=r.operationalStatus
    )
    return _one(
        "ChangeAvailability", req, lambda a: v201.ChangeAvailabilityResponse(status=a.status)
    )


def _data_down_201_16(st: TxState, r: v201.DataTransferRequest) -> Plan:
    return _data_201_16(st, r, datetime.min)


DownPlanner = Callable[[TxState, Any], Plan]

_DOWN: Final[dict[tuple[str, str], DownPlanner]] = {
    (V16, "RemoteStartTransaction"): _remote_start_16_201,
    (V16, "RemoteStopTransaction"): _remote_stop_16_201,
    (V16, "Reset"): _reset_16_201,
    (V16, "ChangeConfiguration"): _change_config_16_201,
    (V16, "GetConfiguration"): _get_config_16_201,
    (V16, "TriggerMessage"): _trigger_16_201,
    (V16, "UnlockConnector"): _unlock_16_201,
    (V16, "ChangeAvailability"): _availability_16_201,
    (V16, "DataTransfer"): _data_down_16_201,
    (V201, "RequestStartTransaction"): _remote_start_201_16,
    (V201, "RequestStopTransaction"): _remote_stop_201_16,
    (V201, "Reset"): _reset_201_16,
    (V201, "SetVariables"): _set_vars_201_16,
    (V201, "GetVariables"): _get_vars_201_16,
    (V201, "TriggerMessage"): _trigger_201_16,
    (V201, "UnlockConnector"): _unlock_201_16,
    (V201, "ChangeAvailability"): _availability_201_16,
    (V201, "DataTransfer"): _data_down_201_16,
}


def supported_downstream(upstream_version: str, charger_version: str) -> frozenset[str]:
    """The upstream's CALLs the bridge can carry to a charger: every CSMS -> charge point action
    when the versions are equal, else those translated (the rest get NotSupported)."""
    if upstream_version == charger_version:
        return TO_CHARGER[upstream_version]
    _check(charger_version, upstream_version)
    return frozenset(a for (v, a) in _DOWN if v == upstream_version) | _SAME_SHAPE_DOWN


def to_charger(
    st: TxState, upstream_version: str, charger_version: str, action: str, request: Any
) -> Plan:
    """Plan the upstream's CALL (a Struct of ``upstream_version``) for a charger speaking the
    other version; the plan's answer is a response Struct of ``upstream_version``. Raises
    :class:`Untranslatable`."""
    _check(charger_version, upstream_version)
    planner = _DOWN.get((upstream_version, action))
    if planner is not None:
        return planner(st, request)
    if action in _SAME_SHAPE_DOWN:
        return _same_shape(upstream_version, charger_version, action, request)
    raise Untranslatable(f"{action} has no OCPP {charger_version} counterpart")
