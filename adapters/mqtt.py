"""The MQTT adapter: ``[mqtt]`` routes, messages to records, acknowledged once durable.

:class:`MqttAdapter` runs an :class:`~gateway.adapters.mqtt_client.MqttIntake` subscribed to
every ``[[mqtt.routes]]`` filter and, per batch of deliveries (at most ``mqtt.batch``):

* routes each message by topic (first matching filter wins; ``$share/<group>/`` prefixes are
  matched on the filter part), decodes its payload with the route's codec (one GB/T 32960 or
  JT/T 808 frame through :class:`gateway.ingest.Ingestor`, or one swap-station or charger JSON
  message through :mod:`gateway.swap` / :mod:`gateway.charger_json`), and checks the device id
  the topic names against the payload's;
* adds the message's archive row: a ``RawFrame`` (protocol ``gbt32960`` / ``jt808`` /
  ``silkgate-swap`` / ``silkgate-charger``), or a ``DeadLetter`` (no route, undecodable, device
  mismatch);
* submits the whole batch to the pipeline at once and acknowledges every delivery of the batch
  (PUBACK) only when the pipeline's future resolves, i.e. once the records are durable. A
  failed future (the pipeline stopped under it) acknowledges nothing: the broker redelivers
  those messages on the gateway's next connection.

Redeliveries store nothing twice. Every archive row of an MQTT message gets a deterministic
``frame_id``, a UUID (version 5 layout) of the SHA-1 of topic and payload. For a delivery with
DUP set (the broker sent it before, to this session, and had no PUBACK), the adapter asks
whether that frame id is already archived: submitted earlier in this process (waiting for the
earlier submission if it is still in flight), or committed in ``raw_frames`` / ``dead_letters``
within ``mqtt.dedup_window_s`` (by the unique index on ``(frame_id, received_at)``). If it is,
the earlier copy was committed in one transaction with its records, so the redelivery is
acknowledged without being stored again. Messages without DUP were never sent to the session
before and are always stored (a publisher that publishes the same bytes twice gets two archive
rows, with the same frame id; the normalized tables' natural keys keep one reading). Retained
messages are checked like DUP ones: a subscription made anew (after a lost session) gets them
again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from gateway.adapters.mqtt_client import Delivery, MqttIntake, MqttIntakeConfig, MqttTls
from gateway.charger_json import normalize as charger_normalize
from gateway.charger_json.messages import decode as charger_decode
from gateway.ingest import GBT32960, JT808, Ingestor
from gateway.json_messages import PayloadError
from gateway.mqtt_config import MqttConfig, MqttRoute
from gateway.records import DeadLetter, RawFrame
from gateway.swap import normalize as swap_normalize
from gateway.swap.messages import decode as swap_decode

log = logging.getLogger("silkgate.mqtt")

#: ``protocol`` of the dead letters of messages that matched no route.
NO_ROUTE_PROTOCOL = "mqtt"
#: Processed frame ids remembered in memory (beyond that, the store is asked).
_RECENT = 65536
#: After each (re)connect every delivery is checked against the store for this long, not only
#: DUP ones: a broker restarted from an older save (a crash) sends again, without DUP, what was
#: still queued at that save, though the gateway may have stored and acknowledged it since.
_SUSPECT_AFTER_CONNECT_S = 10.0
#: The JSON message sets' codecs -> their archive rows' ``protocol``.
_JSON_PROTOCOLS = {"swap": swap_normalize.PROTOCOL, "charger": charger_normalize.PROTOCOL}
#: Topics whose route, device and peer are remembered (the cache starts over beyond that).
_TOPICS = 65536
# A version 5 UUID's version and variant bits (RFC 9562), as ``uuid.UUID(version=5)`` sets them.
_UUID5_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID5_SET = (0x5000 << 64) | (0x8000 << 48)
_SAFE_UNKNOWN = uuid.SafeUUID.unknown


class Submitter(Protocol):
    """What the adapter needs of :class:`gateway.pipeline.Pipeline`."""

    async def submit(self, records: Any, *, write_now: bool = False) -> asyncio.Future[None]: ...


class Fetcher(Protocol):
    """What the redelivery check needs of an ``asyncpg`` pool (None: memory only)."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


def frame_id(topic: str, payload: bytes) -> uuid.UUID:
    """The archive id of a message: SHA-1 of ``topic``, NUL, ``payload`` as a version 5 UUID."""
    digest = hashlib.sha1(topic.encode() + b"\x00" + payload, usedforsecurity=False).digest()
    # Equal to uuid.UUID(bytes=digest[:16], version=5), without its validating __init__ (the
    # slots filled in directly, as gateway.frame_ids does): a third of this function's cost.
    u: uuid.UUID = object.__new__(uuid.UUID)
    object.__setattr__(u, "int", int.from_bytes(digest[:16]) & _UUID5_CLEAR | _UUID5_SET)
    object.__setattr__(u, "is_safe", _SAFE_UNKNOWN)
    return u


def intake_config(cfg: MqttConfig) -> MqttIntakeConfig:
    """The intake's configuration of an ``[mqtt]`` section (one subscription per route)."""
    tls = (
        MqttTls(
            ca=cfg.tls_ca, cert=cfg.tls_cert, key=cfg.tls_key, check_hostname=cfg.tls_check_hostname
        )
        if cfg.tls
        else None
    )
    return MqttIntakeConfig(
        host=cfg.host,
        port=cfg.port,
        client_id=cfg.client_id,
        subscriptions=[(r.filter, r.qos) for r in cfg.routes],
        protocol=cfg.protocol,
        session_expiry=cfg.session_expiry_s,
        keepalive=cfg.keepalive_s,
        max_in_flight=cfg.max_in_flight,
        username=cfg.username,
        password_env=cfg.password_env,
        tls=tls,
        backoff_initial=cfg.backoff_initial_s,
        backoff_max=cfg.backoff_max_s,
        connect_timeout=cfg.connect_timeout_s,
    )


@dataclass
class MqttAdapterStats:
    """Counters of one adapter (its intake's are in ``MqttAdapter.intake.stats``)."""

    messages: int = 0
    records: int = 0  # normalized records submitted
    dead_letters: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    #: Redelivered messages found already stored, acknowledged without storing them again.
    duplicates: int = 0
    #: Redelivered messages whose store lookup failed (stored again: duplicates, never loss).
    lookup_failures: int = 0
    batches: int = 0
    #: Batches whose records never became durable (not acknowledged; the broker redelivers).
    failed_batches: int = 0


@dataclass(slots=True)
class _Message:
    delivery: Delivery
    fid: uuid.UUID
    records: list[Any]


@dataclass(frozen=True, slots=True)
class _Topic:
    """What every message on one topic shares."""

    route: MqttRoute | None  # the first matching route
    device: str | None  # the device id the topic names (the route's ``topic:N`` level)
    peer: str  # the archive rows' ``peer``


class MqttAdapter:
    """The ``[mqtt]`` intake feeding the pipeline; ``start()`` / ``stop()``."""

    def __init__(
        self,
        cfg: MqttConfig,
        pipeline: Submitter,
        pool: Fetcher | None = None,
        *,
        intake: MqttIntakeConfig | None = None,
    ) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.pool = pool
        self.intake = MqttIntake(intake or intake_config(cfg))
        self.stats = MqttAdapterStats()
        self._ingest = {GBT32960: Ingestor(GBT32960), JT808: Ingestor(JT808)}
        self._task: asyncio.Task[None] | None = None
        # Frame ids submitted and not yet durable, and those made durable by this process.
        self._pending: dict[uuid.UUID, asyncio.Future[None]] = {}
        self._recent: collections.OrderedDict[uuid.UUID, None] = collections.OrderedDict()
        self._outstanding: set[asyncio.Future[None]] = set()
        self._window = timedelta(seconds=cfg.dedup_window_s)
        self._topics: dict[str, _Topic] = {}
        self._connects = 0  # the intake's connects when last looked at
        self._suspect_until = 0.0  # deliveries received before this (epoch s) may be repeats
        # Deliveries of one socket read share their receive time: its datetime, made once.
        self._received: tuple[float, datetime] = (0.0, datetime.fromtimestamp(0, UTC))

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (in the background, retrying) and start consuming."""
        self.intake.start()
        self._task = asyncio.get_running_loop().create_task(self._consume(), name="mqtt-adapter")
        self._task.add_done_callback(_report_end)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, wait up to ``timeout`` s for the submitted ones to become
        durable (and be acknowledged), then disconnect. Call before the pipeline closes."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._outstanding:
            await asyncio.wait(self._outstanding, timeout=timeout)
        await asyncio.sleep(0)  # let the done callbacks of the last futures run
        await self.intake.aclose()

    def status(self) -> str:
        """One line for the live status."""
        st, it = self.stats, self.intake.stats
        state = "up" if it.connected else "DOWN" if self._task is not None else "stopped"
        return (
            f"mqtt {state}: {st.messages:,} msgs, {st.dead_letters:,} dead, "
            f"{it.redelivered:,} redelivered, {st.duplicates:,} dup skipped, "
            f"{it.in_flight:,} in flight, {it.reconnects:,} reconnects"
        )

    # -- consuming -------------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            batch = await self.intake.get_batch(self.cfg.batch)
            await self.process(batch)

    async def process(self, batch: Sequence[Delivery]) -> asyncio.Future[None]:
        """Convert, submit and arrange the acknowledgement of one batch; the pipeline's future."""
        messages = [self._convert(d) for d in batch]
        keep = await self._not_stored(messages)
        records = [r for m in keep for r in m.records]
        # A stalled intake sends nothing more until these are acknowledged: no batch to wait for.
        fut = await self.pipeline.submit(records, write_now=self.intake.stalled())
        self.stats.batches += 1
        fids = [m.fid for m in keep]
        self._pending.update(dict.fromkeys(fids, fut))
        self._outstanding.add(fut)
        fut.add_done_callback(lambda f: self._durable(f, batch, fids))
        return fut

    def _durable(
        self, fut: asyncio.Future[None], batch: Sequence[Delivery], fids: list[uuid.UUID]
    ) -> None:
        self._outstanding.discard(fut)
        for fid in fids:
            if self._pending.get(fid) is fut:
                del self._pending[fid]
        if fut.cancelled() or fut.exception() is not None:
            # Only when the pipeline stops under the batch (the gateway is stopping): the
            # deliveries stay unacknowledged and come back on the next connection.
            self.stats.failed_batches += 1
            log.error("mqtt: %d messages not durable, not acknowledged", len(batch))
            return
        recent = self._recent
        recent.update(dict.fromkeys(fids))  # oldest first out (a repeat keeps its place)
        while len(recent) > _RECENT:
            recent.popitem(last=False)
        for d in batch:
            d.ack()

    # -- redeliveries ----------------------------------------------------------------------

    def _maybe_resent(self, d: Delivery) -> bool:
        return _resent(d) or d.received_at < self._suspect_until

    async def _not_stored(self, messages: list[_Message]) -> list[_Message]:
        """``messages`` without the redeliveries whose archive row is already durable."""
        connects = self.intake.stats.connects
        if connects != self._connects:
            self._connects = connects
            self._suspect_until = time.time() + _SUSPECT_AFTER_CONNECT_S
        resent = self._maybe_resent
        if not any(resent(m.delivery) for m in messages):  # the normal case: nothing resent
            for m in messages:
                self._count(m.records)
            return messages
        stored: set[uuid.UUID] = set()
        ask: list[uuid.UUID] = []
        for m in messages:
            if not resent(m.delivery) or m.fid in stored:
                continue
            earlier = self._pending.get(m.fid)
            if earlier is not None:
                await asyncio.wait([earlier])  # never raises its error, nor cancels it
                if not earlier.cancelled() and earlier.exception() is None:
                    stored.add(m.fid)
            elif m.fid in self._recent:
                stored.add(m.fid)
            else:
                ask.append(m.fid)
        if ask and self.pool is not None:
            stored |= await self._lookup(ask)
        out: list[_Message] = []
        seen: set[uuid.UUID] = set()
        for m in messages:
            if resent(m.delivery) and (m.fid in stored or m.fid in seen):
                self.stats.duplicates += 1
                continue
            seen.add(m.fid)
            out.append(m)
            self._count(m.records)
        return out

    async def _lookup(self, fids: list[uuid.UUID]) -> set[uuid.UUID]:
        assert self.pool is not None
        since = datetime.now(UTC) - self._window
        try:
            rows = await self.pool.fetch(
                "SELECT frame_id FROM raw_frames WHERE frame_id = ANY($1::uuid[])"
                " AND received_at >= $2"
                " UNION SELECT frame_id FROM dead_letters WHERE frame_id = ANY($1::uuid[])"
                " AND received_at >= $2",
                fids,
                since,
            )
        except Exception as exc:
            # Store them again: a duplicate archive row rather than a lost message.
            self.stats.lookup_failures += len(fids)
            log.warning("mqtt: redelivery lookup failed (%s); storing %d again", exc, len(fids))
            return set()
        return {row[0] for row in rows}

    # -- messages to records ---------------------------------------------------------------

    def _count(self, records: list[Any]) -> None:
        st = self.stats
        st.messages += 1
        for r in records:
            kind = type(r)
            if kind is DeadLetter:
                st.dead_letters += 1
                st.by_reason[r.reason] = st.by_reason.get(r.reason, 0) + 1
            elif kind is not RawFrame:
                st.records += 1

    def _topic(self, topic: str) -> _Topic:
        """The route, device and peer of ``topic`` (remembered: devices keep their topics)."""
        known = self._topics.get(topic)
        if known is None:
            if len(self._topics) >= _TOPICS:
                self._topics.clear()
            route = self.cfg.route_for(topic)
            device = route.device_of(topic) if route is not None else None
            known = self._topics[topic] = _Topic(route, device, f"mqtt:{topic}")
        return known

    def _received_at(self, d: Delivery) -> datetime:
        at, when = self._received
        if d.received_at != at:
            when = datetime.fromtimestamp(d.received_at, UTC)
            self._received = (d.received_at, when)
        return when

    def _convert(self, d: Delivery) -> _Message:
        fid = frame_id(d.topic, d.payload)
        now = self._received_at(d)
        topic = self._topic(d.topic)
        route, peer = topic.route, topic.peer
        if route is None:
            dead = _dead(fid, now, peer, NO_ROUTE_PROTOCOL, "no_route", "no route", d.payload)
            dead.message = f"topic {d.topic!r} matches no [[mqtt.routes]] filter"
            return _Message(d, fid, [dead])
        try:
            if route.codec in _JSON_PROTOCOLS:
                return _Message(d, fid, self._json(route, d, fid, now, peer))
            return _Message(d, fid, self._frame(route, d, fid, now, peer))
        except Exception as exc:  # a codec bug must not stop the intake: keep the payload
            log.exception("mqtt: %s payload on %r failed to decode", route.codec, d.topic)
            protocol = _JSON_PROTOCOLS.get(route.codec, route.codec)
            why = f"{type(exc).__name__}: {exc}"[:1000]
            dead = _dead(fid, now, peer, protocol, "internal_error", why, d.payload)
            dead.device_id = route.device_of(d.topic)
            return _Message(d, fid, [dead])

    def _frame(
        self, route: MqttRoute, d: Delivery, fid: uuid.UUID, now: datetime, peer: str
    ) -> list[Any]:
        records = self._ingest[route.codec].frame(d.payload, peer, now)
        topic_device = self._topic(d.topic).device
        # Ingestor.frame: the normalized records then their RawFrame, or a DeadLetter alone.
        raw = records[-1]
        raw.frame_id = fid
        if isinstance(raw, DeadLetter):
            raw.device_id = topic_device
            return records
        if topic_device is not None and not _same_device(route.codec, topic_device, raw.device_id):
            return [
                _dead(
                    fid,
                    now,
                    peer,
                    route.codec,
                    "device_mismatch",
                    f"topic names device {topic_device!r}, the frame {raw.device_id!r}",
                    d.payload,
                    device=topic_device,
                )
            ]
        return records

    def _json(
        self, route: MqttRoute, d: Delivery, fid: uuid.UUID, now: datetime, peer: str
    ) -> list[Any]:
        """A swap-station or charger JSON message: its records and raw frame, or a dead letter
        (``device_id`` the topic's). The topic's device fills in a payload that names none."""
        protocol = _JSON_PROTOCOLS[route.codec]
        device = route.device_of(d.topic)
        records: list[Any]
        try:
            if route.codec == "swap":
                swap = swap_decode(d.payload, station_id=device)
                records = list(swap_normalize.records(swap, now))
                device, version = swap.station_id, swap.v
            else:
                charger = charger_decode(d.payload, charger_id=device)
                hashed = self.cfg.id_tags == "hash"
                records = list(charger_normalize.records(charger, now, hash_id_tags=hashed))
                device, version = charger.charger_id, charger.v
        except PayloadError as exc:
            why = exc.message[:1000]
            return [_dead(fid, now, peer, protocol, str(exc.reason), why, d.payload, device)]
        records.append(
            RawFrame(
                frame_id=fid,
                received_at=now,
                peer=peer,
                protocol=protocol,
                frame=d.payload,
                version=str(version),
                device_id=device,
            )
        )
        return records


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("mqtt: the adapter stopped taking messages: %r", exc, exc_info=exc)


def _resent(d: Delivery) -> bool:
    """A delivery the broker may have sent before: DUP set, or a retained message (sent again
    when a lost session's subscription is made anew)."""
    return d.dup or d.retain


def _same_device(codec: str, topic_device: str, frame_device: str | None) -> bool:
    if frame_device is None:
        return False
    if codec == JT808:  # a phone number: BCD[6] (2013) or BCD[10] (2019), zero-padded
        return topic_device.lstrip("0") == frame_device.lstrip("0")
    return topic_device == frame_device


def _dead(
    fid: uuid.UUID,
    now: datetime,
    peer: str,
    protocol: str,
    reason: str,
    message: str,
    raw: bytes,
    device: str | None = None,
) -> DeadLetter:
    return DeadLetter(
        frame_id=fid,
        received_at=now,
        peer=peer,
        protocol=protocol,
        reason=reason,
        message=message,
        raw=raw,
        device_id=device,
    )
