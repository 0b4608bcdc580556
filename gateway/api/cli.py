"""``silkgate token create | list | revoke``: API tokens from the command line (the database of
``--config``; migrations are applied first). Free of FastAPI imports."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import asyncpg

from gateway.render import to_builtins, to_json


def add_parser(sub: Any) -> None:
    """Add ``token`` and its subcommands to the ``silkgate`` parser's subparsers."""
    tok = sub.add_parser(
        "token",
        help="create, list and revoke API tokens",
        description="API tokens ([api], docs/api.md). A new token is printed once: only its "
        "hash is stored.",
    )
    tok.add_argument("--config", metavar="PATH", help="TOML configuration file")
    verbs = tok.add_subparsers(dest="token_command", required=True)
    create = verbs.add_parser("create", help="create a token and print it (once)")
    create.add_argument("--role", required=True, choices=("admin", "operator", "regulator"))
    create.add_argument("--operator", metavar="ID", help="operator tokens: the operator id")
    create.add_argument(
        "--fleet", action="append", default=[], metavar="ID", help="regulator tokens (repeatable)"
    )
    create.add_argument("--name", default="", help="what the token is for")
    create.add_argument("--rate", type=float, default=None, metavar="PER_S", help="requests/s")
    create.add_argument("--burst", type=int, default=None, metavar="N", help="bucket size")
    create.add_argument("--expires-days", type=float, default=None, metavar="D")
    listing = verbs.add_parser("list", help="the tokens (never their secrets), JSON lines")
    listing.add_argument("--all", action="store_true", help="revoked tokens too")
    revoke = verbs.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="ID")
    tok.set_defaults(func=cmd_token)


def cmd_token(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from gateway.config import Config, ConfigError, load

    try:
        cfg = load(ns.config) if ns.config else Config()
    except ConfigError as exc:
        print(f"silkgate: {exc}", file=err)
        return 2
    if ns.token_command == "create":
        from gateway.api.auth import TokenError, check_grant

        try:  # before the database is asked
            check_grant(ns.role, ns.operator, ns.fleet, ns.rate, ns.burst)
        except TokenError as exc:
            print(f"silkgate token: {exc}", file=err)
            return 2
    try:
        return asyncio.run(_token(ns, cfg.database_dsn(), cfg.database.connect_timeout_s, out, err))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"silkgate token: database: {exc}", file=err)
        return 1


async def _token(ns: argparse.Namespace, dsn: str, timeout: float, out: TextIO, err: TextIO) -> int:
    from gateway.api.auth import TokenError, TokenStore
    from gateway.store.migrate import migrate

    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, timeout=timeout)
    assert pool is not None
    try:
        store = TokenStore(pool, cache_s=0)
        if ns.token_command == "create":
            expires = None
            if ns.expires_days is not None:
                expires = datetime.now(UTC) + timedelta(days=ns.expires_days)
            try:
                new = await store.create(
                    role=ns.role,
                    name=ns.name,
                    operator_id=ns.operator,
                    fleets=ns.fleet,
                    rate_per_s=ns.rate,
                    burst=ns.burst,
                    expires_at=expires,
                    created_by="cli",
                )
            except TokenError as exc:
                print(f"silkgate token: {exc}", file=err)
                return 2
            except asyncpg.ForeignKeyViolationError:
                print(f"silkgate token: no operator {ns.operator!r}", file=err)
                return 2
            out.write(to_json({"token": new.token, **_doc(new.info)}).decode() + "\n")
            err.write("keep the token now: only its hash is stored\n")
            return 0
        if ns.token_command == "list":
            for info in await store.list(include_revoked=ns.all):
                out.write(to_json(_doc(info)).decode() + "\n")
            return 0
        if await store.revoke(ns.token_id):
            out.write(f"revoked {ns.token_id}\n")
            return 0
        print(f"silkgate token: no active token {ns.token_id!r}", file=err)
        return 1
    finally:
        await pool.close()


def _doc(info: Any) -> dict[str, Any]:
    doc: dict[str, Any] = to_builtins(info)
    return doc
