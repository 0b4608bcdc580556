"""The API inside ``silkgate run``, as a separate process, over real HTTP: tokens made with
``silkgate token``, commands to simulated trucks (GB/T 32960, JT/T 808) and chargers (OCPP)
connected to the gateway; then ``silkgate run --workers 2``, where a command taken by either
worker reaches the device on the other."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.ingest import GBT32960, JT808
from gateway.ocpp_simulator import ChargerFleet, ChargerSimConfig
from gateway.store.testing import create_schema, drop_schema, with_search_path
from gateway.tcp_simulator import SimConfig, TerminalFleet

from .gatewaykit import RunProcess, _free_port

ENV = {k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"} | {"PYTHONUNBUFFERED": "1"}
SIM = SimConfig(frames=0, heartbeat_s=0, reconnect_min_s=0.05, reconnect_max_s=0.2)


@pytest.fixture
def schema_dsn(services: Any) -> Iterator[str]:
    schema = asyncio.run(create_schema(services.dsn, "silkgate_apirun"))
    yield with_search_path(services.dsn, schema)
    asyncio.run(drop_schema(services.dsn, schema))


def _config(tmp_path: Path, dsn: str) -> tuple[Path, dict[str, int]]:
    ports = {p: _free_port() for p in ("gbt32960", "jt808", "ocpp", "api")}
    config = tmp_path / "silkgate.toml"
    config.write_text(
        f'[database]\ndsn = "{dsn}"\n[spool]\npath = "{tmp_path / "spool"}"\n'
        "[pipeline]\nbatch_age_ms = 50\n"
        + "".join(
            f'[listeners.{p}]\nenabled = true\nhost = "127.0.0.1"\nport = {ports[p]}\n'
            for p in ("gbt32960", "jt808")
        )
        + f'[ocpp]\nenabled = true\nhost = "127.0.0.1"\nport = {ports["ocpp"]}\n'
        'security_profile = 0\nunknown_chargers = "accept"\n'
        f'[api]\nenabled = true\nhost = "127.0.0.1"\nport = {ports["api"]}\n'
        "token_cache_s = 0\ncommand_timeout_s = 10\n"
    )
    return config, ports


def _silkgate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,  # not the repo root: the source folder would shadow the install
        env=ENV,
    )


async def _command(
    base: str, token: str, device: str, protocol: str, verb: str, **args: Any
) -> httpx.Response:
    """POST /v1/commands on a new connection (a new worker may take it), retried while the
    device is still connecting (409, offline)."""
    body = {"device": device, "protocol": protocol, "command": verb, "args": args}
    deadline = time.monotonic() + 15
    while True:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            r = await client.post(
                "/v1/commands", json=body, headers={"Authorization": f"Bearer {token}"}
            )
        if r.status_code != 409 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.1)


def _starts(line: str, prefix: str) -> bool:
    return line.startswith(prefix)


def _sim(ports: dict[str, int], **changes: Any) -> SimConfig:
    return dataclasses.replace(SIM, gbt_port=ports["gbt32960"], jt_port=ports["jt808"], **changes)


def _accepted(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    assert doc["status"] == "accepted", doc
    return doc


def test_api_in_silkgate_run_with_tokens_from_the_cli(schema_dsn: str, tmp_path: Path) -> None:
    config, ports = _config(tmp_path, schema_dsn)
    made = _silkgate("token", "--config", str(config), "create", "--role", "admin", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    token, token_id = created["token"], created["token_id"]
    assert created["role"] == "admin" and "only its hash is stored" in made.stderr
    bad = _silkgate("token", "--config", str(config), "create", "--role", "operator", cwd=tmp_path)
    assert bad.returncode == 2 and "operator" in bad.stderr
    run = RunProcess(config)
    base = f"http://127.0.0.1:{ports['api']}"
    try:
        run.wait_line(lambda ln: ln.startswith("listening: api on http://127.0.0.1:"), 60)

        async def scenario() -> None:
            sim = _sim(ports, gbt=1, jt=1)
            chargers = ChargerSimConfig(
                url=f"ws://127.0.0.1:{ports['ocpp']}/ocpp", chargers=1, interval_s=3600
            )
            async with TerminalFleet(sim) as fleet, ChargerFleet(chargers):
                await fleet.wait_online(15)
                vin = next(fleet.by_protocol(GBT32960)).device_id
                phone = next(fleet.by_protocol(JT808)).device_id
                asked = _accepted(
                    await _command(base, token, vin, "gbt32960", "query_parameters", ids=[7])
                )
                assert asked["reply"]["params"] == {"0x07": "HW001"}
                _accepted(await _command(base, token, phone, "jt808", "text", text="hi"))
                conf = _accepted(
                    await _command(base, token, "SIM-CP-00000", "ocpp", "get_configuration")
                )
                assert conf["protocol"] == "ocpp1.6"
                assert "worker" not in conf  # a single process

        asyncio.run(scenario())
        listed = _silkgate("token", "--config", str(config), "list", cwd=tmp_path)
        assert [json.loads(ln)["token_id"] for ln in listed.stdout.splitlines()] == [token_id]
        assert "sgt_" not in listed.stdout  # never the secret
        revoked = _silkgate("token", "--config", str(config), "revoke", token_id, cwd=tmp_path)
        assert revoked.returncode == 0 and revoked.stdout.strip() == f"revoked {token_id}"
        r = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401  # token_cache_s = 0: at once
        run.wait_line(lambda ln: "| api :" in ln, 60)  # the status line's API part
    finally:
        assert run.stop() == 0
    audit = _fetch(schema_dsn, "SELECT result, count(*) AS n FROM api_audit GROUP BY 1")
    assert {r["result"]: r["n"] for r in audit} == {"accepted": 3}


def _fetch(dsn: str, sql: str) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def test_a_command_taken_by_any_worker_reaches_the_device(schema_dsn: str, tmp_path: Path) -> None:
    config, ports = _config(tmp_path, schema_dsn)
    made = _silkgate("token", "--config", str(config), "create", "--role", "admin", cwd=tmp_path)
    token = json.loads(made.stdout)["token"]
    run = RunProcess(config, "--workers", "2")
    base = f"http://127.0.0.1:{ports['api']}"
    try:
        for prefix in ("[w0] listening: api on http://", "[w1] listening: api on http://"):
            run.wait_line(functools.partial(_starts, prefix=prefix), 60)
        assert (tmp_path / "spool" / "api" / "w0.sock").is_socket()
        assert oct((tmp_path / "spool" / "api" / "w1.sock").stat().st_mode & 0o777) == "0o600"

        async def scenario() -> list[tuple[int, int]]:
            sim = _sim(ports, gbt=6, jt=2)
            chargers = ChargerSimConfig(
                url=f"ws://127.0.0.1:{ports['ocpp']}/ocpp", chargers=4, interval_s=3600
            )
            routes: list[tuple[int, int]] = []  # (API worker, device's worker)
            async with TerminalFleet(sim) as fleet, ChargerFleet(chargers):
                await fleet.wait_online(15)
                targets: list[tuple[str, str, str, dict[str, Any]]] = [
                    (t.device_id, "gbt32960", "query_parameters", {"ids": [9]})
                    for t in fleet.by_protocol(GBT32960)
                ]
                targets += [
                    (t.device_id, "jt808", "query_parameters", {"ids": ["0x0029"]})
                    for t in fleet.by_protocol(JT808)
                ]
                targets += [(f"SIM-CP-{i:05d}", "ocpp", "reset", {}) for i in range(4)]
                for _ in range(3):  # each request on a new connection: either worker takes it
                    for device, protocol, verb, args in targets:
                        r = await _command(base, token, device, protocol, verb, **args)
                        doc = _accepted(r)
                        assert doc["device"].lstrip("0") == device.lstrip("0")
                        api_worker = int(r.headers["x-silkgate-api-worker"])
                        device_worker = int(r.headers["x-silkgate-worker"])
                        assert doc["worker"] == device_worker
                        routes.append((api_worker, device_worker))
                # the registry view asks every worker whether the device is connected
                vin = next(fleet.by_protocol(GBT32960)).device_id
                await _register(schema_dsn, vin)
                for _ in range(6):
                    async with httpx.AsyncClient(base_url=base) as client:
                        r = await client.get(
                            f"/v1/vehicles/{vin}", headers={"Authorization": f"Bearer {token}"}
                        )
                    assert r.status_code == 200 and r.json()["connected"] is True
            return routes

        routes = asyncio.run(scenario())
        assert len(routes) == 36
        assert {api for api, _ in routes} == {0, 1}  # both workers took requests
        forwarded = [r for r in routes if r[0] != r[1]]
        assert forwarded, routes  # and some commands crossed to the other worker
    finally:
        assert run.stop() == 0
    rows = _fetch(
        schema_dsn,
        "SELECT worker, count(*) AS n FROM api_audit WHERE result = 'accepted' GROUP BY 1",
    )
    assert sum(r["n"] for r in rows) == 36
    commands = _fetch(schema_dsn, "SELECT status, count(*) AS n FROM commands GROUP BY 1")
    assert {r["status"]: r["n"] for r in commands} == {"accepted": 36}  # none sent twice


async def _register(dsn: str, vin: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO operators (operator_id, name) VALUES ('o', 'O')")
        await conn.execute("INSERT INTO vehicles (vin, operator_id) VALUES ($1, 'o')", vin)
    finally:
        await conn.close()
