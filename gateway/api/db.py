"""The API's own connection pool: apart from the ingest pool (a slow query never holds up a
batch), with a ``statement_timeout``, and with codecs that suit JSON answers: ``json`` /
``jsonb`` columns come back as :class:`msgspec.Raw` (embedded in the answer unparsed) and
``bytea`` as hex text, ``real`` as the shortest decimal that reads back as the same value."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from gateway.api.config import ApiConfig
from gateway.store.connection import SERVER_SETTINGS

_encode = msgspec.json.Encoder().encode


def _json_in(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, msgspec.Raw):
        return bytes(value).decode()
    return _encode(value).decode()


def _json_out(text: str) -> msgspec.Raw:
    return msgspec.Raw(text)


def _bytea_in(value: Any) -> bytes:
    return bytes.fromhex(value) if isinstance(value, str) else bytes(value)


def _bytea_out(data: bytes) -> str:
    return data.hex()


async def init_connection(conn: asyncpg.Connection) -> None:
    """The codecs of an API connection (see the module docstring)."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=_json_in, decoder=_json_out, format="text"
        )
    await conn.set_type_codec(
        "bytea", schema="pg_catalog", encoder=_bytea_in, decoder=_bytea_out, format="binary"
    )
    # real as PostgreSQL prints it (shortest exact text: 12.3, not 12.300000190734863)
    await conn.set_type_codec(
        "float4", schema="pg_catalog", encoder=repr, decoder=float, format="text"
    )


async def create_api_pool(
    dsn: str, cfg: ApiConfig, *, connect_timeout_s: float = 5.0, min_size: int = 1
) -> asyncpg.Pool:
    """The API's pool (``cfg.pool_size`` connections at most)."""
    settings = {
        **SERVER_SETTINGS,
        "application_name": "silkgate-api",
        "statement_timeout": str(int(cfg.query_timeout_s * 1000)),
    }
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(min_size, cfg.pool_size),
        max_size=cfg.pool_size,
        init=init_connection,
        server_settings=settings,
        timeout=connect_timeout_s,
        command_timeout=cfg.query_timeout_s + 5,
    )
    assert pool is not None
    return pool
