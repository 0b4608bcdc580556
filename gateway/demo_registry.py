"""The simulated devices of ``silkgate run --simulate N --chargers M --swap-stations S
--charger-sites C`` in the device registry, so that the API lists them and the reports cover
them from the first run.

Everything goes to operator ``demo`` ("silkgate demo", zone ``Asia/Singapore``: the simulated
trucks drive around Singapore and their GB/T 32960 / JT/T 808 clocks send UTC+8 wall time, so
the reports' local days are the trucks' own days; stations carry their city's zone), fleet
``demo-trucks``:

* every truck's vehicle (VIN; ``protocol_version`` the GB/T 32960 edition, NULL for the trucks
  behind JT/T 808 terminals; ``reporting_interval_s`` the simulated report interval);
* every JT/T 808 terminal (phone, protocol version, the VIN of its truck);
* every OCPP charger (identity, ``ocpp1.6`` / ``ocpp2.0.1``; no station: the simulator has none);
* every swap station (kind ``swap``, bays, its city's position and zone);
* every charger-JSON site (kind ``charging``, city position and zone) and its chargers
  (protocol ``silkgate-charger``).

All in one transaction, before the simulators connect (so no registry cache holds them as
unknown). Idempotent: a second run inserts nothing. A row that exists already is updated only
when it is ``demo``'s own (and then only the fields the simulation decides: edition, interval,
station, bays, position); rows of any other operator are left exactly as they are, and so are
devices registered without an operator, except JT/T 808 terminals the gateway registered by
itself (``attributes.auto_registered``, from an earlier run): those become ``demo``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from gateway.store.conntype import Conn

if TYPE_CHECKING:
    from gateway.mqtt_simulator import MqttSimConfig
    from gateway.ocpp_simulator import ChargerSimConfig
    from gateway.tcp_simulator import SimConfig

OPERATOR: Final = "demo"
OPERATOR_NAME: Final = "silkgate demo"
OPERATOR_TZ: Final = "Asia/Singapore"
FLEET: Final = "demo-trucks"
FLEET_NAME: Final = "simulated trucks"
CHARGER_JSON_PROTOCOL: Final = "silkgate-charger"

# The simulator's cities (gateway.mqtt_simulator.CITIES): IANA zone, latitude, longitude.
CITIES: Final[dict[str, tuple[str, float, float]]] = {
    "RUH": ("Asia/Riyadh", 24.7136, 46.6753),
    "DXB": ("Asia/Dubai", 25.2048, 55.2708),
    "JKT": ("Asia/Jakarta", -6.2088, 106.8456),
    "BKK": ("Asia/Bangkok", 13.7563, 100.5018),
    "KUL": ("Asia/Kuala_Lumpur", 3.1390, 101.6869),
    "JED": ("Asia/Riyadh", 21.4858, 39.1925),
    "AUH": ("Asia/Dubai", 24.4539, 54.3773),
    "MNL": ("Asia/Manila", 14.5995, 120.9842),
    "SGN": ("Asia/Ho_Chi_Minh", 10.8231, 106.6297),
    "DOH": ("Asia/Qatar", 25.2854, 51.5310),
}


@dataclass(frozen=True, slots=True)
class DemoTruck:
    vin: str
    phone: str  # as the JT/T 808 terminal sends it (20 digits in 2019)
    version: int  # 2016 / 2025: GB/T 32960 edition; 2013 / 2019: a JT/T 808 terminal's

    @property
    def is_gbt(self) -> bool:
        return self.version in (2016, 2025)


@dataclass(frozen=True, slots=True)
class DemoStation:
    station_id: str
    kind: str  # "swap" or "charging"
    city: str  # a key of CITIES (unknown: no position, the operator's zone)
    bays: int | None = None


@dataclass(frozen=True, slots=True)
class DemoCharger:
    charger_id: str
    protocol: str  # "ocpp1.6", "ocpp2.0.1", "silkgate-charger"
    station_id: str | None = None


@dataclass(frozen=True, slots=True)
class DemoDevices:
    """What one run simulates, by registry id."""

    trucks: Sequence[DemoTruck] = ()
    stations: Sequence[DemoStation] = ()
    chargers: Sequence[DemoCharger] = ()
    interval_s: float | None = None  # the trucks' report interval

    def __bool__(self) -> bool:
        return bool(self.trucks or self.stations or self.chargers)


@dataclass(frozen=True, slots=True)
class Registered:
    """Per table: rows inserted, ``demo`` rows updated, and simulated ids that belong to
    another operator (left alone)."""

    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    foreign: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """``registered as operator demo: vehicles 20 (20 new), ...`` for the start-up output."""
        parts = []
        for table, total in self.totals.items():
            if not total:
                continue
            notes = [f"{n} {what}" for what, n in self._notes(table) if n]
            parts.append(f"{table} {total}" + (f" ({', '.join(notes)})" if notes else ""))
        return f"registered as operator {OPERATOR}: " + ", ".join(parts)

    def _notes(self, table: str) -> list[tuple[str, int]]:
        return [
            ("new", self.inserted.get(table, 0)),
            ("updated", self.updated.get(table, 0)),
            ("not demo's: left alone", self.foreign.get(table, 0)),
        ]


def reporting_interval(interval_s: float | None) -> float | None:
    """``vehicles.reporting_interval_s`` for a simulated interval: None outside the column's
    (0, 600] (closed loop: interval 0), so the reports use ``[reports] reporting_interval_s``."""
    if interval_s is None or not 0 < interval_s <= 600:
        return None
    return interval_s


def devices_of(
    terminals: SimConfig | None = None,
    chargers: ChargerSimConfig | None = None,
    mqtt: MqttSimConfig | None = None,
) -> DemoDevices:
    """The registry ids of the simulators these configs describe (None: not simulated)."""
    trucks: list[DemoTruck] = []
    stations: list[DemoStation] = []
    plugs: list[DemoCharger] = []
    if terminals is not None:
        from gateway.tcp_simulator import fleet_trucks, wire_phone

        trucks = [DemoTruck(t.vin, wire_phone(t), t.version) for t in fleet_trucks(terminals)]
    if chargers is not None:
        from gateway.ocpp_simulator import charger_identities

        plugs += [DemoCharger(cid, version) for cid, version in charger_identities(chargers)]
    if mqtt is not None:
        from gateway.mqtt_simulator import MqttSimulator

        sim = MqttSimulator(mqtt)  # builds the stations and sites; connects only at start()
        for st in sim.stations:
            city = st.station_id.split("-")[1]
            stations.append(DemoStation(st.station_id, "swap", city, len(st.bays)))
        for site in sim.sites:
            city = site.site_id.split("-")[1]
            stations.append(DemoStation(site.site_id, "charging", city))
            plugs += [
                DemoCharger(c.charger_id, CHARGER_JSON_PROTOCOL, site.site_id)
                for c in site.chargers
            ]
    interval = terminals.interval_s if terminals is not None else None
    return DemoDevices(trucks, stations, plugs, interval)


_OPERATOR_SQL: Final = """
INSERT INTO operators (operator_id, name, timezone, attributes)
VALUES ($1, $2, $3, '{"demo": true}')
ON CONFLICT (operator_id) DO NOTHING
"""
_FLEET_SQL: Final = """
INSERT INTO fleets (fleet_id, operator_id, name, attributes)
VALUES ($1, $2, $3, '{"demo": true}')
ON CONFLICT (fleet_id) DO NOTHING
"""
# The fleet only when it is demo's (a user may own a fleet of that name).
_VEHICLES_SQL: Final = """
INSERT INTO vehicles AS v (vin, operator_id, fleet_id, protocol_version, reporting_interval_s,
    attributes)
SELECT x.vin, $1, (SELECT fleet_id FROM fleets WHERE fleet_id = $2 AND operator_id = $1),
    x.version, $5, '{"demo": true}'
FROM unnest($3::text[], $4::smallint[]) AS x (vin, version)
ON CONFLICT (vin) DO UPDATE SET
    protocol_version = EXCLUDED.protocol_version,
    reporting_interval_s = EXCLUDED.reporting_interval_s,
    updated_at = now()
WHERE v.operator_id = $1
  AND (v.protocol_version, v.reporting_interval_s)
      IS DISTINCT FROM (EXCLUDED.protocol_version, EXCLUDED.reporting_interval_s)
RETURNING xmax = 0 AS inserted
"""
# The VIN only when that vehicle is demo's; terminals the gateway registered by itself
# (no operator, auto_registered) are taken over.
_TERMINALS_SQL: Final = """
INSERT INTO terminals AS t (phone, operator_id, vin, protocol_version, attributes)
SELECT x.phone, $1, (SELECT vin FROM vehicles WHERE vin = x.vin AND operator_id = $1),
    x.version, '{"demo": true}'
FROM unnest($2::text[], $3::text[], $4::smallint[]) AS x (phone, vin, version)
ON CONFLICT (phone) DO UPDATE SET
    operator_id = $1,
    vin = EXCLUDED.vin,
    protocol_version = EXCLUDED.protocol_version,
    attributes = COALESCE(t.attributes, '{}') || '{"demo": true}',
    updated_at = now()
WHERE (t.operator_id = $1
       OR (t.operator_id IS NULL AND t.attributes @> '{"auto_registered": true}'))
  AND (t.operator_id, t.vin, t.protocol_version)
      IS DISTINCT FROM ($1, EXCLUDED.vin, EXCLUDED.protocol_version)
RETURNING xmax = 0 AS inserted
"""
_STATIONS_SQL: Final = """
INSERT INTO stations AS s (station_id, operator_id, kind, name, lat, lon, timezone, bays,
    attributes)
SELECT x.id, $1, x.kind, x.name, x.lat, x.lon, x.tz, x.bays, '{"demo": true}'
FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::text[],
    $8::smallint[]) AS x (id, kind, name, lat, lon, tz, bays)
ON CONFLICT (station_id) DO UPDATE SET
    kind = EXCLUDED.kind,
    lat = EXCLUDED.lat,
    lon = EXCLUDED.lon,
    timezone = EXCLUDED.timezone,
    bays = EXCLUDED.bays,
    updated_at = now()
WHERE s.operator_id = $1
  AND (s.kind, s.lat, s.lon, s.timezone, s.bays)
      IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.lat, EXCLUDED.lon, EXCLUDED.timezone, EXCLUDED.bays)
RETURNING xmax = 0 AS inserted
"""
# The station only when it is demo's; connectors: every simulated charger has one.
_CHARGERS_SQL: Final = """
INSERT INTO chargers AS c (charger_id, operator_id, station_id, protocol, connectors, attributes)
SELECT x.id, $1,
    (SELECT station_id FROM stations WHERE station_id = x.station AND operator_id = $1),
    x.protocol, 1, '{"demo": true}'
FROM unnest($2::text[], $3::text[], $4::text[]) AS x (id, protocol, station)
ON CONFLICT (charger_id) DO UPDATE SET
    station_id = EXCLUDED.station_id,
    protocol = EXCLUDED.protocol,
    updated_at = now()
WHERE c.operator_id = $1
  AND (c.station_id, c.protocol) IS DISTINCT FROM (EXCLUDED.station_id, EXCLUDED.protocol)
RETURNING xmax = 0 AS inserted
"""
_FOREIGN_SQL: Final = {
    "vehicles": "SELECT count(*) FROM vehicles WHERE vin = ANY($2) AND operator_id <> $1",
    "terminals": (
        "SELECT count(*) FROM terminals WHERE phone = ANY($2) AND operator_id IS DISTINCT FROM $1"
    ),
    "stations": "SELECT count(*) FROM stations WHERE station_id = ANY($2) AND operator_id <> $1",
    "chargers": "SELECT count(*) FROM chargers WHERE charger_id = ANY($2) AND operator_id <> $1",
}


async def register_demo(conn: Conn, devices: DemoDevices) -> Registered:
    """Register ``devices`` as operator ``demo``'s in one transaction (see the module
    docstring); safe to run again, and concurrently."""
    out = Registered()
    if not devices:
        return out
    jt = [t for t in devices.trucks if not t.is_gbt]
    places = [CITIES.get(s.city, (None, None, None)) for s in devices.stations]
    ids: dict[str, list[str]] = {
        "vehicles": [t.vin for t in devices.trucks],
        "terminals": [t.phone for t in jt],
        "stations": [s.station_id for s in devices.stations],
        "chargers": [c.charger_id for c in devices.chargers],
    }
    async with conn.transaction():
        await conn.execute(_OPERATOR_SQL, OPERATOR, OPERATOR_NAME, OPERATOR_TZ)
        if devices.trucks:
            await conn.execute(_FLEET_SQL, FLEET, OPERATOR, FLEET_NAME)
        statements: list[tuple[str, str, tuple[object, ...]]] = [
            (
                "vehicles",
                _VEHICLES_SQL,
                (
                    FLEET,
                    ids["vehicles"],
                    [t.version if t.is_gbt else None for t in devices.trucks],
                    reporting_interval(devices.interval_s),
                ),
            ),
            (
                "terminals",
                _TERMINALS_SQL,
                (ids["terminals"], [t.vin for t in jt], [t.version for t in jt]),
            ),
            (
                "stations",
                _STATIONS_SQL,
                (
                    ids["stations"],
                    [s.kind for s in devices.stations],
                    [f"demo {s.kind} station {s.station_id}" for s in devices.stations],
                    [p[1] for p in places],
                    [p[2] for p in places],
                    [p[0] for p in places],
                    [s.bays for s in devices.stations],
                ),
            ),
            (
                "chargers",
                _CHARGERS_SQL,
                (
                    ids["chargers"],
                    [c.protocol for c in devices.chargers],
                    [c.station_id for c in devices.chargers],
                ),
            ),
        ]
        for table, sql, args in statements:
            out.totals[table] = len(ids[table])
            if not ids[table]:
                continue
            rows = await conn.fetch(sql, OPERATOR, *args)
            out.inserted[table] = sum(1 for r in rows if r["inserted"])
            out.updated[table] = len(rows) - out.inserted[table]
            out.foreign[table] = await conn.fetchval(_FOREIGN_SQL[table], OPERATOR, ids[table])
    return out
