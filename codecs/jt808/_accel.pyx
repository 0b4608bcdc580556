"""Cython accelerator for JT/T 808 (2013 and 2019): the same public names and results as
``reference.py``.

Native: framing (checksum, escape, unescape, FrameReader), the header, and the bodies 0x0001,
0x8001, 0x0002, 0x0003, 0x0004, 0x0200 (with every additional item) and 0x0704, both ways.
The other bodies (registration, CAN, transparent, resend requests and the platform commands
0x8103 / 0x8104 / 0x8106 / 0x0104 / 0x8105 / 0x8300, none on the report path), and the value
helpers, are the reference's own functions, so they behave identically by construction.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.datetime cimport datetime_new, import_datetime
from cpython.float cimport PyFloat_AsDouble
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.math cimport fabs, isinf, isnan, rint
from libc.stdint cimport int16_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy

import datetime as _dt
import struct as _struct

from gateway.codecs.common import BadFrame, DeviceTime
from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.jt808 import reference as _ref
from gateway.codecs.jt808.messages import (
    BODY_TYPES,
    AlarmEventId,
    AnalogValues,
    AreaAlarm,
    BatchLocation,
    CabinTemperature,
    CustomItemsLength,
    ExtendedSignals,
    Frame,
    FuelLevel,
    Heartbeat,
    IoStatus,
    Location,
    Logout,
    Odometer,
    OverspeedAlarm,
    PlatformGeneralResponse,
    QueryServerTime,
    RawBody,
    RawItem,
    RouteTimeAlarm,
    SatelliteCount,
    SignalStrength,
    TachographSpeed,
    TerminalGeneralResponse,
    TyrePressure,
)

# Bodies and helpers this module does not implement natively: the reference's functions.
from gateway.codecs.jt808.reference import (
    BodyDecoder,
    BodyEncoder,
    decode_authenticate,
    decode_can_bus_data,
    decode_platform_resend_request,
    decode_query_all_params,
    decode_query_params,
    decode_query_params_response,
    decode_register,
    decode_register_response,
    decode_server_time,
    decode_set_params,
    decode_terminal_control,
    decode_terminal_resend_request,
    decode_text_message,
    decode_transparent_downlink,
    decode_transparent_uplink,
    encode_authenticate,
    encode_can_bus_data,
    encode_platform_resend_request,
    encode_query_all_params,
    encode_query_params,
    encode_query_params_response,
    encode_register,
    encode_register_response,
    encode_server_time,
    encode_set_params,
    encode_terminal_control,
    encode_terminal_resend_request,
    encode_text_message,
    encode_transparent_downlink,
    encode_transparent_uplink,
    make_can_time,
    make_device_time,
    make_server_time,
)

# ====================================================== read/write buffers, header


ctypedef unsigned char uchar


cdef struct RBuf:
    # Bounds-checked reads over buf[0:len]; errors report offsets as base + pos.
    const uchar* buf
    Py_ssize_t len
    Py_ssize_t pos
    Py_ssize_t base


cdef inline Py_ssize_t rb_remaining(const RBuf* r) noexcept nogil:
    return r.len - r.pos


cdef inline Py_ssize_t rb_offset(const RBuf* r) noexcept nogil:
    return r.base + r.pos


cdef inline uint16_t be16(const uchar* p) noexcept nogil:
    return <uint16_t>((p[0] << 8) | p[1])


cdef inline uint32_t be32(const uchar* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void put16(uchar* p, uint32_t v) noexcept nogil:
    p[0] = <uchar>(v >> 8)
    p[1] = <uchar>v


cdef inline void put32(uchar* p, uint32_t v) noexcept nogil:
    p[0] = <uchar>(v >> 24)
    p[1] = <uchar>(v >> 16)
    p[2] = <uchar>(v >> 8)
    p[3] = <uchar>v


cdef inline bint is_bcd(const uchar* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if (p[i] >> 4) > 9 or (p[i] & 0x0F) > 9:
            return False
    return True


cdef enum:
    WBUF_STACK = 1200  # a whole unescaped frame (21 + 1023 + 1) fits without malloc


cdef struct WBuf:
    # Append-only output; starts in ``small`` and moves to the heap when it outgrows it.
    uchar* buf
    Py_ssize_t len
    Py_ssize_t cap
    bint heap
    uchar small[WBUF_STACK]


cdef struct Header:
    int msg_id
    int attrs
    int version
    int protocol_version  # -1: none (2013)
    int serial
    int packet_total  # -1: not subpackaged
    int packet_index
    int encryption
    int reserved
    const uchar* phone  # BCD bytes inside the unescaped payload
    Py_ssize_t phone_size
    Py_ssize_t body_pos  # index of the body in the unescaped payload
    Py_ssize_t body_len


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object s)
    void* PyUnicode_DATA(object s)
    Py_ssize_t PyUnicode_GET_LENGTH(object s)
    long long PyLong_AsLongLongAndOverflow(object v, int* overflow) except? -1

import_datetime()

DEFAULT_MAX_FRAME = _ref.DEFAULT_MAX_FRAME

cdef enum:
    FLAG = 0x7E
    ESC = 0x7D
    MAX_BODY = 0x3FF
    MIN_FRAME = 15  # flags + shortest header + checksum
    BASIC_SIZE = 22  # 0x0200 basic block without its time
    ATTR_SUBPACKAGE = 1 << 13
    ATTR_VERSION_2019 = 1 << 14

cdef object _TRUNCATED = Reason.TRUNCATED
cdef object _BAD_START = Reason.BAD_START
cdef object _BAD_ESCAPE = Reason.BAD_ESCAPE
cdef object _BAD_CHECKSUM = Reason.BAD_CHECKSUM
cdef object _BAD_LENGTH = Reason.BAD_LENGTH
cdef object _BAD_VALUE = Reason.BAD_VALUE
cdef object _BAD_TIME = Reason.BAD_TIME
cdef object _TRAILING = Reason.TRAILING_BYTES
cdef str _GARBAGE = Reason.GARBAGE.value
cdef str _TOO_LARGE = Reason.TOO_LARGE.value
cdef object _UTC = _dt.UTC
cdef object _struct_error = _struct.error
cdef object _AGAIN = object()
cdef object _ref_body_codecs = _ref.BODY_CODECS


# ============================================================================ byte helpers


cdef object _truncated(what, Py_ssize_t n, const RBuf* r, object raw):
    return ProtocolError(
        _TRUNCATED, f"{what}: need {n} bytes, have {rb_remaining(r)}", rb_offset(r), raw
    )


cdef inline const uchar* rb_need(RBuf* r, Py_ssize_t n, str what, object raw) except NULL:
    """Take n bytes or raise TRUNCATED, as the reference's ``_Reader.take``."""
    cdef const uchar* p
    if r.len - r.pos < n:
        raise _truncated(what, n, r, raw)
    p = r.buf + r.pos
    r.pos += n
    return p


cdef int rb_finish(RBuf* r, str what, object raw) except -1:
    if r.pos < r.len:
        raise ProtocolError(
            _TRAILING, f"{what}: {rb_remaining(r)} bytes left over", rb_offset(r), raw
        )
    return 0


cdef inline bytes _bytes(const uchar* p, Py_ssize_t n):
    return PyBytes_FromStringAndSize(<const char*>p, n)


cdef inline void wb_init(WBuf* w) noexcept:
    w.buf = w.small
    w.len = 0
    w.cap = WBUF_STACK
    w.heap = False


cdef inline void wb_free(WBuf* w) noexcept:
    if w.heap:
        free(w.buf)
        w.heap = False


cdef uchar* wb_grow(WBuf* w, Py_ssize_t n) except NULL:
    cdef Py_ssize_t cap = w.cap * 2
    cdef uchar* p
    if cap < w.len + n:
        cap = w.len + n
    if w.heap:
        p = <uchar*>realloc(w.buf, cap)
    else:
        p = <uchar*>malloc(cap)
        if p != NULL:
            memcpy(p, w.small, w.len)
    if p == NULL:
        raise MemoryError()
    w.buf = p
    w.cap = cap
    w.heap = True
    p = w.buf + w.len
    w.len += n
    return p


cdef inline uchar* wb_alloc(WBuf* w, Py_ssize_t n) except NULL:
    """Room for n more bytes at the end; the caller fills them."""
    cdef uchar* p
    if w.len + n > w.cap:
        return wb_grow(w, n)
    p = w.buf + w.len
    w.len += n
    return p


cdef int wb_write(WBuf* w, object data) except -1:
    cdef const uchar[::1] view
    if type(data) is bytes:
        memcpy(wb_alloc(w, PyBytes_GET_SIZE(data)), PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    else:
        view = memoryview(data).cast("B")
        if view.shape[0]:
            memcpy(wb_alloc(w, view.shape[0]), &view[0], view.shape[0])
    return 0


cdef long long _uint(object v, long long maximum, bint struct_error) except -1:
    """v as 0..maximum; out of range raises what the reference raises there (struct.pack:
    struct.error, int.to_bytes: OverflowError)."""
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow or x < 0 or x > maximum:
        if struct_error:
            raise _struct_error(f"{v!r} out of range 0..{maximum}")
        raise OverflowError(f"int {v!r} out of range 0..{maximum}")
    return x


cdef long long _round(object v, double scale, bint absolute, long long maximum,
                      bint struct_error) except -1:
    """``round(v * scale)`` (``abs(v)`` first when asked), range-checked as :func:`_uint`."""
    cdef double d = PyFloat_AsDouble(v)
    if absolute:
        d = fabs(d)
    d = rint(d * scale)  # round half to even, as round()
    if isnan(d):
        raise ValueError("cannot convert float NaN to integer")
    if isinf(d):
        raise OverflowError("cannot convert float infinity to integer")
    if d < 0 or d > maximum:
        if struct_error:
            raise _struct_error(f"{d!r} out of range 0..{maximum}")
        raise OverflowError(f"{d!r} out of range 0..{maximum}")
    return <long long>d


# ================================================================================ times

include "../_shared.pxi"


cdef inline int _bcd2(uchar b) noexcept nogil:
    return (b >> 4) * 10 + (b & 0x0F)


# One-entry cache: trucks reporting on a common period send the same second many times in a
# row. DeviceTime is frozen and holds immutable values, so sharing one instance is safe.
cdef uchar _last_time_raw[6]
cdef object _last_time = None


cdef object _device_time(const uchar* p):
    """BCD YYMMDDhhmmss GMT+8 -> DeviceTime, UTC computed here (reference: ``_device_time``)."""
    global _last_time
    if _last_time is not None and memcmp(p, _last_time_raw, 6) == 0:
        return _last_time
    cdef object result = _make_device_time(p)
    memcpy(_last_time_raw, p, 6)
    _last_time = result
    return result


cdef object _make_device_time(const uchar* p):
    cdef object utc = None
    if is_bcd(p, 6):
        utc = _gmt8_fields_to_utc(2000 + _bcd2(p[0]), _bcd2(p[1]), _bcd2(p[2]), _bcd2(p[3]),
                                  _bcd2(p[4]), _bcd2(p[5]))
    return DeviceTime(raw=_bytes(p, 6), utc=utc)


# ==================================================================== additional items


cdef object _decode_item(int item_id, const uchar* v, Py_ssize_t size):
    """One typed additional item, or RawItem for vendor/unknown ids and unexpected lengths."""
    cdef Py_ssize_t i
    cdef uint64_t n = 0
    cdef tuple pressures
    if item_id == 0x01:
        if size == 4:
            return Odometer(km=be32(v) / 10.0)
    elif item_id == 0x02:
        if size == 2:
            return FuelLevel(litres=be16(v) / 10.0)
    elif item_id == 0x03:
        if size == 2:
            return TachographSpeed(kmh=be16(v) / 10.0)
    elif item_id == 0x04:
        if size == 2:
            return AlarmEventId(event_id=be16(v))
    elif item_id == 0x05:
        if size == 30:
            pressures = PyTuple_New(30)
            for i in range(30):
                value = None if v[i] == 0xFF else <int>v[i]
                Py_INCREF(value)
                PyTuple_SET_ITEM(pressures, i, value)
            return TyrePressure(pressures=pressures)
    elif item_id == 0x06:
        if size == 2:
            return CabinTemperature(celsius=<int16_t>be16(v))
    elif item_id == 0x11:
        if size == 1:
            return OverspeedAlarm(location_type=v[0], area_id=None)
        if size == 5:
            return OverspeedAlarm(location_type=v[0], area_id=be32(v + 1))
    elif item_id == 0x12:
        if size == 6:
            return AreaAlarm(location_type=v[0], area_id=be32(v + 1), direction=v[5])
    elif item_id == 0x13:
        if size == 7:
            return RouteTimeAlarm(section_id=be32(v), drive_time_s=be16(v + 4), result=v[6])
    elif item_id == 0x25:
        if size == 4:
            return ExtendedSignals(flags=be32(v))
    elif item_id == 0x2A:
        if size == 2:
            return IoStatus(flags=be16(v))
    elif item_id == 0x2B:
        if size == 4:
            return AnalogValues(ad0=be16(v + 2), ad1=be16(v))
    elif item_id == 0x30:
        if size == 1:
            return SignalStrength(value=v[0])
    elif item_id == 0x31:
        if size == 1:
            return SatelliteCount(count=v[0])
    elif item_id == 0xE0:
        if size <= 8:
            for i in range(size):
                n = n << 8 | v[i]
            return CustomItemsLength(value=n, size=size)
        return CustomItemsLength(value=int.from_bytes(_bytes(v, size), "big"), size=size)
    return RawItem(item_id=item_id, data=_bytes(v, size))


cdef tuple _decode_items(RBuf* r, object raw):
    cdef list items = []
    cdef int item_id, size
    while r.pos < r.len:
        item_id = r.buf[r.pos]
        r.pos += 1
        if r.pos >= r.len:
            raise _truncated(f"length of item 0x{item_id:02X}", 1, r, raw)
        size = r.buf[r.pos]
        r.pos += 1
        if r.len - r.pos < size:
            raise _truncated(f"item 0x{item_id:02X}", size, r, raw)
        items.append(_decode_item(item_id, r.buf + r.pos, size))
        r.pos += size
    return tuple(items)


def decode_additional_items(data, version, base=0):
    """Items of (id BYTE, length BYTE, value) in wire order; an item past the end: TRUNCATED."""
    cdef bytes b = bytes(data)
    cdef RBuf r = RBuf(<const uchar*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), 0, base)
    return _decode_items(&r, b"")


cdef int _encode_item(WBuf* w, object item) except -1:
    cdef int code = _ITEM_CODES.get(type(item), -1)
    cdef long long n
    cdef uchar* p
    cdef object value
    if code == -1:
        for cls, c in _ITEM_CLASSES:
            if isinstance(item, cls):
                code = c
                break
        else:
            raise TypeError(f"not an additional item: {item!r}")
    if code == 0x01:
        n = _round(item.km, 10.0, False, 0xFFFFFFFF, False)
        p = wb_alloc(w, 6)
        p[0], p[1] = 0x01, 4
        put32(p + 2, <uint32_t>n)
    elif code == 0x02 or code == 0x03:
        n = _round(item.litres if code == 0x02 else item.kmh, 10.0, False, 0xFFFF, False)
        p = wb_alloc(w, 4)
        p[0], p[1] = code, 2
        put16(p + 2, <uint32_t>n)
    elif code == 0x04:
        n = _uint(item.event_id, 0xFFFF, False)
        p = wb_alloc(w, 4)
        p[0], p[1] = 0x04, 2
        put16(p + 2, <uint32_t>n)
    elif code == 0x25:
        n = _uint(item.flags, 0xFFFFFFFF, False)
        p = wb_alloc(w, 6)
        p[0], p[1] = 0x25, 4
        put32(p + 2, <uint32_t>n)
    elif code == 0x2A:
        n = _uint(item.flags, 0xFFFF, False)
        p = wb_alloc(w, 4)
        p[0], p[1] = 0x2A, 2
        put16(p + 2, <uint32_t>n)
    elif code == 0x2B:
        n = _uint(item.ad1 << 16 | item.ad0, 0xFFFFFFFF, False)
        p = wb_alloc(w, 6)
        p[0], p[1] = 0x2B, 4
        put32(p + 2, <uint32_t>n)
    elif code == 0x30 or code == 0x31:
        n = _uint(item.value if code == 0x30 else item.count, 0xFF, False)
        p = wb_alloc(w, 3)
        p[0], p[1], p[2] = code, 1, <uchar>n
    elif code == 0x12:
        kind = _uint(item.location_type, 0xFF, True)
        area = _uint(item.area_id, 0xFFFFFFFF, True)
        n = _uint(item.direction, 0xFF, True)
        p = wb_alloc(w, 8)
        p[0], p[1], p[2] = 0x12, 6, <uchar>kind
        put32(p + 3, <uint32_t>area)
        p[7] = <uchar>n
    elif code == 0x13:
        section = _uint(item.section_id, 0xFFFFFFFF, True)
        seconds = _uint(item.drive_time_s, 0xFFFF, True)
        n = _uint(item.result, 0xFF, True)
        p = wb_alloc(w, 9)
        p[0], p[1] = 0x13, 7
        put32(p + 2, <uint32_t>section)
        put16(p + 6, <uint32_t>seconds)
        p[8] = <uchar>n
    else:
        # The rare and variable-size items: the reference's own expressions, so every edge
        # (NaN, bytes() range, signed overflow) fails the same way.
        if code == 0x05:
            value = bytes(0xFF if v is None else v for v in item.pressures)
        elif code == 0x06:
            value = item.celsius.to_bytes(2, "big", signed=True)
        elif code == 0x11:
            extra = b"" if item.area_id is None else item.area_id.to_bytes(4, "big")
            value = item.location_type.to_bytes(1, "big") + extra
        elif code == 0xE0:
            value = item.value.to_bytes(item.size, "big")
        else:
            value = item.data
        ident = item.item_id if code == 0x100 else code
        if len(value) > 0xFF:
            raise ProtocolError(_BAD_LENGTH, f"item 0x{ident:02X} of {len(value)} bytes")
        if not 0 <= ident <= 0xFF:
            raise ValueError("bytes must be in range(0, 256)")
        p = wb_alloc(w, 2)
        p[0], p[1] = ident, len(value)
        wb_write(w, value)
    return 0


cdef dict _ITEM_CODES = {
    Odometer: 0x01,
    FuelLevel: 0x02,
    TachographSpeed: 0x03,
    AlarmEventId: 0x04,
    TyrePressure: 0x05,
    CabinTemperature: 0x06,
    OverspeedAlarm: 0x11,
    AreaAlarm: 0x12,
    RouteTimeAlarm: 0x13,
    ExtendedSignals: 0x25,
    IoStatus: 0x2A,
    AnalogValues: 0x2B,
    SignalStrength: 0x30,
    SatelliteCount: 0x31,
    CustomItemsLength: 0xE0,
    RawItem: 0x100,
}
cdef tuple _ITEM_CLASSES = tuple(_ITEM_CODES.items())


def encode_additional_items(items, version):
    cdef WBuf w
    wb_init(&w)
    try:
        for item in items:
            _encode_item(&w, item)
        return _bytes(w.buf, w.len)
    finally:
        wb_free(&w)


# ============================================================================== location


cdef object _decode_location(RBuf* r, object raw):
    cdef const uchar* p = rb_need(r, BASIC_SIZE, "location basic block", raw)
    cdef uint32_t status = be32(p + 4)
    # Negate the integer, not the float, so that 0 south stays +0.0 as in the reference.
    cdef double lat = (-<long long>be32(p + 8) if status & 0x4 else <long long>be32(p + 8)) / 1e6
    cdef double lon = (-<long long>be32(p + 12) if status & 0x8 else <long long>be32(p + 12)) / 1e6
    time = _device_time(rb_need(r, 6, "location time", raw))
    return Location(
        alarm_flags=be32(p),
        status_flags=status,
        latitude=lat,
        longitude=lon,
        altitude_m=be16(p + 16),
        speed_kmh=be16(p + 18) / 10.0,
        direction=be16(p + 20),
        time=time,
        items=_decode_items(r, raw),
    )


def decode_location(body, version, base=0):
    cdef bytes b = bytes(body)
    cdef RBuf r = RBuf(<const uchar*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), 0, base)
    return _decode_location(&r, b"")


cdef int _encode_location(WBuf* w, object msg) except -1:
    cdef long long lat = _round(msg.latitude, 1e6, True, 0xFFFFFFFF, True)
    cdef long long lon = _round(msg.longitude, 1e6, True, 0xFFFFFFFF, True)
    cdef long long speed = _round(msg.speed_kmh, 10.0, False, 0xFFFF, True)
    cdef long long alarm = _uint(msg.alarm_flags, 0xFFFFFFFF, True)
    cdef long long status = _uint(msg.status_flags, 0xFFFFFFFF, True)
    cdef long long altitude = _uint(msg.altitude_m, 0xFFFF, True)
    cdef long long direction = _uint(msg.direction, 0xFFFF, True)
    cdef uchar* p = wb_alloc(w, BASIC_SIZE)
    put32(p, <uint32_t>alarm)
    put32(p + 4, <uint32_t>status)
    put32(p + 8, <uint32_t>lat)
    put32(p + 12, <uint32_t>lon)
    put16(p + 16, <uint32_t>altitude)
    put16(p + 18, <uint32_t>speed)
    put16(p + 20, <uint32_t>direction)
    time = msg.time
    raw = time.raw
    if len(raw) != 6:
        if time.utc is None:
            raise ProtocolError(_BAD_TIME, "DeviceTime has neither 6 raw bytes nor utc")
        raw = make_device_time(time.utc).raw
    wb_write(w, raw)
    for item in msg.items:
        _encode_item(w, item)
    return 0


def encode_location(msg, version):
    cdef WBuf w
    wb_init(&w)
    try:
        _encode_location(&w, msg)
        return _bytes(w.buf, w.len)
    finally:
        wb_free(&w)


cdef object _decode_batch(RBuf* r, object raw):
    cdef const uchar* p = rb_need(r, 2, "batch count", raw)
    cdef int count = be16(p)
    cdef int batch_type = rb_need(r, 1, "batch type", raw)[0]
    cdef int i, size
    cdef RBuf sub
    cdef list items = []
    for i in range(count):
        if r.len - r.pos < 2:
            raise _truncated(f"length of batch item {i}", 2, r, raw)
        size = be16(r.buf + r.pos)
        r.pos += 2
        if r.len - r.pos < size:
            raise _truncated(f"batch item {i}", size, r, raw)
        sub = RBuf(r.buf + r.pos, size, 0, rb_offset(r))
        items.append(_decode_location(&sub, raw))
        r.pos += size
    rb_finish(r, "batch location", raw)
    return BatchLocation(batch_type=batch_type, items=tuple(items))


def decode_batch_location(body, version):
    cdef bytes b = bytes(body)
    cdef RBuf r = RBuf(<const uchar*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), 0, 0)
    return _decode_batch(&r, b"")


cdef int _encode_batch(WBuf* w, object msg) except -1:
    cdef tuple items = tuple(msg.items)
    cdef long long count = _uint(len(items), 0xFFFF, True)
    cdef long long batch_type = _uint(msg.batch_type, 0xFF, True)
    cdef uchar* p = wb_alloc(w, 3)
    cdef Py_ssize_t at, size
    put16(p, <uint32_t>count)
    p[2] = <uchar>batch_type
    for item in items:
        wb_alloc(w, 2)
        at = w.len
        _encode_location(w, item)
        size = w.len - at
        if size > 0xFFFF:
            raise OverflowError("int too big to convert")
        put16(w.buf + at - 2, <uint32_t>size)
    return 0


def encode_batch_location(msg, version):
    cdef WBuf w
    wb_init(&w)
    try:
        _encode_batch(&w, msg)
        return _bytes(w.buf, w.len)
    finally:
        wb_free(&w)


# ========================================================================== simple bodies


cdef tuple _general(RBuf* r, object raw):
    cdef int serial = be16(rb_need(r, 2, "reply serial", raw))
    cdef int msg_id = be16(rb_need(r, 2, "reply msg id", raw))
    cdef int result = rb_need(r, 1, "result", raw)[0]
    rb_finish(r, "general response", raw)
    return serial, msg_id, result


cdef int _encode_general(WBuf* w, object msg) except -1:
    cdef long long serial = _uint(msg.reply_serial, 0xFFFF, True)
    cdef long long msg_id = _uint(msg.reply_msg_id, 0xFFFF, True)
    cdef long long result = _uint(msg.result, 0xFF, True)
    cdef uchar* p = wb_alloc(w, 5)
    put16(p, <uint32_t>serial)
    put16(p + 2, <uint32_t>msg_id)
    p[4] = <uchar>result
    return 0


def decode_terminal_general_response(body, version):
    cdef bytes b = bytes(body)
    cdef RBuf r = RBuf(<const uchar*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), 0, 0)
    serial, msg_id, result = _general(&r, b"")
    return TerminalGeneralResponse(reply_serial=serial, reply_msg_id=msg_id, result=result)


def decode_platform_general_response(body, version):
    cdef bytes b = bytes(body)
    cdef RBuf r = RBuf(<const uchar*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), 0, 0)
    serial, msg_id, result = _general(&r, b"")
    return PlatformGeneralResponse(reply_serial=serial, reply_msg_id=msg_id, result=result)


def encode_terminal_general_response(msg, version):
    cdef WBuf w
    wb_init(&w)
    _encode_general(&w, msg)
    return _bytes(w.buf, w.len)


encode_platform_general_response = encode_terminal_general_response


cdef int _empty(Py_ssize_t n, str what, Py_ssize_t base, object raw) except -1:
    if n:
        raise ProtocolError(_TRAILING, f"{what}: {n} bytes left over", base, raw)
    return 0


def decode_heartbeat(body, version):
    _empty(len(body), "heartbeat", 0, b"")
    return Heartbeat()


def decode_logout(body, version):
    _empty(len(body), "logout", 0, b"")
    return Logout()


def decode_query_server_time(body, version):
    _empty(len(body), "query server time", 0, b"")
    return QueryServerTime()


def encode_heartbeat(msg, version):
    return b""


encode_logout = encode_heartbeat
encode_query_server_time = encode_heartbeat


# ========================================================================= body dispatch

#: Message id -> (decode_<name>, encode_<name>): this module's functions where native.
BODY_CODECS = {
    **_ref.BODY_CODECS,
    0x0001: (decode_terminal_general_response, encode_terminal_general_response),
    0x8001: (decode_platform_general_response, encode_platform_general_response),
    0x0002: (decode_heartbeat, encode_heartbeat),
    0x0003: (decode_logout, encode_logout),
    0x0004: (decode_query_server_time, encode_query_server_time),
    0x0200: (decode_location, encode_location),
    0x0704: (decode_batch_location, encode_batch_location),
}


cdef object _decode_body(int msg_id, const uchar* p, Py_ssize_t n, int version,
                         Py_ssize_t base, object raw):
    """The typed body; ProtocolError offsets are base + position, carrying ``raw``."""
    cdef RBuf r = RBuf(p, n, 0, base)
    if msg_id == 0x0200:
        return _decode_location(&r, raw)
    if msg_id == 0x0704:
        return _decode_batch(&r, raw)
    if msg_id == 0x0002:
        _empty(n, "heartbeat", base, raw)
        return Heartbeat()
    if msg_id == 0x0001:
        serial, reply_id, result = _general(&r, raw)
        return TerminalGeneralResponse(reply_serial=serial, reply_msg_id=reply_id, result=result)
    if msg_id == 0x8001:
        serial, reply_id, result = _general(&r, raw)
        return PlatformGeneralResponse(reply_serial=serial, reply_msg_id=reply_id, result=result)
    if msg_id == 0x0003:
        _empty(n, "logout", base, raw)
        return Logout()
    if msg_id == 0x0004:
        _empty(n, "query server time", base, raw)
        return QueryServerTime()
    body = _bytes(p, n)
    codec = _ref_body_codecs.get(msg_id)
    if codec is None:
        return RawBody(data=body)
    try:
        return codec[0](body, version)
    except ProtocolError as exc:
        raise ProtocolError(exc.reason, exc.message, exc.offset + base, raw) from None


def decode_body(msg_id, body, version):
    """The typed body of ``msg_id``, or RawBody for ids this codec does not decode."""
    if msg_id not in BODY_CODECS:
        return RawBody(data=body)
    cdef bytes b = bytes(body)
    return _decode_body(msg_id, <const uchar*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b),
                        version, 0, b"")


cdef int _encode_body(WBuf* w, object msg_id, object body, object version) except -1:
    if type(body) is RawBody:
        wb_write(w, body.data)
        return 0
    if BODY_TYPES.get(msg_id) is not type(body):
        if isinstance(body, RawBody):
            wb_write(w, body.data)
            return 0
        raise ProtocolError(
            _BAD_VALUE, f"{type(body).__name__} is not the body of 0x{msg_id:04X}"
        )
    if msg_id == 0x0200:
        return _encode_location(w, body)
    if msg_id == 0x0704:
        return _encode_batch(w, body)
    if msg_id == 0x0001 or msg_id == 0x8001:
        return _encode_general(w, body)
    if msg_id == 0x0002 or msg_id == 0x0003 or msg_id == 0x0004:
        return 0
    wb_write(w, _ref_body_codecs[msg_id][1](body, version))
    return 0


def encode_body(msg_id, body, version):
    """Body bytes; ``body`` must be RawBody or the Struct type of ``msg_id``."""
    cdef WBuf w
    wb_init(&w)
    try:
        _encode_body(&w, msg_id, body, version)
        return _bytes(w.buf, w.len)
    finally:
        wb_free(&w)


# ============================================================================== framing




def checksum(data):
    """XOR of every byte (computed over the unescaped header and body)."""
    cdef const uchar[::1] view
    if type(data) is bytes:
        return _xor(<const uchar*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    try:
        view = memoryview(data).cast("B")
    except TypeError:
        return _ref.checksum(data)  # any iterable of ints, as the reference accepts
    if view.shape[0] == 0:
        return 0
    return _xor(&view[0], view.shape[0])


cdef Py_ssize_t _escaped_size(const uchar* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, extra = 0
    for i in range(n):
        if p[i] == FLAG or p[i] == ESC:
            extra += 1
    return n + extra


cdef void _escape_into(const uchar* p, Py_ssize_t n, uchar* out) noexcept nogil:
    cdef Py_ssize_t i
    cdef uchar b
    for i in range(n):
        b = p[i]
        if b == FLAG or b == ESC:
            out[0] = ESC
            out[1] = 0x02 if b == FLAG else 0x01
            out += 2
        else:
            out[0] = b
            out += 1


def escape(data):
    """0x7D -> 7D 01, then 0x7E -> 7D 02."""
    cdef bytes b = data if type(data) is bytes else bytes(data)
    cdef const uchar* p = <const uchar*>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    cdef Py_ssize_t size = _escaped_size(p, n)
    if size == n:
        return b
    out = PyBytes_FromStringAndSize(NULL, size)
    _escape_into(p, n, <uchar*>PyBytes_AS_STRING(out))
    return out


cdef Py_ssize_t _unescape_into(const uchar* p, Py_ssize_t n, uchar* out) noexcept nogil:
    """Unescaped length, or -1 - i for a 0x7D at i not followed by 01/02."""
    cdef Py_ssize_t i = 0, m = 0
    cdef uchar b
    while i < n:
        b = p[i]
        if b == ESC:
            if i + 1 >= n or (p[i + 1] != 0x01 and p[i + 1] != 0x02):
                return -1 - i
            b = FLAG if p[i + 1] == 0x02 else ESC
            i += 1
        out[m] = b
        m += 1
        i += 1
    return m


def unescape(data, offset=0):
    """Reverse :func:`escape`; a 0x7D not followed by 01/02 is BAD_ESCAPE (offset + index)."""
    cdef bytes b = data if type(data) is bytes else bytes(data)
    cdef const uchar* p = <const uchar*>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    if memchr(p, ESC, n) == NULL:
        return b
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef Py_ssize_t m = _unescape_into(p, n, <uchar*>PyBytes_AS_STRING(out))
    if m < 0:
        raise ProtocolError(
            _BAD_ESCAPE, "0x7D not followed by 01 or 02", offset + (-1 - m), data
        )
    return out[:m]


cdef int _parse_header(const uchar* p, Py_ssize_t n, Header* h, object raw) except -1:
    """Header fields of the unescaped payload p[0:n] (offsets count from 1, the raw frame's
    first header byte) and the body-length check, as the reference's ``_Header``."""
    cdef RBuf r = RBuf(p, n, 0, 1)
    cdef Py_ssize_t start, length
    h.msg_id = be16(rb_need(&r, 2, "message id", raw))
    h.attrs = be16(rb_need(&r, 2, "body attributes", raw))
    if h.attrs & ATTR_VERSION_2019:
        h.version = 2019
        h.protocol_version = rb_need(&r, 1, "protocol version", raw)[0]
        h.phone_size = 10
    else:
        h.version = 2013
        h.protocol_version = -1
        h.phone_size = 6
    start = rb_offset(&r)
    h.phone = rb_need(&r, h.phone_size, "phone", raw)
    if not is_bcd(h.phone, h.phone_size):
        raise ProtocolError(_BAD_VALUE, "phone is not BCD", start, raw)
    h.serial = be16(rb_need(&r, 2, "serial", raw))
    if h.attrs & ATTR_SUBPACKAGE:
        h.packet_total = be16(rb_need(&r, 2, "packet total", raw))
        h.packet_index = be16(rb_need(&r, 2, "packet index", raw))
    else:
        h.packet_total = -1
        h.packet_index = -1
    h.encryption = h.attrs >> 10 & 0x7
    h.reserved = h.attrs >> 15
    h.body_pos = r.pos
    h.body_len = n - r.pos
    length = h.attrs & MAX_BODY
    if h.body_len != length:
        raise ProtocolError(
            _BAD_LENGTH,
            f"attributes say body length {length}, frame has {h.body_len}",
            rb_offset(&r),
            raw,
        )
    return 0


cdef str _phone(const uchar* p, Py_ssize_t size):
    cdef char digits[20]
    cdef Py_ssize_t i
    for i in range(size):
        digits[2 * i] = c'0' + (p[i] >> 4)
        digits[2 * i + 1] = c'0' + (p[i] & 0x0F)
    return PyUnicode_DecodeASCII(digits, 2 * size, NULL)


cdef inline object _optional(int v):
    return None if v < 0 else v


def decode_frame(frame):
    """Decode one whole raw frame (0x7E ... 0x7E, escaped); verifies everything."""
    if type(frame) is not bytes:
        frame = bytes(frame)
    cdef const uchar* p = <const uchar*>PyBytes_AS_STRING(frame)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(frame)
    cdef const uchar* flag
    cdef const uchar* data
    cdef Py_ssize_t m
    cdef uchar computed, received
    cdef Header h
    cdef object unescaped = None
    if n < 3:
        raise ProtocolError(_TRUNCATED, f"{n} bytes is not a frame", 0, frame)
    if p[0] != FLAG or p[n - 1] != FLAG:
        raise ProtocolError(_BAD_START, "frame is not enclosed in 0x7E", 0, frame)
    flag = <const uchar*>memchr(p + 1, FLAG, n - 2)
    if flag != NULL:
        raise ProtocolError(_BAD_START, "0x7E inside a frame", flag - p, frame)
    data = p + 1
    m = n - 2
    if memchr(data, ESC, m) != NULL:
        unescaped = PyBytes_FromStringAndSize(NULL, m)
        m = _unescape_into(data, m, <uchar*>PyBytes_AS_STRING(unescaped))
        if m < 0:
            # The reference reports the escape error with the frame's inner bytes as raw.
            raise ProtocolError(
                _BAD_ESCAPE, "0x7D not followed by 01 or 02", -m, frame[1:n - 1]
            )
        data = <const uchar*>PyBytes_AS_STRING(unescaped)
    received = data[m - 1]
    computed = _xor(data, m - 1)
    if computed != received:
        raise ProtocolError(
            _BAD_CHECKSUM,
            f"checksum 0x{received:02X}, computed 0x{computed:02X}",
            n - 2,
            frame,
        )
    _parse_header(data, m - 1, &h, frame)
    if h.encryption == 0 and (h.packet_total < 0 or (h.packet_total == 1 and h.packet_index == 1)):
        body = _decode_body(h.msg_id, data + h.body_pos, h.body_len, h.version,
                            1 + h.body_pos, frame)
    else:
        body = RawBody(data=_bytes(data + h.body_pos, h.body_len))
    phone = _phone(h.phone, h.phone_size)
    # Fields left at their defaults are not passed: msgspec fills them, and fewer keywords
    # make the construction markedly cheaper.
    if h.encryption == 0 and h.packet_total < 0 and h.reserved == 0:
        if h.protocol_version < 0:
            return Frame(version=h.version, msg_id=h.msg_id, phone=phone, serial=h.serial,
                         body=body)
        return Frame(version=h.version, msg_id=h.msg_id, phone=phone, serial=h.serial,
                     body=body, protocol_version=h.protocol_version)
    return Frame(
        version=h.version,
        msg_id=h.msg_id,
        phone=phone,
        serial=h.serial,
        body=body,
        protocol_version=_optional(h.protocol_version),
        encryption=h.encryption,
        packet_total=_optional(h.packet_total),
        packet_index=_optional(h.packet_index),
        reserved=h.reserved,
    )


cdef bint _ascii_digits(object s) noexcept:
    cdef const char* p
    cdef Py_ssize_t i, n
    if type(s) is not str or not PyUnicode_IS_ASCII(s):
        return False
    p = <const char*>PyUnicode_DATA(s)
    n = PyUnicode_GET_LENGTH(s)
    for i in range(n):
        if not c'0' <= p[i] <= c'9':
            return False
    return n > 0


cdef int _pack_phone(uchar* out, object digits, Py_ssize_t size) except -1:
    cdef const char* s
    cdef Py_ssize_t n, i, pad
    if not _ascii_digits(digits) or len(digits) > 2 * size:
        # The reference's own test and packing, for its exact outcome on odd input.
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 2 * size:
            raise ProtocolError(_BAD_VALUE, f"phone: {digits!r} is not <= {2 * size} digits")
        packed = bytes.fromhex(digits.rjust(2 * size, "0"))
        memcpy(out, PyBytes_AS_STRING(packed), size)
        return 0
    s = <const char*>PyUnicode_DATA(digits)
    n = PyUnicode_GET_LENGTH(digits)
    pad = 2 * size - n
    for i in range(size):
        out[i] = 0
    for i in range(n):
        out[(pad + i) >> 1] |= (s[i] - c'0') << (0 if (pad + i) & 1 else 4)
    return 0


def encode_frame(msg):
    """Encode a Frame: body, header with the body length, checksum, escaping and flags."""
    cdef WBuf w
    cdef uchar* p
    cdef bint v2019 = msg.version >= 2019
    cdef object total = msg.packet_total
    cdef Py_ssize_t header_size = (17 if v2019 else 12) + (0 if total is None else 4)
    cdef Py_ssize_t body_len, size
    cdef long long attrs
    wb_init(&w)
    try:
        wb_alloc(&w, header_size)
        try:
            _encode_body(&w, msg.msg_id, msg.body, msg.version)
            body_len = w.len - header_size
            if body_len > MAX_BODY:
                raise ProtocolError(_BAD_LENGTH, f"body of {body_len} bytes (max 1023)")
            attrs = (
                body_len
                | _uint(msg.encryption & 0x7, 0x7, False) << 10
                | (0 if total is None else ATTR_SUBPACKAGE)
                | (ATTR_VERSION_2019 if v2019 else 0)
                | _uint(msg.reserved & 1, 1, False) << 15
            )
            p = w.buf
            put16(p, <uint32_t>_uint(msg.msg_id, 0xFFFF, False))
            put16(p + 2, <uint32_t>attrs)
            p += 4
            if v2019:
                pv = msg.protocol_version
                p[0] = <uchar>(1 if pv is None else _uint(pv, 0xFF, False))
                p += 1
            _pack_phone(p, msg.phone, 10 if v2019 else 6)
            p += 10 if v2019 else 6
            put16(p, <uint32_t>_uint(msg.serial, 0xFFFF, False))
            if total is not None:
                index = msg.packet_index
                put16(p + 2, <uint32_t>_uint(total, 0xFFFF, True))
                put16(p + 4, <uint32_t>(0 if not index else _uint(index, 0xFFFF, True)))
        except ProtocolError:
            raise
        except (_struct_error, OverflowError, UnicodeEncodeError, ValueError) as exc:
            raise ProtocolError(_BAD_VALUE, f"cannot encode: {exc}") from exc
        p = wb_alloc(&w, 1)
        p[0] = _xor(w.buf, w.len - 1)
        size = _escaped_size(w.buf, w.len)
        out = PyBytes_FromStringAndSize(NULL, size + 2)
        p = <uchar*>PyBytes_AS_STRING(out)
        p[0] = FLAG
        _escape_into(w.buf, w.len, p + 1)
        p[size + 1] = FLAG
        return out
    finally:
        wb_free(&w)


# ========================================================================== stream reader

cdef enum:
    SEEK = 0  # before the first flag: bytes are garbage
    IN_FRAME = 1  # buffer starts with a flag
    SKIP = 2  # inside an over-size frame: drop until the next flag


cdef int _verify(const uchar* p, Py_ssize_t n, object raw) except -1:
    """Raise why the candidate p[0:n] (flags at both ends, none inside) is not a good frame:
    length, escaping, checksum, header; the body is not decoded (reference: ``_check``)."""
    cdef uchar head[24]  # the unescaped header: at most 21 bytes are read from it
    cdef Py_ssize_t i = 1, m = 0, end = n - 1
    cdef uchar b, acc = 0, last = 0
    cdef Header h
    if n < MIN_FRAME:
        raise ProtocolError(_TRUNCATED, f"{n} bytes is too short", 0, raw)
    while i < end:
        b = p[i]
        if b == ESC:
            if i + 1 >= end or (p[i + 1] != 0x01 and p[i + 1] != 0x02):
                raise ProtocolError(_BAD_ESCAPE, "0x7D not followed by 01 or 02", i, raw[1:end])
            b = FLAG if p[i + 1] == 0x02 else ESC
            i += 1
        if m < 24:
            head[m] = b
        acc ^= b
        last = b
        m += 1
        i += 1
    if acc != 0:  # XOR of the payload and the checksum byte
        raise ProtocolError(
            _BAD_CHECKSUM,
            f"checksum 0x{last:02X}, computed 0x{acc ^ last:02X}",
            n - 2,
            raw,
        )
    _parse_header(head, m - 1, &h, raw)
    return 0


cdef class FrameReader


cdef class _Events:
    """Iterator draining a FrameReader's next_event()."""

    cdef FrameReader _reader

    def __cinit__(self, FrameReader reader):
        self._reader = reader

    def __iter__(self):
        return self

    def __next__(self):
        event = self._reader._next()
        if event is None:
            raise StopIteration
        return event


cdef class FrameReader:
    """Split a byte stream into raw JT/T 808 frames (0x7E ... 0x7E, still escaped).

    0x7E is a delimiter: the bytes between two flags are a frame if they check out. A flag that
    closed a frame may also open the next (shared flags); ``7E 7E`` is an empty frame, ignored.
    Bytes between a closing flag and the next flag that do not form a frame are reported as
    garbage (without the flags, which belong to the frames around them).
    """

    cdef bytearray _buf
    cdef Py_ssize_t _start  # bytes of _buf already handed out
    cdef Py_ssize_t _scan  # relative to _start: bytes already searched for a flag
    cdef Py_ssize_t _max
    cdef int _state
    cdef bint _shared  # the flag at the front also closed the previous segment

    def __init__(self, max_frame_size=DEFAULT_MAX_FRAME):
        if max_frame_size < MIN_FRAME:
            raise ValueError(f"max_frame_size must be at least {MIN_FRAME}")
        self._max = max_frame_size
        self._buf = bytearray()
        self._start = 0
        self._scan = 0
        self._state = SEEK
        self._shared = False

    @property
    def buffered(self):
        """Bytes held, waiting for more data."""
        return PyByteArray_GET_SIZE(self._buf) - self._start

    def feed(self, data):
        if self._start:
            del self._buf[:self._start]
            self._start = 0
        self._buf += data

    def __iter__(self):
        return _Events(self)

    def next_event(self):
        """The next frame or BadFrame, or None when more data is needed."""
        return self._next()

    cdef object _next(self):
        while True:
            if self._state == IN_FRAME:
                event = self._next_in_frame()
            else:
                event = self._next_outside()
            if event is not _AGAIN:
                return event

    cdef bytes _cut(self, Py_ssize_t n):
        out = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self._buf) + self._start, n)
        self._drop(n)
        return out

    cdef void _drop(self, Py_ssize_t n) noexcept:
        self._start += n
        self._scan = self._scan - n if self._scan > n else 0

    cdef Py_ssize_t _find_flag(self, Py_ssize_t start) noexcept:
        cdef const char* base = PyByteArray_AS_STRING(self._buf) + self._start
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self._buf) - self._start
        cdef const char* hit
        if self._scan > start:
            start = self._scan
        if start >= size:
            self._scan = size
            return -1
        hit = <const char*>memchr(base + start, FLAG, size - start)
        if hit == NULL:
            self._scan = size
            return -1
        self._scan = hit - base
        return self._scan

    cdef object _next_outside(self):
        """SEEK / SKIP: report bytes up to the next flag (garbage or too_large tail)."""
        cdef str reason = _GARBAGE if self._state == SEEK else _TOO_LARGE
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self._buf) - self._start
        cdef Py_ssize_t i = self._find_flag(0)
        if i == -1:
            if size < self._max:
                return None
            return BadFrame(self._cut(size), reason, 0, "no 0x7E flag")
        self._shared = self._state == SKIP
        self._state = IN_FRAME
        if i == 0:
            return _AGAIN
        return BadFrame(self._cut(i), reason, 0, "bytes outside a frame")

    cdef object _next_in_frame(self):
        """The buffer starts with a flag: find the closing flag and check the segment."""
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self._buf) - self._start
        cdef Py_ssize_t j = self._find_flag(1)
        cdef bint shared
        cdef bytes candidate
        if j == -1 or j + 1 > self._max:
            if j == -1 and size < self._max:
                return None
            self._state = SKIP
            raw = self._cut(size if size < self._max else self._max)
            return BadFrame(raw, _TOO_LARGE, 0, f"frame over {self._max} bytes")
        if j == 1:  # 7E 7E: the second flag opens the next frame
            self._drop(1)
            self._shared = False
            return _AGAIN
        candidate = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self._buf) + self._start, j + 1)
        shared = self._shared
        self._shared = True
        self._drop(j)  # the closing flag may open the next frame
        try:
            _verify(<const uchar*>PyBytes_AS_STRING(candidate), j + 1, candidate)
        except ProtocolError as error:
            if shared:
                return BadFrame(candidate[1:j], _GARBAGE, 0, error.message)
            return BadFrame(candidate, error.reason.value, error.offset, error.message)
        return candidate
