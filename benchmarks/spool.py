"""Spool append throughput under each fsync policy, 1 KiB and 64 KiB payloads.

Prints one JSON object per line: ``bench`` ("spool_append"), ``impl`` ("fsync-always",
"fsync-batch", "fsync-never"), ``payload_bytes``, ``group`` (1: one ``append()`` per record;
N: ``append_many()`` of N records, the pipeline's group commit), ``per_s`` (records appended per
second), ``mb_per_s`` (payload MB/s, 10^6 bytes), ``fsyncs`` and ``records``.
Each run lasts about ``--seconds`` or stops at ``--max-mb`` of payload, in a temporary
directory under ``--dir`` (default: the system temp dir; use a real disk, not tmpfs, or the
fsync figures mean nothing). "batch" appends end with a ``flush()`` inside the timed run.

    .venv/bin/python benchmarks/spool.py [--seconds 0.5] [--max-mb 256] [--group 64] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import get_args

from gateway.spool import FsyncPolicy, Spool, SpoolConfig


def run(
    policy: FsyncPolicy, size: int, group: int, seconds: float, max_bytes: int, parent: str | None
) -> None:
    payload = bytes(range(256)) * (size // 256)
    batch = [payload] * group
    limit = max(1, max_bytes // size)
    config = SpoolConfig(max_bytes=2 * max_bytes + (64 << 20), fsync=policy, batch_interval=0.01)
    with (
        tempfile.TemporaryDirectory(prefix="silkgate-spool-bench-", dir=parent) as directory,
        Spool(directory, config) as spool,
    ):
        done = 0
        start = time.perf_counter()
        while done < limit and time.perf_counter() - start < seconds:
            if group == 1:
                spool.append(payload)
            else:
                spool.append_many(batch)
            done += group
        spool.flush()
        elapsed = time.perf_counter() - start
        fsyncs = spool.fsyncs_total
    result = {
        "bench": "spool_append",
        "impl": f"fsync-{policy}",
        "payload_bytes": size,
        "group": group,
        "per_s": round(done / elapsed, 1),
        "mb_per_s": round(done * size / elapsed / 1e6, 2),
        "fsyncs": fsyncs,
        "records": done,
    }
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="per run")
    parser.add_argument("--max-mb", type=int, default=256, help="payload cap per run, MiB")
    parser.add_argument("--group", type=int, default=64, help="append_many size (0: skip)")
    parser.add_argument("--dir", default=None, help="parent of the temporary spool directory")
    args = parser.parse_args()
    groups = (1, args.group) if args.group > 1 else (1,)
    for group in groups:
        for size in (1024, 64 * 1024):
            for policy in get_args(FsyncPolicy):
                run(policy, size, group, args.seconds, args.max_mb << 20, args.dir)


if __name__ == "__main__":
    main()
