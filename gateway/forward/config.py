"""``[forward]``: the upstream GB/T 32960 platforms and the JSON feeds, and which vehicles go where.

TOML shape (every key but the marked ones has a default; see docs/forward.md)::

    [forward]
    poll_interval_ms = 200          # how often a caught-up forwarder looks for new frames
    page_rows = 500                 # archive rows read per query

    [[forward.gbt32960]]
    name = "national"               # required, unique among all forwarders (names the cursor)
    host = "platform.example.cn"    # required
    port = 19006                    # required
    version = "2016"                # the upstream's edition: "2016" or "2025"
    username = "silkgate"           # required: platform login (0x05), at most 12 ASCII chars
    password_env = "SILKGATE_NATIONAL_PASSWORD"   # required: environment variable, 20 chars max
    select = { operators = ["acme"] }             # required: vins / operators / fleets / all

    [[forward.json]]
    name = "regulator"              # required
    url = "https://regulator.example/v1/telemetry"  # required
    token_env = "SILKGATE_REGULATOR_TOKEN"        # optional bearer token
    select = { all = true }                       # required

Secrets never sit in the file: ``password_env``, ``token_env`` and ``header_envs`` name
environment variables, read when the forwarders are built (:func:`secret`; a missing one is a
:class:`gateway.config.ConfigError` naming the key).

The sections build on :mod:`gateway.config_base` (not :mod:`gateway.config`, which imports
:class:`ForwardConfig`), so ``gateway.config.parse`` names the key of every error here too.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

import msgspec

from gateway.config_base import NonNegativeFloat, Positive, PositiveFloat
from gateway.config_base import Section as _Section

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class Selection(_Section, frozen=True):
    """Which vehicles a forwarder carries: the union of the VINs listed, the vehicles of the
    operators and fleets listed (the device registry's ``vehicles`` table; JT/T 808 terminals
    through ``terminals.vin`` / ``terminals.operator_id``), or ``all``."""

    vins: list[str] = msgspec.field(default_factory=list)
    operators: list[str] = msgspec.field(default_factory=list)
    fleets: list[str] = msgspec.field(default_factory=list)
    all: bool = False

    def __post_init__(self) -> None:
        listed = bool(self.vins or self.operators or self.fleets)
        if self.all and listed:
            raise ValueError("`all = true` and a vins/operators/fleets list exclude each other")
        if not (self.all or listed):
            raise ValueError("select nothing? give vins, operators, fleets, or all = true")


class TlsConfig(_Section, frozen=True):
    """TLS towards an upstream. Without ``ca_file`` the system's CA certificates are used."""

    ca_file: str | None = None
    cert_file: str | None = None  # client certificate (mutual TLS), PEM
    key_file: str | None = None  # its key, when not inside cert_file
    server_name: str | None = None  # SNI and the name checked (default: the host)
    verify: bool = True  # False: encrypt but trust any certificate (testing only)


class GbtUpstream(_Section, frozen=True):
    """``[[forward.gbt32960]]``: one upstream platform that receives frames as GB/T 32960.

    The forwarder logs in as a platform (0x05) with ``username`` / the password read from
    ``password_env``, relays the selected vehicles' login, realtime, reissue and logout frames
    (re-encoded when ``version`` differs from the vehicle's), sends heartbeats when idle, and
    logs out (0x06) on shutdown.
    """

    name: Name
    host: str
    port: Port
    username: str
    password_env: str
    select: Selection
    version: Literal["2016", "2025"] = "2016"
    platform_id: str | None = None  # the header's unique code (17 chars; default: username)
    tls: TlsConfig | None = None  # a [forward.gbt32960.tls] table turns TLS on
    ack_realtime: bool = True  # False: the upstream never answers 0x02/0x03 frames
    window: Positive = 64  # frames sent and not yet acknowledged, at most
    ack_timeout_s: PositiveFloat = 30.0  # no answer this long: reconnect and resend
    login_timeout_s: PositiveFloat = 10.0
    connect_timeout_s: PositiveFloat = 10.0
    heartbeat_s: PositiveFloat = 30.0  # a heartbeat (0x07) after this long without sending
    max_frames_per_s: PositiveFloat = 1000.0  # also caps the replay after an outage
    reconnect_min_s: PositiveFloat = 1.0  # backoff after a failure: doubles from here ...
    reconnect_max_s: PositiveFloat = 60.0  # ... up to this
    cursor_save_ms: Positive = 200  # how often progress is written to forward_cursors
    start: Literal["latest", "earliest"] = "latest"  # where a new cursor begins
    close_grace_s: NonNegativeFloat = 5.0  # shutdown waits this long for outstanding acks

    def __post_init__(self) -> None:
        if not self.username.isascii() or len(self.username) > 12:
            raise ValueError("username: at most 12 ASCII characters (the 0x05 field is 12 bytes)")
        code = self.platform_id
        if code is not None and (not code.isascii() or len(code) > 17):
            raise ValueError("platform_id: at most 17 ASCII characters")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")

    @property
    def cursor_name(self) -> str:
        return f"gbt32960:{self.name}"

    @property
    def version_number(self) -> int:
        return int(self.version)


class JsonFeed(_Section, frozen=True):
    """``[[forward.json]]``: one HTTPS endpoint that receives the normalized records as JSON
    (the body is documented by docs/forward-feed.schema.json)."""

    name: Name
    url: str
    select: Selection
    token_env: str | None = None  # Authorization: Bearer <value of this variable>
    # extra headers: literal values (no secrets here), and values from the environment
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    header_envs: dict[str, str] = msgspec.field(default_factory=dict)
    ca_file: str | None = None  # trust these CAs instead of the system's
    cert_file: str | None = None  # client certificate (mutual TLS), PEM
    key_file: str | None = None
    batch_records: Positive = 500  # a POST when this many records are waiting ...
    batch_age_ms: Positive = 1000  # ... or the oldest waiting one is this old
    timeout_s: PositiveFloat = 10.0  # per request
    retry_min_s: PositiveFloat = 1.0  # backoff after an error, a timeout or a 5xx ...
    retry_max_s: PositiveFloat = 60.0  # ... doubling up to this
    rejected_retry_s: PositiveFloat = 300.0  # after a permanent rejection (4xx): retry this often
    start: Literal["latest", "earliest"] = "latest"

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise ValueError("url: must start with https:// (or http:// on a trusted network)")
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be >= retry_min_s")

    @property
    def cursor_name(self) -> str:
        return f"json:{self.name}"


class ForwardConfig(_Section, frozen=True):
    """``[forward]``: every forwarder. Without any, nothing is forwarded."""

    gbt32960: list[GbtUpstream] = msgspec.field(default_factory=list)
    json: list[JsonFeed] = msgspec.field(default_factory=list)
    poll_interval_ms: Positive = 200
    page_rows: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 500

    def __post_init__(self) -> None:
        names = [u.name for u in self.gbt32960] + [f.name for f in self.json]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"forwarder names must be unique: {', '.join(dupes)} repeated")


def secret(env: str, key: str) -> str:
    """The value of environment variable ``env``; ``key`` names the config key in the error."""
    from gateway.config import ConfigError  # here: see the module docstring

    value = os.environ.get(env)
    if not value:
        raise ConfigError(f"{key}: environment variable {env} is not set")
    return value
