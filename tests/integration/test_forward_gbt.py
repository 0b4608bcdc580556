"""Forwarding to an upstream GB/T 32960 platform, against the real TimescaleDB over real
sockets: a test platform (asyncio, the project's codecs) answers the platform login, heartbeats
and every frame; it goes away mid-stream while more frames are committed and comes back; the
forwarder is restarted; a transaction is held open; editions are converted; TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import trustme

from gateway.codecs.gbt32960 import constants as C
from gateway.forward import ForwardConfig, Forwarders, GbtUpstream, Selection
from gateway.forward.config import TlsConfig
from gateway.ingest import GBT32960, JT808, Ingestor
from gateway.records import RawFrame
from gateway.simulator import Fleet
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema
from gateway.store.writer import write

from .upstreamkit import PASSWORD, PASSWORD_ENV, Key, Upstream, key


@pytest.fixture
def dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_fwd_gbt")


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(dsn, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = await Upstream().start()
    try:
        yield up
    finally:
        await up.close()


def config(port: int, **kw: Any) -> ForwardConfig:
    fields: dict[str, Any] = {
        "name": "national",
        "host": "127.0.0.1",
        "port": port,
        "username": "silkgate",
        "password_env": PASSWORD_ENV,
        "select": Selection(all=True),
        "start": "earliest",
        "window": 8,
        "ack_timeout_s": 5.0,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "cursor_save_ms": 20,
        "close_grace_s": 2.0,
    }
    fields.update(kw)
    return ForwardConfig(gbt32960=[GbtUpstream(**fields)], poll_interval_ms=20, page_rows=50)


class Feed:
    """Commits simulated trucks' frames to the raw archive, one transaction per call, and
    keeps what a GB/T upstream should get, in order."""

    def __init__(self, pool: asyncpg.Pool, fleet: Fleet) -> None:
        self.pool = pool
        self.fleet = fleet
        self.ingest = {GBT32960: Ingestor(GBT32960), JT808: Ingestor(JT808)}
        self.expected: list[Key] = []

    def archive_rows(self, frames: list[bytes]) -> list[RawFrame]:
        rows: list[RawFrame] = []
        for f in frames:
            protocol = JT808 if f[:1] == b"\x7e" else GBT32960
            rows += [r for r in self.ingest[protocol].frame(f, "test") if isinstance(r, RawFrame)]
        return rows

    def relayed(self, frames: list[bytes]) -> list[Key]:
        return [key(f) for f in frames if f[:1] != b"\x7e"]

    async def commit(self, frames: list[bytes]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await write(conn, RawFrame, self.archive_rows(frames))
        self.expected += self.relayed(frames)

    async def rounds(self, n: int) -> None:
        for _ in range(n):
            self.fleet.advance(10)
            await self.commit(self.fleet.reports())


async def eventually(pred: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Wait for state that has no event of its own (a forwarder's counters)."""
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


async def cursor_of(pool: asyncpg.Pool, name: str = "gbt32960:national") -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT txid::text::bigint AS txid, seq, forwarded, login_serial "
            "FROM forward_cursors WHERE name = $1",
            name,
        )
    assert row is not None
    return row


def assert_once_in_order(got: list[Key], expected: list[Key]) -> None:
    assert len(got) == len(expected), (len(got), len(expected))
    assert got == expected


def assert_in_order_resent_at_most(got: list[Key], expected: list[Key], resends: int) -> None:
    """Everything, in order, each frame's first copy in place; at most ``resends`` copies."""
    first: list[Key] = []
    seen: set[Key] = set()
    for k in got:
        if k not in seen:
            seen.add(k)
            first.append(k)
    assert first == expected
    assert len(got) - len(expected) <= resends


@pytest.mark.asyncio
async def test_upstream_away_for_a_while_every_frame_once_in_order(
    pool: asyncpg.Pool, upstream: Upstream
) -> None:
    feed = Feed(pool, Fleet(8, seed=3))  # GB/T 2016, 2025 and JT/T 808 trucks
    await feed.commit(feed.fleet.logins())
    await feed.rounds(6)
    upstream.stop_after = 12  # mid-stream, frames in flight: answers out, then FIN
    forwarders = Forwarders(config(upstream.port), pool)
    forwarders.start()
    stats = forwarders.stats()[0]
    try:
        await upstream.stopped()
        upstream.stop_after = None
        assert len(upstream.frames) == 12 < len(feed.expected)
        failures = stats.failures
        await feed.rounds(4)  # committed while the upstream is away
        await eventually(lambda: stats.failures >= failures + 3, "reconnects refused")
        assert not stats.connected and "Error" in (stats.last_error or "")
        await upstream.start()
        await feed.commit(feed.fleet.logouts())
        await upstream.wait(lambda u: len(u.frames) >= len(feed.expected))
        await eventually(lambda: stats.pending == 0, "the last answers")
    finally:
        await forwarders.close()
    assert_once_in_order(upstream.keys(), feed.expected)
    assert upstream.errors == []
    assert [login.serial for login in upstream.logins] == [1, 2]  # +1 per login, same day
    assert [login.username for login in upstream.logins] == ["silkgate", "silkgate"]
    assert upstream.logouts == 1
    assert stats.forwarded == len(feed.expected) and stats.rejected == 0
    saved = await cursor_of(pool)
    assert saved["forwarded"] == len(feed.expected) and saved["login_serial"] == 2
    # The cursor is durable: a new forwarder finds nothing left to send.
    again = Forwarders(config(upstream.port), pool)
    again.start()
    try:
        await upstream.wait(lambda u: len(u.logins) == 3)
        await eventually(lambda: again.stats()[0].caught_up, "caught up")
    finally:
        await again.close()
    assert len(upstream.frames) == len(feed.expected)
    assert upstream.logins[-1].serial == 3


@pytest.mark.asyncio
async def test_forwarder_restarted_mid_stream_resumes_from_its_cursor(
    pool: asyncpg.Pool, upstream: Upstream
) -> None:
    feed = Feed(pool, Fleet(6, seed=4, gbt_only=True))
    await feed.commit(feed.fleet.logins())
    await feed.rounds(8)
    cfg = config(upstream.port, max_frames_per_s=200.0)
    first = Forwarders(cfg, pool)
    first.start()
    try:
        await upstream.wait(lambda u: len(u.frames) >= 10)
    finally:
        await first.close()  # graceful: outstanding answers awaited, logged out, cursor saved
    stopped_at = len(upstream.frames)
    assert stopped_at < len(feed.expected) and upstream.logouts == 1
    assert (await cursor_of(pool))["forwarded"] == stopped_at
    await feed.rounds(2)
    second = Forwarders(cfg, pool)
    second.start()
    try:
        await upstream.wait(lambda u: len(u.frames) >= len(feed.expected))
        await eventually(lambda: second.stats()[0].pending == 0, "the last answers")
    finally:
        await second.close()
    assert_once_in_order(upstream.keys(), feed.expected)

    # Stopped hard (no time for answers): only the unanswered window may come again.
    await feed.rounds(8)
    third = Forwarders(cfg, pool)
    third.start()
    try:
        await upstream.wait(lambda u: len(u.frames) >= len(feed.expected) - 30)
    finally:
        await third.close(timeout=0)
    await feed.rounds(1)
    fourth = Forwarders(cfg, pool)
    fourth.start()
    try:
        await upstream.wait(lambda u: len({*u.keys()}) >= len(feed.expected))
        await eventually(lambda: fourth.stats()[0].pending == 0, "the last answers")
    finally:
        await fourth.close()
    assert_in_order_resent_at_most(upstream.keys(), feed.expected, resends=8)  # window = 8


@pytest.mark.asyncio
async def test_upstream_reset_mid_stream_loses_nothing(
    pool: asyncpg.Pool, upstream: Upstream
) -> None:
    feed = Feed(pool, Fleet(6, seed=5, gbt_only=True))
    await feed.commit(feed.fleet.logins())
    await feed.rounds(8)
    upstream.stop_after, upstream.abort = 10, True  # answers in flight may be lost
    forwarders = Forwarders(config(upstream.port), pool)
    forwarders.start()
    try:
        await upstream.stopped()
        upstream.stop_after = None
        await feed.rounds(2)
        await upstream.start()
        await upstream.wait(lambda u: len({*u.keys()}) >= len(feed.expected))
        await eventually(lambda: forwarders.stats()[0].pending == 0, "the last answers")
    finally:
        await forwarders.close()
    assert_in_order_resent_at_most(upstream.keys(), feed.expected, resends=8)


@pytest.mark.asyncio
async def test_a_transaction_held_open_is_not_skipped(
    pool: asyncpg.Pool, upstream: Upstream
) -> None:
    feed = Feed(pool, Fleet(3, seed=6, gbt_only=True))
    await feed.commit(feed.fleet.logins())  # x: committed before the open transaction
    forwarders = Forwarders(config(upstream.port), pool)
    stats = forwarders.stats()[0]
    forwarders.start()
    held = await pool.acquire()
    try:
        await upstream.wait(lambda u: len(u.frames) == 3)
        feed.fleet.advance(10)
        early = feed.fleet.reports()  # archived first, committed last
        tx = held.transaction()
        await tx.start()
        await write(held, RawFrame, feed.archive_rows(early))
        await feed.rounds(2)  # later transactions, committed at once
        reads = stats.reads
        await eventually(lambda: stats.reads >= reads + 3, "three more reads")
        assert len(upstream.frames) == 3  # waiting for the open transaction, not past it
        await tx.commit()
        expected = feed.expected[:3] + feed.relayed(early) + feed.expected[3:]
        await upstream.wait(lambda u: len(u.frames) >= len(expected))
    finally:
        await pool.release(held)
        await forwarders.close()
    assert_once_in_order(upstream.keys(), expected)


@pytest.mark.asyncio
async def test_2025_upstream_without_realtime_answers(pool: asyncpg.Pool) -> None:
    upstream = await Upstream(version=2025, ack_realtime=False).start()
    feed = Feed(pool, Fleet(4, seed=7, gbt_only=True))
    await feed.commit(feed.fleet.logins())
    await feed.rounds(3)
    await feed.commit(feed.fleet.logouts())
    forwarders = Forwarders(config(upstream.port, version="2025", ack_realtime=False), pool)
    forwarders.start()
    try:
        await upstream.wait(lambda u: len(u.frames) >= len(feed.expected))
        await eventually(lambda: forwarders.stats()[0].pending == 0, "the last answers")
    finally:
        await forwarders.close()
        await upstream.close()
    assert upstream.errors == []  # every frame arrived as 2025, converted where it was 2016
    assert all(f[:2] == b"$$" for f in upstream.frames)
    assert_once_in_order(upstream.keys(), feed.expected)
    assert (await cursor_of(pool))["forwarded"] == len(feed.expected)


@pytest.mark.asyncio
async def test_heartbeats_when_idle_and_reconnect_when_answers_stop(pool: asyncpg.Pool) -> None:
    silent = await Upstream(ack_realtime=False).start()  # answers logins, never realtime
    feed = Feed(pool, Fleet(2, seed=8, gbt_only=True))
    cfg = config(silent.port, heartbeat_s=0.1, ack_timeout_s=0.5)
    forwarders = Forwarders(cfg, pool)
    stats = forwarders.stats()[0]
    forwarders.start()
    try:
        await silent.wait(lambda u: u.heartbeats >= 3)  # nothing to send: heartbeats
        await feed.rounds(1)
        await silent.wait(lambda u: len(u.logins) >= 2)  # no answers: dropped, logged in again
        assert "no answer within 0.5 s" in (stats.last_error or "")
        assert stats.forwarded == 0 and (await cursor_of(pool))["forwarded"] == 0
    finally:
        await forwarders.close()
        await silent.close()


@pytest.mark.asyncio
async def test_refused_login_forwards_nothing(pool: asyncpg.Pool) -> None:
    strict = await Upstream(login_answer=C.RESP_ERROR).start()
    feed = Feed(pool, Fleet(2, seed=9, gbt_only=True))
    await feed.rounds(1)
    forwarders = Forwarders(config(strict.port), pool)
    stats = forwarders.stats()[0]
    forwarders.start()
    try:
        await strict.wait(lambda u: len(u.logins) >= 3)  # refused, retried with backoff
        await eventually(lambda: "refused" in (stats.last_error or ""), "the refusal")
    finally:
        await forwarders.close()
        await strict.close()
    assert strict.frames == [] and not stats.connected and stats.forwarded == 0
    assert "platform login refused (answer 0x02)" in (stats.last_error or "")


@pytest.mark.asyncio
async def test_over_tls(pool: asyncpg.Pool, tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("upstream.test").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    upstream = await Upstream(ssl_ctx=server_ctx).start()
    feed = Feed(pool, Fleet(2, seed=10, gbt_only=True))
    await feed.commit(feed.fleet.logins())
    await feed.rounds(2)
    tls = TlsConfig(ca_file=str(ca_file), server_name="upstream.test")
    forwarders = Forwarders(config(upstream.port, tls=tls), pool)
    forwarders.start()
    try:
        await upstream.wait(lambda u: len(u.frames) >= len(feed.expected))
    finally:
        await forwarders.close()
        await upstream.close()
    assert_once_in_order(upstream.keys(), feed.expected)
