"""The MQTT simulator's messages: valid swap-station and charger JSON, plausible values."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from gateway.charger_json import messages as cj
from gateway.config import parse
from gateway.mqtt_config import MqttRoute
from gateway.mqtt_simulator import (
    PACK_CAPACITY_WH,
    Fleet,
    SwapStation,
    _StationSource,
    sim_config,
    topic_for,
    vin,
)
from gateway.mqtt_simulator_chargers import ChargerSite, SiteSource
from gateway.swap import messages as swap

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _run_stations(ticks: int, stations: int = 3) -> list[tuple[str, swap.Message]]:
    """(topic, decoded message) of every message the stations publish in ``ticks`` ticks."""
    rng = random.Random(7)
    fleet = Fleet(rng, 40)
    route = MqttRoute(filter="stations/+/swap", codec="swap", device="topic:1")
    sources = [
        _StationSource(SwapStation(i, fleet, rng, 10.0), (route.match_filter, 1))
        for i in range(stations)
    ]
    out = []
    for k in range(ticks):
        now = START + timedelta(seconds=10 * k)
        for src in sources:
            for topic, payload in src.publish_tick(now):
                assert route.matches(topic)
                message = swap.decode(payload, station_id=route.device_of(topic))
                assert swap.encode(message) == payload  # the round trip loses nothing
                out.append((topic, message))
    return out


def test_stations_publish_every_message_kind_valid_per_decode() -> None:
    published = _run_stations(200)
    kinds = Counter(type(m).__name__ for _, m in published)
    assert kinds["StatusMessage"] == 600  # every tick, every station
    assert kinds["InventoryMessage"] >= 200
    assert kinds["ChargingMessage"] > 100
    swaps = [m for _, m in published if isinstance(m, swap.SwapMessage)]
    results = Counter(m.result for m in swaps)
    assert len(swaps) >= 15 and results["success"] > len(swaps) / 2, results
    assert {t.split("/")[1] for t, _ in published} == {"SW-RUH-001", "SW-DXB-002", "SW-JKT-003"}


def test_values_in_range_and_swap_energy_consistent() -> None:
    published = _run_stations(150)
    keys: set[tuple[str, int, datetime]] = set()
    socs: list[float] = []
    for _, m in published:
        if isinstance(m, swap.InventoryMessage | swap.ChargingMessage):
            socs += [b.soc_pct for b in m.bays if b.soc_pct is not None]
        if isinstance(m, swap.ChargingMessage):
            for b in m.bays:
                assert b.power_w is not None and 0 <= b.power_w <= 120_000
                if b.state == "charging":
                    assert b.power_w > 0 and b.current_a is not None and b.current_a > 0
        if isinstance(m, swap.StatusMessage):
            assert m.bays_total is not None and m.bays_available is not None
            assert m.bays_available <= m.bays_total
        if not isinstance(m, swap.SwapMessage):
            continue
        assert m.vin is not None and len(m.vin) == 17
        assert m.started_at < m.ended_at == m.time
        assert m.station_id is not None and m.bay is not None
        key = (m.station_id, m.bay, m.started_at)  # swap_events' natural key: one row each
        assert key not in keys
        keys.add(key)
        if m.result != "success":
            assert m.faults and m.pack_in is None
        for pack in (m.pack_out, m.pack_in):
            if pack is None:
                continue
            assert pack.soc_pct is not None and pack.soh_pct is not None
            assert pack.energy_wh is not None
            expected = PACK_CAPACITY_WH * pack.soh_pct / 100 * pack.soc_pct / 100
            assert pack.energy_wh == pytest.approx(expected, abs=0.1)
        if m.result == "success":
            assert m.pack_out is not None and m.pack_in is not None
            assert m.pack_out.soc_pct is not None and m.pack_in.soc_pct is not None
            assert m.pack_out.soc_pct < 40 < 90 < m.pack_in.soc_pct  # drained out, charged in
    assert socs and all(0 <= s <= 100 for s in socs)
    assert max(socs) > 95 and min(socs) < 40


def test_packs_charge_and_circulate() -> None:
    """A pack swapped out charges in its bay until it is ready and goes out again."""
    published = _run_stations(400, stations=1)
    out_packs = {
        m.pack_out.pack_id
        for _, m in published
        if isinstance(m, swap.SwapMessage) and m.result == "success" and m.pack_out
    }
    in_packs = [
        m.pack_in.pack_id
        for _, m in published
        if isinstance(m, swap.SwapMessage) and m.result == "success" and m.pack_in
    ]
    assert out_packs & set(in_packs)
    completed = [
        b
        for _, m in published
        if isinstance(m, swap.ChargingMessage)
        for b in m.bays
        if b.state == "complete"
    ]
    assert completed and all(b.energy_wh and b.energy_wh > 0 for b in completed)


def test_charger_sites_publish_valid_charger_json() -> None:
    rng = random.Random(3)
    route = MqttRoute(filter="sites/+/chargers/+", codec="charger", device="topic:3")
    sources = [SiteSource(ChargerSite(i, 3, rng), (route.match_filter, 3)) for i in range(2)]
    kinds: Counter[str] = Counter()
    for k in range(120):
        for src in sources:
            for topic, payload in src.publish_tick(START + timedelta(seconds=10 * k)):
                assert route.matches(topic)
                m = cj.decode(payload, charger_id=route.device_of(topic))
                assert m.station_id == topic.split("/")[1]
                kinds[type(m).__name__ + "." + str(getattr(m, "event", ""))] += 1
                if isinstance(m, cj.SessionMessage) and m.event == "stop":
                    assert m.meter_stop_wh is not None and m.meter_start_wh is not None
                    assert m.energy_wh == pytest.approx(m.meter_stop_wh - m.meter_start_wh, abs=1)
                    assert m.soc_pct is not None and 0 <= m.soc_pct <= 100
    assert kinds["EventMessage.boot"] == 6
    for kind in ("StatusMessage.", "MeterValuesMessage.", "SessionMessage.start"):
        assert kinds[kind] > 0, kinds
    assert kinds["SessionMessage.stop"] > 0 and kinds["SessionMessage.update"] > 0, kinds


def test_vins_have_valid_check_digits() -> None:
    rng = random.Random(1)
    values = dict(
        zip(
            "ABCDEFGHJKLMNPRSTUVWXYZ",
            (1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9),
            strict=True,
        )
    )
    weights = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
    for _ in range(200):
        v = vin(rng)
        total = sum(
            (int(c) if c.isdigit() else values[c]) * w for c, w in zip(v, weights, strict=True)
        )
        assert v[8] == ("X" if total % 11 == 10 else str(total % 11)), v


def test_topics_and_config_from_the_routes() -> None:
    assert (
        topic_for("a/+/stations/+/swap", 3, "SW-1", "SW-1", "swap") == "a/SW-1/stations/SW-1/swap"
    )
    assert topic_for("sites/+/c/+", 3, "CP1", "SITE", "charger") == "sites/SITE/c/CP1"
    assert topic_for("swap/#", None, "SW-1", "SW-1", "swap") == "swap/swap"
    cfg = parse(
        {
            "mqtt": {
                "enabled": True,
                "client_id": "gw",
                "routes": [
                    {"filter": "$share/g/x/+/swap", "codec": "swap", "device": "topic:1"},
                    {"filter": "y/+/+", "codec": "charger", "device": "topic:2"},
                ],
            }
        }
    ).mqtt
    sim = sim_config(cfg, swap_stations=2, charger_sites=1)
    assert sim.swap_route == ("x/+/swap", 1) and sim.charger_route == ("y/+/+", 2)
    assert sim.client_id.startswith("gw-sim-")
    with pytest.raises(ValueError, match="enable \\[mqtt\\]"):
        sim_config(parse({}).mqtt, swap_stations=1)
    only_swap = parse(
        {"mqtt": {"enabled": True, "routes": [{"filter": "s/+", "codec": "swap"}]}}
    ).mqtt
    with pytest.raises(ValueError, match=r'--charger-sites needs .*codec = "charger"'):
        sim_config(only_swap, swap_stations=1, charger_sites=1)
