"""Real services for the integration tests: Mosquitto and PostgreSQL with TimescaleDB.

The session fixture ``services`` runs ``deploy/services.sh start`` (root only), which installs
whatever is missing first: on a fresh Debian 12 machine that builds a Debian 13 root once (about
two minutes); afterwards a start takes about a second. The services are left running at the end
(several test sessions may share them; `deploy/services.sh stop` stops them), unless
SILKGATE_STOP_SERVICES=1 asks the fixture to stop them.

To test against services started some other way (docker compose, a remote box), set both
SILKGATE_DSN and SILKGATE_MQTT; the fixture then uses them as they are and starts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES_SH = REPO / "deploy" / "services.sh"
# The first start on a fresh machine installs packages and builds a root: allow for a slow mirror.
START_TIMEOUT = float(os.environ.get("SILKGATE_START_TIMEOUT", "1800"))


@dataclass(frozen=True)
class Services:
    dsn: str
    mqtt: str
    #: "local" when deploy/services.sh runs them (Debian's Apache-licensed TimescaleDB),
    #: "external" when they came from SILKGATE_DSN / SILKGATE_MQTT.
    origin: str

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
        yield Services(dsn=dsn, mqtt=mqtt, origin="external")
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
    try:
        yield Services(dsn=env["SILKGATE_DSN"], mqtt=env["SILKGATE_MQTT"], origin="local")
    finally:
        if os.environ.get("SILKGATE_STOP_SERVICES") == "1":
            _run("stop")
