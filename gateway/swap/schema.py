"""The JSON Schema of the swap message set (docs/swap-station.schema.json), generated from the
Structs of :mod:`gateway.swap.messages`; a test keeps the checked-in file equal to it.

Regenerate (from outside the repository root, so the installed package is imported)::

    python -m gateway.swap.schema > docs/swap-station.schema.json
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.swap.messages import VERSION, Message

__all__ = ["schema", "schema_text"]


def schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of one swap-station message."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "silkgate swap-station messages",
        "description": "One JSON message from a battery-swap station (docs/swap-station.md). "
        f'Message set version {VERSION} ("v"). Receivers ignore fields they do not know.',
        **msgspec.json.schema(Message),
    }


def schema_text() -> str:
    """:func:`schema` as the checked-in file's text (indented, newline at the end)."""
    return msgspec.json.format(msgspec.json.encode(schema()), indent=2).decode() + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
