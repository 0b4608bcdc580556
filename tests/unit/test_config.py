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
