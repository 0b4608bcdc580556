# cython: language_level=3
"""Records -> PostgreSQL binary COPY rows, in C.

asyncpg's ``copy_records_to_table`` takes tuples and encodes each value through its codec
machinery: about 9 us per wide ``vehicle_realtime`` row on this machine, plus ~8 us to build the
tuple from the record. :class:`CopyEncoder` reads the record's fields straight from their slots
(offsets from the Struct class's member descriptors, as the codecs' ``_Spec`` does) and writes
the binary COPY format (``PGCOPY`` header, per row an int16 field count, then per field an int32
length, -1 for NULL, and the value in network order) into one buffer; the writer hands the
chunks to ``copy_to_table(format="binary")``.

A column takes its value from the first of its attributes that is not None, then the batch's
``now`` when the column falls back to the write time; jsonb/json columns flagged ``json`` are
encoded with msgspec. Supported column types: the ones silkgate's migrations use (see
``_TYPES``); :func:`type_code` returns -1 for anything else and the writer keeps asyncpg's path
for that table. A value the column cannot hold raises ``ValueError``/``OverflowError``/
``TypeError``: the pipeline then blames the records (it isolates and dead-letters them).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.datetime cimport (
    PyDateTime_Check,
    PyDateTime_DATE_GET_HOUR,
    PyDateTime_DATE_GET_MICROSECOND,
    PyDateTime_DATE_GET_MINUTE,
    PyDateTime_DATE_GET_SECOND,
    PyDateTime_GET_DAY,
    PyDateTime_GET_MONTH,
    PyDateTime_GET_YEAR,
    datetime_tzinfo,
    import_datetime,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from datetime import UTC
from types import MemberDescriptorType
from uuid import UUID

import_datetime()

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

cdef object _UTC = UTC
cdef object _UUID = UUID

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"

cdef enum:
    T_TEXT = 0
    T_TSTZ = 1
    T_INT2 = 2
    T_INT4 = 3
    T_INT8 = 4
    T_FLOAT4 = 5
    T_FLOAT8 = 6
    T_BOOL = 7
    T_BYTEA = 8
    T_JSON = 9
    T_JSONB = 10
    T_TEXT_ARRAY = 11
    T_UUID = 12

_TYPES = {
    "text": T_TEXT,
    "timestamp with time zone": T_TSTZ,
    "smallint": T_INT2,
    "integer": T_INT4,
    "bigint": T_INT8,
    "real": T_FLOAT4,
    "double precision": T_FLOAT8,
    "boolean": T_BOOL,
    "bytea": T_BYTEA,
    "json": T_JSON,
    "jsonb": T_JSONB,
    "text[]": T_TEXT_ARRAY,
    "uuid": T_UUID,
}

# 2000-01-01 (PostgreSQL's epoch) as days since 0000-03-01 (see _days_from_civil)
cdef int64_t _PG_EPOCH_DAYS = 730425
cdef int32_t _TEXT_OID = 25


def type_code(str pg_type):
    """The encoder's code for a ``format_type()`` name; -1 when it cannot encode that type."""
    return _TYPES.get(pg_type, -1)


cdef inline int64_t _days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    """Days since 0000-03-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    if m <= 2:
        y -= 1
    cdef int64_t era = (y if y >= 0 else y - 399) // 400
    cdef int64_t yoe = y - era * 400
    cdef int64_t doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe


cdef struct Buf:
    char* data
    Py_ssize_t len
    Py_ssize_t cap


cdef int _grow(Buf* b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap * 2 if b.cap else 65536
    while cap < b.len + need:
        cap *= 2
    cdef char* data = <char*>PyMem_Realloc(b.data, cap)
    if data is NULL:
        raise MemoryError()
    b.data = data
    b.cap = cap
    return 0


cdef inline int _reserve(Buf* b, Py_ssize_t need) except -1:
    if b.len + need > b.cap:
        _grow(b, need)
    return 0


cdef inline void _u16(Buf* b, uint16_t v) noexcept:
    cdef uint8_t* p = <uint8_t*>(b.data + b.len)
    p[0] = v >> 8
    p[1] = v & 0xFF
    b.len += 2


cdef inline void _u32(Buf* b, uint32_t v) noexcept:
    cdef uint8_t* p = <uint8_t*>(b.data + b.len)
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF
    b.len += 4


cdef inline void _u64(Buf* b, uint64_t v) noexcept:
    _u32(b, <uint32_t>(v >> 32))
    _u32(b, <uint32_t>(v & 0xFFFFFFFF))


cdef inline int _bytes(Buf* b, const char* p, Py_ssize_t n, int prefix) except -1:
    """A length-prefixed value (with ``prefix`` >= 0 written as one leading byte, for jsonb)."""
    cdef Py_ssize_t total = n + (1 if prefix >= 0 else 0)
    if total > 0x7FFFFFFF:
        raise ValueError("value too large for a COPY field")
    _reserve(b, 4 + total)
    _u32(b, <uint32_t>total)
    if prefix >= 0:
        b.data[b.len] = <char>prefix
        b.len += 1
    memcpy(b.data + b.len, p, n)
    b.len += n
    return 0


cdef int _text(Buf* b, object value, int prefix) except -1:
    cdef Py_ssize_t n
    cdef const char* p
    if isinstance(value, str):
        p = PyUnicode_AsUTF8AndSize(value, &n)
        return _bytes(b, p, n, prefix)
    if isinstance(value, bytes):
        return _bytes(b, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), prefix)
    raise TypeError(f"expected str, got {type(value).__name__}")


cdef int _bytea(Buf* b, object value) except -1:
    cdef const uint8_t[::1] view
    if isinstance(value, bytes):
        return _bytes(b, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), -1)
    if isinstance(value, (bytearray, memoryview)):
        view = memoryview(value).cast("B")
        if view.shape[0] == 0:
            return _bytes(b, "", 0, -1)
        return _bytes(b, <const char*>&view[0], view.shape[0], -1)
    raise TypeError(f"expected bytes, got {type(value).__name__}")


cdef int _timestamptz(Buf* b, object value) except -1:
    if not PyDateTime_Check(value):
        raise TypeError(f"expected datetime, got {type(value).__name__}")
    cdef int64_t days = _days_from_civil(
        PyDateTime_GET_YEAR(value), PyDateTime_GET_MONTH(value), PyDateTime_GET_DAY(value)
    ) - _PG_EPOCH_DAYS
    cdef int64_t us = (
        ((days * 24 + PyDateTime_DATE_GET_HOUR(value)) * 60 + PyDateTime_DATE_GET_MINUTE(value))
        * 60 + PyDateTime_DATE_GET_SECOND(value)
    ) * 1000000 + PyDateTime_DATE_GET_MICROSECOND(value)
    tz = datetime_tzinfo(value)
    if tz is not _UTC:
        if tz is None:
            raise ValueError("naive datetime for a timestamptz column (times are UTC-aware)")
        offset = value.utcoffset()
        us -= (offset.days * 86400 + offset.seconds) * 1000000 + offset.microseconds
    _reserve(b, 12)
    _u32(b, 8)
    _u64(b, <uint64_t>us)
    return 0


cdef int _integer(Buf* b, object value, int size) except -1:
    if not isinstance(value, int):
        raise TypeError(f"expected int, got {type(value).__name__}")
    cdef int64_t v = value  # OverflowError beyond int64
    if size == 2 and not -32768 <= v <= 32767:
        raise OverflowError(f"{v} out of range for smallint")
    if size == 4 and not -2147483648 <= v <= 2147483647:
        raise OverflowError(f"{v} out of range for integer")
    _reserve(b, 4 + size)
    _u32(b, size)
    if size == 2:
        _u16(b, <uint16_t><int16_t>v)
    elif size == 4:
        _u32(b, <uint32_t><int32_t>v)
    else:
        _u64(b, <uint64_t>v)
    return 0


cdef union F4:
    float f
    uint32_t u


cdef union F8:
    double f
    uint64_t u


cdef int _floating(Buf* b, object value, int size) except -1:
    cdef double d = value  # TypeError for anything not a number
    cdef F4 f4
    cdef F8 f8
    _reserve(b, 4 + size)
    _u32(b, size)
    if size == 4:
        f4.f = <float>d
        _u32(b, f4.u)
    else:
        f8.f = d
        _u64(b, f8.u)
    return 0


cdef int _text_array(Buf* b, object value) except -1:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list of str, got {type(value).__name__}")
    cdef Py_ssize_t start = b.len
    cdef Py_ssize_t n = len(value)
    cdef bint nulls = any(v is None for v in value)
    _reserve(b, 4 + 20)
    b.len += 4  # the field length, written at the end
    _u32(b, 1 if n else 0)  # dimensions (an empty array has none)
    _u32(b, 1 if nulls else 0)
    _u32(b, <uint32_t>_TEXT_OID)
    if n:
        _reserve(b, 8)
        _u32(b, <uint32_t>n)
        _u32(b, 1)  # lower bound
    for v in value:
        if v is None:
            _reserve(b, 4)
            _u32(b, 0xFFFFFFFF)
        else:
            _text(b, v, -1)
    cdef Py_ssize_t end = b.len
    b.len = start
    _u32(b, <uint32_t>(end - start - 4))
    b.len = end
    return 0


cdef int _uuid(Buf* b, object value) except -1:
    if isinstance(value, _UUID):
        raw = value.bytes
    elif isinstance(value, str):
        raw = _UUID(value).bytes
    else:
        raise TypeError(f"expected UUID, got {type(value).__name__}")
    return _bytes(b, PyBytes_AS_STRING(raw), 16, -1)


cdef enum:
    _MAX_COLUMNS = 96
    _MAX_SOURCES = 4  # attributes tried per column


cdef class CopyEncoder:
    """Encodes records of one Struct class as binary COPY rows for a fixed column list.

    ``columns``: per column ``(type_code, attrs, now_fallback, json)``: the value is the first
    attribute in ``attrs`` that is not None, else the batch's ``now`` when ``now_fallback``,
    else NULL; ``json`` columns hold any msgspec-encodable value, encoded with ``json_encode``
    (which returns bytes)."""

    cdef object record_type
    cdef object json_encode
    cdef Py_ssize_t ncols
    cdef int kind[_MAX_COLUMNS]
    cdef bint now_fallback[_MAX_COLUMNS]
    cdef bint json[_MAX_COLUMNS]
    cdef int nsources[_MAX_COLUMNS]
    cdef Py_ssize_t slot[_MAX_COLUMNS][_MAX_SOURCES]  # -1: read with getattr()
    cdef tuple names  # per column, its attribute names
    cdef Buf buf

    def __cinit__(self, record_type, columns, json_encode):
        if len(columns) > _MAX_COLUMNS:
            raise ValueError(f"at most {_MAX_COLUMNS} columns")
        self.record_type = record_type
        self.json_encode = json_encode
        self.ncols = len(columns)
        names = []
        for i, (code, attrs, now_fallback, json) in enumerate(columns):
            if not 0 <= code <= T_UUID:
                raise ValueError(f"column {i}: unsupported type code {code}")
            if not 1 <= len(attrs) <= _MAX_SOURCES:
                raise ValueError(f"column {i}: 1 to {_MAX_SOURCES} attributes")
            self.kind[i] = code
            self.now_fallback[i] = now_fallback
            self.json[i] = json
            self.nsources[i] = len(attrs)
            for j, name in enumerate(attrs):
                self.slot[i][j] = _slot(record_type, name)
            names.append(tuple(attrs))
        self.names = tuple(names)

    def __dealloc__(self):
        PyMem_Free(self.buf.data)

    def rows(self, list records, Py_ssize_t start, Py_ssize_t stop, now):
        """The binary COPY rows of ``records[start:stop]`` (no header or trailer)."""
        cdef Py_ssize_t i
        stop = min(stop, len(records))
        self.buf.len = 0
        for i in range(start, stop):
            self._row(records[i], now)
        return PyBytes_FromStringAndSize(self.buf.data, self.buf.len)

    cdef int _row(self, object record, object now) except -1:
        cdef Buf* b = &self.buf
        cdef Py_ssize_t c, j
        cdef bint exact = type(record) is self.record_type
        cdef PyObject* raw
        _reserve(b, 2)
        _u16(b, <uint16_t>self.ncols)
        for c in range(self.ncols):
            value = None
            for j in range(self.nsources[c]):
                if exact and self.slot[c][j] >= 0:
                    raw = (<PyObject**>((<char*><PyObject*>record) + self.slot[c][j]))[0]
                    value = <object>raw if raw is not NULL else None
                else:
                    value = getattr(record, <str>(<tuple>self.names[c])[j])
                if value is not None:
                    break
            if value is None and self.now_fallback[c]:
                value = now
            if value is None:
                _reserve(b, 4)
                _u32(b, 0xFFFFFFFF)
                continue
            self._value(b, c, value)
        return 0

    cdef int _value(self, Buf* b, Py_ssize_t c, object value) except -1:
        cdef int kind = self.kind[c]
        if kind == T_TEXT:
            return _text(b, value, -1)
        if kind == T_TSTZ:
            return _timestamptz(b, value)
        if kind == T_FLOAT4:
            return _floating(b, value, 4)
        if kind == T_FLOAT8:
            return _floating(b, value, 8)
        if kind == T_INT2:
            return _integer(b, value, 2)
        if kind == T_INT4:
            return _integer(b, value, 4)
        if kind == T_INT8:
            return _integer(b, value, 8)
        if kind == T_BOOL:
            if value is not True and value is not False:
                raise TypeError(f"expected bool, got {type(value).__name__}")
            _reserve(b, 5)
            _u32(b, 1)
            b.data[b.len] = 1 if value is True else 0
            b.len += 1
            return 0
        if kind == T_BYTEA:
            return _bytea(b, value)
        if kind == T_JSON or kind == T_JSONB:
            if self.json[c]:
                value = self.json_encode(value)
            return _text(b, value, 1 if kind == T_JSONB else -1)
        if kind == T_TEXT_ARRAY:
            return _text_array(b, value)
        return _uuid(b, value)


cdef Py_ssize_t _slot(object cls, str name) except -2:
    """The slot offset of ``cls``'s field ``name``; -1 when it has none (read with getattr)."""
    for klass in cls.__mro__:
        desc = klass.__dict__.get(name)
        if desc is not None:
            if type(desc) is MemberDescriptorType:
                return (<PyMemberDescrObject*>desc).d_member.offset
            return -1
    raise AttributeError(f"{cls.__name__} has no field {name!r}")
