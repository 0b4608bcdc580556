"""``silkgate run`` as a child process for the end-to-end tests: both listeners on fixed free
ports (the same after a restart), a config of its own, SIGKILL or a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Child:
    """``silkgate run`` with both listeners on fixed ports (the same after a restart)."""

    def __init__(
        self, dsn: str, tmp: Path, extra: str = "", env: dict[str, str] | None = None
    ) -> None:
        self.ports = {"gbt32960": _free_port(), "jt808": _free_port()}
        self.config = tmp / "silkgate.toml"
        listeners = "".join(
            f'[listeners.{p}]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
            for p, port in self.ports.items()
        )
        self.config.write_text(
            f'[database]\ndsn = "{dsn}"\n[spool]\npath = "{tmp / "spool"}"\n'
            f"[pipeline]\nbatch_age_ms = 50\n{listeners}{extra}"
        )
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.config.parent,  # not the repo root: the source folder would shadow
            env=env | self.env,
        )
        for _ in range(600):  # listening once both ports accept
            if all(_accepts(port) for port in self.ports.values()):
                return
            assert self.proc.poll() is None, "the gateway exited"
            await asyncio.sleep(0.05)
        raise AssertionError("the gateway did not start listening")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
