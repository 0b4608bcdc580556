"""JT/T 808 subpackage reassembly (pure Python, shared by both implementations).

:class:`Reassembler` collects the packets of one set, keyed by (phone, message id, first serial,
packet total), and returns the whole message as a :class:`Frame` once every packet arrived.
Incomplete sets are reported as :class:`MissingPackets` (the ids for a 0x8003 re-request) on
demand, when the caller's deadline passes (``poll(now)``; no clock is read here), or when the
bounds (sets, bytes) evict the oldest set. :func:`split_frame` does the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import msgspec

from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.jt808 import reference
from gateway.codecs.jt808.constants import MAX_BODY
from gateway.codecs.jt808.messages import Body, Frame, PlatformResendRequest, RawBody

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_SETS", "MissingPackets", "Reassembler", "split_frame"]

DEFAULT_MAX_SETS: Final = 256
DEFAULT_MAX_BYTES: Final = 4 * 1024 * 1024

#: (phone, message id, first serial (-1 when keyed by total), packet total)
SetKey = tuple[str, int, int, int]

REQUESTED: Final = "requested"
TIMEOUT: Final = "timeout"
EVICTED: Final = "evicted"


class MissingPackets(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """An incomplete set: which packet indices (from 1) are missing, and why it is reported.

    ``reason`` is ``"requested"`` (asked via :meth:`Reassembler.missing`), ``"timeout"`` (its
    deadline passed; the set is kept) or ``"evicted"`` (a bound was hit; the set is dropped).
    """

    key: SetKey
    phone: str
    msg_id: int
    version: int
    first_serial: int
    packet_total: int
    missing: tuple[int, ...]
    received_bytes: int
    reason: str

    def resend_request(self) -> PlatformResendRequest:
        """The 0x8003 body asking the terminal for the missing packets."""
        return PlatformResendRequest(original_serial=self.first_serial, packet_ids=self.missing)


class _Set:
    """Packets received so far for one key."""

    __slots__ = ("deadline", "first", "key", "parts", "size")

    def __init__(self, key: SetKey, first: Frame) -> None:
        self.key = key
        self.first = first  # header fields of the set are taken from its first packet seen
        self.parts: dict[int, bytes] = {}
        self.size = 0
        self.deadline: float | None = None

    def first_serial(self) -> int:
        f = self.first
        return (f.serial - (f.packet_index or 1) + 1) & 0xFFFF

    def report(self, reason: str) -> MissingPackets:
        total = self.key[3]
        return MissingPackets(
            key=self.key,
            phone=self.key[0],
            msg_id=self.key[1],
            version=self.first.version,
            first_serial=self.first_serial(),
            packet_total=total,
            missing=tuple(i for i in range(1, total + 1) if i not in self.parts),
            received_bytes=self.size,
            reason=reason,
        )


def _packet_data(frame: Frame) -> bytes:
    total, index = frame.packet_total, frame.packet_index
    if total is None or index is None or not 1 <= index <= total:
        raise ProtocolError(Reason.BAD_VALUE, f"packet {index} of {total} is not in a set")
    if not isinstance(frame.body, RawBody):
        raise ProtocolError(Reason.BAD_VALUE, "a packet of a set must carry a RawBody")
    return frame.body.data


class Reassembler:
    """Bounded collector of subpackaged frames (see the module docstring).

    ``key_by="first_serial"`` (default) tells sets apart by the serial of packet 1 (serial -
    index + 1), as the standard numbers packets consecutively; ``key_by="total"`` serves
    terminals that repeat one serial: one set per (phone, message id, total) at a time.
    ``decode_body`` turns the reassembled bytes into a typed body (encrypted sets stay raw).
    """

    def __init__(
        self,
        max_sets: int = DEFAULT_MAX_SETS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        key_by: Literal["first_serial", "total"] = "first_serial",
        decode_body: Callable[[int, bytes, int], Body] = reference.decode_body,
    ) -> None:
        if max_sets < 1 or max_bytes < 1:
            raise ValueError("max_sets and max_bytes must be positive")
        self.max_sets = max_sets
        self.max_bytes = max_bytes
        self._key_by = key_by
        self._decode_body = decode_body
        self._sets: dict[SetKey, _Set] = {}  # insertion order = age
        self._bytes = 0
        self._reports: list[MissingPackets] = []

    def __len__(self) -> int:
        return len(self._sets)

    @property
    def buffered_bytes(self) -> int:
        """Body bytes held in incomplete sets."""
        return self._bytes

    def _key(self, frame: Frame) -> SetKey:
        total = frame.packet_total or 0
        if self._key_by == "total":
            return (frame.phone, frame.msg_id, -1, total)
        first = (frame.serial - (frame.packet_index or 1) + 1) & 0xFFFF
        return (frame.phone, frame.msg_id, first, total)

    def add(self, frame: Frame, deadline: float | None = None) -> Frame | None:
        """Add one packet; the whole message when the set is complete, else None.

        Frames that are not subpackaged, or a set of one packet, come back unchanged.
        ``deadline`` (caller's clock) re-arms the set's timeout; duplicates are ignored.
        Raises ProtocolError for an index outside 1..total or a reassembled body that does
        not decode (``raw`` = the reassembled body).
        """
        if frame.packet_total is None or frame.packet_total == 1 == frame.packet_index:
            return frame
        data = _packet_data(frame)
        key = self._key(frame)
        entry = self._sets.get(key)
        if entry is None:
            entry = self._sets[key] = _Set(key, frame)
        if deadline is not None:
            entry.deadline = deadline
        index = frame.packet_index or 0
        if index in entry.parts:
            return None
        if index == 1:
            entry.first = frame
        entry.parts[index] = data
        entry.size += len(data)
        self._bytes += len(data)
        if len(entry.parts) == key[3]:
            return self._complete(entry)
        self._enforce_bounds(entry)
        return None

    def _complete(self, entry: _Set) -> Frame:
        self._drop(entry.key)
        data = b"".join(entry.parts[i] for i in range(1, entry.key[3] + 1))
        f = entry.first
        body: Body = RawBody(data=data)
        if f.encryption == 0:
            try:
                body = self._decode_body(f.msg_id, data, f.version)
            except ProtocolError as exc:
                raise ProtocolError(exc.reason, exc.message, exc.offset, data) from None
        return Frame(
            version=f.version,
            msg_id=f.msg_id,
            phone=f.phone,
            serial=entry.first_serial(),
            body=body,
            protocol_version=f.protocol_version,
            encryption=f.encryption,
            reserved=f.reserved,
        )

    def _drop(self, key: SetKey) -> _Set | None:
        entry = self._sets.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
        return entry

    def _evict_oldest(self, keep: SetKey | None) -> bool:
        for key in self._sets:
            if key != keep:
                entry = self._drop(key)
                assert entry is not None
                self._reports.append(entry.report(EVICTED))
                return True
        return False

    def _enforce_bounds(self, current: _Set) -> None:
        while len(self._sets) > self.max_sets and self._evict_oldest(current.key):
            pass
        while self._bytes > self.max_bytes and self._evict_oldest(current.key):
            pass
        if self._bytes > self.max_bytes:  # the newest set alone is too big
            self._drop(current.key)
            self._reports.append(current.report(EVICTED))

    def poll(self, now: float) -> list[MissingPackets]:
        """Eviction reports since the last poll, then every set whose deadline is <= ``now``.

        A timed-out set is kept (its deadline cleared) so late packets still complete it;
        :meth:`rearm` after sending a re-request, :meth:`discard` to give up.
        """
        reports, self._reports = self._reports, []
        for entry in self._sets.values():
            if entry.deadline is not None and entry.deadline <= now:
                entry.deadline = None
                reports.append(entry.report(TIMEOUT))
        return reports

    def missing(self, key: SetKey) -> MissingPackets | None:
        """On-demand report for one set (None if unknown or already complete)."""
        entry = self._sets.get(key)
        return None if entry is None else entry.report(REQUESTED)

    def pending(self) -> list[MissingPackets]:
        """On-demand reports for every incomplete set, oldest first."""
        return [entry.report(REQUESTED) for entry in self._sets.values()]

    def rearm(self, key: SetKey, deadline: float) -> None:
        """Set a new deadline for a set (e.g. after sending 0x8003)."""
        entry = self._sets.get(key)
        if entry is not None:
            entry.deadline = deadline

    def discard(self, key: SetKey) -> bool:
        """Forget a set; True if it existed."""
        return self._drop(key) is not None


def split_frame(
    frame: Frame,
    packet_size: int = MAX_BODY,
    encode_body: Callable[[int, Body, int], bytes] = reference.encode_body,
) -> list[Frame]:
    """Split a message into subpackaged frames of at most ``packet_size`` body bytes.

    Packet i (from 1) gets serial ``frame.serial + i - 1`` (mod 65536) and a RawBody; encode
    each with ``encode_frame``.
    """
    if not 1 <= packet_size <= MAX_BODY:
        raise ValueError(f"packet_size must be 1..{MAX_BODY}")
    data = encode_body(frame.msg_id, frame.body, frame.version)
    chunks = [data[i : i + packet_size] for i in range(0, len(data), packet_size)] or [b""]
    if len(chunks) > 0xFFFF:
        raise ProtocolError(Reason.BAD_LENGTH, f"{len(chunks)} packets do not fit a WORD")
    total = len(chunks)
    return [
        msgspec.structs.replace(
            frame,
            serial=(frame.serial + i) & 0xFFFF,
            body=RawBody(data=chunk),
            packet_total=total,
            packet_index=i + 1,
        )
        for i, chunk in enumerate(chunks)
    ]
