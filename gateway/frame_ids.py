"""Random (version 4) UUIDs for archived frames, made cheaply.

``uuid.uuid4()`` costs a system call for 16 random bytes and a validating ``UUID.__init__``
per frame (about 4 us, measured: a tenth of a GB/T 32960 frame's whole ingest). Here the random
bytes come from ``os.urandom`` in blocks, and each UUID is filled in directly (its slots
``int`` and ``is_safe``), with the version and variant bits of RFC 9562 set as ``uuid4`` sets
them. The result is equal (``==``, hash, str) to ``UUID(int=...)`` of the same value.
"""

from __future__ import annotations

import os
import uuid

_BLOCK = 16 * 4096
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


class FrameIds:
    """A source of random UUIDs; ``next()`` returns a fresh one."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> uuid.UUID:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(_BLOCK), 0
        self._at = at + 16
        value = (int.from_bytes(self._pool[at : at + 16]) & _CLEAR) | _SET
        u: uuid.UUID = _new(uuid.UUID)
        _set(u, "int", value)
        _set(u, "is_safe", _UNKNOWN)
        return u
