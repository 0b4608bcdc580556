"""The republisher: drains the outbox to the local MQTT broker, one message per record.

One connection at a time (clean session: a resumed session is of no use, everything not
acknowledged is published again from the cursor, and reusing packet ids of a QoS 2 flow the
broker still remembers could make it drop a new message as a duplicate). Per connection:

1. Read outbox rows after the cursor (:class:`~gateway.republish.outbox.Outbox`, committed
   rows only, in durable order), decode each row's batch, look its devices' operators up
   (:class:`~gateway.republish.operators.Operators`) and publish one message per record of the
   selected ``kinds`` (:mod:`gateway.republish.message`) with the configured QoS and retain flag.
2. Keep up to ``max_in_flight`` messages unacknowledged (and no more than the broker's MQTT 5
   Receive Maximum). A message counts as acknowledged on its PUBACK (QoS 1), PUBCOMP (QoS 2) or,
   at QoS 0, once written to the socket. A row is done when every message of it is, and the
   cursor passes a row once it and every row before it are done. The cursor is saved every
   ``cursor_save_ms``; then the rows every republish cursor has passed are deleted.
3. The connection lost, no acknowledgement for ``ack_timeout_s``, or a message the broker
   refuses (an MQTT 5 reason code >= 0x80, e.g. not authorized): the connection ends, and the
   next one (after a backoff of ``backoff_initial_s`` doubling to ``backoff_max_s``, jittered)
   publishes again everything after the last done row. A refused message is therefore retried
   until the broker takes it: logged and counted, never dropped.

Delivery is at least once, in outbox order (per device: commit order). What may come twice
after a reconnect: the messages in flight (at most ``max_in_flight``) and the rest of their rows;
after a crash, also the rows done since the last cursor save.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiomqtt
import asyncpg
import paho.mqtt.client as paho
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway import batch as batches
from gateway.config import RegistryConfig
from gateway.forward.archive import BEGINNING, Position
from gateway.forward.config import secret
from gateway.forward.gbt_platform import tls_context
from gateway.forward.pacing import Backoff, sleep_unless
from gateway.forward.stats import RateLimitedLog
from gateway.republish.config import RepublishConfig
from gateway.republish.message import KINDS, payload, topic
from gateway.republish.operators import Operators, registry_key
from gateway.republish.outbox import Outbox, OutboxRow
from gateway.store.conntype import Conn

log = logging.getLogger("silkgate.republish")

T = TypeVar("T")

_REFUSED = 0x80  # MQTT 5 reason codes from here on are failures
_LAG_REFRESH_S = 1.0


@dataclass
class RepublishStats:
    """Counters and state of the republisher (counts since this process started)."""

    name: str
    connected: bool = False
    published: int = 0  # messages acknowledged (QoS 0: written), of rows done
    published_total: int = 0  # the same over the cursor's whole life (forward_cursors)
    rows: int = 0  # outbox rows done
    skipped: int = 0  # records of kinds not selected
    in_flight: int = 0  # messages published and not yet acknowledged
    lag_rows: int = 0  # outbox rows after the saved cursor (committed, not yet done)
    lag_records: int = 0  # their records
    oldest_waiting_at: datetime | None = None  # when the oldest of them was committed
    deleted_rows: int = 0  # outbox rows deleted after publishing
    connects: int = 0
    errors: int = 0  # failed connections, lost connections, ack timeouts, database errors
    rejected: int = 0  # messages the broker refused (they are published again)
    bad_rows: int = 0  # outbox rows that could not be decoded (logged, passed)
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def lag_s(self) -> float:
        """Age of the oldest committed row not yet published (0 when none waits)."""
        if self.oldest_waiting_at is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - self.oldest_waiting_at).total_seconds())

    def error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        self.last_error_at = datetime.now(UTC)

    def line(self, *, stopped: bool = False) -> str:
        """``republish local: up 1,234 pub, lag 0 rows (0 records, 0.0 s)``."""
        state = "up" if self.connected else "stopped" if stopped else "DOWN"
        text = (
            f"republish {self.name}: {state} {self.published:,} pub, lag {self.lag_rows:,} rows "
            f"({self.lag_records:,} records, {self.lag_s:.1f} s)"
        )
        if self.rejected:
            text += f", {self.rejected:,} refused"
        return text


class _PackedProperties(Properties):
    """PUBLISH properties packed once: paho packs them again for every message (14 % of the
    republisher's CPU in a profile)."""

    def __init__(self, **values: Any) -> None:
        super().__init__(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        for name, value in values.items():
            setattr(self, name, value)
        # Properties.__setattr__ takes property names only
        object.__setattr__(self, "_packed", super().pack())  # type: ignore[no-untyped-call]

    def pack(self) -> bytes:
        packed: bytes = self.__dict__["_packed"]
        return packed


#: MQTT 5: the payload is UTF-8 (Payload Format Indicator 1), JSON.
_JSON_PROPERTIES = _PackedProperties(PayloadFormatIndicator=1, ContentType="application/json")


class _Row:
    """An outbox row being published: done when sent whole and every message acknowledged."""

    __slots__ = ("messages", "pending", "position", "sent")

    def __init__(self, position: Position, messages: int) -> None:
        self.position = position
        self.messages = messages
        self.pending = 0
        self.sent = False


class _SessionEnd(Exception):
    """The connection must end (and the next one publish again from the last done row)."""


class _PublishingClient(aiomqtt.Client):
    """aiomqtt.Client whose publishes go straight to paho (no task and event per message) and
    whose acknowledgements, with their reason codes, go to ``on_ack`` (aiomqtt drops the code).

    paho 2.2 ignores the reason code of a PUBREC (``Client._handle_pubrec``): a QoS 2 message the
    broker refused (Mosquitto: 0x87 not authorized) would end in a PUBCOMP "success". The paho
    client's PUBREC handler is therefore wrapped to report a refusal first."""

    def __init__(
        self, hostname: str, port: int, *, on_ack: Callable[[int, int], None], **kwargs: Any
    ) -> None:
        super().__init__(hostname, port, **kwargs)
        self._on_ack = on_ack
        self.receive_maximum = 65535
        inner = self._client
        handle_pubrec = inner._handle_pubrec

        def pubrec() -> MQTTErrorCode:
            packet = inner._in_packet
            rec = _packet.decode_pubrec(packet["command"], packet["packet"], inner._protocol)
            if rec.reason is not None and rec.reason.value >= _REFUSED:
                on_ack(rec.mid, rec.reason.value)
            return handle_pubrec()

        inner._handle_pubrec = pubrec  # type: ignore[method-assign]

    def _on_connect(self, *args: Any) -> None:
        # (client, userdata, flags, reason_code[, properties]): the CONNACK's MQTT 5 properties
        maximum = getattr(args[4] if len(args) > 4 else None, "ReceiveMaximum", None)
        if isinstance(maximum, int) and maximum > 0:
            self.receive_maximum = maximum
        super()._on_connect(*args)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        self._on_ack(mid, reason_code.value if reason_code is not None else 0)

    def send(
        self, topic: str, payload: bytes, qos: int, retain: bool, properties: Properties | None
    ) -> paho.MQTTMessageInfo:
        return self._client.publish(topic, payload, qos, retain, properties)

    @property
    def ended(self) -> asyncio.Future[None]:
        """Done when the connection ends (its exception: why); only ever waited for, never
        awaited or cancelled (aiomqtt's own future)."""
        return self._disconnected

    def close_socket(self) -> None:
        """After a failed or lost connection: aiomqtt may leave the socket open."""
        with contextlib.suppress(Exception):
            self._client._sock_close()
        ended = self._disconnected
        if ended.done() and not ended.cancelled():
            ended.exception()  # seen: asyncio would report it as never retrieved


class Republisher:
    """Publishes the outbox to one broker; :meth:`start` / :meth:`stop` (or :meth:`run` until
    :meth:`close`). See the module docstring."""

    def __init__(
        self, cfg: RepublishConfig, pool: asyncpg.Pool, registry: RegistryConfig | None = None
    ) -> None:
        """``registry``: how long (and how many) device -> operator answers are cached."""
        if cfg.password_env is not None:  # read again at every connect (rotation)
            secret(cfg.password_env, "republish.password_env")
        self.cfg = cfg
        self.pool = pool
        self.name = cfg.name
        self.stats = RepublishStats(cfg.name)
        self.outbox = Outbox(cfg.cursor_name, page_rows=cfg.page_batches)
        registry = registry or RegistryConfig()
        self.operators = Operators(registry.cache_ttl_s, registry.cache_entries)
        self._kinds = frozenset(t for t, k in KINDS.items() if k in cfg.kinds)
        self._tls = tls_context(cfg.tls) if cfg.tls is not None else None
        self._properties = _JSON_PROPERTIES if cfg.protocol == "5" else None
        self._log = RateLimitedLog(log)
        self._closing = asyncio.Event()
        self._close_by = 0.0  # loop time: closing, publishing goes on until then at most
        self._task: asyncio.Task[None] | None = None
        # Progress: every row up to _acked is done; _saved is what forward_cursors holds.
        self._acked = self._saved = BEGINNING
        self._saved_total = 0
        self._lag_at = 0.0
        # The current connection's rows (in order) and messages in flight (by packet id).
        self._rows: deque[_Row] = deque()
        self._mids: dict[int, _Row] = {}
        self._limit = cfg.max_in_flight
        self._room = asyncio.Event()
        self._settled = asyncio.Event()  # a row was done
        self._failure: asyncio.Future[str] | None = None
        self._last_ack = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a task of its own (loads the cursor, then connects, retrying with backoff)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"republish-{self.name}")
            self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A bug: said loudly, but it never takes ingest down with it.
        log.error("republish %s stopped", self.name, exc_info=task.exception())
        self.stats.connected = False
        self.stats.error("stopped by an internal error (see the log)")

    async def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully: publish what the outbox still holds and wait for the acknowledgements
        due, for up to ``close_grace_s``; save the cursor, disconnect. Cancels the task if it is
        still running after ``timeout``."""
        await self.close()
        task, self._task = self._task, None
        if task is None:
            return
        wait = (
            self.cfg.close_grace_s + self.cfg.connect_timeout_s + 2 if timeout is None else timeout
        )
        done, _ = await asyncio.wait([task], timeout=wait)
        if not done:
            log.warning("republish %s did not stop in time; cancelled", self.name)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._save()

    async def close(self) -> None:
        """Ask :meth:`run` to finish: a connected republisher goes on until the outbox is
        drained and acknowledged, or ``close_grace_s`` has passed; then the cursor is saved."""
        if not self._closing.is_set():
            self._close_by = asyncio.get_running_loop().time() + self.cfg.close_grace_s
            self._closing.set()

    def status(self) -> str:
        return self.stats.line(stopped=self._closing.is_set())

    async def run(self) -> None:
        """Publish until :meth:`close`."""
        if not await self._load():
            return
        backoff = Backoff(self.cfg.backoff_initial_s, self.cfg.backoff_max_s)
        while not self._closing.is_set():
            client = self._client()
            acked_before = self._acked
            try:
                async with client:
                    self.stats.connected = True
                    self.stats.connects += 1
                    log.info(
                        "republish %s: connected to %s:%d",
                        self.name,
                        self.cfg.host,
                        self.cfg.port,
                    )
                    await self._session(client)
            except (aiomqtt.MqttError, _SessionEnd, OSError) as exc:
                self._failed(f"{type(exc).__name__}: {exc}")
            finally:
                client.close_socket()
                self._connection_ended()
            if self._acked > acked_before:
                backoff.reset()
            await self._save()
            if not self._closing.is_set():
                await sleep_unless(self._closing, backoff.next())
        await self._save()

    def _failed(self, why: str) -> None:
        self.stats.error(why)
        self._log(logging.WARNING, "conn", "republish %s: %s", self.name, why)

    def _client(self) -> _PublishingClient:
        """A new client: a clean session every time (see the module docstring)."""
        cfg = self.cfg
        v5 = cfg.protocol == "5"
        password = os.environ.get(cfg.password_env, "") if cfg.password_env else None
        return _PublishingClient(
            cfg.host,
            cfg.port,
            on_ack=self._on_ack,
            identifier=cfg.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            **({"clean_start": True} if v5 else {"clean_session": True}),
            username=cfg.username,
            password=password,
            keepalive=cfg.keepalive_s,
            timeout=cfg.connect_timeout_s,
            tls_context=self._tls,
            # 0: paho does not count in-flight messages itself (ours is the bound); with a
            # limit it rescans every message in flight at each acknowledgement (quadratic).
            max_inflight_messages=0,
        )

    # -- one connection ----------------------------------------------------------------------

    async def _session(self, client: _PublishingClient) -> None:
        cfg = self.cfg
        self._limit = (
            min(cfg.max_in_flight, client.receive_maximum) if cfg.qos else cfg.max_in_flight
        )
        self._room.set()
        self._failure = asyncio.get_running_loop().create_future()
        publisher = asyncio.create_task(self._publish(client), name=f"republish-{self.name}-pub")
        watchdog = asyncio.create_task(self._watchdog(), name=f"republish-{self.name}-acks")
        saver = asyncio.create_task(self._save_loop(), name=f"republish-{self.name}-save")
        tasks = (publisher, watchdog, saver)
        try:
            waits: list[asyncio.Future[Any]] = [*tasks, client.ended, self._failure]
            await asyncio.wait(waits, return_when="FIRST_COMPLETED")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._failure.done():
            raise _SessionEnd(self._failure.result())
        if client.ended.done():
            raise _SessionEnd(f"connection lost: {client.ended.exception()}")
        if watchdog.done() and not watchdog.cancelled() and watchdog.exception() is not None:
            raise _SessionEnd(str(watchdog.exception()))
        if publisher.done() and not publisher.cancelled():
            publisher.result()  # a clean stop returns; a bug raises

    def _connection_ended(self) -> None:
        """Forget the connection's rows: everything after ``_acked`` is published again."""
        self.stats.connected = False
        self._rows.clear()
        self._mids.clear()
        self.stats.in_flight = 0
        self._room.set()
        if self._failure is not None and not self._failure.done():
            self._failure.cancel()

    async def _publish(self, client: _PublishingClient) -> None:
        """Publish rows after ``_acked``; once closing, until the outbox is drained (or the
        close grace is over), then wait for the acknowledgements."""
        read_from = self._acked
        poll = self.cfg.poll_interval_ms / 1000
        loop = asyncio.get_running_loop()
        while not self._closing.is_set() or loop.time() < self._close_by:
            rows = await self._with_db(
                "reading the outbox", functools.partial(self.outbox.fetch, after=read_from)
            )
            if rows is None:
                break  # closing, and the database fails
            if not rows:
                if self._closing.is_set():
                    break  # drained
                await sleep_unless(self._closing, poll)
                continue
            for row in rows:
                if self._closing.is_set() and loop.time() >= self._close_by:
                    break
                if not await self._publish_row(client, row):
                    break
                read_from = row.position
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(max(self._close_by, loop.time())):
                while self._rows:
                    self._settled.clear()
                    await self._settled.wait()

    async def _publish_row(self, client: _PublishingClient, row: OutboxRow) -> bool:
        """Publish every selected record of ``row``; False when closing interrupted it."""
        try:
            groups = batches.decode(row.batch)
        except ValueError as exc:  # damaged or from a newer version: keep going, say it loudly
            log.error("republish %s: outbox row %s skipped: %s", self.name, row.position, exc)
            self.stats.bad_rows += 1
            groups = {}
        records = [r for kind, recs in groups.items() if kind in self._kinds for r in recs]
        self.stats.skipped += sum(map(len, groups.values())) - len(records)
        keys = [registry_key(r) for r in records]
        operators = self.operators.cached(keys)
        if operators is None:  # a device not seen (or not checked) for cache_ttl_s
            operators = await self._with_db(
                "looking up operators", lambda c: self.operators.resolve(c, keys)
            )
            if operators is None:
                return False
        entry = _Row(row.position, len(records))
        self._rows.append(entry)
        prefix, qos, retain, props = (
            self.cfg.topic_prefix,
            self.cfg.qos,
            self.cfg.retain,
            self._properties,
        )
        mids, stats = self._mids, self.stats
        for record, key in zip(records, keys, strict=True):
            if stats.in_flight >= self._limit:
                self._room.clear()
                await self._room.wait()
            if not stats.in_flight:
                self._last_ack = time.monotonic()  # the ack timeout runs from now
            info = client.send(
                topic(prefix, operators[key], record),
                payload(record, row.created_at),
                qos,
                retain,
                props,
            )
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise _SessionEnd(f"publish failed: {paho.error_string(info.rc)}")
            if info.is_published():  # written at once (QoS 0): no callback will come for it
                continue
            mids[info.mid] = entry
            entry.pending += 1
            stats.in_flight += 1
        entry.sent = True
        self._settle()
        return True

    def _on_ack(self, mid: int, reason: int) -> None:
        """PUBACK / PUBCOMP (QoS 0: written) of ``mid``; called inside paho's socket I/O."""
        entry = self._mids.pop(mid, None)
        if entry is None:
            return
        self.stats.in_flight -= 1
        self._last_ack = time.monotonic()
        if reason >= _REFUSED:
            self.stats.rejected += 1
            code = ReasonCode(PacketTypes.PUBACK, identifier=reason)
            why = f"the broker refused a message: {code} (0x{reason:02X})"
            self._log(logging.ERROR, "refused", "republish %s: %s", self.name, why)
            if self._failure is not None and not self._failure.done():
                self._failure.set_result(why)
            return  # the row stays undone: the next connection publishes it again
        entry.pending -= 1
        if entry.pending == 0 and entry.sent:
            self._settle()
        if self.stats.in_flight < self._limit:
            self._room.set()

    def _settle(self) -> None:
        """Pass the cursor over the done rows at the head."""
        rows, stats = self._rows, self.stats
        while rows and rows[0].sent and rows[0].pending == 0:
            done = rows.popleft()
            self._acked = done.position
            stats.rows += 1
            stats.published += done.messages
            stats.published_total += done.messages
            self._settled.set()

    async def _watchdog(self) -> None:
        timeout = self.cfg.ack_timeout_s
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            if self.stats.in_flight and time.monotonic() - self._last_ack > timeout:
                raise _SessionEnd(f"no acknowledgement for {timeout:g} s")

    # -- the database ------------------------------------------------------------------------

    async def _with_db(self, what: str, op: Callable[[Conn], Awaitable[T]]) -> T | None:
        """``op`` on a pooled connection, retried with backoff while it fails; None when it
        fails while closing."""
        backoff = Backoff(self.cfg.poll_interval_ms / 1000, 30.0)
        while True:
            try:
                async with self.pool.acquire() as conn:
                    return await op(conn)
            except Exception as exc:
                self.stats.error(f"{what}: {exc}")
                self._log(logging.WARNING, "db", "republish %s: %s: %s", self.name, what, exc)
                if self._closing.is_set():
                    return None
                await sleep_unless(self._closing, backoff.next())

    async def _load(self) -> bool:
        cursor = await self._with_db(
            "loading the cursor", lambda c: self.outbox.load(c, self.cfg.start)
        )
        if cursor is None:
            return False
        self._acked = self._saved = cursor.position
        self.stats.published_total = self._saved_total = cursor.forwarded
        return True

    async def _save_loop(self) -> None:
        interval = self.cfg.cursor_save_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await self._save()

    async def _save(self) -> None:
        """Save the cursor when it moved, delete what every republish cursor passed, and
        refresh the lag (at least every second)."""
        position, total = self._acked, self.stats.published_total
        moved = position != self._saved or total != self._saved_total
        now = time.monotonic()
        if not moved and now - self._lag_at < _LAG_REFRESH_S:
            return
        try:
            async with self.pool.acquire() as conn:
                if moved:
                    await self.outbox.save(conn, position, total)
                    self._saved, self._saved_total = position, total
                    self.stats.deleted_rows += await self.outbox.delete_passed(conn)
                lag = await self.outbox.lag(conn, self._saved)
        except Exception as exc:  # kept in memory: the next save carries it
            self.stats.error(f"saving the cursor: {exc}")
            self._log(logging.WARNING, "save", "republish %s: cannot save: %s", self.name, exc)
            return
        self._lag_at = now
        st = self.stats
        st.lag_rows, st.lag_records, st.oldest_waiting_at = lag.rows, lag.records, lag.oldest
