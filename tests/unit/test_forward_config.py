"""The ``[forward]`` configuration: the TOML shape, validation errors that name the key, and
secrets from the environment."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.config import ConfigError, _name_the_key
from gateway.forward.config import ForwardConfig, Selection, secret

EXAMPLE = """
poll_interval_ms = 100

[[gbt32960]]
name = "national"
host = "platform.example.cn"
port = 19006
version = "2025"
username = "silkgate"
password_env = "SILKGATE_NATIONAL_PASSWORD"
select = { operators = ["acme"], vins = ["LSG00100000000001"] }
ack_realtime = false
max_frames_per_s = 500
tls = { ca_file = "/etc/silkgate/national-ca.pem", server_name = "gw.example.cn" }

[[json]]
name = "regulator"
url = "https://regulator.example/v1/telemetry"
token_env = "SILKGATE_REGULATOR_TOKEN"
headers = { "X-Tenant" = "acme" }
header_envs = { "X-Api-Key" = "SILKGATE_REGULATOR_KEY" }
select = { all = true }
batch_records = 200
"""


class _File(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The gateway's Config as the lead extends it: ``forward: ForwardConfig``."""

    forward: ForwardConfig = ForwardConfig()


def parse(data: dict[str, Any]) -> ForwardConfig:
    """As gateway.config.parse does for the whole file, under the ``forward`` key."""
    try:
        return msgspec.convert({"forward": data}, _File).forward
    except msgspec.ValidationError as exc:
        raise ConfigError(_name_the_key(str(exc))) from None


def test_the_documented_shape_parses() -> None:
    cfg = parse(tomllib.loads(EXAMPLE))
    up, feed = cfg.gbt32960[0], cfg.json[0]
    assert (up.name, up.port, up.version_number) == ("national", 19006, 2025)
    assert not up.ack_realtime
    assert up.select == Selection(vins=["LSG00100000000001"], operators=["acme"])
    assert up.tls is not None and up.tls.server_name == "gw.example.cn"
    assert up.window == 64 and up.start == "latest" and up.cursor_name == "gbt32960:national"
    assert feed.select.all and feed.batch_records == 200 and feed.cursor_name == "json:regulator"
    assert cfg.poll_interval_ms == 100 and cfg.page_rows == 500
    assert ForwardConfig() == parse({})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"port": 0}, "forward.gbt32960[0].port: Expected `int` >= 1"),
        ({"version": "2020"}, "forward.gbt32960[0].version: Invalid enum value '2020'"),
        ({"select": {}}, "forward.gbt32960[0].select: select nothing?"),
        ({"select": {"all": True, "vins": ["X"]}}, "exclude each other"),
        ({"username": "a-very-long-username"}, "forward.gbt32960[0]: username: at most 12"),
        ({"window": 0}, "forward.gbt32960[0].window: Expected `int` >= 1"),
        ({"name": "has space"}, "forward.gbt32960[0].name: Expected `str` matching"),
        ({"colour": "red"}, "forward.gbt32960[0]: Object contains unknown field `colour`"),
    ],
)
def test_errors_name_the_key(change: dict[str, Any], message: str) -> None:
    data = tomllib.loads(EXAMPLE)
    data["gbt32960"][0].update(change)
    with pytest.raises(ConfigError) as err:
        parse(data)
    assert message in str(err.value)


def test_names_are_unique_and_urls_are_http() -> None:
    data = tomllib.loads(EXAMPLE)
    data["json"][0]["name"] = "national"
    with pytest.raises(ConfigError, match="forward: forwarder names must be unique: national"):
        parse(data)
    data = tomllib.loads(EXAMPLE)
    data["json"][0]["url"] = "ftp://x"
    with pytest.raises(ConfigError, match=r"forward.json\[0\]: url: must start with https://"):
        parse(data)


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SILKGATE_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"forward\.x\.token_env: environment variable"):
        secret("SILKGATE_TEST_SECRET", "forward.x.token_env")
    monkeypatch.setenv("SILKGATE_TEST_SECRET", "s3cret")
    assert secret("SILKGATE_TEST_SECRET", "forward.x.token_env") == "s3cret"


def test_gateway_config_can_import_the_forward_section_without_a_cycle(tmp_path: Path) -> None:
    """gateway/config.py imports ForwardConfig at its top: the forward config module must not
    import gateway.config (or the forwarders) back while loading."""
    code = (
        "import sys; import gateway.forward.config; "
        "assert 'gateway.config' not in sys.modules; "
        "assert 'gateway.forward.service' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
