"""Type stub of the Cython COPY encoder (gateway/store/_copybin.pyx)."""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

HEADER: bytes
TRAILER: bytes

def type_code(pg_type: str) -> int: ...

class CopyEncoder:
    def __init__(
        self,
        record_type: type,
        columns: Sequence[tuple[int, tuple[str, ...], bool, bool]],
        json_encode: Callable[[Any], bytes],
    ) -> None: ...
    def rows(self, records: list[Any], start: int, stop: int, now: datetime) -> bytes: ...
