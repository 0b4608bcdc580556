"""The HTTP side of an OCPP WebSocket handshake, without I/O: the charge point identity in the
URL, the sub-protocol choice, HTTP Basic credentials (binary AuthorizationKeys included) and
who may connect under which security profile.

Security profiles (OCPP 1.6 security whitepaper, 2.0.1 part 2 A): 0 none (trusted networks
only), 1 HTTP Basic, 2 HTTP Basic over TLS, 3 TLS client certificates (not supported here:
refused). The profile is the registry's ``chargers.security_profile``, else the listener's
``[ocpp] security_profile``.

Unknown charge points (no registry row) let in by ``unknown_chargers = "accept"`` have no
password to check: they get in only when the profile that applies to them (the listener's
default) is 0; under 1 or 2 they get 401 like a wrong password. While the registry cannot be
asked (database away, nothing cached) a charger gets 503 (retry later), except under profile
0 with ``unknown_chargers = "accept"``, where everyone is let in anyway.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple
from urllib.parse import unquote_to_bytes

from gateway.registry import Device, check_password

MAX_IDENTITY_CHARS: Final = 48
WWW_AUTHENTICATE: Final = 'Basic realm="silkgate OCPP", charset="UTF-8"'


class Refusal(NamedTuple):
    """An HTTP answer that refuses the handshake: status, a short text body, extra headers."""

    status: int
    reason: str
    headers: dict[str, str] = {}


class Credentials(NamedTuple):
    """HTTP Basic credentials: the username (the charge point identity) and the password as
    the raw bytes sent (an AuthorizationKey may be binary)."""

    username: str
    password: bytes


def identity_from_path(segment: str | bytes) -> str:
    """The charge point identity from the URL's last path segment, as sent (percent-encoded).

    Raises ValueError when the segment is not a single path segment or does not decode to
    UTF-8, and for the identity rules of :func:`identity_problem`."""
    raw = segment.encode("utf-8") if isinstance(segment, str) else segment
    if b"/" in raw:
        raise ValueError("the charge point identity must be one path segment")
    try:
        identity = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the charge point identity is not UTF-8") from None
    problem = identity_problem(identity)
    if problem:
        raise ValueError(problem)
    return identity


def identity_problem(identity: str) -> str | None:
    """What is wrong with a (decoded) charge point identity, or None.

    OCPP 2.0.1 part 4: at most 48 characters, no ``:`` (the identity is the Basic-auth
    username). Control characters are refused as well (identities end up in logs)."""
    if not identity:
        return "the charge point identity is empty"
    if len(identity) > MAX_IDENTITY_CHARS:
        return f"the charge point identity is longer than {MAX_IDENTITY_CHARS} characters"
    if ":" in identity:
        return "the charge point identity contains ':'"
    if not identity.isprintable():
        return "the charge point identity contains control characters"
    return None


def offered_subprotocols(headers: Iterable[str]) -> list[str]:
    """The sub-protocols of ``Sec-WebSocket-Protocol`` header values (comma-separated)."""
    return [token.strip() for value in headers for token in value.split(",") if token.strip()]


def choose_subprotocol(offered: Iterable[str], supported: Sequence[str]) -> str | None:
    """The first of ``supported`` (the server's preference order) that the client offers."""
    offer = set(offered)
    for version in supported:
        if version in offer:
            return version
    return None


def parse_basic(header: str | bytes | None) -> Credentials | None:
    """The credentials of an ``Authorization: Basic ...`` header value; None when absent or
    malformed. The username ends at the first ``:`` (identities have none), so the password
    keeps every byte after it, ``:`` and non-UTF-8 bytes included."""
    if header is None:
        return None
    if isinstance(header, str):
        try:
            header = header.encode("latin-1")
        except UnicodeEncodeError:
            return None
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = binascii.a2b_base64(token.strip(), strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        username = user.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return Credentials(username, password)


def basic_header(username: str, password: bytes) -> str:
    """An ``Authorization`` header value for ``username`` and raw ``password`` bytes."""
    return "Basic " + base64.b64encode(username.encode("utf-8") + b":" + password).decode("ascii")


def check_access(
    identity: str,
    device: Device,
    credentials: Credentials | None,
    *,
    default_profile: int,
    unknown_chargers: str,
    tls: bool,
) -> Refusal | None:
    """Whether charge point ``identity`` (``device``: its registry entry) may connect with
    ``credentials``: None when it may, else the HTTP refusal (see the module docstring)."""
    if not device.verified:
        if default_profile == 0 and unknown_chargers == "accept":
            return None
        return Refusal(
            503, "the charger registry is unavailable; retry later", {"Retry-After": "30"}
        )
    if not device.known and unknown_chargers != "accept":
        return Refusal(404, f"unknown charge point {identity}")
    profile = device.security_profile if device.security_profile is not None else default_profile
    if profile == 0:
        return None
    if profile >= 3:
        return Refusal(403, "security profile 3 (TLS client certificates) is not supported")
    if profile == 2 and not tls:
        return Refusal(403, "security profile 2: connect with wss://")
    if (
        credentials is None
        or credentials.username != identity
        or not device.known
        or not check_password(credentials.password, device.auth_code_hash)
    ):
        return Refusal(401, "authentication required", {"WWW-Authenticate": WWW_AUTHENTICATE})
    return None
