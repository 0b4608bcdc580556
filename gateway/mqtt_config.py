"""``[mqtt]``: the broker the gateway subscribes to, and which topics carry what.

TOML shape (see docs/mqtt.md, "Routing and configuration")::

    [mqtt]
    enabled = true
    host = "broker.example"
    client_id = "silkgate"            # fixed: it names the persistent session

    [[mqtt.routes]]
    filter = "trucks/+/gbt32960"      # an MQTT topic filter (+ and #; $share/group/... too)
    codec = "gbt32960"                # "gbt32960" | "jt808" | "swap" | "charger"
    device = "topic:1"                # the device id: topic level 1 (0-based), or "payload"

A route's ``device = "topic:N"`` names level N of the topic (0-based, counted in the filter
without a ``$share/<group>/`` prefix), which must be a ``+`` level of the filter. Routes are
tried in order; the first whose filter matches a topic takes the message.

Built on :mod:`gateway.config_base` (``gateway.config`` imports this section), and free of
MQTT client imports: ``gateway.adapters.mqtt`` turns it into the intake's configuration.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gateway.config_base import Positive, PositiveFloat
from gateway.config_base import Section as _Section

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]

_SHARE = "$share/"
_MAX_TOPIC_BYTES = 65535


def filter_error(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid MQTT topic filter, or None (MQTT 5.0 section 4.7)."""
    if not topic_filter:
        return "empty topic filter"
    if len(topic_filter.encode()) > _MAX_TOPIC_BYTES:
        return "topic filter longer than 65535 bytes"
    if "\x00" in topic_filter:
        return "topic filter contains NUL"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """``("group", "a/+/b")`` for ``"$share/group/a/+/b"``; ``(None, filter)`` otherwise."""
    if not topic_filter.startswith(_SHARE):
        return None, topic_filter
    group, _, rest = topic_filter[len(_SHARE) :].partition("/")
    return group, rest


def topic_matches(topic_filter: str, topic: str) -> bool:
    """True when ``topic`` matches ``topic_filter`` (``+`` one level, ``#`` the rest, including
    none: ``a/#`` matches ``a``). Wildcards in the first level never match a ``$`` topic."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


class MqttRoute(_Section, frozen=True):
    """``[[mqtt.routes]]``: one subscription and what its messages are."""

    filter: str
    #: ``"gbt32960"`` / ``"jt808"``: one binary frame per payload; ``"swap"``: swap-station JSON
    #: (docs/swap-station.md); ``"charger"``: charger JSON (docs/charger-json.md).
    codec: Literal["gbt32960", "jt808", "swap", "charger"]
    qos: Literal[0, 1] = 1
    #: ``"topic:N"``: topic level N (0-based) is the device id (VIN, terminal phone number,
    #: station id, charger id), checked against the payload's own; ``"payload"``: the
    #: payload's alone.
    device: str = "payload"

    def __post_init__(self) -> None:
        group, inner = split_shared(self.filter)
        if group is not None and (not group or "+" in group or "#" in group or not inner):
            raise ValueError(
                f"filter {self.filter!r}: a shared subscription is $share/<group>/<filter>, "
                "the group without wildcards"
            )
        if (why := filter_error(inner)) is not None:
            raise ValueError(f"filter {self.filter!r}: {why}")
        if self.device == "payload":
            return
        kind, sep, index = self.device.partition(":")
        if kind != "topic" or not sep or not index.isdigit():
            raise ValueError(f'device {self.device!r}: expected "payload" or "topic:<level>"')
        levels = inner.split("/")
        n = int(index)
        if n >= len(levels) or levels[n] == "#":
            raise ValueError(
                f"device {self.device!r}: filter {inner!r} has {len(levels)} levels "
                f"(0..{len(levels) - 1})"
                + (", the last being '#'" if levels[-1] == "#" else "")
                + f"; level {n} is not one of its '+' levels"
            )
        if levels[n] != "+":
            raise ValueError(
                f"device {self.device!r}: level {n} of {inner!r} is {levels[n]!r}, not '+' "
                "(a fixed level names no device)"
            )

    @property
    def match_filter(self) -> str:
        """The filter topics are matched against (without any ``$share/<group>/``)."""
        return split_shared(self.filter)[1]

    def matches(self, topic: str) -> bool:
        return topic_matches(self.match_filter, topic)

    def device_level(self) -> int | None:
        """The topic level naming the device, or None (``device = "payload"``)."""
        return None if self.device == "payload" else int(self.device.partition(":")[2])

    def device_of(self, topic: str) -> str | None:
        """The device id the topic names, or None (``device = "payload"``)."""
        level = self.device_level()
        if level is None:
            return None
        parts = topic.split("/")
        return parts[level] if level < len(parts) else None


class MqttConfig(_Section, frozen=True):
    """``[mqtt]``: subscribe to a broker (QoS 1, persistent session, acks after durability)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 1883
    client_id: str = "silkgate"
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password_env: str | None = None  # environment variable holding the password
    tls: bool = False
    tls_ca: str | None = None  # CA bundle (PEM); None: the system's
    tls_cert: str | None = None  # client certificate (PEM)
    tls_key: str | None = None  # its key, when not inside tls_cert
    tls_check_hostname: bool = True
    session_expiry_s: Positive = 3600  # the broker keeps the session this long offline (MQTT 5)
    keepalive_s: Positive = 30
    max_in_flight: Positive = 1000  # deliveries received and not yet acknowledged, at most
    batch: Positive = 500  # deliveries per pipeline submission, at most
    backoff_initial_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 30.0
    connect_timeout_s: PositiveFloat = 10.0
    #: How far back a redelivered (DUP) message's archive row is looked for.
    dedup_window_s: Positive = 86400
    #: ID tags of charger-JSON sessions in ``charging_sessions``: ``hash`` (as OCPP's) or ``plain``.
    id_tags: Literal["hash", "plain"] = "hash"
    routes: list[MqttRoute] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id: a persistent session needs a fixed, non-empty client id")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        if (self.tls_ca or self.tls_cert or self.tls_key) and not self.tls:
            raise ValueError("tls_ca / tls_cert / tls_key need tls = true")
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key without tls_cert")
        if self.password_env is not None and self.username is None:
            raise ValueError("password_env without username")
        seen: set[str] = set()
        for route in self.routes:
            if route.filter in seen:
                raise ValueError(f"routes: filter {route.filter!r} listed twice")
            seen.add(route.filter)
        if self.enabled and not self.routes:
            raise ValueError("enabled without routes: add [[mqtt.routes]]")

    def route_for(self, topic: str) -> MqttRoute | None:
        """The first route whose filter matches ``topic``, or None."""
        for route in self.routes:
            if route.matches(topic):
                return route
        return None
