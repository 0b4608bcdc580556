"""Durable on-disk spool: where the pipeline puts batches while the database is away or slow.

The core (:class:`Spool`) is plain blocking file I/O with no asyncio, small enough to reason
about; :class:`AsyncSpool` is a thin wrapper that runs the blocking calls in a worker thread
(``asyncio.to_thread``). Payloads are opaque ``bytes`` (the pipeline serializes its batches).

Guarantees
----------
* **Nothing is lost.** A record is durable once ``synced_seq >= seq``. With ``fsync="always"``
  :meth:`Spool.append` returns only after an fsync covering the record; with ``"batch"`` the
  caller waits with :meth:`Spool.wait_synced` (group commit: one fsync covers every record
  written before it, taken when ``batch_interval`` seconds or ``batch_bytes`` bytes have
  accumulated, or at once by :meth:`Spool.flush`). ``"never"`` never fsyncs and reports every
  written record as synced: **it loses data on power loss** and exists for tests and
  benchmarks only.
* **Everything is bounded.** ``max_bytes`` caps the bytes on disk (``SpoolFull`` is raised and
  nothing is written when an append would exceed it; a full disk also raises ``SpoolFull``),
  ``max_record_bytes`` caps one record, ``segment_bytes`` one segment file. ``nearly_full``
  turns on at ``nearly_full_fraction`` of ``max_bytes`` with a warning at most every
  ``warn_interval`` seconds on the ``silkgate.spool`` logger.
* Records are replayed in seq order from the oldest unacknowledged one; :meth:`Spool.ack`
  persists the cursor and deletes fully acknowledged segments.
* One writer thread and one reader thread may use a spool at the same time. A directory is
  locked (``flock``) by one process at a time: a second one gets ``SpoolLocked``.

File format (version 1, all integers little-endian)
---------------------------------------------------
A spool is a directory::

    spool.lock                      empty; flock()ed by the owning process
    ack.cursor                      the ack cursor (below), replaced atomically
    spool-0000000000000001.seg      segment files, named by the seq of their first record
    spool-0000000000041937.seg      (16 digits, zero-padded), append-only

A segment is a sequence of records with no file header. Each record is a 28-byte header
followed by the payload::

    offset size  field
         0    4  magic          b"SGSP"
         4    1  version        1
         5    1  flags          0 (reserved)
         6    2  reserved       0
         8    4  length         payload length in bytes (u32)
        12    8  seq            record sequence number (u64); strictly increasing, from 1
        20    4  payload_crc    zlib.crc32 of the payload
        24    4  header_crc     zlib.crc32 of header bytes 0..23
        28    *  payload

The header has its own CRC so that a corrupt length is never trusted. A new segment is started
when the next record would take the active one past ``segment_bytes`` (a record larger than
that gets a segment of its own); the previous segment is fsynced first, so only the last
segment can end in a torn record. Seqs are contiguous across segments: a segment's last seq
is the next segment's name minus one.

``ack.cursor`` is 20 bytes: magic ``b"SGACK\\x00\\x00\\x01"``, the acknowledged seq (u64) and
zlib.crc32 of those 16 bytes. It is written as ``ack.cursor.tmp``, fsynced, renamed over
``ack.cursor``, and the directory is fsynced. Segment creation and deletion fsync the directory.

Recovery on open
----------------
The last segment is read and verified record by record. A bad record with no valid record
after it is a torn tail from a crash (it was never reported durable): it is logged and
truncated away (``torn_records_total``), and appending continues after the last good record.
A bad stretch followed by a valid record is corruption (bit rot): it is skipped by scanning for
the next magic whose header and payload CRCs check, logged as an error and counted in
``corrupt_records_total`` (records lost, from the seq gap) and ``corrupt_bytes_total``. Older
segments are verified as they are replayed, with the same skipping and counting; each bad
stretch is counted once. A record with valid CRCs but an unknown version raises
``SpoolFormatError`` (a newer silkgate wrote it; nothing is deleted).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

__all__ = [
    "HEADER_SIZE",
    "AsyncSpool",
    "FsyncPolicy",
    "RecordTooLarge",
    "Spool",
    "SpoolClosed",
    "SpoolConfig",
    "SpoolError",
    "SpoolFormatError",
    "SpoolFull",
    "SpoolLocked",
    "SpoolUsage",
]

log = logging.getLogger("silkgate.spool")

FsyncPolicy = Literal["always", "batch", "never"]

MAGIC: Final = b"SGSP"
VERSION: Final = 1
_HEAD: Final = struct.Struct("<4sBBHIQI")  # magic, version, flags, reserved, length, seq, pcrc
_HCRC: Final = struct.Struct("<I")
HEADER_SIZE: Final = _HEAD.size + _HCRC.size  # 28
FORMAT_MAX_RECORD: Final = 0xFFFFFFFF

ACK_FILE: Final = "ack.cursor"
ACK_TMP: Final = "ack.cursor.tmp"
LOCK_FILE: Final = "spool.lock"
_ACK_MAGIC: Final = b"SGACK\x00\x00\x01"
_ACK: Final = struct.Struct("<8sQI")
_SEGMENT_RE: Final = re.compile(r"spool-(\d{16,20})\.seg")

_WINDOW: Final = 1 << 20  # read-ahead when reading segments
_MAX_CHUNK: Final = 8 << 20  # largest single write of append_many


class SpoolError(Exception):
    """Base class of the spool's errors."""


class SpoolFull(SpoolError):
    """An append would take the spool past ``max_bytes`` (nothing of the call was written),
    or the disk is full (see :meth:`Spool.append_many`). The pipeline applies backpressure."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"spool full: {needed} bytes needed, {available} available")
        self.needed = needed
        self.available = available


class SpoolLocked(SpoolError):
    """Another process holds the spool directory."""


class SpoolClosed(SpoolError):
    """The spool was closed, or failed (an fsync error) and must be reopened."""


class SpoolFormatError(SpoolError):
    """A record with valid checksums but a format version this code does not know."""


class RecordTooLarge(SpoolError, ValueError):
    """A payload longer than ``max_record_bytes``."""


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    """The spool's limits and fsync policy (the ``[spool]`` section of the config)."""

    max_bytes: int = 1 << 30
    segment_bytes: int = 64 << 20
    max_record_bytes: int = 16 << 20
    fsync: FsyncPolicy = "batch"
    batch_interval: float = 0.02
    batch_bytes: int = 4 << 20
    nearly_full_fraction: float = 0.8
    warn_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.fsync not in ("always", "batch", "never"):
            raise ValueError(f"fsync: must be 'always', 'batch' or 'never', not {self.fsync!r}")
        if self.max_bytes <= 0:
            raise ValueError("max_bytes: must be positive")
        if not 0 < self.segment_bytes <= self.max_bytes:
            raise ValueError("segment_bytes: must be positive and at most max_bytes")
        if not 0 < self.max_record_bytes <= min(self.max_bytes - HEADER_SIZE, FORMAT_MAX_RECORD):
            raise ValueError("max_record_bytes: must be positive and fit in max_bytes")
        if self.batch_interval < 0:
            raise ValueError("batch_interval: must not be negative")
        if self.batch_bytes <= 0:
            raise ValueError("batch_bytes: must be positive")
        if not 0 < self.nearly_full_fraction <= 1:
            raise ValueError("nearly_full_fraction: must be in (0, 1]")
        if self.warn_interval < 0:
            raise ValueError("warn_interval: must not be negative")


@dataclass(frozen=True, slots=True)
class SpoolUsage:
    """A snapshot of the spool's size. ``records`` counts unacknowledged records (a record
    found corrupt later still counts until replay skips past it)."""

    bytes: int
    records: int
    segments: int
    max_bytes: int
    nearly_full: bool


@dataclass(slots=True)
class _Segment:
    first_seq: int
    path: Path
    size: int  # bytes of valid records (the write offset of the active segment)
    last_seq: int  # first_seq - 1 while empty


def _segment_name(seq: int) -> str:
    return f"spool-{seq:016d}.seg"


def _encode_header(seq: int, payload: bytes) -> bytes:
    head = _HEAD.pack(MAGIC, VERSION, 0, 0, len(payload), seq, zlib.crc32(payload))
    return head + _HCRC.pack(zlib.crc32(head))


def _pread_full(fd: int, n: int, off: int) -> bytes:
    """Up to ``n`` bytes at ``off``; short only at end of file."""
    data = os.pread(fd, n, off)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = os.pread(fd, n - got, off + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class _Window:
    """Reads of one segment file below ``end`` (bytes past it may still be being written),
    through a read-ahead buffer."""

    __slots__ = ("_buf", "_fd", "_off", "end")

    def __init__(self, fd: int, end: int) -> None:
        self._fd = fd
        self.end = end
        self._off = 0
        self._buf = b""

    def read(self, off: int, n: int) -> bytes:
        n = min(n, self.end - off)
        if n <= 0:
            return b""
        rel = off - self._off
        if rel >= 0 and rel + n <= len(self._buf):
            return self._buf[rel : rel + n]
        if n >= _WINDOW:
            return _pread_full(self._fd, n, off)
        self._buf = _pread_full(self._fd, min(_WINDOW, self.end - off), off)
        self._off = off
        return self._buf[:n]


def _parse_at(
    win: _Window, off: int, min_seq: int, payload_after: int
) -> tuple[int, bytes | None, int] | None:
    """The record at ``off`` as ``(seq, payload, next_offset)``, or None if there is no valid
    record there. The payload is read and its CRC checked only if ``seq > payload_after``."""
    head = win.read(off, HEADER_SIZE)
    if len(head) < HEADER_SIZE or head[:4] != MAGIC:
        return None
    _, version, flags, reserved, length, seq, pcrc = _HEAD.unpack_from(head)
    (hcrc,) = _HCRC.unpack_from(head, _HEAD.size)
    if zlib.crc32(head[: _HEAD.size]) != hcrc:
        return None
    if version != VERSION:
        raise SpoolFormatError(f"record at offset {off} has format version {version}")
    end = off + HEADER_SIZE + length
    if flags or reserved or seq < min_seq or end > win.end:
        return None
    if seq <= payload_after:
        return seq, None, end
    payload = win.read(off + HEADER_SIZE, length)
    if len(payload) != length or zlib.crc32(payload) != pcrc:
        return None
    return seq, payload, end


def _resync(win: _Window, off: int, min_seq: int) -> tuple[int, int] | None:
    """The next valid record after the bad byte at ``off``, as ``(offset, seq)``."""
    pos = off + 1
    while win.end - pos >= HEADER_SIZE:
        chunk_end = min(win.end, pos + _WINDOW)
        buf = win.read(pos, chunk_end - pos)
        i = buf.find(MAGIC)
        while i != -1:
            found = _parse_at(win, pos + i, min_seq, -1)
            if found is not None:
                return pos + i, found[0]
            i = buf.find(MAGIC, i + 1)
        if chunk_end >= win.end:
            break
        pos = chunk_end - (len(MAGIC) - 1)  # a magic may straddle the chunk boundary
    return None


class Spool:
    """A durable, bounded, append-only record spool in one directory (see the module doc).

    Counters for metrics are plain attributes: ``appended_total``, ``replayed_total``,
    ``acked_total``, ``torn_records_total``, ``corrupt_records_total``,
    ``corrupt_bytes_total``, ``fsyncs_total``; gauges are the properties ``size_bytes``,
    ``records``, ``segments``, ``nearly_full``, ``last_seq``, ``synced_seq``, ``acked_seq``.
    """

    def __init__(
        self, directory: str | os.PathLike[str], config: SpoolConfig | None = None
    ) -> None:
        self.config = config if config is not None else SpoolConfig()
        self.directory = Path(directory)
        self.appended_total = 0
        self.replayed_total = 0
        self.acked_total = 0
        self.torn_records_total = 0
        self.corrupt_records_total = 0
        self.corrupt_bytes_total = 0
        self.fsyncs_total = 0

        self._lock = threading.Lock()  # segments, offsets, seqs, counters
        self._synced_cond = threading.Condition(self._lock)
        self._sync_lock = threading.Lock()  # one fsync of the active segment at a time
        self._ack_lock = threading.Lock()  # one ack-cursor write at a time
        self._read_lock = threading.Lock()  # one reader at a time

        self._segments: list[_Segment] = []
        self._active_fd: int | None = None  # open for writing: the last segment
        self._size_bytes = 0
        self._written_seq = 0
        self._synced_seq = 0
        self._acked_seq = 0
        self._unsynced_bytes = 0
        self._unsynced_since: float | None = None
        self._failed: BaseException | None = None
        self._closed = False
        self._last_warning: float | None = None
        self._known_bad: set[tuple[int, int]] = set()  # (segment first seq, offset) counted
        self._cursor: tuple[int, int, int] | None = None  # (seq, segment first seq, offset)
        self._lost_tail: tuple[int, int] | None = None  # seqs found corrupt with none after
        self._read_fd: tuple[int, int] | None = None  # (segment first seq, fd)

        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolLocked(f"{self.directory} is in use by another process") from None
        try:
            self._recover()
        except BaseException:
            self._release()
            raise

    # -- opening -------------------------------------------------------------------------

    def _recover(self) -> None:
        (self.directory / ACK_TMP).unlink(missing_ok=True)
        acked = self._read_ack()
        found: list[tuple[int, Path]] = []
        for entry in self.directory.iterdir():
            m = _SEGMENT_RE.fullmatch(entry.name)
            if m:
                found.append((int(m.group(1)), entry))
        found.sort()
        segments: list[_Segment] = []
        for i, (first, path) in enumerate(found):
            size = path.stat().st_size
            last = found[i + 1][0] - 1 if i + 1 < len(found) else first - 1
            segments.append(_Segment(first, path, size, last))
        if segments:
            self._recover_tail(segments[-1])
        if acked is None:  # unreadable cursor: replay whatever is still here
            acked = segments[0].first_seq - 1 if segments else 0
        tail = segments[-1].last_seq if segments else 0
        self._written_seq = max(tail, acked)
        self._acked_seq = acked
        self._segments = segments
        self._size_bytes = sum(s.size for s in segments)
        self._synced_seq = self._written_seq

        doomed = [s for s in segments if s.last_seq <= acked]
        if segments and segments[-1].size == 0 and segments[-1] not in doomed:
            doomed.append(segments[-1])  # empty: its name may no longer match the next seq
        if doomed:
            self._segments = [s for s in segments if s not in doomed]
            self._size_bytes = sum(s.size for s in self._segments)
            self._unlink(doomed)
        if self._segments and self._segments[-1] is segments[-1]:
            self._active_fd = os.open(segments[-1].path, os.O_WRONLY | os.O_CLOEXEC)
            if self.config.fsync != "never":  # what an earlier process wrote may be unsynced
                self._fsync(self._active_fd)
        log.info(
            "spool opened dir=%s segments=%d bytes=%d acked_seq=%d last_seq=%d",
            self.directory,
            len(self._segments),
            self._size_bytes,
            self._acked_seq,
            self._written_seq,
        )

    def _read_ack(self) -> int | None:
        try:
            data = (self.directory / ACK_FILE).read_bytes()
        except FileNotFoundError:
            return 0
        if len(data) == _ACK.size:
            magic, seq, crc = _ACK.unpack(data)
            if magic == _ACK_MAGIC and zlib.crc32(data[:16]) == crc:
                return int(seq)
        log.error("spool ack cursor %s is corrupt; replaying every segment", ACK_FILE)
        return None

    def _recover_tail(self, seg: _Segment) -> None:
        """Verify the last segment, skip corrupt stretches, truncate a torn tail."""
        fd = os.open(seg.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            win = _Window(fd, seg.size)
            off, prev = 0, seg.first_seq - 1
            while off < win.end:
                rec = _parse_at(win, off, prev + 1, -1)
                if rec is not None:
                    prev, off = rec[0], rec[2]
                    continue
                nxt = _resync(win, off, prev + 1)
                if nxt is None:
                    self.torn_records_total += 1
                    log.warning(
                        "spool torn tail truncated segment=%s offset=%d bytes=%d last_good_seq=%d",
                        seg.path.name,
                        off,
                        win.end - off,
                        prev,
                    )
                    os.ftruncate(fd, off)
                    if self.config.fsync != "never":
                        self._fsync(fd)
                    win.end = off
                    break
                self._count_corrupt(seg, off, nxt[0], prev, nxt[1])
                off = nxt[0]
            seg.size = win.end
            seg.last_seq = prev
        finally:
            os.close(fd)

    def _count_corrupt(self, seg: _Segment, off: int, resume: int, prev: int, nxt: int) -> None:
        """Count and log a bad stretch [off, resume) once; seqs prev+1 .. nxt-1 are lost."""
        if (seg.first_seq, off) in self._known_bad:
            return
        self._known_bad.add((seg.first_seq, off))
        lost = max(1, nxt - prev - 1)
        self.corrupt_records_total += lost
        self.corrupt_bytes_total += resume - off
        log.error(
            "spool CORRUPTION: records lost segment=%s offset=%d bytes=%d seqs=%d..%d records=%d",
            seg.path.name,
            off,
            resume - off,
            prev + 1,
            max(prev + 1, nxt - 1),
            lost,
        )

    # -- state ---------------------------------------------------------------------------

    @property
    def fsync_policy(self) -> FsyncPolicy:
        return self.config.fsync

    @property
    def last_seq(self) -> int:
        """The seq of the last record appended (0 if none ever was)."""
        return self._written_seq

    @property
    def synced_seq(self) -> int:
        """Every record with a seq up to this one is durable."""
        return self._synced_seq

    @property
    def acked_seq(self) -> int:
        return self._acked_seq

    @property
    def size_bytes(self) -> int:
        """Bytes of segment files on disk (what ``max_bytes`` limits)."""
        return self._size_bytes

    @property
    def records(self) -> int:
        """Unacknowledged records, less those replay found lost at the very end (so a
        drained spool reads 0 even when its last records were corrupt)."""
        written, acked = self._written_seq, self._acked_seq
        n = written - acked
        lost = self._lost_tail
        if lost is not None and lost[1] == written:
            n -= max(0, written - max(lost[0] - 1, acked))
        return max(0, n)

    @property
    def segments(self) -> int:
        return len(self._segments)

    @property
    def nearly_full(self) -> bool:
        return self._size_bytes >= self.config.nearly_full_fraction * self.config.max_bytes

    def usage(self) -> SpoolUsage:
        with self._lock:
            return SpoolUsage(
                bytes=self._size_bytes,
                records=self.records,
                segments=len(self._segments),
                max_bytes=self.config.max_bytes,
                nearly_full=self.nearly_full,
            )

    def _check_usable(self) -> None:
        if self._closed:
            raise SpoolClosed("spool is closed")
        if self._failed is not None:
            raise SpoolClosed(f"spool failed ({self._failed}); reopen it") from self._failed

    # -- writing -------------------------------------------------------------------------

    def append(self, payload: bytes) -> int:
        """Append one record; its seq. See :meth:`append_many`."""
        return self.append_many((payload,))

    def append_many(self, payloads: Iterable[bytes]) -> int:
        """Append records in order (group commit: one write and at most one fsync per
        segment touched); the seq of the last one (``last_seq`` if ``payloads`` is empty).

        With ``fsync="always"`` the records are durable when this returns; with ``"batch"``
        wait for ``synced_seq >= seq`` (:meth:`wait_synced`). Raises ``SpoolFull`` (nothing
        written) past ``max_bytes``, ``RecordTooLarge`` (nothing written), ``SpoolError`` on
        an I/O error: then a prefix of the records, up to ``last_seq``, may have been written
        (they will be replayed; the store must tolerate duplicates, as it does for retries).
        """
        items = list(payloads)
        cfg = self.config
        need = 0
        for p in items:
            if len(p) > cfg.max_record_bytes:
                raise RecordTooLarge(f"record of {len(p)} bytes > {cfg.max_record_bytes}")
            need += HEADER_SIZE + len(p)
        sync_now = False
        with self._lock:
            self._check_usable()
            if not items:
                return self._written_seq
            if self._size_bytes + need > cfg.max_bytes:
                raise SpoolFull(need, cfg.max_bytes - self._size_bytes)
            seq = self._written_seq
            i, n = 0, len(items)
            while i < n:
                first = HEADER_SIZE + len(items[i])
                if self._active_fd is None or (
                    self._segments[-1].size > 0
                    and self._segments[-1].size + first > cfg.segment_bytes
                ):
                    self._roll(seq + 1)
                active = self._segments[-1]
                parts: list[bytes] = []
                chunk = 0
                while i < n:
                    size = HEADER_SIZE + len(items[i])
                    if parts and (
                        active.size + chunk + size > cfg.segment_bytes or chunk + size > _MAX_CHUNK
                    ):
                        break
                    seq += 1
                    parts.append(_encode_header(seq, items[i]))
                    parts.append(items[i])
                    chunk += size
                    i += 1
                self._write(b"".join(parts))
                active.size += chunk
                active.last_seq = seq
                self._size_bytes += chunk
                self._written_seq = seq
                self.appended_total += len(parts) // 2
                self._unsynced_bytes += chunk
                if self._unsynced_since is None:
                    self._unsynced_since = time.monotonic()
            if cfg.fsync == "never":
                self._mark_synced(seq)
            elif cfg.fsync == "always":
                sync_now = True
            else:
                due = self._sync_due_locked()
                sync_now = self._unsynced_bytes >= cfg.batch_bytes or (
                    due is not None and due <= time.monotonic()
                )
            self._warn_if_nearly_full()
        if sync_now:
            self._sync()
        return seq

    def _write(self, data: bytes) -> None:
        assert self._active_fd is not None
        fd, start = self._active_fd, self._segments[-1].size
        view = memoryview(data)
        off = start
        try:
            while view:
                written = os.pwrite(fd, view, off)
                if written <= 0:
                    raise OSError(errno.ENOSPC, "short write")
                view = view[written:]
                off += written
        except OSError as exc:
            try:
                os.ftruncate(fd, start)
            except OSError as trunc_exc:
                self._failed = trunc_exc
            log.error("spool write failed segment=%s: %s", self._segments[-1].path.name, exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SpoolFull(len(data), 0) from exc
            raise SpoolError(f"spool write failed: {exc}") from exc

    def _roll(self, next_seq: int) -> None:
        """Close the active segment (fsynced) and start ``spool-<next_seq>.seg``."""
        if self._active_fd is not None:
            old = self._segments[-1]
            if self.config.fsync != "never" and self._synced_seq < old.last_seq:
                self._fsync(self._active_fd)
            self._mark_synced(old.last_seq)
            os.close(self._active_fd)
            self._active_fd = None
        path = self.directory / _segment_name(next_seq)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise SpoolError(f"cannot create {path}: {exc}") from exc
        self._segments.append(_Segment(next_seq, path, 0, next_seq - 1))
        self._active_fd = fd
        if self.config.fsync != "never":
            self._fsync_dir()

    def _fsync(self, fd: int) -> None:
        """fdatasync; an error fails the spool (the page cache state is unknown after it)."""
        try:
            os.fdatasync(fd)
        except OSError as exc:
            self._failed = exc
            log.error("spool fsync failed, spool disabled: %s", exc)
            raise SpoolError(f"spool fsync failed: {exc}") from exc
        self.fsyncs_total += 1

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    def _mark_synced(self, seq: int) -> None:
        if seq > self._synced_seq:
            self._synced_seq = seq
            self._synced_cond.notify_all()
        if self._synced_seq >= self._written_seq:
            self._unsynced_bytes = 0
            self._unsynced_since = None

    def _sync_due_locked(self) -> float | None:
        if self._unsynced_since is None or self._synced_seq >= self._written_seq:
            return None
        interval = self.config.batch_interval if self.config.fsync == "batch" else 0.0
        return self._unsynced_since + interval

    def sync_due_at(self) -> float | None:
        """The ``time.monotonic()`` at which the fsync policy wants the unsynced records
        synced (possibly in the past), or None if every record is synced."""
        with self._lock:
            return self._sync_due_locked()

    def _sync(self) -> None:
        with self._sync_lock:
            with self._lock:
                self._check_usable()
                target = self._written_seq
                if target <= self._synced_seq:
                    return
                if self._active_fd is None:  # its segments were acked and deleted
                    self._mark_synced(target)
                    return
                fd = os.dup(self._active_fd)  # the segment may roll while we fsync
            try:
                try:
                    os.fdatasync(fd)
                except OSError as exc:
                    with self._lock:
                        self._failed = exc
                    log.error("spool fsync failed, spool disabled: %s", exc)
                    raise SpoolError(f"spool fsync failed: {exc}") from exc
            finally:
                os.close(fd)
            with self._lock:
                self.fsyncs_total += 1
                self._mark_synced(target)

    def flush(self) -> int:
        """fsync now (unless the policy is ``"never"``); the new ``synced_seq``."""
        if self.config.fsync != "never":
            self._sync()
        return self._synced_seq

    def wait_synced(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``synced_seq >= seq``, syncing when the policy says it is due (so
        concurrent waiters share one fsync); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._synced_seq >= seq:
                    return True
                self._check_usable()
                if seq > self._written_seq:
                    raise ValueError(f"seq {seq} was never appended (last is {self._written_seq})")
                now = time.monotonic()
                due = self._sync_due_locked()
                if due is not None and due > now:
                    if deadline is not None and now >= deadline:
                        return False
                    wait = due - now if deadline is None else min(due, deadline) - now
                    self._synced_cond.wait(wait)
                    continue
            self._sync()

    def _warn_if_nearly_full(self) -> None:
        if not self.nearly_full:
            return
        now = time.monotonic()
        if self._last_warning is None or now - self._last_warning >= self.config.warn_interval:
            self._last_warning = now
            log.warning(
                "spool nearly full dir=%s bytes=%d max_bytes=%d records=%d",
                self.directory,
                self._size_bytes,
                self.config.max_bytes,
                self.records,
            )

    # -- reading and acknowledging -------------------------------------------------------

    def read_batch(
        self, after: int | None = None, *, max_records: int = 1000, max_bytes: int = 4 << 20
    ) -> list[tuple[int, bytes]]:
        """The next records with a seq above ``after`` (default and at least: ``acked_seq``),
        in order: up to ``max_records`` and about ``max_bytes`` of payload (at least one
        record). Empty when there is nothing newer. Corrupt records are skipped and counted."""
        if max_records <= 0:
            raise ValueError("max_records: must be positive")
        out: list[tuple[int, bytes]] = []
        with self._read_lock:
            with self._lock:
                self._check_usable()
                start = self._acked_seq if after is None else max(after, self._acked_seq)
                snapshot = [
                    _Segment(s.first_seq, s.path, s.size, s.last_seq)
                    for s in self._segments
                    if s.last_seq > start
                ]
                live = {s.first_seq for s in self._segments}
            if self._read_fd is not None and self._read_fd[0] not in live:
                os.close(self._read_fd[1])  # its segment was deleted: let the disk space go
                self._read_fd = None
            last, nbytes = start, 0
            for seg in snapshot:
                fd = self._reader_fd(seg)
                if fd is None:  # deleted meanwhile: acknowledged
                    continue
                win = _Window(fd, seg.size)
                cur = self._cursor
                if cur is not None and cur[0] == last and cur[1] == seg.first_seq:
                    off, prev = cur[2], last
                else:
                    off, prev = 0, seg.first_seq - 1
                while off < win.end:
                    rec = _parse_at(win, off, prev + 1, last)
                    if rec is None:
                        nxt = _resync(win, off, prev + 1)
                        resume, nseq = nxt if nxt is not None else (win.end, seg.last_seq + 1)
                        with self._lock:
                            self._count_corrupt(seg, off, resume, prev, nseq)
                            if nxt is None and seg.last_seq >= self._written_seq:
                                self._lost_tail = (prev + 1, seg.last_seq)
                        off = resume
                        self._cursor = (last, seg.first_seq, off)
                        continue
                    prev, payload, off = rec
                    if payload is None:
                        continue
                    out.append((prev, payload))
                    last = prev
                    nbytes += len(payload)
                    self._cursor = (last, seg.first_seq, off)
                    if len(out) >= max_records or nbytes >= max_bytes:
                        break
                else:
                    continue
                break
        with self._lock:
            self.replayed_total += len(out)
        return out

    def _reader_fd(self, seg: _Segment) -> int | None:
        if self._read_fd is not None:
            if self._read_fd[0] == seg.first_seq:
                return self._read_fd[1]
            os.close(self._read_fd[1])
            self._read_fd = None
        try:
            fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        self._read_fd = (seg.first_seq, fd)
        return fd

    def replay(
        self, after: int | None = None, *, max_records: int = 1000
    ) -> Iterator[tuple[int, bytes]]:
        """``(seq, payload)`` from the oldest unacknowledged record (or after ``after``) in
        order, until caught up with the writer. Does not acknowledge anything."""
        cur = after
        while True:
            batch = self.read_batch(cur, max_records=max_records)
            if not batch:
                return
            yield from batch
            cur = batch[-1][0]

    def ack(self, seq: int) -> None:
        """Mark every record up to ``seq`` done (committed downstream): persist the cursor,
        delete segments that hold only acknowledged records."""
        with self._ack_lock:
            with self._lock:
                self._check_usable()
                if seq <= self._acked_seq:
                    return
                if seq > self._written_seq:
                    raise ValueError(f"seq {seq} was never appended (last is {self._written_seq})")
            self._write_ack(seq)
            with self._lock:
                self.acked_total += seq - self._acked_seq
                self._acked_seq = seq
                self._mark_synced(seq)  # committed downstream: durable there
                doomed = [s for s in self._segments if s.last_seq <= seq]
                if doomed:
                    if doomed[-1] is self._segments[-1] and self._active_fd is not None:
                        os.close(self._active_fd)
                        self._active_fd = None
                    self._segments = self._segments[len(doomed) :]
                    self._size_bytes -= sum(s.size for s in doomed)
                    firsts = {s.first_seq for s in doomed}
                    self._known_bad = {b for b in self._known_bad if b[0] not in firsts}
            if doomed:
                self._unlink(doomed)

    def _write_ack(self, seq: int) -> None:
        body = _ACK_MAGIC + struct.pack("<Q", seq)
        data = body + struct.pack("<I", zlib.crc32(body))
        tmp = self.directory / ACK_TMP
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, data)
            if self.config.fsync != "never":
                self._fsync_unlocked(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / ACK_FILE)
        if self.config.fsync != "never":
            dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._fsync_unlocked(dfd)
            finally:
                os.close(dfd)

    def _fsync_unlocked(self, fd: int) -> None:
        """fdatasync without holding ``_lock`` (ack cursor, deleted segments): an error is
        raised but does not fail the spool (no record data is at stake)."""
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise SpoolError(f"spool ack cursor fsync failed: {exc}") from exc
        with self._lock:
            self.fsyncs_total += 1

    def _unlink(self, segments: list[_Segment]) -> None:
        for s in segments:
            s.path.unlink(missing_ok=True)
            log.debug("spool segment deleted %s", s.path.name)
        if self.config.fsync != "never":
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._fsync_unlocked(fd)
            finally:
                os.close(fd)

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Sync what is unsynced (policy permitting) and release the directory. Idempotent."""
        if self._closed:
            return
        try:
            if self._failed is None and self.config.fsync != "never":
                self._sync()
        finally:
            with self._read_lock, self._lock:
                self._closed = True
                if self._active_fd is not None:
                    os.close(self._active_fd)
                    self._active_fd = None
                if self._read_fd is not None:
                    os.close(self._read_fd[1])
                    self._read_fd = None
            self._release()

    def _release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # drops the flock
            self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSpool:
    """The spool for asyncio code: every blocking call runs in a worker thread.

    ``await spool.append_durable(payloads)`` is what the pipeline needs: it returns the last
    seq once the records are durable under the fsync policy."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    @classmethod
    async def open(
        cls, directory: str | os.PathLike[str], config: SpoolConfig | None = None
    ) -> AsyncSpool:
        return cls(await asyncio.to_thread(Spool, directory, config))

    async def append(self, payload: bytes) -> int:
        return await asyncio.to_thread(self.spool.append, payload)

    async def append_many(self, payloads: Iterable[bytes]) -> int:
        return await asyncio.to_thread(self.spool.append_many, list(payloads))

    async def append_durable(self, payloads: Iterable[bytes]) -> int:
        seq = await self.append_many(payloads)
        await self.wait_synced(seq)
        return seq

    async def wait_synced(self, seq: int) -> None:
        """Return once ``synced_seq >= seq``; sleeps until the batch is due, then syncs in a
        thread (waiters due at the same time share the fsync)."""
        spool = self.spool
        while spool.synced_seq < seq:
            if seq > spool.last_seq:
                raise ValueError(f"seq {seq} was never appended (last is {spool.last_seq})")
            due = spool.sync_due_at()
            delay = 0.0 if due is None else due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.to_thread(spool.flush)

    async def flush(self) -> int:
        return await asyncio.to_thread(self.spool.flush)

    async def read_batch(
        self, after: int | None = None, *, max_records: int = 1000, max_bytes: int = 4 << 20
    ) -> list[tuple[int, bytes]]:
        return await asyncio.to_thread(
            self.spool.read_batch, after, max_records=max_records, max_bytes=max_bytes
        )

    async def replay(
        self, after: int | None = None, *, max_records: int = 1000
    ) -> AsyncIterator[tuple[int, bytes]]:
        cur = after
        while True:
            batch = await self.read_batch(cur, max_records=max_records)
            if not batch:
                return
            for item in batch:
                yield item
            cur = batch[-1][0]

    async def ack(self, seq: int) -> None:
        await asyncio.to_thread(self.spool.ack, seq)

    def usage(self) -> SpoolUsage:
        return self.spool.usage()

    async def close(self) -> None:
        await asyncio.to_thread(self.spool.close)

    async def __aenter__(self) -> AsyncSpool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
