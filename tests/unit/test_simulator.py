"""The built-in fleet simulator produces valid frames of every protocol version."""

from __future__ import annotations

from collections import Counter
from types import ModuleType

from gateway.normalize import normalize
from gateway.records import Position, SessionEvent, VehicleRealtime
from gateway.simulator import Fleet


def test_every_frame_decodes_and_normalizes(gbt32960: ModuleType, jt808: ModuleType) -> None:
    fleet = Fleet(8, seed=7)
    kinds: Counter[str] = Counter()
    versions: set[int] = set()
    for raw in fleet.stream(rounds=3):
        codec = gbt32960 if raw[:2] in (b"##", b"$$") else jt808
        frame = codec.decode_frame(raw)
        assert codec.encode_frame(frame) == raw
        versions.add(frame.version)
        kinds.update(type(r).__name__ for r in normalize(frame))
    assert versions == {2013, 2016, 2019, 2025}
    assert kinds["VehicleRealtime"] == 4 * 3  # the four GB/T trucks, three rounds
    assert kinds["Position"] == 8 * 3
    assert kinds["SessionEvent"] == 8 + 8  # logins/registrations, logouts


def test_reports_are_plausible_and_deterministic(gbt32960: ModuleType) -> None:
    a, b = Fleet(4, seed=3, gbt_only=True), Fleet(4, seed=3, gbt_only=True)
    assert a.reports() == b.reports()
    a.advance(30)
    rows = [normalize(gbt32960.decode_frame(raw)) for raw in a.reports(reissue=True)]
    for records in rows:
        row = records[0]
        assert isinstance(row, VehicleRealtime) and row.reissue
        assert row.cell_count == 192 and row.probe_count == 48
        assert row.cell_v_min is not None and 3.0 < row.cell_v_min < 4.2
        assert any(isinstance(r, Position) for r in records)
    login = normalize(gbt32960.decode_frame(a.logins()[0]))[0]
    assert isinstance(login, SessionEvent) and login.event == "login"
