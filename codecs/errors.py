"""The one exception codecs raise on bad input, with a machine-readable reason and an offset."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a frame or message could not be decoded (stored in the dead-letter table)."""

    BAD_START = "bad_start"  # frame does not begin with the start bytes
    TRUNCATED = "truncated"  # fewer bytes than a length field or fixed layout says
    TOO_LARGE = "too_large"  # frame longer than the configured maximum
    BAD_LENGTH = "bad_length"  # a length or count field out of its range or inconsistent
    BAD_CHECKSUM = "bad_checksum"  # BCC / XOR mismatch
    BAD_ESCAPE = "bad_escape"  # JT/T 808: 0x7D followed by something other than 0x01/0x02
    BAD_VALUE = "bad_value"  # a field holds a value its type does not allow
    BAD_TIME = "bad_time"  # a date/time field that is not a valid calendar time
    TRAILING_BYTES = "trailing_bytes"  # bytes left over after a fixed-layout body
    UNKNOWN_COMMAND = "unknown_command"  # command / message id this codec does not know
    UNSUPPORTED = "unsupported"  # known but not decodable here (e.g. encrypted body)
    GARBAGE = "garbage"  # bytes between frames that belong to no frame
    MISSING_PACKETS = "missing_packets"  # JT/T 808 subpackage set incomplete at timeout


class ProtocolError(ValueError):
    """Bad input. ``reason`` is a :class:`Reason`, ``offset`` the byte offset where it was found.

    ``raw`` carries the offending frame's bytes when the raiser has them, so callers can keep it
    in the dead letters.
    """

    def __init__(self, reason: Reason, message: str, offset: int = 0, raw: bytes = b"") -> None:
        super().__init__(f"{reason.value} at offset {offset}: {message}")
        self.reason = reason
        self.message = message
        self.offset = offset
        self.raw = raw

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason, self.message, self.offset, self.raw))
