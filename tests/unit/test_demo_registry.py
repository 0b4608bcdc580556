"""gateway.demo_registry without a database: the device ids are the simulators' own, the city
table matches the simulator's cities, the interval and the start-up summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway import demo_registry as demo
from gateway.mqtt_simulator import CITIES, MqttSimConfig, MqttSimulator
from gateway.ocpp_simulator import ChargerFleet, ChargerSimConfig
from gateway.tcp_simulator import SimConfig, TerminalFleet


def test_every_simulator_city_has_a_position_and_a_zone_of_its_offset() -> None:
    assert set(demo.CITIES) == {code for code, _ in CITIES}
    when = datetime(2026, 1, 15, tzinfo=UTC)  # none of these zones has daylight saving
    for code, offset_h in CITIES:
        tz, lat, lon = demo.CITIES[code]
        assert when.astimezone(ZoneInfo(tz)).utcoffset() == timedelta(hours=offset_h), code
        assert -90 <= lat <= 90 and -180 <= lon <= 180


@pytest.mark.asyncio
async def test_trucks_are_the_terminal_fleets_own() -> None:
    config = SimConfig(gbt=3, jt=2, gbt_versions=(2016, 2025), jt_versions=(2013, 2019), seed=7)
    devices = demo.devices_of(config)
    fleet = TerminalFleet(config)
    fleet._build()  # the terminals as start() makes them (needs a loop), without connecting
    ids = [t.vin if t.is_gbt else t.phone for t in devices.trucks]
    assert ids == [t.device_id for t in fleet.terminals]
    assert [t.version for t in devices.trucks] == [2016, 2025, 2016, 2019, 2013]
    assert len({t.vin for t in devices.trucks}) == 5  # every truck has its vehicle
    assert devices.interval_s == 1.0 and not devices.stations and not devices.chargers


def test_chargers_and_stations_are_the_simulators_own() -> None:
    ocpp = ChargerSimConfig(url="ws://127.0.0.1:1/ocpp", chargers=3)
    mqtt = MqttSimConfig(swap_stations=2, charger_sites=2, chargers_per_site=2)
    devices = demo.devices_of(chargers=ocpp, mqtt=mqtt)
    sim = MqttSimulator(mqtt)
    expected_chargers: list[tuple[str, str, str | None]] = [
        (c.identity, c.version, None) for c in ChargerFleet(ocpp).chargers
    ]
    for site in sim.sites:
        expected_chargers += [
            (c.charger_id, "silkgate-charger", site.site_id) for c in site.chargers
        ]
    assert [(c.charger_id, c.protocol, c.station_id) for c in devices.chargers] == (
        expected_chargers
    )
    assert {c.protocol for c in devices.chargers} == {"ocpp1.6", "ocpp2.0.1", "silkgate-charger"}
    assert [(s.station_id, s.kind, s.bays) for s in devices.stations] == [
        *[(st.station_id, "swap", len(st.bays)) for st in sim.stations],
        *[(site.site_id, "charging", None) for site in sim.sites],
    ]
    assert all(s.city in demo.CITIES for s in devices.stations)
    assert not devices.trucks and devices.interval_s is None
    assert not demo.devices_of()


@pytest.mark.parametrize(
    ("interval", "stored"), [(1.0, 1.0), (0.5, 0.5), (600.0, 600.0), (0.0, None), (601.0, None)]
)
def test_reporting_interval_only_within_the_columns_range(
    interval: float, stored: float | None
) -> None:
    assert demo.reporting_interval(interval) == stored


def test_summary_names_new_updated_and_foreign_rows() -> None:
    done = demo.Registered(
        inserted={"vehicles": 2, "chargers": 0},
        updated={"chargers": 1},
        foreign={"vehicles": 1},
        totals={"vehicles": 3, "terminals": 0, "chargers": 4},
    )
    assert done.summary() == (
        "registered as operator demo: vehicles 3 (2 new, 1 not demo's: left alone), "
        "chargers 4 (1 updated)"
    )
