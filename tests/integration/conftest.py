"""Real services for the integration tests: Mosquitto and PostgreSQL with TimescaleDB.

The session fixture ``services`` runs ``deploy/services.sh start`` (root only), which installs
whatever is missing first: on a fresh Debian 12 machine that builds a Debian 13 root once (about
two minutes); afterwards a start takes about a second. The services are left running at the end
(several test sessions may share them; `deploy/services.sh stop` stops them), unless
SILKGATE_STOP_SERVICES=1 asks the fixture to stop them.

To test against services started some other way (docker compose, a remote box), set both
SILKGATE_DSN and SILKGATE_MQTT; the fixture then uses them as they are and starts nothing.

MQTT over TLS with a password: deploy/services.sh runs a second broker for it (mqtts on 8883,
see its header); ``Services.mqtt_tls`` describes it. External services name theirs with
SILKGATE_MQTT_TLS (mqtts://host:port), SILKGATE_MQTT_TLS_CA, SILKGATE_MQTT_USER and
SILKGATE_MQTT_PASSWORD (``export $(deploy/services.sh env)`` sets them all); without them the
``mqtt_tls`` fixture starts a private TLS broker (tests/integration/mqttkit.py) instead, so
the TLS tests run either way.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio

from gateway.store import connect

from .mqttkit import tls_broker

REPO = Path(__file__).resolve().parents[2]
SERVICES_SH = REPO / "deploy" / "services.sh"
# The first start on a fresh machine installs packages and builds a root: allow for a slow mirror.
START_TIMEOUT = float(os.environ.get("SILKGATE_START_TIMEOUT", "1800"))


@dataclass(frozen=True)
class MqttTlsBroker:
    """A broker that takes TLS with a username and password only (anonymous clients refused)."""

    url: str  # mqtts://host:port
    ca: str  # the CA bundle (PEM) its server certificate is verified against
    username: str
    password: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 8883

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MqttTlsBroker | None:
        """From SILKGATE_MQTT_TLS, _TLS_CA, _USER, _PASSWORD; None unless all are set."""
        keys = ("SILKGATE_MQTT_TLS", "SILKGATE_MQTT_TLS_CA", "SILKGATE_MQTT_USER")
        if not all(env.get(k) for k in keys) or "SILKGATE_MQTT_PASSWORD" not in env:
            return None
        return cls(
            url=env["SILKGATE_MQTT_TLS"],
            ca=env["SILKGATE_MQTT_TLS_CA"],
            username=env["SILKGATE_MQTT_USER"],
            password=env["SILKGATE_MQTT_PASSWORD"],
        )


@dataclass(frozen=True)
class Services:
    dsn: str
    mqtt: str
    #: "local" when deploy/services.sh runs them (Debian's Apache-licensed TimescaleDB),
    #: "external" when they came from SILKGATE_DSN / SILKGATE_MQTT.
    origin: str
    #: The TLS + password broker of deploy/services.sh (or the external one named in the
    #: environment); None when external services have none: use the ``mqtt_tls`` fixture.
    mqtt_tls: MqttTlsBroker | None = None

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        return urlsplit(self.mqtt).port or 1883


def _run(*args: str, timeout: float = 120.0) -> tuple[int, str]:
    """Run services.sh, echoing its output as it comes (visible with -s, kept in the report)."""
    lines: list[str] = []
    with subprocess.Popen(
        ["bash", str(SERVICES_SH), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line)
                sys.stdout.write(line)
            rc = proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            raise
    return rc, "".join(lines)


def _parse_env(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("SILKGATE_"):
            out[key] = value
    return out


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    dsn, mqtt = os.environ.get("SILKGATE_DSN"), os.environ.get("SILKGATE_MQTT")
    if dsn and mqtt:
        yield Services(
            dsn=dsn, mqtt=mqtt, origin="external", mqtt_tls=MqttTlsBroker.from_env(os.environ)
        )
        return
    if os.geteuid() != 0:
        pytest.fail(
            "the integration tests need the local services: run `sudo deploy/services.sh start` "
            "and `export $(deploy/services.sh env)`, or run the tests as root"
        )
    rc, output = _run("start", timeout=START_TIMEOUT)
    if rc != 0:
        pytest.fail(f"deploy/services.sh start exited {rc}:\n{output}")
    env = _parse_env(_run("env")[1])
    tls = MqttTlsBroker.from_env(env)
    if tls is None:
        pytest.fail(f"deploy/services.sh env names no TLS broker:\n{env}")
    try:
        yield Services(
            dsn=env["SILKGATE_DSN"], mqtt=env["SILKGATE_MQTT"], origin="local", mqtt_tls=tls
        )
    finally:
        if os.environ.get("SILKGATE_STOP_SERVICES") == "1":
            _run("stop")


@pytest.fixture(scope="session")
def mqtt_tls(
    services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MqttTlsBroker]:
    """The TLS + password broker: the services' own, else a private one for the session."""
    if services.mqtt_tls is not None:
        yield services.mqtt_tls
        return
    user, password = "silkgate", "silkgate-mqtt"
    broker, files = tls_broker(tmp_path_factory.mktemp("mqtt-tls"), {user: password})
    asyncio.run(broker.start())
    try:
        yield MqttTlsBroker(
            url=f"mqtts://127.0.0.1:{broker.port}",
            ca=str(files.ca_pem),
            username=user,
            password=password,
        )
    finally:
        asyncio.run(broker.stop())


@pytest_asyncio.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the requesting module's ``dsn`` (each module defines its own schema)."""
    connection = await connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()
