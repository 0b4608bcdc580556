"""GB/T 32960 property tests: random valid messages of every body type, both editions.

``decode_frame(encode_frame(m)) == m``, and a random mix of encoded frames and garbage fed in
random chunks comes back out of the FrameReader frame for frame.
"""

from __future__ import annotations

import string
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codecs.common import ABNORMAL, INVALID, BadFrame, DeviceTime, gmt8_to_utc
from gateway.codecs.gbt32960 import messages as m
from gateway.codecs.gbt32960.constants import FILL_ABNORMAL

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
Draw = Any  # hypothesis' DrawFn
Spec = tuple[tuple[str, int, int, int], ...]  # (name, size, div, offset)


@pytest.fixture
def codec(gbt32960: ModuleType) -> ModuleType:
    """The implementation under test; skipped while the accelerator is still a placeholder."""
    if not hasattr(gbt32960, "decode_frame"):
        pytest.skip(f"{gbt32960.__name__} is not implemented yet")
    return gbt32960


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


# --------------------------------------------------------------------------- other bodies


@st.composite
def vehicle_login(draw: Draw, version: int) -> m.VehicleLogin | m.VehicleLogin2025:
    time, serial = draw(device_times()), draw(st.integers(0, 0xFFFF))
    iccid = draw(gbk_text(20, alphabet=string.digits))
    if version == 2016:
        n, size = draw(st.integers(0, 5)), draw(st.integers(0, 6))
        codes = (
            draw(st.lists(gbk_text(size, alphabet=ASCII), min_size=n, max_size=n)) if size else []
        )
        return m.VehicleLogin(
            time=time, serial=serial, iccid=iccid, subsystem_count=n, code_length=size, codes=codes
        )
    packs = draw(st.lists(st.integers(0, 3), max_size=4))
    total = sum(packs)
    codes = draw(st.lists(gbk_text(24, alphabet=ASCII), min_size=total, max_size=total))
    return m.VehicleLogin2025(
        time=time, serial=serial, iccid=iccid, packs_per_bms=packs, pack_codes=codes
    )


@st.composite
def param_values(draw: Draw, version: int) -> m.ParamValues:
    byte_width = {0x02: 1, 0x03: 1} if version == 2025 else {}
    widths = {
        0x01: 2,
        0x02: 2,
        0x03: 2,
        0x04: 1,
        0x06: 2,
        0x09: 1,
        0x0A: 2,
        0x0B: 2,
        0x0C: 1,
        0x0D: 1,
        0x0F: 2,
        0x10: 1,
    } | byte_width
    params: list[m.Param] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["int", "version", "domain"]))
        if kind == "int":
            pid = draw(st.sampled_from(sorted(widths)))
            params.append(m.Param(id=pid, value=draw(st.integers(0, (1 << 8 * widths[pid]) - 1))))
        elif kind == "version":
            pid = draw(st.sampled_from([0x07, 0x08]))
            params.append(m.Param(id=pid, value=draw(st.binary(min_size=5, max_size=5))))
        else:
            length_id = draw(st.sampled_from([0x04, 0x0D]))
            domain = draw(st.binary(max_size=30))
            params.append(m.Param(id=length_id, value=len(domain)))
            params.append(m.Param(id=length_id + 1, value=domain))
    unparsed_count, unparsed = 0, b""
    if draw(st.booleans()):
        unknown = draw(st.one_of(st.just(0x00), st.integers(0x11, 0xFF)))
        unparsed = bytes((unknown,)) + draw(st.binary(max_size=10))
        unparsed_count = draw(st.integers(1, 5))
    return m.ParamValues(
        time=draw(device_times()), params=params, unparsed_count=unparsed_count, unparsed=unparsed
    )


upgrade_params = st.builds(
    m.UpgradeParams,
    apn=gbk_text(20, fixed=False),
    username=gbk_text(20, fixed=False),
    password=gbk_text(20, fixed=False),
    ip=st.binary(min_size=6, max_size=6),
    port=st.integers(0, 0xFFFF),
    manufacturer_id=st.binary(min_size=4, max_size=4),
    hardware_version=st.binary(min_size=5, max_size=5),
    firmware_version=st.binary(min_size=5, max_size=5),
    url=gbk_text(60, fixed=False),
    timeout=st.integers(0, 0xFFFF),
)


@st.composite
def control(draw: Draw) -> m.Control:
    command = draw(st.integers(0, 255))
    params: m.UpgradeParams | m.ControlWarning | bytes
    if command == 0x01:
        params = draw(upgrade_params)
    elif command == 0x06:
        params = m.ControlWarning(
            level=draw(st.integers(0, 255)), message=draw(gbk_text(40, fixed=False))
        )
    else:
        params = draw(st.binary(max_size=20))
    return m.Control(time=draw(device_times()), command=command, params=params)


@st.composite
def activation(draw: Draw) -> m.Activation:
    return m.Activation(
        time=draw(device_times()),
        chip_id=draw(gbk_text(16, alphabet=ASCII)),
        public_key=draw(st.binary(max_size=80)),
        vin=draw(gbk_text(17, alphabet=ASCII)),
        signature=draw(signatures),
    )


@st.composite
def key_sync(draw: Draw) -> m.KeySync:
    return m.KeySync(
        algorithm=draw(st.integers(0, 255)),
        key=draw(st.binary(max_size=40)),
        start=draw(device_times()),
        end=draw(device_times()),
    )


def request_body(command: int, version: int, response: bool) -> Any:
    """The request-layout body of a known command."""
    times = st.builds(m.TimeOnly, time=device_times())
    serial = st.integers(0, 0xFFFF)
    table: dict[int, Any] = {
        0x01: vehicle_login(version),
        0x02: realtime(version, min_blocks=1 if response else 0),
        0x03: realtime(version, min_blocks=1 if response else 0),
        0x04: st.builds(m.VehicleLogout, time=device_times(), serial=serial),
        0x05: st.builds(
            m.PlatformLogin,
            time=device_times(),
            serial=serial,
            username=gbk_text(12),
            password=gbk_text(20),
            encryption_rule=st.integers(0, 255),
        ),
        0x06: st.builds(m.PlatformLogout, time=device_times(), serial=serial),
        0x07: st.just(m.Empty()) if not response else st.one_of(st.just(m.Empty()), times),
        0x08: st.just(m.Empty()) if not response else st.one_of(st.just(m.Empty()), times),
        0x80: param_values(version)
        if response
        else st.builds(
            m.ParamQuery, time=device_times(), ids=st.lists(st.integers(0, 255), max_size=10)
        ),
        0x81: param_values(version),
        0x82: control(),
    }
    if version == 2025:
        table |= {
            0x09: activation(),
            0x0A: st.builds(
                m.ActivationResponse, result=st.integers(0, 255), info=st.integers(0, 255)
            ),
            0x0B: key_sync(),
        }
    return table[command]


KNOWN_2016 = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x80, 0x81, 0x82]
KNOWN_2025 = [*KNOWN_2016, 0x09, 0x0A, 0x0B]


@st.composite
def frames(draw: Draw, version: int | None = None) -> m.Frame:
    """Any valid frame of either edition: typed, generic response, encrypted or unknown."""
    if version is None:
        version = draw(st.sampled_from([2016, 2025]))
    known = KNOWN_2016 if version == 2016 else KNOWN_2025
    kind = draw(st.sampled_from(["request", "response", "generic", "encrypted", "unknown"]))
    encryption = draw(st.sampled_from([0x01, 0x01, 0xFE, 0xFF]))
    response = 0xFE
    body: m.Body
    if kind == "unknown":
        command = draw(st.integers(0, 255).filter(lambda c: c not in known))
        body = m.RawBody(data=draw(st.binary(max_size=40)))
        response = draw(st.integers(0, 255))
    elif kind == "encrypted":
        command = draw(st.sampled_from(known))
        encryption = draw(st.integers(2, 5))
        body = m.RawBody(data=draw(st.binary(max_size=40)))
    else:
        command = draw(st.sampled_from(known))
        if kind != "request":
            response = draw(st.integers(0, 255).filter(lambda r: r != 0xFE))
        if kind == "generic":
            body = draw(st.one_of(st.just(m.Empty()), st.builds(m.TimeOnly, time=device_times())))
        else:
            body = draw(request_body(command, version, kind == "response"))
    return m.Frame(
        version=version,
        command=command,
        response=response,
        vin=draw(gbk_text(17, alphabet=ASCII)),
        encryption=encryption,
        body=body,
    )


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(msg=frames(version=2016))
def test_roundtrip_2016(codec: ModuleType, msg: m.Frame) -> None:
    assert codec.decode_frame(codec.encode_frame(msg)) == msg


@SETTINGS
@given(msg=frames(version=2025))
def test_roundtrip_2025(codec: ModuleType, msg: m.Frame) -> None:
    assert codec.decode_frame(codec.encode_frame(msg)) == msg


@pytest.mark.parametrize(
    ("version", "command"),
    [(2016, c) for c in sorted(set(KNOWN_2016))] + [(2025, c) for c in sorted(set(KNOWN_2025))],
)
def test_every_body_type_roundtrips(codec: ModuleType, version: int, command: int) -> None:
    """Each command's request layout gets its own examples (not left to chance)."""

    @settings(max_examples=25, deadline=None)
    @given(body=request_body(command, version, response=False), vin=gbk_text(17, alphabet=ASCII))
    def check(body: m.Body, vin: str) -> None:
        msg = m.Frame(
            version=version, command=command, response=0xFE, vin=vin, encryption=1, body=body
        )
        assert codec.decode_frame(codec.encode_frame(msg)) == msg

    check()


NO_MARKERS = st.binary(min_size=1, max_size=20).map(
    lambda b: b.replace(b"#", b"").replace(b"$", b"")
)


@settings(SETTINGS, max_examples=60)
@given(
    items=st.lists(st.one_of(frames(), NO_MARKERS), min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
)
def test_reader_random_chunks(
    codec: ModuleType, items: list[m.Frame | bytes], cuts: list[int]
) -> None:
    wire = [codec.encode_frame(i) if isinstance(i, m.Frame) else i for i in items]
    stream = b"".join(wire)
    reader = codec.FrameReader()
    events: list[bytes | BadFrame] = []
    start = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        reader.feed(stream[start:cut])
        start = max(start, cut)
        events.extend(reader)
    got = [e for e in events if isinstance(e, bytes)]
    assert got == [w for w, i in zip(wire, items, strict=True) if isinstance(i, m.Frame)]
    assert all(e.reason == "garbage" for e in events if isinstance(e, BadFrame))
    assert (
        b"".join(e if isinstance(e, bytes) else e.raw for e in events)
        + bytes(stream[len(stream) - reader.buffered :])
        == stream
    )
