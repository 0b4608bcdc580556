"""Throw-away schemas for tests and benchmarks: isolation without CREATE DATABASE; and
:func:`local_dsn`, the database of a checkout's local services (benchmarks).

The local ``silkgate`` role may not create databases, and only a superuser can create the
timescaledb extension in a new one. A fresh schema in the existing database isolates just as
well: every store object is created unqualified, in the first schema of the ``search_path``, and
the returned DSN carries ``search_path=<schema>,public`` (asyncpg sends unknown DSN query
parameters as server settings; the extension lives in ``public``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from gateway.store.migrate import migrate


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``search_path=<schema>,public`` added to its query."""
    parts = urlsplit(dsn)
    param = f"search_path={quote(f'{schema},public', safe='')}"
    query = f"{parts.query}&{param}" if parts.query else param
    return urlunsplit(parts._replace(query=query))


async def connect_retry(dsn: str, timeout: float = 30.0) -> asyncpg.Connection:
    """Connect, retrying while the server is (re)starting (other tests may restart it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.CannotConnectNowError):
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def create_schema(dsn: str, prefix: str = "silkgate_test") -> str:
    """Create a fresh, randomly named schema; returns its name."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    conn = await connect_retry(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    return schema


async def drop_schema(dsn: str, schema: str) -> None:
    """Drop a schema and everything in it (hypertables take their chunks with them)."""
    conn = await connect_retry(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_schema(dsn: str, prefix: str = "silkgate_test") -> AsyncIterator[str]:
    """Create a fresh schema, yield a DSN that uses it, drop it (with everything in it) after."""
    schema = await create_schema(dsn, prefix)
    try:
        yield with_search_path(dsn, schema)
    finally:
        await drop_schema(dsn, schema)


def migrated_schema(dsn: str, prefix: str = "silkgate_test") -> Iterator[str]:
    """Generator for a synchronous pytest fixture: a fresh migrated schema's DSN, dropped after.

    Each step runs in its own event loop, so the fixture can be module-scoped while the tests
    keep their function-scoped loops.
    """
    schema = asyncio.run(create_schema(dsn, prefix))
    try:
        scoped = with_search_path(dsn, schema)
        asyncio.run(migrate(scoped))
        yield scoped
    finally:
        asyncio.run(drop_schema(dsn, schema))


def local_dsn(repo: Path) -> str:
    """SILKGATE_DSN, or else the local services of ``repo``'s ``deploy/services.sh``: started
    (idempotent; its output goes to stderr) and their DSN read from ``services.sh env``. For
    benchmarks and scripts run from a checkout."""
    dsn = os.environ.get("SILKGATE_DSN")
    if dsn:
        return dsn
    services = ["bash", str(repo / "deploy" / "services.sh")]
    subprocess.run([*services, "start"], check=True, stdout=sys.stderr, stdin=subprocess.DEVNULL)
    env = subprocess.run([*services, "env"], check=True, capture_output=True, text=True).stdout
    for line in env.splitlines():
        key, _, value = line.partition("=")
        if key == "SILKGATE_DSN":
            return value
    raise RuntimeError("deploy/services.sh env printed no SILKGATE_DSN")
