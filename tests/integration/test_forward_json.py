"""The normalized JSON feed against the real TimescaleDB and a local HTTPS endpoint (a test CA
from trustme) that fails in scripted ways (500, a timeout, 503, 429, a permanent 400) before it
accepts: every record is accepted exactly once, in order, every body valid per the published
JSON Schema, the cursor moving only after a 2xx."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
import trustme

from gateway.codecs import gbt32960, jt808
from gateway.forward import ForwardConfig, Forwarders, JsonFeed, Selection
from gateway.ingest import GBT32960, JT808, Ingestor
from gateway.normalize import normalize
from gateway.records import RawFrame
from gateway.simulator import Fleet
from gateway.store.connection import create_pool
from gateway.store.testing import migrated_schema
from gateway.store.writer import write

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "forward-feed.schema.json").read_text()
)
TOKEN_ENV = "SILKGATE_TEST_FEED_TOKEN"
TOKEN = "t0ken-for-the-regulator"

RecordKey = tuple[str, int]  # (frame_id, index)


@pytest.fixture
def dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_fwd_json")


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(dsn, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


class Endpoint:
    """A regulator's HTTPS endpoint: answers the first requests from ``script`` (a status, or
    "timeout": never answer), then 200. Keeps every request and the bodies it accepted."""

    def __init__(self, ca: trustme.CA, script: list[int | str]) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.ctx)
        self.script = deque(script)
        self.requests: list[tuple[dict[str, str], dict[str, Any], int | str]] = []
        self.accepted: list[dict[str, Any]] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    async def start(self) -> Endpoint:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1/telemetry"

    def keys(self) -> list[RecordKey]:
        return [(r["frame_id"], r["index"]) for body in self.accepted for r in body["records"]]

    async def wait(self, pred: Callable[[Endpoint], bool], timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not pred(self):
                self._changed.clear()
                await self._changed.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request_line := await reader.readline():
                assert request_line.startswith(b"POST /v1/telemetry HTTP/1.1"), request_line
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = json.loads(await reader.readexactly(int(headers["content-length"])))
                action = self.script.popleft() if self.script else 200
                self.requests.append((headers, body, action))
                self._changed.set()
                if action == "timeout":
                    await reader.read()  # until the client gives up and hangs up
                    return
                assert isinstance(action, int)
                if 200 <= action < 300:
                    self.accepted.append(body)
                reply = json.dumps({"status": action}).encode()
                writer.write(
                    f"HTTP/1.1 {action} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )
                await writer.drain()
                self._changed.set()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


class Feed:
    """Commits simulated trucks' frames to the raw archive and knows the records they make."""

    def __init__(self, pool: asyncpg.Pool, fleet: Fleet) -> None:
        self.pool = pool
        self.fleet = fleet
        self.ingest = {GBT32960: Ingestor(GBT32960), JT808: Ingestor(JT808)}
        self.expected: list[RecordKey] = []

    async def commit(self, frames: list[bytes]) -> None:
        rows: list[RawFrame] = []
        for f in frames:
            jt = f[:1] == b"\x7e"
            protocol = JT808 if jt else GBT32960
            raw = next(r for r in self.ingest[protocol].frame(f, "test") if isinstance(r, RawFrame))
            rows.append(raw)
            n = len(normalize(jt808.decode_frame(f) if jt else gbt32960.decode_frame(f)))
            self.expected += [(str(raw.frame_id), i) for i in range(n)]
        async with self.pool.acquire() as conn, conn.transaction():
            await write(conn, RawFrame, rows)

    async def rounds(self, n: int) -> None:
        for _ in range(n):
            self.fleet.advance(10)
            await self.commit(self.fleet.reports())


def config(url: str, ca_file: Path, **kw: Any) -> ForwardConfig:
    fields: dict[str, Any] = {
        "name": "regulator",
        "url": url,
        "select": Selection(all=True),
        "start": "earliest",
        "token_env": TOKEN_ENV,
        "headers": {"X-Tenant": "acme"},
        "ca_file": str(ca_file),
        "batch_records": 40,
        "batch_age_ms": 50,
        "timeout_s": 0.5,
        "retry_min_s": 0.02,
        "retry_max_s": 0.1,
        "rejected_retry_s": 0.1,
    }
    fields.update(kw)
    return ForwardConfig(json=[JsonFeed(**fields)], poll_interval_ms=20, page_rows=50)


async def forwarded_total(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        n = await conn.fetchval(
            "SELECT forwarded FROM forward_cursors WHERE name = 'json:regulator'"
        )
    return int(n or 0)


def check_bodies(endpoint: Endpoint) -> None:
    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for headers, body, _ in endpoint.requests:
        errors = list(validator.iter_errors(body))
        assert not errors, errors[:3]
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["x-tenant"] == "acme"
        assert headers["content-type"] == "application/json"
        assert headers["idempotency-key"] == body["batch_id"]
        assert len(body["records"]) <= 40 + 3  # a frame's records are never split


@pytest.mark.asyncio
async def test_failures_then_success_every_record_accepted_once_in_order(
    pool: asyncpg.Pool, ca: tuple[trustme.CA, Path]
) -> None:
    endpoint = await Endpoint(ca[0], [500, "timeout", 503, 429]).start()
    feed = Feed(pool, Fleet(8, seed=11))  # GB/T 2016, 2025 and JT/T 808 trucks
    await feed.commit(feed.fleet.logins())
    await feed.rounds(5)
    forwarders = Forwarders(config(endpoint.url, ca[1]), pool)
    stats = forwarders.stats()[0]
    forwarders.start()
    try:
        await endpoint.wait(lambda e: len(e.requests) >= 4)
        assert endpoint.accepted == [] and await forwarded_total(pool) == 0
        await feed.rounds(3)  # more while it fails, more after
        await endpoint.wait(lambda e: len(e.keys()) >= len(feed.expected))
        await feed.commit(feed.fleet.logouts())
        await endpoint.wait(lambda e: len(e.keys()) >= len(feed.expected))
    finally:
        await forwarders.close()
        await endpoint.close()
    assert endpoint.keys() == feed.expected  # once each, in order
    check_bodies(endpoint)
    failed = [body for _, body, action in endpoint.requests[:4]]
    assert len({b["batch_id"] for b in failed}) == 1  # retried as the same batch ...
    assert endpoint.accepted[0] == failed[0]  # ... with the same body, accepted at last
    assert stats.failures == 4 and stats.rejected == 0 and stats.connected
    assert stats.forwarded == len(feed.expected) == await forwarded_total(pool)
    kinds = {r["kind"] for body in endpoint.accepted for r in body["records"]}
    assert kinds >= {"vehicle_realtime", "position", "session_event"}


@pytest.mark.asyncio
async def test_a_permanent_rejection_keeps_the_cursor_and_is_loud(
    pool: asyncpg.Pool, ca: tuple[trustme.CA, Path], caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = await Endpoint(ca[0], [400, 400, 400]).start()
    feed = Feed(pool, Fleet(4, seed=12))
    await feed.rounds(2)
    forwarders = Forwarders(config(endpoint.url, ca[1]), pool)
    stats = forwarders.stats()[0]
    forwarders.start()
    try:
        with caplog.at_level(logging.ERROR, logger="silkgate.forward.json"):
            await endpoint.wait(lambda e: len(e.requests) >= 3)
            assert await forwarded_total(pool) == 0 and stats.rejected == 3
            await endpoint.wait(lambda e: len(e.keys()) >= len(feed.expected))
    finally:
        await forwarders.close()
        await endpoint.close()
    assert "REJECTED a batch with HTTP 400" in caplog.text
    assert endpoint.keys() == feed.expected
    assert len({body["batch_id"] for _, body, _ in endpoint.requests}) == 1
    check_bodies(endpoint)


@pytest.mark.asyncio
async def test_restarted_feed_resumes_and_selection_by_vin(
    pool: asyncpg.Pool, ca: tuple[trustme.CA, Path]
) -> None:
    endpoint = await Endpoint(ca[0], []).start()
    fleet = Fleet(4, seed=13, gbt_only=True)
    chosen = fleet.trucks[1].vin
    feed = Feed(pool, fleet)
    await feed.rounds(3)
    cfg = config(endpoint.url, ca[1], select=Selection(vins=[chosen]), batch_records=2)
    first = Forwarders(cfg, pool)
    first.start()
    try:
        await endpoint.wait(lambda e: len(e.accepted) >= 1)
    finally:
        await first.close()
    await feed.rounds(2)
    second = Forwarders(cfg, pool)
    second.start()
    wanted = {str(uuid.UUID(k[0])) for k in feed.expected}
    try:
        await endpoint.wait(lambda e: len(e.keys()) >= 10)  # 5 frames x (realtime, position)
        await endpoint.wait(lambda e: second.stats()[0].caught_up)
    finally:
        await second.close()
        await endpoint.close()
    got = endpoint.keys()
    assert len(got) == len(set(got)) == 10
    vins = {r.get("vin") or r.get("device_id") for b in endpoint.accepted for r in b["records"]}
    assert vins == {chosen}
    assert {k[0] for k in got} <= wanted
    assert got == [k for k in feed.expected if k in set(got)]  # archive order
