"""The OCPP handshake rules without a server: HTTP Basic parsing (the OCPP-J 1.6 binary key
example included), charge point identities in the URL, the sub-protocol choice, and who may
connect under which security profile."""

from __future__ import annotations

import base64

import pytest

from gateway.adapters.ocpp_auth import (
    Credentials,
    basic_header,
    check_access,
    choose_subprotocol,
    identity_from_path,
    identity_problem,
    offered_subprotocols,
    parse_basic,
)
from gateway.registry import Device, hash_password

# OCPP-J 1.6, 7.1: identity AL1000, a 20-byte binary AuthorizationKey
SPEC_KEY = bytes.fromhex("0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF")
SPEC_HEADER = "Basic QUwxMDAwOgABAgMEBQYH////////////////"


# ------------------------------------------------------------------------------ HTTP Basic


def test_spec_binary_key_example() -> None:
    assert parse_basic(SPEC_HEADER) == Credentials("AL1000", SPEC_KEY)
    assert basic_header("AL1000", SPEC_KEY) == SPEC_HEADER


def test_header_as_bytes_and_scheme_case() -> None:
    assert parse_basic(SPEC_HEADER.encode()) == Credentials("AL1000", SPEC_KEY)
    assert parse_basic("basic  QUwxMDAwOgABAgMEBQYH////////////////  ") == Credentials(
        "AL1000", SPEC_KEY
    )


def test_password_keeps_colons_and_is_split_at_the_first() -> None:
    token = base64.b64encode(b"CP1:a:b\x00:\xff").decode()
    assert parse_basic(f"Basic {token}") == Credentials("CP1", b"a:b\x00:\xff")
    empty = base64.b64encode(b"CP1:").decode()
    assert parse_basic(f"Basic {empty}") == Credentials("CP1", b"")


def test_text_password() -> None:
    assert parse_basic(basic_header("CP-ü", b"s3cret")) == Credentials("CP-ü", b"s3cret")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:pw").decode(),  # username not UTF-8
        "Basic QUw=eA==",  # data after the padding
        "Basic ü",
    ],
)
def test_malformed_basic(header: str | None) -> None:
    assert parse_basic(header) is None


# ------------------------------------------------------------------------------ identities


@pytest.mark.parametrize(
    ("segment", "identity"),
    [
        (b"CP001", "CP001"),
        (b"CP%20001", "CP 001"),
        (b"%C3%A9t%C3%A9", "été"),
        (b"a%2Fb", "a/b"),  # an encoded slash is part of the identity
        (b"X" * 48, "X" * 48),
        ("AL1000", "AL1000"),
    ],
)
def test_identity_from_path(segment: bytes | str, identity: str) -> None:
    assert identity_from_path(segment) == identity


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        (b"", "empty"),
        (b"X" * 49, "longer than 48"),
        ("é" * 49, "longer than 48"),
        (b"CP:1", "':'"),
        (b"CP%3A1", "':'"),
        (b"a/b", "one path segment"),
        (b"%FF%FE", "not UTF-8"),
        (b"CP%0A1", "control"),
    ],
)
def test_bad_identity(segment: bytes | str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        identity_from_path(segment)


def test_identity_length_counts_characters() -> None:
    assert identity_problem("é" * 48) is None
    assert identity_problem("é" * 49) is not None


# ------------------------------------------------------------------------------ sub-protocols

SUPPORTED = ["ocpp2.0.1", "ocpp1.6"]


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["ocpp1.6"], "ocpp1.6"),
        (["ocpp2.0.1"], "ocpp2.0.1"),
        (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),  # the server's preference wins
        (["ocpp2.0", "ocpp1.6"], "ocpp1.6"),
        (["ocpp1.5", "ocpp2.0"], None),
        ([], None),
        (["OCPP1.6"], None),  # tokens are case-sensitive
    ],
)
def test_choose_subprotocol(offered: list[str], chosen: str | None) -> None:
    assert choose_subprotocol(offered, SUPPORTED) == chosen


def test_server_order_decides() -> None:
    assert choose_subprotocol(["ocpp2.0.1", "ocpp1.6"], ["ocpp1.6", "ocpp2.0.1"]) == "ocpp1.6"


def test_offered_subprotocols_splits_headers() -> None:
    assert offered_subprotocols(["ocpp2.0.1, ocpp1.6", " ocpp1.5 ", ""]) == [
        "ocpp2.0.1",
        "ocpp1.6",
        "ocpp1.5",
    ]


# ------------------------------------------------------------------------------ access

KEY = b"0123456789abcdef"


def charger(profile: int | None = None, *, known: bool = True, key: bytes = KEY) -> Device:
    return Device(
        device_id="CP1",
        known=known,
        auth_code_hash=hash_password(key) if known else None,
        security_profile=profile,
    )


def access(
    device: Device,
    credentials: Credentials | None,
    *,
    default: int = 1,
    unknown: str = "reject",
    tls: bool = False,
) -> int | None:
    refusal = check_access(
        "CP1", device, credentials, default_profile=default, unknown_chargers=unknown, tls=tls
    )
    return None if refusal is None else refusal.status


def test_profile_1_needs_the_right_key() -> None:
    assert access(charger(), Credentials("CP1", KEY)) is None
    assert access(charger(), None) == 401
    assert access(charger(), Credentials("CP1", b"wrong")) == 401
    assert access(charger(), Credentials("CP2", KEY)) == 401  # username must be the identity
    refusal = check_access(
        "CP1", charger(), None, default_profile=1, unknown_chargers="reject", tls=False
    )
    assert refusal is not None and refusal.headers["WWW-Authenticate"].startswith("Basic ")


def test_binary_key() -> None:
    device = charger(1, key=SPEC_KEY)
    creds = parse_basic(basic_header("CP1", SPEC_KEY))
    assert access(device, creds) is None
    assert access(device, Credentials("CP1", SPEC_KEY[:-1])) == 401


def test_registry_profile_overrides_the_default() -> None:
    assert access(charger(0), None, default=1) is None
    assert access(charger(1), None, default=0) == 401
    assert access(charger(None), None, default=0) is None


def test_profile_2_needs_tls() -> None:
    assert access(charger(2), Credentials("CP1", KEY), tls=False) == 403
    assert access(charger(2), Credentials("CP1", KEY), tls=True) is None
    assert access(charger(2), None, tls=True) == 401
    assert access(charger(1), Credentials("CP1", KEY), tls=True) is None


def test_profile_3_is_refused() -> None:
    assert access(charger(3), Credentials("CP1", KEY), tls=True) == 403


def test_unknown_chargers() -> None:
    unknown = charger(known=False)
    assert access(unknown, None, unknown="reject", default=0) == 404
    assert access(unknown, None, unknown="accept", default=0) is None
    # no key to check: under profile 1 or 2 an unknown charger cannot authenticate
    assert access(unknown, Credentials("CP1", KEY), unknown="accept", default=1) == 401


def test_registry_unavailable() -> None:
    unverified = Device(device_id="CP1", known=False, verified=False)
    assert access(unverified, Credentials("CP1", KEY), default=1) == 503
    assert access(unverified, None, default=0, unknown="reject") == 503
    assert access(unverified, None, default=0, unknown="accept") is None
