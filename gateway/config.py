"""The one configuration file (TOML), validated with msgspec; secrets come from the environment.

Every limit the gateway enforces has a named key here. A bad file raises :class:`ConfigError`
whose message names the key and the problem, e.g. ``pipeline.batch_rows: Expected `int`, got
`str```.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from gateway.api.config import ApiConfig
from gateway.config_base import (
    Fraction,
    NonNegative,
    NonNegativeFloat,
    Port,
    Positive,
    PositiveFloat,
)
from gateway.config_base import Section as _Section
from gateway.forward.config import ForwardConfig
from gateway.metrics_config import MetricsConfig
from gateway.mqtt_config import MqttConfig
from gateway.reports.config import ReportsConfig
from gateway.republish.config import RepublishConfig

__all__ = ["Fraction", "NonNegative", "NonNegativeFloat", "Port", "Positive", "PositiveFloat"]


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names the key."""


class DatabaseConfig(_Section, frozen=True):
    """``[database]``: where the store is. The password may come from SILKGATE_DB_PASSWORD."""

    dsn: str = "postgresql://silkgate@127.0.0.1:55432/silkgate"
    pool_size: Positive = 4
    connect_timeout_s: PositiveFloat = 5.0
    command_timeout_s: PositiveFloat = 30.0


class PipelineConfig(_Section, frozen=True):
    """``[pipeline]``: batching and bounds of the ingest pipeline."""

    batch_rows: Positive = 5000  # flush when a batch holds this many rows ...
    batch_age_ms: Positive = 200  # ... or when its oldest row is this old
    queue_rows: Positive = 100_000  # rows waiting per table; submit() waits beyond this
    dedup: bool = True  # staging table + ON CONFLICT DO NOTHING (False: plain COPY)
    # Batches written at once, each on its own pooled connection. 1 keeps submission order
    # everywhere: batches commit (or go to the spool) in order, so of a frame and its duplicate
    # or reissue the first copy is the one stored. 2 adds about 20 % (benchmarks/ingest.py: 50,000
    # realtime rows/s sustained at p99 0.3 s) but batches may then commit or spool out of order.
    writers: Positive = 1
    retries_in_place: Annotated[int, msgspec.Meta(ge=0)] = 3  # deadlocks retried before spooling
    retry_interval_s: PositiveFloat = 2.0  # how often to probe a database that is away
    replay_rows_per_s: Positive = 50_000  # spool replay throttle
    shutdown_grace_s: PositiveFloat = 30.0  # how long a stop waits for in-flight rows


class SpoolConfig(_Section, frozen=True):
    """``[spool]``: the on-disk spool used while the database is away."""

    path: str = "/var/lib/silkgate/spool"
    max_bytes: Positive = 1 << 30
    segment_bytes: Positive = 64 << 20
    fsync: Literal["always", "batch", "never"] = "always"
    fsync_interval_ms: Positive = 50
    nearly_full: Fraction = 0.8


class RetentionConfig(_Section, frozen=True):
    """``[retention]``: days of data kept per table group (0 keeps everything)."""

    telemetry_days: Annotated[int, msgspec.Meta(ge=0)] = 365
    raw_frames_days: Annotated[int, msgspec.Meta(ge=0)] = 90
    dead_letters_days: Annotated[int, msgspec.Meta(ge=0)] = 90


class _ListenerBase(_Section, frozen=True):
    """Keys shared by every TCP listener (``[listeners.<protocol>]``).

    Timeouts: ``login_timeout_s`` from connect (or from a logout) to a successful login /
    authentication; ``heartbeat_timeout_s`` the longest silence (no complete frame) of a
    logged-in session, 0 disables it; ``idle_timeout_s`` the longest time without a single byte
    in any state; ``frame_timeout_s`` how long a frame that has started to arrive may take to
    complete (slow senders). ``max_bad_frames`` bad frames (garbage, checksum, undecodable) are
    survived, the next one closes the connection. ``max_unacked_frames`` frames per connection
    may wait for durability; reading pauses beyond. ``read_buffer_bytes`` received bytes are
    held before reading from the socket pauses; ``write_buffer_bytes`` of unsent replies pause
    reading too (a terminal that does not read its acks). ``unknown_devices``: ``accept`` lets
    devices missing from the registry in (their login / registration is flagged
    ``registered: false``), ``reject`` refuses them with the protocol's response code.
    """

    enabled: bool = False
    host: str = "0.0.0.0"
    port: Port = 0
    tls_cert: str = ""  # PEM certificate chain; with tls_key, the port speaks TLS
    tls_key: str = ""
    tls_client_ca: str = ""  # PEM CA bundle: when set, clients must present a certificate
    backlog: Positive = 1024
    reuse_port: bool = False  # SO_REUSEPORT (several worker processes on one port)
    max_frame_bytes: Positive = 65556
    max_connections: Positive = 20_000
    max_connections_per_ip: Positive = 1000
    login_timeout_s: PositiveFloat = 30.0
    heartbeat_timeout_s: NonNegativeFloat = 300.0
    idle_timeout_s: PositiveFloat = 600.0
    frame_timeout_s: PositiveFloat = 30.0
    max_bad_frames: NonNegative = 10
    max_unacked_frames: Positive = 64
    read_buffer_bytes: Positive = 65536
    write_buffer_bytes: Positive = 65536
    drain_timeout_s: PositiveFloat = 10.0  # at stop: how long acks in flight may take
    unknown_devices: Literal["accept", "reject"] = "accept"

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca needs tls_cert and tls_key")

    @property
    def tls(self) -> bool:
        """True when the port speaks TLS."""
        return bool(self.tls_cert)


class PlatformAccount(_Section, frozen=True):
    """An upstream platform allowed to log in with GB/T 32960 0x05; the password is read from
    the environment variable ``password_env``, never from the file."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=12)]
    password_env: Annotated[str, msgspec.Meta(min_length=1)]


class Gbt32960ListenerConfig(_ListenerBase, frozen=True):
    """``[listeners.gbt32960]``: the GB/T 32960 port. Responses vary in the field:
    ``ack_realtime`` / ``ack_reissue`` say whether 0x02 / 0x03 are answered at all;
    ``response_body`` is ``time`` (a 6-byte time only) or ``echo`` (the request's data unit,
    its time replaced by the one ``response_time`` picks: the request's own, ``request``, or
    the platform clock, ``platform``). ``platforms`` may log in with 0x05 and
    then carry frames of many VINs."""

    port: Port = 32960
    ack_realtime: bool = True
    ack_reissue: bool = True
    response_body: Literal["time", "echo"] = "time"
    response_time: Literal["request", "platform"] = "request"
    platforms: list[PlatformAccount] = []


class Jt808ListenerConfig(_ListenerBase, frozen=True):
    """``[listeners.jt808]``: the JT/T 808 port. ``auth_code_chars`` is the length of the
    authentication codes issued with 0x8100; subpackaged messages are reassembled within
    ``subpackage_timeout_s`` (then re-requested once with 0x8003, then dropped), holding at
    most ``max_subpackage_sets`` sets and ``max_subpackage_bytes`` per connection."""

    port: Port = 8808
    max_frame_bytes: Positive = 2092
    auth_code_chars: Annotated[int, msgspec.Meta(ge=4, le=64)] = 16
    subpackage_timeout_s: PositiveFloat = 30.0
    max_subpackage_sets: Positive = 16
    max_subpackage_bytes: Positive = 1 << 20


class ListenersConfig(_Section, frozen=True):
    """``[listeners]``: the TCP ports devices connect to (both disabled by default)."""

    gbt32960: Gbt32960ListenerConfig = Gbt32960ListenerConfig()
    jt808: Jt808ListenerConfig = Jt808ListenerConfig()


class RegistryConfig(_Section, frozen=True):
    """``[registry]``: the device registry cache (vehicles by VIN, terminals by phone)."""

    cache_ttl_s: PositiveFloat = 60.0  # known and unknown devices alike
    cache_entries: Positive = 100_000


class CommandsConfig(_Section, frozen=True):
    """``[commands]``: commands down to trucks.

    ``timeout_s``: how long a command waits for the terminal's answer (the default of every
    call). ``max_pending``: commands sent or queued and not yet answered, in all; more raise
    ``gateway.commands.CommandError`` (the REST API answers 429/503).
    """

    timeout_s: PositiveFloat = 30.0
    max_pending: Positive = 10_000


class OcppBridgeConfig(_Section, frozen=True):
    """``[[ocpp.bridge]]``: relay these chargers to the operator's own CSMS.

    silkgate opens one client connection per charger to ``url`` + ``/`` + the charger's
    identity, speaking ``version`` (translating when the charger speaks the other one), and
    relays both ways. ``chargers``: identities, or ``["*"]`` for every charger. The Basic-auth
    password for the upstream comes from the environment variable ``password_env`` (none: the
    charger's own password is passed through; no Authorization header when it sent none).
    ``answer_timeout_s``: how long a charger's CALL waits for the
    upstream's answer before silkgate answers it itself.
    """

    name: Annotated[str, msgspec.Meta(min_length=1)]
    url: Annotated[str, msgspec.Meta(pattern=r"^wss?://")]
    chargers: list[str] = msgspec.field(default_factory=lambda: ["*"])
    version: Literal["ocpp1.6", "ocpp2.0.1", "same"] = "same"
    password_env: str = ""
    tls_ca: str = ""  # PEM bundle to verify a wss:// upstream (empty: the system's)
    answer_timeout_s: PositiveFloat = 10.0
    reconnect_min_s: PositiveFloat = 1.0
    reconnect_max_s: PositiveFloat = 60.0


class OcppConfig(_Section, frozen=True):
    """``[ocpp]``: the OCPP 1.6J / 2.0.1 central system (WebSocket, ``ws[s]://host:port/ocpp/<id>``).

    ``subprotocols``: the versions offered, in preference order. ``unknown_chargers``: a charge
    point missing from the registry gets HTTP 404 (``reject``) or is let in and flagged
    (``accept``), then answered ``unknown_boot_status`` at BootNotification.
    ``security_profile``: the default for chargers whose registry row names none: 0 no
    authentication (trusted test networks only), 1 HTTP Basic, 2 HTTP Basic over TLS (needs
    ``tls_cert`` / ``tls_key``). ``idle_timeout_s``: the longest silence (no message, no pong)
    before the connection is closed. ``heartbeat_interval_s``: the interval BootNotification
    gives an accepted charger, ``boot_retry_interval_s`` a pending or rejected one.
    ``unknown_id_tokens``: the status Authorize gives a token missing from the local list
    (``Invalid``, or ``Accepted`` for open sites). ``id_tags``: ``hash`` stores tokens hashed
    in charging sessions, ``plain`` as sent. ``call_timeout_s``: the default wait of commands
    sent to chargers.
    """

    enabled: bool = False
    host: str = "0.0.0.0"
    port: Port = 9000
    path: Annotated[str, msgspec.Meta(pattern=r"^/[^?#]*$")] = "/ocpp"
    subprotocols: list[Literal["ocpp2.0.1", "ocpp1.6"]] = msgspec.field(
        default_factory=lambda: ["ocpp2.0.1", "ocpp1.6"]
    )
    unknown_chargers: Literal["accept", "reject"] = "reject"
    unknown_boot_status: Literal["Accepted", "Pending", "Rejected"] = "Pending"
    security_profile: Annotated[int, msgspec.Meta(ge=0, le=2)] = 1
    tls_cert: str = ""
    tls_key: str = ""
    max_message_bytes: Positive = 65536
    max_connections: Positive = 20_000
    max_connections_per_ip: Positive = 1000
    idle_timeout_s: PositiveFloat = 900.0
    ping_interval_s: NonNegativeFloat = 60.0  # WebSocket ping; 0 disables
    ping_timeout_s: PositiveFloat = 30.0
    heartbeat_interval_s: Positive = 300
    boot_retry_interval_s: Positive = 60
    unknown_id_tokens: Literal["Invalid", "Accepted"] = "Invalid"
    id_tags: Literal["hash", "plain"] = "hash"
    call_timeout_s: PositiveFloat = 30.0
    max_open_calls: Positive = 16
    bridge: list[OcppBridgeConfig] = []

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.security_profile == 2 and not self.tls_cert:
            raise ValueError("security_profile 2 needs tls_cert and tls_key")
        if not self.subprotocols:
            raise ValueError("subprotocols must name at least one version")

    @property
    def tls(self) -> bool:
        """True when the port speaks TLS (wss://)."""
        return bool(self.tls_cert)


class Config(_Section, frozen=True):
    """The whole file. Every section is optional; defaults suit a single small gateway."""

    database: DatabaseConfig = DatabaseConfig()
    pipeline: PipelineConfig = PipelineConfig()
    spool: SpoolConfig = SpoolConfig()
    retention: RetentionConfig = RetentionConfig()
    listeners: ListenersConfig = ListenersConfig()
    registry: RegistryConfig = RegistryConfig()
    commands: CommandsConfig = CommandsConfig()
    forward: ForwardConfig = ForwardConfig()
    ocpp: OcppConfig = OcppConfig()
    mqtt: MqttConfig = MqttConfig()
    republish: RepublishConfig = RepublishConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    reports: ReportsConfig = ReportsConfig()

    def database_dsn(self) -> str:
        """``database.dsn``, or SILKGATE_DSN when set (containers), with the password from
        SILKGATE_DB_PASSWORD filled in when that is set and the DSN has none."""
        dsn = os.environ.get("SILKGATE_DSN") or self.database.dsn
        password = os.environ.get("SILKGATE_DB_PASSWORD")
        if not password:
            return dsn
        scheme, sep, rest = dsn.partition("://")
        user, at, host = rest.partition("@")
        if not (sep and at) or ":" in user:
            return dsn
        return f"{scheme}://{user}:{password}@{host}"


def parse(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document."""
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(_name_the_key(str(exc))) from None


def load(path: str | Path) -> Config:
    """Read and validate a TOML configuration file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _name_the_key(message: str) -> str:
    """Turn msgspec's ``... - at `$.pipeline.batch_rows``` into ``pipeline.batch_rows: ...``."""
    problem, sep, where = message.rpartition(" - at `$.")
    if not sep:
        return message
    return f"{where.rstrip('`')}: {problem}"
