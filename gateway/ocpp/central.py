"""The OCPP central system's logic: what a charger's CALL gets answered and which records it
makes, for OCPP 1.6 and 2.0.1, without any I/O of the connection (the WebSocket shell,
``gateway.adapters.ocpp_ws``, feeds :meth:`CentralSystem.handle` and sends the answer).

Per action:

* BootNotification: a charger in the registry is ``Accepted`` with ``heartbeat_interval_s``; one
  that is not (let in under ``unknown_chargers = "accept"``) gets ``unknown_boot_status``; one
  the registry could not be asked about (database away) ``Pending``. Not accepted: the
  interval is ``boot_retry_interval_s``. A known charger's vendor, model, serial number,
  firmware and protocol are written to its ``chargers`` row (a failure is logged, the boot
  goes on).
* Heartbeat: the time, answered at once (``durable=False``), no records, no database.
* Authorize, and the idTag / idToken of StartTransaction, StopTransaction, TransactionEvent:
  :mod:`gateway.ocpp.id_tokens`.
* StartTransaction / StopTransaction (1.6), TransactionEvent (2.0.1):
  :mod:`gateway.ocpp.transactions` (transaction ids, seqNo gaps: ChargerEvent ``seq_gap``).
* DataTransfer: ``Accepted`` for the vendor ids given to the constructor, else
  ``UnknownVendorId`` (1.6 and 2.0.1: "If the recipient of the request has no implementation
  for the specific vendorId it SHALL return a status UnknownVendor[Id]"); recorded either way.
* The notifications (status, meter values, firmware / diagnostics / log status, security
  events, NotifyEvent / NotifyReport, charging limits, reservations, display messages, ...):
  their empty answer; records from :func:`gateway.ocpp.normalize.records_for`.
  NotifyEVChargingNeeds is answered ``Rejected`` (no charging schedule will follow: there is no
  smart charging here), NotifyEVChargingSchedule ``Accepted``.
* SignCertificate, Get15118EVCertificate, GetCertificateStatus: CALLERROR ``NotSupported``
  (there is no certificate authority or OCSP responder behind this central system).

Registration (the boot status) gates the rest:

* OCPP 2.0.1 part 2, 3 (generic requirements) FR.04: "When the CSMS did not accept the
  BootNotificationRequest from the Charging Station AND the Charging Station sends a message
  other than BootNotificationRequest, the CSMS SHALL respond with a RPC Framework: CALLERROR:
  SecurityError", and B02.FR.09 for Pending, except "a message triggered by one of the
  following messages: TriggerMessageRequest, GetBaseReportRequest, GetReportRequest". So a
  2.0.1 station that is Rejected or Pending gets SecurityError for everything but
  BootNotification; while Pending, NotifyReport (only ever the answer to GetReport /
  GetBaseReport) and the actions in :attr:`ChargerSession.triggered` (which whoever sends a
  TriggerMessage adds the requested action to) go through.
* OCPP 1.6 (4.2): a Rejected charge point "SHALL NOT send any OCPP message to the Central
  System until the aforementioned retry interval has expired", and says nothing of what the
  central system answers; it gets the 2.0.1 treatment (SecurityError, a 1.6 code too). A
  Pending 1.6 charge point may only send what a TriggerMessage asked for, and the spec asks
  nothing of the central system there: it is answered normally.
* The status is the last one answered to the charger, on this connection or an earlier one (a
  charger reconnecting does not boot again); a charger not in the registry that has not booted
  counts as booted with ``unknown_boot_status``. After a restart of the gateway a known charger
  counts as accepted until it boots.

Bridge mode: when ``answer`` (the upstream CSMS's response) is given, it is the response and
the records follow it (its transactionId, its boot status); the registration gate is the
upstream's business then. A 1.6 transaction whose id the upstream assigned cannot be a row of
``ocpp_transactions`` (the ids there are GENERATED ALWAYS and would collide with ours), so the
start is kept in memory (bounded) for the stop's energy instead.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import asyncpg
import msgspec

from gateway.config import OcppConfig
from gateway.ocpp import v16, v201
from gateway.ocpp.id_tokens import Authorization, IdTokens, id_tag_info, id_token_info
from gateway.ocpp.normalize import Context, Problem, TxInfo, records_for
from gateway.ocpp.transactions import TransactionEvents, Transactions16
from gateway.records import ChargerEvent, ChargingSession
from gateway.registry import Device, Registry

log = logging.getLogger(__name__)

V16: Final = "ocpp1.6"
V201: Final = "ocpp2.0.1"

_UPDATE_CHARGER_SQL: Final = """
UPDATE chargers SET vendor = $2::text, model = $3::text, serial_number = $4::text,
    firmware_version = $5::text, protocol = $6::text, updated_at = now()
WHERE charger_id = $1
  AND (vendor, model, serial_number, firmware_version, protocol)
      IS DISTINCT FROM ($2::text, $3::text, $4::text, $5::text, $6::text)
"""


def _opt(value: str | msgspec.UnsetType) -> str | None:
    return value if isinstance(value, str) and value else None


class CallRefused(Exception):
    """Raised by :meth:`CentralSystem.handle` when the CALL gets a CALLERROR: the shell sends
    ``answer_error(unique_id, code, description, details)`` (no records are made)."""

    def __init__(
        self, code: str, description: str = "", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details = details


@dataclass(slots=True, eq=False)
class ChargerSession:
    """One connected charger, as the central system sees it."""

    charger_id: str
    version: str  # "ocpp1.6" | "ocpp2.0.1"
    peer: str
    device: Device  # from Registry.charger(); replaced by a fresh lookup at boot when unverified
    boot_status: str | None = None  # the last BootNotification status answered to the charger
    # actions a TriggerMessage asked for while the boot is Pending: each lets one such CALL in
    triggered: set[str] = field(default_factory=set)


class Handled(NamedTuple):
    """What :meth:`CentralSystem.handle` made of one CALL."""

    response: msgspec.Struct  # the CALLRESULT payload (a Struct of the session's version)
    records: list[msgspec.Struct]  # to submit (the shell adds the RawFrame)
    durable: bool  # answer only once the records are durable
    problems: list[Problem]  # normalize's complaints: dead letters with the raw frame


_Handler = Callable[..., Any]

# Answers that carry nothing: one frozen instance each, shared.
_EMPTY_16: Final[dict[str, msgspec.Struct]] = {
    "StatusNotification": v16.StatusNotificationResponse(),
    "MeterValues": v16.MeterValuesResponse(),
    "FirmwareStatusNotification": v16.FirmwareStatusNotificationResponse(),
    "DiagnosticsStatusNotification": v16.DiagnosticsStatusNotificationResponse(),
    "LogStatusNotification": v16.LogStatusNotificationResponse(),
    "SecurityEventNotification": v16.SecurityEventNotificationResponse(),
    "SignedFirmwareStatusNotification": v16.SignedFirmwareStatusNotificationResponse(),
}
_EMPTY_201: Final[dict[str, msgspec.Struct]] = {
    "StatusNotification": v201.StatusNotificationResponse(),
    "MeterValues": v201.MeterValuesResponse(),
    "FirmwareStatusNotification": v201.FirmwareStatusNotificationResponse(),
    "LogStatusNotification": v201.LogStatusNotificationResponse(),
    "SecurityEventNotification": v201.SecurityEventNotificationResponse(),
    "NotifyEvent": v201.NotifyEventResponse(),
    "NotifyReport": v201.NotifyReportResponse(),
    "NotifyMonitoringReport": v201.NotifyMonitoringReportResponse(),
    "NotifyChargingLimit": v201.NotifyChargingLimitResponse(),
    "ClearedChargingLimit": v201.ClearedChargingLimitResponse(),
    "ReportChargingProfiles": v201.ReportChargingProfilesResponse(),
    "NotifyCustomerInformation": v201.NotifyCustomerInformationResponse(),
    "NotifyDisplayMessages": v201.NotifyDisplayMessagesResponse(),
    "PublishFirmwareStatusNotification": v201.PublishFirmwareStatusNotificationResponse(),
    "ReservationStatusUpdate": v201.ReservationStatusUpdateResponse(),
    "NotifyEVChargingNeeds": v201.NotifyEVChargingNeedsResponse(status="Rejected"),
    "NotifyEVChargingSchedule": v201.NotifyEVChargingScheduleResponse(status="Accepted"),
}
_NOT_SUPPORTED: Final[dict[str, tuple[str, ...]]] = {
    V16: ("SignCertificate",),
    V201: ("SignCertificate", "Get15118EVCertificate", "GetCertificateStatus"),
}
_NOT_ACCEPTED: Final = frozenset(("Pending", "Rejected"))


class CentralSystem:
    """The central system's answers and records (see the module docstring).

    ``data_transfer_vendors``: the DataTransfer vendorIds answered ``Accepted``.
    ``id_token_ttl_s``: how long an authorization list entry is cached.
    """

    def __init__(
        self,
        cfg: OcppConfig,
        pool: asyncpg.Pool,
        registry: Registry,
        *,
        data_transfer_vendors: Collection[str] = (),
        id_token_ttl_s: float = 60.0,
        max_transactions: int = 100_000,
        max_chargers: int = 100_000,
    ) -> None:
        self.cfg = cfg
        self._pool = pool
        self._registry = registry
        self._hash = cfg.id_tags == "hash"
        self._vendors = frozenset(data_transfer_vendors)
        self.id_tokens = IdTokens(pool, ttl_s=id_token_ttl_s)
        self.transactions16 = Transactions16(pool)
        self.transaction_events = TransactionEvents(
            pool, max_transactions=max_transactions, max_chargers=max_chargers
        )
        self._max_chargers = max_chargers
        self._boot: OrderedDict[str, str] = OrderedDict()  # charger -> last boot status answered
        self._bridged16: OrderedDict[tuple[str, int], TxInfo] = OrderedDict()
        self._max_transactions = max_transactions
        sync16: dict[str, _Handler] = dict.fromkeys(_EMPTY_16, self._notification)
        sync16["Heartbeat"] = self._heartbeat16
        sync16["DataTransfer"] = self._data_transfer16
        sync201: dict[str, _Handler] = dict.fromkeys(_EMPTY_201, self._notification)
        sync201["Heartbeat"] = self._heartbeat201
        sync201["DataTransfer"] = self._data_transfer201
        self._sync: dict[str, dict[str, _Handler]] = {V16: sync16, V201: sync201}
        self._async: dict[str, dict[str, _Handler]] = {
            V16: {
                "BootNotification": self._boot16,
                "Authorize": self._authorize16,
                "StartTransaction": self._start16,
                "StopTransaction": self._stop16,
            },
            V201: {
                "BootNotification": self._boot201,
                "Authorize": self._authorize201,
                "TransactionEvent": self._transaction_event,
            },
        }
        self._empty = {V16: _EMPTY_16, V201: _EMPTY_201}
        self._supported: dict[tuple[str, bool], frozenset[str]] = {}

    def supported(self, version: str, *, bridged: bool = False) -> frozenset[str]:
        """The charger-initiated actions of ``version`` this central system answers with a
        CALLRESULT (``RpcConnection(supported=)``; the others get NotSupported there, and
        from :meth:`handle` too). ``bridged``: also those only an upstream CSMS can answer
        (SignCertificate, ...), which :meth:`handle` passes through when given the answer."""
        key = (version, bridged)
        actions = self._supported.get(key)
        if actions is None:  # one set shared by the connections (RpcConnection keeps it)
            actions = frozenset(self._sync[version]) | frozenset(self._async[version])
            if bridged:
                actions |= frozenset(_NOT_SUPPORTED[version])
            self._supported[key] = actions
        return actions

    # ------------------------------------------------------------------ entry points

    async def handle(
        self,
        session: ChargerSession,
        action: str,
        request: msgspec.Struct,
        received_at: datetime,
        answer: msgspec.Struct | None = None,
    ) -> Handled:
        """Answer one CALL of the charger; raises :class:`CallRefused` for a CALLERROR, and
        whatever a needed database access raised (the shell answers InternalError)."""
        version = session.version
        if answer is None and action != "BootNotification":
            status = session.boot_status
            if status is None and not session.device.known and session.device.verified:
                status = self.cfg.unknown_boot_status
            if status in _NOT_ACCEPTED:
                self._gate(session, action, status)
        handler = self._sync[version].get(action)
        if handler is not None:
            handled: Handled = handler(session, action, request, received_at, answer)
            return handled
        handler = self._async[version].get(action)
        if handler is not None:
            handled = await handler(session, request, received_at, answer)
            return handled
        if answer is not None:  # the upstream answered what this central system cannot
            return Handled(answer, [], True, [])
        if action in _NOT_SUPPORTED[version]:
            raise CallRefused("NotSupported", f"{action} is not supported by this central system")
        raise CallRefused("NotSupported", f"{action} is not answered by a central system")

    def connected(self, session: ChargerSession, received_at: datetime) -> list[msgspec.Struct]:
        """A charger connected: its ChargerEvent ``connect``. Also brings back the boot status
        answered on an earlier connection (a reconnecting charger does not boot again)."""
        if session.boot_status is None:
            session.boot_status = self._boot.get(session.charger_id)
        device = session.device
        detail = {"peer": session.peer, "known": device.known, "verified": device.verified}
        return [self._event(session, "connect", received_at, received_at, detail)]

    def disconnected(
        self, session: ChargerSession, received_at: datetime, reason: str
    ) -> list[msgspec.Struct]:
        """A charger's connection ended: its ChargerEvent ``disconnect``."""
        detail = {"peer": session.peer, "reason": reason, "boot_status": session.boot_status}
        return [self._event(session, "disconnect", received_at, received_at, detail)]

    # ------------------------------------------------------------------ helpers

    def _gate(self, session: ChargerSession, action: str, status: str) -> None:
        if status == "Pending":
            if session.version == V16:
                return
            if action == "NotifyReport":
                return
            if action in session.triggered:
                session.triggered.discard(action)
                return
        raise CallRefused(
            "SecurityError",
            f"{action} refused: the charger's BootNotification was not accepted ({status})",
        )

    def _context(self, session: ChargerSession, received_at: datetime) -> Context:
        return Context(
            session.charger_id,
            session.version,
            received_at,
            session.device.station_id,
            self._hash,
        )

    def _event(
        self,
        session: ChargerSession,
        event: str,
        time: datetime,
        received_at: datetime,
        detail: dict[str, Any],
        key: str = "",
    ) -> ChargerEvent:
        return ChargerEvent(
            charger_id=session.charger_id,
            time=time,
            event=event,
            protocol=session.version,
            key=key,
            detail=detail,
            station_id=session.device.station_id,
            received_at=received_at,
        )

    def _records(
        self,
        session: ChargerSession,
        action: str,
        request: msgspec.Struct,
        received_at: datetime,
        response: msgspec.Struct,
        tx: TxInfo | None = None,
    ) -> tuple[list[msgspec.Struct], list[Problem]]:
        ctx = self._context(session, received_at)
        records, problems = records_for(ctx, action, request, response, tx)
        return records, problems

    async def _authorization(
        self, session: ChargerSession, id_token: str, token_type: str | None, now: datetime
    ) -> Authorization:
        return await self.id_tokens.authorize(
            id_token,
            operator_id=session.device.operator_id,
            token_type=token_type,
            now=now,
            unknown_status=self.cfg.unknown_id_tokens,
        )

    # ------------------------------------------------------------------ both versions

    def _notification(
        self,
        session: ChargerSession,
        action: str,
        request: msgspec.Struct,
        received_at: datetime,
        answer: msgspec.Struct | None,
    ) -> Handled:
        response = answer if answer is not None else self._empty[session.version][action]
        records, problems = records_for(
            Context(
                session.charger_id,
                session.version,
                received_at,
                session.device.station_id,
                self._hash,
            ),
            action,
            request,
            response,
            None,
        )
        return Handled(response, records, True, problems)

    def _heartbeat16(
        self,
        session: ChargerSession,
        action: str,
        request: msgspec.Struct,
        received_at: datetime,
        answer: msgspec.Struct | None,
    ) -> Handled:
        response = answer if answer is not None else v16.HeartbeatResponse(currentTime=received_at)
        return Handled(response, [], False, [])

    def _heartbeat201(
        self,
        session: ChargerSession,
        action: str,
        request: msgspec.Struct,
        received_at: datetime,
        answer: msgspec.Struct | None,
    ) -> Handled:
        response = answer if answer is not None else v201.HeartbeatResponse(currentTime=received_at)
        return Handled(response, [], False, [])

    def _data_transfer16(
        self,
        session: ChargerSession,
        action: str,
        request: v16.DataTransferRequest,
        received_at: datetime,
        answer: msgspec.Struct | None,
    ) -> Handled:
        response = answer
        if response is None:
            known = request.vendorId in self._vendors
            response = v16.DataTransferResponse(status="Accepted" if known else "UnknownVendorId")
        records, problems = self._records(session, action, request, received_at, response)
        return Handled(response, records, True, problems)

    def _data_transfer201(
        self,
        session: ChargerSession,
        action: str,
        request: v201.DataTransferRequest,
        received_at: datetime,
        answer: msgspec.Struct | None,
    ) -> Handled:
        response = answer
        if response is None:
            known = request.vendorId in self._vendors
            response = v201.DataTransferResponse(status="Accepted" if known else "UnknownVendorId")
        records, problems = self._records(session, action, request, received_at, response)
        return Handled(response, records, True, problems)

    # ------------------------------------------------------------------ BootNotification

    async def _boot_status(self, session: ChargerSession) -> tuple[str, int]:
        if not session.device.verified:
            # the registry was away at connect time: ask again (cached, never raises)
            session.device = await self._registry.charger(session.charger_id)
        device = session.device
        cfg = self.cfg
        if not device.verified:
            status = "Pending"
        elif device.known:
            status = "Accepted"
        else:
            status = cfg.unknown_boot_status
        interval = cfg.heartbeat_interval_s if status == "Accepted" else cfg.boot_retry_interval_s
        return status, interval

    def _remember_boot(self, session: ChargerSession, status: str) -> None:
        session.boot_status = status
        boot = self._boot
        boot[session.charger_id] = status
        boot.move_to_end(session.charger_id)
        while len(boot) > self._max_chargers:
            boot.popitem(last=False)

    async def _store_boot(
        self,
        session: ChargerSession,
        vendor: str,
        model: str,
        serial: str | None,
        firmware: str | None,
    ) -> None:
        if not session.device.known:
            return
        try:
            await self._pool.execute(
                _UPDATE_CHARGER_SQL,
                session.charger_id,
                vendor,
                model,
                serial,
                firmware,
                session.version,
            )
        except Exception:
            log.warning("charger %s: boot data not stored", session.charger_id, exc_info=True)

    async def _boot16(
        self,
        session: ChargerSession,
        request: v16.BootNotificationRequest,
        received_at: datetime,
        answer: v16.BootNotificationResponse | None,
    ) -> Handled:
        if answer is None:
            status, interval = await self._boot_status(session)
            response = v16.BootNotificationResponse(
                status=status,  # type: ignore[arg-type]
                currentTime=datetime.now(UTC),
                interval=interval,
            )
        else:
            response = answer
        self._remember_boot(session, response.status)
        await self._store_boot(
            session,
            request.chargePointVendor,
            request.chargePointModel,
            _opt(request.chargePointSerialNumber) or _opt(request.chargeBoxSerialNumber),
            _opt(request.firmwareVersion),
        )
        records, problems = self._records(
            session, "BootNotification", request, received_at, response
        )
        return Handled(response, records, True, problems)

    async def _boot201(
        self,
        session: ChargerSession,
        request: v201.BootNotificationRequest,
        received_at: datetime,
        answer: v201.BootNotificationResponse | None,
    ) -> Handled:
        if answer is None:
            status, interval = await self._boot_status(session)
            response = v201.BootNotificationResponse(
                currentTime=datetime.now(UTC),
                interval=interval,
                status=status,  # type: ignore[arg-type]
            )
        else:
            response = answer
        self._remember_boot(session, response.status)
        station = request.chargingStation
        await self._store_boot(
            session,
            station.vendorName,
            station.model,
            _opt(station.serialNumber),
            _opt(station.firmwareVersion),
        )
        records, problems = self._records(
            session, "BootNotification", request, received_at, response
        )
        return Handled(response, records, True, problems)

    # ------------------------------------------------------------------ Authorize

    async def _authorize16(
        self,
        session: ChargerSession,
        request: v16.AuthorizeRequest,
        received_at: datetime,
        answer: msgspec.Struct | None,
    ) -> Handled:
        if answer is not None:
            return Handled(answer, [], False, [])
        auth = await self._authorization(session, request.idTag, None, received_at)
        return Handled(v16.AuthorizeResponse(idTagInfo=id_tag_info(auth)), [], False, [])

    async def _authorize201(
        self,
        session: ChargerSession,
        request: v201.AuthorizeRequest,
        received_at: datetime,
        answer: msgspec.Struct | None,
    ) -> Handled:
        if answer is not None:
            return Handled(answer, [], False, [])
        token = request.idToken
        auth = await self._authorization(session, token.idToken, token.type, received_at)
        return Handled(v201.AuthorizeResponse(idTokenInfo=id_token_info(auth)), [], False, [])

    # ------------------------------------------------------------------ 1.6 transactions

    async def _start16(
        self,
        session: ChargerSession,
        request: v16.StartTransactionRequest,
        received_at: datetime,
        answer: v16.StartTransactionResponse | None,
    ) -> Handled:
        if answer is not None:
            response = answer
            key = (session.charger_id, answer.transactionId)
            self._bridged16[key] = TxInfo(
                transaction_id=str(answer.transactionId),
                connector_id=request.connectorId,
                started_at=request.timestamp,
                meter_start_wh=float(request.meterStart),
                id_tag=request.idTag,
            )
            while len(self._bridged16) > self._max_transactions:
                self._bridged16.popitem(last=False)
        else:
            auth = await self._authorization(session, request.idTag, None, received_at)
            tid = await self.transactions16.start(
                session.charger_id,
                request.connectorId,
                request.timestamp,
                request.idTag,
                request.meterStart,
            )
            response = v16.StartTransactionResponse(idTagInfo=id_tag_info(auth), transactionId=tid)
        records, problems = self._records(
            session, "StartTransaction", request, received_at, response
        )
        return Handled(response, records, True, problems)

    async def _stop16(
        self,
        session: ChargerSession,
        request: v16.StopTransactionRequest,
        received_at: datetime,
        answer: v16.StopTransactionResponse | None,
    ) -> Handled:
        tx: TxInfo | None
        if answer is not None:
            response = answer
            tx = self._bridged16.get((session.charger_id, request.transactionId))
        else:
            row = await self.transactions16.stop(
                session.charger_id, request.transactionId, request.timestamp
            )
            tx = None if row is None else row.tx_info()
            if row is None:
                log.info(
                    "charger %s: StopTransaction of unknown transaction %d",
                    session.charger_id,
                    request.transactionId,
                )
            if request.idTag:
                auth = await self._authorization(session, request.idTag, None, received_at)
                response = v16.StopTransactionResponse(idTagInfo=id_tag_info(auth))
            else:
                response = v16.StopTransactionResponse()
        records, problems = self._records(
            session, "StopTransaction", request, received_at, response, tx
        )
        return Handled(response, records, True, problems)

    # ------------------------------------------------------------------ 2.0.1 TransactionEvent

    async def _transaction_event(
        self,
        session: ChargerSession,
        request: v201.TransactionEventRequest,
        received_at: datetime,
        answer: v201.TransactionEventResponse | None,
    ) -> Handled:
        tid = request.transactionInfo.transactionId
        seq = request.seqNo
        check = await self.transaction_events.check(session.charger_id, tid, seq, request.eventType)
        state = check.state
        evse = request.evse
        if evse:
            state.evse_id = evse.id
            if evse.connectorId:
                state.connector_id = evse.connectorId
        token = request.idToken
        if token:
            state.id_tag = token.idToken
        if answer is not None:
            response = answer
        elif token:
            auth = await self._authorization(session, token.idToken, token.type, received_at)
            response = v201.TransactionEventResponse(idTokenInfo=id_token_info(auth))
        else:
            response = v201.TransactionEventResponse()
        records, problems = self._records(
            session, "TransactionEvent", request, received_at, response, state.tx_info()
        )
        if state.meter_start_wh is None or state.started_at is None:
            # the transaction's start as normalize made it, for the events that follow
            for rec in records:
                if isinstance(rec, ChargingSession):
                    if state.meter_start_wh is None:
                        state.meter_start_wh = rec.meter_start_wh
                    if state.started_at is None:
                        state.started_at = rec.started_at or (
                            rec.time if rec.event == "start" else None
                        )
                    break
        if check.missing > 0:
            records.append(
                self._event(
                    session,
                    "seq_gap",
                    request.timestamp,
                    received_at,
                    {
                        "transaction_id": tid,
                        "expected": check.expected,
                        "received": seq,
                        "missing": check.missing,
                        "event_type": request.eventType,
                        "offline": bool(request.offline),
                    },
                    key=f"{tid}:{seq}",
                )
            )
        return Handled(response, records, True, problems)
