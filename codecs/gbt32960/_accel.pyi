"""Type stub of the GB/T 32960 Cython accelerator (same API as ``reference``)."""

from collections.abc import Iterator
from typing import Any, Final, final

from gateway.codecs.common import BadFrame
from gateway.codecs.gbt32960.messages import Body, Frame

__all__ = [
    "DEFAULT_MAX_FRAME",
    "FrameReader",
    "bcc",
    "decode_body",
    "decode_frame",
    "encode_body",
    "encode_frame",
]

DEFAULT_MAX_FRAME: Final[int]

def bcc(data: bytes | bytearray | memoryview) -> int: ...
def decode_frame(frame: bytes | bytearray | memoryview) -> Frame: ...
def encode_frame(msg: Frame) -> bytes: ...
def decode_body(
    data: bytes, offset: int, version: int, command: int, response: int, encryption: int
) -> Body: ...
def encode_body(body: Body, version: int) -> bytes: ...

@final
class FrameReader:
    def __init__(self, max_frame_size: int = ...) -> None: ...
    @property
    def buffered(self) -> int: ...
    def feed(self, data: bytes | bytearray | memoryview) -> None: ...
    def next_event(self) -> bytes | BadFrame | None: ...
    def __iter__(self) -> Iterator[bytes | BadFrame]: ...
    def __next__(self) -> bytes | BadFrame: ...

# Every other public name of ``reference`` (per-body decode_*/encode_*, text and time helpers)
# is re-exported from it.
def __getattr__(name: str) -> Any: ...
