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

Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names the key."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


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
    writers: Positive = 2  # batches written at once, each on its own pooled connection
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


class Config(_Section, frozen=True):
    """The whole file. Every section is optional; defaults suit a single small gateway."""

    database: DatabaseConfig = DatabaseConfig()
    pipeline: PipelineConfig = PipelineConfig()
    spool: SpoolConfig = SpoolConfig()
    retention: RetentionConfig = RetentionConfig()

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
