# Shared by the Cython codecs and the fused fast path (included, not imported, so the calls stay
# C calls): the XOR checksum, calendar checks and GMT+8 wall clock -> UTC datetime without
# Python-level datetime arithmetic (equal to ``common.gmt8_to_utc``). The including module
# cimports ``memcpy``, ``uint8_t``/``uint64_t`` and ``datetime_new`` and defines ``_UTC``.


cdef inline uint8_t _xor(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """XOR of n bytes, eight at a time (the fold is byte-order independent)."""
    cdef uint64_t acc = 0
    cdef uint64_t word
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&word, p + i, 8)
        acc ^= word
        i += 8
    acc ^= acc >> 32
    acc ^= acc >> 16
    acc ^= acc >> 8
    cdef uint8_t x = <uint8_t>acc
    while i < n:
        x ^= p[i]
        i += 1
    return x

cdef inline int _days_in_month(int year, int month) noexcept nogil:
    if month == 2:
        return 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    if month == 4 or month == 6 or month == 9 or month == 11:
        return 30
    return 31


cdef object _gmt8_fields_to_utc(int year, int month, int day, int hour, int minute, int second):
    """The UTC datetime of a GMT+8 wall-clock time, None when it is not a calendar time."""
    if (month < 1 or month > 12 or day < 1 or day > _days_in_month(year, month)
            or hour < 0 or hour > 23 or minute < 0 or minute > 59 or second < 0 or second > 59):
        return None
    hour -= 8
    if hour < 0:
        hour += 24
        day -= 1
        if day == 0:
            month -= 1
            if month == 0:
                month = 12
                year -= 1
            day = _days_in_month(year, month)
    return datetime_new(year, month, day, hour, minute, second, 0, _UTC)
