# cython: language_level=3
"""Cython accelerator for GB/T 32960.3 (2016 "##" and 2025 "$$").

Same public names and results as :mod:`gateway.codecs.gbt32960.reference` (``==`` on the
Structs, same ``ProtocolError`` reason and offset). Native here: ``bcc``, ``FrameReader``, frame
checks and header, heartbeat/time-only bodies, the realtime/reissue bodies (0x02/0x03) with every
info type of both editions, and ``encode_frame`` for realtime/reissue bodies. The rare bodies
(logins, platform login/logout, parameters, control, 2025 activation and key sync) go through the
reference's ``decode_body`` / ``encode_body``; every other public name of the reference module is
re-exported from it.

All reads go through ``RBuf`` (see ``_buffers.pxi``) with one explicit length check per fixed-size
group, because setup.py compiles with boundscheck/wraparound off.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.datetime cimport datetime_new, import_datetime
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.math cimport fabs, isfinite, round as c_round
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from datetime import UTC
from types import MemberDescriptorType

from gateway.codecs.common import ABNORMAL, INVALID, BadFrame, DeviceTime
from gateway.codecs.errors import ProtocolError, Reason
from gateway.codecs.gbt32960 import layouts as _L
from gateway.codecs.gbt32960 import reference as _ref
from gateway.codecs.gbt32960.messages import (
    Alarm,
    BatteryTemps,
    CellVoltages,
    CustomBlock,
    DriveMotors,
    Empty,
    Engine,
    Extremes,
    Frame,
    FuelCell,
    FuelCellEngine,
    FuelCellStack,
    FuelCellStacks,
    Motor,
    PackTemps,
    PackVoltage,
    Position,
    RawBody,
    RealtimeData,
    Signature,
    SuperCap,
    SuperCapExtremes,
    TimeOnly,
    Unparsed,
    VehicleData,
)

import_datetime()

__all__ = [
    "DEFAULT_MAX_FRAME",
    "FrameReader",
    "bcc",
    "decode_body",
    "decode_frame",
    "encode_body",
    "encode_frame",
]

DEFAULT_MAX_FRAME = _ref.DEFAULT_MAX_FRAME

# Module-level C globals: no dict lookups on the hot paths.
cdef object _UTC = UTC
cdef str _ABNORMAL = ABNORMAL
cdef str _INVALID = INVALID
cdef object _ProtocolError = ProtocolError
cdef object _BadFrame = BadFrame
cdef object _DeviceTime = DeviceTime
cdef object _R_BAD_START = Reason.BAD_START
cdef object _R_TRUNCATED = Reason.TRUNCATED
cdef object _R_TOO_LARGE = Reason.TOO_LARGE
cdef object _R_BAD_LENGTH = Reason.BAD_LENGTH
cdef object _R_BAD_CHECKSUM = Reason.BAD_CHECKSUM
cdef object _R_BAD_VALUE = Reason.BAD_VALUE
cdef object _R_TRAILING_BYTES = Reason.TRAILING_BYTES
cdef str _GARBAGE = Reason.GARBAGE.value
cdef str _BAD_LENGTH = Reason.BAD_LENGTH.value
cdef str _TOO_LARGE = Reason.TOO_LARGE.value
cdef str _BAD_CHECKSUM = Reason.BAD_CHECKSUM.value
cdef object _ref_decode_body = _ref.decode_body
cdef object _ref_encode_body = _ref.encode_body
cdef object _ref_encode_text = _ref.encode_text
cdef dict _START_BY_VERSION = {2016: b"##", 2025: b"$$"}

cdef object _Alarm = Alarm
cdef object _BatteryTemps = BatteryTemps
cdef object _CellVoltages = CellVoltages
cdef object _CustomBlock = CustomBlock
cdef object _DriveMotors = DriveMotors
cdef object _Empty = Empty
cdef object _Engine = Engine
cdef object _Extremes = Extremes
cdef object _Frame = Frame
cdef object _FuelCell = FuelCell
cdef object _FuelCellEngine = FuelCellEngine
cdef object _FuelCellStack = FuelCellStack
cdef object _FuelCellStacks = FuelCellStacks
cdef object _Motor = Motor
cdef object _PackTemps = PackTemps
cdef object _PackVoltage = PackVoltage
cdef object _Position = Position
cdef object _RawBody = RawBody
cdef object _RealtimeData = RealtimeData
cdef object _Signature = Signature
cdef object _SuperCap = SuperCap
cdef object _SuperCapExtremes = SuperCapExtremes
cdef object _TimeOnly = TimeOnly
cdef object _Unparsed = Unparsed
cdef object _VehicleData = VehicleData

cdef enum:
    HEADER_SIZE = 24  # start(2) command response vin(17) encryption length(2)
    TIME_SIZE = 6
    MAX_DATA_LENGTH = 65531
    COMPACT_AT = 65536  # FrameReader drops consumed bytes past this (and half the buffer)


include "_buffers.pxi"


# --------------------------------------------------------------------------- primitives




def bcc(data) -> int:
    """XOR of every byte of ``data`` (call it with command .. last data byte)."""
    cdef Py_buffer view
    cdef uint8_t x
    if type(data) is bytes:
        return _xor(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    if type(data) is bytearray:
        return _xor(<const uint8_t*>PyByteArray_AS_STRING(data), PyByteArray_GET_SIZE(data))
    try:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    except (TypeError, BufferError):
        return _ref.bcc(data)  # iterables of ints and non-contiguous views: same semantics
    x = _xor(<const uint8_t*>view.buf, view.len)
    PyBuffer_Release(&view)
    return x


include "../_shared.pxi"


cdef inline object _gmt8_to_utc(const uint8_t* p):
    """UTC datetime of a GMT+8 YY MM DD hh mm ss time, None when not a calendar time."""
    return _gmt8_fields_to_utc(2000 + p[0], p[1], p[2], p[3], p[4], p[5])


cdef object _decode_time(RBuf* b):
    rb_need(b, TIME_SIZE, "time")
    cdef const uint8_t* p = b.buf + b.pos
    b.pos += TIME_SIZE
    return _DeviceTime(PyBytes_FromStringAndSize(<const char*>p, TIME_SIZE), _gmt8_to_utc(p))


cdef object _bytes(RBuf* b, Py_ssize_t n):
    """n raw bytes (the caller checked they are there)."""
    cdef object raw = PyBytes_FromStringAndSize(<const char*>(b.buf + b.pos), n)
    b.pos += n
    return raw


cdef object _counted(RBuf* b, int count_size, int item_size, str what):
    """A BYTE/WORD count followed by that many items, returned raw (reference._counted)."""
    cdef Py_ssize_t count
    if b.end - b.pos < count_size:  # (the message is built only when it is needed)
        rb_truncated(b, count_size, what + " count")
    count = rb_u8(b) if count_size == 1 else rb_u16(b)
    rb_need(b, count * item_size, what)
    return _bytes(b, count * item_size)


# Sentinel-aware field readers (reference.Field): the caller has checked the group's length.
# A sentinel becomes None and quality[name]; otherwise (raw - off), divided by div for floats.
# All-0xFE fill (0xFEFE, 0xFEFEFEFE) also reads as abnormal (constants.FILL_ABNORMAL, GB-14).

cdef inline object _flag(dict q, str name, bint abnormal):
    q[name] = _ABNORMAL if abnormal else _INVALID
    return None


cdef inline object _bi(RBuf* b, str name, dict q, int off):
    cdef uint8_t v = rb_u8(b)
    if v >= 0xFE:
        return _flag(q, name, v == 0xFE)
    return <long>v - off


cdef inline object _wi(RBuf* b, str name, dict q, long off):
    cdef uint16_t v = rb_u16(b)
    if v >= 0xFFFE or v == 0xFEFE:
        return _flag(q, name, v != 0xFFFF)
    return <long>v - off


cdef inline object _wf(RBuf* b, str name, dict q, double div, long off):
    cdef uint16_t v = rb_u16(b)
    if v >= 0xFFFE or v == 0xFEFE:
        return _flag(q, name, v != 0xFFFF)
    return <double>(<long>v - off) / div


cdef inline object _df(RBuf* b, str name, dict q, double div, long long off):
    cdef uint32_t v = rb_u32(b)
    if v >= 0xFFFFFFFE or v == 0xFEFEFEFE:
        return _flag(q, name, v != 0xFFFFFFFF)
    return <double>(<long long>v - off) / div


cdef object _vin(const uint8_t* p):
    """17-byte VIN: trailing NUL/space stripped, GBK (ASCII fast path)."""
    cdef Py_ssize_t n = 17
    cdef Py_ssize_t i
    while n > 0 and (p[n - 1] == 0 or p[n - 1] == 0x20):
        n -= 1
    for i in range(n):
        if p[i] >= 0x80:
            return _ref.decode_text(PyBytes_FromStringAndSize(<const char*>p, 17), fixed=True)
    return PyUnicode_DecodeASCII(<const char*>p, n, NULL)


# --------------------------------------------------------------------------- realtime blocks


cdef object _vehicle(RBuf* b, bint v16):
    cdef dict q = {}
    cdef uint8_t brake
    rb_need(b, 15, "vehicle_state")
    vehicle_state = _bi(b, "vehicle_state", q, 0)
    charge_state = _bi(b, "charge_state", q, 0)
    run_mode = _bi(b, "run_mode", q, 0)
    speed = _wf(b, "speed_kmh", q, 10, 0)
    odometer = _df(b, "odometer_km", q, 10, 0)
    voltage = _wf(b, "total_voltage_v", q, 10, 0)
    current = _wf(b, "total_current_a", q, 10, 10000 if v16 else 30000)
    soc = _bi(b, "soc_pct", q, 0)
    dcdc = _bi(b, "dcdc_state", q, 0)
    rb_need(b, 1, "gear")
    gear = rb_u8(b)
    if not v16:
        rb_need(b, 2, "insulation_kohm")
        insulation = _wi(b, "insulation_kohm", q, 0)
        return _VehicleData(
            vehicle_state=vehicle_state, charge_state=charge_state, run_mode=run_mode,
            speed_kmh=speed, odometer_km=odometer, total_voltage_v=voltage,
            total_current_a=current, soc_pct=soc, dcdc_state=dcdc, gear_byte=gear,
            insulation_kohm=insulation, quality=q,
        )
    rb_need(b, 3, "insulation_kohm")
    insulation = rb_u16(b)  # 2016 defines no sentinel for it: 0xFFFF is a value
    accel = _bi(b, "accel_pct", q, 0)
    rb_need(b, 1, "brake pedal")
    brake = rb_u8(b)
    brake_pct = None
    brake_on = None
    if brake == 0x65:  # brake on, no travel value
        brake_on = True
    elif brake >= 0xFE:
        _flag(q, "brake_pct", brake == 0xFE)
    else:
        brake_pct = brake
        brake_on = brake != 0
    return _VehicleData(
        vehicle_state=vehicle_state, charge_state=charge_state, run_mode=run_mode,
        speed_kmh=speed, odometer_km=odometer, total_voltage_v=voltage,
        total_current_a=current, soc_pct=soc, dcdc_state=dcdc, gear_byte=gear,
        insulation_kohm=insulation, accel_pct=accel, brake_pct=brake_pct, brake_on=brake_on,
        quality=q,
    )


cdef object _motors(RBuf* b, bint v16):
    cdef dict q
    cdef Py_ssize_t count, i
    rb_need(b, 1, "motor count")
    count = rb_u8(b)
    rb_need(b, count * (12 if v16 else 10), "motors")
    motors = []
    for i in range(count):
        q = {}
        number = _bi(b, "number", q, 0)
        state = _bi(b, "state", q, 0)
        controller_temp = _bi(b, "controller_temp_c", q, 40)
        if v16:
            speed = _wi(b, "speed_rpm", q, 20000)
            torque = _wf(b, "torque_nm", q, 10, 20000)
            temp = _bi(b, "temp_c", q, 40)
            voltage = _wf(b, "voltage_v", q, 10, 0)
            current = _wf(b, "current_a", q, 10, 10000)
            motors.append(_Motor(
                number=number, state=state, controller_temp_c=controller_temp, speed_rpm=speed,
                torque_nm=torque, temp_c=temp, voltage_v=voltage, current_a=current, quality=q,
            ))
        else:
            speed = _wi(b, "speed_rpm", q, 32000)
            torque = _df(b, "torque_nm", q, 10, 200000)
            temp = _bi(b, "temp_c", q, 40)
            motors.append(_Motor(
                number=number, state=state, controller_temp_c=controller_temp, speed_rpm=speed,
                torque_nm=torque, temp_c=temp, quality=q,
            ))
    return _DriveMotors(motors=motors)


cdef object _fuel_cell(RBuf* b):
    """2016 fuel cell."""
    cdef dict q = {}
    rb_need(b, 6, "voltage_v")
    voltage = _wf(b, "voltage_v", q, 10, 0)
    current = _wf(b, "current_a", q, 10, 0)
    consumption = _wf(b, "consumption_kg_100km", q, 100, 0)
    temps = _counted(b, 2, 1, "fuel-cell probes")
    rb_need(b, 10, "h2_max_temp_c")
    return _FuelCell(
        voltage_v=voltage,
        current_a=current,
        consumption_kg_100km=consumption,
        temps_raw=temps,
        h2_max_temp_c=_wf(b, "h2_max_temp_c", q, 10, 400),
        h2_max_temp_probe=_bi(b, "h2_max_temp_probe", q, 0),
        h2_max_conc_ppm=_wi(b, "h2_max_conc_ppm", q, 0),
        h2_max_conc_sensor=_bi(b, "h2_max_conc_sensor", q, 0),
        h2_max_pressure_mpa=_wf(b, "h2_max_pressure_mpa", q, 10, 0),
        h2_max_pressure_sensor=_bi(b, "h2_max_pressure_sensor", q, 0),
        dcdc_state=_bi(b, "dcdc_state", q, 0),
        quality=q,
    )


cdef object _fuel_cell_engine(RBuf* b):
    """2025 fuel-cell engine and hydrogen system."""
    cdef dict q = {}
    rb_need(b, 12, "h2_max_temp_c")
    return _FuelCellEngine(
        h2_max_temp_c=_wi(b, "h2_max_temp_c", q, 40),
        h2_max_temp_probe=_bi(b, "h2_max_temp_probe", q, 0),
        h2_max_conc=_wf(b, "h2_max_conc", q, 10000, 0),
        h2_max_conc_sensor=_bi(b, "h2_max_conc_sensor", q, 0),
        h2_max_pressure_mpa=_wf(b, "h2_max_pressure_mpa", q, 10, 0),
        h2_max_pressure_sensor=_bi(b, "h2_max_pressure_sensor", q, 0),
        dcdc_state=_bi(b, "dcdc_state", q, 0),
        h2_remaining_pct=_bi(b, "h2_remaining_pct", q, 0),
        dcdc_temp_c=_bi(b, "dcdc_temp_c", q, 40),
        quality=q,
    )


cdef object _engine(RBuf* b, bint v16):
    cdef dict q = {}
    if v16:
        rb_need(b, 5, "state")
        state = _bi(b, "state", q, 0)
        crank = _wi(b, "crank_rpm", q, 0)
        consumption = _wf(b, "consumption_l_100km", q, 100, 0)
        return _Engine(crank_rpm=crank, state=state, consumption_l_100km=consumption, quality=q)
    rb_need(b, 2, "crank_rpm")
    return _Engine(crank_rpm=_wi(b, "crank_rpm", q, 0), quality=q)


cdef object _position(RBuf* b, bint v16):
    cdef dict q = {}
    cdef uint8_t status
    rb_need(b, 1, "position status")
    status = rb_u8(b)
    coord_system = None
    if not v16:
        rb_need(b, 1, "coord_system")
        coord_system = _bi(b, "coord_system", q, 0)
    rb_need(b, 8, "lon")
    lon = _df(b, "lon", q, 1000000, 0)
    lat = _df(b, "lat", q, 1000000, 0)
    if status & 0x04 and lon is not None:
        lon = -lon
    if status & 0x02 and lat is not None:
        lat = -lat
    return _Position(status=status, lon=lon, lat=lat, coord_system=coord_system, quality=q)


cdef object _extremes(RBuf* b):
    cdef dict q = {}
    rb_need(b, 14, "max_v_subsystem")
    return _Extremes(
        max_v_subsystem=_bi(b, "max_v_subsystem", q, 0),
        max_v_cell=_bi(b, "max_v_cell", q, 0),
        max_cell_v=_wf(b, "max_cell_v", q, 1000, 0),
        min_v_subsystem=_bi(b, "min_v_subsystem", q, 0),
        min_v_cell=_bi(b, "min_v_cell", q, 0),
        min_cell_v=_wf(b, "min_cell_v", q, 1000, 0),
        max_t_subsystem=_bi(b, "max_t_subsystem", q, 0),
        max_t_probe=_bi(b, "max_t_probe", q, 0),
        max_temp_c=_bi(b, "max_temp_c", q, 40),
        min_t_subsystem=_bi(b, "min_t_subsystem", q, 0),
        min_t_probe=_bi(b, "min_t_probe", q, 0),
        min_temp_c=_bi(b, "min_temp_c", q, 40),
        quality=q,
    )


cdef object _fault_list(RBuf* b, str name, dict q):
    """Count BYTE + DWORD codes; a count of 0xFE / 0xFF means no list (None + quality)."""
    cdef Py_ssize_t count, i
    if b.end - b.pos < 1:
        rb_truncated(b, 1, name + " count")
    count = rb_u8(b)
    if count >= 0xFE:
        return _flag(q, name, count == 0xFE)
    rb_need(b, count * 4, name)
    return [rb_u32(b) for i in range(count)]


cdef object _alarm(RBuf* b, bint v16):
    cdef dict q = {}
    cdef Py_ssize_t count, i
    cdef const uint8_t* p
    rb_need(b, 1, "level")
    level = _bi(b, "level", q, 0)
    rb_need(b, 4, "alarm flags")
    flags = rb_u32(b)
    battery = _fault_list(b, "battery_faults", q)
    motor = _fault_list(b, "motor_faults", q)
    engine = _fault_list(b, "engine_faults", q)
    other = _fault_list(b, "other_faults", q)
    if v16:
        return _Alarm(
            level=level, flags=flags, battery_faults=battery, motor_faults=motor,
            engine_faults=engine, other_faults=other, quality=q,
        )
    rb_need(b, 1, "bit_levels count")
    count = rb_u8(b)
    if count >= 0xFE:
        bit_levels = _flag(q, "bit_levels", count == 0xFE)
    else:
        rb_need(b, count * 2, "bit_levels")
        p = b.buf + b.pos
        bit_levels = [(p[2 * i], p[2 * i + 1]) for i in range(count)]
        b.pos += count * 2
    return _Alarm(
        level=level, flags=flags, battery_faults=battery, motor_faults=motor,
        engine_faults=engine, other_faults=other, bit_levels=bit_levels, quality=q,
    )


cdef object _cell_voltages(RBuf* b, bint v16):
    cdef dict q
    cdef Py_ssize_t count, i
    cdef long current_offset = 10000 if v16 else 30000
    rb_need(b, 1, "pack count")
    count = rb_u8(b)
    packs = []
    for i in range(count):
        q = {}
        rb_need(b, 5, "number")
        number = _bi(b, "number", q, 0)
        voltage = _wf(b, "voltage_v", q, 10, 0)
        current = _wf(b, "current_a", q, 10, current_offset)
        if v16:
            rb_need(b, 4, "total_cells")
            total_cells = _wi(b, "total_cells", q, 0)
            first_cell = _wi(b, "first_cell", q, 0)
            cells = _counted(b, 1, 2, "cells")
            packs.append(_PackVoltage(
                number=number, voltage_v=voltage, current_a=current, cells_raw=cells,
                total_cells=total_cells, first_cell=first_cell, quality=q,
            ))
        else:
            cells = _counted(b, 2, 2, "cells")
            packs.append(_PackVoltage(
                number=number, voltage_v=voltage, current_a=current, cells_raw=cells, quality=q,
            ))
    return _CellVoltages(packs=packs)


cdef object _battery_temps(RBuf* b):
    cdef dict q
    cdef Py_ssize_t count, i
    rb_need(b, 1, "pack count")
    count = rb_u8(b)
    packs = []
    for i in range(count):
        q = {}
        rb_need(b, 1, "number")
        number = _bi(b, "number", q, 0)
        temps = _counted(b, 2, 1, "probes")
        packs.append(_PackTemps(number=number, temps_raw=temps, quality=q))
    return _BatteryTemps(packs=packs)


cdef object _fuel_cell_stacks(RBuf* b):
    cdef dict q
    cdef Py_ssize_t count, i
    rb_need(b, 1, "stack count")
    count = rb_u8(b)
    stacks = []
    for i in range(count):
        q = {}
        rb_need(b, 10, "number")
        number = _bi(b, "number", q, 0)
        voltage = _wf(b, "voltage_v", q, 10, 0)
        current = _wf(b, "current_a", q, 10, 0)
        h2_inlet = _wf(b, "h2_inlet_kpa", q, 10, 1000)
        air_inlet = _wf(b, "air_inlet_kpa", q, 10, 1000)
        air_temp = _bi(b, "air_inlet_temp_c", q, 40)
        temps = _counted(b, 2, 1, "stack probes")
        stacks.append(_FuelCellStack(
            number=number, voltage_v=voltage, current_a=current, h2_inlet_kpa=h2_inlet,
            air_inlet_kpa=air_inlet, air_inlet_temp_c=air_temp, temps_raw=temps, quality=q,
        ))
    return _FuelCellStacks(stacks=stacks)


cdef object _super_cap(RBuf* b):
    cdef dict q = {}
    rb_need(b, 5, "number")
    number = _bi(b, "number", q, 0)
    voltage = _wf(b, "voltage_v", q, 10, 0)
    current = _wf(b, "current_a", q, 10, 30000)
    cells = _counted(b, 2, 2, "super-cap cells")
    temps = _counted(b, 2, 1, "super-cap probes")
    return _SuperCap(
        number=number, voltage_v=voltage, current_a=current, cells_raw=cells, temps_raw=temps,
        quality=q,
    )


cdef object _super_cap_extremes(RBuf* b):
    cdef dict q = {}
    rb_need(b, 18, "max_v_subsystem")
    return _SuperCapExtremes(
        max_v_subsystem=_bi(b, "max_v_subsystem", q, 0),
        max_v_index=_wi(b, "max_v_index", q, 0),
        max_v=_wf(b, "max_v", q, 1000, 0),
        min_v_subsystem=_bi(b, "min_v_subsystem", q, 0),
        min_v_index=_wi(b, "min_v_index", q, 0),
        min_v=_wf(b, "min_v", q, 1000, 0),
        max_t_subsystem=_bi(b, "max_t_subsystem", q, 0),
        max_t_index=_wi(b, "max_t_index", q, 0),
        max_temp_c=_bi(b, "max_temp_c", q, 40),
        min_t_subsystem=_bi(b, "min_t_subsystem", q, 0),
        min_t_index=_wi(b, "min_t_index", q, 0),
        min_temp_c=_bi(b, "min_temp_c", q, 40),
        quality=q,
    )


cdef object _prefixed(RBuf* b, str what):
    """WORD length + bytes."""
    cdef Py_ssize_t n
    if b.end - b.pos < 2:
        rb_truncated(b, 2, what + " length")
    n = rb_u16(b)
    rb_need(b, n, what)
    return _bytes(b, n)


cdef object _signature(RBuf* b):
    """Signature after its 0xFF marker; it must end the body."""
    cdef uint8_t algorithm
    rb_need(b, 1, "signature algorithm")
    algorithm = rb_u8(b)
    r = _prefixed(b, "signature R")
    s = _prefixed(b, "signature S")
    if b.pos != b.end:
        raise _ProtocolError(
            _R_TRAILING_BYTES, f"{b.end - b.pos} bytes after the signature block", b.pos
        )
    return _Signature(algorithm=algorithm, r=r, s=s)


cdef object _custom(RBuf* b, uint8_t info_type):
    cdef Py_ssize_t n
    if b.end - b.pos < 2:
        rb_truncated(b, 2, f"custom block 0x{info_type:02X} length")
    n = rb_u16(b)
    if b.end - b.pos < n:
        rb_truncated(b, n, f"custom block 0x{info_type:02X}")
    return _CustomBlock(info_type=info_type, data=_bytes(b, n))


cdef object _decode_realtime(RBuf* b, bint v16):
    """Time, then [info type + block] to the end of the body, in wire order."""
    cdef uint8_t t
    time = _decode_time(b)
    blocks = []
    while b.pos < b.end:
        t = rb_u8(b)
        if t == 0x01:
            block = _vehicle(b, v16)
        elif t == 0x02:
            block = _motors(b, v16)
        elif t == 0x03:
            block = _fuel_cell(b) if v16 else _fuel_cell_engine(b)
        elif t == 0x04:
            block = _engine(b, v16)
        elif t == 0x05:
            block = _position(b, v16)
        elif t == 0x06 and v16:
            block = _extremes(b)
        elif t == (0x07 if v16 else 0x06):
            block = _alarm(b, v16)
        elif t == (0x08 if v16 else 0x07):
            block = _cell_voltages(b, v16)
        elif t == (0x09 if v16 else 0x08):
            block = _battery_temps(b)
        elif t == 0x30 and not v16:
            block = _fuel_cell_stacks(b)
        elif t == 0x31 and not v16:
            block = _super_cap(b)
        elif t == 0x32 and not v16:
            block = _super_cap_extremes(b)
        elif 0x80 <= t <= 0xFE:
            block = _custom(b, t)
        elif t == 0xFF and not v16:
            block = _signature(b)
        else:  # an unknown standard type has no length: stop, keep the rest raw
            block = _Unparsed(info_type=t, data=_bytes(b, b.end - b.pos))
        blocks.append(block)
    return _RealtimeData(time=time, blocks=blocks)


# --------------------------------------------------------------------------- bodies and frames


cdef inline bint _has_decoder(int command, int response, int version) noexcept:
    """reference._body_decoder(...) is not None."""
    if command == 0x80 or 0x01 <= command <= 0x06 or command == 0x81 or command == 0x82:
        return True
    return version == 2025 and 0x09 <= command <= 0x0B


cdef object _decode_body(
    RBuf* b, bytes src, int version, int command, int response, int encryption
):
    """The data unit in b (src holds the same bytes) as a typed body (reference.decode_body)."""
    cdef Py_ssize_t size = b.end - b.pos
    cdef bint empty_command = command == 0x07 or command == 0x08
    if 0x02 <= encryption <= 0x05:  # encrypted: kept raw
        return _RawBody(data=src[b.pos:b.end])
    if empty_command or (response != 0xFE and _has_decoder(command, response, version)):
        if size == 0:
            return _Empty()
        if size == TIME_SIZE:
            return _TimeOnly(time=_decode_time(b))
        if empty_command:
            raise _ProtocolError(_R_TRAILING_BYTES, f"{size} bytes in an empty body", b.pos)
    if command == 0x02 or command == 0x03:
        return _decode_realtime(b, version == 2016)
    # Logins, platform login/logout, parameters, control, 2025 security, unknown commands:
    # rare, so the reference decodes them (same results by construction).
    return _ref_decode_body(src[:b.end], b.pos, version, command, response, encryption)


def decode_body(data, offset, version, command, response, encryption):
    """The data unit from ``offset`` to the end of ``data`` as a typed body."""
    cdef RBuf b
    if type(data) is not bytes:
        data = bytes(data)
    if not (
        type(offset) is int and 0 <= offset <= len(data) and (version == 2016 or version == 2025)
        and type(command) is int and 0 <= command <= 0xFF
        and type(response) is int and 0 <= response <= 0xFF
        and type(encryption) is int and 0 <= encryption <= 0xFF
    ):  # out-of-range arguments: let the reference say what they mean
        return _ref_decode_body(data, offset, version, command, response, encryption)
    b.buf = <const uint8_t*>PyBytes_AS_STRING(data)
    b.pos = offset
    b.end = PyBytes_GET_SIZE(data)
    return _decode_body(&b, <bytes>data, 2016 if version == 2016 else 2025, command, response,
                        encryption)


cdef object _decode_frame(bytes frame):
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(frame)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(frame)
    cdef Py_ssize_t length, expected
    cdef uint8_t want
    cdef int version
    cdef RBuf b
    if n >= 2 and not (p[0] == p[1] and (p[0] == 0x23 or p[0] == 0x24)):
        raise _ProtocolError(_R_BAD_START, f"start bytes {frame[:2].hex()}", 0)
    if n < HEADER_SIZE + 1:
        raise _ProtocolError(_R_TRUNCATED, f"{n} bytes, a frame has >= 25", n)
    length = (<Py_ssize_t>p[22] << 8) | p[23]
    if length > MAX_DATA_LENGTH:
        raise _ProtocolError(_R_BAD_LENGTH, f"data-unit length {length} > 65531", 22)
    expected = HEADER_SIZE + length + 1
    if n < expected:
        raise _ProtocolError(_R_TRUNCATED, f"{n} bytes, header says {expected}", 22)
    if n > expected:
        raise _ProtocolError(_R_BAD_LENGTH, f"{n} bytes, header says {expected}", 22)
    want = _xor(p + 2, n - 3)
    if want != p[n - 1]:
        raise _ProtocolError(
            _R_BAD_CHECKSUM, f"BCC 0x{p[n - 1]:02X}, computed 0x{want:02X}", n - 1
        )
    version = 2016 if p[0] == 0x23 else 2025
    b.buf = p
    b.pos = HEADER_SIZE
    b.end = n - 1
    body = _decode_body(&b, frame, version, p[2], p[3], p[21])
    return _Frame(
        version=version, command=p[2], response=p[3], vin=_vin(p + 4), encryption=p[21],
        body=body,
    )


def decode_frame(frame) -> Frame:
    """Decode one whole frame (start bytes to BCC); raises ProtocolError on bad input."""
    if type(frame) is not bytes:
        frame = bytes(frame)
    try:
        return _decode_frame(<bytes>frame)
    except ProtocolError as exc:
        if exc.raw:
            raise
        raise _ProtocolError(exc.reason, exc.message, exc.offset, frame) from None


# --------------------------------------------------------------------------- encoding helpers


cdef inline double _py_round(double x) noexcept:
    """Python's round(float): half to even."""
    cdef double r = c_round(x)
    if fabs(x - r) == 0.5:
        r = 2.0 * c_round(x / 2.0)
    return r


cdef int _raw(WBuf* w, long long raw, int size, str what) except -1:
    """Write raw big-endian in size bytes; BAD_VALUE when it does not fit (reference._put)."""
    if raw < 0 or (size < 8 and raw >= (<long long>1 << (8 * size))):
        raise _ProtocolError(_R_BAD_VALUE, f"{what}={raw} does not fit in {size} bytes")
    if size == 1:
        wb_u8(w, <uint8_t>raw)
    elif size == 2:
        wb_u16(w, <uint16_t>raw)
    else:
        wb_u32(w, <uint32_t>raw)
    return 0


cdef inline bint _small_int(object value, long long* out):
    """True and *out when value is an exact int within +-2**40 (no overflow below)."""
    cdef int overflow = 0
    cdef long long v = 0
    if type(value) is not int:
        return False
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v > (<long long>1 << 40) or v < -(<long long>1 << 40):
        return False
    out[0] = v
    return True


cdef int _put(WBuf* w, object value, int size, str what) except -1:
    """reference._put for any value: exact ints natively, the rest with Python semantics."""
    cdef long long v = 0
    if _small_int(value, &v):
        return _raw(w, v, size, what)
    if not 0 <= value < (<object>1) << (8 * size):  # a Python int shift, not a C one
        raise _ProtocolError(_R_BAD_VALUE, f"{what}={value} does not fit in {size} bytes")
    return _data(w, value.to_bytes(size, "big"))


cdef int _data(WBuf* w, object raw) except -1:
    """Append a bytes-like object (``bytes + raw`` in the reference: buffers only)."""
    cdef Py_buffer view
    if type(raw) is bytes:
        wb_reserve(w, PyBytes_GET_SIZE(raw))
        memcpy(w.buf + w.len, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
        w.len += PyBytes_GET_SIZE(raw)
        return 0
    PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE)
    try:
        wb_reserve(w, view.len)
        memcpy(w.buf + w.len, view.buf, view.len)
        w.len += view.len
    finally:
        PyBuffer_Release(&view)
    return 0


cdef inline int _sentinel(WBuf* w, object quality, str name, int size) except -1:
    """None writes the sentinel its quality names (invalid when absent)."""
    cdef bint abnormal = quality.get(name) == _ABNORMAL
    if size == 1:
        return wb_u8(w, 0xFE if abnormal else 0xFF)
    if size == 2:
        return wb_u16(w, 0xFFFE if abnormal else 0xFFFF)
    return wb_u32(w, 0xFFFFFFFE if abnormal else 0xFFFFFFFF)


cdef int _ef(WBuf* w, object value, str name, object q, int size, long div, long off) except -1:
    """One reference.Field: None -> sentinel, (value * div rounded) + off, or int(value) + off."""
    cdef double d
    cdef long long v = 0
    if value is None:
        return _sentinel(w, q, name, size)
    if div:
        if type(value) is float:
            d = PyFloat_AS_DOUBLE(value) * div
            if isfinite(d) and fabs(d) < 1e15:
                return _raw(w, <long long>_py_round(d) + off, size, name)
        elif _small_int(value, &v):
            return _raw(w, v * div + off, size, name)
        return _put(w, round(value * div) + off, size, name)
    if _small_int(value, &v):
        return _raw(w, v + off, size, name)
    return _put(w, int(value) + off, size, name)


cdef int _put_len(WBuf* w, Py_ssize_t n, int size, str what, str suffix) except -1:
    """A count or length field (the message is only built when it does not fit)."""
    if n >= (<Py_ssize_t>1 << (8 * size)):
        raise _ProtocolError(_R_BAD_VALUE, f"{what}{suffix}={n} does not fit in {size} bytes")
    return _raw(w, n, size, what)


cdef int _put_counted(WBuf* w, object raw, int count_size, int item_size, str what) except -1:
    cdef Py_ssize_t n = len(raw)
    if n % item_size:
        raise _ProtocolError(_R_BAD_VALUE, f"{what}: {n} bytes, not whole items")
    _put_len(w, n // item_size, count_size, what, " count")
    return _data(w, raw)


cdef int _put_prefixed(WBuf* w, object raw, str what) except -1:
    _put_len(w, len(raw), 2, what, " length")
    return _data(w, raw)


cdef int _encode_time(WBuf* w, object t) except -1:
    raw = t.raw
    if len(raw) != TIME_SIZE:
        raise _ProtocolError(_R_BAD_VALUE, f"time must be 6 raw bytes, got {len(raw)}")
    return _data(w, raw if type(raw) is bytes else bytes(raw))


# --------------------------------------------------------------------------- field specs
#
# The encoders walk field tables like the reference's Field tuples. Reading a Struct field with
# getattr() costs more than encoding it, so a _Spec also records each field's slot offset
# (from the class's member descriptor, looked up by name at import) and reads the slot
# directly when the object is of exactly that class; anything else goes through getattr().

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

cdef enum:
    _MAX_SPEC = 16


cdef class _Spec:
    """(name, size, div, offset) fields of one Struct class, in wire order."""

    cdef object cls
    cdef tuple names
    cdef Py_ssize_t n
    cdef Py_ssize_t slot[_MAX_SPEC]  # -1: read with getattr()
    cdef int size[_MAX_SPEC]
    cdef long div[_MAX_SPEC]
    cdef long off[_MAX_SPEC]

    def __cinit__(self, cls, tuple fields):
        cdef Py_ssize_t i
        if len(fields) > _MAX_SPEC:
            raise ValueError("too many fields")
        self.cls = cls
        self.names = tuple(f[0] for f in fields)
        self.n = len(fields)
        for i, field in enumerate(fields):
            # (name, size, div, offset) or a layouts.Field; every field here has sentinels
            name, size, div, off = field[0], field[1], field[2], field[3]
            if len(field) > 4 and not field[4]:
                raise ValueError(f"{name}: fields without sentinels are read separately")
            self.size[i] = size
            self.div[i] = div
            self.off[i] = off
            self.slot[i] = -1
            for klass in cls.__mro__:
                desc = klass.__dict__.get(name)
                if desc is not None:
                    if type(desc) is MemberDescriptorType:
                        self.slot[i] = (<PyMemberDescrObject*>desc).d_member.offset
                    break


cdef inline object _field(object obj, _Spec spec, Py_ssize_t i, bint exact):
    """Field i of obj: its slot when obj is exactly spec.cls, else getattr()."""
    cdef PyObject* value
    if exact and spec.slot[i] >= 0:
        value = (<PyObject**>((<char*><PyObject*>obj) + spec.slot[i]))[0]
        if value is not NULL:
            return <object>value
    return getattr(obj, <str>spec.names[i])


cdef int _enc_spec(WBuf* w, object obj, _Spec spec, object q) except -1:
    """Every field of spec (reference._encode_fields)."""
    cdef Py_ssize_t i
    cdef bint exact = type(obj) is spec.cls
    for i in range(spec.n):
        _ef(w, _field(obj, spec, i, exact), <str>spec.names[i], q, spec.size[i], spec.div[i],
            spec.off[i])
    return 0


cdef tuple _current(str name, bint v16):
    return (name, 2, 10, 10000 if v16 else 30000)


cdef tuple _VEHICLE_HEAD = (
    ("vehicle_state", 1, 0, 0),
    ("charge_state", 1, 0, 0),
    ("run_mode", 1, 0, 0),
    ("speed_kmh", 2, 10, 0),
    ("odometer_km", 4, 10, 0),
    ("total_voltage_v", 2, 10, 0),
)
cdef tuple _VEHICLE_MID = (("soc_pct", 1, 0, 0), ("dcdc_state", 1, 0, 0))
cdef _Spec _VEHICLE_HEAD_16 = _Spec(
    VehicleData, _VEHICLE_HEAD + (_current("total_current_a", True),) + _VEHICLE_MID
)
cdef _Spec _VEHICLE_HEAD_25 = _Spec(
    VehicleData, _VEHICLE_HEAD + (_current("total_current_a", False),) + _VEHICLE_MID
)
cdef _Spec _VEHICLE_TAIL_16 = _Spec(
    VehicleData, (("insulation_kohm", 2, 0, 0), ("accel_pct", 1, 0, 0))
)
cdef _Spec _VEHICLE_TAIL_25 = _Spec(VehicleData, (("insulation_kohm", 2, 0, 0),))
cdef _Spec _MOTOR_16 = _Spec(Motor, _L.MOTOR_2016)
cdef _Spec _MOTOR_25 = _Spec(Motor, _L.MOTOR_2025)
cdef _Spec _FUEL_CELL_HEAD = _Spec(FuelCell, _L.FUEL_CELL_HEAD)
cdef _Spec _FUEL_CELL_TAIL = _Spec(FuelCell, _L.FUEL_CELL_TAIL)
cdef _Spec _FUEL_CELL_ENGINE = _Spec(FuelCellEngine, _L.FUEL_CELL_ENGINE)
cdef _Spec _ENGINE_16 = _Spec(Engine, _L.ENGINE_2016)
cdef _Spec _ENGINE_25 = _Spec(Engine, _L.ENGINE_2025)
cdef _Spec _COORD_SYSTEM = _Spec(Position, (("coord_system", 1, 0, 0),))
cdef _Spec _EXTREMES = _Spec(Extremes, _L.EXTREMES)
cdef _Spec _ALARM_LEVEL = _Spec(Alarm, (("level", 1, 0, 0),))
cdef _Spec _PACK_HEAD_16 = _Spec(
    PackVoltage, (("number", 1, 0, 0), ("voltage_v", 2, 10, 0), _current("current_a", True))
)
cdef _Spec _PACK_HEAD_25 = _Spec(
    PackVoltage, (("number", 1, 0, 0), ("voltage_v", 2, 10, 0), _current("current_a", False))
)
cdef _Spec _PACK_TAIL_16 = _Spec(PackVoltage, (("total_cells", 2, 0, 0), ("first_cell", 2, 0, 0)))
cdef _Spec _PACK_TEMPS = _Spec(PackTemps, (("number", 1, 0, 0),))
cdef _Spec _STACK = _Spec(FuelCellStack, _L.STACK)
cdef _Spec _SUPER_CAP = _Spec(SuperCap, _L.SUPER_CAP)
cdef _Spec _SUPER_CAP_EXTREMES = _Spec(SuperCapExtremes, _L.SUPER_CAP_EXTREMES)


# --------------------------------------------------------------------------- block encoders


cdef int _enc_vehicle(WBuf* w, object k, bint v16) except -1:
    q = k.quality
    _enc_spec(w, k, _VEHICLE_HEAD_16 if v16 else _VEHICLE_HEAD_25, q)
    _put(w, k.gear_byte, 1, "gear_byte")
    _enc_spec(w, k, _VEHICLE_TAIL_16 if v16 else _VEHICLE_TAIL_25, q)
    if v16:
        brake_pct = k.brake_pct
        if brake_pct is not None:
            _put(w, brake_pct, 1, "brake_pct")
        elif k.brake_on:
            wb_u8(w, 0x65)
        else:
            wb_u8(w, 0xFE if q.get("brake_pct") == _ABNORMAL else 0xFF)
    return 0


cdef int _enc_motors(WBuf* w, object k, bint v16) except -1:
    cdef _Spec spec = _MOTOR_16 if v16 else _MOTOR_25
    motors = k.motors
    _put_len(w, len(motors), 1, "motor", " count")
    for motor in motors:
        _enc_spec(w, motor, spec, motor.quality)
    return 0


cdef int _enc_fuel_cell(WBuf* w, object k) except -1:
    q = k.quality
    _enc_spec(w, k, _FUEL_CELL_HEAD, q)
    _put_counted(w, k.temps_raw, 2, 1, "fuel-cell probes")
    return _enc_spec(w, k, _FUEL_CELL_TAIL, q)


cdef int _enc_coord(WBuf* w, object value, str name, object q) except -1:
    """Degrees as abs(value) * 1e6 (the status byte carries the signs)."""
    cdef double d
    if value is None:
        return _sentinel(w, q, name, 4)
    if type(value) is float:
        d = fabs(PyFloat_AS_DOUBLE(value)) * 1000000
        if isfinite(d) and d < 1e15:
            return _raw(w, <long long>_py_round(d), 4, name)
    return _put(w, round(abs(value) * 1000000), 4, name)


cdef int _enc_position(WBuf* w, object k, bint v16) except -1:
    q = k.quality
    _put(w, k.status, 1, "status")
    if not v16:
        _enc_spec(w, k, _COORD_SYSTEM, q)
    _enc_coord(w, k.lon, "lon", q)
    return _enc_coord(w, k.lat, "lat", q)


cdef int _enc_list(WBuf* w, object items, str name, object q, bint pairs) except -1:
    """Count BYTE + DWORD codes (or (bit, level) BYTE pairs); None -> 0xFE / 0xFF count."""
    cdef Py_ssize_t at, count = 0
    if items is None:
        return wb_u8(w, 0xFE if q.get(name) == _ABNORMAL else 0xFF)
    at = w.len
    wb_u8(w, 0)  # the count, set below (items are checked first, as in the reference)
    for item in items:
        if pairs:
            bit, level = item
            _put(w, bit, 1, "bit")
            _put(w, level, 1, "level")
        else:
            _put(w, item, 4, name)
        count += 1
    if count >= 0xFE:
        raise _ProtocolError(_R_BAD_VALUE, f"{name}: {count} items, at most 253")
    w.buf[at] = <uint8_t>count
    return 0


cdef int _enc_alarm(WBuf* w, object k, bint v16) except -1:
    q = k.quality
    _enc_spec(w, k, _ALARM_LEVEL, q)
    _put(w, k.flags, 4, "flags")
    _enc_list(w, k.battery_faults, "battery_faults", q, False)
    _enc_list(w, k.motor_faults, "motor_faults", q, False)
    _enc_list(w, k.engine_faults, "engine_faults", q, False)
    _enc_list(w, k.other_faults, "other_faults", q, False)
    if not v16:
        _enc_list(w, k.bit_levels, "bit_levels", q, True)
    return 0


cdef int _enc_cell_voltages(WBuf* w, object k, bint v16) except -1:
    cdef _Spec head = _PACK_HEAD_16 if v16 else _PACK_HEAD_25
    packs = k.packs
    _put_len(w, len(packs), 1, "pack", " count")
    for p in packs:
        q = p.quality
        _enc_spec(w, p, head, q)
        if v16:
            _enc_spec(w, p, _PACK_TAIL_16, q)
            _put_counted(w, p.cells_raw, 1, 2, "cells")
        else:
            _put_counted(w, p.cells_raw, 2, 2, "cells")
    return 0


cdef int _enc_battery_temps(WBuf* w, object k) except -1:
    packs = k.packs
    _put_len(w, len(packs), 1, "pack", " count")
    for p in packs:
        _enc_spec(w, p, _PACK_TEMPS, p.quality)
        _put_counted(w, p.temps_raw, 2, 1, "probes")
    return 0


cdef int _enc_fuel_cell_stacks(WBuf* w, object k) except -1:
    stacks = k.stacks
    _put_len(w, len(stacks), 1, "stack", " count")
    for s in stacks:
        _enc_spec(w, s, _STACK, s.quality)
        _put_counted(w, s.temps_raw, 2, 1, "probes")
    return 0


cdef int _enc_super_cap(WBuf* w, object k) except -1:
    _enc_spec(w, k, _SUPER_CAP, k.quality)
    _put_counted(w, k.cells_raw, 2, 2, "cells")
    return _put_counted(w, k.temps_raw, 2, 1, "probes")


cdef int _enc_signature(WBuf* w, object k) except -1:
    _put(w, k.algorithm, 1, "algorithm")
    _put_prefixed(w, k.r, "signature R")
    return _put_prefixed(w, k.s, "signature S")


cdef int _enc_custom(WBuf* w, object block) except -1:
    cdef long long it = 0
    info_type = block.info_type
    if not 0x80 <= info_type <= 0xFE:
        raise _ProtocolError(_R_BAD_VALUE, f"custom type 0x{info_type:02X}")
    if _small_int(info_type, &it):
        wb_u8(w, <uint8_t>it)
    else:
        _data(w, bytes((info_type,)))
    return _put_prefixed(w, block.data, "custom block")


cdef int _enc_unparsed(WBuf* w, object block) except -1:
    _put(w, block.info_type, 1, "info type")
    return _data(w, block.data)


cdef int _enc_block(WBuf* w, object block, bint v16) except -1:
    """One realtime block with its info-type byte (reference.encode_block).

    Exact type checks first: isinstance() against a msgspec Struct class goes through the
    metaclass's __instancecheck__ and costs more than encoding a small block.
    """
    tp = type(block)
    if tp is _CustomBlock:
        return _enc_custom(w, block)
    if tp is _Unparsed:
        return _enc_unparsed(w, block)
    if tp is _VehicleData:
        wb_u8(w, 0x01)
        return _enc_vehicle(w, block, v16)
    if tp is _DriveMotors:
        wb_u8(w, 0x02)
        return _enc_motors(w, block, v16)
    if tp is _Engine:
        wb_u8(w, 0x04)
        return _enc_spec(w, block, _ENGINE_16 if v16 else _ENGINE_25, block.quality)
    if tp is _Position:
        wb_u8(w, 0x05)
        return _enc_position(w, block, v16)
    if tp is _Alarm:
        wb_u8(w, 0x07 if v16 else 0x06)
        return _enc_alarm(w, block, v16)
    if tp is _CellVoltages:
        wb_u8(w, 0x08 if v16 else 0x07)
        return _enc_cell_voltages(w, block, v16)
    if tp is _BatteryTemps:
        wb_u8(w, 0x09 if v16 else 0x08)
        return _enc_battery_temps(w, block)
    if v16:
        if tp is _FuelCell:
            wb_u8(w, 0x03)
            return _enc_fuel_cell(w, block)
        if tp is _Extremes:
            wb_u8(w, 0x06)
            return _enc_spec(w, block, _EXTREMES, block.quality)
    else:
        if tp is _FuelCellEngine:
            wb_u8(w, 0x03)
            return _enc_spec(w, block, _FUEL_CELL_ENGINE, block.quality)
        if tp is _FuelCellStacks:
            wb_u8(w, 0x30)
            return _enc_fuel_cell_stacks(w, block)
        if tp is _SuperCap:
            wb_u8(w, 0x31)
            return _enc_super_cap(w, block)
        if tp is _SuperCapExtremes:
            wb_u8(w, 0x32)
            return _enc_spec(w, block, _SUPER_CAP_EXTREMES, block.quality)
        if tp is _Signature:
            wb_u8(w, 0xFF)
            return _enc_signature(w, block)
    if isinstance(block, CustomBlock):  # subclasses, as in the reference
        return _enc_custom(w, block)
    if isinstance(block, Unparsed):
        return _enc_unparsed(w, block)
    raise _ProtocolError(
        _R_BAD_VALUE, f"{tp.__name__} is not a {2016 if v16 else 2025} block"
    )


cdef int _encode_body(WBuf* w, object body, int version) except -1:
    cdef bint v16 = version == 2016
    if type(body) is _RealtimeData:
        _encode_time(w, body.time)
        for block in body.blocks:
            _enc_block(w, block, v16)
        return 0
    if isinstance(body, RawBody):
        return _data(w, bytes(body.data))
    if isinstance(body, Empty):
        return 0
    # Rare bodies: the reference encodes them.
    return _data(w, _ref_encode_body(body, version))


cdef inline int _wb_init(WBuf* w, Py_ssize_t cap) except -1:
    w.buf = <uint8_t*>PyMem_Malloc(cap)
    if w.buf is NULL:
        raise MemoryError()
    w.len = 0
    w.cap = cap
    return 0


def encode_body(body, version) -> bytes:
    """The data unit of a body (``RawBody`` as is, ``Empty`` as nothing)."""
    cdef WBuf w
    if not (version == 2016 or version == 2025):
        return _ref_encode_body(body, version)
    _wb_init(&w, 512)
    try:
        _encode_body(&w, body, 2016 if version == 2016 else 2025)
        return PyBytes_FromStringAndSize(<const char*>w.buf, w.len)
    finally:
        PyMem_Free(w.buf)


cdef int _encode_vin(WBuf* w, object vin) except -1:
    """17 bytes, NUL-padded (ASCII natively, anything else through reference.encode_text)."""
    cdef Py_ssize_t n
    if type(vin) is str and (<str>vin).isascii() and len(<str>vin) <= 17:
        raw = (<str>vin).encode("ascii")
        n = PyBytes_GET_SIZE(raw)
        wb_reserve(w, 17)
        memcpy(w.buf + w.len, PyBytes_AS_STRING(raw), n)
        memset(w.buf + w.len + n, 0, 17 - n)
        w.len += 17
        return 0
    return _data(w, _ref_encode_text(vin, 17, "vin"))


def encode_frame(msg) -> bytes:
    """Encode a Frame: header, data unit, computed length and BCC."""
    cdef WBuf w
    cdef Py_ssize_t length
    cdef uint8_t start
    version = msg.version
    start_bytes = _START_BY_VERSION.get(version)  # a dict lookup, as in the reference
    if start_bytes is None:
        raise _ProtocolError(_R_BAD_VALUE, f"version {version} is not 2016 or 2025")
    start = 0x23 if start_bytes == b"##" else 0x24
    _wb_init(&w, 1024)
    try:
        w.len = HEADER_SIZE  # the header is written once the body length is known
        _encode_body(&w, msg.body, 2016 if start == 0x23 else 2025)
        length = w.len - HEADER_SIZE
        if length > MAX_DATA_LENGTH:
            raise _ProtocolError(_R_TOO_LARGE, f"data unit of {length} bytes > 65531")
        body_end = w.len
        w.len = 2
        _put(&w, msg.command, 1, "command")
        _put(&w, msg.response, 1, "response")
        _encode_vin(&w, msg.vin)
        _put(&w, msg.encryption, 1, "encryption")
        w.buf[0] = start
        w.buf[1] = start
        w.buf[22] = <uint8_t>(length >> 8)
        w.buf[23] = <uint8_t>length
        w.len = body_end
        wb_u8(&w, _xor(w.buf + 2, w.len - 2))
        return PyBytes_FromStringAndSize(<const char*>w.buf, w.len)
    finally:
        PyMem_Free(w.buf)


# --------------------------------------------------------------------------- stream reader


cdef inline Py_ssize_t _find_start(const uint8_t* p, Py_ssize_t start, Py_ssize_t n) noexcept:
    """Index of the first "##" or "$$" at or after start, -1 if none."""
    cdef Py_ssize_t i = start
    cdef uint8_t c
    while i + 1 < n:
        c = p[i]
        if (c == 0x23 or c == 0x24) and p[i + 1] == c:
            return i
        i += 1
    return -1


cdef object _AGAIN = object()  # FrameReader._garbage: consumed nothing, look again


cdef class FrameReader:
    """Split a byte stream into checked frames and BadFrame reports (sans-IO)."""

    cdef bytearray _buf
    cdef Py_ssize_t _max
    cdef Py_ssize_t _pos  # start of unconsumed bytes
    cdef Py_ssize_t _search  # no start marker begins in [_pos, _search)
    cdef Py_ssize_t _quiet  # bytes before this were already reported in a bad-checksum frame

    def __init__(self, Py_ssize_t max_frame_size=DEFAULT_MAX_FRAME):
        self._buf = bytearray()
        self._max = max_frame_size
        self._pos = 0
        self._search = 0
        self._quiet = 0

    @property
    def buffered(self) -> int:
        """Bytes held, waiting for more data."""
        return PyByteArray_GET_SIZE(self._buf) - self._pos

    def feed(self, data) -> None:
        """Append received bytes (any chunking)."""
        self._buf += data

    def __iter__(self):
        return self

    def __next__(self):
        event = self._next()
        if event is None:
            raise StopIteration
        return event

    def next_event(self):
        """The next frame or BadFrame, or None when more data is needed."""
        return self._next()

    cdef int _compact(self) except -1:
        cdef Py_ssize_t pos = self._pos
        if pos >= COMPACT_AT and pos * 2 >= PyByteArray_GET_SIZE(self._buf):
            del self._buf[:pos]
            self._search = max(0, self._search - pos)
            self._quiet = max(0, self._quiet - pos)
            self._pos = 0
        return 0

    cdef object _consume(self, Py_ssize_t size, object reason, str message):
        cdef const char* p = PyByteArray_AS_STRING(self._buf)
        raw = PyBytes_FromStringAndSize(p + self._pos, size)
        self._pos += size
        if reason is None:
            return raw
        return _BadFrame(raw=raw, reason=reason, offset=0, message=message)

    cdef object _next(self):
        cdef const uint8_t* p
        cdef Py_ssize_t n, pos
        while True:
            self._compact()
            p = <const uint8_t*>PyByteArray_AS_STRING(self._buf)
            n = PyByteArray_GET_SIZE(self._buf)
            pos = self._pos
            if n - pos < 2:
                return None
            if p[pos] == p[pos + 1] and (p[pos] == 0x23 or p[pos] == 0x24):
                event = self._at_start()
            else:
                event = self._garbage()
            if event is not _AGAIN:
                return event

    cdef object _garbage(self):
        """Report the bytes at _pos up to the next start marker (_AGAIN: nothing to report)."""
        cdef const uint8_t* p = <const uint8_t*>PyByteArray_AS_STRING(self._buf)
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(self._buf)
        cdef Py_ssize_t pos = self._pos
        cdef Py_ssize_t end, quiet_end
        cdef Py_ssize_t found = _find_start(p, max(pos, self._search), n)
        if found < 0:
            self._search = n - 1  # the last byte may begin a marker
            if n - pos < self._max:
                return None
            end = n - 1
        else:
            end = found
        quiet_end = min(end, max(pos, self._quiet))
        self._pos = quiet_end  # bytes already reported inside a bad-checksum frame
        if quiet_end == end:
            return _AGAIN
        return self._consume(end - quiet_end, _GARBAGE, "bytes between frames")

    cdef object _at_start(self):
        cdef const uint8_t* p = <const uint8_t*>PyByteArray_AS_STRING(self._buf)
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(self._buf)
        cdef Py_ssize_t pos = self._pos
        cdef Py_ssize_t length, total
        if n - pos >= 3 and (p[pos + 2] == 0x23 or p[pos + 2] == 0x24):
            # "###" / "$$$": commands 0x23/0x24 are reserved, so the frame starts later
            self._search = pos + 1
            return self._garbage()
        if n - pos < HEADER_SIZE:
            return None
        length = (<Py_ssize_t>p[pos + 22] << 8) | p[pos + 23]
        if length > MAX_DATA_LENGTH:
            return self._consume(2, _BAD_LENGTH, f"data-unit length {length} > 65531")
        total = HEADER_SIZE + length + 1
        if total > self._max:
            return self._consume(2, _TOO_LARGE, f"frame of {total} bytes > {self._max}")
        if n - pos < total:
            return None
        if _xor(p + pos + 2, total - 3) != p[pos + total - 1]:
            raw = PyBytes_FromStringAndSize(<const char*>(p + pos), total)
            self._pos = pos + 1  # it may have been a false start: rescan from the next byte
            self._quiet = max(self._quiet, pos + total)
            return _BadFrame(raw=raw, reason=_BAD_CHECKSUM, offset=total - 1,
                             message="BCC mismatch")
        return self._consume(total, None, "")


# --------------------------------------------------------------------------- re-exports


def __getattr__(name):
    """Every other public name of the reference (per-body functions, text/time helpers)."""
    if not name.startswith("_"):
        try:
            return getattr(_ref, name)
        except AttributeError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
