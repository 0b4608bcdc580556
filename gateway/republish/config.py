"""``[republish]``: the local broker the normalized records are published to, and how.

TOML shape (every key in docs/republish.md)::

    [republish]
    enabled = true
    host = "127.0.0.1"
    qos = 1                           # 0, 1 or 2
    topic_prefix = "silkgate/v1"      # topics: <prefix>/<operator>/<kind>/<device>

Built on :mod:`gateway.config_base` (``gateway.config`` imports this section) and free of MQTT
client imports.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from gateway.config_base import Positive, PositiveFloat
from gateway.config_base import Section as _Section
from gateway.forward.config import Name, Port, TlsConfig

Kind = Literal[
    "vehicle_realtime",
    "position",
    "alarm",
    "session_event",
    "charger_status",
    "meter_value",
    "charging_session",
    "charger_event",
    "swap_event",
    "station_status",
    "battery_inventory",
    "battery_charging",
]
"""The record kinds republished (a topic level, and ``kind`` in every message)."""

ALL_KINDS: tuple[Kind, ...] = get_args(Kind)

#: MQTT packet identifiers are 16 bits: at most 65535 messages can await their acknowledgement.
InFlight = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class RepublishConfig(_Section, frozen=True):
    """``[republish]``: publish every committed normalized record to a local MQTT broker."""

    enabled: bool = False
    #: Names the durable cursor (``forward_cursors``: ``republish:<name>``).
    name: Name = "local"
    host: str = "127.0.0.1"
    port: Port = 1883
    protocol: Literal["5", "3.1.1"] = "5"
    qos: Literal[0, 1, 2] = 1
    retain: bool = False
    topic_prefix: str = "silkgate/v1"
    kinds: list[Kind] = msgspec.field(default_factory=lambda: list(ALL_KINDS))
    client_id: str = "silkgate-republish"
    username: str | None = None
    password_env: str | None = None  # environment variable holding the password
    #: A ``[republish.tls]`` table turns TLS on (the forwarders' keys; ``server_name`` aside).
    tls: TlsConfig | None = None
    #: Messages published and not yet acknowledged (QoS 0: not yet written), at most.
    max_in_flight: InFlight = 1000
    #: Outbox rows (committed batches, up to `pipeline.batch_rows` records each) read per query.
    page_batches: Positive = 4
    poll_interval_ms: Positive = 100  # how often a caught-up republisher looks for new rows
    cursor_save_ms: Positive = 200  # progress written to forward_cursors this often
    start: Literal["earliest", "latest"] = "earliest"  # a new cursor: the outbox's start or end
    keepalive_s: Positive = 30
    connect_timeout_s: PositiveFloat = 10.0
    #: Messages in flight and no acknowledgement for this long: reconnect and publish again.
    ack_timeout_s: PositiveFloat = 30.0
    backoff_initial_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 30.0
    close_grace_s: PositiveFloat = 5.0  # at stop: how long the outbox may take to drain

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id: must not be empty")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        if self.tls is not None and self.tls.server_name is not None:
            raise ValueError("tls.server_name: not supported here (the host name is checked)")
        if self.password_env is not None and self.username is None:
            raise ValueError("password_env without username")
        if why := prefix_error(self.topic_prefix):
            raise ValueError(f"topic_prefix {self.topic_prefix!r}: {why}")
        if not self.kinds:
            raise ValueError("kinds: name at least one kind (the default is all of them)")
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError("kinds: a kind is listed twice")

    @property
    def cursor_name(self) -> str:
        return f"republish:{self.name}"


def prefix_error(prefix: str) -> str | None:
    """Why ``prefix`` cannot start every topic, or None."""
    if not prefix:
        return "empty"
    if any(c in prefix for c in "+#\x00"):
        return "contains a wildcard ('+', '#') or NUL"
    if prefix.startswith("$"):
        return "topics starting with '$' are the broker's"
    if prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        return "empty topic level"
    return None
