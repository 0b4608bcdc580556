"""Connections and pools for the store: UTC sessions with the staging tables ready.

Both helpers take a DSN; asyncpg passes unknown DSN query parameters to the server as settings,
so ``...?search_path=myschema,public`` points the store at another schema (the tests do that).
Migrate (:func:`gateway.store.migrate.migrate`) before opening writers: :func:`prepare` needs
the tables.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from gateway.store.writer import prepare

SERVER_SETTINGS = {"application_name": "silkgate", "TimeZone": "UTC"}


def _settings(kwargs: dict[str, Any]) -> dict[str, str]:
    return {**SERVER_SETTINGS, **kwargs.pop("server_settings", {})}


async def connect(dsn: str, *, staging: bool = True, **kwargs: Any) -> asyncpg.Connection:
    """One connection (``kwargs`` go to ``asyncpg.connect``); ``staging`` prepares the writer."""
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn, server_settings=_settings(kwargs), **kwargs
    )
    if staging:
        try:
            await prepare(conn)
        except BaseException:
            await conn.close()
            raise
    return conn


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    staging: bool = True,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool whose every connection is prepared for :func:`gateway.store.writer.write`."""

    async def init(conn: asyncpg.Connection) -> None:
        if staging:
            await prepare(conn)

    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init,
        server_settings=_settings(kwargs),
        **kwargs,
    )
    assert pool is not None  # only None when awaited twice
    return pool
