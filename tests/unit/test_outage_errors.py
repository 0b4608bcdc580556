"""Which database errors make the pipeline spool (retry later) and which isolate a bad record."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg.exceptions._base import DataError as ClientDataError

from gateway.pipeline import is_outage


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(104, "reset"),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),  # 57P03
        asyncpg.exceptions.AdminShutdownError("terminating"),  # 57P01
        asyncpg.exceptions.DiskFullError("no space"),  # 53100
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),  # 40P01
        asyncpg.exceptions.SerializationError("could not serialize"),  # 40001
        asyncpg.exceptions.UndefinedColumnError("no such column"),  # 42703: fix, then replay
    ],
)
def test_outages_are_retried(exc: BaseException) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.NumericValueOutOfRangeError("out of range"),  # 22003
        asyncpg.exceptions.NotNullViolationError("null"),  # 23502
        asyncpg.exceptions.DataError("invalid input syntax"),  # 22000
        ClientDataError("invalid input for query argument $1: 100000 (out of int16 range)"),
        ValueError("bad value while building a row"),
    ],
)
def test_data_errors_isolate_the_record(exc: BaseException) -> None:
    assert not is_outage(exc)
