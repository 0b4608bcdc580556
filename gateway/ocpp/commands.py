"""Commands to chargers: the Python API the REST API calls (OCPP 1.6J and 2.0.1).

:class:`ChargerCommands` sends a CALL to a connected charge point over its
:class:`~gateway.ocpp.link.ChargerLink` (found in :class:`~gateway.ocpp.link.Links`), waits for
the outcome, and stores every command with its outcome in the ``commands`` table (the same rows
as the truck commands, :mod:`gateway.commands`)::

    commands = ChargerCommands(server.links, pool, cfg.ocpp)
    result = await commands.remote_start("CP-1", "04A2B3C4", connector_id=1)   # CommandResult

The high-level calls take version-neutral arguments and build the request of the link's
version (``RemoteStartTransaction`` for 1.6, ``RequestStartTransaction`` for 2.0.1, ...);
:meth:`ChargerCommands.send` sends any central-system-to-charger action of the link's version
with a JSON payload. Conventions (as for trucks):

* Bad arguments raise :class:`CommandError` before anything is sent or stored; so does a call
  the charger's version lacks (``change_configuration`` / ``get_configuration`` on 2.0.1,
  ``set_variables`` / ``get_variables`` on 1.6: the message names the call to use).
* A charger that is not connected gets ``offline`` at once (not kept for later). Its arguments
  are still checked: they must make a request of at least one version. The row's ``protocol`` is
  then ``"ocpp"`` (the version is unknown) and ``request`` is ``{"args": <the call's arguments>}``.
* Otherwise a ``pending`` row (``protocol`` = the link's version, ``request`` =
  ``{"action": <OCPP action>, "payload": <the request as sent>}``) is inserted before the CALL
  and updated with the outcome; a database error on that insert propagates (nothing is sent that
  is not recorded). At most ``max_pending`` commands wait at a time; more raise CommandError.

Outcomes: the response's ``status`` decides (see :func:`status_of`): Accepted, Scheduled,
RebootRequired, Unlocked... ``accepted``; Rejected and the refusals of a valid request
(Occupied, UnknownConnector...) ``rejected``; NotSupported, NotImplemented, UnknownMessageId,
UnknownVendorId ``unsupported``; Failed / UnlockFailed ``failed``. SetVariables / GetVariables
(and the variable-monitoring calls) are ``accepted`` when every item is, else ``rejected``;
GetConfiguration is ``rejected`` when it names unknown keys. ``reply`` is the response payload
as JSON (per-variable results included). A CALLERROR is ``failed`` (``unsupported`` for
NotImplemented / NotSupported) with ``reply`` = ``{"errorCode", "errorDescription",
"errorDetails"}``; an unreadable answer ``error``; no answer in time ``timeout``; the connection
closing first ``failed``. ``sent_at`` is when the CALL was handed to the connection (None when
it never left the connection's queue), ``replied_at`` when the answer came.

Connector and EVSE numbers: OCPP 1.6 numbers connectors per charger (what 2.0.1 calls EVSEs).
On a 1.6 charger the number sent is ``connector_id``, or ``evse_id`` when only that is given
(giving both, different, is an error). On a 2.0.1 charger ``evse_id`` is the EVSE and
``connector_id`` the connector within it; ``connector_id`` alone is read in 1.6 numbering, as
the EVSE (and, where the message needs a connector, connector 1 of it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import asyncpg
import msgspec

from gateway.commands_store import CommandStore
from gateway.commands_types import PENDING, CommandError, CommandResult, Json, Status
from gateway.config import OcppConfig
from gateway.ocpp.link import CallOutcome, ChargerLink, Links
from gateway.ocpp.messages import ACTIONS, encode
from gateway.ocpp.rpc_events import CallAborted, CallError, CallResult, CallTimeout, InvalidResult

log = logging.getLogger("silkgate.ocpp.commands")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

V16: Final = "ocpp1.6"
V201: Final = "ocpp2.0.1"
VERSIONS: Final = (V16, V201)
OFFLINE_PROTOCOL: Final = "ocpp"
"""The ``protocol`` of a row whose charger was not connected (its version is unknown)."""

CSMS_ACTIONS: Final[dict[str, frozenset[str]]] = {
    V16: frozenset(
        {
            "CancelReservation",
            "ChangeAvailability",
            "ChangeConfiguration",
            "ClearCache",
            "ClearChargingProfile",
            "DataTransfer",
            "GetCompositeSchedule",
            "GetConfiguration",
            "GetDiagnostics",
            "GetLocalListVersion",
            "RemoteStartTransaction",
            "RemoteStopTransaction",
            "ReserveNow",
            "Reset",
            "SendLocalList",
            "SetChargingProfile",
            "TriggerMessage",
            "UnlockConnector",
            "UpdateFirmware",
            # the security whitepaper
            "CertificateSigned",
            "DeleteCertificate",
            "ExtendedTriggerMessage",
            "GetInstalledCertificateIds",
            "GetLog",
            "InstallCertificate",
            "SignedUpdateFirmware",
        }
    ),
    V201: frozenset(
        {
            "CancelReservation",
            "CertificateSigned",
            "ChangeAvailability",
            "ClearCache",
            "ClearChargingProfile",
            "ClearDisplayMessage",
            "ClearVariableMonitoring",
            "CostUpdated",
            "CustomerInformation",
            "DataTransfer",
            "DeleteCertificate",
            "GetBaseReport",
            "GetChargingProfiles",
            "GetCompositeSchedule",
            "GetDisplayMessages",
            "GetInstalledCertificateIds",
            "GetLocalListVersion",
            "GetLog",
            "GetMonitoringReport",
            "GetReport",
            "GetTransactionStatus",
            "GetVariables",
            "InstallCertificate",
            "PublishFirmware",
            "RequestStartTransaction",
            "RequestStopTransaction",
            "ReserveNow",
            "Reset",
            "SendLocalList",
            "SetChargingProfile",
            "SetDisplayMessage",
            "SetMonitoringBase",
            "SetMonitoringLevel",
            "SetNetworkProfile",
            "SetVariableMonitoring",
            "SetVariables",
            "TriggerMessage",
            "UnlockConnector",
            "UnpublishFirmware",
            "UpdateFirmware",
        }
    ),
}
"""version -> the actions a central system sends to a charger (what :meth:`send` accepts)."""

_ACCEPTED: Final = frozenset(
    {
        "Accepted",
        "AcceptedCanceled",
        "Scheduled",
        "RebootRequired",
        "Unlocked",
        "Unpublished",
        "EmptyResultSet",
        "NoProfiles",
    }
)
_UNSUPPORTED: Final = frozenset(
    {
        "NotSupported",
        "NotImplemented",
        "UnknownMessageId",
        "UnknownVendorId",
        "NotSupportedAttributeType",
        "NotSupportedMessageFormat",
        "NotSupportedPriority",
        "NotSupportedState",
    }
)
_FAILED: Final = frozenset({"Failed", "UnlockFailed"})
_UNSUPPORTED_CODES: Final = frozenset({"NotImplemented", "NotSupported"})

# response field holding per-item results -> the items' status field
_ITEM_RESULTS: Final = {
    "setVariableResult": "attributeStatus",
    "getVariableResult": "attributeStatus",
    "setMonitoringResult": "status",
    "clearMonitoringResult": "status",
}

# trigger_message: requested messages by folded name (lower case, no "_"), per version:
# (action, native message name)
_TRIGGERS: Final[dict[str, dict[str, tuple[str, str]]]] = {
    V16: {
        "bootnotification": ("TriggerMessage", "BootNotification"),
        "diagnosticsstatusnotification": ("TriggerMessage", "DiagnosticsStatusNotification"),
        "firmwarestatusnotification": ("TriggerMessage", "FirmwareStatusNotification"),
        "heartbeat": ("TriggerMessage", "Heartbeat"),
        "metervalues": ("TriggerMessage", "MeterValues"),
        "statusnotification": ("TriggerMessage", "StatusNotification"),
        # the security whitepaper's, by ExtendedTriggerMessage
        "logstatusnotification": ("ExtendedTriggerMessage", "LogStatusNotification"),
        "signchargepointcertificate": ("ExtendedTriggerMessage", "SignChargePointCertificate"),
        "signchargingstationcertificate": (
            "ExtendedTriggerMessage",
            "SignChargePointCertificate",
        ),
    },
    V201: {
        "bootnotification": ("TriggerMessage", "BootNotification"),
        "logstatusnotification": ("TriggerMessage", "LogStatusNotification"),
        "diagnosticsstatusnotification": ("TriggerMessage", "LogStatusNotification"),
        "firmwarestatusnotification": ("TriggerMessage", "FirmwareStatusNotification"),
        "heartbeat": ("TriggerMessage", "Heartbeat"),
        "metervalues": ("TriggerMessage", "MeterValues"),
        "signchargingstationcertificate": ("TriggerMessage", "SignChargingStationCertificate"),
        "signchargepointcertificate": ("TriggerMessage", "SignChargingStationCertificate"),
        "signv2gcertificate": ("TriggerMessage", "SignV2GCertificate"),
        "statusnotification": ("TriggerMessage", "StatusNotification"),
        "transactionevent": ("TriggerMessage", "TransactionEvent"),
        "signcombinedcertificate": ("TriggerMessage", "SignCombinedCertificate"),
        "publishfirmwarestatusnotification": (
            "TriggerMessage",
            "PublishFirmwareStatusNotification",
        ),
    },
}

_RESET_KINDS: Final = {
    "soft": "soft",
    "onidle": "soft",
    "hard": "hard",
    "immediate": "hard",
}
_RESET_NATIVE: Final = {
    V16: {"soft": "Soft", "hard": "Hard"},
    V201: {"soft": "OnIdle", "hard": "Immediate"},
}

_MAX_REMOTE_START_ID: Final = 2**31 - 1


class WrongVersion(CommandError):
    """A command (or an argument of it) that the charger's OCPP version does not have."""


class Built(NamedTuple):
    """A request ready to send: the OCPP action and its request Struct."""

    action: str
    request: msgspec.Struct


Builder = Callable[[str], Built]


def normalize_version(version: str) -> str:
    """``"ocpp1.6"`` / ``"ocpp2.0.1"`` from a sub-protocol or a bare ``"1.6"`` / ``"2.0.1"``."""
    text = str(version)
    full = text if text.startswith("ocpp") else f"ocpp{text}"
    if full not in VERSIONS:
        raise CommandError(f"unknown OCPP version {version!r}")
    return full


def request(version: str, action: str, payload: Mapping[str, Any] | msgspec.Struct) -> Built:
    """The request Struct of ``action`` in ``version`` from a JSON payload, checked against the
    schema (lengths, enums, required fields): CommandError when it does not fit."""
    version = normalize_version(version)
    types = ACTIONS[version].get(action)
    if types is None or action not in CSMS_ACTIONS[version]:
        raise CommandError(
            f"{action!r} is not a central system -> charger action of OCPP {version[4:]}"
        )
    if isinstance(payload, msgspec.Struct):
        payload = msgspec.to_builtins(payload)
    elif not isinstance(payload, Mapping):
        raise CommandError(f"{action}: the payload must be a JSON object, not {payload!r}")
    try:
        struct = msgspec.convert(payload, types[0])
    except msgspec.ValidationError as exc:
        raise CommandError(f"{action}: {exc}") from None
    return Built(action, struct)


def status_of(response: Any) -> Status:
    """The command status a response payload (Struct or JSON object) means (module docstring)."""
    fields: Mapping[str, Any]
    if isinstance(response, msgspec.Struct):
        fields = {name: getattr(response, name) for name in response.__struct_fields__}
    elif isinstance(response, Mapping):
        fields = response
    else:
        return "accepted"
    status = fields.get("status", msgspec.UNSET)
    if isinstance(status, str):
        return _status_word(status)
    for name, item_field in _ITEM_RESULTS.items():
        items = fields.get(name, msgspec.UNSET)
        if isinstance(items, list):
            words = {_status_word(_item(item, item_field)) for item in items}
            return "accepted" if words <= {"accepted"} else "rejected"
    if fields.get("unknownKey"):  # 1.6 GetConfiguration: some keys asked for are unknown
        return "rejected"
    return "accepted"


def _item(item: Any, name: str) -> str:
    value = item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
    return value if isinstance(value, str) else ""


def _status_word(status: str) -> Status:
    if status in _ACCEPTED:
        return "accepted"
    if status in _UNSUPPORTED:
        return "unsupported"
    if status in _FAILED:
        return "failed"
    return "rejected"


# -- request builders (pure; one per high-level call) -----------------------------------------


def _int(value: object, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CommandError(f"{what} must be an integer >= {minimum}, not {value!r}")
    return value


def _opt_int(value: object, what: str, *, minimum: int = 0) -> int | None:
    return None if value is None else _int(value, what, minimum=minimum)


def _text(value: object, what: str) -> str:
    """A configuration / variable value: text; ints and booleans as OCPP writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    raise CommandError(f"{what}: {value!r} is not a text, an integer or a boolean")


def _v16_connector(connector_id: int | None, evse_id: int | None) -> int | None:
    if connector_id is not None and evse_id is not None and connector_id != evse_id:
        raise WrongVersion(
            "OCPP 1.6 numbers connectors per charge point: give connector_id alone "
            f"(got connector_id={connector_id}, evse_id={evse_id})"
        )
    return connector_id if connector_id is not None else evse_id


def _omit_none(**fields: object) -> dict[str, object]:
    return {name: value for name, value in fields.items() if value is not None}


def _names(value: object, what: str) -> dict[str, Any]:
    """A 2.0.1 component / variable: a name, or the native object (``{"name", "instance"...}``)."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise CommandError(f"{what}: {value!r} is neither a name nor a {{'name': ...}} object")


def _variable_items(items: object, verb: str, with_value: bool) -> list[dict[str, Any]]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise CommandError(f"{verb}: give a list of variables, not {items!r}")
    out: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        what = f"{verb}[{n}]"
        if isinstance(item, Mapping):
            out.append(dict(item))
            continue
        if isinstance(item, str | bytes) or not isinstance(item, Sequence):
            raise CommandError(f"{what}: {item!r} is not a tuple or a native object")
        need = 3 if with_value else 2
        if len(item) not in (need, need + 1):
            shape = (
                "(component, variable, value[, attribute])"
                if with_value
                else ("(component, variable[, attribute])")
            )
            raise CommandError(f"{what}: {item!r} is not {shape}")
        data: dict[str, Any] = {
            "component": _names(item[0], f"{what} component"),
            "variable": _names(item[1], f"{what} variable"),
        }
        if with_value:
            data["attributeValue"] = _text(item[2], f"{what} value")
        if len(item) == need + 1 and item[need] is not None:
            data["attributeType"] = item[need]
        out.append(data)
    if not out:
        raise CommandError(f"{verb}: no variables given")
    return out


def build_remote_start(
    version: str,
    id_tag: str,
    *,
    connector_id: int | None = None,
    evse_id: int | None = None,
    remote_start_id: int | None = None,
    id_token_type: str = "Central",
    charging_profile: Mapping[str, Any] | None = None,
) -> Built:
    """RemoteStartTransaction (1.6) / RequestStartTransaction (2.0.1). ``remote_start_id`` and
    ``id_token_type`` are 2.0.1 only (ignored on 1.6); ``remote_start_id`` is required there
    (:meth:`ChargerCommands.remote_start` draws one when not given)."""
    if not isinstance(id_tag, str) or not id_tag:
        raise CommandError(f"id_tag must be a non-empty text, not {id_tag!r}")
    connector_id = _opt_int(connector_id, "connector_id", minimum=1)
    evse_id = _opt_int(evse_id, "evse_id", minimum=1)
    if normalize_version(version) == V16:
        payload = _omit_none(
            connectorId=_v16_connector(connector_id, evse_id),
            idTag=id_tag,
            chargingProfile=charging_profile,
        )
        return request(V16, "RemoteStartTransaction", payload)
    if remote_start_id is None:
        raise CommandError("remote_start_id is required in OCPP 2.0.1")
    payload = _omit_none(
        evseId=evse_id if evse_id is not None else connector_id,
        idToken={"idToken": id_tag, "type": id_token_type},
        remoteStartId=_int(remote_start_id, "remote_start_id"),
        chargingProfile=charging_profile,
    )
    return request(V201, "RequestStartTransaction", payload)


def build_remote_stop(version: str, transaction_id: str | int) -> Built:
    """RemoteStopTransaction (1.6: integer ids) / RequestStopTransaction (2.0.1: text ids)."""
    if isinstance(transaction_id, bool) or not isinstance(transaction_id, str | int):
        raise CommandError(f"transaction_id must be a text or an integer, not {transaction_id!r}")
    if normalize_version(version) == V16:
        try:
            number = int(transaction_id)
        except ValueError:
            raise WrongVersion(
                f"OCPP 1.6 transaction ids are integers, not {transaction_id!r}"
            ) from None
        return request(V16, "RemoteStopTransaction", {"transactionId": number})
    return request(V201, "RequestStopTransaction", {"transactionId": str(transaction_id)})


def build_reset(version: str, kind: str = "soft", *, evse_id: int | None = None) -> Built:
    """Reset: ``kind`` soft / hard, or a native name of either version (Soft, Hard, OnIdle,
    Immediate; soft = OnIdle, hard = Immediate). ``evse_id``: 2.0.1 only."""
    folded = _RESET_KINDS.get(kind.lower()) if isinstance(kind, str) else None
    if folded is None:
        raise CommandError(f"reset: kind {kind!r} is not soft, hard, OnIdle or Immediate")
    evse_id = _opt_int(evse_id, "evse_id", minimum=1)
    version = normalize_version(version)
    if version == V16:
        if evse_id is not None:
            raise WrongVersion("reset: OCPP 1.6 resets the whole charge point (no evse_id)")
        return request(V16, "Reset", {"type": _RESET_NATIVE[V16][folded]})
    payload = _omit_none(type=_RESET_NATIVE[V201][folded], evseId=evse_id)
    return request(V201, "Reset", payload)


def _only(version: str, wanted: str, call: str, other: str) -> None:
    """Raise :class:`WrongVersion` unless ``version`` is ``wanted`` (``other``: the call to use
    on the other version)."""
    if normalize_version(version) != wanted:
        other_version = "2.0.1" if wanted == V16 else "1.6"
        raise WrongVersion(
            f"{call} is OCPP {wanted.removeprefix('ocpp')}: use {other} on an OCPP "
            f"{other_version} charger"
        )


def build_change_configuration(version: str, key: str, value: object) -> Built:
    """ChangeConfiguration (1.6 only)."""
    if not isinstance(key, str) or not key:
        raise CommandError(f"change_configuration: key must be a non-empty text, not {key!r}")
    payload = {"key": key, "value": _text(value, f"change_configuration {key}")}
    _only(version, V16, "change_configuration", "set_variables")
    return request(V16, "ChangeConfiguration", payload)


def build_set_variables(version: str, variables: object) -> Built:
    """SetVariables (2.0.1 only): ``(component, variable, value[, attribute])`` tuples or native
    SetVariableData objects."""
    payload = {"setVariableData": _variable_items(variables, "set_variables", True)}
    _only(version, V201, "set_variables", "change_configuration")
    return request(V201, "SetVariables", payload)


def build_get_configuration(version: str, keys: Iterable[str] | None = None) -> Built:
    """GetConfiguration (1.6 only): the keys asked for, or every key (``None``)."""
    payload: dict[str, Any] = {}
    if keys is not None:
        if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
            raise CommandError(f"get_configuration: keys must be a list of texts, not {keys!r}")
        payload["key"] = list(keys)
    _only(version, V16, "get_configuration", "get_variables")
    return request(V16, "GetConfiguration", payload)


def build_get_variables(version: str, variables: object) -> Built:
    """GetVariables (2.0.1 only): ``(component, variable[, attribute])`` tuples or native
    GetVariableData objects."""
    payload = {"getVariableData": _variable_items(variables, "get_variables", False)}
    _only(version, V201, "get_variables", "get_configuration")
    return request(V201, "GetVariables", payload)


def build_trigger_message(
    version: str,
    message: str,
    *,
    connector_id: int | None = None,
    evse_id: int | None = None,
) -> Built:
    """TriggerMessage. ``message``: a message name of either version, in any case, underscores
    ignored (``"meter_values"``, ``"StatusNotification"``). Across versions:
    DiagnosticsStatusNotification (1.6) <-> LogStatusNotification (2.0.1),
    SignChargePointCertificate <-> SignChargingStationCertificate; on 1.6 the security
    whitepaper's messages go by ExtendedTriggerMessage."""
    if not isinstance(message, str):
        raise CommandError(f"trigger_message: {message!r} is not a message name")
    folded = message.replace("_", "").replace("-", "").lower()
    connector_id = _opt_int(connector_id, "connector_id")
    evse_id = _opt_int(evse_id, "evse_id")
    version = normalize_version(version)
    target = _TRIGGERS[version].get(folded)
    if target is None:
        other = V201 if version == V16 else V16
        cls = WrongVersion if folded in _TRIGGERS[other] else CommandError
        names = sorted({native for _, native in _TRIGGERS[version].values()})
        raise cls(
            f"trigger_message: {message!r} is not a message OCPP {version[4:]} can trigger "
            f"({', '.join(names)})"
        )
    action, native = target
    if version == V16:
        payload = _omit_none(
            requestedMessage=native, connectorId=_v16_connector(connector_id, evse_id)
        )
    else:
        payload = _omit_none(requestedMessage=native, evse=_evse(connector_id, evse_id))
    return request(version, action, payload)


def _evse(connector_id: int | None, evse_id: int | None) -> dict[str, object] | None:
    """A 2.0.1 EVSEType (None: the whole station; 0 means the same)."""
    if evse_id:
        return _omit_none(id=evse_id, connectorId=connector_id)
    if connector_id:
        return {"id": connector_id}
    return None


def build_unlock_connector(version: str, connector_id: int, *, evse_id: int | None = None) -> Built:
    """UnlockConnector (1.6 connectorId; 2.0.1 evseId + connectorId)."""
    connector_id = _int(connector_id, "connector_id", minimum=1)
    evse_id = _opt_int(evse_id, "evse_id", minimum=1)
    if normalize_version(version) == V16:
        return request(
            V16, "UnlockConnector", {"connectorId": _v16_connector(connector_id, evse_id)}
        )
    if evse_id is None:
        payload = {"evseId": connector_id, "connectorId": 1}
    else:
        payload = {"evseId": evse_id, "connectorId": connector_id}
    return request(V201, "UnlockConnector", payload)


def build_change_availability(
    version: str,
    operative: bool,
    *,
    connector_id: int | None = None,
    evse_id: int | None = None,
) -> Built:
    """ChangeAvailability: Operative / Inoperative, of the whole charger (no connector or EVSE,
    or 0) or of one connector / EVSE."""
    if not isinstance(operative, bool):
        raise CommandError(
            f"change_availability: operative must be True or False, not {operative!r}"
        )
    word = "Operative" if operative else "Inoperative"
    connector_id = _opt_int(connector_id, "connector_id")
    evse_id = _opt_int(evse_id, "evse_id")
    if normalize_version(version) == V16:
        connector = _v16_connector(connector_id, evse_id)
        payload: dict[str, Any] = {"connectorId": connector or 0, "type": word}
        return request(V16, "ChangeAvailability", payload)
    payload = _omit_none(evse=_evse(connector_id, evse_id), operationalStatus=word)
    return request(V201, "ChangeAvailability", payload)


# -- the API ----------------------------------------------------------------------------------


class ChargerCommands:
    """Commands to connected chargers (see the module docstring). ``clock`` gives the UTC wall
    time stamped on commands (tests)."""

    def __init__(
        self,
        links: Links,
        pool: asyncpg.Pool,
        cfg: OcppConfig | None = None,
        *,
        max_pending: int = 10_000,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.links = links
        self.cfg = cfg or OcppConfig()
        self.store = CommandStore(pool)
        self.max_pending = max_pending
        self._clock = clock or (lambda: datetime.now(UTC))
        # how much longer than its timeout a CALL may take before it is given up here: the link
        # ends every CALL at its deadline, this only guards against a link that does not
        self.guard_s = 5.0
        self._pending = 0
        self.counts: dict[str, int] = {}  # commands finished, by status

    @property
    def pending(self) -> int:
        """Commands sent and not yet finished."""
        return self._pending

    async def remote_start(
        self,
        charger_id: str,
        id_tag: str,
        *,
        connector_id: int | None = None,
        evse_id: int | None = None,
        remote_start_id: int | None = None,
        id_token_type: str = "Central",
        charging_profile: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Start a transaction: RemoteStartTransaction (1.6) / RequestStartTransaction (2.0.1,
        ``idToken`` of type ``id_token_type``; ``remote_start_id`` drawn at random when not
        given, found in ``request["payload"]["remoteStartId"]``). ``charging_profile``: the
        native object of the charger's version."""
        if remote_start_id is None:
            remote_start_id = secrets.randbelow(_MAX_REMOTE_START_ID) + 1
        args = {
            "id_tag": id_tag,
            "connector_id": connector_id,
            "evse_id": evse_id,
            "remote_start_id": remote_start_id,
            "id_token_type": id_token_type,
            "charging_profile": charging_profile,
        }

        def build(version: str) -> Built:
            return build_remote_start(
                version,
                id_tag,
                connector_id=connector_id,
                evse_id=evse_id,
                remote_start_id=remote_start_id,
                id_token_type=id_token_type,
                charging_profile=charging_profile,
            )

        return await self._run(charger_id, "remote_start", args, build, timeout_s)

    async def remote_stop(
        self, charger_id: str, transaction_id: str | int, *, timeout_s: float | None = None
    ) -> CommandResult:
        """Stop a transaction: RemoteStopTransaction (1.6, integer ids) /
        RequestStopTransaction (2.0.1)."""
        return await self._run(
            charger_id,
            "remote_stop",
            {"transaction_id": transaction_id},
            lambda v: build_remote_stop(v, transaction_id),
            timeout_s,
        )

    async def reset(
        self,
        charger_id: str,
        kind: str = "soft",
        *,
        evse_id: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Reset: ``soft`` (1.6 Soft, 2.0.1 OnIdle) or ``hard`` (Hard, Immediate); the native
        names of either version are taken too. ``evse_id``: one EVSE (2.0.1 only)."""
        return await self._run(
            charger_id,
            "reset",
            {"kind": kind, "evse_id": evse_id},
            lambda v: build_reset(v, kind, evse_id=evse_id),
            timeout_s,
        )

    async def change_configuration(
        self, charger_id: str, key: str, value: str | int | bool, *, timeout_s: float | None = None
    ) -> CommandResult:
        """ChangeConfiguration (1.6; booleans sent as ``true`` / ``false``). RebootRequired is
        ``accepted``, the status kept in ``reply``."""
        return await self._run(
            charger_id,
            "change_configuration",
            {"key": key, "value": value},
            lambda v: build_change_configuration(v, key, value),
            timeout_s,
        )

    async def set_variables(
        self,
        charger_id: str,
        variables: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """SetVariables (2.0.1): ``[(component, variable, value[, attribute]), ...]``; component
        and variable as names or native objects (``{"name": "EVSE", "evse": {"id": 1}}``).
        ``accepted`` when every variable is (RebootRequired included), else ``rejected``;
        ``reply["setVariableResult"]`` has each one's status."""
        items = _listed(variables)
        return await self._run(
            charger_id,
            "set_variables",
            {"variables": items},
            lambda v: build_set_variables(v, items),
            timeout_s,
        )

    async def get_configuration(
        self, charger_id: str, keys: Iterable[str] | None = None, *, timeout_s: float | None = None
    ) -> CommandResult:
        """GetConfiguration (1.6): those keys, or all. ``rejected`` when some are unknown
        (``reply["unknownKey"]``)."""
        listed = None if keys is None or isinstance(keys, str | bytes) else _listed(keys)
        given = keys if listed is None else listed
        return await self._run(
            charger_id,
            "get_configuration",
            {"keys": given},
            lambda v: build_get_configuration(v, given),
            timeout_s,
        )

    async def get_variables(
        self,
        charger_id: str,
        variables: Iterable[Sequence[Any] | Mapping[str, Any]],
        *,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """GetVariables (2.0.1): ``[(component, variable[, attribute]), ...]``. ``accepted`` when
        every variable is; the values are in ``reply["getVariableResult"]``."""
        items = _listed(variables)
        return await self._run(
            charger_id,
            "get_variables",
            {"variables": items},
            lambda v: build_get_variables(v, items),
            timeout_s,
        )

    async def trigger_message(
        self,
        charger_id: str,
        message: str,
        *,
        connector_id: int | None = None,
        evse_id: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """TriggerMessage (see :func:`build_trigger_message` for the names)."""
        return await self._run(
            charger_id,
            "trigger_message",
            {"message": message, "connector_id": connector_id, "evse_id": evse_id},
            lambda v: build_trigger_message(v, message, connector_id=connector_id, evse_id=evse_id),
            timeout_s,
        )

    async def unlock_connector(
        self,
        charger_id: str,
        connector_id: int,
        *,
        evse_id: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """UnlockConnector. Unlocked is ``accepted``, UnlockFailed ``failed``."""
        return await self._run(
            charger_id,
            "unlock_connector",
            {"connector_id": connector_id, "evse_id": evse_id},
            lambda v: build_unlock_connector(v, connector_id, evse_id=evse_id),
            timeout_s,
        )

    async def change_availability(
        self,
        charger_id: str,
        operative: bool,
        *,
        connector_id: int | None = None,
        evse_id: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """ChangeAvailability to Operative (True) / Inoperative (False); the whole charger when
        neither number is given. Scheduled is ``accepted``, the status kept in ``reply``."""
        return await self._run(
            charger_id,
            "change_availability",
            {"operative": operative, "connector_id": connector_id, "evse_id": evse_id},
            lambda v: build_change_availability(
                v, operative, connector_id=connector_id, evse_id=evse_id
            ),
            timeout_s,
        )

    async def send(
        self,
        charger_id: str,
        action: str,
        payload: Mapping[str, Any] | msgspec.Struct,
        *,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Any central system -> charger action of the charger's version (:data:`CSMS_ACTIONS`),
        the payload a JSON object (or a request Struct) checked against the action's schema."""
        if not isinstance(action, str):
            raise CommandError(f"send: {action!r} is not an action name")
        if isinstance(payload, msgspec.Struct):
            payload = msgspec.to_builtins(payload)
        if not isinstance(payload, Mapping):
            raise CommandError(f"send: the payload must be a JSON object, not {payload!r}")
        return await self._run(
            charger_id,
            "send",
            {"action": action, "payload": payload},
            lambda v: request(v, action, payload),
            timeout_s,
        )

    # -- stored commands ------------------------------------------------------------------------

    async def get(self, command_id: uuid.UUID) -> CommandResult | None:
        """A stored command (``status`` ``"pending"`` while it waits)."""
        return await self.store.get(command_id)

    async def history(self, charger_id: str, limit: int = 50) -> list[CommandResult]:
        """A charger's latest commands, newest first."""
        return await self.store.history(charger_id, limit)

    # -- the flow ---------------------------------------------------------------------------------

    async def _run(
        self,
        charger_id: str,
        verb: str,
        args: dict[str, Any],
        build: Builder,
        timeout_s: float | None,
    ) -> CommandResult:
        timeout = self._timeout(timeout_s)
        if not isinstance(charger_id, str) or not charger_id:
            raise CommandError(f"charger_id must be a non-empty text, not {charger_id!r}")
        link = self.links.get(charger_id)
        if link is None:
            _check_some_version(build)
            return await self._offline(charger_id, verb, args)
        version = normalize_version(link.version)
        built = build(version)
        payload: dict[str, Json] = _decode(encode(built.request))  # as sent
        base = CommandResult(
            id=uuid.uuid4(),
            device=charger_id,
            protocol=version,
            command=verb,
            request={"action": built.action, "payload": payload},
            status=PENDING,
            created_at=self._clock(),
        )
        self._reserve()
        try:
            await self.store.insert(base)
            try:
                result = await self._call(base, link, built, timeout)
            except asyncio.CancelledError:
                await self._update(_with(base, "error", error="cancelled"))
                raise
            await self._update(result)
            return result
        finally:
            self._pending -= 1

    async def _call(
        self, base: CommandResult, link: ChargerLink, built: Built, timeout: float
    ) -> CommandResult:
        sent_at = self._clock()
        try:
            async with asyncio.timeout(timeout + self.guard_s):
                outcome = await link.call(built.action, built.request, timeout)
        except TimeoutError:
            why = f"no outcome from the connection within {timeout:g} s"
            return _with(base, "timeout", sent_at=sent_at, error=why)
        except Exception as exc:  # the link could not take the CALL (queue full, closing...)
            log.warning("%s %s: CALL not sent: %r", base.device, built.action, exc)
            return _with(base, "error", error=f"not sent: {exc!r}")
        return self._outcome(base, outcome, sent_at, timeout)

    def _outcome(
        self, base: CommandResult, outcome: CallOutcome, sent_at: datetime, timeout: float
    ) -> CommandResult:
        now = self._clock()
        if isinstance(outcome, CallResult):
            try:
                answer = as_json(outcome.payload)
                answered = status_of(outcome.payload)
            except Exception as exc:  # an answer we cannot read: keep the command's record
                log.exception("%s %s: unreadable answer", base.device, outcome.action)
                return _with(base, "error", sent_at=sent_at, replied_at=now, error=repr(exc))
            if not isinstance(answer, dict):
                answer = {"payload": answer}
            return _with(base, answered, reply=answer, sent_at=sent_at, replied_at=now)
        if isinstance(outcome, CallError):
            status: Status = "unsupported" if outcome.code in _UNSUPPORTED_CODES else "failed"
            reply = {
                "errorCode": outcome.code,
                "errorDescription": outcome.description,
                "errorDetails": _json_or_repr(outcome.details),
            }
            error = f"CALLERROR {outcome.code}"
            if outcome.description:
                error += f": {outcome.description}"
            return _with(base, status, reply=reply, sent_at=sent_at, replied_at=now, error=error)
        if isinstance(outcome, InvalidResult):
            error = f"invalid answer: {outcome.code}: {outcome.description}"
            return _with(base, "error", sent_at=sent_at, replied_at=now, error=error)
        if isinstance(outcome, CallTimeout):
            if not outcome.sent:
                why = f"not sent within {timeout:g} s (behind other CALLs to this charger)"
                return _with(base, "timeout", error=why)
            return _with(base, "timeout", sent_at=sent_at, error=f"no answer within {timeout:g} s")
        if isinstance(outcome, CallAborted):
            if not outcome.sent:
                return _with(base, "failed", error="connection closed before the CALL was sent")
            return _with(
                base, "failed", sent_at=sent_at, error="connection closed before the answer"
            )
        return _with(base, "error", sent_at=sent_at, error=f"unexpected outcome {outcome!r}")

    async def _update(self, result: CommandResult) -> None:
        self._count(result.status)
        try:
            await self.store.update(result)
        except Exception as exc:  # the command happened: report it even if its row is stale
            log.warning("command %s: outcome %s not stored: %r", result.id, result.status, exc)

    async def _offline(self, charger_id: str, verb: str, args: dict[str, Any]) -> CommandResult:
        try:
            stored_args = as_json(args)
        except (TypeError, msgspec.EncodeError) as exc:
            raise CommandError(f"{verb}: arguments are not JSON: {exc}") from None
        result = CommandResult(
            id=uuid.uuid4(),
            device=charger_id,
            protocol=OFFLINE_PROTOCOL,
            command=verb,
            request={"args": stored_args},
            status="offline",
            created_at=self._clock(),
            error="not connected",
        )
        self._count("offline")
        await self.store.insert(result)
        return result

    def _count(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1

    def _timeout(self, timeout_s: float | None) -> float:
        timeout = self.cfg.call_timeout_s if timeout_s is None else timeout_s
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not (timeout > 0 and math.isfinite(timeout))
        ):
            raise CommandError(f"timeout_s must be a positive number, not {timeout_s!r}")
        return float(timeout)

    def _reserve(self) -> None:
        if self._pending >= self.max_pending:
            raise CommandError(f"{self._pending} commands are waiting for answers (max_pending)")
        self._pending += 1


def _check_some_version(build: Builder) -> None:
    """Arguments for a charger that is not connected: they must make a request of at least one
    version (else the error of the first that is not merely the wrong version)."""
    errors: list[CommandError] = []
    for version in (V201, V16):
        try:
            build(version)
            return
        except CommandError as exc:
            errors.append(exc)
    raise next((e for e in errors if not isinstance(e, WrongVersion)), errors[0])


def _listed(items: Iterable[Any]) -> list[Any]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise CommandError(f"give a list, not {items!r}")
    return list(items)


def as_json(value: object) -> Json:
    """``value`` as the ``commands`` table gives it back: JSON types only (tuples become lists,
    Structs objects without their unset fields, date-times RFC 3339 texts)."""
    return _decode(_encode(value))


def _json_or_repr(value: object) -> Json:
    try:
        return as_json(value)
    except (TypeError, msgspec.EncodeError):
        return repr(value)


def _with(base: CommandResult, status: Status, **changes: object) -> CommandResult:
    return msgspec.structs.replace(base, status=status, **changes)


__all__ = [
    "CSMS_ACTIONS",
    "OFFLINE_PROTOCOL",
    "V16",
    "V201",
    "Built",
    "ChargerCommands",
    "CommandError",
    "CommandResult",
    "WrongVersion",
    "build_change_availability",
    "build_change_configuration",
    "build_get_configuration",
    "build_get_variables",
    "build_remote_start",
    "build_remote_stop",
    "build_reset",
    "build_set_variables",
    "build_trigger_message",
    "build_unlock_connector",
    "normalize_version",
    "request",
    "status_of",
]
