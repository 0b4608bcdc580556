"""Commands through the API (POST /v1/commands) to real connections: the TCP listeners with
the terminal simulator (GB/T 32960, JT/T 808), the OCPP endpoint with the charger simulator
(1.6 and 2.0.1), a silent truck on a raw socket for the timeout; the pipeline, the commands
table and the audit in PostgreSQL. httpx talks to the real application (ASGI transport)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from gateway.adapters.tcp import Listener
from gateway.api.auth import TokenStore
from gateway.api.config import ApiConfig
from gateway.api.dispatch import LocalCommands
from gateway.api.routing import CommandRouter
from gateway.codecs.gbt32960 import constants as gc
from gateway.config import (
    OcppConfig,
)
from gateway.ingest import GBT32960, JT808
from gateway.ocpp.service import OcppService
from gateway.ocpp_simulator import ChargerFleet, ChargerSimConfig
from gateway.store.testing import migrated_schema
from gateway.tcp_simulator import SimConfig, TerminalFleet

from .gatewaykit import SilentTruck, api_client, tcp_gateway

TIMEOUT = 10.0
SIM = SimConfig(frames=0, heartbeat_s=0, reconnect_min_s=0.05, reconnect_max_s=0.2)
CP16, CP201 = "SIM-CP-00000", "SIM-CP-00001"


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_apicmd")


@dataclasses.dataclass
class Rig:
    client: httpx.AsyncClient
    db: asyncpg.Connection
    gbt: Listener
    jt: Listener
    ocpp: OcppService
    tokens: dict[str, str]

    async def send(
        self, who: str, device: str, protocol: str, verb: str, /, **args: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"device": device, "protocol": protocol, "command": verb}
        if "timeout_s" in args:
            body["timeout_s"] = args.pop("timeout_s")
        body["args"] = args
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return await self.client.post("/v1/commands", json=body, headers=headers)

    async def get(self, who: str, path: str) -> httpx.Response:
        return await self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    async def own(self, vins: list[str], phones: list[str]) -> None:
        """Register these devices to acme."""
        await self.db.executemany(
            "INSERT INTO vehicles (vin, operator_id) VALUES ($1, 'acme') ON CONFLICT DO NOTHING",
            [(v,) for v in vins],
        )
        await self.db.executemany(
            "INSERT INTO terminals (phone, operator_id) VALUES ($1, 'acme') "
            "ON CONFLICT (phone) DO UPDATE SET operator_id = 'acme'",
            [(p,) for p in phones],
        )

    async def audit(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT * FROM api_audit ORDER BY audit_id")
        return [dict(r) for r in rows]


async def _tokens(db: asyncpg.Connection, dsn: str) -> dict[str, str]:
    await db.execute(
        "INSERT INTO operators (operator_id, name) VALUES ('acme', 'A'), ('beta', 'B') "
        "ON CONFLICT DO NOTHING"
    )
    await db.execute(
        "INSERT INTO fleets (fleet_id, operator_id, name) VALUES ('f1', 'acme', 'F') "
        "ON CONFLICT DO NOTHING"
    )
    await db.execute(
        "INSERT INTO chargers (charger_id, operator_id, protocol) VALUES "
        f"('{CP16}', 'acme', 'ocpp1.6'), ('{CP201}', 'acme', 'ocpp2.0.1') ON CONFLICT DO NOTHING"
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None
    try:
        store = TokenStore(pool, cache_s=0)
        return {
            "acme": (await store.create(role="operator", operator_id="acme")).token,
            "beta": (await store.create(role="operator", operator_id="beta")).token,
            "reg": (await store.create(role="regulator", fleets=["f1"])).token,
            "admin": (await store.create(role="admin")).token,
        }
    finally:
        await pool.close()


@pytest_asyncio.fixture
async def rig(schema_dsn: str, tmp_path: Path) -> AsyncIterator[Rig]:
    db = await asyncpg.connect(schema_dsn)
    await db.execute("TRUNCATE commands, api_audit")
    tokens = await _tokens(db, schema_dsn)
    try:
        async with tcp_gateway(schema_dsn, tmp_path / "spool") as gw:
            ocpp_cfg = OcppConfig(
                enabled=True, host="127.0.0.1", port=0, security_profile=0, call_timeout_s=5.0
            )
            ocpp = OcppService(ocpp_cfg, gw.pool, gw.pipeline, gw.registry)
            await ocpp.start()
            api_cfg = ApiConfig(enabled=True, command_timeout_s=5.0)
            router = CommandRouter(LocalCommands(gw.commands, ocpp.commands))
            try:
                async with api_client(schema_dsn, api_cfg, router=router) as (client, _):
                    yield Rig(client, db, gw.gbt, gw.jt, ocpp, tokens)
            finally:
                await ocpp.stop()
    finally:
        await db.close()


async def wait_for(cond: Any, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def accepted(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    assert doc["status"] == "accepted" and doc["command_id"] == doc["id"], doc
    assert doc["sent_at"] is not None and doc["replied_at"] is not None
    return doc


@pytest.mark.asyncio
async def test_commands_to_trucks_and_chargers_round_trip(rig: Rig) -> None:
    sim = dataclasses.replace(SIM, gbt_port=rig.gbt.port, jt_port=rig.jt.port, gbt=1, jt=1)
    charger_sim = ChargerSimConfig(
        url=f"ws://127.0.0.1:{rig.ocpp.port}/ocpp", chargers=2, interval_s=3600
    )
    async with TerminalFleet(sim) as fleet, ChargerFleet(charger_sim):
        await fleet.wait_online(TIMEOUT)
        await wait_for(lambda: CP16 in rig.ocpp.links and CP201 in rig.ocpp.links)
        vin = next(fleet.by_protocol(GBT32960)).device_id
        phone = next(fleet.by_protocol(JT808)).device_id
        await rig.own([vin], [phone])

        # GB/T 32960: set then query
        done = accepted(
            await rig.send("acme", vin, "gbt32960", "set_parameters", values={"0x09": 20})
        )
        asked = accepted(
            await rig.send("acme", vin, "gbt32960", "query_parameters", ids=["0x09", "0x07"])
        )
        assert asked["reply"]["params"] == {"0x09": 20, "0x07": "HW001"}
        assert asked["request"] == {"msg_id": "0x80", "ids": ["0x09", "0x07"]}
        stored = (await rig.get("acme", f"/v1/commands/{asked['id']}")).json()
        assert stored["status"] == "accepted" and stored["reply"] == asked["reply"]
        # JT/T 808: a query (leading zeros left out) and a text message
        jt_q = accepted(
            await rig.send("acme", phone.lstrip("0"), "jt808", "query_parameters", ids=["0x0029"])
        )
        assert set(jt_q["reply"]["params"]) == {"0x0029"} and jt_q["device"] == phone
        text = accepted(await rig.send("acme", phone, "jt808", "text", text="return to depot"))
        # OCPP 1.6 and 2.0.1
        conf = accepted(await rig.send("acme", CP16, "ocpp", "get_configuration"))
        assert conf["protocol"] == "ocpp1.6"
        assert {k["key"] for k in conf["reply"]["configurationKey"]} >= {"HeartbeatInterval"}
        var = accepted(
            await rig.send(
                "acme",
                CP201,
                "ocpp",
                "get_variables",
                variables=[["OCPPCommCtrlr", "HeartbeatInterval"]],
            )
        )
        assert var["protocol"] == "ocpp2.0.1"
        assert var["reply"]["getVariableResult"][0]["attributeValue"] == "300"
        start = accepted(
            await rig.send("acme", CP16, "ocpp", "remote_start", id_tag="04A2B3C4", connector_id=1)
        )
        assert start["request"]["action"] == "RemoteStartTransaction"
        sent = [done, asked, jt_q, text, conf, var, start]

        # another operator's devices do not exist for it; a regulator may not command
        r = await rig.send("beta", vin, "gbt32960", "query_parameters", ids=[9])
        assert r.status_code == 404
        r = await rig.send("beta", CP201, "ocpp", "reset")
        assert r.status_code == 404
        r = await rig.send("reg", vin, "gbt32960", "query_parameters", ids=[9])
        assert r.status_code == 403
        # bad requests: refused before anything is sent
        r = await rig.send("acme", vin, "gbt32960", "query_parameters", ids=[9], colour=1)
        assert r.status_code == 422 and "colour" in r.json()["detail"]
        r = await rig.send("acme", vin, "gbt32960", "fly")
        assert r.status_code == 422
        r = await rig.send("acme", vin, "gbt32960", "query_parameters", ids=["nonsense"])
        assert r.status_code == 422
        r = await rig.send("acme", CP201, "ocpp", "change_configuration", key="a", value="b")
        assert r.status_code == 422  # 2.0.1 has SetVariables instead
        # a registered device that is not connected
        await rig.own(["LOFFLINE000000001"], [])
        r = await rig.send("acme", "LOFFLINE000000001", "gbt32960", "query_parameters", ids=[9])
        assert r.status_code == 409 and r.json()["status"] == "offline"

    # the audit: who, what, when, the result
    audit = await rig.audit()
    commands = [a for a in audit if a["result"] == "accepted"]
    assert [a["command_id"] for a in commands] == [uuid.UUID(d["id"]) for d in sent]
    for a in commands:
        assert a["action"] == "command" and a["role"] == "operator"
        assert a["operator_id"] == "acme" and a["http_status"] == 200
        assert a["duration_ms"] is not None and a["duration_ms"] >= 0 and a["worker"] is None
    refused = [(a["operator_id"], a["http_status"]) for a in audit if a["result"] == "refused"]
    assert refused == [
        ("beta", 404),
        ("beta", 404),
        (None, 403),
        ("acme", 422),
        ("acme", 422),
        ("acme", 422),
        ("acme", 422),
    ]
    offline = [a for a in audit if a["result"] == "offline"]
    assert len(offline) == 1 and offline[0]["http_status"] == 409
    assert offline[0]["request"] == '{"args": {"ids": [9]}, "timeout_s": 5.0}'


@pytest.mark.asyncio
async def test_no_answer_in_time_is_504_with_the_command_id(rig: Rig) -> None:
    truck = await SilentTruck.login(rig.gbt.port, seed=77, start=datetime(2026, 2, 1, tzinfo=UTC))
    try:
        await rig.own([truck.truck.vin], [])
        r = await rig.send(
            "acme", truck.truck.vin, "gbt32960", "set_parameters", values={"0x09": 5}, timeout_s=0.3
        )
        assert r.status_code == 504
        doc = r.json()
        assert doc["status"] == "timeout" and doc["command_id"] == doc["id"]
        assert doc["detail"] == f"no answer within 0.3 s: command {doc['id']}"
        sent = await truck.recv()  # it was sent
        assert sent.command == gc.CMD_PARAM_SET
        stored = (await rig.get("admin", f"/v1/commands/{doc['id']}")).json()
        assert stored["status"] == "timeout" and stored["error"] == "no answer within 0.3 s"
        listed = (await rig.get("acme", f"/v1/commands?device={truck.truck.vin}")).json()
        assert [c["id"] for c in listed["commands"]] == [doc["id"]]
        assert (await rig.get("beta", f"/v1/commands/{doc['id']}")).status_code == 404
    finally:
        await truck.close()
    (row,) = await rig.audit()
    assert row["result"] == "timeout" and row["http_status"] == 504
    assert str(row["command_id"]) == doc["id"] and row["device_id"] == truck.truck.vin
    # the timeout is bounded by [api] max_command_timeout_s
    r = await rig.send(
        "acme", truck.truck.vin, "gbt32960", "control", command="reset", timeout_s=301
    )
    assert r.status_code == 422
