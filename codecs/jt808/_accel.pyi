"""Type stub of the JT/T 808 Cython accelerator (same public API as ``reference``)."""

from collections.abc import Iterable, Iterator
from typing import Any, Final, final

from gateway.codecs.common import BadFrame
from gateway.codecs.jt808.messages import (
    AdditionalItem,
    BatchLocation,
    Body,
    Frame,
    Heartbeat,
    Location,
    Logout,
    PlatformGeneralResponse,
    QueryServerTime,
    TerminalGeneralResponse,
)
from gateway.codecs.jt808.reference import BodyDecoder as BodyDecoder
from gateway.codecs.jt808.reference import BodyEncoder as BodyEncoder
from gateway.codecs.jt808.reference import decode_authenticate as decode_authenticate
from gateway.codecs.jt808.reference import decode_can_bus_data as decode_can_bus_data
from gateway.codecs.jt808.reference import (
    decode_platform_resend_request as decode_platform_resend_request,
)
from gateway.codecs.jt808.reference import decode_query_all_params as decode_query_all_params
from gateway.codecs.jt808.reference import decode_query_params as decode_query_params
from gateway.codecs.jt808.reference import (
    decode_query_params_response as decode_query_params_response,
)
from gateway.codecs.jt808.reference import decode_register as decode_register
from gateway.codecs.jt808.reference import decode_register_response as decode_register_response
from gateway.codecs.jt808.reference import decode_server_time as decode_server_time
from gateway.codecs.jt808.reference import decode_set_params as decode_set_params
from gateway.codecs.jt808.reference import decode_terminal_control as decode_terminal_control
from gateway.codecs.jt808.reference import (
    decode_terminal_resend_request as decode_terminal_resend_request,
)
from gateway.codecs.jt808.reference import decode_text_message as decode_text_message
from gateway.codecs.jt808.reference import (
    decode_transparent_downlink as decode_transparent_downlink,
)
from gateway.codecs.jt808.reference import decode_transparent_uplink as decode_transparent_uplink
from gateway.codecs.jt808.reference import encode_authenticate as encode_authenticate
from gateway.codecs.jt808.reference import encode_can_bus_data as encode_can_bus_data
from gateway.codecs.jt808.reference import (
    encode_platform_resend_request as encode_platform_resend_request,
)
from gateway.codecs.jt808.reference import encode_query_all_params as encode_query_all_params
from gateway.codecs.jt808.reference import encode_query_params as encode_query_params
from gateway.codecs.jt808.reference import (
    encode_query_params_response as encode_query_params_response,
)
from gateway.codecs.jt808.reference import encode_register as encode_register
from gateway.codecs.jt808.reference import encode_register_response as encode_register_response
from gateway.codecs.jt808.reference import encode_server_time as encode_server_time
from gateway.codecs.jt808.reference import encode_set_params as encode_set_params
from gateway.codecs.jt808.reference import encode_terminal_control as encode_terminal_control
from gateway.codecs.jt808.reference import (
    encode_terminal_resend_request as encode_terminal_resend_request,
)
from gateway.codecs.jt808.reference import encode_text_message as encode_text_message
from gateway.codecs.jt808.reference import (
    encode_transparent_downlink as encode_transparent_downlink,
)
from gateway.codecs.jt808.reference import encode_transparent_uplink as encode_transparent_uplink
from gateway.codecs.jt808.reference import make_can_time as make_can_time
from gateway.codecs.jt808.reference import make_device_time as make_device_time
from gateway.codecs.jt808.reference import make_server_time as make_server_time

_Bytes = bytes | bytearray | memoryview

DEFAULT_MAX_FRAME: Final[int]
BODY_CODECS: Final[dict[int, tuple[BodyDecoder, BodyEncoder]]]

def checksum(data: _Bytes | Iterable[int]) -> int: ...
def escape(data: _Bytes) -> bytes: ...
def unescape(data: _Bytes, offset: int = 0) -> bytes: ...
def decode_frame(frame: _Bytes) -> Frame: ...
def encode_frame(msg: Frame) -> bytes: ...
def decode_body(msg_id: int, body: bytes, version: int) -> Body: ...
def encode_body(msg_id: int, body: Body, version: int) -> bytes: ...
def decode_additional_items(
    data: _Bytes, version: int, base: int = 0
) -> tuple[AdditionalItem, ...]: ...
def encode_additional_items(items: Iterable[AdditionalItem], version: int) -> bytes: ...
def decode_location(body: _Bytes, version: int, base: int = 0) -> Location: ...
def encode_location(msg: Location, version: int) -> bytes: ...
def decode_batch_location(body: _Bytes, version: int) -> BatchLocation: ...
def encode_batch_location(msg: BatchLocation, version: int) -> bytes: ...
def decode_terminal_general_response(body: _Bytes, version: int) -> TerminalGeneralResponse: ...
def encode_terminal_general_response(msg: TerminalGeneralResponse, version: int) -> bytes: ...
def decode_platform_general_response(body: _Bytes, version: int) -> PlatformGeneralResponse: ...
def encode_platform_general_response(msg: PlatformGeneralResponse, version: int) -> bytes: ...
def decode_heartbeat(body: _Bytes, version: int) -> Heartbeat: ...
def encode_heartbeat(msg: Any, version: int) -> bytes: ...
def decode_logout(body: _Bytes, version: int) -> Logout: ...
def encode_logout(msg: Any, version: int) -> bytes: ...
def decode_query_server_time(body: _Bytes, version: int) -> QueryServerTime: ...
def encode_query_server_time(msg: Any, version: int) -> bytes: ...

@final
class FrameReader:
    def __init__(self, max_frame_size: int = ...) -> None: ...
    @property
    def buffered(self) -> int: ...
    def feed(self, data: _Bytes) -> None: ...
    def next_event(self) -> bytes | BadFrame | None: ...
    def __iter__(self) -> Iterator[bytes | BadFrame]: ...
