"""GB/T 32960.3 codec (2016 "##" and 2025 "$$").

Exports the Structs of :mod:`messages` and the implementation picked by
``gateway.codecs._select.load`` (Cython unless ``SILKGATE_NO_EXTENSIONS=1``): ``FrameReader``,
``decode_frame``, ``encode_frame``, ``bcc`` and ``IMPLEMENTATION`` (``"cython"``/``"python"``).

The implementation is resolved on first use (PEP 562), so importing ``.reference`` or
``.messages`` never depends on the accelerator; a missing accelerator is still an ImportError
when these names are used, never a silent fall-back.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from gateway.codecs import _select
from gateway.codecs.gbt32960.messages import *  # noqa: F403
from gateway.codecs.gbt32960.messages import __all__ as _messages_all

if TYPE_CHECKING:
    from gateway.codecs.gbt32960.reference import (
        FrameReader as FrameReader,
    )
    from gateway.codecs.gbt32960.reference import (
        bcc as bcc,
    )
    from gateway.codecs.gbt32960.reference import (
        decode_frame as decode_frame,
    )
    from gateway.codecs.gbt32960.reference import (
        encode_frame as encode_frame,
    )

    IMPLEMENTATION: str

__all__ = [
    *_messages_all,
    "IMPLEMENTATION",
    "FrameReader",
    "bcc",
    "decode_frame",
    "encode_frame",
]

_IMPL_NAMES = frozenset({"FrameReader", "bcc", "decode_frame", "encode_frame"})
_impl: ModuleType | None = None


def _implementation() -> ModuleType:
    global _impl
    if _impl is None:
        _impl = _select.load(__name__)
    return _impl


def __getattr__(name: str) -> Any:
    if name in _IMPL_NAMES:
        value = getattr(_implementation(), name)
    elif name == "IMPLEMENTATION":
        value = _select.implementation_name(_implementation())
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
