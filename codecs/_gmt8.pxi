# Shared by the Cython codecs and the fused fast path (included, not imported, so the calls stay
# C calls): calendar checks and GMT+8 wall clock -> UTC datetime, without Python-level datetime
# arithmetic. Equal to ``common.gmt8_to_utc``. Needs ``datetime_new`` and ``_UTC`` in the
# including module.

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
