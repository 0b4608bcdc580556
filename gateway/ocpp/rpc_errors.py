"""OCPP-J error codes per version, and which CALLERROR answers which malformed message.

The code sets are those of OCPP-J 1.6 section 4.2.3 and OCPP 2.0.1 part 4 section 4.3. Codes
crossing versions are respelt (``FormatViolation`` <-> ``FormationViolation``,
``OccurrenceConstraintViolation`` <-> ``OccurenceConstraintViolation``); a code the version
does not have becomes ``GenericError``, so no CALLERROR ever carries a code its peer cannot parse.
"""

from __future__ import annotations

from typing import Final

#: Versions are named by their WebSocket sub-protocol (as ``gateway.ocpp.messages.OcppVersion``).
V16: Final = "ocpp1.6"
V201: Final = "ocpp2.0.1"

NOT_IMPLEMENTED: Final = "NotImplemented"
NOT_SUPPORTED: Final = "NotSupported"
INTERNAL_ERROR: Final = "InternalError"
PROTOCOL_ERROR: Final = "ProtocolError"
SECURITY_ERROR: Final = "SecurityError"
GENERIC_ERROR: Final = "GenericError"
PROPERTY_CONSTRAINT: Final = "PropertyConstraintViolation"
TYPE_CONSTRAINT: Final = "TypeConstraintViolation"
FORMATION_VIOLATION: Final = "FormationViolation"  # 1.6
OCCURENCE_CONSTRAINT: Final = "OccurenceConstraintViolation"  # 1.6 (sic)
FORMAT_VIOLATION: Final = "FormatViolation"  # 2.0.1
OCCURRENCE_CONSTRAINT: Final = "OccurrenceConstraintViolation"  # 2.0.1
MESSAGE_TYPE_NOT_SUPPORTED: Final = "MessageTypeNotSupported"  # 2.0.1
RPC_FRAMEWORK_ERROR: Final = "RpcFrameworkError"  # 2.0.1

_COMMON: Final = frozenset(
    {
        NOT_IMPLEMENTED,
        NOT_SUPPORTED,
        INTERNAL_ERROR,
        PROTOCOL_ERROR,
        SECURITY_ERROR,
        GENERIC_ERROR,
        PROPERTY_CONSTRAINT,
        TYPE_CONSTRAINT,
    }
)
CODES: Final[dict[str, frozenset[str]]] = {
    V16: _COMMON | {FORMATION_VIOLATION, OCCURENCE_CONSTRAINT},
    V201: _COMMON
    | {FORMAT_VIOLATION, OCCURRENCE_CONSTRAINT, MESSAGE_TYPE_NOT_SUPPORTED, RPC_FRAMEWORK_ERROR},
}
_RESPELL: Final[dict[str, dict[str, str]]] = {
    V16: {FORMAT_VIOLATION: FORMATION_VIOLATION, OCCURRENCE_CONSTRAINT: OCCURENCE_CONSTRAINT},
    V201: {FORMATION_VIOLATION: FORMAT_VIOLATION, OCCURENCE_CONSTRAINT: OCCURRENCE_CONSTRAINT},
}

#: Malformed-message reasons (``gateway.ocpp.rpc_frames.Malformed.reason``) answered with the
#: version's format code, or, in 2.0.1, with RpcFrameworkError when the id could not be read.
FORMAT_REASONS: Final = frozenset(
    {"too_large", "not_json", "not_array", "bad_type_id", "bad_id", "invalid_id", "bad_call"}
)


def normalize_version(version: str) -> str:
    """``"ocpp1.6"`` or ``"ocpp2.0.1"`` for a sub-protocol name or a bare version (``"1.6"``)."""
    name = "ocpp" + str(version).removeprefix("ocpp")
    if name not in CODES:
        raise ValueError(f"unsupported OCPP version {version!r} (ocpp1.6 or ocpp2.0.1)")
    return name


def code_for(version: str, code: str) -> str:
    """``code`` as spelt in ``version``; GenericError when the version has no such code."""
    code = _RESPELL[version].get(code, code)
    return code if code in CODES[version] else GENERIC_ERROR


def format_code(version: str) -> str:
    """The code for a syntactically bad message: FormationViolation / FormatViolation."""
    return FORMATION_VIOLATION if version == V16 else FORMAT_VIOLATION


def malformed_code(version: str, reason: str, id_readable: bool) -> str | None:
    """The code answering a malformed CALL (or unknown message type), None: no answer.

    1.6 ignores an unknown message type (OCPP-J 1.6 4.1.3); 2.0.1 answers it with
    MessageTypeNotSupported. A frame whose id cannot be read is, in 2.0.1, not a valid RPC
    request at all: RpcFrameworkError (part 4 4.3: "MessageId could not be read"), answered
    under the id ``"-1"``.
    """
    if reason == "unknown_type":
        return None if version == V16 else MESSAGE_TYPE_NOT_SUPPORTED
    if reason not in FORMAT_REASONS:
        raise ValueError(f"not a malformed-message reason: {reason!r}")
    if version == V201 and not id_readable:
        return RPC_FRAMEWORK_ERROR
    return format_code(version)
