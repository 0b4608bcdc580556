"""The durable spool (gateway/spool.py), on real files under tmp_path."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.spool import (
    HEADER_SIZE,
    AsyncSpool,
    RecordTooLarge,
    Spool,
    SpoolClosed,
    SpoolConfig,
    SpoolFull,
    SpoolLocked,
    SpoolUsage,
)


def payload(seq: int, size: int = 100) -> bytes:
    """A payload that says which seq it belongs to, ``size`` bytes long."""
    head = f"rec-{seq:08d}:".encode()
    return (head * (size // len(head) + 1))[:size]


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("spool-*.seg"))


def fast(**kwargs: Any) -> SpoolConfig:
    """A config with 1 KiB segments (8 records of 100 bytes); fsync "never" unless given."""
    return dataclasses.replace(SpoolConfig(segment_bytes=1024, fsync="never"), **kwargs)


def test_append_replay_ack_across_rollover(tmp_path: Path) -> None:
    with Spool(tmp_path, fast()) as spool:
        seqs = [spool.append(payload(i)) for i in range(1, 41)]
        assert seqs == list(range(1, 41))
        assert spool.segments == 5  # 128-byte records, 8 per 1 KiB segment
        assert all(f.stat().st_size <= 1024 for f in segment_files(tmp_path))
        assert list(spool.replay()) == [(i, payload(i)) for i in range(1, 41)]
        assert spool.replayed_total == 40

        spool.ack(17)
        assert spool.acked_seq == 17
        assert [s for s, _ in spool.replay()] == list(range(18, 41))
        first = int(segment_files(tmp_path)[0].name[6:22])
        assert first <= 18  # the segment holding 18 stays, the older ones are gone
        assert spool.usage().records == 23

        spool.ack(40)
        assert segment_files(tmp_path) == []
        assert spool.usage().bytes == 0
        assert list(spool.replay()) == []
        assert spool.append(b"next") == 41  # a new segment after everything was deleted
        assert list(spool.replay()) == [(41, b"next")]


def test_read_batch_limits_and_after(tmp_path: Path) -> None:
    with Spool(tmp_path, fast()) as spool:
        spool.append_many(payload(i, 200) for i in range(1, 21))
        batch = spool.read_batch(max_records=3)
        assert [s for s, _ in batch] == [1, 2, 3]
        batch = spool.read_batch(3, max_bytes=450)
        assert [s for s, _ in batch] == [4, 5, 6]  # stops once 450 bytes are reached
        assert [s for s, _ in spool.read_batch(15, max_records=100)] == list(range(16, 21))
        assert [s for s, _ in spool.read_batch(2, max_records=2)] == [3, 4]  # rewind: rescan
        assert spool.read_batch(20) == []
        big = payload(99, 5000)
        assert spool.append(big) == 21  # bigger than a segment: a segment of its own
        assert spool.read_batch(20, max_bytes=1) == [(21, big)]  # at least one record


def test_restart_resumes_with_ack_cursor(tmp_path: Path) -> None:
    with Spool(tmp_path, fast(fsync="always")) as spool:
        spool.append_many(payload(i) for i in range(1, 31))
        spool.ack(12)
    with Spool(tmp_path, fast(fsync="always")) as spool:
        assert spool.acked_seq == 12
        assert spool.last_seq == 30
        assert spool.synced_seq == 30
        assert list(spool.replay()) == [(i, payload(i)) for i in range(13, 31)]
        assert spool.append(payload(31)) == 31
        spool.ack(30)
    with Spool(tmp_path, fast()) as spool:
        assert list(spool.replay()) == [(31, payload(31))]
        spool.ack(31)
    with Spool(tmp_path, fast()) as spool:  # everything acked and deleted: seqs go on
        assert spool.segments == 0
        assert spool.append(b"x") == 32


def test_corrupt_ack_cursor_replays_what_is_left(tmp_path: Path) -> None:
    with Spool(tmp_path, fast()) as spool:
        spool.append_many(payload(i) for i in range(1, 21))
        spool.ack(12)  # deletes the first segment (1..8)
    flip(tmp_path / "ack.cursor", 8)
    with Spool(tmp_path, fast()) as spool:
        assert spool.acked_seq == 8
        assert [s for s, _ in spool.replay()] == list(range(9, 21))  # 9..12 again
        assert spool.append(b"x") == 21


def test_closed_spool_refuses(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fast())
    spool.append(b"a")
    spool.close()
    spool.close()
    with pytest.raises(SpoolClosed):
        spool.append(b"b")
    with pytest.raises(SpoolClosed):
        spool.read_batch()
    with Spool(tmp_path, fast()) as again, pytest.raises(ValueError, match="never appended"):
        again.ack(5)


def test_directory_is_locked(tmp_path: Path) -> None:
    with Spool(tmp_path, fast()), pytest.raises(SpoolLocked):
        Spool(tmp_path, fast())
    Spool(tmp_path, fast()).close()  # released on close


def test_torn_tail_truncated(tmp_path: Path) -> None:
    with Spool(tmp_path, fast(segment_bytes=1 << 20)) as spool:
        for i in range(1, 6):
            spool.append(payload(i))
    seg = segment_files(tmp_path)[-1]
    size = seg.stat().st_size
    with seg.open("r+b") as fh:
        fh.truncate(size - 50)  # mid-payload of record 5
    with Spool(tmp_path, fast()) as spool:
        assert spool.torn_records_total == 1
        assert spool.corrupt_records_total == 0
        assert spool.last_seq == 4
        assert seg.stat().st_size == 4 * (HEADER_SIZE + 100)
        assert spool.append(payload(50)) == 5
        assert spool.append(payload(51)) == 6
    with Spool(tmp_path, fast()) as spool:
        assert spool.torn_records_total == 0
        got = list(spool.replay())
    assert got == [(i, payload(i)) for i in range(1, 5)] + [(5, payload(50)), (6, payload(51))]


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 7])
def test_torn_tail_partial_header(tmp_path: Path, cut: int) -> None:
    with Spool(tmp_path, fast(segment_bytes=1 << 20)) as spool:
        spool.append_many([payload(1), payload(2)])
    seg = segment_files(tmp_path)[0]
    with seg.open("r+b") as fh:
        fh.truncate(HEADER_SIZE + 100 + cut)
    with Spool(tmp_path, fast()) as spool:
        assert spool.torn_records_total == 1
        assert list(spool.replay()) == [(1, payload(1))]
        assert spool.append(b"again") == 2


def test_torn_tail_crc_mismatch(tmp_path: Path) -> None:
    with Spool(tmp_path, fast(segment_bytes=1 << 20)) as spool:
        spool.append_many(payload(i) for i in range(1, 4))
    seg = segment_files(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF  # the last record's payload no longer matches its CRC
    seg.write_bytes(bytes(data))
    with Spool(tmp_path, fast()) as spool:
        assert spool.torn_records_total == 1
        assert [s for s, _ in spool.replay()] == [1, 2]
        assert spool.append(payload(3)) == 3
        assert list(spool.replay()) == [(i, payload(i)) for i in range(1, 4)]


def test_empty_last_segment_after_torn_first_record(tmp_path: Path) -> None:
    with Spool(tmp_path, fast()) as spool:
        spool.append_many(payload(i, 300) for i in range(1, 5))  # 3 per segment
        spool.ack(4)  # everything acked and deleted
    with Spool(tmp_path, fast()) as spool:
        assert spool.segments == 0
        spool.append_many(payload(i, 300) for i in range(5, 9))  # spool-5: 5..7, spool-8: 8
    last = segment_files(tmp_path)[-1]
    with last.open("r+b") as fh:
        fh.truncate(10)
    with Spool(tmp_path, fast()) as spool:
        assert spool.torn_records_total == 1
        assert [s for s, _ in spool.replay()] == [5, 6, 7]
        assert spool.append(b"z") == 8
        assert segment_files(tmp_path)[-1].name == "spool-0000000000000008.seg"


def flip(path: Path, offset: int, length: int = 4) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + length):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


RECORD = HEADER_SIZE + 100


@pytest.mark.parametrize("where", ["header", "length", "payload"])
def test_corruption_in_the_middle_of_the_last_segment(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path, fast(segment_bytes=1 << 20)) as spool:
        spool.append_many(payload(i) for i in range(1, 11))
    seg = segment_files(tmp_path)[0]
    base = 4 * RECORD  # record 5
    flip(seg, {"header": base, "length": base + 8, "payload": base + HEADER_SIZE + 40}[where])
    with caplog.at_level(logging.ERROR, logger="silkgate.spool"), Spool(tmp_path, fast()) as spool:
        assert spool.corrupt_records_total == 1
        assert spool.corrupt_bytes_total == RECORD
        assert spool.torn_records_total == 0
        assert spool.last_seq == 10
        got = list(spool.replay())
        assert [s for s, _ in got] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
        assert all(p == payload(s) for s, p in got)
        assert list(spool.replay()) == got  # replayed again: not counted twice
        assert spool.corrupt_records_total == 1
        assert spool.append(payload(11)) == 11
    assert any("CORRUPTION" in r.getMessage() for r in caplog.records)


def test_corruption_in_an_older_segment_counted_on_replay(tmp_path: Path) -> None:
    with Spool(tmp_path, fast()) as spool:  # records 1..8 in the first segment
        spool.append_many(payload(i) for i in range(1, 31))
    first = segment_files(tmp_path)[0]
    flip(first, 2 * RECORD + HEADER_SIZE + 10)  # payload of record 3
    flip(first, 3 * RECORD + 2)  # header of record 4
    with Spool(tmp_path, fast()) as spool:
        assert spool.corrupt_records_total == 0  # not read yet
        got = [s for s, _ in spool.replay()]
        assert got == [1, 2, *range(5, 31)]
        assert spool.corrupt_records_total == 2
        assert [s for s, _ in spool.replay()] == got
        assert spool.corrupt_records_total == 2


def test_garbage_tail_of_an_older_segment(tmp_path: Path) -> None:
    with Spool(tmp_path, fast()) as spool:
        spool.append_many(payload(i) for i in range(1, 31))
    first = segment_files(tmp_path)[0]
    with first.open("r+b") as fh:  # records 1..8 in the first segment; 6, 7, 8 damaged
        fh.seek(5 * RECORD + 3)
        fh.write(b"\0" * (3 * RECORD - 3))
    with Spool(tmp_path, fast()) as spool:
        assert [s for s, _ in spool.replay()] == [1, 2, 3, 4, 5, *range(9, 31)]
        assert spool.corrupt_records_total == 3


def test_corrupt_records_at_the_very_end_do_not_keep_the_spool_busy(tmp_path: Path) -> None:
    with Spool(tmp_path, fast()) as spool:
        spool.append_many(payload(i) for i in range(1, 10))  # spool-1: 1..8, spool-9: 9
    first, last = segment_files(tmp_path)
    with first.open("r+b") as fh:  # 7 and 8 damaged, nothing valid after them in the segment
        fh.seek(6 * RECORD + 3)
        fh.write(b"\0" * (2 * RECORD - 3))
    with last.open("r+b") as fh:  # 9 torn
        fh.truncate(10)
    with Spool(tmp_path, fast()) as spool:
        assert spool.torn_records_total == 1
        assert spool.last_seq == 8
        assert [s for s, _ in spool.replay()] == [1, 2, 3, 4, 5, 6]
        assert spool.corrupt_records_total == 2
        spool.ack(6)
        assert spool.records == 0  # drained: 7 and 8 are gone, not pending
        assert spool.append(b"new") == 9
        assert spool.records == 3
        assert list(spool.replay()) == [(9, b"new")]
        spool.ack(9)
        assert spool.records == 0


def test_random_garbage_never_crashes(tmp_path: Path) -> None:
    with Spool(tmp_path, fast(segment_bytes=1 << 20)) as spool:
        spool.append_many(payload(i) for i in range(1, 51))
    seg = segment_files(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    rng = random.Random(7)
    for _ in range(40):
        data[rng.randrange(len(data))] = rng.randrange(256)
    seg.write_bytes(bytes(data))
    with Spool(tmp_path, fast()) as spool:
        got = list(spool.replay())
        assert all(p == payload(s) for s, p in got)
        assert [s for s, _ in got] == sorted({s for s, _ in got})
        assert spool.corrupt_records_total > 0
        # every seq up to the last good record is either replayed or counted as lost
        assert len(got) + spool.corrupt_records_total == spool.last_seq
        assert spool.append(b"more") == spool.last_seq


def test_spool_full_and_nearly_full(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = fast(
        max_bytes=10 * RECORD, segment_bytes=4 * RECORD, max_record_bytes=100, warn_interval=3600.0
    )
    with caplog.at_level(logging.WARNING, logger="silkgate.spool"), Spool(tmp_path, config) as s:
        for i in range(1, 8):
            s.append(payload(i))
        assert not s.nearly_full
        s.append(payload(8))
        assert s.nearly_full  # 8 of 10 records' worth
        s.append(payload(9))
        s.append(payload(10))
        assert s.usage() == SpoolUsage(
            bytes=10 * RECORD, records=10, segments=3, max_bytes=10 * RECORD, nearly_full=True
        )
        with pytest.raises(SpoolFull):
            s.append(payload(11))
        with pytest.raises(SpoolFull):
            s.append_many([b""])  # a header alone does not fit either
        assert s.last_seq == 10
        warnings = [r for r in caplog.records if "nearly full" in r.getMessage()]
        assert len(warnings) == 1  # rate limited
        s.ack(4)  # frees the first segment
        assert s.usage().bytes == 6 * RECORD
        assert not s.nearly_full
        assert s.append(payload(11)) == 11
        with pytest.raises(RecordTooLarge):
            s.append(b"x" * (config.max_record_bytes + 1))


def test_append_many_is_all_or_nothing_at_the_limit(tmp_path: Path) -> None:
    config = fast(max_bytes=5 * RECORD, segment_bytes=5 * RECORD, max_record_bytes=100)
    with Spool(tmp_path, config) as spool:
        spool.append_many(payload(i) for i in range(1, 4))
        with pytest.raises(SpoolFull):
            spool.append_many(payload(i) for i in range(4, 7))
        assert spool.last_seq == 3
        assert spool.append_many(payload(i) for i in range(4, 6)) == 5


def test_fsync_always(tmp_path: Path) -> None:
    with Spool(tmp_path, fast(fsync="always")) as spool:
        before = spool.fsyncs_total
        for i in range(1, 6):
            seq = spool.append(payload(i))
            assert spool.synced_seq == seq
        assert spool.append_many(payload(i) for i in range(6, 9)) == 8
        assert spool.synced_seq == 8
        assert spool.fsyncs_total > before


def test_fsync_batch(tmp_path: Path) -> None:
    config = fast(fsync="batch", segment_bytes=1 << 20, batch_interval=3600.0, batch_bytes=1 << 20)
    with Spool(tmp_path, config) as spool:
        seq = spool.append(payload(1))
        spool.append(payload(2))
        assert spool.synced_seq < seq
        assert not spool.wait_synced(seq, timeout=0.01)
        due = spool.sync_due_at()
        assert due is not None and due > time.monotonic() + 3000
        assert spool.flush() == 2
        assert spool.synced_seq == 2
        assert spool.sync_due_at() is None
        assert spool.wait_synced(2, timeout=0)


def test_fsync_batch_by_bytes_and_interval(tmp_path: Path) -> None:
    config = fast(fsync="batch", segment_bytes=1 << 20, batch_interval=3600.0, batch_bytes=500)
    with Spool(tmp_path, config) as spool:
        for i in range(1, 4):
            spool.append(payload(i))
        assert spool.synced_seq == 0
        spool.append(payload(4))  # 512 bytes unsynced: sync now
        assert spool.synced_seq == 4
    config = fast(fsync="batch", segment_bytes=1 << 20, batch_interval=0.05)
    with Spool(tmp_path, config) as spool:
        seq = spool.append(payload(5))
        assert spool.synced_seq < seq
        t = time.monotonic()
        assert spool.wait_synced(seq, timeout=5)  # the waiter syncs when the interval is up
        assert 0.02 < time.monotonic() - t < 2
        assert spool.synced_seq == seq


def test_batch_rollover_syncs_the_old_segment(tmp_path: Path) -> None:
    config = fast(fsync="batch", segment_bytes=2 * RECORD, batch_interval=3600.0)
    with Spool(tmp_path, config) as spool:
        spool.append_many(payload(i) for i in range(1, 4))
        assert spool.synced_seq == 2  # segment 1 closed with an fsync, record 3 pending
        spool.flush()
        assert spool.synced_seq == 3


def test_fsync_never_reports_synced_without_fsyncs(tmp_path: Path) -> None:
    with Spool(tmp_path, fast()) as spool:
        spool.append_many(payload(i) for i in range(1, 30))
        spool.ack(10)
        assert spool.synced_seq == 29
        assert spool.fsyncs_total == 0


def test_concurrent_writer_and_reader(tmp_path: Path) -> None:
    total = 3000
    config = fast(fsync="batch", segment_bytes=16 * 1024, batch_interval=0.001)
    errors: list[BaseException] = []
    with Spool(tmp_path, config) as spool:

        def writer() -> None:
            try:
                for i in range(1, total + 1, 10):
                    spool.append_many(payload(j, 50 + j % 200) for j in range(i, i + 10))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        seen: list[int] = []
        deadline = time.monotonic() + 20
        while len(seen) < total and time.monotonic() < deadline:
            batch = spool.read_batch(max_records=97)
            for seq, data in batch:
                assert data == payload(seq, 50 + seq % 200)
                seen.append(seq)
            if batch:
                spool.ack(batch[-1][0])
        thread.join()
        assert errors == []
        assert seen == list(range(1, total + 1))
        assert spool.corrupt_records_total == spool.torn_records_total == 0
        assert spool.segments <= 1


CHILD = """
import sys
from gateway.spool import Spool, SpoolConfig
spool = Spool(sys.argv[1], SpoolConfig(fsync="always", segment_bytes=64 * 1024))
for i in range(200_000):
    data = (b"%08d" % i) * (1 + i % 40)
    seq = spool.append(data)
    sys.stdout.write(f"{seq} {i}\\n")
    sys.stdout.flush()
"""


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked: dict[int, int] = {}
    deadline = time.monotonic() + 10
    try:
        while len(acked) < 400 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seq, i = map(int, line.split())
            acked[seq] = i
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()  # lines printed before the kill landed
        proc.wait(timeout=10)
        proc.stdout.close()
    for line in rest.split("\n")[:-1]:  # whole lines only
        seq, i = map(int, line.split())
        acked[seq] = i
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 400, "the child did not get far enough"
    with Spool(tmp_path, SpoolConfig(fsync="always", segment_bytes=64 * 1024)) as spool:
        got = dict(spool.replay())
        assert spool.corrupt_records_total == 0
    for seq, i in acked.items():
        assert got.get(seq) == (b"%08d" % i) * (1 + i % 40), seq
    assert sorted(got) == list(range(1, len(got) + 1))


@pytest.mark.asyncio
async def test_async_wrapper(tmp_path: Path) -> None:
    config = fast(fsync="batch", segment_bytes=4096, batch_interval=0.01)
    async with await AsyncSpool.open(tmp_path, config) as spool:
        seqs = await asyncio.gather(
            *(spool.append_durable([payload(i), payload(i + 100)]) for i in range(1, 6))
        )
        assert sorted(seqs) == [2, 4, 6, 8, 10]
        assert spool.spool.synced_seq == 10
        seq = await spool.append(b"single")
        assert spool.spool.synced_seq < seq
        await spool.wait_synced(seq)
        assert spool.spool.synced_seq >= seq
        got = [item async for item in spool.replay(max_records=3)]
        assert len(got) == 11
        assert [s for s, _ in got] == list(range(1, 12))
        await spool.ack(got[5][0])
        assert [s for s, _ in await spool.read_batch()] == list(range(7, 12))
        assert spool.usage().records == 5
        assert await spool.flush() == 11
        await spool.ack(11)
    async with await AsyncSpool.open(tmp_path, config) as spool:
        assert spool.spool.acked_seq == 11
        assert await spool.append_many([b"a", b"b"]) == 13


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="fsync"):
        SpoolConfig(fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="segment_bytes"):
        SpoolConfig(max_bytes=10, segment_bytes=20)
    with pytest.raises(ValueError, match="max_record_bytes"):
        SpoolConfig(max_bytes=1 << 20, segment_bytes=1 << 20, max_record_bytes=1 << 20)
