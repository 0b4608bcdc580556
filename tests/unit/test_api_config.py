"""The ``[api]`` section and what ``--workers`` does with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.api.config import ApiConfig, command_socket_dir
from gateway.config import ConfigError, parse
from gateway.supervisor import check_workers, worker_config


def test_defaults_and_errors_name_the_key() -> None:
    cfg = parse({}).api
    assert cfg == ApiConfig() and not cfg.enabled and cfg.port == 8080 and not cfg.tls
    assert parse({"api": {"enabled": True, "port": 9090, "burst": 5}}).api.burst == 5
    for bad, key in (
        ({"port": 70000}, "api.port"),
        ({"rate_per_s": 0}, "api.rate_per_s"),
        ({"burst": 0}, "api.burst"),
        ({"colour": 1}, "colour"),
        ({"tls_cert": "a.pem"}, "api"),
        ({"default_rows": 10, "max_rows": 5}, "api"),
        ({"command_timeout_s": 400}, "api"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse({"api": bad})


def test_workers_share_one_socket_directory_and_a_named_port(tmp_path: Path) -> None:
    cfg = parse({"spool": {"path": str(tmp_path / "spool")}, "api": {"enabled": True}})
    assert command_socket_dir(cfg.api, cfg.spool.path) == tmp_path / "spool" / "api"
    w1 = worker_config(cfg, 1, 2)
    assert w1.spool.path == str(tmp_path / "spool" / "worker-1")
    assert w1.api.socket_dir == str(tmp_path / "spool" / "api")
    assert command_socket_dir(w1.api, w1.spool.path) == tmp_path / "spool" / "api"
    own = parse({"api": {"enabled": True, "socket_dir": "/run/sg"}})
    assert worker_config(own, 0, 2).api.socket_dir == "/run/sg"
    with pytest.raises(ConfigError, match=r"api\.port: 0"):
        check_workers(parse({"api": {"enabled": True, "port": 0}}), 2)
    check_workers(parse({"api": {"enabled": True, "port": 0}}), 1)
