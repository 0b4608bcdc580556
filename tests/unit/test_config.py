"""Configuration loading: defaults, validation errors that name the key, secrets from env."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Config, ConfigError, load


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "silkgate.toml"
    path.write_text("")
    assert load(path) == Config()


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "silkgate.toml"
    path.write_text('[pipeline]\nbatch_rows = 100\n[spool]\nfsync = "batch"\n')
    cfg = load(path)
    assert cfg.pipeline.batch_rows == 100 and cfg.spool.fsync == "batch"
    assert cfg.pipeline.batch_age_ms == Config().pipeline.batch_age_ms


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[pipeline]\nbatch_rows = "many"\n', "pipeline.batch_rows", "Expected `int`"),
        ("[pipeline]\nbatch_rows = 0\n", "pipeline.batch_rows", "Expected `int` >= 1"),
        ('[spool]\nfsync = "sometimes"\n', "spool.fsync", "Invalid enum value"),
        ("[spool]\nnearly_full = 1.5\n", "spool.nearly_full", "<= 1"),
        ("[pipeline]\nbatch_rowz = 5\n", "pipeline", "unknown field `batch_rowz`"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "silkgate.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert f"{path}: {key}: " in message and problem in message


def test_unreadable_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[pipeline\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)


def test_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config()
    monkeypatch.delenv("SILKGATE_DB_PASSWORD", raising=False)
    monkeypatch.delenv("SILKGATE_DSN", raising=False)
    assert cfg.database_dsn() == cfg.database.dsn
    monkeypatch.setenv("SILKGATE_DB_PASSWORD", "s3cret")
    assert cfg.database_dsn() == "postgresql://silkgate:s3cret@127.0.0.1:55432/silkgate"


def test_dsn_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SILKGATE_DSN", "postgresql://u:p@db:5432/x")
    monkeypatch.setenv("SILKGATE_DB_PASSWORD", "ignored")  # the DSN has its own password
    assert Config().database_dsn() == "postgresql://u:p@db:5432/x"


def test_listeners_default_off_with_named_limits() -> None:
    cfg = Config()
    gbt, jt = cfg.listeners.gbt32960, cfg.listeners.jt808
    assert not gbt.enabled and not jt.enabled
    assert (gbt.port, jt.port) == (32960, 8808)
    assert gbt.max_frame_bytes == 65556 and jt.max_frame_bytes == 2092  # the codecs' maxima
    assert gbt.ack_realtime and gbt.response_body == "time" and gbt.response_time == "request"
    assert gbt.unknown_devices == jt.unknown_devices == "accept"
    assert not gbt.tls and cfg.registry.cache_ttl_s > 0


def test_listener_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "silkgate.toml"
    path.write_text(
        "[listeners.gbt32960]\n"
        'enabled = true\nhost = "127.0.0.1"\nport = 1\nack_realtime = false\n'
        'response_body = "echo"\nunknown_devices = "reject"\nmax_unacked_frames = 8\n'
        '[[listeners.gbt32960.platforms]]\nusername = "regulator"\npassword_env = "PW"\n'
        "[listeners.jt808]\n"
        "enabled = true\nheartbeat_timeout_s = 0\nsubpackage_timeout_s = 5\n"
        "[registry]\ncache_ttl_s = 1.5\n"
    )
    cfg = load(path)
    gbt, jt = cfg.listeners.gbt32960, cfg.listeners.jt808
    assert gbt.enabled and gbt.host == "127.0.0.1" and gbt.port == 1
    assert not gbt.ack_realtime and gbt.ack_reissue and gbt.response_body == "echo"
    assert gbt.unknown_devices == "reject" and gbt.max_unacked_frames == 8
    assert [(p.username, p.password_env) for p in gbt.platforms] == [("regulator", "PW")]
    assert jt.enabled and jt.heartbeat_timeout_s == 0 and jt.subpackage_timeout_s == 5
    assert jt.port == 8808 and cfg.registry.cache_ttl_s == 1.5


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[listeners.gbt32960]\nport = 70000\n", "listeners.gbt32960.port", "<= 65535"),
        ("[listeners.jt808]\nmax_connections = 0\n", "listeners.jt808.max_connections", ">= 1"),
        (
            '[listeners.jt808]\nunknown_devices = "maybe"\n',
            "listeners.jt808.unknown_devices",
            "enum",
        ),
        (
            '[listeners.gbt32960]\nresponse_body = "full"\n',
            "listeners.gbt32960.response_body",
            "enum",
        ),
        ("[listeners.gbt32960]\nheartbeat_timeout_s = -1\n", "listeners.gbt32960", ">= 0"),
        ('[listeners.jt808]\ntls_cert = "c.pem"\n', "listeners.jt808", "tls_key"),
        ('[listeners.gbt32960]\ntls_client_ca = "ca.pem"\n', "listeners.gbt32960", "tls_cert"),
        ("[listeners.jt808]\nack_realtime = true\n", "listeners.jt808", "unknown field"),
        (
            '[[listeners.gbt32960.platforms]]\nusername = "much_too_long"\npassword_env = "X"\n',
            "listeners.gbt32960.platforms[0].username",
            "length <= 12",
        ),
        ("[registry]\ncache_entries = 0\n", "registry.cache_entries", ">= 1"),
    ],
)
def test_listener_errors_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "silkgate.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert f"{path}: {key}" in message and problem in message, message
