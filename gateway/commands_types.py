"""Types shared by the command modules: the result of a command, its statuses, the error for
bad requests, and the JSON forms of parameter ids and values.

JSON forms (what ``request`` / ``reply`` hold, in :class:`CommandResult` and in the
``commands`` table alike): a parameter id is a hex string (``"0x09"`` for GB/T 32960,
``"0x0029"`` for JT/T 808), an integer value an int, a text value a str, and raw bytes an
object ``{"hex": "..."}`` (so a text and bytes never look alike). The API takes the same forms
back (ids also as ints, JT/T 808 ids also by name).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias

import msgspec

#: The outcome of a command. ``accepted``: the terminal answered success; ``failed``: it
#: answered failure (GB/T 0x02, JT/T result 1); ``rejected``: it refused the message (JT/T
#: result 2, GB/T flags 0x03-0x07); ``unsupported``: JT/T result 3; ``timeout``: no answer in
#: time (or never sent: still queued behind another command); ``offline``: the device was not
#: connected; ``error``: the gateway could not send it or read the answer.
Status: TypeAlias = Literal[
    "accepted", "rejected", "failed", "unsupported", "timeout", "offline", "error"
]
#: The status of a stored row whose command is still awaiting its answer.
PENDING: Final = "pending"

Json: TypeAlias = Any  # None | bool | int | float | str | list[Json] | dict[str, Json]
Value: TypeAlias = int | str | bytes


class CommandError(ValueError):
    """A command that cannot be sent as asked (bad id, value or command word; too many in
    flight). Nothing was sent or stored."""


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """One command and its outcome (also one row of the ``commands`` table).

    ``device`` is the VIN or the terminal phone (as the terminal sends it); ``command`` the API
    verb (``query_parameters``, ``set_parameters``, ``control``, ``text``, ``send``);
    ``request`` and ``reply`` are JSON (see the module docstring; ``request["msg_id"]`` is the
    message id sent). ``created_at``: when the call was made; ``sent_at``: when the frame was
    written (None: never sent); ``replied_at``: when the answer arrived.
    """

    id: uuid.UUID
    device: str
    protocol: str
    command: str
    request: dict[str, Json]
    status: Status | Literal["pending"]
    reply: dict[str, Json] | None = None
    created_at: datetime
    sent_at: datetime | None = None
    replied_at: datetime | None = None
    error: str | None = None


def hex_id(value: int, digits: int) -> str:
    """``0x`` and at least ``digits`` upper-case hex digits."""
    return f"0x{value:0{digits}X}"


def parse_id(key: object, what: str, names: Mapping[str, int] | None = None) -> int:
    """A parameter id given as an int, a ``"0x.."`` / decimal string, or a name in ``names``."""
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str):
        text = key.strip()
        if names is not None and text in names:
            return names[text]
        try:
            return int(text, 0)
        except ValueError:
            pass
    raise CommandError(f"{what}: {key!r} is not a parameter id")


def to_json(value: Value) -> Json:
    """The JSON form of a value: bytes become ``{"hex": ...}``."""
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    return value


def from_json(value: object, what: str) -> Value:
    """A value from its JSON form (or already a Python int / str / bytes)."""
    if isinstance(value, bool):
        raise CommandError(f"{what}: a boolean is not a parameter value")
    if isinstance(value, int | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Mapping) and set(value) == {"hex"} and isinstance(value["hex"], str):
        try:
            return bytes.fromhex(value["hex"])
        except ValueError:
            raise CommandError(f"{what}: {value['hex']!r} is not hex") from None
    raise CommandError(f"{what}: {value!r} is not an int, a str or {{'hex': ...}}")


def text_or_bytes(raw: bytes) -> Value:
    """A text field a terminal sent: GBK with NUL / space padding stripped, or the bytes
    themselves when they are not text."""
    stripped = raw.rstrip(b"\x00 ")
    try:
        text = stripped.decode("gbk")
    except UnicodeDecodeError:
        return raw
    return text if text.isprintable() else raw


__all__ = [
    "PENDING",
    "CommandError",
    "CommandResult",
    "Json",
    "Status",
    "Value",
    "from_json",
    "hex_id",
    "parse_id",
    "text_or_bytes",
    "to_json",
]
