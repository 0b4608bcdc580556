"""`silkgate run --simulate`: the main job end to end, as a separate process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.store.testing import create_schema, drop_schema, with_search_path

from .gatewaykit import count
from .mqttkit import drop_session


@pytest.fixture
def schema_dsn(services: Any) -> Iterator[str]:
    schema = asyncio.run(create_schema(services.dsn, "silkgate_run"))
    yield with_search_path(services.dsn, schema)
    asyncio.run(drop_schema(services.dsn, schema))


def _events(dsn: str) -> dict[tuple[str, str], int]:
    async def go() -> dict[tuple[str, str], int]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT protocol, event, count(*) AS n FROM vehicle_sessions GROUP BY 1, 2"
            )
            return {(r["protocol"], r["event"]): r["n"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(go())


def test_run_with_simulator_stores_data_and_stops_cleanly(schema_dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "silkgate.toml"
    config.write_text(
        f'[database]\ndsn = "{schema_dsn}"\n'
        f'[spool]\npath = "{tmp_path / "spool"}"\n'
        "[pipeline]\nbatch_age_ms = 50\n"
        '[listeners.gbt32960]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'
        '[listeners.jt808]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config), "--simulate", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,  # not the repo root: there the source folder would shadow the install
        # the config file names the database: an inherited SILKGATE_DSN would override it
        env={k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        | {"PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # wait until a few rounds of reports were committed
        lines.append(line)
        if line.startswith("frames ") and int(line.split()[1].replace(",", "")) >= 160:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    lines += out.splitlines(keepends=True)
    assert proc.returncode == 0, "".join(lines)
    final = [ln for ln in lines if ln.startswith("frames ")][-1].split()
    frames = int(final[1].replace(",", ""))
    # every frame received before Ctrl-C was drained to the store: raw archive == frames
    assert count(schema_dsn, "SELECT count(*) FROM raw_frames") == frames
    assert count(schema_dsn, "SELECT count(*) FROM vehicle_realtime") > 0
    assert count(schema_dsn, "SELECT count(*) FROM positions") > 0
    # 20 GB/T 32960 terminals log in and out; 20 JT/T 808 terminals register, authenticate and
    # log out (each event once: over TCP, acknowledged only after the commit)
    events = _events(schema_dsn)
    assert events == {
        ("gbt32960", "login"): 20,
        ("gbt32960", "logout"): 20,
        ("jt808", "register"): 20,
        ("jt808", "auth"): 20,
        ("jt808", "logout"): 20,
    }, events
    assert count(schema_dsn, "SELECT count(*) FROM dead_letters") == 0


def test_run_with_simulated_chargers_stores_ocpp_data(schema_dsn: str, tmp_path: Path) -> None:
    """`--chargers N`: OCPP 1.6 and 2.0.1 charge points on the gateway's own endpoint boot,
    charge with meter values and stop; everything they report is stored."""
    config = tmp_path / "silkgate.toml"
    config.write_text(
        f'[database]\ndsn = "{schema_dsn}"\n'
        f'[spool]\npath = "{tmp_path / "spool"}"\n'
        "[pipeline]\nbatch_age_ms = 20\n"
        '[ocpp]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'
        'unknown_chargers = "accept"\nunknown_boot_status = "Accepted"\n'
        'unknown_id_tokens = "Accepted"\nsecurity_profile = 0\n'
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway.cli", "run", "--config", str(config)),
            *("--chargers", "6", "--charger-interval", "0.1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        | {"PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # until the chargers have been through a few charging sessions
        lines.append(line)
        if (
            "answered" in line
            and int(line.split(" answered")[0].split()[-1].replace(",", "")) >= 150
        ):
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    lines += out.splitlines(keepends=True)
    assert proc.returncode == 0, "".join(lines)
    for protocol in ("ocpp1.6", "ocpp2.0.1"):
        where = f"WHERE protocol = '{protocol}'"
        assert count(schema_dsn, f"SELECT count(*) FROM charger_status {where}") > 0, protocol
        assert count(schema_dsn, f"SELECT count(*) FROM meter_values {where}") > 0, protocol
        sessions = f"SELECT count(*) FROM charging_sessions {where} AND event = 'stop'"
        assert count(schema_dsn, sessions) > 0, protocol
        # energy is stored in Wh whatever unit the charger used (the simulator sends kWh)
        energy = (
            f"SELECT min(value) FROM meter_values {where} "
            "AND measurand = 'Energy.Active.Import.Register'"
        )
        assert count(schema_dsn, f"SELECT ({energy})::bigint") >= 100_000, protocol
    assert count(schema_dsn, "SELECT count(*) FROM charger_events WHERE event = 'boot'") == 6
    assert count(schema_dsn, "SELECT count(*) FROM raw_frames WHERE protocol LIKE 'ocpp%'") > 0
    assert count(schema_dsn, "SELECT count(*) FROM dead_letters") == 0


def test_run_with_simulated_swap_stations_stores_mqtt_data(
    services: Any, schema_dsn: str, tmp_path: Path
) -> None:
    """`--swap-stations N --charger-sites M`: swap stations and charger site controllers publish
    JSON over MQTT to the topics of the gateway's own routes (a prefix of this test's own, so
    parallel runs do not collide); everything they publish is stored, nothing refused."""
    tag = uuid.uuid4().hex[:10]
    client_id = f"it-run-swap-{tag}"
    config = tmp_path / "silkgate.toml"
    config.write_text(
        f'[database]\ndsn = "{schema_dsn}"\n'
        f'[spool]\npath = "{tmp_path / "spool"}"\n'
        "[pipeline]\nbatch_age_ms = 20\n"
        f'[mqtt]\nenabled = true\nhost = "{services.mqtt_host}"\nport = {services.mqtt_port}\n'
        f'client_id = "{client_id}"\n'
        f'[[mqtt.routes]]\nfilter = "t{tag}/stations/+/swap"\ncodec = "swap"\ndevice = "topic:2"\n'
        f'[[mqtt.routes]]\nfilter = "t{tag}/sites/+/chargers/+"\ncodec = "charger"\n'
        'device = "topic:4"\n'
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway.cli", "run", "--config", str(config)),
            *("--swap-stations", "3", "--charger-sites", "2", "--swap-interval", "0.1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        | {"PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:  # until a few swaps ended (the first within 6 ticks)
            lines.append(line)
            if " swaps, " in line and int(line.split(" swaps, ")[0].split()[-1]) >= 8:
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        asyncio.run(drop_session(services.mqtt_host, services.mqtt_port, client_id))
    lines += out.splitlines(keepends=True)
    assert proc.returncode == 0, "".join(lines)
    final = [ln for ln in lines if ln.startswith("frames ")][-1]
    sim = final.split("mqtt sim ")[1]
    published = int(sim.split(" published")[0].split()[-1].replace(",", ""))
    acked = int(sim.split(" acked")[0].split()[-1].replace(",", ""))
    assert published == acked > 0, final  # a clean stop publishes what was queued
    stations = "SELECT count(DISTINCT station_id) FROM"
    for table in ("station_status", "battery_inventory", "battery_charging", "swap_events"):
        assert count(schema_dsn, f"{stations} {table}") == 3, table
    assert count(schema_dsn, "SELECT count(*) FROM swap_events WHERE result = 'success'") > 0
    # every message the simulator got acknowledged is archived (the gateway acks after commit)
    raw = "SELECT count(*) FROM raw_frames WHERE protocol IN ('silkgate-swap', 'silkgate-charger')"
    assert count(schema_dsn, raw) == acked
    chargers = "SELECT count(DISTINCT charger_id) FROM"
    assert count(schema_dsn, f"{chargers} charger_events WHERE event = 'boot'") == 6
    assert count(schema_dsn, f"{chargers} charger_status") == 6
    assert count(schema_dsn, f"{chargers} meter_values") > 0
    assert count(schema_dsn, "SELECT count(*) FROM charging_sessions WHERE event = 'start'") > 0
    assert count(schema_dsn, "SELECT count(*) FROM dead_letters") == 0


def _registry(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "operators": "SELECT operator_id, timezone FROM operators ORDER BY 1",
        "vehicles": "SELECT vin, operator_id, fleet_id, protocol_version, reporting_interval_s, "
        "created_at = updated_at FROM vehicles ORDER BY 1",
        "terminals": "SELECT phone, operator_id, vin, protocol_version FROM terminals ORDER BY 1",
        "stations": "SELECT station_id, operator_id, kind, bays, timezone, lat IS NOT NULL "
        "FROM stations ORDER BY 1",
        "chargers": "SELECT charger_id, operator_id, station_id, protocol FROM chargers ORDER BY 1",
    }

    async def go() -> dict[str, list[tuple[Any, ...]]]:
        conn = await asyncpg.connect(dsn)
        try:
            return {k: [tuple(r) for r in await conn.fetch(q)] for k, q in queries.items()}
        finally:
            await conn.close()

    return asyncio.run(go())


def test_run_registers_the_simulated_devices_as_operator_demo(
    services: Any, schema_dsn: str, tmp_path: Path
) -> None:
    """Every simulated truck, terminal, charger and station is in the registry (operator
    `demo`) before it connects; a second run changes nothing; a VIN another operator
    registered stays theirs."""
    from gateway.store.migrate import migrate
    from gateway.tcp_simulator import SimConfig, fleet_trucks

    trucks = fleet_trucks(SimConfig(gbt=2, jt=1, gbt_versions=(2016, 2025), jt_versions=(2013,)))
    theirs, ours, jt = trucks[0].vin, trucks[1].vin, trucks[2]

    async def prepare() -> None:
        conn = await asyncpg.connect(schema_dsn)
        try:
            await migrate(conn)
            await conn.execute("INSERT INTO operators (operator_id, name) VALUES ('acme', 'A')")
            await conn.execute(
                "INSERT INTO vehicles (vin, operator_id) VALUES ($1, 'acme')", theirs
            )
        finally:
            await conn.close()

    asyncio.run(prepare())
    tag = uuid.uuid4().hex[:10]
    client_id = f"it-run-demo-{tag}"
    config = tmp_path / "silkgate.toml"
    config.write_text(
        f'[database]\ndsn = "{schema_dsn}"\n'
        f'[spool]\npath = "{tmp_path / "spool"}"\n'
        '[listeners.gbt32960]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'
        '[listeners.jt808]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'
        '[ocpp]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'
        'unknown_chargers = "accept"\nsecurity_profile = 0\n'
        f'[mqtt]\nenabled = true\nhost = "{services.mqtt_host}"\nport = {services.mqtt_port}\n'
        f'client_id = "{client_id}"\n'
        f'[[mqtt.routes]]\nfilter = "t{tag}/stations/+/swap"\ncodec = "swap"\ndevice = "topic:2"\n'
        f'[[mqtt.routes]]\nfilter = "t{tag}/sites/+/chargers/+"\ncodec = "charger"\n'
        'device = "topic:4"\n'
    )
    command = [
        *(sys.executable, "-m", "gateway.cli", "run", "--config", str(config)),
        *("--simulate", "3", "--chargers", "2", "--swap-stations", "1", "--charger-sites", "1"),
        *("--interval", "2", "--duration", "3"),
    ]
    env = {k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
    outputs = []
    try:
        for _ in range(2):
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=90, cwd=tmp_path, env=env
            )
            assert done.returncode == 0, done.stdout + done.stderr
            outputs.append([ln for ln in done.stdout.splitlines() if ln.startswith("registered")])
            if len(outputs) == 1:
                first = _registry(schema_dsn)
    finally:
        asyncio.run(drop_session(services.mqtt_host, services.mqtt_port, client_id))
    assert outputs[0] == [
        "registered as operator demo: vehicles 3 (2 new, 1 not demo's: left alone), "
        "terminals 1 (1 new), stations 2 (2 new), chargers 5 (5 new)"
    ], outputs
    assert outputs[1] == [
        "registered as operator demo: vehicles 3 (1 not demo's: left alone), terminals 1, "
        "stations 2, chargers 5"
    ], outputs
    reg = _registry(schema_dsn)
    assert reg["operators"] == [("acme", None), ("demo", "Asia/Singapore")]
    assert sorted(reg["vehicles"]) == sorted(
        [
            (theirs, "acme", None, None, None, True),  # untouched
            (ours, "demo", "demo-trucks", 2025, 2.0, True),
            (jt.vin, "demo", "demo-trucks", None, 2.0, True),  # JT/T 808: no GB/T edition
        ]
    )
    assert reg["vehicles"] == first["vehicles"]  # the second run wrote nothing
    assert reg["terminals"] == [(jt.phone, "demo", jt.vin, 2013)]
    assert reg["stations"] == [
        ("SITE-JED-01", "demo", "charging", None, "Asia/Riyadh", True),
        ("SW-RUH-001", "demo", "swap", 8, "Asia/Riyadh", True),
    ]
    assert reg["chargers"] == [
        ("SIM-CP-00000", "demo", None, "ocpp1.6"),
        ("SIM-CP-00001", "demo", None, "ocpp2.0.1"),
        *[(f"SITE-JED-01-CP{i}", "demo", "SITE-JED-01", "silkgate-charger") for i in (1, 2, 3)],
    ]
    # the registered devices were seen as known: OCPP boots stored their vendor
    assert count(schema_dsn, "SELECT count(*) FROM chargers WHERE vendor IS NOT NULL") == 2
