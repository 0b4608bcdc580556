"""The query API (gateway.api) against real PostgreSQL/TimescaleDB: auth and scoping, rate
limits, devices with their latest state, raw rows and time-bucket aggregates of every record
kind with known answers, raw frames (hex and decoded), dead letters, token management and the
audit. httpx talks to the real application (ASGI transport); rows are seeded in a scratch
schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from gateway.api.auth import TokenStore, token_id_of
from gateway.api.config import ApiConfig
from gateway.api.deps import ApiContext
from gateway.api.kinds import KINDS
from gateway.cli import describe
from gateway.codecs import gbt32960, jt808
from gateway.store.testing import migrated_schema

from .gatewaykit import api_client

T0 = datetime(2026, 3, 1, tzinfo=UTC)
RANGE = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}
RANGE_NOW = {"from": "2020-01-01T00:00:00Z"}  # to now: the audit
V_A1, V_A2, V_B1 = "LACME000000000001", "LACME000000000002", "LBETA000000000001"
PHONE_A, PHONE_B = "013800000001", "013800000002"
CELLS = bytes.fromhex("0ce40ce5")  # 3.300 V, 3.301 V

# rows seeded per kind (admin sees them all in RANGE)
SEEDED = {
    "vehicle_realtime": 10,
    "positions": 5,
    "alarms": 2,
    "session_events": 3,
    "charger_status": 4,
    "meter_values": 6,
    "charging_sessions": 2,
    "charger_events": 2,
    "swap_events": 1,
    "station_status": 2,
    "battery_inventory": 4,
    "battery_charging": 2,
}


@dataclass
class Seed:
    dsn: str
    tokens: dict[str, str]  # name -> token
    vin_frame: str  # the VIN in the GB/T 32960 frame (an acme vehicle)
    phone_frame: str  # the phone in the JT/T 808 frame (an acme terminal)
    gbt_frame: bytes
    jt_frame: bytes


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_api")


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def _seed(dsn: str, gbt_frame: bytes, jt_frame: bytes) -> Seed:
    vin_frame = gbt32960.decode_frame(gbt_frame).vin
    phone_frame = jt808.decode_frame(jt_frame).phone
    db = await asyncpg.connect(dsn)
    try:
        x = db.execute
        await x("INSERT INTO operators (operator_id, name) VALUES ('acme', 'Acme'), ('beta', 'B')")
        await x(
            "INSERT INTO fleets (fleet_id, operator_id, name) VALUES ('acme-north', 'acme', 'N'),"
            " ('acme-south', 'acme', 'S'), ('beta-1', 'beta', 'B1')"
        )
        await db.executemany(
            "INSERT INTO vehicles (vin, operator_id, fleet_id, plate) VALUES ($1, $2, $3, $4)",
            [
                (V_A1, "acme", "acme-north", "A-1"),
                (V_A2, "acme", "acme-south", "A-2"),
                (V_B1, "beta", "beta-1", "B-1"),
                (vin_frame, "acme", "acme-north", None),
            ],
        )
        await db.executemany(
            "INSERT INTO terminals (phone, operator_id, vin, protocol_version) "
            "VALUES ($1, $2, $3, 2013)",
            [(PHONE_A, None, V_A1), (PHONE_B, "beta", None), (phone_frame, "acme", None)],
        )
        await x(
            "INSERT INTO stations (station_id, operator_id, kind) VALUES ('ST-A', 'acme', 'swap'),"
            " ('ST-B', 'beta', 'charging')"
        )
        await x(
            "INSERT INTO chargers (charger_id, operator_id, station_id, protocol, auth_hash) "
            "VALUES ('CP-A1', 'acme', 'ST-A', 'ocpp1.6', 'sha256:secret'), "
            "('CP-B1', 'beta', 'ST-B', 'ocpp2.0.1', NULL)"
        )
        realtime = [(V_A1, _at(10 * i), 10.0 * (i + 1), 80 - i) for i in range(6)]
        realtime += [(V_A2, _at(5), 1.5, 50), (V_A2, _at(65), 2.5, 49)]
        realtime += [(V_B1, _at(1), 100.0, 10), (V_B1, _at(2), 110.0, 11)]
        await db.executemany(
            "INSERT INTO vehicle_realtime (time, vin, received_at, version, reissue, speed_kmh, "
            "soc_pct, cell_count, cell_voltages, probe_count, probe_temps, motors, quality) "
            "VALUES ($2, $1, $2, 2016, false, $3, $4, 2, $5, 1, '\\x50'::bytea, '[]', '{}')",
            [(*r, CELLS) for r in realtime],
        )
        await db.executemany(
            "INSERT INTO positions (time, device_id, protocol, received_at, lat, lon, fix_valid,"
            " reissue, speed_kmh) VALUES ($1, $2, $3, $1, $4, 100.5, true, false, 30)",
            [
                (_at(0), V_A1, "gbt32960", 13.70),
                (_at(10), V_A1, "gbt32960", 13.71),
                (_at(20), V_A1, "gbt32960", 13.72),
                (_at(3), PHONE_A, "jt808", 13.80),
                (_at(4), PHONE_A, "jt808", 13.81),
            ],
        )
        await db.executemany(
            "INSERT INTO alarms (time, device_id, protocol, received_at, level, flags, names, "
            "reissue) VALUES ($1, $2, 'gbt32960', $1, $3, 1, '{temp_diff}', false)",
            [(_at(1), V_A1, 2), (_at(2), V_B1, 3)],
        )
        await db.executemany(
            "INSERT INTO vehicle_sessions (time, device_id, protocol, event, received_at) "
            "VALUES ($1, $2, $3, $4, $1)",
            [
                (_at(0), V_A1, "gbt32960", "login"),
                (_at(3), PHONE_A, "jt808", "auth"),
                (_at(59), V_A1, "gbt32960", "logout"),
            ],
        )
        await db.executemany(
            "INSERT INTO charger_status (time, charger_id, connector_id, received_at, protocol, "
            "status) VALUES ($1, $2, $3, $1, 'ocpp1.6', $4)",
            [
                (_at(0), "CP-A1", 1, "Available"),
                (_at(1), "CP-A1", 1, "Charging"),
                (_at(0), "CP-A1", 2, "Available"),
                (_at(0), "CP-B1", 1, "Faulted"),
            ],
        )
        energy = "Energy.Active.Import.Register"
        power = "Power.Active.Import"
        await db.executemany(
            "INSERT INTO meter_values (time, charger_id, connector_id, measurand, received_at, "
            "protocol, value, unit) VALUES ($1, $2, 1, $3, $1, 'ocpp1.6', $4, $5)",
            [
                (_at(0), "CP-A1", energy, 1000.0, "Wh"),
                (_at(5), "CP-A1", energy, 1500.0, "Wh"),
                (_at(10), "CP-A1", energy, 2500.0, "Wh"),
                (_at(0), "CP-A1", power, 7000.0, "W"),
                (_at(5), "CP-A1", power, 7400.0, "W"),
                (_at(0), "CP-B1", energy, 5.0, "Wh"),
            ],
        )
        await db.executemany(
            "INSERT INTO charging_sessions (time, charger_id, transaction_id, event, received_at,"
            " protocol, id_tag_hashed, energy_wh) VALUES ($1, 'CP-A1', '7', $2, $1, 'ocpp1.6',"
            " true, $3)",
            [(_at(0), "start", None), (_at(30), "stop", 1500.0)],
        )
        await db.executemany(
            "INSERT INTO charger_events (time, charger_id, event, key, received_at, protocol, "
            "detail) VALUES ($1, $2, 'boot', '', $1, 'ocpp1.6', $3)",
            [(_at(0), "CP-A1", '{"vendor": "x"}'), (_at(0), "CP-B1", None)],
        )
        await x(
            "INSERT INTO swap_events (time, station_id, bay, received_at, result, vin, "
            "pack_out_soc_pct, pack_in_soc_pct, duration_s, faults) "
            f"VALUES ('{_at(7).isoformat()}', 'ST-A', 3, now(), 'success', '{V_A1}', 20, 95, 240,"
            " '{}')"
        )
        await db.executemany(
            "INSERT INTO station_status (time, station_id, received_at, state, bays_available, "
            "faults) VALUES ($1, 'ST-A', $1, $2, $3, '{}')",
            [(_at(0), "operating", 5), (_at(5), "maintenance", 4)],
        )
        await db.executemany(
            "INSERT INTO battery_inventory (time, station_id, bay, received_at, state, pack_id, "
            "soc_pct) VALUES ($1, 'ST-A', $2, $1, 'charged', $3, $4)",
            [
                (_at(0), 1, "P1", 90.0),
                (_at(0), 2, "P2", 80.0),
                (_at(5), 1, "P1", 95.0),
                (_at(5), 2, "P3", 85.0),
            ],
        )
        await db.executemany(
            "INSERT INTO battery_charging (time, station_id, bay, received_at, state, power_w) "
            "VALUES ($1, 'ST-A', 1, $1, 'charging', $2)",
            [(_at(0), 60000.0), (_at(1), 58000.0)],
        )
        frames = [
            (_at(0), "gbt32960", "2016", vin_frame, gbt_frame),
            (_at(1), "jt808", "2013", phone_frame, jt_frame),
            (_at(2), "ocpp1.6", "1.6", "CP-A1", b'[2,"1","Heartbeat",{}]'),
            (_at(3), "ocpp2.0.1", "2.0.1", "CP-B1", b'[2,"2","Heartbeat",{}]'),
        ]
        await db.executemany(
            "INSERT INTO raw_frames (received_at, frame_id, peer, protocol, version, device_id, "
            "frame) VALUES ($1, $2, '10.0.0.1:5000', $3, $4, $5, $6)",
            [(t, uuid.uuid4(), p, v, d, f) for t, p, v, d, f in frames],
        )
        dead = [
            (_at(0), "gbt32960", "bad_checksum", V_A1, b"##\x01"),
            (_at(1), "ocpp1.6", "not_json", "CP-A1", b"{nope"),
            (_at(2), "gbt32960", "garbage", None, b"\x00\x01"),
            (_at(3), "ocpp2.0.1", "not_json", "CP-B1", b"[["),
        ]
        await db.executemany(
            "INSERT INTO dead_letters (received_at, frame_id, peer, protocol, reason, message, "
            "raw, device_id) VALUES ($1, $2, '10.0.0.2:6000', $3, $4, 'why', $5, $6)",
            [(t, uuid.uuid4(), p, r, raw, d) for t, p, r, d, raw in dead],
        )
    finally:
        await db.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None
    try:
        store = TokenStore(pool, cache_s=0)
        tokens = {
            "admin": (await store.create(role="admin")).token,
            "acme": (await store.create(role="operator", operator_id="acme")).token,
            "beta": (await store.create(role="operator", operator_id="beta")).token,
            "north": (await store.create(role="regulator", fleets=["acme-north"])).token,
        }
    finally:
        await pool.close()
    return Seed(dsn, tokens, vin_frame, phone_frame, gbt_frame, jt_frame)


@pytest.fixture(scope="module")
def seed(
    schema_dsn: str, gbt_vectors: list[dict[str, Any]], jt_vectors: list[dict[str, Any]]
) -> Seed:
    gbt_hex = next(v["hex"] for v in gbt_vectors if v["id"] == "GB-02")
    jt_hex = next(v["hex"] for v in jt_vectors if v["id"] == "JT-01")
    return asyncio.run(_seed(schema_dsn, bytes.fromhex(gbt_hex), bytes.fromhex(jt_hex)))


@dataclass
class Api:
    client: httpx.AsyncClient
    ctx: ApiContext
    seed: Seed

    async def get(self, path: str, who: str | None = "admin", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.seed.tokens[who]}"} if who else {}
        return await self.client.get(path, params=params, headers=headers)

    async def ok(self, path: str, who: str = "admin", **params: Any) -> Any:
        r = await self.get(path, who, **params)
        assert r.status_code == 200, r.text
        return r.json()

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.seed.tokens[who]}"}

    def token_id(self, who: str) -> str:
        token_id = token_id_of(self.seed.tokens[who])
        assert token_id is not None
        return token_id


@pytest_asyncio.fixture
async def api(seed: Seed) -> AsyncIterator[Api]:
    cfg = ApiConfig(enabled=True, default_rows=100, max_rows=500, max_buckets=1000)
    async with api_client(seed.dsn, cfg) as (client, ctx):
        yield Api(client, ctx, seed)


# ------------------------------------------------------------------------------ auth


@pytest.mark.asyncio
async def test_missing_malformed_unknown_and_revoked_tokens_get_401(api: Api) -> None:
    r = await api.get("/v1/vehicles", None)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for bad in ("nonsense", "sgt_000000000000_" + "A" * 43):
        r = await api.client.get("/v1/vehicles", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad
    # a real token's id with a wrong secret
    real = api.seed.tokens["acme"]
    forged = real[:-43] + ("B" * 43 if real[-43:] != "B" * 43 else "C" * 43)
    r = await api.client.get("/v1/vehicles", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    # create, use, revoke, refused
    made = await api.client.post(
        "/v1/tokens", json={"role": "operator", "operator_id": "beta"}, headers=api.auth("admin")
    )
    assert made.status_code == 201, made.text
    token, token_id = made.json()["token"], made.json()["token_id"]
    headers = {"Authorization": f"Bearer {token}"}
    me = await api.client.get("/v1/me", headers=headers)
    assert me.json()["role"] == "operator" and me.json()["operator_id"] == "beta"
    gone = await api.client.delete(f"/v1/tokens/{token_id}", headers=api.auth("admin"))
    assert gone.status_code == 200
    r = await api.client.get("/v1/me", headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == "unknown, expired or revoked token"
    again = await api.client.delete(f"/v1/tokens/{token_id}", headers=api.auth("admin"))
    assert again.status_code == 404


@pytest.mark.asyncio
async def test_wrong_role_gets_403(api: Api) -> None:
    for who in ("acme", "north"):
        assert (await api.get("/v1/tokens", who)).status_code == 403
        r = await api.client.post("/v1/tokens", json={"role": "admin"}, headers=api.auth(who))
        assert r.status_code == 403
    assert (await api.get("/v1/audit", "north")).status_code == 403
    # a regulator may not command, even its own fleet's vehicle (and the refusal is audited)
    body = {
        "device": V_A1,
        "protocol": "gbt32960",
        "command": "query_parameters",
        "args": {"ids": [1]},
    }
    r = await api.client.post("/v1/commands", json=body, headers=api.auth("north"))
    assert r.status_code == 403 and r.json()["detail"] == "a regulator token is read only"
    audit = (await api.ok("/v1/audit", device=V_A1, **RANGE_NOW))["audit"]
    assert audit[0]["result"] == "refused" and audit[0]["http_status"] == 403
    assert audit[0]["role"] == "regulator"


@pytest.mark.asyncio
async def test_operators_and_regulators_see_only_their_devices(api: Api) -> None:
    def vins(doc: dict[str, Any]) -> list[str]:
        return sorted(d["vin"] for d in doc["devices"])

    assert vins(await api.ok("/v1/vehicles")) == sorted([V_A1, V_A2, V_B1, api.seed.vin_frame])
    assert vins(await api.ok("/v1/vehicles", "acme")) == sorted([V_A1, V_A2, api.seed.vin_frame])
    assert vins(await api.ok("/v1/vehicles", "beta")) == [V_B1]
    assert vins(await api.ok("/v1/vehicles", "north")) == sorted([V_A1, api.seed.vin_frame])
    # one device of someone else: 404, as for a device that does not exist
    assert (await api.get(f"/v1/vehicles/{V_B1}", "acme")).status_code == 404
    assert (await api.get(f"/v1/vehicles/{V_A2}", "north")).status_code == 404  # other fleet
    assert (await api.get("/v1/chargers/CP-B1", "acme")).status_code == 404
    assert (await api.get("/v1/stations/ST-A", "beta")).status_code == 404
    assert (await api.get("/v1/vehicles/NOSUCHVIN", "admin")).status_code == 404

    # terminals: their own operator, else their vehicle's; the regulator sees the fleet's
    def phones(doc: dict[str, Any]) -> list[str]:
        return sorted(d["phone"] for d in doc["devices"])

    assert phones(await api.ok("/v1/terminals", "acme")) == sorted([PHONE_A, api.seed.phone_frame])
    assert phones(await api.ok("/v1/terminals", "north")) == [PHONE_A]
    assert phones(await api.ok("/v1/terminals", "beta")) == [PHONE_B]
    # chargers and stations belong to no fleet: a regulator sees none
    assert (await api.ok("/v1/chargers", "north"))["devices"] == []
    assert [c["charger_id"] for c in (await api.ok("/v1/chargers", "acme"))["devices"]] == ["CP-A1"]
    # records: rows of other devices are not there
    rows = (await api.ok("/v1/records/vehicle_realtime", "acme", **RANGE))["rows"]
    assert {r["vin"] for r in rows} == {V_A1, V_A2}
    rows = (await api.ok("/v1/records/vehicle_realtime", "north", **RANGE))["rows"]
    assert {r["vin"] for r in rows} == {V_A1}
    asked = await api.ok("/v1/records/vehicle_realtime", "acme", device=V_B1, **RANGE)
    assert asked["rows"] == []
    rows = (await api.ok("/v1/records/positions", "north", **RANGE))["rows"]
    assert sorted({r["device_id"] for r in rows}) == sorted([V_A1, PHONE_A])
    assert (await api.ok("/v1/records/meter_values", "north", **RANGE))["rows"] == []
    rows = (await api.ok("/v1/records/meter_values", "beta", **RANGE))["rows"]
    assert [r["charger_id"] for r in rows] == ["CP-B1"]


@pytest.mark.asyncio
async def test_rate_limit_answers_429_with_retry_after(api: Api) -> None:
    made = await api.client.post(
        "/v1/tokens",
        json={"role": "operator", "operator_id": "acme", "rate_per_s": 0.5, "burst": 3},
        headers=api.auth("admin"),
    )
    headers = {"Authorization": f"Bearer {made.json()['token']}"}
    codes = [(await api.client.get("/v1/me", headers=headers)).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    r = await api.client.get("/v1/me", headers=headers)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) == 2  # one request per 2 s
    assert 0 < r.json()["retry_after_s"] <= 2
    # other tokens have their own buckets
    assert (await api.get("/v1/me", "acme")).status_code == 200
    assert api.ctx.limiter.refused == 1


# ------------------------------------------------------------------------------ devices


@pytest.mark.asyncio
async def test_devices_with_their_latest_state(api: Api) -> None:
    doc = await api.ok(f"/v1/vehicles/{V_A1}", "north")
    assert doc["device"]["fleet_id"] == "acme-north" and doc["device"]["plate"] == "A-1"
    latest = doc["latest_realtime"]
    assert latest["time"] == "2026-03-01T00:50:00Z" and latest["speed_kmh"] == 60.0
    assert latest["soc_pct"] == 75 and latest["cell_voltages_v"] == [3.3, 3.301]
    assert latest["cell_voltages"] == CELLS.hex() and latest["probe_temps_c"] == [40]
    assert latest["motors"] == [] and latest["quality"] == {}
    assert doc["latest_position"]["lat"] == 13.72
    assert doc["latest_session_event"]["event"] == "logout"
    assert [t["phone"] for t in doc["terminals"]] == [PHONE_A]
    assert doc["connected"] is None  # no command service in this app
    # a phone without its leading zeros
    doc = await api.ok(f"/v1/terminals/{PHONE_A.lstrip('0')}", "acme")
    assert doc["device"]["phone"] == PHONE_A and doc["latest_position"]["lat"] == 13.81
    assert "auth_code_hash" not in doc["device"]
    doc = await api.ok("/v1/chargers/CP-A1", "acme")
    assert "auth_hash" not in doc["device"]
    assert [(c["connector_id"], c["status"]) for c in doc["connectors"]] == [
        (1, "Charging"),
        (2, "Available"),
    ]
    doc = await api.ok("/v1/stations/ST-A", "acme")
    assert doc["latest_status"]["state"] == "maintenance"
    assert [(b["bay"], b["pack_id"], b["soc_pct"]) for b in doc["inventory"]] == [
        (1, "P1", 95.0),
        (2, "P3", 85.0),
    ]
    assert doc["chargers"] == ["CP-A1"]
    # paging through a list
    first = await api.ok("/v1/vehicles", limit=3)
    second = await api.ok("/v1/vehicles", limit=3, cursor=first["next"])
    assert len(first["devices"]) == 3 and len(second["devices"]) == 1 and second["next"] is None
    listed = [d["vin"] for d in first["devices"] + second["devices"]]
    assert listed == sorted(listed)
    assert [d["vin"] for d in (await api.ok("/v1/vehicles", fleet="beta-1"))["devices"]] == [V_B1]


# ------------------------------------------------------------------------------ records


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_kind_has_its_rows(api: Api, kind: str) -> None:
    doc = await api.ok(f"/v1/records/{kind}", **RANGE)
    assert doc["kind"] == kind and len(doc["rows"]) == SEEDED[kind] and doc["next"] is None
    times = [r[KINDS[kind].time] for r in doc["rows"]]
    assert times == sorted(times)
    # and an aggregate over the whole day
    agg = await api.ok(f"/v1/records/{kind}/aggregate", bucket="1d", per_device="false", **RANGE)
    assert [b["count"] for b in agg["buckets"]] == [SEEDED[kind]]


@pytest.mark.asyncio
async def test_rows_are_paged_by_key_both_ways(api: Api) -> None:
    path = "/v1/records/vehicle_realtime"
    whole = (await api.ok(path, **RANGE))["rows"]
    keys = [(r["time"], r["vin"]) for r in whole]
    assert keys == sorted(keys) and len(keys) == 10
    for order in ("asc", "desc"):
        seen: list[tuple[str, str]] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 3, "order": order, **RANGE}
            if cursor:
                params["cursor"] = cursor
            doc = await api.ok(path, **params)
            seen += [(r["time"], r["vin"]) for r in doc["rows"]]
            pages += 1
            cursor = doc["next"]
            if cursor is None:
                break
        assert pages == 4
        assert seen == (keys if order == "asc" else keys[::-1])
    # a cursor only fits its own query
    doc = await api.ok(path, limit=3, **RANGE)
    r = await api.get("/v1/records/positions", cursor=doc["next"], **RANGE)
    assert r.status_code == 400 and "different query" in r.json()["detail"]
    r = await api.get(path, cursor="garbage!", **RANGE)
    assert r.status_code == 400


@pytest.mark.asyncio
async def test_filters_and_nullable_keys(api: Api) -> None:
    rows = (
        await api.ok("/v1/records/meter_values", measurand="Energy.Active.Import.Register", **RANGE)
    )["rows"]
    assert [(r["charger_id"], r["value"]) for r in rows] == [
        ("CP-A1", 1000.0),
        ("CP-B1", 5.0),
        ("CP-A1", 1500.0),
        ("CP-A1", 2500.0),
    ]
    # keyset paging through rows whose key has NULLs (evse_id, phase, location)
    first = await api.ok("/v1/records/meter_values", device="CP-A1", limit=2, **RANGE)
    rest = await api.ok(
        "/v1/records/meter_values", device="CP-A1", limit=10, cursor=first["next"], **RANGE
    )
    assert len(first["rows"]) + len(rest["rows"]) == 5
    r = await api.get("/v1/records/meter_values", colour="red", **RANGE)
    assert r.status_code == 400 and "colour" in r.json()["detail"]
    r = await api.get("/v1/records/meter_values", connector_id="one", **RANGE)
    assert r.status_code == 400
    assert (await api.get("/v1/records/nothing", **RANGE)).status_code == 400
    rows = (await api.ok("/v1/records/positions", protocol="jt808", **RANGE))["rows"]
    assert [r["device_id"] for r in rows] == [PHONE_A, PHONE_A]
    # a phone without its leading zeros
    rows = (await api.ok("/v1/records/positions", device=PHONE_A.lstrip("0"), **RANGE))["rows"]
    assert len(rows) == 2


@pytest.mark.asyncio
async def test_aggregates_have_known_answers(api: Api) -> None:
    path = "/v1/records/vehicle_realtime/aggregate"
    doc = await api.ok(path, bucket="30m", device=V_A1, columns="speed_kmh,soc_pct", **RANGE)
    assert doc["bucket"] == "30 minutes" and doc["next"] is None
    first, second = doc["buckets"]
    assert first["bucket"] == "2026-03-01T00:00:00Z" and first["device_id"] == V_A1
    assert first["count"] == 3
    assert first["speed_kmh"] == {"avg": 20.0, "min": 10.0, "max": 30.0, "last": 30.0}
    assert first["soc_pct"] == {"avg": 79.0, "min": 78, "max": 80, "last": 78}
    assert second["bucket"] == "2026-03-01T00:30:00Z" and second["count"] == 3
    assert second["speed_kmh"] == {"avg": 50.0, "min": 40.0, "max": 60.0, "last": 60.0}
    # one aggregate, across devices (the operator's), hourly
    doc = await api.ok(
        path, "acme", bucket="1h", per_device="false", columns="speed_kmh", aggs="max", **RANGE
    )
    assert [(b["bucket"], b["count"], b["speed_kmh"]) for b in doc["buckets"]] == [
        ("2026-03-01T00:00:00Z", 7, {"max": 60.0}),
        ("2026-03-01T01:00:00Z", 1, {"max": 2.5}),
    ]
    assert "device_id" not in doc["buckets"][0]
    # grouped by measurand; energy delivered is max - min of the register
    doc = await api.ok(
        "/v1/records/meter_values/aggregate",
        bucket="1h",
        device="CP-A1",
        group_by="measurand",
        **RANGE,
    )
    by = {b["measurand"]: b for b in doc["buckets"]}
    assert by["Energy.Active.Import.Register"]["value"] == {
        "avg": pytest.approx(5000 / 3),
        "min": 1000.0,
        "max": 2500.0,
        "last": 2500.0,
    }
    assert by["Power.Active.Import"]["count"] == 2
    assert by["Power.Active.Import"]["value"]["last"] == 7400.0
    # paging buckets
    first = await api.ok(path, bucket="10m", device=V_A1, columns="speed_kmh", limit=4, **RANGE)
    rest = await api.ok(
        path, bucket="10m", device=V_A1, columns="speed_kmh", cursor=first["next"], **RANGE
    )
    speeds = [b["speed_kmh"]["last"] for b in first["buckets"] + rest["buckets"]]
    assert speeds == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    # day buckets in a time zone (Asia/Bangkok is UTC+7: 2026-03-01 07:00 local starts a day)
    doc = await api.ok(
        path, bucket="1d", tz="Asia/Bangkok", per_device="false", columns="soc_pct", **RANGE
    )
    assert [b["bucket"] for b in doc["buckets"]] == ["2026-02-28T17:00:00Z"]
    # refusals
    for bad in (
        {"bucket": "10x"},
        {"bucket": "1h", "columns": "vin"},
        {"bucket": "1h", "aggs": "median"},
        {"bucket": "1h", "group_by": "plate"},
        {"bucket": "1s"},  # 86,400 buckets > max_buckets
    ):
        r = await api.get(path, **bad, **RANGE)
        assert r.status_code == 400, bad
    r = await api.get(path, bucket="1h", tz="Mars/Olympus", **RANGE)
    assert r.status_code == 400
    assert (await api.get(path, **RANGE)).status_code == 422  # bucket is required


@pytest.mark.asyncio
async def test_kind_catalog(api: Api) -> None:
    kinds = {k["kind"]: k for k in (await api.ok("/v1/records", "north"))["kinds"]}
    assert set(kinds) == set(SEEDED)
    assert "value" in kinds["meter_values"]["numeric"]
    assert "measurand" in kinds["meter_values"]["group_by"]


# ------------------------------------------------------------------------------ frames


@pytest.mark.asyncio
async def test_frames_in_hex_and_decoded(api: Api) -> None:
    s = api.seed
    doc = await api.ok("/v1/frames", **RANGE)
    assert [f["protocol"] for f in doc["frames"]] == ["gbt32960", "jt808", "ocpp1.6", "ocpp2.0.1"]
    gbt, jt, ocpp, _ = doc["frames"]
    assert gbt["hex"] == s.gbt_frame.hex() and gbt["device_id"] == s.vin_frame
    assert gbt["decoded"] == describe(gbt32960.decode_frame(s.gbt_frame))
    assert gbt["decoded"]["device_id"] == s.vin_frame and gbt["decode_error"] is None
    assert jt["decoded"] == describe(jt808.decode_frame(s.jt_frame))
    assert ocpp["decoded"] == [2, "1", "Heartbeat", {}]
    # scope: acme sees its frames only; by device; without decoding
    acme = await api.ok("/v1/frames", "acme", **RANGE)
    assert [f["device_id"] for f in acme["frames"]] == [s.vin_frame, s.phone_frame, "CP-A1"]
    north = await api.ok("/v1/frames", "north", **RANGE)
    assert [f["device_id"] for f in north["frames"]] == [s.vin_frame]
    one = await api.ok("/v1/frames", device=s.phone_frame, decode="false", **RANGE)
    assert [f["hex"] for f in one["frames"]] == [s.jt_frame.hex()]
    assert "decoded" not in one["frames"][0]
    # paged newest first
    first = await api.ok("/v1/frames", order="desc", limit=3, **RANGE)
    rest = await api.ok("/v1/frames", order="desc", limit=3, cursor=first["next"], **RANGE)
    assert [f["protocol"] for f in first["frames"] + rest["frames"]] == [
        "ocpp2.0.1",
        "ocpp1.6",
        "jt808",
        "gbt32960",
    ]
    # a time range that misses them
    empty = await api.ok("/v1/frames", **{"from": "2026-03-02T00:00:00Z"})
    assert empty["frames"] == []


@pytest.mark.asyncio
async def test_dead_letters_by_reason_protocol_device_and_time(api: Api) -> None:
    def reasons(doc: dict[str, Any]) -> list[str]:
        return [d["reason"] for d in doc["dead_letters"]]

    everything = await api.ok("/v1/dead-letters", **RANGE)
    assert reasons(everything) == ["bad_checksum", "not_json", "garbage", "not_json"]
    first = everything["dead_letters"][0]
    assert first["hex"] == "232301" and first["message"] == "why" and first["offset"] is None
    assert reasons(await api.ok("/v1/dead-letters", reason="not_json", **RANGE)) == [
        "not_json",
        "not_json",
    ]
    by_protocol = await api.ok("/v1/dead-letters", protocol="ocpp2.0.1", **RANGE)
    assert [d["device_id"] for d in by_protocol["dead_letters"]] == ["CP-B1"]
    assert reasons(await api.ok("/v1/dead-letters", device=V_A1, **RANGE)) == ["bad_checksum"]
    later = {"from": "2026-03-01T00:01:30Z", "to": "2026-03-01T00:02:30Z"}
    assert reasons(await api.ok("/v1/dead-letters", **later)) == ["garbage"]
    # an operator sees its devices' only (not those without a device)
    acme = await api.ok("/v1/dead-letters", "acme", **RANGE)
    assert [d["device_id"] for d in acme["dead_letters"]] == [V_A1, "CP-A1"]


# ------------------------------------------------------------------------------ tokens, audit


@pytest.mark.asyncio
async def test_token_management_is_admin_only_and_audited(api: Api) -> None:
    admin = api.auth("admin")
    r = await api.client.post(
        "/v1/tokens",
        json={"role": "regulator", "name": "ministry", "fleets": ["acme-north", "beta-1"]},
        headers=admin,
    )
    assert r.status_code == 201
    made = r.json()
    assert made["token"].startswith("sgt_") and made["fleets"] == ["acme-north", "beta-1"]
    listed = {t["token_id"]: t for t in (await api.ok("/v1/tokens"))["tokens"]}
    assert made["token_id"] in listed and "token" not in listed[made["token_id"]]
    assert "hash" not in listed[made["token_id"]]
    # the database holds the hash, never the token
    db = await asyncpg.connect(api.seed.dsn)
    try:
        stored = await db.fetchval(
            "SELECT hash FROM api_tokens WHERE token_id = $1", made["token_id"]
        )
    finally:
        await db.close()
    assert stored.startswith("sha256:") and made["token"] not in stored
    for bad in (
        {"role": "operator"},
        {"role": "operator", "operator_id": "nobody"},
        {"role": "regulator"},
        {"role": "admin", "fleets": ["beta-1"]},
        {"role": "king"},
    ):
        r = await api.client.post("/v1/tokens", json=bad, headers=admin)
        assert r.status_code == 422, bad
    revoke = await api.client.delete(f"/v1/tokens/{made['token_id']}", headers=admin)
    assert revoke.status_code == 200
    audit = (await api.ok("/v1/audit", token_id=api.token_id("admin"), **RANGE_NOW))["audit"]
    actions = [(a["action"], a["result"]) for a in audit[:2]]
    assert actions == [("token.revoke", "revoked"), ("token.create", "created")]


@pytest.mark.asyncio
async def test_openapi_and_docs_are_served(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    for path in (
        "/v1/vehicles/{vin}",
        "/v1/records/{kind}",
        "/v1/records/{kind}/aggregate",
        "/v1/frames",
        "/v1/dead-letters",
        "/v1/commands",
        "/v1/tokens",
        "/v1/audit",
    ):
        assert path in spec["paths"], path
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    docs = await api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.asyncio
async def test_request_bodies_are_bounded(api: Api) -> None:
    big = {"role": "admin", "name": "x" * (1 << 20)}
    r = await api.client.post("/v1/tokens", json=big, headers=api.auth("admin"))
    assert r.status_code == 413 and "over 1048576 bytes" in r.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"role": "admin"}'

    r = await api.client.post("/v1/tokens", content=chunks(), headers=api.auth("admin"))
    assert r.status_code == 411
