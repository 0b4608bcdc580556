# Read and write buffers of the GB/T 32960 accelerator, included by _accel.pyx.
#
# Reading goes through RBuf, a {const uint8_t*, pos, end} view in the asyncpg FRBuffer style:
# every read is preceded by one rb_need() for its whole fixed-size group, so the unchecked
# rb_u8/rb_u16/rb_u32 never run past `end` (setup.py compiles with boundscheck off).
# Writing goes through WBuf, a PyMem-backed growable C buffer.
#
# (A .pxi rather than _accel.pxd: setup.py maps gateway.codecs to codecs/, so Cython would look
# for the module's own .pxd under gateway/codecs/gbt32960/ and not find it.)

from cpython.mem cimport PyMem_Realloc
from libc.stdint cimport uint8_t, uint16_t, uint32_t


ctypedef struct RBuf:
    const uint8_t* buf   # first byte of the frame (offsets in errors are frame offsets)
    Py_ssize_t pos       # next byte to read
    Py_ssize_t end       # one past the last readable byte (the BCC is excluded)


ctypedef struct WBuf:
    uint8_t* buf
    Py_ssize_t len
    Py_ssize_t cap


cdef int rb_truncated(RBuf* b, Py_ssize_t n, str what) except -1:
    raise _ProtocolError(_R_TRUNCATED, f"{what}: need {n} bytes, have {b.end - b.pos}", b.pos)


cdef inline int rb_need(RBuf* b, Py_ssize_t n, str what) except -1:
    """TRUNCATED (at the current offset) unless n bytes remain."""
    if n > b.end - b.pos:
        return rb_truncated(b, n, what)
    return 0


cdef inline uint8_t rb_u8(RBuf* b) noexcept:
    cdef uint8_t v = b.buf[b.pos]
    b.pos += 1
    return v


cdef inline uint16_t rb_u16(RBuf* b) noexcept:
    cdef const uint8_t* p = b.buf + b.pos
    b.pos += 2
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t rb_u32(RBuf* b) noexcept:
    cdef const uint8_t* p = b.buf + b.pos
    b.pos += 4
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef int wb_grow(WBuf* w, Py_ssize_t n) except -1:
    cdef Py_ssize_t cap = w.cap * 2
    if cap < w.len + n:
        cap = w.len + n
    cdef uint8_t* buf = <uint8_t*>PyMem_Realloc(w.buf, cap)
    if buf is NULL:
        raise MemoryError()
    w.buf = buf
    w.cap = cap
    return 0


cdef inline int wb_reserve(WBuf* w, Py_ssize_t n) except -1:
    if w.len + n > w.cap:
        return wb_grow(w, n)
    return 0


cdef inline int wb_u8(WBuf* w, uint8_t v) except -1:
    wb_reserve(w, 1)
    w.buf[w.len] = v
    w.len += 1
    return 0


cdef inline int wb_u16(WBuf* w, uint16_t v) except -1:
    wb_reserve(w, 2)
    w.buf[w.len] = <uint8_t>(v >> 8)
    w.buf[w.len + 1] = <uint8_t>v
    w.len += 2
    return 0


cdef inline int wb_u32(WBuf* w, uint32_t v) except -1:
    wb_reserve(w, 4)
    w.buf[w.len] = <uint8_t>(v >> 24)
    w.buf[w.len + 1] = <uint8_t>(v >> 16)
    w.buf[w.len + 2] = <uint8_t>(v >> 8)
    w.buf[w.len + 3] = <uint8_t>v
    w.len += 4
    return 0
