"""The fused GB/T 32960 fast path (gateway._fastnorm) against the reference.

``realtime_records(frame)`` and ``records_from_frame(frame)`` must be equal (``==``) to
``normalize(reference.decode_frame(frame))`` and raise the same ProtocolError as
``decode_frame`` (reason, offset, raw; the message is the accelerator's) on every input.
"""

from __future__ import annotations

import importlib
import random
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import normalize as norm
from gateway._fastnorm import _round_exact, realtime_records
from gateway.codecs.errors import ProtocolError
from gateway.codecs.gbt32960 import _accel
from gateway.codecs.gbt32960 import messages as m
from gateway.codecs.gbt32960 import reference as ref
from gateway.normalize import normalize, records_from_frame
from gateway.records import Record, VehicleRealtime
from gateway.simulator import Fleet

# Test modules are not importable (--import-mode=importlib): the shared strategies live in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
strat: Any = importlib.import_module("strategies_gbt32960")

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Outcome = tuple[str, Any]


def outcome(fn: Callable[[bytes], Any], frame: bytes) -> Outcome:
    try:
        return "ok", fn(frame)
    except ProtocolError as exc:
        return "error", (exc.reason, exc.offset, exc.raw)


def expected(frame: bytes) -> Outcome:
    """The reference: normalize(reference.decode_frame(frame))."""
    return outcome(lambda f: normalize(ref.decode_frame(f)), frame)


def check(frame: bytes) -> Outcome:
    """Fast path, public entry point and accelerator agree with the reference on ``frame``."""
    want = expected(frame)
    assert outcome(realtime_records, frame) == want
    assert outcome(records_from_frame, frame) == want
    if want[0] == "error":
        # Same message as the accelerator's decode_frame (the fast path defers to it).
        with pytest.raises(ProtocolError) as fast:
            realtime_records(frame)
        with pytest.raises(ProtocolError) as accel:
            normalize(_accel.decode_frame(frame))
        assert fast.value.message == accel.value.message
    return want


def with_bcc(frame: bytes | bytearray) -> bytes:
    """``frame`` with its BCC recomputed (so a mutation reaches the body parser)."""
    body = bytes(frame[:-1])
    return body + bytes((ref.bcc(body[2:]),))


def with_length(frame: bytes, body: bytes) -> bytes:
    """A copy of ``frame``'s header with another data unit, length and BCC fixed."""
    return with_bcc(frame[:22] + len(body).to_bytes(2, "big") + body + b"\x00")


# --------------------------------------------------------------------------- vectors


def test_every_vector(gbt_vectors: list[dict[str, Any]]) -> None:
    realtime = 0
    for v in gbt_vectors:
        frame = bytes.fromhex(v["hex"])
        kind, records = check(frame)
        assert kind == "ok", v["id"]
        realtime += any(isinstance(r, VehicleRealtime) for r in records)
    assert realtime >= 5  # GB-02, GB-03, GB-12, GB-13, GB-14, GB-15


def realtime_vectors(vectors: list[dict[str, Any]]) -> Iterator[tuple[str, bytes]]:
    for v in vectors:
        frame = bytes.fromhex(v["hex"])
        if frame[2] in (0x02, 0x03) and frame[3] == 0xFE:
            yield v["id"], frame


def test_vectors_truncated_and_padded(gbt_vectors: list[dict[str, Any]]) -> None:
    for _, frame in realtime_vectors(gbt_vectors):
        for n in range(len(frame)):
            check(frame[:n])  # truncated frames
            check(with_length(frame, frame[24 : 24 + n]))  # bodies cut short, length fixed
        check(frame + b"\x00")
        check(with_length(frame, frame[24:-1] + b"\x00"))  # an info type 0x00 appended
        check(with_length(frame, frame[24:-1] + b"\x99\x00\x01"))  # a truncated custom block


def test_vectors_every_byte_mutated(gbt_vectors: list[dict[str, Any]]) -> None:
    rng = random.Random(32960)
    for vid, frame in realtime_vectors(gbt_vectors):
        for i in range(len(frame)):
            values = {0x00, 0xFE, 0xFF, frame[i] ^ 0x01, rng.randrange(256)}
            for value in values:
                mutated = bytearray(frame)
                mutated[i] = value
                check(bytes(mutated))  # BCC now wrong (or start/length/command changed)
                if i not in (0, 1, len(frame) - 1):
                    check(with_bcc(mutated))  # reaches the body parser
        assert check(frame)[0] == "ok", vid


def test_bad_time_is_the_same_error(gbt_vectors: list[dict[str, Any]]) -> None:
    _, frame = next(realtime_vectors(gbt_vectors))
    bad = bytearray(frame)
    bad[25] = 13  # month 13
    kind, (reason, offset, _raw) = check(with_bcc(bad))
    assert kind == "error" and reason == "bad_time" and offset == 0


def test_garbage() -> None:
    rng = random.Random(7)
    for n in range(0, 80):
        check(bytes(rng.randrange(256) for _ in range(n)))
        check(b"##" + bytes(rng.randrange(256) for _ in range(n)))
    for start in (b"##", b"$$"):
        header = start + b"\x02\xfe" + b"LSGTEST0000000001" + b"\x01"
        for body in (b"", b"\x19\x01\x01\x00\x00\x00", b"\x19\x01\x01\x00\x00\x00\x01"):
            check(with_length(header + b"\x00\x00", body))


# --------------------------------------------------------------------------- simulator


@pytest.mark.parametrize("reissue", [False, True])
def test_fleet_frames(reissue: bool) -> None:
    fleet = Fleet(6, seed=3, gbt_only=True)
    versions = set()
    for _ in range(5):
        for frame in fleet.reports(reissue=reissue):
            kind, records = check(frame)
            assert kind == "ok"
            row = records[0]
            assert isinstance(row, VehicleRealtime) and row.reissue is reissue
            assert row.cell_count > 0 and row.probe_count > 0
            versions.add(row.version)
        fleet.advance(10)
    assert versions == {2016, 2025}


def test_fleet_stream_every_frame() -> None:
    """Logins, reports and logouts: the non-realtime frames take the slow path, same result."""
    for frame in Fleet(4, seed=9, gbt_only=True).stream(rounds=3):
        assert check(frame)[0] == "ok"


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(msg=strat.realtime_frames(2016))
def test_random_realtime_2016(msg: m.Frame) -> None:
    check(ref.encode_frame(msg))


@SETTINGS
@given(msg=strat.realtime_frames(2025))
def test_random_realtime_2025(msg: m.Frame) -> None:
    check(ref.encode_frame(msg))


@settings(SETTINGS, max_examples=200)
@given(
    msg=st.sampled_from([2016, 2025]).flatmap(strat.realtime_frames),
    cut=st.integers(0, 10_000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    fix_bcc=st.booleans(),
)
def test_mutated_realtime(
    msg: m.Frame, cut: int, flips: list[tuple[int, int]], fix_bcc: bool
) -> None:
    frame = bytearray(ref.encode_frame(msg))
    for at, value in flips:
        frame[at % len(frame)] = value
    body = bytes(frame[24:-1])
    check(bytes(frame))
    check(with_bcc(frame) if fix_bcc else bytes(frame))
    check(with_length(bytes(frame), body[: cut % (len(body) + 1)]))


@settings(max_examples=500, deadline=None)
@given(
    x=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.builds(lambda s, c: s / c / 1000, st.integers(0, 65533 * 500), st.integers(1, 500)),
        st.builds(lambda s, c: s / c - 40, st.integers(0, 253 * 500), st.integers(1, 500)),
        st.integers(-(10**9), 10**9).map(lambda i: i / 10_000 + 0.00005),
    ),
    nd=st.integers(0, 4),
)
def test_native_round_is_pythons(x: float, nd: int) -> None:
    got, want = _round_exact(x, nd), round(x, nd)
    assert repr(got) == repr(want)


# --------------------------------------------------------------------------- records


def test_records_do_not_share_containers(gbt_vectors: list[dict[str, Any]]) -> None:
    """Records start as copies of templates: every mutable field must be a fresh object."""
    frame = next(f for vid, f in realtime_vectors(gbt_vectors) if vid == "GB-12")
    want = expected(frame)[1]
    first: list[Record] = realtime_records(frame)
    second: list[Record] = realtime_records(frame)
    row = first[0]
    assert isinstance(row, VehicleRealtime)
    row.quality["x"] = "abnormal"
    row.motors[0].quality["x"] = "invalid"
    row.motors.append(row.motors[0])
    row.custom_blocks.clear()
    assert row.extra is not None
    row.extra.clear()
    assert second == want
    assert realtime_records(frame) == want


def test_records_from_frame_without_extensions(
    monkeypatch: pytest.MonkeyPatch, gbt_vectors: list[dict[str, Any]]
) -> None:
    frame = next(f for vid, f in realtime_vectors(gbt_vectors) if vid == "GB-12")
    monkeypatch.delenv("SILKGATE_NO_EXTENSIONS", raising=False)
    monkeypatch.setattr(norm, "_records_impl", None)
    assert norm.records_implementation() == "cython"
    monkeypatch.setattr(norm, "_records_impl", None)
    monkeypatch.setenv("SILKGATE_NO_EXTENSIONS", "1")
    assert norm.records_implementation() == "python"
    assert records_from_frame(frame) == expected(frame)[1]
    with pytest.raises(ProtocolError) as exc:
        records_from_frame(b"\x00" * 30)
    assert exc.value.reason == "bad_start"


def test_reissue_and_time() -> None:
    fleet = Fleet(2, seed=1, gbt_only=True, start=datetime(2026, 3, 1, 0, 0, 5, tzinfo=UTC))
    for frame in fleet.reports(reissue=True):
        records = realtime_records(frame)
        assert records == expected(frame)[1]
        assert all(getattr(r, "reissue", True) for r in records)
        assert records[0].time == datetime(2026, 3, 1, 0, 0, 5, tzinfo=UTC)
