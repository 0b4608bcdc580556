# cython: language_level=3
"""Fused GB/T 32960 decode + normalize: realtime (0x02) / reissue (0x03) frame bytes -> records.

``realtime_records(frame)`` is equal (``==``) to
``gateway.normalize.normalize(gateway.codecs.gbt32960.decode_frame(frame))`` and raises the same
``ProtocolError`` (reason, offset, raw), but reads the hot blocks (vehicle, motors, engine,
position, extremes, alarm, cell voltages, probe temperatures, custom) straight from the bytes into
the records: no message Structs in between, cell/probe min/max/mean computed in C over the raw
bytes, and the packed ``cell_voltages`` / ``probe_temps`` built with one allocation each. The rare
blocks (fuel cell, super-capacitor, signature) become the message Structs that ``extra`` holds.

Everything else goes through the slow path ``normalize_gbt32960(_accel.decode_frame(frame))``:
frames that are not a plain realtime/reissue command (responses, other commands, encrypted), a
device time that is not a calendar time, and any input the parser finds bad -- so the error raised
is exactly the accelerator's (the parser itself never raises ProtocolError).

Building records: the record Structs are ``kw_only``, and msgspec matches keyword arguments
against the fields one by one (about 1.3 us for VehicleRealtime's ~50 fields). So each Struct
class gets a template instance, made once through its constructor; a record starts as the
template's ``__copy__()`` (msgspec's C copy: allocate + INCREF each field) and its fields are then
written straight into their slots (offsets from the class's member descriptors, as
``_accel._Spec`` reads them). Every mutable field (lists, dicts) is always replaced by a fresh
object, so no record shares a container with the template or another record.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.datetime cimport datetime_new, import_datetime
from cpython.float cimport PyFloat_FromDouble
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from datetime import UTC, datetime
from types import MemberDescriptorType

from gateway import records as _rec
from gateway.codecs.common import ABNORMAL, INVALID
from gateway.codecs.gbt32960 import _accel
from gateway.codecs.gbt32960 import constants as _C
from gateway.codecs.gbt32960 import layouts as _L
from gateway.codecs.gbt32960 import messages as _m
from gateway.codecs.gbt32960 import reference as _ref

import_datetime()

__all__ = ["realtime_records"]

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member


cdef object _UTC = UTC
cdef str _ABNORMAL = ABNORMAL
cdef str _INVALID = INVALID
cdef str _GBT = "gbt32960"
cdef object _decode_frame = _accel.decode_frame
cdef object _decode_text = _ref.decode_text
cdef object _alarm_names = _C.alarm_names
cdef object _slow_normalize = None  # gateway.normalize.normalize_gbt32960, imported on first use
cdef object _RCustomBlock = _rec.CustomBlock
cdef object _RAlarm = _rec.Alarm
cdef object _MSignature = _m.Signature
cdef object _MFuelCellStacks = _m.FuelCellStacks


class _Bad(Exception):
    """Raised by the parser on any input it cannot read: the slow path raises the real error."""


cdef object _BAD = _Bad


cdef enum:
    HEADER_SIZE = 24
    MAX_DATA_LENGTH = 65531
    MAX_SEGMENTS = 256  # packs of cells / probes per frame read natively (more: slow path)


# --------------------------------------------------------------------------- slots


cdef Py_ssize_t _slot(object cls, str name) except -1:
    """Offset of a Struct field's slot in the instance (from its member descriptor)."""
    for klass in cls.__mro__:
        desc = klass.__dict__.get(name)
        if desc is not None:
            if type(desc) is MemberDescriptorType:
                return (<PyMemberDescrObject*>desc).d_member.offset
            break
    raise TypeError(f"{cls.__name__}.{name} is not a slot field")


cdef inline void _set(object obj, Py_ssize_t off, object value) noexcept:
    """obj.<field at off> = value, on a fresh object of the exact class (no checks)."""
    cdef PyObject** p = <PyObject**>((<char*><PyObject*>obj) + off)
    cdef PyObject* old = p[0]
    Py_INCREF(value)
    p[0] = <PyObject*>value
    Py_XDECREF(old)


cdef inline object _get(object obj, Py_ssize_t off):
    return <object>(<PyObject**>((<char*><PyObject*>obj) + off))[0]


cdef object _copier(object template):
    """The bound ``__copy__`` of a template instance (checked to copy to the exact class)."""
    copy = template.__copy__
    if type(copy()) is not type(template):
        raise TypeError(f"{type(template).__name__}.__copy__ does not copy")
    return copy


# --------------------------------------------------------------------------- read buffer


ctypedef struct RBuf:
    const uint8_t* buf
    Py_ssize_t pos
    Py_ssize_t end


cdef inline int _need(RBuf* b, Py_ssize_t n) except -1:
    if n > b.end - b.pos:
        raise _BAD
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


cdef inline object _bytes(RBuf* b, Py_ssize_t n):
    cdef object raw = PyBytes_FromStringAndSize(<const char*>(b.buf + b.pos), n)
    b.pos += n
    return raw


cdef object _counted(RBuf* b, int count_size, int item_size):
    """A BYTE/WORD count followed by that many items, returned raw."""
    cdef Py_ssize_t count
    _need(b, count_size)
    count = rb_u8(b) if count_size == 1 else rb_u16(b)
    _need(b, count * item_size)
    return _bytes(b, count * item_size)


# --------------------------------------------------------------------------- field specs


cdef enum:
    _MAX_SPEC = 16


cdef class _Spec:
    """Wire fields (quality name, target field, size, div, offset, sentinel) of one target class.

    Reading one writes ``(raw - offset) / div`` (int when div is 0) into the target's slot, or
    None plus ``quality[name]`` for a sentinel (0xFE.. abnormal incl. the 0xFEFE fill, 0xFF..
    invalid), exactly as ``reference._decode_fields``.
    """

    cdef tuple qnames
    cdef Py_ssize_t n
    cdef Py_ssize_t total
    cdef Py_ssize_t slot[_MAX_SPEC]
    cdef int size[_MAX_SPEC]
    cdef long div[_MAX_SPEC]
    cdef long long off[_MAX_SPEC]
    cdef bint sentinel[_MAX_SPEC]

    def __cinit__(self, cls, tuple fields):
        cdef Py_ssize_t i
        if len(fields) > _MAX_SPEC:
            raise ValueError("too many fields")
        self.qnames = tuple(f[0] for f in fields)
        self.n = len(fields)
        self.total = 0
        for i, (qname, target, size, div, off, sentinel) in enumerate(fields):
            self.slot[i] = _slot(cls, target)
            self.size[i] = size
            self.div[i] = div
            self.off[i] = off
            self.sentinel[i] = sentinel
            self.total += size


cdef int _read(RBuf* b, _Spec s, object obj, dict q) except -1:
    """Every field of s into obj's slots (the caller has checked s.total bytes remain)."""
    cdef Py_ssize_t i
    cdef uint32_t v, invalid
    cdef bint bad
    for i in range(s.n):
        if s.size[i] == 1:
            v = rb_u8(b)
            invalid = 0xFF
            bad = v >= 0xFE
        elif s.size[i] == 2:
            v = rb_u16(b)
            invalid = 0xFFFF
            bad = v >= 0xFFFE or v == 0xFEFE
        else:
            v = rb_u32(b)
            invalid = 0xFFFFFFFF
            bad = v >= 0xFFFFFFFE or v == 0xFEFEFEFE
        if bad and s.sentinel[i]:
            q[<str>s.qnames[i]] = _INVALID if v == invalid else _ABNORMAL
            _set(obj, s.slot[i], None)
        elif s.div[i]:
            _set(obj, s.slot[i], PyFloat_FromDouble(<double>(<long long>v - s.off[i]) / s.div[i]))
        else:
            _set(obj, s.slot[i], <long long>v - s.off[i])
    return 0


cdef inline object _word_f(uint16_t v, double div, long off):
    """A sentinel-checked scaled WORD (quality not kept: the callers drop it)."""
    if v >= 0xFFFE or v == 0xFEFE:
        return None
    return <double>(<long>v - off) / div


cdef inline object _word_i(uint16_t v):
    if v >= 0xFFFE or v == 0xFEFE:
        return None
    return v


cdef inline object _dword_f(uint32_t v, double div):
    if v >= 0xFFFFFFFE or v == 0xFEFEFEFE:
        return None
    return <double>v / div


# --------------------------------------------------------------------------- templates

cdef object _EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

cdef object _VR = _rec.VehicleRealtime
cdef object _new_row = _copier(_VR(vin="", time=_EPOCH, version=2016))
cdef Py_ssize_t R_VIN = _slot(_VR, "vin")
cdef Py_ssize_t R_TIME = _slot(_VR, "time")
cdef Py_ssize_t R_VERSION = _slot(_VR, "version")
cdef Py_ssize_t R_REISSUE = _slot(_VR, "reissue")
cdef Py_ssize_t R_GEAR = _slot(_VR, "gear")
cdef Py_ssize_t R_BRAKING = _slot(_VR, "braking_force")
cdef Py_ssize_t R_DRIVING = _slot(_VR, "driving_force")
cdef Py_ssize_t R_INSULATION = _slot(_VR, "insulation_kohm")
cdef Py_ssize_t R_ACCEL = _slot(_VR, "accelerator_pct")
cdef Py_ssize_t R_BRAKE_PCT = _slot(_VR, "brake_pct")
cdef Py_ssize_t R_BRAKE_ON = _slot(_VR, "brake_on")
cdef Py_ssize_t R_MOTORS = _slot(_VR, "motors")
cdef Py_ssize_t R_ENGINE_STATE = _slot(_VR, "engine_state")
cdef Py_ssize_t R_FUEL_RATE = _slot(_VR, "fuel_rate")
cdef Py_ssize_t R_SPEED = _slot(_VR, "speed_kmh")
cdef Py_ssize_t R_ODOMETER = _slot(_VR, "odometer_km")
cdef Py_ssize_t R_LON = _slot(_VR, "lon")
cdef Py_ssize_t R_LAT = _slot(_VR, "lat")
cdef Py_ssize_t R_FIX = _slot(_VR, "fix_valid")
cdef Py_ssize_t R_COORD = _slot(_VR, "coord_system")
cdef Py_ssize_t R_MAX_CELL_V = _slot(_VR, "max_cell_v")
cdef Py_ssize_t R_MIN_CELL_V = _slot(_VR, "min_cell_v")
cdef Py_ssize_t R_MAX_TEMP = _slot(_VR, "max_temp_c")
cdef Py_ssize_t R_MIN_TEMP = _slot(_VR, "min_temp_c")
cdef Py_ssize_t R_ALARM_LEVEL = _slot(_VR, "alarm_level")
cdef Py_ssize_t R_ALARM_FLAGS = _slot(_VR, "alarm_flags")
cdef Py_ssize_t R_FAULT_COUNT = _slot(_VR, "fault_count")
cdef Py_ssize_t R_PACK_V = _slot(_VR, "pack_voltage_v")
cdef Py_ssize_t R_PACK_A = _slot(_VR, "pack_current_a")
cdef Py_ssize_t R_CELL_TOTAL = _slot(_VR, "cell_total")
cdef Py_ssize_t R_CELL_START = _slot(_VR, "cell_start")
cdef Py_ssize_t R_CELL_COUNT = _slot(_VR, "cell_count")
cdef Py_ssize_t R_CELLS = _slot(_VR, "cell_voltages")
cdef Py_ssize_t R_CELL_MIN = _slot(_VR, "cell_v_min")
cdef Py_ssize_t R_CELL_MAX = _slot(_VR, "cell_v_max")
cdef Py_ssize_t R_CELL_MEAN = _slot(_VR, "cell_v_mean")
cdef Py_ssize_t R_PROBE_COUNT = _slot(_VR, "probe_count")
cdef Py_ssize_t R_PROBES = _slot(_VR, "probe_temps")
cdef Py_ssize_t R_TEMP_MIN = _slot(_VR, "temp_min_c")
cdef Py_ssize_t R_TEMP_MAX = _slot(_VR, "temp_max_c")
cdef Py_ssize_t R_TEMP_MEAN = _slot(_VR, "temp_mean_c")
cdef Py_ssize_t R_EXTRA = _slot(_VR, "extra")
cdef Py_ssize_t R_CUSTOM = _slot(_VR, "custom_blocks")
cdef Py_ssize_t R_QUALITY = _slot(_VR, "quality")

cdef object _RP = _rec.Position
cdef object _new_position = _copier(
    _RP(device_id="", protocol=_GBT, time=_EPOCH, lat=None, lon=None, fix_valid=False)
)
cdef Py_ssize_t P_DEVICE = _slot(_RP, "device_id")
cdef Py_ssize_t P_TIME = _slot(_RP, "time")
cdef Py_ssize_t P_LAT = _slot(_RP, "lat")
cdef Py_ssize_t P_LON = _slot(_RP, "lon")
cdef Py_ssize_t P_FIX = _slot(_RP, "fix_valid")
cdef Py_ssize_t P_REISSUE = _slot(_RP, "reissue")
cdef Py_ssize_t P_COORD = _slot(_RP, "coord_system")
cdef Py_ssize_t P_SPEED = _slot(_RP, "speed_kmh")
cdef Py_ssize_t P_ODOMETER = _slot(_RP, "odometer_km")
cdef Py_ssize_t P_ALARM_FLAGS = _slot(_RP, "alarm_flags")

cdef object _RM = _rec.Motor
cdef object _new_motor = _copier(_RM(number=0))
cdef Py_ssize_t M_NUMBER = _slot(_RM, "number")
cdef Py_ssize_t M_QUALITY = _slot(_RM, "quality")

cdef object _ME = _m.Extremes
cdef object _new_extremes = _copier(_ME(**{f: None for f in _ME.__struct_fields__ if f != "quality"}))
cdef Py_ssize_t E_QUALITY = _slot(_ME, "quality")
cdef Py_ssize_t E_MAX_CELL_V = _slot(_ME, "max_cell_v")
cdef Py_ssize_t E_MIN_CELL_V = _slot(_ME, "min_cell_v")
cdef Py_ssize_t E_MAX_TEMP = _slot(_ME, "max_temp_c")
cdef Py_ssize_t E_MIN_TEMP = _slot(_ME, "min_temp_c")


def _template(cls, **given):
    """A template instance of a message Struct: every field without a default set to None."""
    fields = {f: None for f in cls.__struct_fields__ if f != "quality"}
    fields.update(given)
    return _copier(cls(**fields))


cdef object _new_fuel_cell = _template(_m.FuelCell, temps_raw=b"")
cdef object _new_fuel_cell_engine = _template(_m.FuelCellEngine)
cdef object _new_stack = _template(_m.FuelCellStack, temps_raw=b"")
cdef object _new_super_cap = _template(_m.SuperCap, cells_raw=b"", temps_raw=b"")
cdef object _new_super_cap_extremes = _template(_m.SuperCapExtremes)
cdef Py_ssize_t FC_TEMPS = _slot(_m.FuelCell, "temps_raw")
cdef Py_ssize_t FC_QUALITY = _slot(_m.FuelCell, "quality")
cdef Py_ssize_t FCE_QUALITY = _slot(_m.FuelCellEngine, "quality")
cdef Py_ssize_t ST_TEMPS = _slot(_m.FuelCellStack, "temps_raw")
cdef Py_ssize_t ST_QUALITY = _slot(_m.FuelCellStack, "quality")
cdef Py_ssize_t SC_CELLS = _slot(_m.SuperCap, "cells_raw")
cdef Py_ssize_t SC_TEMPS = _slot(_m.SuperCap, "temps_raw")
cdef Py_ssize_t SC_QUALITY = _slot(_m.SuperCap, "quality")
cdef Py_ssize_t SCE_QUALITY = _slot(_m.SuperCapExtremes, "quality")


def _same(*fields):
    """Spec entries whose quality name is the target field name, from (name, size, div, offset)
    tuples or ``layouts.Field``s."""
    return tuple(
        (f[0], f[0], f[1], f[2], f[3], f[4] if len(f) > 4 else True) for f in fields
    )


cdef tuple _VEHICLE_HEAD = (
    ("vehicle_state", 1, 0, 0),
    ("charge_state", 1, 0, 0),
    ("run_mode", 1, 0, 0),
    ("speed_kmh", 2, 10, 0),
    ("odometer_km", 4, 10, 0),
    ("total_voltage_v", 2, 10, 0),
)
cdef tuple _VEHICLE_MID = (("soc_pct", 1, 0, 0), ("dcdc_state", 1, 0, 0))
cdef _Spec _VEHICLE_16 = _Spec(
    _VR, _same(*_VEHICLE_HEAD, ("total_current_a", 2, 10, 10000), *_VEHICLE_MID)
)
cdef _Spec _VEHICLE_25 = _Spec(
    _VR, _same(*_VEHICLE_HEAD, ("total_current_a", 2, 10, 30000), *_VEHICLE_MID)
)
# 2016: insulation has no sentinel, then the accelerator pedal (quality name accel_pct).
cdef _Spec _VEHICLE_TAIL_16 = _Spec(
    _VR,
    (
        ("insulation_kohm", "insulation_kohm", 2, 0, 0, False),
        ("accel_pct", "accelerator_pct", 1, 0, 0, True),
    ),
)
cdef _Spec _VEHICLE_TAIL_25 = _Spec(_VR, _same(("insulation_kohm", 2, 0, 0)))

cdef tuple _MOTOR_COMMON = (
    ("number", "number", 1, 0, 0, True),
    ("state", "state", 1, 0, 0, True),
    ("controller_temp_c", "controller_temp_c", 1, 0, 40, True),
)
cdef _Spec _MOTOR_16 = _Spec(
    _RM,
    _MOTOR_COMMON + (
        ("speed_rpm", "speed_rpm", 2, 0, 20000, True),
        ("torque_nm", "torque_nm", 2, 10, 20000, True),
        ("temp_c", "motor_temp_c", 1, 0, 40, True),
        ("voltage_v", "controller_voltage_v", 2, 10, 0, True),
        ("current_a", "controller_current_a", 2, 10, 10000, True),
    ),
)
cdef _Spec _MOTOR_25 = _Spec(
    _RM,
    _MOTOR_COMMON + (
        ("speed_rpm", "speed_rpm", 2, 0, 32000, True),
        ("torque_nm", "torque_nm", 4, 10, 200000, True),
        ("temp_c", "motor_temp_c", 1, 0, 40, True),
    ),
)

cdef _Spec _ENGINE_16 = _Spec(
    _VR,
    (
        ("engine.state", "engine_state", 1, 0, 0, True),
        ("engine.crank_rpm", "crank_speed_rpm", 2, 0, 0, True),
        ("engine.consumption_l_100km", "fuel_rate", 2, 100, 0, True),
    ),
)
cdef _Spec _ENGINE_25 = _Spec(_VR, (("engine.crank_rpm", "crank_speed_rpm", 2, 0, 0, True),))

cdef _Spec _EXTREMES = _Spec(_ME, _same(*_L.EXTREMES))
cdef _Spec _FUEL_CELL_HEAD = _Spec(_m.FuelCell, _same(*_L.FUEL_CELL_HEAD))
cdef _Spec _FUEL_CELL_TAIL = _Spec(_m.FuelCell, _same(*_L.FUEL_CELL_TAIL))
cdef _Spec _FUEL_CELL_ENGINE = _Spec(_m.FuelCellEngine, _same(*_L.FUEL_CELL_ENGINE))
cdef _Spec _STACK = _Spec(_m.FuelCellStack, _same(*_L.STACK))
cdef _Spec _SUPER_CAP = _Spec(_m.SuperCap, _same(*_L.SUPER_CAP))
cdef _Spec _SUPER_CAP_EXTREMES = _Spec(_m.SuperCapExtremes, _same(*_L.SUPER_CAP_EXTREMES))

cdef tuple _FAULT_KINDS = ("battery", "motor", "engine", "other")
cdef tuple _UNPARSED = tuple(f"0x{t:02X}" for t in range(256))


# --------------------------------------------------------------------------- round(x, n)

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>
    /* Python's round(x, nd) for 0 <= nd <= 4: N = x * 10**nd rounded half-even on the exact
       binary value (what _Py_dg_dtoa mode 3 does), then the double nearest N / 10**nd (what
       _Py_dg_strtod does; an IEEE division of two exact doubles is correctly rounded too).
       Returns 0 when |N| would not be exact in a double: the caller uses Python's round. */
    static int silkgate_round(double x, int nd, double* out) {
        static const uint64_t POW10[5] = {1, 10, 100, 1000, 10000};
        uint64_t bits, mant;
        int exp2, shift;
        unsigned __int128 p, rem, half, n;
        if (!isfinite(x) || x == 0.0) { *out = x; return 1; }
        memcpy(&bits, &x, 8);
        exp2 = (int)((bits >> 52) & 0x7FF);
        mant = bits & 0xFFFFFFFFFFFFFULL;
        if (exp2 == 0) exp2 = 1; else mant |= 1ULL << 52;
        exp2 -= 1075;  /* |x| = mant * 2**exp2 */
        if (exp2 >= 0) { *out = x; return 1; }  /* an integer: round() leaves it as it is */
        shift = -exp2;
        p = (unsigned __int128)mant * POW10[nd];
        if (shift >= 120) { *out = copysign(0.0, x); return 1; }
        n = p >> shift;
        rem = p & ((((unsigned __int128)1) << shift) - 1);
        half = ((unsigned __int128)1) << (shift - 1);
        if (rem > half || (rem == half && (n & 1))) n += 1;
        if (n >= (((unsigned __int128)1) << 53)) return 0;
        *out = copysign((double)(uint64_t)n / (double)POW10[nd], x);
        return 1;
    }
    """
    int silkgate_round(double x, int nd, double* out) noexcept


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* min/max/sum/count of the big-endian WORDs below 0xFFFE (n words, n < 32768). The first
       loop takes every word (plain reductions, which the compiler vectorizes); only a pack that
       holds a sentinel is read again, filtering. */
    static void silkgate_word_stats(const uint8_t* p, Py_ssize_t n, uint64_t* sum,
                                    uint64_t* count, uint32_t* lo, uint32_t* hi) {
        uint32_t s = 0, c = 0;
        uint16_t mn = 0xFFFF, mx = 0;
        Py_ssize_t i;
        for (i = 0; i < n; i++) {
            uint16_t w;
            memcpy(&w, p + 2 * i, 2);
            w = (uint16_t)((w >> 8) | (w << 8));
            s += w;
            mn = w < mn ? w : mn;
            mx = w > mx ? w : mx;
        }
        c = (uint32_t)n;
        if (mx >= 0xFFFE) {
            s = 0; c = 0; mn = 0xFFFF; mx = 0;
            for (i = 0; i < n; i++) {
                uint16_t w = (uint16_t)((p[2 * i] << 8) | p[2 * i + 1]);
                if (w < 0xFFFE) {
                    s += w; c += 1;
                    mn = w < mn ? w : mn;
                    mx = w > mx ? w : mx;
                }
            }
        }
        if (c) {
            if (mn < *lo) *lo = mn;
            if (mx > *hi) *hi = mx;
        }
        *sum += s; *count += c;
    }
    /* The same over probe BYTEs below 0xFE. */
    static void silkgate_byte_stats(const uint8_t* p, Py_ssize_t n, uint64_t* sum,
                                    uint64_t* count, uint32_t* lo, uint32_t* hi) {
        uint32_t s = 0, c = 0;
        uint8_t mn = 0xFF, mx = 0;
        Py_ssize_t i;
        for (i = 0; i < n; i++) {
            uint8_t t = p[i];
            s += t;
            mn = t < mn ? t : mn;
            mx = t > mx ? t : mx;
        }
        c = (uint32_t)n;
        if (mx >= 0xFE) {
            s = 0; c = 0; mn = 0xFF; mx = 0;
            for (i = 0; i < n; i++) {
                uint8_t t = p[i];
                if (t < 0xFE) {
                    s += t; c += 1;
                    mn = t < mn ? t : mn;
                    mx = t > mx ? t : mx;
                }
            }
        }
        if (c) {
            if (mn < *lo) *lo = mn;
            if (mx > *hi) *hi = mx;
        }
        *sum += s; *count += c;
    }
    """
    void silkgate_word_stats(
        const uint8_t* p, Py_ssize_t n, uint64_t* sum, uint64_t* count, uint32_t* lo, uint32_t* hi
    ) noexcept
    void silkgate_byte_stats(
        const uint8_t* p, Py_ssize_t n, uint64_t* sum, uint64_t* count, uint32_t* lo, uint32_t* hi
    ) noexcept


cdef object _py_round = round


cdef object _round(double x, int nd):
    """round(x, nd) for 0 <= nd <= 4, as a float (Python's exact result)."""
    cdef double r
    if silkgate_round(x, nd, &r):
        return PyFloat_FromDouble(r)
    return _py_round(x, nd)


def _round_exact(double x, int nd):
    """Test hook: the native round(x, nd) (0 <= nd <= 4)."""
    if not 0 <= nd <= 4:
        raise ValueError("nd must be 0..4")
    return _round(x, nd)


# --------------------------------------------------------------------------- time and VIN


include "../codecs/_shared.pxi"


cdef inline object _gmt8_to_utc(const uint8_t* p):
    """UTC datetime of a GMT+8 YY MM DD hh mm ss time, None when not a calendar time."""
    return _gmt8_fields_to_utc(2000 + p[0], p[1], p[2], p[3], p[4], p[5])


# One-entry cache of the last device time: at gateway rates consecutive frames (of any vehicle)
# mostly carry the same second, and a datetime is immutable, so records may share it.
cdef uint64_t _last_time_key = 0xFFFFFFFFFFFFFFFF  # no 6-byte key equals it
cdef object _last_time = None


cdef object _device_time(const uint8_t* p):
    """_gmt8_to_utc(p), cached on the 6 raw bytes."""
    global _last_time_key, _last_time
    cdef uint64_t key = 0
    memcpy(&key, p, 6)
    if key == _last_time_key:
        return _last_time
    time = _gmt8_to_utc(p)
    if time is not None:
        _last_time = time
        _last_time_key = key
    return time


cdef object _vin(const uint8_t* p):
    """17-byte VIN: trailing NUL/space stripped, GBK (ASCII natively)."""
    cdef Py_ssize_t n = 17
    cdef Py_ssize_t i
    while n > 0 and (p[n - 1] == 0 or p[n - 1] == 0x20):
        n -= 1
    for i in range(n):
        if p[i] >= 0x80:
            return _decode_text(PyBytes_FromStringAndSize(<const char*>p, 17), fixed=True)
    return PyUnicode_DecodeASCII(<const char*>p, n, NULL)


# --------------------------------------------------------------------------- packed values


ctypedef struct Segments:
    Py_ssize_t n
    Py_ssize_t total
    Py_ssize_t pos[MAX_SEGMENTS]
    Py_ssize_t len[MAX_SEGMENTS]


cdef inline int _segment(Segments* s, Py_ssize_t pos, Py_ssize_t n) except -1:
    if n == 0:
        return 0
    if s.n == MAX_SEGMENTS:
        raise _BAD  # absurd pack counts: the slow path handles them
    s.pos[s.n] = pos
    s.len[s.n] = n
    s.n += 1
    s.total += n
    return 0


cdef object _join(const uint8_t* frame, Segments* s):
    """The segments' bytes, concatenated into one new bytes object."""
    cdef Py_ssize_t i, at = 0
    cdef char* out
    if s.n == 1:
        return PyBytes_FromStringAndSize(<const char*>(frame + s.pos[0]), s.len[0])
    raw = PyBytes_FromStringAndSize(NULL, s.total)
    out = PyBytes_AS_STRING(raw)
    for i in range(s.n):
        memcpy(out + at, frame + s.pos[i], s.len[i])
        at += s.len[i]
    return raw


cdef int _cell_stats(object row, const uint8_t* frame, Segments* s) except -1:
    """normalize._cell_stats over the cell WORDs of every pack, in C."""
    cdef Py_ssize_t i
    cdef uint32_t lo = 0xFFFF, hi = 0
    cdef uint64_t total = 0, count = 0
    if s.n == 0:
        return 0
    _set(row, R_CELLS, _join(frame, s))
    _set(row, R_CELL_COUNT, s.total // 2)
    for i in range(s.n):  # a segment is one pack: at most 255 (2016) / 65535 bytes (2025) of WORDs
        silkgate_word_stats(frame + s.pos[i], s.len[i] // 2, &total, &count, &lo, &hi)
    if count:
        _set(row, R_CELL_MIN, PyFloat_FromDouble(<double>lo / 1000))
        _set(row, R_CELL_MAX, PyFloat_FromDouble(<double>hi / 1000))
        _set(row, R_CELL_MEAN, _round(<double>total / <double>count / 1000, 4))
    return 0


cdef int _temp_stats(object row, const uint8_t* frame, Segments* s) except -1:
    """normalize._temp_stats over the probe BYTEs of every pack, in C."""
    cdef Py_ssize_t i
    cdef uint32_t lo = 0xFF, hi = 0
    cdef uint64_t total = 0, count = 0
    if s.n == 0:
        return 0
    _set(row, R_PROBES, _join(frame, s))
    _set(row, R_PROBE_COUNT, s.total)
    for i in range(s.n):
        silkgate_byte_stats(frame + s.pos[i], s.len[i], &total, &count, &lo, &hi)
    if count:
        _set(row, R_TEMP_MIN, <long>lo - 40)
        _set(row, R_TEMP_MAX, <long>hi - 40)
        _set(row, R_TEMP_MEAN, _round(<double>total / <double>count - 40, 2))
    return 0


# --------------------------------------------------------------------------- blocks


cdef int _vehicle(RBuf* b, object row, dict q, bint v16) except -1:
    cdef uint8_t gear, brake
    _need(b, 20 if v16 else 18)
    _read(b, _VEHICLE_16 if v16 else _VEHICLE_25, row, q)
    gear = rb_u8(b)
    _set(row, R_GEAR, gear & 0x0F)
    _set(row, R_BRAKING, (gear & 0x10) != 0)
    _set(row, R_DRIVING, (gear & 0x20) != 0)
    if not v16:
        _read(b, _VEHICLE_TAIL_25, row, q)
        _set(row, R_ACCEL, None)
        _set(row, R_BRAKE_PCT, None)
        _set(row, R_BRAKE_ON, None)
        return 0
    _read(b, _VEHICLE_TAIL_16, row, q)
    brake = rb_u8(b)
    if brake == 0x65:  # brake on, no travel value
        _set(row, R_BRAKE_PCT, None)
        _set(row, R_BRAKE_ON, True)
    elif brake >= 0xFE:
        q["brake_pct"] = _ABNORMAL if brake == 0xFE else _INVALID
        _set(row, R_BRAKE_PCT, None)
        _set(row, R_BRAKE_ON, None)
    else:
        _set(row, R_BRAKE_PCT, brake)
        _set(row, R_BRAKE_ON, brake != 0)
    return 0


cdef object _motors(RBuf* b, bint v16):
    cdef Py_ssize_t count, i
    cdef _Spec spec = _MOTOR_16 if v16 else _MOTOR_25
    cdef dict q
    _need(b, 1)
    count = rb_u8(b)
    _need(b, count * spec.total)
    motors = []
    for i in range(count):
        motor = _new_motor()
        q = {}
        _read(b, spec, motor, q)
        _set(motor, M_QUALITY, q)
        if _get(motor, M_NUMBER) is None:
            _set(motor, M_NUMBER, 0)
        motors.append(motor)
    return motors


cdef object _position(RBuf* b, object row, bint v16, object vin, object time, object reissue):
    """Fill the row's position fields; return the Position record."""
    cdef uint8_t status, c
    coord = None
    _need(b, 1)
    status = rb_u8(b)
    if not v16:
        _need(b, 1)
        c = rb_u8(b)
        if c < 0xFE:
            coord = c
    _need(b, 8)
    lon = _dword_f(rb_u32(b), 1000000)
    lat = _dword_f(rb_u32(b), 1000000)
    if status & 0x04 and lon is not None:
        lon = -lon
    if status & 0x02 and lat is not None:
        lat = -lat
    fix = not status & 0x01
    _set(row, R_LON, lon)
    _set(row, R_LAT, lat)
    _set(row, R_FIX, fix)
    _set(row, R_COORD, coord)
    pos = _new_position()
    _set(pos, P_DEVICE, vin)
    _set(pos, P_TIME, time)
    _set(pos, P_LAT, lat)
    _set(pos, P_LON, lon)
    _set(pos, P_FIX, fix)
    _set(pos, P_REISSUE, reissue)
    _set(pos, P_COORD, coord)
    return pos


cdef object _extremes(RBuf* b, object row):
    cdef dict q = {}
    _need(b, _EXTREMES.total)
    ext = _new_extremes()
    _read(b, _EXTREMES, ext, q)
    _set(ext, E_QUALITY, q)
    _set(row, R_MAX_CELL_V, _get(ext, E_MAX_CELL_V))
    _set(row, R_MIN_CELL_V, _get(ext, E_MIN_CELL_V))
    _set(row, R_MAX_TEMP, _get(ext, E_MAX_TEMP))
    _set(row, R_MIN_TEMP, _get(ext, E_MIN_TEMP))
    return ext


cdef object _alarm(
    RBuf* b, object row, bint v16, int version, object vin, object time, object reissue
):
    """Fill the row's alarm fields; return the Alarm record when the frame carries an alarm."""
    cdef Py_ssize_t i, k, count, fault_count = 0
    cdef Py_ssize_t at[4]
    cdef Py_ssize_t counts[4]
    cdef Py_ssize_t saved = b.pos
    cdef uint8_t raw_level
    cdef uint32_t flags
    _need(b, 5)
    raw_level = rb_u8(b)
    level = None if raw_level >= 0xFE else raw_level
    flags = rb_u32(b)
    for k in range(4):
        _need(b, 1)
        count = rb_u8(b)
        counts[k] = -1
        if count < 0xFE:
            _need(b, count * 4)
            at[k] = b.pos
            counts[k] = count
            fault_count += count
            b.pos += count * 4
    if not v16:
        _need(b, 1)
        count = rb_u8(b)
        if count < 0xFE:
            _need(b, count * 2)
            b.pos += count * 2
    _set(row, R_ALARM_LEVEL, level)
    _set(row, R_ALARM_FLAGS, flags)
    _set(row, R_FAULT_COUNT, fault_count)
    if not (raw_level and raw_level < 0xFE) and not flags and not fault_count:
        return None
    codes = {}
    saved = b.pos
    for k in range(4):
        if counts[k] > 0:
            b.pos = at[k]
            codes[<str>_FAULT_KINDS[k]] = [rb_u32(b) for i in range(counts[k])]
    b.pos = saved
    return _RAlarm(
        device_id=vin, protocol=_GBT, time=time, level=level, flags=flags,
        names=_alarm_names(flags, version), fault_codes=codes, reissue=reissue,
    )


cdef int _cell_voltages(RBuf* b, object row, bint v16, Segments* cells) except -1:
    cdef Py_ssize_t count, i, n, total = 0
    cdef long current_offset = 10000 if v16 else 30000
    first_cell = None
    _need(b, 1)
    count = rb_u8(b)
    for i in range(count):
        _need(b, 5)
        b.pos += 1  # pack number
        voltage = _word_f(rb_u16(b), 10, 0)
        current = _word_f(rb_u16(b), 10, current_offset)
        if v16:
            _need(b, 5)
            total_cells = _word_i(rb_u16(b))
            first = _word_i(rb_u16(b))
            n = rb_u8(b)
        else:
            _need(b, 2)
            total_cells = None
            first = None
            n = rb_u16(b)
        _need(b, n * 2)
        _segment(cells, b.pos, n * 2)
        b.pos += n * 2
        total += n if total_cells is None else <Py_ssize_t>total_cells
        if i == 0:
            _set(row, R_PACK_V, voltage)
            _set(row, R_PACK_A, current)
            first_cell = 1 if first is None else first
    if count:
        _set(row, R_CELL_START, first_cell)
        _set(row, R_CELL_TOTAL, total)
    return 0


cdef int _battery_temps(RBuf* b, Segments* temps) except -1:
    cdef Py_ssize_t count, i, n
    _need(b, 1)
    count = rb_u8(b)
    for i in range(count):
        _need(b, 3)
        b.pos += 1  # pack number
        n = rb_u16(b)
        _need(b, n)
        _segment(temps, b.pos, n)
        b.pos += n
    return 0


cdef object _fuel_cell(RBuf* b):
    cdef dict q = {}
    block = _new_fuel_cell()
    _need(b, _FUEL_CELL_HEAD.total)
    _read(b, _FUEL_CELL_HEAD, block, q)
    _set(block, FC_TEMPS, _counted(b, 2, 1))
    _need(b, _FUEL_CELL_TAIL.total)
    _read(b, _FUEL_CELL_TAIL, block, q)
    _set(block, FC_QUALITY, q)
    return block


cdef object _fixed(RBuf* b, object new, _Spec spec, Py_ssize_t quality_slot):
    cdef dict q = {}
    block = new()
    _need(b, spec.total)
    _read(b, spec, block, q)
    _set(block, quality_slot, q)
    return block


cdef object _fuel_cell_stacks(RBuf* b):
    cdef Py_ssize_t count, i
    cdef dict q
    _need(b, 1)
    count = rb_u8(b)
    stacks = []
    for i in range(count):
        q = {}
        stack = _new_stack()
        _need(b, _STACK.total)
        _read(b, _STACK, stack, q)
        _set(stack, ST_TEMPS, _counted(b, 2, 1))
        _set(stack, ST_QUALITY, q)
        stacks.append(stack)
    return _MFuelCellStacks(stacks=stacks)


cdef object _super_cap(RBuf* b):
    cdef dict q = {}
    block = _new_super_cap()
    _need(b, _SUPER_CAP.total)
    _read(b, _SUPER_CAP, block, q)
    _set(block, SC_CELLS, _counted(b, 2, 2))
    _set(block, SC_TEMPS, _counted(b, 2, 1))
    _set(block, SC_QUALITY, q)
    return block


cdef object _prefixed(RBuf* b):
    cdef Py_ssize_t n
    _need(b, 2)
    n = rb_u16(b)
    _need(b, n)
    return _bytes(b, n)


cdef object _signature(RBuf* b):
    cdef uint8_t algorithm
    _need(b, 1)
    algorithm = rb_u8(b)
    r = _prefixed(b)
    s = _prefixed(b)
    if b.pos != b.end:
        raise _BAD
    return _MSignature(algorithm=algorithm, r=r, s=s)


# --------------------------------------------------------------------------- frames


cdef object _slow(object frame):
    """normalize_gbt32960(_accel.decode_frame(frame)): every case the fast path does not take."""
    global _slow_normalize
    if _slow_normalize is None:
        from gateway.normalize import normalize_gbt32960

        _slow_normalize = normalize_gbt32960
    return _slow_normalize(_decode_frame(frame))




cdef object _fast(bytes frame):
    """The records of a checked plain realtime/reissue frame; None: take the slow path."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(frame)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(frame)
    cdef Py_ssize_t length
    cdef RBuf b
    cdef Segments cells, temps
    cdef uint8_t t
    cdef bint v16, motors_seen
    cdef int version
    cdef dict q
    cdef list custom, records
    if n < HEADER_SIZE + 1 + 6 or p[0] != p[1] or not (p[0] == 0x23 or p[0] == 0x24):
        return None
    length = (<Py_ssize_t>p[22] << 8) | p[23]
    if length > MAX_DATA_LENGTH or n != HEADER_SIZE + length + 1 or _xor(p + 2, n - 3) != p[n - 1]:
        return None
    if not (p[2] == 0x02 or p[2] == 0x03) or p[3] != 0xFE or 0x02 <= p[21] <= 0x05:
        return None  # not a plain realtime/reissue command
    time = _device_time(p + HEADER_SIZE)
    if time is None:
        return None  # normalize raises BAD_TIME, once the whole frame has decoded
    v16 = p[0] == 0x23
    version = 2016 if v16 else 2025
    vin = _vin(p + 4)
    reissue = p[2] == 0x03
    b.buf = p
    b.pos = HEADER_SIZE + 6
    b.end = n - 1
    cells.n = cells.total = 0
    temps.n = temps.total = 0

    row = _new_row()
    q = {}
    custom = []
    _set(row, R_VIN, vin)
    _set(row, R_TIME, time)
    _set(row, R_VERSION, version)
    _set(row, R_REISSUE, reissue)
    _set(row, R_QUALITY, q)
    _set(row, R_CUSTOM, custom)
    records = [row]
    extra = None
    position = None
    motors_seen = False
    while b.pos < b.end:
        t = rb_u8(&b)
        if t == 0x01:
            _vehicle(&b, row, q, v16)
        elif t == 0x02:
            _set(row, R_MOTORS, _motors(&b, v16))
            motors_seen = True
        elif t == 0x05:
            position = _position(&b, row, v16, vin, time, reissue)
            records.append(position)
        elif t == (0x07 if v16 else 0x06):
            alarm = _alarm(&b, row, v16, version, vin, time, reissue)
            if alarm is not None:
                records.append(alarm)
        elif t == (0x08 if v16 else 0x07):
            _cell_voltages(&b, row, v16, &cells)
        elif t == (0x09 if v16 else 0x08):
            _battery_temps(&b, &temps)
        elif 0x80 <= t <= 0xFE:
            custom.append(_RCustomBlock(t, _prefixed(&b)))
        elif t == 0x04:
            _need(&b, 5 if v16 else 2)
            if v16:
                _read(&b, _ENGINE_16, row, q)
            else:
                _set(row, R_ENGINE_STATE, None)
                _set(row, R_FUEL_RATE, None)
                _read(&b, _ENGINE_25, row, q)
        elif t == 0x06 and v16:
            if extra is None:
                extra = {}
            extra["extremes"] = _extremes(&b, row)
        elif t == 0x03 or (not v16 and (0x30 <= t <= 0x32 or t == 0xFF)):
            if extra is None:
                extra = {}
            if t == 0x03:
                if v16:
                    extra["FuelCell"] = _fuel_cell(&b)
                else:
                    extra["FuelCellEngine"] = _fixed(
                        &b, _new_fuel_cell_engine, _FUEL_CELL_ENGINE, FCE_QUALITY
                    )
            elif t == 0x30:
                extra["FuelCellStacks"] = _fuel_cell_stacks(&b)
            elif t == 0x31:
                extra["SuperCap"] = _super_cap(&b)
            elif t == 0x32:
                extra["SuperCapExtremes"] = _fixed(
                    &b, _new_super_cap_extremes, _SUPER_CAP_EXTREMES, SCE_QUALITY
                )
            else:
                extra["Signature"] = _signature(&b)
        else:  # an unknown standard type has no length: the rest is kept raw
            custom.append(_RCustomBlock(t, _bytes(&b, b.end - b.pos)))
            q["unparsed"] = <str>_UNPARSED[t]
    if not motors_seen:
        _set(row, R_MOTORS, [])  # never the template's list
    if position is not None:
        _set(position, P_SPEED, _get(row, R_SPEED))
        _set(position, P_ODOMETER, _get(row, R_ODOMETER))
        _set(position, P_ALARM_FLAGS, _get(row, R_ALARM_FLAGS))
    _cell_stats(row, p, &cells)
    _temp_stats(row, p, &temps)
    if extra:
        _set(row, R_EXTRA, extra)
    return records


def realtime_records(frame):
    """Records of one raw GB/T 32960 frame (see the module docstring)."""
    if type(frame) is not bytes:
        frame = bytes(frame)
    try:
        records = _fast(<bytes>frame)
    except _Bad:
        records = None
    if records is None:
        return _slow(frame)
    return records
