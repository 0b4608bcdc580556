"""The durable ingest pipeline: adapters submit records, get a completion when they are durable.

* ``await pipeline.submit(records)`` waits while the queues are full (backpressure) and returns
  an ``asyncio.Future`` that resolves once the records are committed to the store, or fsynced in
  the spool while the database is away. Adapters acknowledge devices only then.
* ``writers`` writer tasks (each on its own pooled connection; one by default) take everything
  submitted so far as a batch when it reaches ``batch_rows`` or its oldest submission is
  ``batch_age_ms`` old, write each record type with the store's COPY writer inside ONE
  transaction, commit, then resolve the batch's completions. With more than one writer the
  database inserts one batch while another is encoded, but batches may commit out of
  submission order (each resolves its own completions) and reach the spool out of order, so of
  two copies of a key in flight at once the later may be the one stored; with one writer
  batches commit and spool in submission order and the first copy always is.
  A submission finding the batch full yields to the writers first (an idle writer takes it), so
  a producer that never has to wait cannot starve them.
* Two writers can hold the same natural key (a frame and its duplicate in consecutive
  batches): the second waits for the first's commit, then takes the de-duplicating path. A
  deadlock or serialization failure between them (SQLSTATE class 40) is retried in place
  ``retries_in_place`` times before the batch is treated as an outage and spooled.
* When the database fails (connection lost, server shutting down, out of resources) the batch
  goes to the spool instead and the pipeline enters *spooling* mode: every later batch is
  appended too, so order is kept; a replay task probes the database every
  ``retry_interval_s``, replays the spool in order (throttled to ``replay_rows_per_s``),
  acknowledges each replayed record after its commit, and leaves spooling mode once drained
  (decided under a lock with the writer's appends, so no batch is left behind a drain).
  Replays may repeat a batch after a crash; the store's natural keys make that harmless.
* A batch the database rejects for its content (a data or integrity error) is split in halves
  until the bad records are isolated; those become dead letters, the rest is written.
* Memory is bounded by ``queue_rows`` per record type (queued plus in flight); a full spool
  keeps the batch in memory and retries, so submitters wait instead of anything being dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
import msgspec
from asyncpg.exceptions._base import DataError as ClientDataError

from gateway import batch as batches
from gateway.batch import Batch
from gateway.config import PipelineConfig
from gateway.metrics_hist import BATCH_ROWS_BOUNDS, COMMIT_SECONDS_BOUNDS, Histogram
from gateway.spool import AsyncSpool, RecordTooLarge, SpoolFull

log = logging.getLogger("silkgate.pipeline")

#: SQLSTATE classes that blame the records (22 data exception, 23 integrity violation): the batch
#: is split until the bad records stand alone and those become dead letters. Every other server
#: error (connection, resources, operator intervention, deadlock, even a schema problem) blames
#: the database: the batch is spooled and retried later, so nothing is lost while it is fixed.
_RECORD_CLASSES = ("22", "23")
_RETRY_IN_PLACE_CLASS = "40"  # transaction rollback: deadlock, serialization failure


class Writer(Protocol):
    """Writes one batch inside a single transaction (the store's job)."""

    async def write_batch(self, batch: Batch) -> None: ...

    async def write_rejected(self, batch: Batch, error: BaseException) -> None: ...


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` means the database is unreachable or unwell, so retrying later helps;
    False when the records themselves were refused."""
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] not in _RECORD_CLASSES
    # No SQLSTATE: asyncpg's InterfaceError family (the connection closed under us) is an outage;
    # its client-side DataError (a value the column type cannot hold) and errors raised while
    # building rows are the records' fault.
    if isinstance(exc, ClientDataError):
        return False
    return isinstance(exc, asyncpg.exceptions.InterfaceError)


@dataclass
class _Pending:
    """Records submitted since the last flush, and the completions waiting for them."""

    batch: Batch = field(default_factory=dict)
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    rows: int = 0
    first_at: float = 0.0
    taken: asyncio.Event = field(default_factory=asyncio.Event)  # set when the writer takes it
    #: A submitter can add nothing more until these rows are durable: write them now.
    due: bool = False


@dataclass
class PipelineStats:
    """Counters for /metrics and the live view."""

    submitted_rows: int = 0
    committed_rows: int = 0
    committed_batches: int = 0
    spooled_rows: int = 0
    spooled_batches: int = 0
    replayed_rows: int = 0
    rejected_rows: int = 0
    last_commit_s: float = 0.0
    outages: int = 0
    retries: int = 0  # batches written again after a deadlock / serialization failure
    committed_by_type: dict[type, int] = field(default_factory=dict)  # rows per record type
    batch_rows: Histogram = field(default_factory=lambda: Histogram(BATCH_ROWS_BOUNDS))
    commit_s: Histogram = field(default_factory=lambda: Histogram(COMMIT_SECONDS_BOUNDS))


class Pipeline:
    """See the module docstring. Use as ``async with Pipeline(...) as p:``."""

    def __init__(
        self,
        writer: Writer,
        spool: AsyncSpool,
        config: PipelineConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = writer
        self._spool = spool
        self._cfg = config
        self._clock = clock
        self._pending = _Pending()
        self._in_flight: dict[type, int] = {}  # rows per type queued or being written
        self._space = asyncio.Condition()
        self._wake = asyncio.Event()
        self._closing = False
        self._busy_writers = 0  # writers making a batch durable (not waiting for one)
        self._spooling = spool.spool.records > 0  # a backlog from a previous run
        self._drained = asyncio.Event()
        self._spool_lock = asyncio.Lock()  # spool appends vs. the replay's "drained" decision
        self._writers: list[asyncio.Task[None]] = []
        self._replay: asyncio.Task[None] | None = None
        self.stats = PipelineStats()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Pipeline:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        self._writers = [
            asyncio.create_task(self._write_loop(), name=f"pipeline-writer-{i}")
            for i in range(self._cfg.writers)
        ]
        self._replay = asyncio.create_task(self._replay_loop(), name="pipeline-replay")

    async def close(self, timeout: float | None = None) -> None:
        """Stop taking records, flush what was submitted, then stop (graceful shutdown).

        With the database away and the spool full nothing can be made durable: after
        ``timeout`` seconds the writer is cancelled and the completions still pending are
        cancelled too (their devices were never acknowledged and will send again)."""
        self._closing = True
        self._wake.set()
        writers = asyncio.gather(*self._writers)
        try:
            await asyncio.wait_for(asyncio.shield(writers), timeout)
        except TimeoutError:
            log.error(
                "shutdown: %d rows could not be made durable in %.0f s; giving up on them",
                sum(self._in_flight.values()),
                timeout or 0,
            )
            for writer in self._writers:
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writers
        if self._replay is not None:
            self._replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay

    @property
    def spooling(self) -> bool:
        """True while batches go to the spool (database away, or a backlog being replayed)."""
        return self._spooling

    def queued_rows(self) -> dict[str, int]:
        """Rows queued or being written, per record type (each bounded by ``queue_rows``)."""
        return {kind.__name__: n for kind, n in self._in_flight.items()}

    # -- submitting --------------------------------------------------------------------------

    async def submit(
        self, records: Iterable[msgspec.Struct], *, write_now: bool = False
    ) -> asyncio.Future[None]:
        """Queue ``records``; wait while that would exceed ``queue_rows`` for a record type.
        ``write_now``: the submitter sends nothing more until these are durable, so the batch
        is written without waiting for ``batch_rows`` or ``batch_age_ms``.

        The returned future resolves when the records are durable, or fails with the error
        that made that impossible (only when the pipeline is closed under it)."""
        if self._closing:
            raise RuntimeError("pipeline is closed")
        if self._pending.rows >= self._cfg.batch_rows:
            # Yield to the writer. A producer that never has to wait for queue space would
            # otherwise starve it: an idle writer would not take the full batch, a busy one
            # would make no I/O progress, and the batch would grow to queue_rows. An idle
            # writer takes the full batch before more is added.
            while self._pending.rows >= self._cfg.batch_rows and self._writer_waits():
                await self._pending.taken.wait()
            await asyncio.sleep(0)
        grouped = batches.group(records)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not grouped:
            fut.set_result(None)
            return fut
        limit = self._cfg.queue_rows
        async with self._space:
            await self._space.wait_for(
                lambda: all(
                    self._in_flight.get(k, 0) == 0 or self._in_flight.get(k, 0) + len(v) <= limit
                    for k, v in grouped.items()
                )
            )
            for kind, recs in grouped.items():
                self._in_flight[kind] = self._in_flight.get(kind, 0) + len(recs)
        pending = self._pending
        if pending.rows == 0:
            pending.first_at = self._clock()
        batches.merge(pending.batch, grouped)
        n = batches.rows(grouped)
        pending.rows += n
        pending.futures.append(fut)
        self.stats.submitted_rows += n
        pending.due |= write_now
        if pending.rows >= self._cfg.batch_rows or pending.rows == n or write_now:
            self._wake.set()  # full, due, or the first rows of a batch: start its age clock
        return fut

    async def ingest(self, records: Iterable[msgspec.Struct]) -> None:
        """Submit and wait until durable."""
        await (await self.submit(records))

    # -- writing -----------------------------------------------------------------------------

    def _writer_waits(self) -> bool:
        """True when a writer task runs and is not busy with a batch (it takes the next one
        as soon as it gets the loop)."""
        running = sum(1 for w in self._writers if not w.done())
        return self._busy_writers < running

    async def _next_batch(self) -> _Pending | None:
        age = self._cfg.batch_age_ms / 1000
        while True:
            p = self._pending
            if p.rows and (self._closing or p.due or p.rows >= self._cfg.batch_rows):
                break
            if p.rows:
                remaining = p.first_at + age - self._clock()
                if remaining <= 0:
                    break
            elif self._closing:
                return None
            else:
                remaining = None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)
        self._pending = _Pending()
        p.taken.set()
        return p

    async def _write_loop(self) -> None:
        while (p := await self._next_batch()) is not None:
            self._busy_writers += 1
            try:
                await self._make_durable(p.batch)
            except BaseException as exc:
                self._busy_writers -= 1  # this writer ends here
                for fut in p.futures:
                    if fut.done():
                        continue
                    if isinstance(exc, Exception):
                        fut.set_exception(exc)
                    else:  # cancelled: the records were never made durable
                        fut.cancel()
                raise
            for fut in p.futures:
                if not fut.done():
                    fut.set_result(None)
            await self._release(p.batch)
            self._busy_writers -= 1

    async def _release(self, batch: Batch) -> None:
        async with self._space:
            for kind, recs in batch.items():
                self._in_flight[kind] -= len(recs)
            self._space.notify_all()

    async def _make_durable(self, batch: Batch) -> None:
        """Commit ``batch`` or spool it; retry until one of them succeeds."""
        payloads: list[bytes] | None = None  # encoded once, kept while the spool is full
        refused = False
        while True:
            if not self._spooling:
                try:
                    await self._commit(batch)
                    return
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    why = f"{type(exc).__name__}: {exc}"  # text only, see below
                    log.warning("database unavailable (%s); spooling", why)
                    self.stats.outages += 1
                    self._spooling = True
                    self._drained.clear()
            try:
                # Under the lock the replay task takes to decide that the spool is drained: a
                # batch is either appended before that decision (and replayed) or goes to the
                # database after it, never to the spool behind a drain that missed it.
                async with self._spool_lock:
                    if not self._spooling:
                        continue  # drained meanwhile: try the database
                    if payloads is None:
                        payloads = self._spool_payloads(batch)
                    await self._spool.append_durable(payloads)
                self.stats.spooled_rows += batches.rows(batch)
                self.stats.spooled_batches += len(payloads)
                return
            except (SpoolFull, RecordTooLarge) as exc:
                # Logged once per batch, and as text: a handler that keeps its records (a test's
                # log capture, a buffering handler) would otherwise keep every retry's exception
                # and, through its traceback, that retry's payloads.
                if not refused:
                    log.error("spool cannot take the batch (%s); holding it and retrying", str(exc))
                    refused = True
                await asyncio.sleep(self._cfg.retry_interval_s)
                if self._spool.spool.records == 0:
                    self._end_spooling()  # drained meanwhile: try the database again

    def _spool_payloads(self, batch: Batch) -> list[bytes]:
        """The batch as spool records, halved until each fits the spool's record limit."""
        payload = batches.encode(batch)
        if len(payload) <= self._spool.spool.config.max_record_bytes or batches.rows(batch) == 1:
            return [payload]
        del payload  # not kept while the halves are encoded
        first, second = _halves(batch)
        return self._spool_payloads(first) + self._spool_payloads(second)

    async def _commit(self, batch: Batch) -> None:
        started = self._clock()
        try:
            await self._write_retrying(batch)
        except Exception as exc:
            if is_outage(exc):
                raise
            await self._isolate_rejects(batch, exc)
        n = batches.rows(batch)
        st = self.stats
        st.committed_rows += n
        st.committed_batches += 1
        st.last_commit_s = self._clock() - started
        st.batch_rows.observe(n)
        st.commit_s.observe(st.last_commit_s)
        by_type = st.committed_by_type
        for kind, recs in batch.items():
            by_type[kind] = by_type.get(kind, 0) + len(recs)

    async def _write_retrying(self, batch: Batch) -> None:
        """Write the batch; retry a deadlock or serialization failure (another writer's
        transaction held a key of this batch) a few times before it counts as an outage."""
        for attempt in range(self._cfg.retries_in_place + 1):
            try:
                await self._writer.write_batch(batch)
                return
            except Exception as exc:
                sqlstate = getattr(exc, "sqlstate", None)
                retry = isinstance(sqlstate, str) and sqlstate[:2] == _RETRY_IN_PLACE_CLASS
                if not retry or attempt == self._cfg.retries_in_place:
                    raise
                log.info("batch retried after %s (attempt %d)", type(exc).__name__, attempt + 1)
                self.stats.retries += 1

    async def _isolate_rejects(self, batch: Batch, error: BaseException) -> None:
        """Split a batch the database refused until the bad records stand alone."""
        if batches.rows(batch) == 1:
            log.error("record rejected by the database: %s", error)
            await self._writer.write_rejected(batch, error)
            self.stats.rejected_rows += 1
            return
        for half in _halves(batch):
            try:
                await self._writer.write_batch(half)
            except Exception as exc:
                if is_outage(exc):
                    raise
                await self._isolate_rejects(half, exc)

    # -- replaying ---------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        while True:
            # A batch may have been appended just as a drain finished: records left in the
            # spool are replayed whether or not the pipeline is still in spooling mode.
            if not self._spooling and self._spool.spool.records == 0:
                await asyncio.sleep(self._cfg.retry_interval_s / 4)
                continue
            try:
                drained = await self._replay_some()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                await asyncio.sleep(self._cfg.retry_interval_s)
                continue
            if drained:
                log.info("spool drained; writing to the database again")

    async def _replay_some(self) -> bool:
        """Replay up to one read of the spool; True when it is empty afterwards."""
        items = await self._spool.read_batch(max_records=64)
        if not items:
            async with self._spool_lock:
                if self._spool.spool.records:
                    return False  # the writer appended after that read
                self._end_spooling()
            return True
        budget = self._cfg.replay_rows_per_s
        for seq, payload in items:
            started = self._clock()
            try:
                batch = batches.decode(payload)
            except ValueError as exc:  # a foreign or damaged payload: keep going, say it loudly
                log.error("spooled batch %d skipped: %s", seq, exc)
            else:
                await self._commit(batch)
                self.stats.replayed_rows += batches.rows(batch)
                pause = batches.rows(batch) / budget - (self._clock() - started)
                if pause > 0:
                    await asyncio.sleep(pause)
            await self._spool.ack(seq)
        return False

    def _end_spooling(self) -> None:
        self._spooling = False
        self._drained.set()

    async def wait_drained(self, timeout: float | None = None) -> None:
        """Wait until the spool is empty and batches go straight to the database again."""
        if self._spooling:
            await asyncio.wait_for(self._drained.wait(), timeout)


def _halves(batch: Batch) -> tuple[Batch, Batch]:
    flat = [(kind, rec) for kind, recs in batch.items() for rec in recs]
    mid = len(flat) // 2
    return batches.group(r for _, r in flat[:mid]), batches.group(r for _, r in flat[mid:])
