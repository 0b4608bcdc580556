"""The normalized JSON feed to a regulator's HTTPS endpoint, with a durable cursor.

The forwarder reads the selected vehicles' archived frames (GB/T 32960 and JT/T 808) after its
cursor, decodes and normalizes them (:func:`gateway.normalize.normalize`, as the ingest did),
and POSTs the records in batches (:mod:`gateway.forward.feed`, documented by
docs/forward-feed.schema.json): a batch goes when it holds ``batch_records`` records or its
oldest record has waited ``batch_age_ms``; a frame's records never straddle two batches.

The cursor moves past a batch's frames only after a 2xx answer, and is saved right then. An
error, a timeout, a 408, a 429 or a 5xx is retried with exponential backoff (``retry_min_s``
doubling to ``retry_max_s``; a ``Retry-After`` in seconds is honoured up to ``retry_max_s``),
with the same body and ``Idempotency-Key`` (the batch id). Any other answer is a permanent
rejection: it is logged as an error with the endpoint's reply, counted (``rejected``) and
retried every ``rejected_retry_s`` while the cursor stays; the regulator's data is never
dropped. Delivery is at least once: a batch accepted just before a crash (before its cursor
was saved) is sent again on restart, possibly cut differently, so receivers drop records they
already have by ``(frame_id, index)``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import msgspec

from gateway.codecs import gbt32960, jt808
from gateway.codecs.errors import ProtocolError
from gateway.config import ConfigError
from gateway.forward import feed
from gateway.forward.archive import GBT32960, JT808, Archive, ArchiveRow, Position
from gateway.forward.config import JsonFeed, secret
from gateway.forward.pacing import Backoff, sleep_unless
from gateway.forward.stats import ForwarderStats, RateLimitedLog
from gateway.normalize import normalize

log = logging.getLogger("silkgate.forward.json")

_encode = msgspec.json.Encoder().encode
_RETRYABLE = frozenset({408, 429})


@dataclass
class _Batch:
    records: list[Any] = field(default_factory=list)
    position: Position | None = None  # the cursor once this batch is accepted
    last_row: ArchiveRow | None = None
    first_row: ArchiveRow | None = None
    first_at: float = 0.0  # loop time the first record was taken


def records_of(row: ArchiveRow) -> list[Any]:
    """The normalized records of an archived frame (ProtocolError if it cannot be decoded)."""
    if row.protocol == GBT32960:
        return list(normalize(gbt32960.decode_frame(row.frame)))
    if row.protocol == JT808:
        return list(normalize(jt808.decode_frame(row.frame)))
    return []  # the archive query selects only the two protocols above


class JsonFeedForwarder:
    """One HTTPS endpoint; :meth:`run` until :meth:`close`. See the module docstring."""

    kind = "json"

    def __init__(
        self,
        cfg: JsonFeed,
        pool: asyncpg.Pool,
        *,
        page_rows: int = 500,
        poll_interval_s: float = 0.2,
    ) -> None:
        self.cfg = cfg
        self.pool = pool
        self.poll_interval_s = poll_interval_s
        self.headers = {"Content-Type": "application/json", **cfg.headers}
        for header, env in cfg.header_envs.items():
            self.headers[header] = secret(env, f"forward.json.{cfg.name}.header_envs.{header}")
        if cfg.token_env:
            token = secret(cfg.token_env, f"forward.json.{cfg.name}.token_env")
            self.headers["Authorization"] = f"Bearer {token}"
        self.verify: ssl.SSLContext | bool = True
        if cfg.ca_file or cfg.cert_file:
            try:
                ctx = ssl.create_default_context(cafile=cfg.ca_file)
                if cfg.cert_file:
                    ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"forward.json.{cfg.name}: TLS files: {exc}") from None
            self.verify = ctx
        self.archive = Archive(cfg.cursor_name, cfg.select, (GBT32960, JT808), page_rows=page_rows)
        self.stats = ForwarderStats(cfg.name, self.kind)
        self._closing = asyncio.Event()
        self._queue: deque[ArchiveRow | Position] = deque()  # fetched, not yet batched
        self._read_from = Position(0, 0)
        self._acked = Position(0, 0)
        self._saved = Position(0, 0)
        self._acked_row: ArchiveRow | None = None
        self._saved_total = 0
        self._saved_at = 0.0
        self._caught_up = False
        self._log = RateLimitedLog(log)

    @property
    def name(self) -> str:
        return self.cfg.name

    async def close(self) -> None:
        """Ask :meth:`run` to finish after the request in flight (none is started after)."""
        self._closing.set()

    async def run(self) -> None:
        if not await self._load():
            return
        loop = asyncio.get_running_loop()
        self.stats.connected = True  # until a POST fails
        client = httpx.AsyncClient(timeout=self.cfg.timeout_s, verify=self.verify)
        try:
            while not self._closing.is_set():
                batch = await self._collect()
                if batch is None:
                    break
                if batch.records and not await self._post(client, batch):
                    break
                assert batch.position is not None
                self._acked = batch.position
                self._acked_row = batch.last_row or self._acked_row
                self.stats.forwarded += len(batch.records)
                self.stats.forwarded_total += len(batch.records)
                # A batch sent is saved at once; mere progress over other vehicles' rows
                # (nothing sent) at most once a second.
                if batch.records or loop.time() - self._saved_at >= 1.0:
                    await self._save()
                self._update_pending(None)
        finally:
            await client.aclose()
            await self._save()

    # -- the cursor --------------------------------------------------------------------------

    async def _load(self) -> bool:
        backoff = Backoff(self.poll_interval_s, 30.0)
        while not self._closing.is_set():
            try:
                async with self.pool.acquire() as conn:
                    cursor = await self.archive.load(conn, self.cfg.start)
            except Exception as exc:
                self.stats.error(f"loading the cursor: {exc}")
                self._log(logging.WARNING, "db", "%s: cannot load the cursor: %s", self.name, exc)
                await sleep_unless(self._closing, backoff.next())
                continue
            self._acked = self._saved = self._read_from = cursor.position
            self.stats.forwarded_total = self._saved_total = cursor.forwarded
            return True
        return False

    async def _save(self) -> None:
        position, row, total = self._acked, self._acked_row, self.stats.forwarded_total
        if position == self._saved and total == self._saved_total:
            return
        try:
            async with self.pool.acquire() as conn:
                await self.archive.save(conn, position, total, row)
        except Exception as exc:  # kept in memory: the next save carries it
            self._log(logging.WARNING, "save", "%s: cannot save the cursor: %s", self.name, exc)
            return
        self._saved, self._saved_total = position, total
        self._saved_at = asyncio.get_running_loop().time()

    # -- reading and batching ----------------------------------------------------------------

    async def _fill(self, backoff: Backoff) -> bool:
        """Fetch the next page into the queue; False when nothing new came (or an error)."""
        try:
            async with self.pool.acquire() as conn:
                page = await self.archive.fetch(conn, self._read_from)
        except Exception as exc:
            self.stats.error(f"reading the archive: {exc}")
            self._log(logging.WARNING, "db", "%s: cannot read the archive: %s", self.name, exc)
            await sleep_unless(self._closing, backoff.next())
            return False
        backoff.reset()
        self.stats.reads += 1
        self._queue.extend(page.rows)
        if page.rows:
            self._read_from = page.rows[-1].position
        if page.horizon is not None and page.horizon > self._read_from:
            self._queue.append(page.horizon)
            self._read_from = page.horizon
        self._caught_up = page.horizon is not None
        self.stats.caught_up = self._caught_up
        return bool(page.rows) or page.horizon is not None

    async def _collect(self) -> _Batch | None:
        """The next batch to send (records may be empty: only the cursor moves); None when
        closing."""
        loop = asyncio.get_running_loop()
        batch = _Batch()
        backoff = Backoff(self.poll_interval_s, 30.0)
        age = self.cfg.batch_age_ms / 1000
        while not self._closing.is_set():
            while self._queue and len(batch.records) < self.cfg.batch_records:
                item = self._queue.popleft()
                if isinstance(item, Position):
                    batch.position = item
                    continue
                self._take(batch, item, loop.time())
            self._update_pending(batch.first_row)
            if len(batch.records) >= self.cfg.batch_records:
                return batch
            if batch.records and loop.time() - batch.first_at >= age:
                return batch
            if not self._queue and not self._caught_up:
                await self._fill(backoff)
                continue
            if not batch.records and batch.position is not None:
                return batch  # nothing to send, but the cursor can move (horizon, skips)
            wait = self.poll_interval_s
            if batch.records:
                wait = min(wait, max(0.0, batch.first_at + age - loop.time()))
            await sleep_unless(self._closing, wait)
            self._caught_up = False
        return None

    def _take(self, batch: _Batch, row: ArchiveRow, now: float) -> None:
        try:
            records = records_of(row)
        except ProtocolError as exc:
            self.stats.skipped += 1
            self._log(
                logging.WARNING,
                "skip",
                "%s: frame %s cannot be decoded: %s; passed over",
                self.name,
                row.frame_id,
                exc,
            )
            records = []
        if records and not batch.records:
            batch.first_at = now
            batch.first_row = row
        batch.records += [
            feed.to_feed(r, row.frame_id, i, row.received_at) for i, r in enumerate(records)
        ]
        batch.position = row.position
        batch.last_row = row

    def _update_pending(self, first: ArchiveRow | None) -> None:
        rows = [r for r in self._queue if isinstance(r, ArchiveRow)]
        oldest = first or (rows[0] if rows else None)
        self.stats.pending = len(rows) + (1 if first is not None else 0)
        self.stats.oldest_pending_at = oldest.received_at if oldest is not None else None

    # -- sending -----------------------------------------------------------------------------

    async def _post(self, client: httpx.AsyncClient, batch: _Batch) -> bool:
        """POST until accepted; False when closing first."""
        body = feed.make_batch(self.name, batch.records, datetime.now(UTC))
        content = _encode(body)
        headers = {**self.headers, "Idempotency-Key": str(body.batch_id)}
        backoff = Backoff(self.cfg.retry_min_s, self.cfg.retry_max_s)
        while not self._closing.is_set():
            try:
                response = await client.post(self.cfg.url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                delay = self._transient(f"{type(exc).__name__}: {exc}".rstrip(": "), backoff)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self.stats.connected = True
                    return True
                if status in _RETRYABLE or status >= 500:
                    delay = self._transient(f"HTTP {status}", backoff, response)
                else:
                    delay = self._rejected(response)
            await sleep_unless(self._closing, delay)
        return False

    def _transient(
        self, what: str, backoff: Backoff, response: httpx.Response | None = None
    ) -> float:
        self.stats.connected = False
        self.stats.failures += 1
        self.stats.error(what)
        delay = backoff.next()
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after is not None and retry_after.strip().isdigit():
            delay = min(float(retry_after), self.cfg.retry_max_s)
        message = "%s: POST failed (%s); retry in %.1f s"
        self._log(logging.WARNING, "transient", message, self.name, what, delay)
        return delay

    def _rejected(self, response: httpx.Response) -> float:
        self.stats.connected = False
        self.stats.rejected += 1
        try:
            reply = response.text[:500]
        except Exception:  # an undecodable body still must not hide the rejection
            reply = f"<{len(response.content)} bytes>"
        self.stats.error(f"HTTP {response.status_code}: rejected")
        log.error(
            "%s: %s REJECTED a batch with HTTP %d: %s -- the cursor stays; retrying every %g s "
            "(rejected batches so far: %d)",
            self.name,
            self.cfg.url,
            response.status_code,
            reply,
            self.cfg.rejected_retry_s,
            self.stats.rejected,
        )
        return self.cfg.rejected_retry_s
