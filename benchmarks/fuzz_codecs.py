"""Fuzz the GB/T 32960 and JT/T 808 codecs: random and mutated frames into decode_frame/FrameReader.

Seeds are the shared vectors plus frames our own encoder builds from randomly perturbed decoded
vectors. Mutations: bit flips, byte insert/delete/overwrite, truncation, splicing and length-field
tampering, with the checksum (and JT/T 808 escaping) recomputed for half the inputs so the body
parsers are reached. Checks: only ``ProtocolError`` escapes, no input is slow (soft per-input limit,
plus a hard ``faulthandler`` watchdog), the reader accounts for every byte it was fed, both
implementations agree, and RSS does not grow. Prints one JSON line; exits 1 on any failure.

    .venv/bin/python benchmarks/fuzz_codecs.py --count 1000000 --seed 1 --impl both
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import importlib
import json
import os
import random
import re
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import msgspec

from gateway.codecs.common import BadFrame, DeviceTime
from gateway.codecs.errors import ProtocolError
from gateway.codecs.gbt32960 import messages as g
from gateway.codecs.jt808 import messages as j

REPO: Final = Path(__file__).resolve().parents[1]
SHARED: Final = Path(os.environ.get("SILKGATE_SHARED", REPO.parent / "shared"))
PROTOCOLS: Final = ("gbt32960", "jt808")
IMPL_MODULES: Final = {"python": "reference", "cython": "_accel"}
INTERESTING_BYTES: Final = (0x00, 0x01, 0x7D, 0x7E, 0x7F, 0x80, 0x23, 0x24, 0xFE, 0xFF)
INTERESTING_WORDS: Final = (
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0x3FF,
    0x400,
    0x7FFF,
    0x8000,
    0xFFFB,
    0xFFFE,
    0xFFFF,
)

# --------------------------------------------------------------------------------------------
# Framing helpers: the "logical" view of a frame is what the checksum covers, so a mutated view
# can be wrapped back into a frame whose checksum (and escaping) is right.


def xor(data: bytes | bytearray) -> int:
    """XOR of all bytes."""
    acc = 0
    for b in data:
        acc ^= b
    return acc


def gbt_unwrap(frame: bytes) -> bytearray:
    """GB/T 32960: the logical view is the whole frame (start bytes .. BCC)."""
    return bytearray(frame)


def gbt_wrap(view: bytearray) -> bytes:
    """Recompute the BCC (XOR of offset 2 up to the last data byte) into the last byte."""
    if len(view) >= 3:
        view[-1] = xor(view[2:-1])
    return bytes(view)


def gbt_tamper_length(view: bytearray, rng: random.Random) -> None:
    """Set the data-unit length WORD (offset 22) to a wrong, boundary or consistent value."""
    if len(view) < 24:
        return
    actual = max(0, len(view) - 25)
    near = (actual, actual + rng.randint(1, 4), max(0, actual - rng.randint(1, 4)))
    value = rng.choice((*near, rng.randint(0, 0xFFFF), *INTERESTING_WORDS))
    struct.pack_into(">H", view, 22, value & 0xFFFF)


def gbt_fix_length(view: bytearray) -> None:
    """Make the data-unit length WORD agree with the frame size."""
    if len(view) >= 25:
        struct.pack_into(">H", view, 22, min(len(view) - 25, 0xFFFF))


def jt_unescape(frame: bytes) -> bytearray | None:
    """JT/T 808: header+body+checksum between the 0x7E flags, unescaped; None if not a frame."""
    if len(frame) < 2 or frame[0] != 0x7E or frame[-1] != 0x7E:
        return None
    out = bytearray()
    inner = frame[1:-1]
    i = 0
    while i < len(inner):
        b = inner[i]
        if b == 0x7D:
            if i + 1 >= len(inner) or inner[i + 1] not in (1, 2):
                return None
            out.append(0x7D if inner[i + 1] == 1 else 0x7E)
            i += 2
        else:
            out.append(b)
            i += 1
    return out


def jt_unwrap(frame: bytes) -> bytearray:
    view = jt_unescape(frame)
    return view if view is not None else bytearray(frame)


def jt_wrap(view: bytearray) -> bytes:
    """Recompute the XOR checksum into the last byte, escape, and add the 0x7E flags."""
    if len(view) >= 1:
        view[-1] = xor(view[:-1])
    escaped = bytes(view).replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")
    return b"\x7e" + escaped + b"\x7e"


def jt_tamper_length(view: bytearray, rng: random.Random) -> None:
    """Change the body-attribute WORD: body length bits 0-9, encryption, subpackage, version."""
    if len(view) < 4:
        return
    attrs = struct.unpack_from(">H", view, 2)[0]
    what = rng.randrange(5)
    if what == 0:
        attrs = (attrs & ~0x3FF) | rng.randint(0, 0x3FF)
    elif what == 1:
        attrs = (attrs & ~0x3FF) | ((attrs & 0x3FF) + rng.choice((-2, -1, 1, 2))) & 0x3FF
    elif what == 2:
        attrs ^= 1 << 13  # subpackage
    elif what == 3:
        attrs ^= 1 << 14  # 2019 version flag
    else:
        attrs ^= rng.choice((1 << 10, 1 << 11, 1 << 12, 1 << 15))
    struct.pack_into(">H", view, 2, attrs & 0xFFFF)


def jt_fix_length(view: bytearray) -> None:
    """Make the body-length bits agree with the (unescaped) frame size."""
    if len(view) < 4:
        return
    attrs = struct.unpack_from(">H", view, 2)[0]
    header = (17 if attrs & 0x4000 else 12) + (4 if attrs & 0x2000 else 0)
    body = len(view) - header - 1
    if 0 <= body <= 0x3FF:
        struct.pack_into(">H", view, 2, (attrs & ~0x3FF) | body)


@dataclass(frozen=True)
class Framing:
    """How to get at, and restore, the checksummed part of one protocol's frames."""

    start: bytes
    delimiter: bytes  # a flag byte the reader may consume without reporting it
    unwrap: Callable[[bytes], bytearray]
    wrap: Callable[[bytearray], bytes]
    tamper_length: Callable[[bytearray, random.Random], None]
    fix_length: Callable[[bytearray], None]


FRAMINGS: Final = {
    "gbt32960": Framing(b"##", b"", gbt_unwrap, gbt_wrap, gbt_tamper_length, gbt_fix_length),
    "jt808": Framing(b"\x7e", b"\x7e", jt_unwrap, jt_wrap, jt_tamper_length, jt_fix_length),
}

# --------------------------------------------------------------------------------------------
# Byte-level mutations.


def mutate(data: bytearray, rng: random.Random, framing: Framing, donors: Sequence[bytes]) -> None:
    """Apply one random mutation to ``data`` in place."""
    n = len(data)
    op = rng.randrange(12)
    if op == 0 and n:  # bit flip
        data[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif op == 1 and n:  # random byte
        data[rng.randrange(n)] = rng.randrange(256)
    elif op == 2 and n:  # interesting byte
        data[rng.randrange(n)] = rng.choice(INTERESTING_BYTES)
    elif op == 3:  # insert bytes
        pos = rng.randint(0, n)
        data[pos:pos] = rng.randbytes(rng.randint(1, 8))
    elif op == 4 and n:  # delete a range
        pos = rng.randrange(n)
        del data[pos : pos + rng.randint(1, 8)]
    elif op == 5 and n:  # truncate
        del data[rng.randint(0, n - 1) :]
    elif op == 6:  # append garbage
        data += rng.randbytes(rng.randint(1, 16))
    elif op == 7 and n >= 2:  # interesting WORD / DWORD
        pos = rng.randrange(n - 1)
        if n - pos >= 4 and rng.random() < 0.3:
            struct.pack_into(">I", data, pos, rng.choice((0, 0xFFFFFFFE, 0xFFFFFFFF, 0x80000000)))
        else:
            struct.pack_into(">H", data, pos, rng.choice(INTERESTING_WORDS))
    elif op == 8 and n:  # duplicate a slice
        a = rng.randrange(n)
        b = min(n, a + rng.randint(1, 32))
        pos = rng.randint(0, n)
        data[pos:pos] = data[a:b]
    elif op == 9 and donors:  # splice with another seed
        donor = rng.choice(donors)
        cut = rng.randint(0, n)
        dcut = rng.randint(0, len(donor))
        data[cut:] = donor[dcut:]
    elif op == 10:  # length-field tampering
        framing.tamper_length(data, rng)
    elif op == 11 and n:  # a random byte count somewhere (count fields of bodies)
        data[rng.randrange(n)] = rng.choice((0, 1, 2, 3, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF))


# --------------------------------------------------------------------------------------------
# Seeds: the shared vectors and our encoder's frames from randomly perturbed decoded vectors.


def load_vector_frames(protocol: str) -> list[bytes]:
    with (SHARED / "vectors" / f"{protocol}.json").open(encoding="utf-8") as fh:
        vectors: list[dict[str, Any]] = json.load(fh)
    return [bytes.fromhex(v["hex"]) for v in vectors]


def _perturb(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """A same-typed random variant of a decoded message value (struct, list, scalar)."""
    if isinstance(value, msgspec.Struct):
        changes: dict[str, Any] = {}
        for name in value.__struct_fields__:
            if rng.random() < 0.5:
                continue
            changes[name] = _perturb(getattr(value, name), rng, depth + 1)
        return msgspec.structs.replace(value, **changes) if changes else value
    if isinstance(value, bool):
        return rng.random() < 0.5
    if isinstance(value, int):
        return rng.choice((value, 0, 1, value + 1, max(0, value - 1), rng.randint(0, 255)))
    if isinstance(value, float):
        return rng.choice((value, 0.0, round(value * rng.uniform(0, 2), 1)))
    if isinstance(value, str):
        if rng.random() < 0.5:
            return value
        return "".join(rng.choice("ABCDEFGH0123456789") for _ in range(len(value)))
    if isinstance(value, bytes):
        return rng.randbytes(len(value)) if rng.random() < 0.5 else value
    if isinstance(value, tuple | list):
        items = [_perturb(v, rng, depth + 1) for v in value]
        if items and rng.random() < 0.2:
            items.pop(rng.randrange(len(items)))
        elif items and rng.random() < 0.2:
            items.append(items[rng.randrange(len(items))])
        return type(value)(items)
    return value


def _gbt_extra_messages() -> list[Any]:
    """GB/T 32960 messages the vectors lack (2025 blocks, parameters, control, security)."""
    t = DeviceTime(raw=bytes((25, 10, 27, 20, 2, 2)), utc=None)
    v25 = g.VehicleData(
        vehicle_state=1,
        charge_state=3,
        run_mode=1,
        speed_kmh=12.3,
        odometer_km=1000.5,
        total_voltage_v=650.0,
        total_current_a=-12.5,
        soc_pct=80,
        dcdc_state=1,
        gear_byte=0x2E,
        insulation_kohm=5000,
        quality={},
    )
    motor25 = g.Motor(
        number=1, state=1, controller_temp_c=30, speed_rpm=1500, torque_nm=120.5, temp_c=40
    )
    blocks25: list[Any] = [
        v25,
        g.DriveMotors(motors=[motor25, motor25]),
        g.FuelCellEngine(
            h2_max_temp_c=40,
            h2_max_temp_probe=2,
            h2_max_conc=0.5,
            h2_max_conc_sensor=1,
            h2_max_pressure_mpa=35.0,
            h2_max_pressure_sensor=3,
            dcdc_state=1,
            h2_remaining_pct=60,
            dcdc_temp_c=45,
        ),
        g.Engine(crank_rpm=1800),
        g.Position(status=0, lon=100.5, lat=13.7, coord_system=1),
        g.Alarm(
            level=1,
            flags=0x0100_0001,
            battery_faults=[1, 2],
            motor_faults=[],
            engine_faults=[3],
            other_faults=[],
            bit_levels=[(0, 1), (24, 3)],
        ),
        g.CellVoltages(
            packs=[
                g.PackVoltage(number=1, voltage_v=650.0, current_a=-5.0, cells_raw=b"\x0f\xa0" * 8)
            ]
        ),
        g.BatteryTemps(packs=[g.PackTemps(number=1, temps_raw=bytes(range(60, 70)))]),
        g.FuelCellStacks(
            stacks=[
                g.FuelCellStack(
                    number=1,
                    voltage_v=300.0,
                    current_a=100.0,
                    h2_inlet_kpa=50.0,
                    air_inlet_kpa=20.0,
                    air_inlet_temp_c=25,
                    temps_raw=b"\x50\x51\x52",
                )
            ]
        ),
        g.SuperCap(
            number=1, voltage_v=48.0, current_a=2.0, cells_raw=b"\x0b\xb8" * 4, temps_raw=b"AB"
        ),
        g.SuperCapExtremes(
            max_v_subsystem=1,
            max_v_index=2,
            max_v=3.0,
            min_v_subsystem=1,
            min_v_index=3,
            min_v=2.9,
            max_t_subsystem=1,
            max_t_index=1,
            max_temp_c=30,
            min_t_subsystem=1,
            min_t_index=2,
            min_temp_c=20,
        ),
        g.CustomBlock(info_type=0x80, data=b"vendor"),
        g.Signature(algorithm=2, r=bytes(range(32)), s=b""),
    ]
    fuel16 = g.FuelCell(
        voltage_v=300.0,
        current_a=10.0,
        consumption_kg_100km=1.5,
        temps_raw=b"\x40\x41",
        h2_max_temp_c=30.5,
        h2_max_temp_probe=1,
        h2_max_conc_ppm=100,
        h2_max_conc_sensor=2,
        h2_max_pressure_mpa=35.0,
        h2_max_pressure_sensor=3,
        dcdc_state=1,
    )
    upgrade = g.UpgradeParams(
        apn="cmnet",
        username="u",
        password="p",
        ip=bytes((0, 0, 10, 0, 0, 1)),
        port=8080,
        manufacturer_id=b"ABCD",
        hardware_version=b"HW001",
        firmware_version=b"FW001",
        url="http://x/fw.bin",
        timeout=30,
    )
    params = [
        g.Param(id=0x01, value=1000),
        g.Param(id=0x02, value=10),
        g.Param(id=0x04, value=5),
        g.Param(id=0x05, value=b"a.cn!"),
        g.Param(id=0x06, value=9000),
        g.Param(id=0x07, value=b"HW001"),
        g.Param(id=0x09, value=30),
        g.Param(id=0x10, value=2),
    ]
    bodies: list[tuple[int, int, Any]] = [
        (2025, 0x02, g.RealtimeData(time=t, blocks=blocks25)),
        (2025, 0x03, g.RealtimeData(time=t, blocks=[v25, blocks25[-1]])),
        (2016, 0x02, g.RealtimeData(time=t, blocks=[fuel16])),
        (2016, 0x80, g.ParamQuery(time=t, ids=[1, 2, 4, 5, 6, 7, 8, 9, 0x10])),
        (2016, 0x81, g.ParamValues(time=t, params=params)),
        (2025, 0x81, g.ParamValues(time=t, params=params)),
        (2016, 0x82, g.Control(time=t, command=0x01, params=upgrade)),
        (
            2016,
            0x82,
            g.Control(time=t, command=0x06, params=g.ControlWarning(level=2, message="hi")),
        ),
        (2016, 0x82, g.Control(time=t, command=0x03, params=b"")),
        (
            2016,
            0x05,
            g.PlatformLogin(time=t, serial=1, username="user", password="pw", encryption_rule=1),
        ),
        (2016, 0x06, g.PlatformLogout(time=t, serial=1)),
        (2016, 0x08, g.TimeOnly(time=t)),
        (
            2025,
            0x09,
            g.Activation(
                time=t,
                chip_id="CHIP000000000001",
                public_key=bytes(range(64)),
                vin="LVIN0000000000001",
                signature=g.Signature(algorithm=1, r=b"r" * 32, s=b"s" * 32),
            ),
        ),
        (2025, 0x0A, g.ActivationResponse(result=1, info=1)),
        (2025, 0x0B, g.KeySync(algorithm=5, key=bytes(16), start=t, end=t)),
    ]
    return [
        g.Frame(
            version=v, command=cmd, response=0xFE, vin="LFUZZ000000000001", encryption=1, body=b
        )
        for v, cmd, b in bodies
    ]


def _jt_extra_messages() -> list[Any]:
    """JT/T 808 messages the vectors lack (CAN data, 2019 bodies, subpackages, items)."""
    bcd = bytes((0x25, 0x10, 0x27, 0x20, 0x02, 0x02))
    loc = j.Location(
        alarm_flags=1,
        status_flags=2,
        latitude=13.7,
        longitude=100.5,
        altitude_m=10,
        speed_kmh=60.5,
        direction=90,
        time=DeviceTime(raw=bcd, utc=None),
        items=(
            j.Odometer(km=100.5),
            j.FuelLevel(litres=50.5),
            j.TachographSpeed(kmh=60.0),
            j.AlarmEventId(event_id=7),
            j.TyrePressure(pressures=tuple([200] * 30)),
            j.CabinTemperature(celsius=-5),
            j.OverspeedAlarm(location_type=1, area_id=5),
            j.AreaAlarm(location_type=1, area_id=5, direction=0),
            j.RouteTimeAlarm(section_id=1, drive_time_s=100, result=0),
            j.ExtendedSignals(flags=3),
            j.IoStatus(flags=1),
            j.AnalogValues(ad0=1, ad1=2),
            j.SignalStrength(value=20),
            j.SatelliteCount(count=9),
            j.RawItem(item_id=0xE3, data=b"vendor"),
        ),
    )
    can = j.CanBusData(
        receive_time=j.CanReceiveTime(raw=bytes((0x10, 0x20, 0x30, 0x01, 0x23)), time=None),
        items=(
            j.CanItem(
                channel=0, frame_type=1, collection_method=0, can_id=0x18FEF100, data=bytes(8)
            ),
            j.CanItem(channel=1, frame_type=0, collection_method=1, can_id=0x123, data=b"ABCDEFGH"),
        ),
    )
    frames: list[Any] = []
    for version, phone, pv in ((2013, "013912344329", None), (2019, "00000000013912344329", 1)):
        bodies: list[tuple[int, Any]] = [
            (0x0200, loc),
            (0x0704, j.BatchLocation(batch_type=1, items=(loc, loc))),
            (0x0705, can),
            (0x0900, j.TransparentUplink(kind=0xF0, content=b"\x7e\x7d payload")),
            (0x8900, j.TransparentDownlink(kind=0x41, content=b"down")),
            (0x8003, j.PlatformResendRequest(original_serial=5, packet_ids=(1, 2, 3))),
            (0x0004, j.QueryServerTime()),
            (0x8004, j.ServerTime(time=DeviceTime(raw=bcd, utc=None))),
            (0x0001, j.TerminalGeneralResponse(reply_serial=1, reply_msg_id=0x8103, result=0)),
            (0x8100, j.RegisterResponse(reply_serial=1, result=0, auth_code="AUTH")),
        ]
        if version == 2019:
            bodies += [
                (0x0005, j.TerminalResendRequest(original_serial=5, packet_ids=(2,))),
                (
                    0x0102,
                    j.Authenticate(
                        auth_code="AUTH", imei="123456789012345", software_version="SW1.0"
                    ),
                ),
            ]
        for msg_id, body in bodies:
            frames.append(
                j.Frame(
                    version=version,
                    msg_id=msg_id,
                    phone=phone,
                    serial=7,
                    body=body,
                    protocol_version=pv,
                )
            )
        frames.append(
            j.Frame(
                version=version,
                msg_id=0x0801,
                phone=phone,
                serial=8,
                body=j.RawBody(data=b"part of a subpackage set"),
                protocol_version=pv,
                packet_total=3,
                packet_index=2,
            )
        )
    return frames


EXTRA_MESSAGES: Final[dict[str, Callable[[], list[Any]]]] = {
    "gbt32960": _gbt_extra_messages,
    "jt808": _jt_extra_messages,
}


def encoder_frames(
    protocol: str, seeds: Sequence[bytes], rng: random.Random, n: int
) -> list[bytes]:
    """Up to ``n`` frames built by our reference encoder from perturbed decoded vectors."""
    ref = importlib.import_module(f"gateway.codecs.{protocol}.reference")
    decoded = []
    for raw in seeds:
        try:
            decoded.append(ref.decode_frame(raw))
        except ProtocolError:
            continue
    out: list[bytes] = []
    for msg in EXTRA_MESSAGES[protocol]():
        try:
            raw = ref.encode_frame(msg)
        except ProtocolError as exc:  # a message this script got wrong: say so, carry on
            print(
                f"fuzz_codecs: seed {type(msg.body).__name__} not encodable: {exc}", file=sys.stderr
            )
            continue
        out.append(raw)
        decoded.append(msg)
    if not decoded:
        return out
    for _ in range(n * 4):
        if len(out) >= n:
            break
        try:
            frame = ref.encode_frame(_perturb(rng.choice(decoded), rng))
        except Exception:  # an ill-typed or out-of-range perturbation: not a seed
            continue
        out.append(frame)
    return out


# --------------------------------------------------------------------------------------------
# Running one input through the targets.


class FuzzFailure(Exception):
    """A contract violation found by the fuzzer."""

    def __init__(self, kind: str, protocol: str, impl: str, data: bytes, detail: str) -> None:
        super().__init__(f"{kind} in {protocol}/{impl}: {detail}")
        self.kind = kind
        self.protocol = protocol
        self.impl = impl
        self.data = data
        self.detail = detail

    def signature(self) -> tuple[str, ...]:
        """What makes two failures the same bug: kind, target, exception or body types."""
        lines = self.detail.strip().splitlines()
        last = lines[-1].split(":")[0] if lines else ""
        bodies = tuple(sorted(set(re.findall(r"body=(\w+)\(", self.detail))))
        return (self.kind, self.protocol, self.impl, last, *bodies)


Outcome = tuple[str, Any]


def run_decode(mod: ModuleType, data: bytes, protocol: str, impl: str) -> Outcome:
    """decode_frame outcome: ("ok", frame) or ("err", reason); anything else is a failure.

    A decoded frame must also survive ``decode_frame(encode_frame(frame)) == frame``.
    """
    try:
        frame = mod.decode_frame(data)
    except ProtocolError as exc:
        return ("err", exc.reason)
    except Exception:
        raise FuzzFailure(
            "decode_frame raised", protocol, impl, data, traceback.format_exc(limit=-3)
        ) from None
    try:
        again = mod.decode_frame(mod.encode_frame(frame))
    except Exception:
        raise FuzzFailure(
            "re-encoding a decoded frame failed",
            protocol,
            impl,
            data,
            traceback.format_exc(limit=-3),
        ) from None
    if again != frame:
        raise FuzzFailure(
            "decode(encode(decode(x))) != decode(x)",
            protocol,
            impl,
            data,
            f"first:  {_short(frame)}\nsecond: {_short(again)}",
        )
    return ("ok", frame)


def run_reader(
    mod: ModuleType,
    data: bytes,
    chunks: Sequence[int],
    max_size: int | None,
    protocol: str,
    impl: str,
) -> list[Any]:
    """Feed ``data`` in the given chunks, drain, decode each frame, check that nothing is lost."""
    events: list[Any] = []
    try:
        reader = mod.FrameReader() if max_size is None else mod.FrameReader(max_size)
        pos = 0
        for size in chunks:
            reader.feed(data[pos : pos + size])
            pos += size
            while (ev := reader.next_event()) is not None:
                events.append(ev)
        reader.feed(data[pos:])
        events.extend(reader)
        buffered = reader.buffered
    except Exception:
        raise FuzzFailure(
            "FrameReader raised", protocol, impl, data, traceback.format_exc(limit=-3)
        ) from None
    out: list[Any] = []
    flag = FRAMINGS[protocol].delimiter
    reported = buffered
    for ev in events:
        if isinstance(ev, bytes | bytearray):
            raw = bytes(ev)
            out.append(("frame", raw, run_decode(mod, raw, protocol, impl)))
        elif isinstance(ev, BadFrame):
            raw = ev.raw
            out.append(("bad", raw, ev.reason))
        else:
            raise FuzzFailure("FrameReader event type", protocol, impl, data, repr(type(ev)))
        reported += len(raw) - (raw.count(flag) if flag else 0)
        if raw not in data:
            raise FuzzFailure(
                "FrameReader invented bytes", protocol, impl, data, f"event {ev!r} not in input"
            )
    # Nothing is lost: every byte fed comes out in a frame or a BadFrame, or is still buffered.
    # Bytes may come out twice (a bad-checksum frame is reported whole, then rescanned from its
    # second byte for a false start; a JT/T 808 closing flag may open the next frame), and
    # JT/T 808 0x7E flags are delimiters that need not come out (``7E 7E`` is an empty frame,
    # garbage between frames is reported without its flags), so flags are not counted.
    if reported < len(data) - (data.count(flag) if flag else 0):
        raise FuzzFailure(
            "FrameReader lost bytes",
            protocol,
            impl,
            data,
            f"fed {len(data)} bytes, frames+bad+buffered = {reported}; events {events!r}",
        )
    return out


@dataclass
class Fuzzer:
    """The campaign state: seeds per protocol, implementations under test, findings."""

    impls: dict[str, dict[str, ModuleType]]  # protocol -> impl name -> module
    seeds: dict[str, list[bytes]]
    protocols: tuple[str, ...]
    rng: random.Random
    time_limit: float
    failures: list[FuzzFailure] = field(default_factory=list)
    failure_count: int = 0
    seen: set[tuple[str, ...]] = field(default_factory=set)
    slowest: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)

    def make_input(self) -> tuple[str, bytes]:
        """One fuzz input and the protocol it was derived from."""
        rng = self.rng
        protocol = rng.choice(self.protocols)
        framing = FRAMINGS[protocol]
        r = rng.random()
        if r < 0.03:  # pure noise, sometimes behind the start bytes
            noise = rng.randbytes(rng.randint(0, 300))
            return protocol, (framing.start + noise) if rng.random() < 0.5 else noise
        seeds = self.seeds[protocol]
        seed = rng.choice(seeds)
        if r < 0.08:  # several frames glued, with garbage between (stream resync)
            parts = [rng.choice(seeds) for _ in range(rng.randint(2, 4))]
            glue = [rng.randbytes(rng.randint(0, 3)) for _ in parts]
            return protocol, b"".join(a + b for a, b in zip(glue, parts, strict=True))
        checksummed = rng.random() < 0.5
        data = framing.unwrap(seed) if checksummed else bytearray(seed)
        for _ in range(1 + int(rng.expovariate(0.7))):
            mutate(data, rng, framing, seeds)
        if checksummed and rng.random() < 0.5:
            framing.fix_length(data)  # lengths right too: the body parsers see the damage
        return protocol, framing.wrap(data) if checksummed else bytes(data)

    def run_one(self, protocol: str, data: bytes) -> None:
        """All targets of ``protocol`` (and, for noise, nothing else) on one input."""
        rng = self.rng
        chunks = [rng.randint(1, 64) for _ in range(rng.randint(0, 4))]
        if len(data) < 80 and rng.random() < 0.1:
            chunks = [1] * len(data)  # byte by byte
        max_size = rng.choice((None, None, None, 64, 1024))
        results: dict[str, tuple[Outcome, list[Any]]] = {}
        start = time.perf_counter()
        for impl, mod in self.impls[protocol].items():
            dec = run_decode(mod, data, protocol, impl)
            events = run_reader(mod, data, chunks, max_size, protocol, impl)
            results[impl] = (dec, events)
            key = f"{protocol}/{dec[0]}" if dec[0] == "ok" else f"{protocol}/{dec[1]}"
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
        elapsed = time.perf_counter() - start
        self.slowest = max(self.slowest, elapsed)
        if elapsed > self.time_limit:
            raise FuzzFailure("slow input", protocol, "+".join(results), data, f"{elapsed:.3f} s")
        if len(results) == 2:
            (a_name, a), (b_name, b) = results.items()
            if a != b:
                raise FuzzFailure(
                    "implementations disagree",
                    protocol,
                    f"{a_name} vs {b_name}",
                    data,
                    f"{a_name}: {_short(a)}\n{b_name}: {_short(b)}",
                )


def _short(value: object, limit: int = 1500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc, else peak RSS)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_impls(impl: str, protocols: Sequence[str]) -> dict[str, dict[str, ModuleType]]:
    names = ("python", "cython") if impl == "both" else (impl,)
    return {
        p: {n: importlib.import_module(f"gateway.codecs.{p}.{IMPL_MODULES[n]}") for n in names}
        for p in protocols
    }


def build_seeds(
    rng: random.Random, encoder_seeds: int, protocols: Sequence[str]
) -> dict[str, list[bytes]]:
    seeds: dict[str, list[bytes]] = {}
    for p in protocols:
        vectors = load_vector_frames(p)
        seeds[p] = vectors + encoder_frames(p, vectors, rng, encoder_seeds)
    return seeds


@dataclass
class Report:
    """What a campaign found: the JSON summary plus the failures."""

    summary: dict[str, Any]
    failures: list[FuzzFailure]


def fuzz(
    count: int,
    seed: int = 0,
    impl: str = "both",
    *,
    time_limit: float = 1.0,
    hard_limit: float = 60.0,
    max_rss_growth_mb: float = 64.0,
    keep_going: bool = False,
    encoder_seeds: int = 200,
    current_file: str | None = None,
    protocols: Sequence[str] = PROTOCOLS,
) -> Report:
    """Run ``count`` inputs; the importable entry point (the smoke test calls this)."""
    rng = random.Random(seed)
    fuzzer = Fuzzer(
        load_impls(impl, protocols),
        build_seeds(rng, encoder_seeds, protocols),
        tuple(protocols),
        rng,
        time_limit,
    )
    fd = os.open(current_file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644) if current_file else -1
    warmup = min(count // 10, 20_000)
    rss_before = rss_mb()
    start = time.perf_counter()
    done = 0
    try:
        for i in range(count):
            if i % 1000 == 0 and hard_limit > 0:
                faulthandler.dump_traceback_later(hard_limit, exit=True)
            if i == warmup:
                gc.collect()
                rss_before = rss_mb()
            protocol, data = fuzzer.make_input()
            if fd >= 0:  # so a hard hang leaves the input behind
                os.pwrite(fd, struct.pack(">I", len(data)) + data, 0)
            try:
                fuzzer.run_one(protocol, data)
            except FuzzFailure as failure:
                fuzzer.failure_count += 1
                key = failure.signature()
                if key not in fuzzer.seen:  # keep-going keeps one example of each kind
                    fuzzer.seen.add(key)
                    fuzzer.failures.append(failure)
                if not keep_going or len(fuzzer.failures) >= 50:
                    done = i + 1
                    break
            done = i + 1
    finally:
        if hard_limit > 0:
            faulthandler.cancel_dump_traceback_later()
        if fd >= 0:
            os.close(fd)
    seconds = time.perf_counter() - start
    gc.collect()
    growth = rss_mb() - rss_before
    if growth > max_rss_growth_mb:
        fuzzer.failures.append(
            FuzzFailure("memory growth", "*", impl, b"", f"RSS grew {growth:.1f} MiB")
        )
    summary = {
        "bench": "fuzz_codecs",
        "impl": impl,
        "protocols": list(protocols),
        "inputs": done,
        "seconds": round(seconds, 2),
        "per_s": round(done / seconds) if seconds > 0 else 0,
        "errors": fuzzer.failure_count + (len(fuzzer.failures) - len(fuzzer.seen)),
        "rss_growth_mb": round(growth, 2),
        "seed": seed,
        "slowest_input_ms": round(fuzzer.slowest * 1000, 2),
        "seeds": {p: len(s) for p, s in fuzzer.seeds.items()},
        "outcomes": dict(sorted(fuzzer.outcomes.items())),
    }
    return Report(summary, fuzzer.failures)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1_000_000, help="number of inputs")
    parser.add_argument("--seed", type=int, default=0, help="random seed (runs are repeatable)")
    parser.add_argument("--impl", choices=("python", "cython", "both"), default="both")
    parser.add_argument("--protocol", choices=(*PROTOCOLS, "both"), default="both")
    parser.add_argument("--time-limit", type=float, default=1.0, help="seconds per input (soft)")
    parser.add_argument("--hard-limit", type=float, default=60.0, help="watchdog seconds per 1000")
    parser.add_argument("--max-rss-growth-mb", type=float, default=64.0)
    parser.add_argument(
        "--keep-going", action="store_true", help="carry on; report up to 50 distinct failures"
    )
    parser.add_argument(
        "--current-file",
        default=os.path.join(tempfile.gettempdir(), f"fuzz_codecs.{os.getpid()}.current"),
        help="the input in flight (4-byte length + bytes), left behind if the watchdog fires",
    )
    args = parser.parse_args(argv)
    print(f"fuzz_codecs: input in flight kept in {args.current_file}", file=sys.stderr)
    report = fuzz(
        args.count,
        args.seed,
        args.impl,
        time_limit=args.time_limit,
        hard_limit=args.hard_limit,
        max_rss_growth_mb=args.max_rss_growth_mb,
        keep_going=args.keep_going,
        current_file=args.current_file,
        protocols=PROTOCOLS if args.protocol == "both" else (args.protocol,),
    )
    for failure in report.failures:
        print(f"FAILURE {failure.kind} [{failure.protocol}/{failure.impl}]", file=sys.stderr)
        print(f"  input hex: {failure.data.hex().upper()}", file=sys.stderr)
        print("  " + failure.detail.replace("\n", "\n  "), file=sys.stderr)
    print(json.dumps(report.summary))
    if not report.failures:
        with contextlib.suppress(OSError):
            os.remove(args.current_file)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
