"""Hypothesis strategies for GB/T 32960 realtime (0x02) / reissue (0x03) messages, both editions.

The realtime part of tests/unit/test_gbt32960_roundtrip.py, as an importable module (test modules
are not importable under ``--import-mode=importlib``): tests add ``tests/`` to ``sys.path`` and
``import strategies_gbt32960``.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

from gateway.codecs.common import ABNORMAL, INVALID, DeviceTime, gmt8_to_utc
from gateway.codecs.gbt32960 import messages as m
from gateway.codecs.gbt32960.constants import FILL_ABNORMAL

Draw = Any  # hypothesis' DrawFn
Spec = tuple[tuple[str, int, int, int], ...]  # (name, size, div, offset)

# --------------------------------------------------------------------------- primitives

ASCII = string.ascii_letters + string.digits
TEXT_ALPHABET = ASCII + "-_.:/京沪粤电池"


@st.composite
def device_times(draw: Draw) -> DeviceTime:
    """Mostly calendar times, sometimes arbitrary bytes (utc None)."""
    if draw(st.booleans()):
        raw = draw(st.binary(min_size=6, max_size=6))
    else:
        fields = (
            draw(st.integers(0, 99)),
            draw(st.integers(1, 12)),
            draw(st.integers(1, 28)),
            draw(st.integers(0, 23)),
            draw(st.integers(0, 59)),
            draw(st.integers(0, 59)),
        )
        raw = bytes(fields)
    return DeviceTime(raw=raw, utc=gmt8_to_utc(2000 + raw[0], *raw[1:]))


def gbk_text(max_bytes: int, *, fixed: bool = True, alphabet: str = TEXT_ALPHABET) -> Any:
    """Text that fits ``max_bytes`` in GBK (fixed fields: no trailing padding characters)."""
    text = st.text(alphabet=alphabet if fixed else alphabet + " ", max_size=max_bytes)
    return text.filter(lambda s: len(s.encode("gbk")) <= max_bytes)


def field(
    draw: Draw,
    q: dict[str, str],
    name: str,
    size: int,
    div: int = 0,
    off: int = 0,
    sentinel: bool = True,
) -> Any:
    """A scaled value on the wire grid, or None with a quality flag."""
    top = (1 << (8 * size)) - 1
    if sentinel and draw(st.integers(0, 7)) == 0:
        q[name] = draw(st.sampled_from([ABNORMAL, INVALID]))
        return None
    raw = draw(st.integers(0, top - 2 if sentinel else top))
    if sentinel and size > 1 and raw == FILL_ABNORMAL[size]:
        raw -= 1  # an all-0xFE fill reads as abnormal (vector GB-14)
    return (raw - off) / div if div else raw - off


def fields(draw: Draw, spec: Spec, q: dict[str, str]) -> dict[str, Any]:
    return {name: field(draw, q, name, size, div, off) for name, size, div, off in spec}


def current(version: int) -> tuple[str, int, int, int]:
    return ("current_a", 2, 10, 10000 if version == 2016 else 30000)


def packed(item: int, max_items: int) -> Any:
    return st.integers(0, max_items).flatmap(
        lambda n: st.binary(min_size=n * item, max_size=n * item)
    )


# --------------------------------------------------------------------------- realtime blocks


@st.composite
def vehicle_data(draw: Draw, version: int) -> m.VehicleData:
    q: dict[str, str] = {}
    spec: Spec = (
        ("vehicle_state", 1, 0, 0),
        ("charge_state", 1, 0, 0),
        ("run_mode", 1, 0, 0),
        ("speed_kmh", 2, 10, 0),
        ("odometer_km", 4, 10, 0),
        ("total_voltage_v", 2, 10, 0),
        ("total_current_a", 2, 10, 10000 if version == 2016 else 30000),
        ("soc_pct", 1, 0, 0),
        ("dcdc_state", 1, 0, 0),
    )
    v = fields(draw, spec, q)
    v["gear_byte"] = draw(st.integers(0, 255))
    v["insulation_kohm"] = field(draw, q, "insulation_kohm", 2, sentinel=version == 2025)
    if version == 2016:
        v["accel_pct"] = field(draw, q, "accel_pct", 1)
        kind = draw(st.sampled_from(["value", "on", "sentinel"]))
        if kind == "value":
            pct = draw(st.integers(0, 0xFD).filter(lambda x: x != 0x65))
            v["brake_pct"], v["brake_on"] = pct, pct != 0
        elif kind == "on":
            v["brake_on"] = True
        else:
            q["brake_pct"] = draw(st.sampled_from([ABNORMAL, INVALID]))
    return m.VehicleData(**v, quality=q)


@st.composite
def motor(draw: Draw, version: int) -> m.Motor:
    q: dict[str, str] = {}
    common: Spec = (("number", 1, 0, 0), ("state", 1, 0, 0), ("controller_temp_c", 1, 0, 40))
    if version == 2016:
        spec: Spec = (
            *common,
            ("speed_rpm", 2, 0, 20000),
            ("torque_nm", 2, 10, 20000),
            ("temp_c", 1, 0, 40),
            ("voltage_v", 2, 10, 0),
            current(2016),
        )
    else:
        spec = (
            *common,
            ("speed_rpm", 2, 0, 32000),
            ("torque_nm", 4, 10, 200000),
            ("temp_c", 1, 0, 40),
        )
    return m.Motor(**fields(draw, spec, q), quality=q)


@st.composite
def fuel_cell(draw: Draw) -> m.FuelCell:
    q: dict[str, str] = {}
    spec: Spec = (
        ("voltage_v", 2, 10, 0),
        ("current_a", 2, 10, 0),
        ("consumption_kg_100km", 2, 100, 0),
        ("h2_max_temp_c", 2, 10, 400),
        ("h2_max_temp_probe", 1, 0, 0),
        ("h2_max_conc_ppm", 2, 0, 0),
        ("h2_max_conc_sensor", 1, 0, 0),
        ("h2_max_pressure_mpa", 2, 10, 0),
        ("h2_max_pressure_sensor", 1, 0, 0),
        ("dcdc_state", 1, 0, 0),
    )
    return m.FuelCell(**fields(draw, spec, q), temps_raw=draw(packed(1, 20)), quality=q)


@st.composite
def fuel_cell_engine(draw: Draw) -> m.FuelCellEngine:
    q: dict[str, str] = {}
    spec: Spec = (
        ("h2_max_temp_c", 2, 0, 40),
        ("h2_max_temp_probe", 1, 0, 0),
        ("h2_max_conc", 2, 10000, 0),
        ("h2_max_conc_sensor", 1, 0, 0),
        ("h2_max_pressure_mpa", 2, 10, 0),
        ("h2_max_pressure_sensor", 1, 0, 0),
        ("dcdc_state", 1, 0, 0),
        ("h2_remaining_pct", 1, 0, 0),
        ("dcdc_temp_c", 1, 0, 40),
    )
    return m.FuelCellEngine(**fields(draw, spec, q), quality=q)


@st.composite
def engine(draw: Draw, version: int) -> m.Engine:
    q: dict[str, str] = {}
    if version == 2016:
        spec: Spec = (
            ("state", 1, 0, 0),
            ("crank_rpm", 2, 0, 0),
            ("consumption_l_100km", 2, 100, 0),
        )
    else:
        spec = (("crank_rpm", 2, 0, 0),)
    return m.Engine(**fields(draw, spec, q), quality=q)


@st.composite
def position(draw: Draw, version: int) -> m.Position:
    q: dict[str, str] = {}
    status = draw(st.integers(0, 255))
    coord = field(draw, q, "coord_system", 1) if version == 2025 else None
    lon = field(draw, q, "lon", 4, 1_000_000)
    lat = field(draw, q, "lat", 4, 1_000_000)
    if lon is not None and status & 0x04:
        lon = -lon
    if lat is not None and status & 0x02:
        lat = -lat
    return m.Position(status=status, lon=lon, lat=lat, coord_system=coord, quality=q)


@st.composite
def extremes(draw: Draw) -> m.Extremes:
    q: dict[str, str] = {}
    spec: Spec = (
        ("max_v_subsystem", 1, 0, 0),
        ("max_v_cell", 1, 0, 0),
        ("max_cell_v", 2, 1000, 0),
        ("min_v_subsystem", 1, 0, 0),
        ("min_v_cell", 1, 0, 0),
        ("min_cell_v", 2, 1000, 0),
        ("max_t_subsystem", 1, 0, 0),
        ("max_t_probe", 1, 0, 0),
        ("max_temp_c", 1, 0, 40),
        ("min_t_subsystem", 1, 0, 0),
        ("min_t_probe", 1, 0, 0),
        ("min_temp_c", 1, 0, 40),
    )
    return m.Extremes(**fields(draw, spec, q), quality=q)


def _maybe_list(draw: Draw, q: dict[str, str], name: str, items: Any) -> Any:
    if draw(st.integers(0, 5)) == 0:
        q[name] = draw(st.sampled_from([ABNORMAL, INVALID]))
        return None
    return draw(st.lists(items, max_size=5))


@st.composite
def alarm(draw: Draw, version: int) -> m.Alarm:
    q: dict[str, str] = {}
    v: dict[str, Any] = {
        "level": field(draw, q, "level", 1),
        "flags": draw(st.integers(0, 2**32 - 1)),
    }
    for name in ("battery_faults", "motor_faults", "engine_faults", "other_faults"):
        v[name] = _maybe_list(draw, q, name, st.integers(0, 2**32 - 1))
    if version == 2025:
        pair = st.tuples(st.integers(0, 255), st.integers(0, 255))
        v["bit_levels"] = _maybe_list(draw, q, "bit_levels", pair)
    return m.Alarm(**v, quality=q)


@st.composite
def pack_voltage(draw: Draw, version: int) -> m.PackVoltage:
    q: dict[str, str] = {}
    v = fields(draw, (("number", 1, 0, 0), ("voltage_v", 2, 10, 0), current(version)), q)
    if version == 2016:
        v |= fields(draw, (("total_cells", 2, 0, 0), ("first_cell", 2, 0, 0)), q)
    return m.PackVoltage(**v, cells_raw=draw(packed(2, 20)), quality=q)


@st.composite
def pack_temps(draw: Draw) -> m.PackTemps:
    q: dict[str, str] = {}
    number = field(draw, q, "number", 1)
    return m.PackTemps(number=number, temps_raw=draw(packed(1, 20)), quality=q)


@st.composite
def fuel_cell_stack(draw: Draw) -> m.FuelCellStack:
    q: dict[str, str] = {}
    spec: Spec = (
        ("number", 1, 0, 0),
        ("voltage_v", 2, 10, 0),
        ("current_a", 2, 10, 0),
        ("h2_inlet_kpa", 2, 10, 1000),
        ("air_inlet_kpa", 2, 10, 1000),
        ("air_inlet_temp_c", 1, 0, 40),
    )
    return m.FuelCellStack(**fields(draw, spec, q), temps_raw=draw(packed(1, 10)), quality=q)


@st.composite
def super_cap(draw: Draw) -> m.SuperCap:
    q: dict[str, str] = {}
    v = fields(draw, (("number", 1, 0, 0), ("voltage_v", 2, 10, 0), current(2025)), q)
    return m.SuperCap(**v, cells_raw=draw(packed(2, 10)), temps_raw=draw(packed(1, 10)), quality=q)


@st.composite
def super_cap_extremes(draw: Draw) -> m.SuperCapExtremes:
    q: dict[str, str] = {}
    spec: Spec = (
        ("max_v_subsystem", 1, 0, 0),
        ("max_v_index", 2, 0, 0),
        ("max_v", 2, 1000, 0),
        ("min_v_subsystem", 1, 0, 0),
        ("min_v_index", 2, 0, 0),
        ("min_v", 2, 1000, 0),
        ("max_t_subsystem", 1, 0, 0),
        ("max_t_index", 2, 0, 0),
        ("max_temp_c", 1, 0, 40),
        ("min_t_subsystem", 1, 0, 0),
        ("min_t_index", 2, 0, 0),
        ("min_temp_c", 1, 0, 40),
    )
    return m.SuperCapExtremes(**fields(draw, spec, q), quality=q)


signatures = st.builds(
    m.Signature,
    algorithm=st.integers(0, 255),
    r=st.binary(max_size=64),
    s=st.binary(max_size=64),
)
custom_blocks = st.builds(
    m.CustomBlock, info_type=st.integers(0x80, 0xFE), data=st.binary(max_size=40)
)


def blocks(version: int) -> Any:
    """Any one block of the edition (not the list terminators)."""
    common = [
        vehicle_data(version),
        st.builds(m.DriveMotors, motors=st.lists(motor(version), max_size=3)),
        engine(version),
        position(version),
        alarm(version),
        st.builds(m.CellVoltages, packs=st.lists(pack_voltage(version), max_size=3)),
        st.builds(m.BatteryTemps, packs=st.lists(pack_temps(), max_size=3)),
        custom_blocks,
    ]
    if version == 2016:
        return st.one_of(*common, fuel_cell(), extremes())
    return st.one_of(
        *common,
        fuel_cell_engine(),
        st.builds(m.FuelCellStacks, stacks=st.lists(fuel_cell_stack(), max_size=3)),
        super_cap(),
        super_cap_extremes(),
    )


def unknown_info_types(version: int) -> Any:
    if version == 2016:
        return st.one_of(st.integers(0x0A, 0x7F), st.just(0xFF), st.just(0x00))
    return st.one_of(st.integers(0x09, 0x2F), st.integers(0x33, 0x7F), st.just(0x00))


@st.composite
def realtime(draw: Draw, version: int, min_blocks: int = 0) -> m.RealtimeData:
    items: list[m.RealtimeBlock] = draw(st.lists(blocks(version), min_size=min_blocks, max_size=6))
    tail = draw(st.sampled_from(["none", "unparsed", "signature"]))
    if tail == "unparsed":
        items.append(
            m.Unparsed(
                info_type=draw(unknown_info_types(version)), data=draw(st.binary(max_size=30))
            )
        )
    elif tail == "signature" and version == 2025:
        items.append(draw(signatures))
    return m.RealtimeData(time=draw(device_times()), blocks=items)


# --------------------------------------------------------------------------- frames


@st.composite
def cells_raw(draw: Draw, max_cells: int = 40) -> bytes:
    """Cell WORDs near a real pack's voltages, with the odd sentinel or 0xFEFE fill."""
    base = draw(st.integers(2500, 4300))
    words = draw(
        st.lists(
            st.one_of(
                st.integers(base - 30, base + 30),
                st.sampled_from([0xFFFE, 0xFFFF, 0xFEFE, 0, 0xFFFD]),
            ),
            max_size=max_cells,
        )
    )
    return b"".join(w.to_bytes(2, "big") for w in words)


@st.composite
def realistic_realtime(draw: Draw, version: int) -> m.RealtimeData:
    """The blocks of a real truck's frame, in the usual order, with realistic packed values."""
    q: dict[str, str] = {}
    cur = current(version)
    v16 = version == 2016
    packs = [
        m.PackVoltage(
            number=draw(st.integers(1, 4)),
            voltage_v=field(draw, q, "voltage_v", 2, 10),
            current_a=field(draw, q, "current_a", 2, 10, cur[3]),
            cells_raw=draw(cells_raw()),
            total_cells=draw(st.one_of(st.none(), st.integers(0, 400)))
            if version == 2016
            else None,
            first_cell=draw(st.one_of(st.none(), st.integers(1, 400))) if v16 else None,
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    temps = [
        m.PackTemps(
            number=draw(st.integers(1, 4)),
            temps_raw=draw(
                st.lists(
                    st.one_of(st.integers(30, 90), st.sampled_from([0, 0xFD, 0xFE, 0xFF])),
                    max_size=30,
                ).map(bytes)
            ),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    items: list[m.RealtimeBlock] = [
        draw(vehicle_data(version)),
        m.DriveMotors(motors=draw(st.lists(motor(version), max_size=3))),
        draw(position(version)),
    ]
    if version == 2016:
        items.append(draw(extremes()))
    items += [draw(alarm(version)), m.CellVoltages(packs=packs), m.BatteryTemps(packs=temps)]
    items += draw(st.lists(custom_blocks, max_size=2))
    return m.RealtimeData(time=draw(device_times()), blocks=items)


@st.composite
def realtime_frames(draw: Draw, version: int) -> m.Frame:
    """A realtime or reissue command frame: random blocks, or a realistic truck's blocks.

    Mostly unencrypted; sometimes a response flag, an encryption code (the body is then still
    encoded as realtime data, so the decoder keeps it raw) or an 0xFE/0xFF encryption byte.
    """
    body = draw(st.one_of(realtime(version), realistic_realtime(version)))
    return m.Frame(
        version=version,
        command=draw(st.sampled_from([0x02, 0x03])),
        response=draw(st.sampled_from([0xFE] * 8 + [0x01, 0x02])),
        vin=draw(gbk_text(17, alphabet=ASCII)),
        encryption=draw(st.sampled_from([0x01] * 8 + [0x02, 0x03, 0xFE, 0xFF])),
        body=body,
    )
