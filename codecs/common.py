"""Types and helpers shared by every codec: device time, quality flags, GB/T sentinels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

#: Chinese devices send Beijing time (GMT+8); the store keeps UTC.
DEVICE_UTC_OFFSET: Final = timedelta(hours=8)

#: Values of a block's ``quality`` mapping: why a field is None.
ABNORMAL: Final = "abnormal"  # 0xFE / 0xFFFE / 0xFFFFFFFE
INVALID: Final = "invalid"  # 0xFF / 0xFFFF / 0xFFFFFFFF


class DeviceTime(msgspec.Struct, frozen=True, gc=False):
    """A device timestamp: the raw bytes as sent and the UTC instant they denote.

    ``utc`` is None when the raw bytes are not a calendar time (all 0xFF, month 13, ...); the
    frame is still decoded and the raw value kept.
    """

    raw: bytes
    utc: datetime | None


def gmt8_to_utc(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> datetime | None:
    """UTC datetime for a GMT+8 wall-clock time, or None if the fields are not a valid time."""
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC) - DEVICE_UTC_OFFSET
    except ValueError:
        return None


def utc_to_gmt8_fields(t: datetime) -> tuple[int, int, int, int, int, int]:
    """(year, month, day, hour, minute, second) of a UTC datetime in GMT+8 wall-clock time."""
    if t.tzinfo is None:
        raise ValueError("device times must be timezone-aware")
    local = t.astimezone(UTC) + DEVICE_UTC_OFFSET
    return (local.year, local.month, local.day, local.hour, local.minute, local.second)


class BadFrame(msgspec.Struct, frozen=True, gc=False):
    """A stream reader's report of bytes that are not a good frame: kept raw, with the reason.

    ``reason`` is a :class:`gateway.codecs.errors.Reason` value (``bad_checksum``, ``too_large``,
    ``garbage``, ``bad_escape``, ...); ``offset`` is where in ``raw`` the problem was found.
    """

    raw: bytes
    reason: str
    offset: int
    message: str
