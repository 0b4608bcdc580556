"""JT/T 808 codec: messages, the selected implementation (Cython unless
SILKGATE_NO_EXTENSIONS=1), the subpackage reassembler and the terminal parameter table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.codecs import _select
from gateway.codecs.jt808.constants import alarm_names, status_names
from gateway.codecs.jt808.messages import *  # noqa: F403
from gateway.codecs.jt808.messages import __all__ as _messages_all
from gateway.codecs.jt808.params import (
    PARAM_IDS,
    PARAMS,
    ParamKind,
    ParamSpec,
    ParamValue,
    decode_param_value,
    encode_param_value,
    param_items,
    param_spec,
    param_values,
)
from gateway.codecs.jt808.reassembly import MissingPackets, Reassembler, split_frame

_IMPL_NAMES = ("FrameReader", "decode_frame", "encode_frame", "escape", "unescape", "checksum")

__all__ = [
    *_messages_all,
    *_IMPL_NAMES,
    "IMPLEMENTATION",
    "PARAMS",
    "PARAM_IDS",
    "MissingPackets",
    "ParamKind",
    "ParamSpec",
    "ParamValue",
    "Reassembler",
    "alarm_names",
    "decode_param_value",
    "encode_param_value",
    "param_items",
    "param_spec",
    "param_values",
    "split_frame",
    "status_names",
]

_impl = _select.load(__name__)
IMPLEMENTATION: str = _select.implementation_name(_impl)

if TYPE_CHECKING:  # both implementations expose the reference's signatures
    from gateway.codecs.jt808.reference import FrameReader as FrameReader
    from gateway.codecs.jt808.reference import checksum as checksum
    from gateway.codecs.jt808.reference import decode_frame as decode_frame
    from gateway.codecs.jt808.reference import encode_frame as encode_frame
    from gateway.codecs.jt808.reference import escape as escape
    from gateway.codecs.jt808.reference import unescape as unescape
else:
    FrameReader = _impl.FrameReader
    checksum = _impl.checksum
    decode_frame = _impl.decode_frame
    encode_frame = _impl.encode_frame
    escape = _impl.escape
    unescape = _impl.unescape
