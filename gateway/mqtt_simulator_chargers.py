"""Simulated charger-JSON site controllers for :mod:`gateway.mqtt_simulator`
(``silkgate run --charger-sites M``).

A site has a few heavy-truck DC chargers of one connector each. Every tick (the simulator's
interval) the site controller publishes, per charger, the charger message set v1 of
docs/charger-json.md built with the Structs of :mod:`gateway.charger_json.messages` and
``encode()``: a ``boot`` event at start-up, ``connector_status`` on every change (Available,
Preparing, Charging, Finishing, now and then Faulted), and during a charging session its
``session`` start, an ``update`` every fifth tick and the ``stop``, with ``meter_values``
every tick (energy register in kWh, power in kW, current, voltage, the truck's SoC and the
cable temperature). Charging runs :data:`gateway.mqtt_simulator.SIM_S_PER_TICK` simulated
seconds per tick.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.charger_json import messages as cj
from gateway.mqtt_simulator import CITIES, SIM_S_PER_TICK, local_time, topic_for

CHARGER_W = (240_000.0, 360_000.0)  # the sites' DC chargers
TRUCK_BATTERY_WH = (400_000.0, 600_000.0)
SESSION_UPDATE_TICKS = 5


@dataclass
class _Session:
    transaction_id: str
    id_tag: str
    started_at: datetime
    meter_start_wh: float
    soc_start: float
    soc: float
    target_soc: float
    battery_wh: float
    ticks: int = 0


@dataclass
class _Charger:
    charger_id: str
    max_w: float
    meter_wh: float  # the energy register
    serial: str
    status: cj.ConnectorState = "Available"
    session: _Session | None = None
    idle: int = 0
    booted: bool = False
    sessions: int = 0


class ChargerSite:
    """One site controller and its chargers; :meth:`tick` returns the messages of one tick."""

    def __init__(self, index: int, chargers: int, rng: random.Random) -> None:
        city, self.offset_h = CITIES[(index + 5) % len(CITIES)]
        self.site_id = f"SITE-{city}-{index + 1:02d}"
        self.rng = rng
        self.chargers = [
            _Charger(
                charger_id=f"{self.site_id}-CP{j + 1}",
                max_w=rng.choice(CHARGER_W),
                meter_wh=round(rng.uniform(100_000_000, 2_000_000_000), 0),
                serial=f"SN-{rng.randrange(10**8):08d}",
                idle=rng.randint(1, 3),
            )
            for j in range(chargers)
        ]
        self.id_tags = [f"{rng.randrange(16**14):014X}" for _ in range(20)]

    def tick(self, now: datetime) -> list[cj.Message]:
        t = local_time(now, self.offset_h)
        out: list[cj.Message] = []
        for c in self.chargers:
            common: dict[str, Any] = {
                "v": 1,
                "charger_id": c.charger_id,
                "station_id": self.site_id,
                "time": t,
            }
            if not c.booted:
                c.booted = True
                detail = {
                    "vendor": "ExampleCo",
                    "model": f"DC{int(c.max_w / 1000)}",
                    "serial_number": c.serial,
                    "firmware_version": "3.2.7",
                    "reason": "PowerUp",
                }
                out.append(cj.EventMessage(event="boot", detail=detail, **common))
                out.append(self._status(c, "Available", common))
                continue
            if c.status == "Faulted":
                out.append(cj.EventMessage(event="fault_cleared", connector_id=1, **common))
                out.append(self._status(c, "Available", common))
            elif c.status == "Finishing":
                out.append(self._status(c, "Available", common))
            elif c.status == "Available":
                c.idle -= 1
                if self.rng.random() < 0.005:
                    out.append(
                        cj.EventMessage(
                            event="fault",
                            connector_id=1,
                            code="E-0412",
                            info="insulation low",
                            **common,
                        )
                    )
                    out.append(self._status(c, "Faulted", common, error_code="GroundFailure"))
                elif c.idle <= 0:
                    out.append(self._status(c, "Preparing", common))  # a truck plugged in
            elif c.status == "Preparing":
                out += self._start(c, t, common)
            elif c.session is not None:
                out += self._charge(c, t, common)
        return out

    def _status(
        self,
        c: _Charger,
        status: cj.ConnectorState,
        common: dict[str, Any],
        error_code: str = "NoError",
    ) -> cj.StatusMessage:
        c.status = status
        return cj.StatusMessage(connector_id=1, status=status, error_code=error_code, **common)

    def _start(self, c: _Charger, t: datetime, common: dict[str, Any]) -> list[cj.Message]:
        c.sessions += 1
        soc = round(self.rng.uniform(10.0, 35.0), 1)
        s = c.session = _Session(
            transaction_id=f"{c.charger_id}-{t:%Y%m%d%H%M%S}-{c.sessions}",
            id_tag=self.rng.choice(self.id_tags),
            started_at=t,
            meter_start_wh=c.meter_wh,
            soc_start=soc,
            soc=soc,
            target_soc=round(self.rng.uniform(80.0, 95.0), 1),
            battery_wh=self.rng.uniform(*TRUCK_BATTERY_WH),
        )
        start = cj.SessionMessage(
            event="start",
            transaction_id=s.transaction_id,
            connector_id=1,
            id_tag=s.id_tag,
            started_at=t,
            meter_start_wh=s.meter_start_wh,
            soc_start_pct=soc,
            **common,
        )
        return [start, self._status(c, "Charging", common)]

    def _charge(self, c: _Charger, t: datetime, common: dict[str, Any]) -> list[cj.Message]:
        s = c.session
        assert s is not None
        s.ticks += 1
        taper = 1.0 if s.soc < 80 else max(0.1, (100 - s.soc) / 20)
        power = round(c.max_w * taper * self.rng.uniform(0.95, 1.0), 1)
        energy = power * SIM_S_PER_TICK / 3600
        c.meter_wh = round(c.meter_wh + energy, 1)
        s.soc = round(min(100.0, s.soc + energy / s.battery_wh * 100), 1)
        voltage = round(650.0 + 1.4 * s.soc, 1)
        samples = [
            cj.Sample(
                measurand="Energy.Active.Import.Register",
                value=round(c.meter_wh / 1000, 3),
                unit="kWh",
            ),
            cj.Sample(measurand="Power.Active.Import", value=round(power / 1000, 2), unit="kW"),
            cj.Sample(measurand="Current.Import", value=round(power / voltage, 1), unit="A"),
            cj.Sample(measurand="Voltage", value=voltage, unit="V"),
            cj.Sample(measurand="SoC", value=s.soc, unit="Percent", location="EV"),
            cj.Sample(
                measurand="Temperature",
                value=round(35.0 + 15.0 * power / c.max_w, 1),
                unit="Celsius",
                location="Cable",
            ),
        ]
        out: list[cj.Message] = [
            cj.MeterValuesMessage(
                connector_id=1,
                transaction_id=s.transaction_id,
                samples=samples,
                **common,
            )
        ]
        delivered = round(c.meter_wh - s.meter_start_wh, 1)
        if s.soc >= s.target_soc:
            out.append(
                cj.SessionMessage(
                    event="stop",
                    transaction_id=s.transaction_id,
                    connector_id=1,
                    id_tag=s.id_tag,
                    started_at=s.started_at,
                    stopped_at=t,
                    meter_start_wh=s.meter_start_wh,
                    meter_stop_wh=c.meter_wh,
                    energy_wh=delivered,
                    soc_start_pct=s.soc_start,
                    soc_pct=s.soc,
                    stop_reason=self.rng.choice(("EVDisconnected", "Local")),
                    **common,
                )
            )
            out.append(self._status(c, "Finishing", common))
            c.session = None
            c.idle = self.rng.randint(2, 10)
        elif s.ticks % SESSION_UPDATE_TICKS == 0:
            out.append(
                cj.SessionMessage(
                    event="update",
                    transaction_id=s.transaction_id,
                    energy_wh=delivered,
                    soc_pct=s.soc,
                    **common,
                )
            )
        return out


class SiteSource:
    """A site's messages as (topic, payload): the route's device level gets the charger id,
    its other ``+`` levels the site id."""

    def __init__(self, site: ChargerSite, route: tuple[str, int | None]) -> None:
        self.site = site
        self.topics = {
            c.charger_id: topic_for(route[0], route[1], c.charger_id, site.site_id, "charger")
            for c in site.chargers
        }

    def publish_tick(self, now: datetime) -> list[tuple[str, bytes]]:
        out = []
        for m in self.site.tick(now):
            assert m.charger_id is not None
            out.append((self.topics[m.charger_id], cj.encode(m)))
        return out
