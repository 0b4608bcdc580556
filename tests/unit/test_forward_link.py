"""The sans-IO parts of forwarding: the platform frames, the answer window, login serials,
backoff and pacing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from gateway.codecs import gbt32960 as gbt
from gateway.forward.archive import ArchiveRow, Position
from gateway.forward.gbt_link import (
    AckWindow,
    Platform,
    Sent,
    beijing_day,
    device_time,
    next_login_serial,
)
from gateway.forward.pacing import Backoff, RateLimiter
from gateway.simulator import Fleet


def row(txid: int, seq: int, frame: bytes = b"", version: str = "2016") -> ArchiveRow:
    return ArchiveRow(
        position=Position(txid, seq),
        frame_id=uuid.uuid4(),
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        protocol="gbt32960",
        version=version,
        device_id="VIN",
        frame=frame,
    )


def test_platform_frames() -> None:
    p = Platform(2025, "SILKGATE", "user", "pass")
    now = datetime(2026, 3, 1, 16, 30, 5, tzinfo=UTC)  # 2026-03-02 00:30:05 in Beijing
    login = gbt.decode_frame(p.login(7, now))
    assert (login.version, login.command, login.response, login.vin) == (2025, 5, 0xFE, "SILKGATE")
    assert isinstance(login.body, gbt.PlatformLogin)
    assert (login.body.serial, login.body.username, login.body.password) == (7, "user", "pass")
    assert login.body.time.raw == bytes((26, 3, 2, 0, 30, 5)) and login.body.time.utc == now
    logout = gbt.decode_frame(p.logout(now))
    assert isinstance(logout.body, gbt.PlatformLogout) and logout.body.serial == 7
    beat = gbt.decode_frame(p.heartbeat())
    assert beat.command == 7 and isinstance(beat.body, gbt.Empty)
    assert device_time(now).raw == bytes((26, 3, 2, 0, 30, 5))
    assert beijing_day(now) == date(2026, 3, 2)


def test_relay_as_received_or_converted() -> None:
    fleet = Fleet(2, gbt_only=True)
    f16, f25 = fleet.reports()
    p16 = Platform(2016, "P", "u", "p")
    assert p16.relay(row(1, 1, f16)) is not None and p16.relay(row(1, 1, f16)) == f16
    converted = gbt.decode_frame(p16.relay(row(1, 2, f25, "2025")))
    assert converted.version == 2016 and converted.vin == fleet.trucks[1].vin


def test_login_serials_restart_daily_and_wrap() -> None:
    day = date(2026, 1, 2)
    assert next_login_serial(day, None, None) == 1
    assert next_login_serial(day, day, 1) == 2
    assert next_login_serial(day, date(2026, 1, 1), 40) == 1
    assert next_login_serial(day, day, 65531) == 1


def test_answers_match_oldest_frame_of_that_command_and_vin() -> None:
    w = AckWindow()
    a = Sent(Position(1, 1), row(1, 1), 0x02, "A", True, 0.0)
    b = Sent(Position(1, 2), row(1, 2), 0x02, "B", True, 1.0)
    c = Sent(Position(1, 3), row(1, 3), 0x02, "A", True, 2.0)
    skipped = Sent(Position(1, 4), row(1, 4))
    for e in (a, b, c, skipped):
        w.add(e)
    assert w.awaiting == 3 and w.oldest_wait() == 0.0
    assert w.answer(0x02, "B") is b
    assert w.pop_done() == []  # A is still waiting before B
    assert w.answer(0x03, "A") is None  # another command
    assert w.answer(0x02, "A") is a
    assert w.pop_done() == [a, b]
    assert w.oldest_wait() == 2.0 and len(w) == 2
    assert w.answer(0x02, "A") is c
    assert w.pop_done() == [c, skipped] and w.awaiting == 0 and len(w) == 0
    assert w.answer(0x02, "A") is None


def test_backoff_doubles_with_jitter_and_resets() -> None:
    b = Backoff(1.0, 8.0)
    delays = [b.next() for _ in range(6)]
    for d, cap in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert cap / 2 <= d <= cap
    b.reset()
    assert b.next() <= 1.0


def test_rate_limiter() -> None:
    now = [0.0]
    limit = RateLimiter(100.0, burst=10, clock=lambda: now[0])
    assert [limit.delay() for _ in range(10)] == [0.0] * 10
    assert abs(limit.delay() - 0.01) < 1e-9  # the 11th waits for one token
    now[0] += 1.0  # a second later the burst is back, never more
    assert [limit.delay() for _ in range(10)] == [0.0] * 10
