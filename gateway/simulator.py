"""A fleet of simulated trucks that speak GB/T 32960 (2016 and 2025) and JT/T 808 (2013, 2019).

Sans-IO: the fleet advances in simulated time and returns encoded frames made with the real
encoders; callers send them over sockets or feed them to the codecs in-process. Deterministic
for a given seed.
"""

from __future__ import annotations

import math
import random
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gateway.codecs import gbt32960 as gbt
from gateway.codecs import jt808 as jt
from gateway.codecs.common import DeviceTime, utc_to_gmt8_fields

CELLS = 192
PROBES = 48
CMD = 0xFE  # GB/T 32960 response flag of a command (not a response)


def gbt_time(utc: datetime) -> DeviceTime:
    """A GB/T 32960 BYTE[6] device time (GMT+8 wall clock) for a UTC instant."""
    y, mo, d, h, mi, s = utc_to_gmt8_fields(utc)
    return DeviceTime(raw=bytes((y - 2000, mo, d, h, mi, s)), utc=utc.replace(microsecond=0))


def jt_time(utc: datetime) -> DeviceTime:
    """A JT/T 808 BCD[6] device time (GMT+8 wall clock) for a UTC instant."""
    digits = "".join(f"{v % 100:02d}" for v in utc_to_gmt8_fields(utc))
    return DeviceTime(raw=bytes.fromhex(digits), utc=utc.replace(microsecond=0))


@dataclass
class Truck:
    """One truck's state; ``step`` moves it on by some seconds of driving."""

    vin: str
    phone: str
    version: int  # 2016 / 2025 for GB/T 32960 trucks, 2013 / 2019 for JT/T 808 ones
    lat: float
    lon: float
    heading: float
    speed_kmh: float = 0.0
    soc: float = 90.0
    odometer_km: float = 1000.0
    pack_temp_c: float = 25.0
    login_serial: int = 0
    jt_serial: int = 0
    # packed WORDs: 384 bytes instead of 192 int objects (fleets of 10,000 trucks stay small)
    cell_mv: array[int] = field(default_factory=lambda: array("H"))

    @property
    def is_gbt(self) -> bool:
        return self.version in (2016, 2025)

    def step(self, seconds: float, rng: random.Random) -> None:
        self.speed_kmh = min(max(self.speed_kmh + rng.uniform(-8, 8), 0.0), 89.0)
        km = self.speed_kmh * seconds / 3600
        self.odometer_km += km
        self.heading = (self.heading + rng.uniform(-10, 10)) % 360
        self.lat += km / 111.0 * math.cos(math.radians(self.heading))
        self.lon += km / 111.0 * math.sin(math.radians(self.heading))
        self.soc = max(self.soc - km * 0.08, 5.0)
        self.pack_temp_c = min(max(self.pack_temp_c + rng.uniform(-0.3, 0.4), 15.0), 55.0)
        base = 3300 + int(self.soc * 8)
        # +-6 mV of noise per cell; randbytes is ~50x cheaper than a randint per cell
        self.cell_mv = array("H", [base + b % 13 - 6 for b in rng.randbytes(CELLS)])

    def next_jt_serial(self) -> int:
        self.jt_serial = (self.jt_serial + 1) & 0xFFFF
        return self.jt_serial


class Fleet:
    """``n`` trucks around a city; versions alternate 2016, 2025, 2013, 2019 unless ``gbt_only``.

    ``versions`` picks the versions to alternate instead; ``first_index`` numbers the trucks
    from there, so two fleets with one seed (say GB/T and JT/T 808 ones) get distinct VINs.
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int = 1,
        start: datetime | None = None,
        gbt_only: bool = False,
        center: tuple[float, float] = (1.35, 103.82),
        versions: Sequence[int] | None = None,
        first_index: int = 0,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = (start or datetime(2026, 1, 1, tzinfo=UTC)).replace(microsecond=0)
        if versions is None:
            versions = (2016, 2025) if gbt_only else (2016, 2025, 2013, 2019)
        elif not versions or set(versions) - {2016, 2025, 2013, 2019}:
            raise ValueError(f"versions must be among 2016, 2025, 2013, 2019: {versions!r}")
        self.trucks = [
            Truck(
                vin=f"LSG{seed % 1000:03d}{i:011d}",
                phone=f"{13800000000 + seed * 100000 + i:012d}",
                version=versions[i % len(versions)],
                lat=center[0] + self.rng.uniform(-0.2, 0.2),
                lon=center[1] + self.rng.uniform(-0.2, 0.2),
                heading=self.rng.uniform(0, 360),
            )
            for i in range(first_index, first_index + n)
        ]
        for t in self.trucks:
            t.step(0, self.rng)

    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        for t in self.trucks:
            t.step(seconds, self.rng)

    # -- frames ------------------------------------------------------------------------------

    def logins(self) -> list[bytes]:
        return [self.login(t) for t in self.trucks]

    def login(self, t: Truck) -> bytes:
        """A GB/T 32960 vehicle login (the next login serial) or a JT/T 808 registration."""
        if t.is_gbt:
            t.login_serial = t.login_serial % 65531 + 1
            return gbt.encode_frame(self._gbt_login(t))
        return jt.encode_frame(self._jt_register(t))

    def reports(self, *, reissue: bool = False) -> list[bytes]:
        """One realtime (GB/T 0x02, or 0x03 when ``reissue``) or 0x0200 frame per truck."""
        return [self.report(t, reissue=reissue) for t in self.trucks]

    def report(self, t: Truck, *, reissue: bool = False) -> bytes:
        if t.is_gbt:
            return gbt.encode_frame(self.gbt_realtime(t, reissue=reissue))
        return jt.encode_frame(self.jt_location(t))

    def logouts(self) -> list[bytes]:
        return [self.logout(t) for t in self.trucks]

    def logout(self, t: Truck) -> bytes:
        """A GB/T 32960 vehicle logout (the current login serial) or a JT/T 808 0x0003."""
        if t.is_gbt:
            body = gbt.VehicleLogout(time=gbt_time(self.now), serial=t.login_serial)
            return gbt.encode_frame(self.gbt_frame(t, 0x04, body))
        return jt.encode_frame(self.jt_frame(t, 0x0003, jt.Logout()))

    def step(self, t: Truck, seconds: float) -> None:
        """Move one truck on by ``seconds`` of driving (the fleet clock stays where it is)."""
        t.step(seconds, self.rng)

    def stream(self, rounds: int, interval_s: int = 10) -> Iterator[bytes]:
        """Logins, then ``rounds`` reports per truck ``interval_s`` apart, then logouts."""
        yield from self.logins()
        for _ in range(rounds):
            yield from self.reports()
            self.advance(interval_s)
        yield from self.logouts()

    # -- GB/T 32960 --------------------------------------------------------------------------

    def gbt_frame(self, t: Truck, command: int, body: gbt.Body, response: int = CMD) -> gbt.Frame:
        """A GB/T 32960 frame of this truck (a command unless ``response`` says otherwise)."""
        return gbt.Frame(
            version=t.version,
            command=command,
            response=response,
            vin=t.vin,
            encryption=1,
            body=body,
        )

    def _gbt_login(self, t: Truck) -> gbt.Frame:
        time = gbt_time(self.now)
        iccid = f"8986{t.phone[-12:]}0000"[:20]
        body: gbt.Body
        if t.version == 2016:
            body = gbt.VehicleLogin(
                time=time, serial=t.login_serial, iccid=iccid, subsystem_count=1, code_length=0
            )
        else:
            body = gbt.VehicleLogin2025(
                time=time,
                serial=t.login_serial,
                iccid=iccid,
                packs_per_bms=[1],
                pack_codes=[f"PACK{t.vin[-8:]}".ljust(24, "0")],
            )
        return self.gbt_frame(t, 0x01, body)

    def gbt_realtime(self, t: Truck, *, reissue: bool = False) -> gbt.Frame:
        v16 = t.version == 2016
        current = round(self.rng.uniform(-50, 250), 1)
        vehicle = gbt.VehicleData(
            vehicle_state=1,
            charge_state=3,
            run_mode=1,
            speed_kmh=round(t.speed_kmh, 1),
            odometer_km=round(t.odometer_km, 1),
            total_voltage_v=round(sum(t.cell_mv) / 1000, 1),
            total_current_a=current,
            soc_pct=int(t.soc),
            dcdc_state=1,
            gear_byte=0x2E if t.speed_kmh > 0 else 0x0F,
            insulation_kohm=8000,
            accel_pct=int(t.speed_kmh / 2) if v16 else None,
            brake_pct=0 if v16 else None,
        )
        motor = gbt.Motor(
            number=1,
            state=1 if t.speed_kmh > 0 else 3,
            controller_temp_c=int(t.pack_temp_c) + 5,
            speed_rpm=int(t.speed_kmh * 40),
            torque_nm=round(self.rng.uniform(0, 900), 1),
            temp_c=int(t.pack_temp_c) + 10,
            voltage_v=round(sum(t.cell_mv) / 1000, 1) if v16 else None,
            current_a=round(current, 1) if v16 else None,
        )
        packed = array("H", t.cell_mv)
        if sys.byteorder == "little":
            packed.byteswap()
        cells = packed.tobytes()  # big-endian WORDs
        base_t = int(t.pack_temp_c) + 40
        temps = bytes(base_t + b % 3 - 1 for b in self.rng.randbytes(PROBES))
        pack = gbt.PackVoltage(
            number=1,
            voltage_v=vehicle.total_voltage_v,
            current_a=current,
            cells_raw=cells,
            total_cells=CELLS if v16 else None,
            first_cell=1 if v16 else None,
        )
        position = gbt.Position(
            status=0, lon=round(t.lon, 6), lat=round(t.lat, 6), coord_system=None if v16 else 1
        )
        blocks: list[gbt.RealtimeBlock] = [
            vehicle,
            gbt.DriveMotors(motors=[motor]),
            position,
        ]
        level = 3 if self.rng.random() < 0.01 else 0
        alarm = gbt.Alarm(level=level, flags=0b11 if level else 0, bit_levels=None if v16 else [])
        if v16:
            lo, hi = min(t.cell_mv), max(t.cell_mv)
            blocks.append(
                gbt.Extremes(
                    max_v_subsystem=1,
                    max_v_cell=t.cell_mv.index(hi) + 1,
                    max_cell_v=hi / 1000,
                    min_v_subsystem=1,
                    min_v_cell=t.cell_mv.index(lo) + 1,
                    min_cell_v=lo / 1000,
                    max_t_subsystem=1,
                    max_t_probe=1,
                    max_temp_c=max(temps) - 40,
                    min_t_subsystem=1,
                    min_t_probe=2,
                    min_temp_c=min(temps) - 40,
                )
            )
        blocks += [
            alarm,
            gbt.CellVoltages(packs=[pack]),
            gbt.BatteryTemps(packs=[gbt.PackTemps(number=1, temps_raw=temps)]),
        ]
        body = gbt.RealtimeData(time=gbt_time(self.now), blocks=blocks)
        return self.gbt_frame(t, 0x03 if reissue else 0x02, body)

    # -- JT/T 808 ----------------------------------------------------------------------------

    def jt_frame(self, t: Truck, msg_id: int, body: jt.Body) -> jt.Frame:
        """A JT/T 808 message of this truck with its next serial."""
        v19 = t.version == 2019
        return jt.Frame(
            version=t.version,
            msg_id=msg_id,
            phone=t.phone.rjust(20, "0") if v19 else t.phone,
            serial=t.next_jt_serial(),
            body=body,
            protocol_version=1 if v19 else None,
        )

    def _jt_register(self, t: Truck) -> jt.Frame:
        body = jt.Register(
            province=44,
            city=300,
            maker="SILK",
            model="SIM-T1",
            terminal_id=t.phone[-7:],
            plate_color=0,
            plate=t.vin,
        )
        return self.jt_frame(t, 0x0100, body)

    def jt_location(self, t: Truck) -> jt.Frame:
        status = 0x000C0003  # ACC on, positioned, GPS + BeiDou
        body = jt.Location(
            alarm_flags=0,
            status_flags=status,
            latitude=round(t.lat, 6),
            longitude=round(t.lon, 6),
            altitude_m=20,
            speed_kmh=round(t.speed_kmh, 1),
            direction=int(t.heading) % 360,
            time=jt_time(self.now),
            items=(jt.Odometer(km=round(t.odometer_km, 1)), jt.SatelliteCount(count=12)),
        )
        return self.jt_frame(t, 0x0200, body)
