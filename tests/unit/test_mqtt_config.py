"""``[mqtt]``: validation with errors that name the key, and topic routing (MQTT wildcards)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from gateway.config import ConfigError, parse
from gateway.mqtt_config import MqttConfig, MqttRoute, filter_error, topic_matches

GOOD = """
[mqtt]
enabled = true
host = "broker.example"
client_id = "silkgate-1"
protocol = "3.1.1"
username = "gw"
password_env = "SILKGATE_MQTT_PASSWORD"
tls = true
tls_ca = "/etc/ca.pem"
max_in_flight = 200
batch = 50

[[mqtt.routes]]
filter = "trucks/+/gbt32960"
codec = "gbt32960"
device = "topic:1"

[[mqtt.routes]]
filter = "$share/gw/terminals/+/jt808"
codec = "jt808"
device = "topic:1"
qos = 0

[[mqtt.routes]]
filter = "stations/#"
codec = "swap"
"""


def _mqtt(text: str) -> MqttConfig:
    return parse(tomllib.loads(text)).mqtt


def _error(mqtt: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse({"mqtt": mqtt})
    return str(info.value)


def _route(**kw: Any) -> dict[str, Any]:
    return {"filter": "a/+/b", "codec": "swap"} | kw


def test_defaults_are_off() -> None:
    cfg = parse({}).mqtt
    assert not cfg.enabled
    assert cfg.client_id == "silkgate"
    assert cfg.protocol == "5"
    assert cfg.routes == []


def test_a_full_section() -> None:
    cfg = _mqtt(GOOD)
    assert cfg.enabled and cfg.host == "broker.example" and cfg.protocol == "3.1.1"
    assert [r.codec for r in cfg.routes] == ["gbt32960", "jt808", "swap"]
    assert cfg.routes[1].qos == 0
    assert cfg.routes[1].match_filter == "terminals/+/jt808"
    assert cfg.routes[0].device_level() == 1 and cfg.routes[2].device_level() is None


def test_routing_first_match_wins_and_devices_from_the_topic() -> None:
    cfg = _mqtt(GOOD)
    r = cfg.route_for("trucks/LVIN0000000000001/gbt32960")
    assert r is cfg.routes[0]
    assert r.device_of("trucks/LVIN0000000000001/gbt32960") == "LVIN0000000000001"
    jt = cfg.route_for("terminals/013912345678/jt808")  # a shared subscription's filter part
    assert jt is cfg.routes[1] and jt.device_of("terminals/013912345678/jt808") == "013912345678"
    assert cfg.route_for("stations/s1/status") is cfg.routes[2]
    assert cfg.route_for("stations") is cfg.routes[2]  # '#' matches the parent level too
    assert cfg.route_for("trucks/x/jt808") is None
    assert cfg.route_for("$share/gw/terminals/1/jt808") is None
    first = MqttConfig(
        routes=[
            MqttRoute(filter="a/#", codec="swap"),
            MqttRoute(filter="a/+", codec="jt808"),
        ]
    )
    assert first.route_for("a/b") is first.routes[0]


@pytest.mark.parametrize(
    ("flt", "topic", "match"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/", True),  # an empty level is a level
        ("a/+", "a", False),
        ("+/+", "/b", True),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("A/b", "a/b", False),  # case matters
    ],
)
def test_topic_matching(flt: str, topic: str, match: bool) -> None:
    assert topic_matches(flt, topic) is match


@pytest.mark.parametrize(
    ("flt", "why"),
    [
        ("", "empty"),
        ("a/#/b", "'#' must be a whole level and the last one"),
        ("a/b#", "'#' must be a whole level"),
        ("a/b+/c", "'+' must be a whole level"),
        ("a\x00b", "NUL"),
    ],
)
def test_bad_filters(flt: str, why: str) -> None:
    err = filter_error(flt)
    assert err is not None and why in err
    msg = _error({"routes": [_route(filter=flt)]})
    assert msg.startswith("mqtt.routes[0]") and why in msg


@pytest.mark.parametrize(
    ("route", "why"),
    [
        (_route(device="topic:3"), "has 3 levels (0..2); level 3 is not one of its '+' levels"),
        (_route(device="topic:0"), "level 0 of 'a/+/b' is 'a', not '+'"),
        (_route(filter="a/#", device="topic:1"), "the last being '#'"),
        (_route(device="segment:1"), 'expected "payload" or "topic:<level>"'),
        (_route(device="topic:x"), 'expected "payload" or "topic:<level>"'),
        (_route(filter="$share//a/+"), "shared subscription"),
        (_route(filter="$share/g+/a/+"), "shared subscription"),
        (_route(codec="ocpp"), "Invalid enum value 'ocpp'"),
        (_route(qos=2), "Invalid enum value 2"),
    ],
)
def test_bad_routes_name_the_key(route: dict[str, Any], why: str) -> None:
    msg = _error({"routes": [route]})
    assert msg.startswith("mqtt.routes[0]"), msg
    assert why in msg, msg


def test_shared_subscription_device_levels_count_in_the_filter_part() -> None:
    route = MqttRoute(filter="$share/g/a/+/b", codec="jt808", device="topic:1")
    assert route.device_of("a/123/b") == "123"


@pytest.mark.parametrize(
    ("mqtt", "why"),
    [
        ({"enabled": True}, "enabled without routes"),
        ({"client_id": ""}, "fixed, non-empty client id"),
        ({"tls_ca": "/ca.pem"}, "need tls = true"),
        ({"tls": True, "tls_key": "/k"}, "tls_key without tls_cert"),
        ({"password_env": "X"}, "password_env without username"),
        ({"backoff_initial_s": 5.0, "backoff_max_s": 1.0}, "backoff_max_s"),
        ({"routes": [_route(), _route()]}, "listed twice"),
        ({"protocol": "4"}, "Invalid enum value '4'"),
        ({"max_in_flight": 0}, "Expected `int` >= 1"),
        ({"port": 0}, "Expected `int` >= 1"),
        ({"hots": "x"}, "unknown field `hots`"),
    ],
)
def test_bad_sections(mqtt: dict[str, Any], why: str) -> None:
    msg = _error(mqtt)
    assert msg.startswith("mqtt"), msg
    assert why in msg, msg
