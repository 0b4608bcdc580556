"""JT/T 808 subpackage reassembly: order, gaps, duplicates, deadlines, bounds."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from types import ModuleType

import msgspec
import pytest

from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.jt808.messages import (
    BatchLocation,
    Frame,
    Heartbeat,
    Location,
    PlatformResendRequest,
    RawBody,
    RawItem,
)
from gateway.codecs.jt808.reassembly import MissingPackets, Reassembler, split_frame
from gateway.codecs.jt808.reference import make_device_time


def location(i: int) -> Location:
    return Location(
        alarm_flags=0,
        status_flags=2,
        latitude=i / 1e6,
        longitude=1.5,
        altitude_m=i,
        speed_kmh=0.0,
        direction=0,
        time=make_device_time(datetime(2024, 1, 1, tzinfo=UTC)),
        items=(RawItem(item_id=0xE5, data=bytes([i % 256]) * 10),),
    )


def batch_frame(count: int = 60, serial: int = 65530, version: int = 2019) -> Frame:
    return Frame(
        version=version,
        msg_id=0x0704,
        phone="0" * (20 if version == 2019 else 12),
        serial=serial,
        body=BatchLocation(batch_type=1, items=tuple(location(i) for i in range(count))),
        protocol_version=1 if version == 2019 else None,
    )


def wire_packets(jt808: ModuleType, frame: Frame, size: int) -> list[Frame]:
    """Split, encode and decode again: the packets as the reassembler sees them."""
    return [jt808.decode_frame(jt808.encode_frame(p)) for p in split_frame(frame, size)]


@pytest.mark.parametrize("version", [2013, 2019])
def test_out_of_order_reassembly(jt808: ModuleType, version: int) -> None:
    original = batch_frame(version=version)
    packets = wire_packets(jt808, original, 500)
    assert len(packets) > 3
    assert all(isinstance(p.body, RawBody) for p in packets)
    assert [p.serial for p in packets[:7]] == [65530, 65531, 65532, 65533, 65534, 65535, 0][
        : len(packets)
    ]
    random.Random(808).shuffle(packets)
    r = Reassembler()
    results = [r.add(p, deadline=10.0) for p in packets]
    assert results[:-1] == [None] * (len(packets) - 1)
    assert results[-1] == original
    assert len(r) == 0 and r.buffered_bytes == 0 and r.poll(100.0) == []


def test_missing_packet_reported_then_completed(jt808: ModuleType) -> None:
    original = batch_frame()
    packets = wire_packets(jt808, original, 400)
    r = Reassembler()
    for p in packets:
        if p.packet_index != 3:
            assert r.add(p, deadline=5.0) is None
    (pending,) = r.pending()
    assert pending.missing == (3,) and pending.reason == "requested"
    assert r.missing(pending.key) == pending
    assert r.poll(4.9) == []
    (timeout,) = r.poll(5.0)
    assert timeout == msgspec.structs.replace(pending, reason="timeout")
    assert r.poll(6.0) == []  # reported once until re-armed
    assert timeout.resend_request() == PlatformResendRequest(
        original_serial=original.serial, packet_ids=(3,)
    )
    r.rearm(timeout.key, 8.0)
    assert [m.reason for m in r.poll(8.0)] == ["timeout"]
    assert r.add(packets[2]) == original


def test_duplicates_ignored(jt808: ModuleType) -> None:
    packets = wire_packets(jt808, batch_frame(), 400)
    r = Reassembler()
    assert r.add(packets[0]) is None
    held = r.buffered_bytes
    assert r.add(packets[0]) is None
    assert r.buffered_bytes == held and len(r) == 1
    for p in packets[1:-1]:
        assert r.add(p) is None
        assert r.add(p) is None
    assert r.add(packets[-1]) == batch_frame()


def test_max_sets_evicts_oldest(jt808: ModuleType) -> None:
    r = Reassembler(max_sets=2)
    firsts = [wire_packets(jt808, batch_frame(serial=s), 400)[0] for s in (100, 200, 300)]
    for p in firsts:
        assert r.add(p) is None
    assert len(r) == 2
    (evicted,) = r.poll(0.0)
    assert (evicted.reason, evicted.first_serial) == ("evicted", 100)
    assert evicted.missing == tuple(range(2, evicted.packet_total + 1))
    assert [m.first_serial for m in r.pending()] == [200, 300]


def test_max_bytes_evicts(jt808: ModuleType) -> None:
    a = wire_packets(jt808, batch_frame(serial=1), 400)
    b = wire_packets(jt808, batch_frame(serial=1000), 400)
    r = Reassembler(max_bytes=1000)
    assert r.add(a[0]) is None and r.add(a[1]) is None
    assert r.add(b[0]) is None  # 1200 bytes: the older set goes
    assert [m.first_serial for m in r.poll(0.0)] == [1]
    assert r.buffered_bytes == 400
    small = Reassembler(max_bytes=300)
    assert small.add(a[0]) is None  # one packet over the bound: the set itself goes
    assert len(small) == 0 and small.buffered_bytes == 0
    assert [m.reason for m in small.poll(0.0)] == ["evicted"]


def test_key_by_total_for_repeated_serials(jt808: ModuleType) -> None:
    original = batch_frame(serial=42)
    packets = [msgspec.structs.replace(p, serial=42) for p in wire_packets(jt808, original, 400)]
    by_serial = Reassembler()
    assert all(by_serial.add(p) is None for p in packets)
    r = Reassembler(key_by="total")
    results = [r.add(p) for p in reversed(packets)]
    assert results[-1] == original


def test_pass_through_and_bad_packets(jt808: ModuleType) -> None:
    r = Reassembler()
    plain = Frame(version=2013, msg_id=2, phone="0" * 12, serial=1, body=Heartbeat())
    assert r.add(plain) is plain
    single = msgspec.structs.replace(plain, packet_total=1, packet_index=1)
    assert r.add(single) is single
    for total, index in ((2, 0), (2, 3), (0, 0)):
        bad = msgspec.structs.replace(
            plain, body=RawBody(data=b""), packet_total=total, packet_index=index
        )
        with pytest.raises(ProtocolError):
            r.add(bad)


def test_undecodable_set_raises_with_raw(jt808: ModuleType) -> None:
    parts = [
        Frame(
            version=2013,
            msg_id=0x0200,
            phone="0" * 12,
            serial=i,
            body=RawBody(data=b"\x00" * 10),
            packet_total=2,
            packet_index=i,
        )
        for i in (1, 2)
    ]
    r = Reassembler()
    assert r.add(parts[0]) is None
    with pytest.raises(ProtocolError) as exc:
        r.add(parts[1])
    assert exc.value.reason is Reason.TRUNCATED and exc.value.raw == b"\x00" * 20
    assert len(r) == 0


def test_encrypted_set_stays_raw(jt808: ModuleType) -> None:
    original = msgspec.structs.replace(batch_frame(), encryption=1)
    data = b"".join(
        p.body.data  # type: ignore[union-attr]
        for p in split_frame(msgspec.structs.replace(original, encryption=0), 400)
    )
    packets = wire_packets(jt808, original, 400)
    r = Reassembler()
    results = [r.add(p) for p in packets]
    assert results[-1] == msgspec.structs.replace(original, body=RawBody(data=data))


def test_resend_request_frame_round_trips(jt808: ModuleType) -> None:
    report = MissingPackets(
        key=("0" * 12, 0x0704, 9, 4),
        phone="0" * 12,
        msg_id=0x0704,
        version=2013,
        first_serial=9,
        packet_total=4,
        missing=(2, 4),
        received_bytes=10,
        reason="timeout",
    )
    request = Frame(
        version=2013, msg_id=0x8003, phone="0" * 12, serial=1, body=report.resend_request()
    )
    raw = jt808.encode_frame(request)
    assert raw[13:20] == bytes.fromhex("00090200020004")
    assert jt808.decode_frame(raw) == request


def test_split_validation() -> None:
    with pytest.raises(ValueError):
        split_frame(batch_frame(), 0)
    with pytest.raises(ValueError):
        split_frame(batch_frame(), 1024)
    with pytest.raises(ValueError):
        Reassembler(max_sets=0)
