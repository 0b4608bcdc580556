"""``[api]``: the query and command API's listener, limits and defaults (docs/api.md).

TOML shape (every key has a default)::

    [api]
    enabled = true
    host = "127.0.0.1"
    port = 8080
    rate_per_s = 20.0        # each token's sustained request rate (token bucket) ...
    burst = 40               # ... and its bucket size

Built on :mod:`gateway.config_base` (``gateway.config`` imports this section) and free of
FastAPI imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from gateway.config_base import Port, Positive, PositiveFloat
from gateway.config_base import Section as _Section


class ApiConfig(_Section, frozen=True):
    """``[api]``: the HTTP API (FastAPI on uvicorn).

    ``rate_per_s`` / ``burst``: the token bucket of every API token (a token's own values in
    ``api_tokens`` override them); per worker process. ``default_rows`` / ``max_rows``: rows
    per page when ``limit`` is not given / at most. ``max_buckets``: time buckets one
    aggregate query may span. ``query_timeout_s``: PostgreSQL ``statement_timeout`` of the
    API's own connections (``pool_size`` of them, apart from the ingest pool).
    ``command_timeout_s``: how long a command waits for the device when the request does not
    say (at most ``max_command_timeout_s``). ``token_cache_s``: how long a token lookup is
    reused (a revocation takes at most this long to reach the other worker processes).
    ``max_connections``: open HTTP connections (per process) beyond which requests get 503;
    ``max_body_bytes``: the largest request body (413 beyond; a body must have a
    Content-Length). ``socket_dir``: where the worker processes of ``--workers N`` listen
    for each other's commands (unix sockets ``w<i>.sock``; empty: ``<spool.path>/api``).
    ``report_timeout_s``: how long one ``/v1/reports`` request may take in all (each of its
    statements still under ``query_timeout_s``); ``max_reports``: reports built at once per
    process (each holds one pool connection meanwhile; more get 503).
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 8080
    tls_cert: str = ""  # PEM certificate chain; with tls_key, the API speaks HTTPS
    tls_key: str = ""
    max_connections: Positive = 1000  # open HTTP connections; more get 503
    max_body_bytes: Positive = 1 << 20  # a larger request body gets 413
    pool_size: Positive = 4
    query_timeout_s: PositiveFloat = 30.0
    rate_per_s: PositiveFloat = 20.0
    burst: Positive = 40
    default_rows: Positive = 1000
    max_rows: Positive = 10_000
    max_buckets: Positive = 10_000
    command_timeout_s: PositiveFloat = 30.0
    max_command_timeout_s: PositiveFloat = 300.0
    token_cache_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    socket_dir: str = ""
    report_timeout_s: PositiveFloat = 300.0
    max_reports: Positive = 2

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.default_rows > self.max_rows:
            raise ValueError("default_rows must not exceed max_rows")
        if self.command_timeout_s > self.max_command_timeout_s:
            raise ValueError("command_timeout_s must not exceed max_command_timeout_s")

    @property
    def tls(self) -> bool:
        """True when the API speaks HTTPS."""
        return bool(self.tls_cert)


def command_socket_dir(cfg: ApiConfig, spool_path: str) -> Path:
    """Where the worker processes' command sockets are: ``[api] socket_dir``, else
    ``<spool.path>/api`` (``spool_path`` as configured, not a worker's own directory)."""
    return Path(cfg.socket_dir) if cfg.socket_dir else Path(spool_path) / "api"
