"""Simulated battery-swap stations (and charger-JSON site controllers) publishing over MQTT,
for ``silkgate run --swap-stations N [--charger-sites M]`` and tests.

Each swap station has storage bays holding heavy-truck packs (282 kWh nominal) and two swap
lanes. Every tick (``interval_s``) it publishes the swap-station v1 messages of
docs/swap-station.md, built with the Structs of :mod:`gateway.swap.messages` and ``encode()``:
its ``station_status``, the ``charging`` readings of the packs charging in its bays (SoC rising
with a taper above 80 %, power, voltage, current, temperature), the ``inventory`` of every bay
(every third tick, and whenever a swap starts or ends), and a ``swap`` message when a swap ends
(a truck from a shared fleet of VINs, the pack taken out and the pack put in with SoC and
energy; mostly ``success``, sometimes ``failed`` or ``aborted`` with faults). Charging runs
:data:`SIM_S_PER_TICK` simulated seconds per tick, so packs recharge within a demo's minutes.
The charger sites are :mod:`gateway.mqtt_simulator_chargers`.

Topics come from the ``[[mqtt.routes]]`` the gateway subscribes to (:func:`sim_config`): the
device level of the route's filter gets the station (charger) id, other ``+`` levels the
station (site) id. Messages are published at QoS 1 from a queue per station, removed only once
the broker acknowledged them; while the broker is away the stations go on and their queues
fill (bounded, oldest dropped), and the client reconnects with full-jitter backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gateway.swap import messages as swap

if TYPE_CHECKING:
    import aiomqtt

    from gateway.adapters.mqtt_client import MqttTls
    from gateway.mqtt_config import MqttConfig

log = logging.getLogger("silkgate.mqtt.simulator")

PACK_CAPACITY_WH = 282_000.0  # nominal energy of a heavy-truck swap pack (CATL 282 kWh class)
BAY_CHARGER_W = 120_000.0  # each storage bay's charger
AUX_POWER_W = 8_000.0  # HVAC, robot and lighting
SIM_S_PER_TICK = 120.0  # simulated charging seconds per tick: a pack recharges in ~50 ticks
READY_SOC = 98.0  # charging stops (and the pack is ready) here
LANES = 2
SWAP_TICKS = (18, 36)  # a swap lasts this many ticks (3 to 6 minutes at 10 s)
IDLE_TICKS = (2, 12)  # a lane waits this long for the next truck
FAULTS = ("UNLOCK_TIMEOUT", "VEHICLE_POSITION", "LOCK_SENSOR", "ROBOT_ALIGNMENT", "PACK_CONNECTOR")
STATION_FAULTS = ("COOLING_FAN_2", "CHARGER_MODULE_4_OVERTEMP", "DOOR_OPEN_BAY_3")

# Cities of the markets silkgate serves, with their UTC offsets (the stations' local time).
CITIES: tuple[tuple[str, int], ...] = (
    ("RUH", 3),
    ("DXB", 4),
    ("JKT", 7),
    ("BKK", 7),
    ("KUL", 8),
    ("JED", 3),
    ("AUH", 4),
    ("MNL", 8),
    ("SGN", 7),
    ("DOH", 3),
)

_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_WMIS = ("LZZ", "LFW", "LZG", "LGA", "LRD")  # Sinotruk, FAW, Shaanxi, Dongfeng, Foton heavy trucks


def vin(rng: random.Random) -> str:
    """A plausible Chinese heavy-truck VIN with a valid check digit (position 9)."""
    chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    body = (
        rng.choice(_WMIS)
        + "".join(rng.choice(chars) for _ in range(5))
        + "0"  # check digit placeholder
        + rng.choice("RS")  # model year 2024 / 2025
        + rng.choice("ABCDEFGH")  # plant
        + f"{rng.randrange(1_000_000):06d}"
    )
    total = sum(_VIN_VALUES[c] * w for c, w in zip(body, _VIN_WEIGHTS, strict=True))
    check = "X" if total % 11 == 10 else str(total % 11)
    return body[:8] + check + body[9:]


def local_time(now: datetime, offset_h: int) -> datetime:
    """``now`` in a station's zone, to the millisecond (what a station clock sends)."""
    tz = timezone(timedelta(hours=offset_h))
    return now.astimezone(tz).replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass
class Pack:
    """A swap pack; its stored energy follows SoC and SoH."""

    pack_id: str
    soh_pct: float
    soc_pct: float
    temperature_c: float

    @property
    def energy_wh(self) -> float:
        return round(PACK_CAPACITY_WH * self.soh_pct / 100 * self.soc_pct / 100, 1)

    def swap_pack(self, bay: int | None = None) -> swap.SwapPack:
        soc = round(self.soc_pct, 1)  # the energy sent is that of the SoC sent
        return swap.SwapPack(
            pack_id=self.pack_id,
            soc_pct=soc,
            energy_wh=round(PACK_CAPACITY_WH * self.soh_pct / 100 * soc / 100, 1),
            soh_pct=round(self.soh_pct, 1),
            bay=bay,
        )


class Fleet:
    """The trucks that come to swap (shared by every station) and the packs they carry."""

    def __init__(self, rng: random.Random, trucks: int) -> None:
        self.rng = rng
        self._packs = 0
        self.trucks: dict[str, Pack] = {vin(rng): self.new_pack(20.0) for _ in range(trucks)}

    def new_pack(self, soc: float) -> Pack:
        self._packs += 1
        series = "ABCDEFGH"[self._packs % 8]
        return Pack(
            pack_id=f"CATL282-{series}{self._packs:04d}",
            soh_pct=round(self.rng.uniform(90.0, 99.5), 1),
            soc_pct=soc,
            temperature_c=round(self.rng.uniform(26.0, 32.0), 1),
        )

    def arriving(self, busy: set[str]) -> tuple[str, Pack]:
        """A truck not swapping now, its pack drained by the trip here."""
        vin_ = self.rng.choice([v for v in self.trucks if v not in busy])
        pack = self.trucks[vin_]
        pack.soc_pct = round(self.rng.uniform(8.0, 35.0), 1)
        pack.temperature_c = round(self.rng.uniform(30.0, 42.0), 1)
        return vin_, pack


@dataclass
class Bay:
    """A storage bay: its pack and charge."""

    number: int
    pack: Pack | None = None
    state: swap.BayState = "empty"
    charged_wh: float = 0.0  # energy of the charge in progress (or just completed)
    power_w: float = 0.0
    cooling: int = 0  # ticks a hot pack waits before charging
    completed: bool = False  # the charge completed this tick: reported once as "complete"


@dataclass
class Lane:
    """A swap lane and the swap in it."""

    number: int
    vin: str | None = None
    pack_out: Pack | None = None
    in_bay: int | None = None  # the bay whose pack is reserved for this swap
    started_at: datetime | None = None
    ticks_left: int = 0
    idle: int = 0
    preset: int = 0  # at start-up: a truck is in the lane, its swap ends in this many ticks


class SwapStation:
    """One simulated station; :meth:`tick` advances it and returns its messages."""

    def __init__(self, index: int, fleet: Fleet, rng: random.Random, interval_s: float) -> None:
        city, self.offset_h = CITIES[index % len(CITIES)]
        self.station_id = f"SW-{city}-{index + 1:03d}"
        self.fleet, self.rng, self.interval_s = fleet, rng, interval_s
        self.ambient_c = rng.uniform(28.0, 36.0)
        total = 8 + 2 * (index % 3)
        self.bays = [Bay(n) for n in range(1, total + 1)]
        for i, bay in enumerate(self.bays[: total - LANES]):  # a free bay per lane
            ready = i % 3 != 2
            bay.pack = fleet.new_pack(
                round(rng.uniform(96.5, READY_SOC) if ready else rng.uniform(20.0, 80.0), 1)
            )
            bay.state = "ready" if ready else "charging"
        # Trucks are already in the lanes: the first swaps end within a few ticks.
        self.lanes = [Lane(n, preset=rng.randint(1, 6)) for n in range(1, LANES + 1)]
        self.ticks = 0
        self.swaps = 0
        self.faults: list[str] = []
        self._fault_ticks = 0

    # -- the model ---------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[swap.Message]:
        """Advance one tick to ``now`` (UTC) and return what the station sends."""
        t = local_time(now, self.offset_h)
        self.ticks += 1
        out: list[swap.Message] = []
        self._charge()
        changed = False
        for lane in self.lanes:
            if lane.vin is not None:
                lane.ticks_left -= 1
                if lane.ticks_left <= 0:
                    out.append(self._end_swap(lane, t))
                    changed = True
            else:
                lane.idle -= 1
                if lane.idle <= 0 and self._start_swap(lane, t, backdate=lane.preset):
                    lane.preset = 0
                    changed = True
        self._station_faults()
        out.insert(0, self.status(t))
        charging = self.charging(t)
        if charging is not None:
            out.insert(1, charging)
        if changed or self.ticks % 3 == 1:
            out.insert(1, self.inventory(t))
        return out

    def _charge(self) -> None:
        for bay in self.bays:
            pack = bay.pack
            bay.completed = False
            if pack is None:
                continue
            if bay.state == "waiting":
                pack.temperature_c = round(pack.temperature_c - 1.5, 1)
                bay.cooling -= 1
                if bay.cooling > 0:
                    continue
                bay.state = "charging"  # and it starts this tick
            if bay.state != "charging":
                bay.power_w = 0.0
                pack.temperature_c = round(
                    pack.temperature_c + (self.ambient_c - pack.temperature_c) * 0.1, 1
                )
                continue
            taper = 1.0 if pack.soc_pct < 80 else max(0.08, (100 - pack.soc_pct) / 20)
            derate = 0.5 if pack.temperature_c > 45 else 1.0
            bay.power_w = round(BAY_CHARGER_W * taper * derate * self.rng.uniform(0.97, 1.0), 1)
            energy = bay.power_w * SIM_S_PER_TICK / 3600
            usable = PACK_CAPACITY_WH * pack.soh_pct / 100
            pack.soc_pct = round(min(READY_SOC, pack.soc_pct + energy / usable * 100), 2)
            bay.charged_wh = round(bay.charged_wh + energy, 1)
            target = self.ambient_c + 14.0 * bay.power_w / BAY_CHARGER_W
            pack.temperature_c = round(pack.temperature_c + (target - pack.temperature_c) * 0.2, 1)
            if pack.soc_pct >= READY_SOC:
                bay.state, bay.completed = "ready", True

    def _start_swap(self, lane: Lane, t: datetime, *, backdate: int = 0) -> bool:
        """A truck drives into the lane if a charged pack is there for it (reserved)."""
        ready = [b for b in self.bays if b.state == "ready"]
        if not ready:
            return False
        bay = max(ready, key=lambda b: b.pack.soc_pct if b.pack else 0.0)
        bay.state = "reserved"
        busy = {ln.vin for ln in self.lanes if ln.vin is not None}
        lane.vin, lane.pack_out = self.fleet.arriving(busy)
        lane.in_bay = bay.number
        duration = self.rng.randint(*SWAP_TICKS)
        # A truck already in the lane at start-up began its swap before this tick.
        lane.started_at = t - timedelta(seconds=max(0, duration - backdate) * self.interval_s)
        lane.ticks_left = backdate if backdate else duration
        return True

    def _end_swap(self, lane: Lane, t: datetime) -> swap.SwapMessage:
        assert lane.vin is not None and lane.pack_out is not None and lane.in_bay is not None
        assert lane.started_at is not None
        in_bay = self.bays[lane.in_bay - 1]
        pack_in = in_bay.pack
        assert pack_in is not None
        self.swaps += 1
        roll = self.rng.random()
        result: swap.SwapResult = (
            "success" if roll < 0.94 else "failed" if roll < 0.98 else "aborted"
        )
        faults: list[str] = []
        packs: dict[str, Any] = {}
        if result == "success":
            in_bay.pack, in_bay.state = None, "empty"
            empty = [b for b in self.bays if b.pack is None]
            out_bay = next((b for b in empty if b is not in_bay), in_bay)
            out_bay.pack, out_bay.charged_wh, out_bay.power_w = lane.pack_out, 0.0, 0.0
            # It waits a tick for the bay's charger (a hot pack longer, to cool down).
            hot = lane.pack_out.temperature_c > 35
            out_bay.state = "waiting"
            out_bay.cooling = self.rng.randint(2, 4) if hot else 1
            self.fleet.trucks[lane.vin] = pack_in
            pack_in.temperature_c = round(pack_in.temperature_c + 1.0, 1)
            packs = {
                "pack_out": lane.pack_out.swap_pack(out_bay.number),
                "pack_in": pack_in.swap_pack(in_bay.number),
            }
        else:
            in_bay.state = "ready"  # the reserved pack stays
            faults = (
                self.rng.sample(FAULTS, self.rng.randint(1, 2))
                if result == "failed"
                else ["VEHICLE_POSITION"]
            )
            packs = {"pack_out": lane.pack_out.swap_pack()}
        message = swap.SwapMessage(
            v=1,
            time=t,
            station_id=self.station_id,
            swap_id=f"{t:%Y%m%d}-{self.swaps:04d}",
            bay=lane.number,
            vin=lane.vin,
            started_at=lane.started_at,
            ended_at=t,
            result=result,
            faults=faults,
            extra={"robot": f"R{lane.number}", "lock_retries": self.rng.choice((0, 0, 0, 1, 2))},
            **packs,
        )
        lane.vin = lane.pack_out = lane.in_bay = lane.started_at = None
        lane.idle = self.rng.randint(*IDLE_TICKS)
        return message

    def _station_faults(self) -> None:
        if self._fault_ticks > 0:
            self._fault_ticks -= 1
            if self._fault_ticks == 0:
                self.faults = []
        elif self.rng.random() < 0.01:
            self.faults = [self.rng.choice(STATION_FAULTS)]
            self._fault_ticks = self.rng.randint(3, 20)

    # -- the messages ------------------------------------------------------------------------

    def status(self, t: datetime) -> swap.StatusMessage:
        ready = sum(b.state == "ready" for b in self.bays)
        reserved = sum(b.state == "reserved" for b in self.bays)
        charging = sum(b.state == "charging" for b in self.bays)
        power = sum(b.power_w for b in self.bays) + AUX_POWER_W
        return swap.StatusMessage(
            v=1,
            time=t,
            station_id=self.station_id,
            state="operating",
            bays_total=len(self.bays),
            bays_available=ready,
            batteries_charged=ready + reserved,
            batteries_charging=charging,
            power_w=round(power, 1),
            faults=list(self.faults),
            extra={
                "firmware": "2.4.1",
                "lanes_busy": sum(ln.vin is not None for ln in self.lanes),
            },
        )

    def inventory(self, t: datetime) -> swap.InventoryMessage:
        bays = []
        for b in self.bays:
            p = b.pack
            if p is None:
                bays.append(swap.InventoryBay(bay=b.number, state="empty"))
                continue
            bays.append(
                swap.InventoryBay(
                    bay=b.number,
                    state=b.state,
                    pack_id=p.pack_id,
                    soc_pct=round(p.soc_pct, 1),
                    soh_pct=p.soh_pct,
                    energy_wh=p.energy_wh,
                    temperature_c=p.temperature_c,
                )
            )
        return swap.InventoryMessage(v=1, time=t, station_id=self.station_id, bays=bays)

    def charging(self, t: datetime) -> swap.ChargingMessage | None:
        """The bays charging, waiting to, or completed this tick; None if there are none."""
        bays = []
        for b in self.bays:
            p = b.pack
            if p is None or not (b.state in ("charging", "waiting") or b.completed):
                continue
            state: swap.ChargingState = (
                "complete" if b.completed else "waiting" if b.state == "waiting" else "charging"
            )
            power = b.power_w if state == "charging" else 0.0
            voltage = round(620.0 + 1.3 * p.soc_pct, 1)
            bays.append(
                swap.ChargingBay(
                    bay=b.number,
                    state=state,
                    pack_id=p.pack_id,
                    soc_pct=round(p.soc_pct, 1),
                    power_w=power,
                    voltage_v=voltage,
                    current_a=round(power / voltage, 1),
                    energy_wh=b.charged_wh,
                    temperature_c=p.temperature_c,
                )
            )
        if not bays:
            return None
        return swap.ChargingMessage(v=1, time=t, station_id=self.station_id, bays=bays)


# --------------------------------------------------------------------------- topics


def topic_for(route_filter: str, level: int | None, device: str, group: str, last: str) -> str:
    """A topic the route's filter matches: level ``level`` (the route's device level) is
    ``device``, every other ``+`` is ``group``, a final ``#`` becomes ``last``."""
    parts = route_filter.split("/")
    for i, part in enumerate(parts):
        if i == level:
            parts[i] = device
        elif part == "+":
            parts[i] = group
        elif part == "#":
            parts[i] = last
    return "/".join(parts)


class Source(Protocol):
    """A simulated publisher: its messages per tick as (topic, payload)."""

    def publish_tick(self, now: datetime) -> list[tuple[str, bytes]]: ...


class _StationSource:
    def __init__(self, station: SwapStation, route: tuple[str, int | None]) -> None:
        self.station = station
        self.topic = topic_for(route[0], route[1], station.station_id, station.station_id, "swap")

    def publish_tick(self, now: datetime) -> list[tuple[str, bytes]]:
        return [(self.topic, swap.encode(m)) for m in self.station.tick(now)]


# --------------------------------------------------------------------------- the publisher


@dataclass(frozen=True)
class MqttSimConfig:
    """What to simulate and where to publish. Routes are (filter without ``$share/<g>/``,
    device level or None)."""

    swap_stations: int = 0
    charger_sites: int = 0
    chargers_per_site: int = 3
    interval_s: float = 10.0
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "silkgate-sim"
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password_env: str | None = None
    tls: MqttTls | None = None
    swap_route: tuple[str, int | None] = ("stations/+/swap", 1)
    charger_route: tuple[str, int | None] = ("sites/+/chargers/+", 3)
    qos: Literal[0, 1] = 1
    trucks: int = 60  # the fleet that comes to swap
    seed: int | None = None
    queue_limit: int = 10_000  # messages queued per station while the broker is away
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    publish_timeout_s: float = 10.0


def sim_config(
    mqtt: MqttConfig,
    *,
    swap_stations: int,
    charger_sites: int = 0,
    interval_s: float = 10.0,
    seed: int | None = None,
) -> MqttSimConfig:
    """The simulator for a gateway's ``[mqtt]`` section: its broker, and topics its
    ``swap`` (``charger``) route subscribes to. Raises ValueError (the message names what is
    missing) when the section is disabled or has no route for a simulated kind."""
    from gateway.adapters.mqtt_client import MqttTls

    if not mqtt.enabled:
        raise ValueError("--swap-stations / --charger-sites publish over MQTT: enable [mqtt]")

    def route(codec: str, flag: str) -> tuple[str, int | None]:
        for r in mqtt.routes:
            if r.codec == codec:
                return r.match_filter, r.device_level()
        raise ValueError(f'{flag} needs a [[mqtt.routes]] with codec = "{codec}"')

    tls = (
        MqttTls(
            ca=mqtt.tls_ca,
            cert=mqtt.tls_cert,
            key=mqtt.tls_key,
            check_hostname=mqtt.tls_check_hostname,
        )
        if mqtt.tls
        else None
    )
    return MqttSimConfig(
        swap_stations=swap_stations,
        charger_sites=charger_sites,
        interval_s=interval_s,
        host=mqtt.host,
        port=mqtt.port,
        client_id=f"{mqtt.client_id}-sim-{os.getpid()}",
        protocol=mqtt.protocol,
        username=mqtt.username,
        password_env=mqtt.password_env,
        tls=tls,
        swap_route=route("swap", "--swap-stations") if swap_stations else ("", None),
        charger_route=route("charger", "--charger-sites") if charger_sites else ("", None),
        seed=seed,
    )


@dataclass
class SimStats:
    published: int = 0  # PUBLISH packets sent (a resend after a reconnect counts again)
    acked: int = 0  # acknowledged by the broker (QoS 1 PUBACK)
    errors: int = 0  # failed connects and lost connections
    dropped: int = 0  # oldest messages dropped from a full queue
    connects: int = 0
    connected: bool = False


@dataclass
class _Queue:
    source: Source
    items: deque[tuple[str, bytes]] = field(default_factory=deque)


class MqttSimulator:
    """The simulated stations and sites and their MQTT client;
    ``async with MqttSimulator(cfg) as sim: await sim.run()`` until :meth:`stop`."""

    def __init__(self, cfg: MqttSimConfig, *, clock: Callable[[], datetime] | None = None) -> None:
        from gateway.mqtt_simulator_chargers import ChargerSite, SiteSource

        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.fleet = Fleet(self.rng, cfg.trucks)
        self.stations = [
            SwapStation(i, self.fleet, self.rng, cfg.interval_s) for i in range(cfg.swap_stations)
        ]
        self.sites = [
            ChargerSite(i, cfg.chargers_per_site, self.rng) for i in range(cfg.charger_sites)
        ]
        sources: list[Source] = [_StationSource(s, cfg.swap_route) for s in self.stations]
        sources += [SiteSource(s, cfg.charger_route) for s in self.sites]
        self._queues = [_Queue(s) for s in sources]
        self.stats = SimStats()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._done = asyncio.Event()

    async def __aenter__(self) -> MqttSimulator:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._generate(), name="mqtt-sim-generate"),
            asyncio.create_task(self._connection(), name="mqtt-sim-publish"),
        ]

    async def run(self) -> None:
        """Until :meth:`stop`."""
        await self._done.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the stations, publish what is queued (up to ``timeout`` s), disconnect."""
        self._stopping.set()
        self._wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for t in pending:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        self._tasks = []
        self.stats.connected = False
        self._done.set()

    def queued(self) -> int:
        return sum(len(q.items) for q in self._queues)

    def summary(self) -> str:
        """One part of the live status line."""
        s = self.stats
        state = "up" if s.connected else "stopped" if self._done.is_set() else "DOWN"
        what = f"{len(self.stations)} swap stations"
        if self.sites:
            what += f", {len(self.sites)} charger sites"
        return (
            f"mqtt sim {state}: {what}, {sum(st.swaps for st in self.stations):,} swaps, "
            f"{s.published:,} published, {s.acked:,} acked, {self.queued():,} queued, "
            f"{s.errors} errors"
        )

    # -- generating --------------------------------------------------------------------------

    def tick(self) -> None:
        """One tick of every station and site: their messages queued for publishing."""
        now = self.clock()
        for q in self._queues:
            q.items.extend(q.source.publish_tick(now))
            over = len(q.items) - self.cfg.queue_limit
            for _ in range(max(0, over)):
                q.items.popleft()
                self.stats.dropped += 1
        self._wake.set()

    async def _generate(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not self._stopping.is_set():
            self.tick()
            due = max(due + self.cfg.interval_s, loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), due - loop.time())

    # -- publishing --------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        import aiomqtt

        password = os.environ.get(self.cfg.password_env) if self.cfg.password_env else None
        v5 = self.cfg.protocol == "5"
        return aiomqtt.Client(
            self.cfg.host,
            self.cfg.port,
            identifier=self.cfg.client_id,
            username=self.cfg.username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            tls_context=self.cfg.tls.context() if self.cfg.tls is not None else None,
            timeout=self.cfg.publish_timeout_s,
            keepalive=30,
        )

    async def _connection(self) -> None:
        """Connect, publish the queues as they fill; on a lost connection back off (full
        jitter) and reconnect. At a stop: publish what is left, then disconnect."""
        import aiomqtt

        attempt = 0
        while True:
            try:
                async with self._client() as client:
                    self.stats.connects += 1
                    self.stats.connected = True
                    attempt = 0
                    log.info("simulator connected to %s:%d", self.cfg.host, self.cfg.port)
                    while True:
                        await self._wake.wait()
                        self._wake.clear()
                        stopping = self._stopping.is_set()
                        await asyncio.gather(*(self._drain(client, q) for q in self._queues))
                        if stopping:
                            return
            except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
                self.stats.errors += 1
                log.warning("simulator: broker %s:%d: %s", self.cfg.host, self.cfg.port, exc)
            finally:
                self.stats.connected = False
            if self._stopping.is_set():
                return
            delay = self.rng.uniform(
                0, min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2**attempt)
            )
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return

    async def _drain(self, client: aiomqtt.Client, q: _Queue) -> None:
        """Publish a queue in order; a message leaves it once the broker acknowledged it."""
        while q.items:
            topic, payload = q.items[0]
            self.stats.published += 1
            await client.publish(
                topic, payload, qos=self.cfg.qos, timeout=self.cfg.publish_timeout_s
            )
            self.stats.acked += 1
            if q.items and q.items[0][1] is payload:
                q.items.popleft()


def messages_of(sources: Sequence[SwapStation], now: datetime) -> list[swap.Message]:
    """Every station's messages of one tick (for tests and benchmarks)."""
    return [m for s in sources for m in s.tick(now)]
