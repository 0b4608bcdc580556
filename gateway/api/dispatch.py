"""API commands as data, and running them in this process.

A :class:`CommandSpec` (device, protocol, command verb, JSON arguments, time limit) is what the
API takes and what worker processes hand each other (:mod:`gateway.api.routing`).
:class:`LocalCommands` checks it against :data:`VERBS` and calls the command services of this
process: :class:`gateway.commands.Commands` for GB/T 32960 and JT/T 808 trucks,
:class:`gateway.ocpp.commands.ChargerCommands` for chargers. ``holds`` says whether the device
is connected here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

import msgspec

from gateway.commands import Commands
from gateway.commands_types import CommandError, CommandResult
from gateway.ocpp.commands import ChargerCommands
from gateway.ocpp.link import Links

Protocol: TypeAlias = Literal["gbt32960", "jt808", "ocpp"]
PROTOCOLS: Final[tuple[Protocol, ...]] = ("gbt32960", "jt808", "ocpp")


class CommandSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One command to send: ``args`` are the verb's arguments as JSON (see :data:`VERBS`)."""

    device: str
    protocol: Protocol
    command: str
    args: dict[str, Any] = {}
    timeout_s: float


class NotServed(Exception):
    """This gateway does not serve the protocol (OCPP not enabled) or is too busy
    (``commands.max_pending``); ``busy`` tells which."""

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


# verb -> (required arguments, optional arguments), each name -> the JSON types it may have
_Args: TypeAlias = dict[str, tuple[type, ...]]
_LIST = (list,)
_OBJ = (dict,)
_INT = (int,)
_STR = (str,)
_ID = (int, str)

VERBS: Final[dict[str, dict[str, tuple[_Args, _Args]]]] = {
    "gbt32960": {
        "query_parameters": ({"ids": _LIST}, {}),
        "set_parameters": ({"values": _OBJ}, {}),
        "control": ({"command": _ID}, {"params": _OBJ}),
    },
    "jt808": {
        "query_parameters": ({}, {"ids": _LIST}),
        "set_parameters": ({"values": _OBJ}, {}),
        "control": ({"command": _ID}, {"params": _LIST}),
        "text": ({"text": _STR}, {"flags": _INT, "text_type": _INT}),
        "send": ({"msg_id": _ID, "body": (dict, str)}, {}),
    },
    "ocpp": {
        "remote_start": (
            {"id_tag": _STR},
            {
                "connector_id": _INT,
                "evse_id": _INT,
                "remote_start_id": _INT,
                "id_token_type": _STR,
                "charging_profile": _OBJ,
            },
        ),
        "remote_stop": ({"transaction_id": _ID}, {}),
        "reset": ({}, {"kind": _STR, "evse_id": _INT}),
        "change_configuration": ({"key": _STR, "value": (str, int, bool)}, {}),
        "set_variables": ({"variables": _LIST}, {}),
        "get_configuration": ({}, {"keys": _LIST}),
        "get_variables": ({"variables": _LIST}, {}),
        "trigger_message": ({"message": _STR}, {"connector_id": _INT, "evse_id": _INT}),
        "unlock_connector": ({"connector_id": _INT}, {"evse_id": _INT}),
        "change_availability": ({"operative": (bool,)}, {"connector_id": _INT, "evse_id": _INT}),
        "send": ({"action": _STR, "payload": _OBJ}, {}),
    },
}


def check(spec: CommandSpec) -> None:
    """:class:`CommandError` when the verb is unknown or its arguments are missing, unknown or
    of the wrong JSON type."""
    verbs = VERBS[spec.protocol]
    if spec.command not in verbs:
        raise CommandError(
            f"command: {spec.protocol} has no {spec.command!r}; commands: {', '.join(verbs)}"
        )
    required, optional = verbs[spec.command]
    for name in required:
        if spec.args.get(name) is None:
            raise CommandError(f"args.{name}: required by {spec.command}")
    for name, value in spec.args.items():
        types = required.get(name) or optional.get(name)
        if types is None:
            known = ", ".join([*required, *optional]) or "none"
            raise CommandError(f"args.{name}: not an argument of {spec.command} ({known})")
        if value is None:
            continue
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(_JSON_NAMES[t] for t in types)
            raise CommandError(f"args.{name}: expected {names}, got {value!r}")


_JSON_NAMES: Final = {
    list: "an array",
    dict: "an object",
    int: "an integer",
    str: "a string",
    bool: "a boolean",
}


def _msg_id(value: int | str) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(value, 0)
    except ValueError:
        raise CommandError(f"args.msg_id: {value!r} is not a message id") from None


class LocalCommands:
    """The command services of this process (either may be None: not running here)."""

    def __init__(
        self,
        trucks: Commands | None,
        chargers: ChargerCommands | None,
    ) -> None:
        self.trucks = trucks
        self.chargers = chargers

    @property
    def _links(self) -> Links | None:
        return self.chargers.links if self.chargers is not None else None

    def holds(self, protocol: str, device: str) -> bool:
        """True when the device is connected to this process and ready for commands."""
        if protocol == "ocpp":
            links = self._links
            return links is not None and links.get(device) is not None
        return self.trucks is not None and self.trucks.connected(protocol, device)

    async def run(self, spec: CommandSpec) -> CommandResult:
        """Send the command from this process (``offline`` when the device is not connected
        here). :class:`CommandError` for a bad request, :class:`NotServed` when this process
        cannot take it."""
        check(spec)
        a: Mapping[str, Any] = spec.args
        t = spec.timeout_s
        if spec.protocol == "ocpp":
            chargers = self.chargers
            if chargers is None:
                raise NotServed("OCPP is not enabled on this gateway ([ocpp] enabled)")
            if chargers.pending >= chargers.max_pending:
                raise NotServed("too many commands waiting (commands.max_pending)", busy=True)
            method = getattr(chargers, spec.command)
            kwargs = {k: v for k, v in a.items() if v is not None}
            result: CommandResult = await method(spec.device, **kwargs, timeout_s=t)
            return result
        trucks = self.trucks
        if trucks is None:
            raise NotServed("no truck listener on this gateway")
        if trucks.pending >= trucks.config.max_pending:
            raise NotServed("too many commands waiting (commands.max_pending)", busy=True)
        d = spec.device
        if spec.protocol == "gbt32960":
            if spec.command == "query_parameters":
                return await trucks.query_parameters(d, a["ids"], timeout_s=t)
            if spec.command == "set_parameters":
                return await trucks.set_parameters(d, a["values"], timeout_s=t)
            return await trucks.control(d, a["command"], a.get("params"), timeout_s=t)
        if spec.command == "query_parameters":
            return await trucks.jt_query_parameters(d, a.get("ids"), timeout_s=t)
        if spec.command == "set_parameters":
            return await trucks.jt_set_parameters(d, a["values"], timeout_s=t)
        if spec.command == "control":
            return await trucks.jt_control(d, a["command"], a.get("params") or (), timeout_s=t)
        if spec.command == "text":
            kw: dict[str, Any] = {"text_type": a.get("text_type"), "timeout_s": t}
            if a.get("flags") is not None:
                kw["flags"] = a["flags"]
            return await trucks.jt_text(d, a["text"], **kw)
        body = a["body"]
        if isinstance(body, str):
            body = {"hex": body}
        return await trucks.jt_send(d, _msg_id(a["msg_id"]), body, timeout_s=t)
