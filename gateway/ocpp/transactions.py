"""Transactions as the OCPP central system keeps them.

OCPP 1.6 (:class:`Transactions16`): the central system assigns the integer transaction id in
its StartTransaction answer. The row of ``ocpp_transactions`` (migration 0008) has the natural
key (charger, connector, the charger's start time), so a StartTransaction retried from the
charger's offline queue gets the id it got the first time (``INSERT ... ON CONFLICT ... DO UPDATE
... RETURNING``: one round trip either way). StopTransaction finds the row back for the meter
start (energy) and sets ``stopped_at`` (the first stop time wins; a retried stop keeps it).

OCPP 2.0.1 (:class:`TransactionEvents`): the station names its transactions; what the central
system tracks is the ``seqNo`` of the TransactionEvents of each transaction. The schema calls it
the "incremental sequence number, helps with determining if all messages of a transaction have
been received", and OCPP 2.0.1 edition 2 (E01.FR.07, "Sequence Number Generation") recommends
starting it at 0 for every transaction (the OCTT case TC_E_53 checks that a CSMS accepts a
seqNo starting again at 0), while stations following edition 1 may run one counter across their
transactions. So the numbering is
tracked per (charger, transaction), and the scheme a charger uses is learnt from its ``Started``
events (seqNo 0: per transaction; more: one station-wide counter):

* the first event seen of a transaction that is a ``Started`` sets the base, whatever its value;
* a first event that is not ``Started`` (and the database knows nothing of the transaction)
  expects the events from 0 on, unless the charger counts station-wide (then where the
  transaction began is unknown: no verdict);
* ``seqNo <= last`` is a retry (offline queue): idempotent, no gap;
* ``seqNo > last + 1`` is a gap of the numbers in between; with a station-wide counter, less
  the numbers the charger used for its other transactions lately (two EVSEs' transactions
  interleave), of which the last ``recent_per_charger`` are remembered per charger.

State lives in a bounded LRU (``max_transactions``). The first time a transaction is seen
(after a restart, or once evicted) its history is read from ``charging_sessions``: the highest
``extra.seq_no`` stored, and the start event's meter start, start time, EVSE and connector. A
database failure there propagates (the shell answers InternalError and the station retries): a
guess would lose the energy of the session.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

import asyncpg

from gateway.ocpp.normalize import TxInfo

SEQ_NO_KEY: Final = "seq_no"
"""The ``ChargingSession.extra`` key under which the TransactionEvent's seqNo is stored."""

_START_SQL: Final = """
INSERT INTO ocpp_transactions (charger_id, connector_id, started_at, id_tag, meter_start_wh)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (charger_id, connector_id, started_at) DO UPDATE SET id_tag = ocpp_transactions.id_tag
RETURNING transaction_id
"""
_STOP_SQL: Final = """
UPDATE ocpp_transactions SET stopped_at = COALESCE(stopped_at, $3)
WHERE transaction_id = $2 AND charger_id = $1
RETURNING transaction_id, connector_id, started_at, id_tag, meter_start_wh, stopped_at
"""
_GET_SQL: Final = """
SELECT transaction_id, connector_id, started_at, id_tag, meter_start_wh, stopped_at
FROM ocpp_transactions WHERE transaction_id = $2 AND charger_id = $1
"""
_HISTORY_SQL: Final = f"""
SELECT max((extra->>'{SEQ_NO_KEY}')::bigint) AS last_seq,
       min(started_at) AS started_at,
       (array_agg(meter_start_wh ORDER BY time) FILTER (WHERE meter_start_wh IS NOT NULL))[1]
           AS meter_start_wh,
       (array_agg(evse_id ORDER BY time) FILTER (WHERE evse_id IS NOT NULL))[1] AS evse_id,
       (array_agg(connector_id ORDER BY time) FILTER (WHERE connector_id IS NOT NULL))[1]
           AS connector_id,
       (array_agg(id_tag ORDER BY time) FILTER (WHERE id_tag IS NOT NULL AND NOT id_tag_hashed))[1]
           AS id_tag,
       (array_agg((extra->>'{SEQ_NO_KEY}')::bigint ORDER BY time) FILTER (WHERE event = 'start'))[1]
           AS base,
       count(*) AS n
FROM charging_sessions WHERE charger_id = $1 AND transaction_id = $2
"""


@dataclass(frozen=True, slots=True)
class Transaction16:
    """One row of ``ocpp_transactions``."""

    transaction_id: int
    charger_id: str
    connector_id: int
    started_at: datetime
    id_tag: str
    meter_start_wh: int
    stopped_at: datetime | None = None

    def tx_info(self) -> TxInfo:
        """What normalize needs of it."""
        return TxInfo(
            transaction_id=str(self.transaction_id),
            connector_id=self.connector_id,
            started_at=self.started_at,
            meter_start_wh=float(self.meter_start_wh),
            id_tag=self.id_tag,
        )


def _row16(charger_id: str, row: Any) -> Transaction16:
    return Transaction16(
        transaction_id=row["transaction_id"],
        charger_id=charger_id,
        connector_id=row["connector_id"],
        started_at=row["started_at"],
        id_tag=row["id_tag"],
        meter_start_wh=row["meter_start_wh"],
        stopped_at=row["stopped_at"],
    )


class Transactions16:
    """OCPP 1.6 transaction ids (table ``ocpp_transactions``). Database errors propagate."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def start(
        self,
        charger_id: str,
        connector_id: int,
        started_at: datetime,
        id_tag: str,
        meter_start_wh: int,
    ) -> int:
        """The transaction id of this start: a new one, or the one a retry of it got."""
        tid: int = await self._pool.fetchval(
            _START_SQL, charger_id, connector_id, started_at, id_tag, meter_start_wh
        )
        return tid

    async def stop(
        self, charger_id: str, transaction_id: int, stopped_at: datetime
    ) -> Transaction16 | None:
        """Mark the transaction stopped (the first stop time is kept); None when this charger
        has no transaction of that id."""
        row = await self._pool.fetchrow(_STOP_SQL, charger_id, transaction_id, stopped_at)
        return None if row is None else _row16(charger_id, row)

    async def get(self, charger_id: str, transaction_id: int) -> Transaction16 | None:
        """The transaction, or None."""
        row = await self._pool.fetchrow(_GET_SQL, charger_id, transaction_id)
        return None if row is None else _row16(charger_id, row)


@dataclass(slots=True)
class TxState:
    """What the central system knows of one 2.0.1 transaction."""

    transaction_id: str
    last_seq: int | None = None  # None: no event of it seen yet
    base: int | None = None  # seqNo of its Started event (None: not seen)
    evse_id: int | None = None
    connector_id: int | None = None
    started_at: datetime | None = None
    meter_start_wh: float | None = None
    id_tag: str | None = None  # as sent (only known when stored plain, after a restart)

    def tx_info(self) -> TxInfo:
        """What normalize needs of it."""
        return TxInfo(
            transaction_id=self.transaction_id,
            connector_id=self.connector_id,
            evse_id=self.evse_id,
            started_at=self.started_at,
            meter_start_wh=self.meter_start_wh,
            id_tag=self.id_tag,
        )


@dataclass(slots=True)
class _ChargerSeqs:
    """A charger's numbering: its scheme (learnt from Started events) and latest seqNos."""

    station_wide: bool | None = None  # one counter across transactions (None: not known yet)
    recent: dict[int, str] = field(default_factory=dict)  # seqNo -> transaction id, by age


class SeqCheck(NamedTuple):
    """The verdict on one TransactionEvent's seqNo."""

    state: TxState
    retry: bool  # seqNo already seen: a message retried from the station's queue
    expected: int | None  # the seqNo that was due (None: no history, a Started sets the base)
    missing: int  # how many seqNos before this one were never received (0: no gap)


class TransactionEvents:
    """seqNo tracking of OCPP 2.0.1 transactions (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_transactions: int = 100_000,
        recent_per_charger: int = 64,
        max_chargers: int = 100_000,
    ) -> None:
        self._pool = pool
        self._max = max_transactions
        self._recent_max = recent_per_charger
        self._max_chargers = max_chargers
        self._states: OrderedDict[tuple[str, str], TxState] = OrderedDict()
        self._chargers: OrderedDict[str, _ChargerSeqs] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    async def check(
        self, charger_id: str, transaction_id: str, seq_no: int, event_type: str
    ) -> SeqCheck:
        """Account for one TransactionEvent; reads the history on first sight (may raise)."""
        key = (charger_id, transaction_id)
        states = self._states
        state = states.get(key)
        if state is None:
            state = await self._history(charger_id, transaction_id)
            states[key] = state
            while len(states) > self._max:
                states.popitem(last=False)
        else:
            states.move_to_end(key)
        seqs = self._chargers.get(charger_id)
        if seqs is None:
            seqs = self._chargers[charger_id] = _ChargerSeqs()
            while len(self._chargers) > self._max_chargers:
                self._chargers.popitem(last=False)
        else:
            self._chargers.move_to_end(charger_id)

        last = state.last_seq
        retry = False
        expected: int | None
        missing = 0
        if last is None:
            if event_type == "Started":
                expected = None
                state.base = seq_no
                seqs.station_wide = seq_no > 0
            else:
                expected = None if seqs.station_wide else 0
        elif seq_no <= last:
            expected, retry = last + 1, True
        else:
            expected = last + 1
        if expected is not None and not retry and seq_no > expected:
            missing = seq_no - expected
            station_wide = seqs.station_wide if state.base is None else state.base > 0
            if station_wide:
                missing -= sum(
                    1
                    for s, t in seqs.recent.items()
                    if expected <= s < seq_no and t != transaction_id
                )
        if not retry:
            state.last_seq = seq_no
        recent = seqs.recent
        recent.pop(seq_no, None)
        recent[seq_no] = transaction_id
        if len(recent) > self._recent_max:
            del recent[next(iter(recent))]
        return SeqCheck(state, retry, expected, missing)

    def forget(self, charger_id: str, transaction_id: str) -> None:
        """Drop a transaction's state (the next event reads the history again)."""
        self._states.pop((charger_id, transaction_id), None)

    async def _history(self, charger_id: str, transaction_id: str) -> TxState:
        row: Any = await self._pool.fetchrow(_HISTORY_SQL, charger_id, transaction_id)
        if row is None or not row["n"]:
            return TxState(transaction_id)
        meter = row["meter_start_wh"]
        return TxState(
            transaction_id,
            last_seq=row["last_seq"],
            base=row["base"],
            evse_id=row["evse_id"],
            connector_id=row["connector_id"],
            started_at=row["started_at"],
            meter_start_wh=None if meter is None else float(meter),
            id_tag=row["id_tag"],
        )
