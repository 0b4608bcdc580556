"""The JSON Schema of the charger message set (docs/charger-json.schema.json), generated from the
Structs of :mod:`gateway.charger_json.messages`; a test keeps the checked-in file equal to it.

Regenerate (from outside the repository root, so the installed package is imported)::

    python -m gateway.charger_json.schema > docs/charger-json.schema.json
"""

from __future__ import annotations

from typing import Any

from gateway import json_messages
from gateway.charger_json.messages import MESSAGE_SET, VERSION

__all__ = ["schema", "schema_text"]


def schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of one charger message."""
    return MESSAGE_SET.schema(
        title="silkgate charger messages",
        description="One JSON message from a charger or its site controller "
        f'(docs/charger-json.md). Message set version {VERSION} ("v"). Receivers ignore '
        "fields they do not know.",
    )


def schema_text() -> str:
    """:func:`schema` as the checked-in file's text (indented, newline at the end)."""
    return json_messages.schema_text(schema())


if __name__ == "__main__":
    print(schema_text(), end="")
