"""Commands down to trucks (gateway.commands) through real TCP listeners, the real pipeline and
TimescaleDB, against the TCP terminal simulator (gateway.tcp_simulator) and, for terminals that
do not answer, raw sockets driven by the test."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from gateway.adapters.tcp import Listener
from gateway.codecs import gbt32960 as gbt
from gateway.codecs.gbt32960 import constants as gc
from gateway.commands import CommandError, CommandResult, Commands
from gateway.ingest import GBT32960, JT808
from gateway.store.testing import migrated_schema
from gateway.tcp_simulator import SimConfig, TerminalFleet
from gateway.tcp_simulator_terminal import Terminal

from .gatewaykit import SilentTruck, tcp_gateway

TIMEOUT = 10.0
START = datetime(2026, 2, 1, tzinfo=UTC)
SIM = SimConfig(
    frames=0,  # no reports: the terminals only answer commands
    heartbeat_s=0,
    reconnect_min_s=0.05,
    reconnect_max_s=0.2,
    ack_timeout_s=5.0,
    drain_timeout_s=2.0,
)


@pytest.fixture(scope="module")
def schema_dsn(services: Any) -> Iterator[str]:
    yield from migrated_schema(services.dsn, prefix="silkgate_cmd")


@dataclasses.dataclass
class Rig:
    commands: Commands
    gbt: Listener
    jt: Listener
    db: asyncpg.Connection

    def sim(self, **changes: Any) -> SimConfig:
        return dataclasses.replace(SIM, gbt_port=self.gbt.port, jt_port=self.jt.port, **changes)

    async def stored(self, result: CommandResult) -> None:
        """The row of ``result`` holds exactly the result."""
        assert await self.commands.get(result.id) == result

    async def rows(self) -> int:
        n: int = await self.db.fetchval("SELECT count(*) FROM commands")
        return n


@pytest_asyncio.fixture
async def rig(schema_dsn: str, tmp_path: Path) -> AsyncIterator[Rig]:
    db = await asyncpg.connect(schema_dsn)
    await db.execute("TRUNCATE commands")
    try:
        async with tcp_gateway(schema_dsn, tmp_path / "spool") as gw:
            yield Rig(gw.commands, gw.gbt, gw.jt, db)
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def online(cfg: SimConfig) -> AsyncIterator[TerminalFleet]:
    async with TerminalFleet(cfg) as fleet:
        await fleet.wait_online(TIMEOUT)
        yield fleet


def of(fleet: TerminalFleet, protocol: str) -> list[Terminal]:
    return list(fleet.by_protocol(protocol))


async def wait_for(cond: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def accepted(result: CommandResult) -> None:
    assert result.status == "accepted", result
    assert result.sent_at is not None and result.replied_at is not None
    assert result.created_at <= result.sent_at <= result.replied_at and result.error is None


# ------------------------------------------------------------------------------ GB/T 32960


@pytest.mark.asyncio
async def test_gbt_set_then_query_both_editions(rig: Rig) -> None:
    cmd = rig.commands
    async with online(rig.sim(gbt=2, gbt_versions=(2016, 2025), seed=11)) as fleet:
        terminals = of(fleet, GBT32960)
        assert sorted(t.truck.version for t in terminals) == [2016, 2025]  # type: ignore[attr-defined]
        for t in terminals:
            vin = t.device_id
            values = {0x09: 20, "0x02": 15, gc.PARAM_DOMAIN: "gw.example.com"}
            done = await cmd.set_parameters(vin, values)
            accepted(done)
            assert (done.device, done.protocol, done.command) == (vin, GBT32960, "set_parameters")
            assert done.request == {
                "msg_id": "0x81",
                "params": {"0x09": 20, "0x02": 15, "0x05": "gw.example.com"},
            }
            assert done.reply is not None and done.reply["response"] == gc.RESP_SUCCESS
            await rig.stored(done)

            asked = await cmd.query_parameters(vin, [0x02, 0x05, 0x09, "0x07"])
            accepted(asked)
            assert asked.request == {"msg_id": "0x80", "ids": ["0x02", "0x05", "0x09", "0x07"]}
            assert asked.reply is not None
            assert asked.reply["params"] == {
                "0x02": 15,
                "0x04": len("gw.example.com"),  # the domain's length comes before it
                "0x05": "gw.example.com",
                "0x09": 20,
                "0x07": "HW001",
            }
            await rig.stored(asked)
        # 0x02 is a WORD in 2016 and a BYTE in 2025: the width follows the terminal's edition
        by_version = {t.truck.version: t.device_id for t in terminals}  # type: ignore[attr-defined]
        accepted(await cmd.set_parameters(by_version[2016], {0x02: 300}))
        with pytest.raises(CommandError, match="2025"):
            await cmd.set_parameters(by_version[2025], {0x02: 300})
    assert await rig.rows() == 5  # the refused request was neither sent nor stored


@pytest.mark.asyncio
async def test_gbt_control_warning_and_reset(rig: Rig) -> None:
    cmd = rig.commands
    async with online(rig.sim(gbt=1, gbt_versions=(2025,), seed=12)) as fleet:
        vin = of(fleet, GBT32960)[0].device_id
        warned = await cmd.control(vin, "warning", {"level": 2, "message": "电池温度高"})
        accepted(warned)
        assert warned.request == {
            "msg_id": "0x82",
            "command": "0x06",
            "name": "warning",
            "params": {"level": 2, "message": "电池温度高"},
        }
        await rig.stored(warned)
        upgrade = {
            "apn": "cmnet",
            "username": "ota",
            "password": "s3cret",
            "ip": "10.1.2.3",
            "port": 21,
            "manufacturer_id": "ABCD",
            "hardware_version": "HW002",
            "firmware_version": {"hex": "4657303032"},
            "url": "ftp://10.1.2.3/fw.bin",
            "timeout": 30,
        }
        upgraded = await cmd.control(vin, 0x01, upgrade)
        accepted(upgraded)
        assert upgraded.request["params"]["password"] == "***"  # never stored
        assert upgraded.request["params"]["ip"] == "10.1.2.3"
        await rig.stored(upgraded)
        before = rig.commands.index.get(GBT32960, vin)
        reset = await cmd.control(vin, gc.CTRL_RESET)
        accepted(reset)
        assert reset.request["name"] == "reset"
        await rig.stored(reset)
        # the simulated terminal drops its link after a reset and logs in again
        await wait_for(lambda: rig.commands.index.get(GBT32960, vin) not in (None, before))
        accepted(await cmd.query_parameters(vin, [0x09]))


@pytest.mark.asyncio
async def test_gbt_bad_requests_raise_and_store_nothing(rig: Rig) -> None:
    cmd = rig.commands
    async with online(rig.sim(gbt=1, seed=13)) as fleet:
        vin = of(fleet, GBT32960)[0].device_id
        for values, why in (
            ({0x07: "HW002"}, "read-only"),
            ({0x04: 3}, "length"),
            ({0x09: "twenty"}, "int"),
            ({0x33: 1}, "not a settable"),
            ({}, "no parameters"),
            ({0x09: 1, "0x09": 2}, "twice"),
        ):
            with pytest.raises(CommandError, match=why):
                await cmd.set_parameters(vin, values)
        with pytest.raises(CommandError, match="upgrade parameters"):
            await cmd.control(vin, "upgrade", {"apn": "x"})
        with pytest.raises(CommandError, match="positive"):
            await cmd.query_parameters(vin, [1], timeout_s=0)
    assert await rig.rows() == 0


# ------------------------------------------------------------------------------ JT/T 808


@pytest.mark.asyncio
async def test_jt_set_query_control_text_send(rig: Rig) -> None:
    cmd = rig.commands
    async with online(rig.sim(jt=2, jt_versions=(2013, 2019), seed=14)) as fleet:
        for t in of(fleet, JT808):
            phone = t.device_id
            given = phone.lstrip("0")  # callers may drop the leading zeros of the BCD phone
            done = await cmd.jt_set_parameters(given, {0x0029: 15, "plate": "粤A12345"})
            accepted(done)
            assert done.device == phone and done.protocol == JT808
            assert done.request["params"] == {"0x0029": 15, "0x0083": "粤A12345"}
            assert done.reply == {"result": 0}
            await rig.stored(done)

            some = await cmd.jt_query_parameters(phone, [0x0029, "0x0083", 0x0001])
            accepted(some)
            assert some.request["msg_id"] == "0x8106"
            assert some.reply == {"params": {"0x0029": 15, "0x0083": "粤A12345", "0x0001": 30}}
            await rig.stored(some)

            every = await cmd.jt_query_parameters(phone)
            accepted(every)
            assert every.request["msg_id"] == "0x8104" and every.reply is not None
            params = every.reply["params"]
            assert params["0x0029"] == 15 and params["0x0080"] == 10000 and len(params) >= 8
            await rig.stored(every)

            ctl = await cmd.jt_control(phone, "close_data")
            accepted(ctl)
            assert ctl.request["command"] == 6 and ctl.reply == {"result": 0}
            await rig.stored(ctl)

            text = await cmd.jt_text(phone, "请在下一服务区休息")
            accepted(text)
            await rig.stored(text)

            other = await cmd.jt_send(phone, 0x8F01, {"hex": "0102"})
            assert other.status == "unsupported" and other.reply == {"result": 3}
            assert other.request["body"] == {"hex": "0102"}
            await rig.stored(other)
        with pytest.raises(CommandError, match="DWORD"):
            await cmd.jt_set_parameters(phone, {0x0029: -1})
        with pytest.raises(CommandError, match="not a platform message"):
            await cmd.jt_send(phone, 0x0200, b"")
        with pytest.raises(CommandError, match="queries"):
            await cmd.jt_send(phone, 0x8104, b"")
    serials = await rig.db.fetch("SELECT request->>'serial' AS s FROM commands")
    assert all(r["s"] is not None for r in serials) and len(serials) == 12


# ------------------------------------------------------------------------------ offline, timeout


@pytest.mark.asyncio
async def test_offline_devices_answer_at_once(rig: Rig) -> None:
    cmd = rig.commands
    gone = await cmd.query_parameters("LNOTCONNECTED0001", [0x09])
    assert gone.status == "offline" and gone.sent_at is None and gone.error == "not connected"
    jt_gone = await cmd.jt_text("013800000000", "hello")
    assert jt_gone.status == "offline" and jt_gone.protocol == JT808
    for r in (gone, jt_gone):
        await rig.stored(r)
    history = await cmd.history("LNOTCONNECTED0001")
    assert [h.id for h in history] == [gone.id]


@pytest.mark.asyncio
async def test_a_terminal_that_never_answers_times_out(rig: Rig) -> None:
    cmd = rig.commands
    truck = await SilentTruck.login(rig.gbt.port, seed=15, start=START)
    try:
        result = await cmd.set_parameters(truck.truck.vin, {0x09: 10}, timeout_s=0.3)
        assert result.status == "timeout" and result.sent_at is not None
        assert result.replied_at is None and result.reply is None
        assert result.error == "no answer within 0.3 s"
        await rig.stored(result)
        sent = await truck.recv()
        assert sent.command == gc.CMD_PARAM_SET and sent.response == gc.RESP_COMMAND
        truck.answer(gc.CMD_PARAM_SET)  # too late: matched by nothing, the row stays
        await wait_for(lambda: cmd.unmatched == 1)
        await rig.stored(result)
        assert cmd.pending == 0 and cmd.counts == {"timeout": 1}
    finally:
        await truck.close()


@pytest.mark.asyncio
async def test_gbt_second_command_of_a_kind_waits_for_the_first(rig: Rig) -> None:
    cmd = rig.commands
    truck = await SilentTruck.login(rig.gbt.port, seed=15, start=START)
    try:
        vin = truck.truck.vin
        first = asyncio.create_task(cmd.set_parameters(vin, {0x09: 10}))
        assert (await truck.recv()).command == gc.CMD_PARAM_SET
        second = asyncio.create_task(cmd.set_parameters(vin, {0x09: 11}, timeout_s=0.3))
        other = asyncio.create_task(cmd.control(vin, "shutdown"))  # another kind: not queued
        assert (await truck.recv()).command == gc.CMD_CONTROL
        truck.answer(gc.CMD_CONTROL, flag=gc.RESP_ERROR)
        assert (await other).status == "failed"
        late = await second  # still queued when its time ran out: never sent
        assert late.status == "timeout" and late.sent_at is None
        assert late.error is not None and late.error.startswith("not sent")
        third = asyncio.create_task(cmd.set_parameters(vin, {0x09: 12}))
        await wait_for(lambda: cmd.pending == 2)
        truck.answer(gc.CMD_PARAM_SET)
        done = await first
        accepted(done)
        sent = await truck.recv()  # only now does the third one go out
        assert sent.command == gc.CMD_PARAM_SET and isinstance(sent.body, gbt.ParamValues)
        assert sent.body.params == [gbt.Param(id=0x09, value=12)]
        truck.answer(gc.CMD_PARAM_SET)
        after = await third
        accepted(after)
        assert done.replied_at is not None and after.sent_at is not None
        assert after.sent_at >= done.replied_at
        for r in (done, late, after, await other):
            await rig.stored(r)
        assert cmd.pending == 0 and not cmd._turns and not cmd._waiting
    finally:
        await truck.close()


# ------------------------------------------------------------------------------ concurrency


@pytest.mark.asyncio
async def test_concurrent_commands_to_many_devices(rig: Rig) -> None:
    cmd = rig.commands
    cfg = rig.sim(gbt=6, jt=6, gbt_versions=(2016, 2025), jt_versions=(2013, 2019), seed=16)
    async with online(cfg) as fleet:
        gbts, jts = of(fleet, GBT32960), of(fleet, JT808)
        calls = [cmd.set_parameters(t.device_id, {0x09: 30 + i}) for i, t in enumerate(gbts)]
        calls += [cmd.jt_set_parameters(t.device_id, {0x0029: 60 + i}) for i, t in enumerate(jts)]
        # several commands outstanding on one JT/T 808 terminal: told apart by their serials
        calls += [cmd.jt_query_parameters(jts[0].device_id, [0x0001 + i]) for i in range(5)]
        results = await asyncio.gather(*calls)
        for r in results:
            accepted(r)
            await rig.stored(r)
        queried = [r.reply["params"] for r in results[-5:] if r.reply is not None]
        assert [list(p) for p in queried] == [["0x0001"], ["0x0002"], [], [], []]
        assert len({r.request["serial"] for r in results[-5:]}) == 5
        check = await asyncio.gather(
            *[cmd.query_parameters(t.device_id, [0x09]) for t in gbts],
            *[cmd.jt_query_parameters(t.device_id, [0x0029]) for t in jts],
        )
        got = [r.reply["params"] for r in check if r.reply is not None]
        assert got == [{"0x09": 30 + i} for i in range(6)] + [{"0x0029": 60 + i} for i in range(6)]
    assert await rig.rows() == len(results) + len(check)
    assert uuid.UUID(str(results[0].id)) == results[0].id
