"""API commands as data (gateway.api.dispatch) and their routing between worker processes
over unix sockets (gateway.api.routing): two routers in one event loop, each with its own
stand-in for the command services of its process."""

from __future__ import annotations

import inspect
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.api.dispatch import VERBS, CommandSpec, LocalCommands, NotServed, Protocol, check
from gateway.api.routing import CommandRouter, PeerUnavailable, socket_path
from gateway.commands import Commands
from gateway.commands_types import CommandError, CommandResult
from gateway.ocpp.commands import ChargerCommands


def spec(
    protocol: Protocol = "gbt32960", command: str = "query_parameters", **args: Any
) -> CommandSpec:
    return CommandSpec(device="VIN1", protocol=protocol, command=command, args=args, timeout_s=1)


def test_ocpp_verbs_are_the_charger_commands_and_their_arguments() -> None:
    for verb, (required, optional) in VERBS["ocpp"].items():
        params = inspect.signature(getattr(ChargerCommands, verb)).parameters
        named = set(params) - {"self", "charger_id", "timeout_s"}
        assert set(required) | set(optional) == named, verb
        for name in required:
            assert params[name].default is inspect.Parameter.empty, (verb, name)


def test_truck_verbs_exist() -> None:
    assert {"query_parameters", "set_parameters", "control"} <= set(dir(Commands))
    for verb in ("jt_query_parameters", "jt_set_parameters", "jt_control", "jt_text", "jt_send"):
        assert hasattr(Commands, verb)


def test_arguments_are_checked_by_name_and_json_type() -> None:
    check(spec(ids=[1, "0x09"]))
    check(spec("jt808", "query_parameters"))
    check(spec("ocpp", "change_availability", operative=False, connector_id=None))
    for bad, why in (
        (spec(command="fly"), "has no 'fly'"),
        (spec(), "args.ids: required"),
        (spec(ids=[1], colour="red"), "not an argument"),
        (spec(ids="0x09"), "expected an array"),
        (spec("ocpp", "change_availability", operative="yes"), "expected a boolean"),
        (spec("ocpp", "unlock_connector", connector_id=True), "expected an integer"),
        (spec("jt808", "text", text="x", flags=1.5), "expected an integer"),
    ):
        with pytest.raises(CommandError, match=why):
            check(bad)


@pytest.mark.asyncio
async def test_a_process_without_the_services_holds_nothing_and_says_so() -> None:
    local = LocalCommands(None, None)
    assert not local.holds("gbt32960", "VIN1") and not local.holds("ocpp", "CP-1")
    with pytest.raises(NotServed, match="OCPP"):
        await local.run(spec("ocpp", "reset"))
    with pytest.raises(NotServed, match="truck"):
        await local.run(spec(ids=[1]))
    with pytest.raises(CommandError):
        await local.run(spec("ocpp", "nothing"))


class Stand(LocalCommands):
    """This process's command services, standing in: it holds ``devices`` and answers
    ``accepted`` for them (``offline`` for others), or raises what ``raises`` says."""

    def __init__(self, name: str, devices: set[str], raises: Exception | None = None) -> None:
        super().__init__(None, None)
        self.name, self.devices, self.raises = name, devices, raises
        self.ran: list[CommandSpec] = []

    def holds(self, protocol: str, device: str) -> bool:
        return device in self.devices

    async def run(self, spec: CommandSpec) -> CommandResult:
        self.ran.append(spec)
        if self.raises is not None:
            raise self.raises
        return CommandResult(
            id=uuid.uuid4(),
            device=spec.device,
            protocol=spec.protocol,
            command=spec.command,
            request={"by": self.name, **spec.args},
            status="accepted" if spec.device in self.devices else "offline",
            created_at=datetime.now(UTC),
        )


@pytest.mark.asyncio
async def test_commands_run_in_the_worker_holding_the_device(tmp_path: Path) -> None:
    stands = [Stand("w0", {"A"}), Stand("w1", {"B"}), Stand("w2", set())]
    routers = [
        CommandRouter(s, worker=i, workers=3, socket_dir=tmp_path / "api")
        for i, s in enumerate(stands)
    ]
    for r in routers:
        await r.start()
    try:
        mode = stat.S_IMODE(socket_path(tmp_path / "api", 1).stat().st_mode)
        assert mode == 0o600
        here = await routers[0].run(
            CommandSpec(
                device="A", protocol="jt808", command="text", args={"text": "x"}, timeout_s=1
            )
        )
        assert here.worker == 0 and here.result.request["by"] == "w0"
        there = await routers[2].run(
            CommandSpec(
                device="B", protocol="jt808", command="text", args={"text": "x"}, timeout_s=1
            )
        )
        assert there.worker == 1 and there.result.request == {"by": "w1", "text": "x"}
        assert there.result.status == "accepted"
        assert routers[2].forwarded == 1 and routers[1].served == 1
        assert [s.device for s in stands[1].ran] == ["B"] and stands[2].ran == []
        # held nowhere: run (offline) where it was asked
        nowhere = await routers[1].run(
            CommandSpec(
                device="C", protocol="jt808", command="text", args={"text": "x"}, timeout_s=1
            )
        )
        assert nowhere.worker == 1 and nowhere.result.status == "offline"
        assert await routers[0].where("jt808", "B") == 1
        assert await routers[0].where("jt808", "C") is None
        # the holder's refusals come back as such
        stands[1].raises = CommandError("bad id")
        with pytest.raises(CommandError, match="bad id"):
            await routers[0].run(
                CommandSpec(
                    device="B", protocol="jt808", command="text", args={"text": "x"}, timeout_s=1
                )
            )
        stands[1].raises = NotServed("busy", busy=True)
        with pytest.raises(NotServed) as info:
            await routers[0].run(
                CommandSpec(
                    device="B", protocol="jt808", command="text", args={"text": "x"}, timeout_s=1
                )
            )
        assert info.value.busy
        stands[1].raises = RuntimeError("boom")
        with pytest.raises(PeerUnavailable, match="boom"):
            await routers[0].run(
                CommandSpec(
                    device="B", protocol="jt808", command="text", args={"text": "x"}, timeout_s=1
                )
            )
        # a worker that is gone holds nothing: the command runs (offline) here
        await routers[1].stop()
        assert not socket_path(tmp_path / "api", 1).exists()
        gone = await routers[0].run(
            CommandSpec(
                device="B", protocol="jt808", command="text", args={"text": "x"}, timeout_s=1
            )
        )
        assert gone.worker == 0 and gone.result.status == "offline"
    finally:
        for r in routers:
            await r.stop()


@pytest.mark.asyncio
async def test_a_single_process_routes_nothing(tmp_path: Path) -> None:
    stand = Stand("only", {"A"})
    router = CommandRouter(stand, socket_dir=tmp_path)
    await router.start()
    assert list(tmp_path.iterdir()) == [] and router.peers == []
    done = await router.run(CommandSpec(device="Z", protocol="ocpp", command="reset", timeout_s=1))
    assert done.worker is None and done.result.status == "offline"
    assert await router.where("ocpp", "A") == 0 and await router.where("ocpp", "Z") is None
    await router.stop()
