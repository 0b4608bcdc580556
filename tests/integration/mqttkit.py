"""A private Mosquitto for tests that must stop, restart or reconfigure their broker.

It runs the ``mosquitto`` binary that deploy/services.sh installed, on a free port, with its
configuration, persistence file and log in a directory of the test's own. The shared broker of
deploy/services.sh stays untouched, so other tests never see a restart.

    broker = PrivateBroker(tmp_path)        # persistence on: a restart keeps sessions/messages
    await broker.start()
    ... broker.port ...
    await broker.restart()                  # SIGTERM (persistence saved), start again
    await broker.stop()
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class PrivateBroker:
    """One Mosquitto process (and its successors after restarts) on one fixed port."""

    def __init__(
        self,
        directory: Path,
        *,
        persistence: bool = True,
        extra_config: str = "",
        port: int | None = None,
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.dir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        user = "user root\n" if os.geteuid() == 0 else ""
        persist = (
            f"persistence true\npersistence_location {self.dir}/\nautosave_interval 1\n"
            if persistence
            else "persistence false\n"
        )
        listener = "" if "listener " in extra_config else f"listener {self.port} 127.0.0.1\n"
        if "allow_anonymous" not in extra_config:
            listener += "allow_anonymous true\n"
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"{user}{listener}{extra_config}{persist}log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return
        self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)])
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto not listening on {self.port} after {timeout} s")
            await asyncio.sleep(0.05)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Mosquitto saves its persistence file), wait for the exit."""
        await self._end(signal.SIGTERM, timeout)

    async def kill(self) -> None:
        """SIGKILL: what was not autosaved is lost, as in a crash."""
        await self._end(signal.SIGKILL, 10.0)

    async def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port."""
        await self.stop()
        if down_s:
            await asyncio.sleep(down_s)
        await self.start()

    async def _end(self, sig: int, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(5)
                break
            await asyncio.sleep(0.05)
        while _listening(self.port) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


def password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file holding ``users`` (name: password)."""
    for i, (name, password) in enumerate(users.items()):
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", *(["-c"] if i == 0 else []), str(path), name, password],
            check=True,
            capture_output=True,
        )
    return path
