"""API tokens (format, hashing, grants) and the per-token rate limiter."""

from __future__ import annotations

import re

import pytest

from gateway.api.audit import redact
from gateway.api.auth import (
    PREFIX,
    TokenError,
    check_grant,
    check_token,
    hash_token,
    new_token,
    token_id_of,
)
from gateway.api.ratelimit import RateLimiter, retry_after


def test_tokens_are_random_with_a_public_id_and_only_their_hash_is_kept() -> None:
    token_id, token = new_token()
    assert re.fullmatch(r"[0-9a-f]{12}", token_id)
    assert token.startswith(f"{PREFIX}{token_id}_") and len(token) == 4 + 12 + 1 + 43
    assert token_id_of(token) == token_id
    stored = hash_token(token)
    assert stored.startswith("sha256:") and len(stored) == 7 + 64 and token not in stored
    assert check_token(token, stored)
    assert not check_token(token[:-1] + ("A" if token[-1] != "A" else "B"), stored)
    other_id, other = new_token()
    assert other_id != token_id and not check_token(other, stored)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sgt_",
        "Bearer sgt_x",
        "sgt_0123456789ab",
        "sgt_0123456789AB_" + "a" * 43,
        "sgt_0123456789ab_" + "a" * 42,
        "sgt_0123456789ab_" + "a" * 43 + "=",
        "xyz_0123456789ab_" + "a" * 43,
    ],
)
def test_malformed_tokens_have_no_id(text: str) -> None:
    assert token_id_of(text) is None


def test_grants_must_fit_the_role() -> None:
    check_grant("admin", None, [])
    check_grant("operator", "acme", [])
    check_grant("regulator", None, ["f1"])
    for role, operator, fleets, why in (
        ("root", None, [], "role"),
        ("operator", None, [], "needs an operator"),
        ("admin", "acme", [], "needs an operator"),
        ("regulator", None, [], "at least one fleet"),
        ("operator", "acme", ["f1"], "only regulator"),
    ):
        with pytest.raises(TokenError, match=why):
            check_grant(role, operator, fleets)
    with pytest.raises(TokenError, match="rate_per_s"):
        check_grant("admin", None, [], rate_per_s=0)
    with pytest.raises(TokenError, match="burst"):
        check_grant("admin", None, [], burst=0)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5) and limiter.refused == 1
    assert limiter.take("b") == 0.0  # its own bucket
    clock.t += 0.25
    assert limiter.take("a") == pytest.approx(0.25)  # half a request refilled
    clock.t += 0.25
    assert limiter.take("a") == 0.0
    clock.t += 100  # refills up to the burst, not beyond
    assert [limiter.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert limiter.refused == 3


def test_a_tokens_own_limits_override_the_defaults() -> None:
    clock = Clock()
    limiter = RateLimiter(100.0, 100, clock=clock)
    assert limiter.take("slow", 0.5, 1) == 0.0
    assert limiter.take("slow", 0.5, 1) == pytest.approx(2.0)
    assert retry_after(2.0) == "2" and retry_after(0.01) == "1" and retry_after(2.1) == "3"


def test_the_buckets_are_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, max_keys=10, clock=clock)
    for i in range(10):
        limiter.take(f"k{i}")
    limiter.take("k0")  # k0 now empty
    clock.t += 0.5  # nobody has refilled completely
    limiter.take("new")
    assert len(limiter._buckets) <= 10
    assert "new" in limiter._buckets


def test_the_audit_masks_secrets_in_command_arguments() -> None:
    upgrade = {"command": "upgrade", "params": {"apn": "cmnet", "password": "s3cret", "port": 21}}
    assert redact(upgrade) == {
        "command": "upgrade",
        "params": {"apn": "cmnet", "password": "***", "port": 21},
    }
    assert redact({"key": "AuthorizationKey", "value": "0011"}) == {
        "key": "AuthorizationKey",
        "value": "***",
    }
    assert redact({"key": "HeartbeatInterval", "value": "60"})["value"] == "60"
    variables = {
        "variables": [
            ["SecurityCtrlr", "BasicAuthPassword", "hunter2hunter2"],
            [{"name": "SecurityCtrlr"}, {"name": "BasicAuthPassword"}, "x" * 16, "Actual"],
            ["OCPPCommCtrlr", "HeartbeatInterval", "300"],
        ]
    }
    assert redact(variables) == {
        "variables": [
            ["SecurityCtrlr", "BasicAuthPassword", "***"],
            [{"name": "SecurityCtrlr"}, {"name": "BasicAuthPassword"}, "***", "Actual"],
            ["OCPPCommCtrlr", "HeartbeatInterval", "300"],
        ]
    }
    payload = {"action": "X", "payload": {"nested": [{"clientSecret": "k"}]}}
    assert redact(payload)["payload"] == {"nested": [{"clientSecret": "***"}]}
