"""Messages/s from an MQTT broker to committed rows: silkgate's ``[mqtt]`` vs a bare aiomqtt loop.

Everything runs against the local Mosquitto of ``deploy/services.sh`` (127.0.0.1:1883), each
part in its own process, in the same run:

* ``impl: silkgate``: the production process, ``silkgate run --config <file>`` with ``[mqtt]``
  (a GB/T 32960 route and a swap-JSON route, ``device = "topic:3"``) against a throw-away
  schema; every message is acknowledged (PUBACK) only once its rows are committed. Its rate is
  measured in the store: a round ends when the round's last message has its ``raw_frames``
  row and the table holds every message published so far (polled every few ms).
  The generated configuration is printed first (``bench: mqtt-config``).
* ``impl: bare-aiomqtt``: ``async for message in client.messages: count += 1`` with aiomqtt
  (QoS 1 subscription, same protocol version, uvloop like the gateway); it stores nothing. Most
  of its CPU is paho reading packets (several ``recv`` calls and a ``Properties`` object per
  message); silkgate's intake parses PUBLISH packets itself, so it can beat this baseline.
* The publisher: a raw-socket MQTT 3.1.1 client in a third process writing pre-encoded QoS 1
  PUBLISH packets in one go and counting the broker's PUBACKs (about 75,000 msg/s into the
  broker here, where a paho client managed 11,000: the subscriber side is what is measured).

Payloads: ``gbt32960``, GB/T 32960 realtime reports (2016 and 2025) made by the simulator's
encoders for 1,000 VINs with distinct data times (three rows each: vehicle_realtime, positions,
raw_frames); ``swap``, swap-station ``station_status`` JSON (docs/swap-station.md) of 1,000
stations (two rows each: station_status, raw_frames). Nothing is deduplicated away.

Two modes, each in rounds of at most 10,000 messages (Mosquitto's ``max_queued_messages`` in
deploy/local/mosquitto.conf: a longer queue drops messages):

* ``drain`` (bench ``mqtt-<payload>``): the subscriber's processes are stopped (SIGSTOP; the
  connection stays up), the round is published and held by the broker, then they continue
  (SIGCONT): rate = messages / (continue -> last message received or committed).
* ``live`` (bench ``mqtt-<payload>-live``): the subscriber runs while the round is published:
  rate = messages / (publish start -> last message received or committed).

Per protocol one ``silkgate run`` (and one with ``--workers N``) stays up while, per payload,
a bare subscriber is started; then they take turns, round by round (bare, silkgate, silkgate
with N workers), so a change in the machine's load touches them alike. A warm-up round of
1,000 messages each comes first. Every message published to a gateway is checked in its store
at the end (one normalized row each, no dead letters).

Lines (each with ``protocol``, ``mode``, ``load1``): ``per_s`` (all rounds' messages / their
time) and ``best_round_per_s`` of ``bare-aiomqtt`` and of ``silkgate`` with ``vs:
bare-aiomqtt`` and ``ratio`` (silkgate / bare; ``ratio_rounds``: the lowest and highest ratio of
two adjacent rounds), and ``publish_per_s`` (the slowest round's publisher); then with
``--workers N`` (N > 1, MQTT 5 only: the workers share ``$share/...`` subscriptions)
``impl: silkgate-N-workers`` with ``vs: 1-worker`` and ``ratio`` = N-worker / 1-worker rate.

Where the CPU goes, per line: ``cpu_us``, CPU microseconds per message, from the start of
publishing to the round's end, of the subscriber (``sub``: silkgate's whole process group,
supervisor and workers; ``sub_processes`` splits it by process: ``main``, ``supervisor``,
``w0``, ...), the broker (``mosquitto``), PostgreSQL (the backends of the gateway's connections
and of the benchmark's polls), the ``publisher``, this ``driver`` process, and ``other`` (the
rest of the machine's busy time: other jobs, PostgreSQL's background processes). ``cores_busy``
is how many of the machine's ``cores`` were busy during the measured intervals and ``cores_by``
who used them; ``cpu_bound_per_s`` is the rate the cores would allow if they did nothing else
(cores / the per-message CPU of subscriber, broker, PostgreSQL and publisher). A rate well
below it with ``cores_busy`` near ``cores`` is bound by the machine's other work.

MQTT 3.1.1 has no Receive Maximum: the broker's own limit of unacknowledged messages per client
(Mosquitto's ``max_inflight_messages``, 100 in deploy/local/mosquitto.conf) then bounds the
gateway, which acknowledges only after the commit: at most that many messages per batch cycle.

    .venv/bin/python benchmarks/mqtt.py [--messages 20000] [--protocol 5,3.1.1] [--workers 2]
                                        [--modes drain,live] [--payloads gbt32960,swap]
                                        [--batch-age-ms 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
HOST, PORT = "127.0.0.1", 1883
ROUND_MAX = 10_000  # Mosquitto's max_queued_messages (deploy/local/mosquitto.conf)
WARMUP = 1_000  # messages per payload before measuring (not reported)
VEHICLES = 1_000  # distinct VINs / station ids
EPOCH = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
STALL_S = 30.0  # a round with no progress for this long has lost messages
POLL_S = 0.005
RAW_PROTOCOL = {"gbt32960": "gbt32960", "swap": "silkgate-swap"}
IMPL_BARE = "bare-aiomqtt"


def emit(bench: str, impl: str, **fields: object) -> None:
    load1 = round(os.getloadavg()[0], 2)
    print(json.dumps({"bench": bench, "impl": impl, **fields, "load1": load1}), flush=True)


def _tag() -> str:
    return secrets.token_hex(4)


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process so far."""
    t = os.times()
    return t.user + t.system


# --------------------------------------------------------------------------- MQTT packets


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str) -> bytes:
    """MQTT 3.1.1 CONNECT, clean session, keepalive 60 s."""
    body = _utf8("MQTT") + bytes((4, 0x02)) + struct.pack("!H", 60) + _utf8(client_id)
    return b"\x10" + _varint(len(body)) + body


def publish_packets(messages: Sequence[tuple[str, bytes]]) -> bytes:
    """QoS 1 PUBLISH packets (packet ids 1, 2, ...; a round stays under 65,535)."""
    assert len(messages) < 65535
    out = []
    for mid, (topic, payload) in enumerate(messages, 1):
        body = _utf8(topic) + struct.pack("!H", mid) + payload
        out.append(b"\x32" + _varint(len(body)) + body)
    return b"".join(out)


# --------------------------------------------------------------------------- payloads


class Payloads:
    """The messages of one payload kind under ``prefix``: message ``i`` is vehicle (station)
    ``i % VEHICLES`` at data time ``EPOCH + i // VEHICLES``, so no two share a natural key."""

    def __init__(self, kind: str, prefix: str) -> None:
        self.kind = kind
        self.prefix = prefix
        self.next = 0
        self._gbt: list[Any] = []
        if kind == "gbt32960":
            from gateway.simulator import Fleet
            from gateway.tcp_simulator_frames import GbtFrames

            fleet = Fleet(VEHICLES, seed=32, gbt_only=True)
            self._gbt = [GbtFrames(fleet, t, refresh_every=60, step_s=1.0) for t in fleet.trucks]

    @property
    def filter(self) -> str:
        return f"{self.prefix}/{self.kind}/+"

    def take(self, n: int) -> list[tuple[str, bytes]]:
        out = [self._message(i) for i in range(self.next, self.next + n)]
        self.next += n
        return out

    def _message(self, i: int) -> tuple[str, bytes]:
        k, epoch = i % VEHICLES, EPOCH + i // VEHICLES
        if self.kind == "gbt32960":
            frames = self._gbt[k]
            return f"{self.prefix}/gbt32960/{frames.truck.vin}", frames.realtime(epoch, 60)
        station = f"SW-BENCH-{k:05d}"
        when = datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
        message = {
            "v": 1,
            "type": "station_status",
            "station_id": station,
            "time": when,
            "state": "operating",
            "bays_total": 10,
            "bays_available": k % 5,
            "batteries_charged": k % 5,
            "batteries_charging": 5,
            "power_w": 600_000 + i % 25_000,
            "faults": ["COOLING_FAN_2"] if k % 7 == 0 else [],
            "extra": {"firmware": "2.4.1", "queue": i % 3},
        }
        return f"{self.prefix}/swap/{station}", json.dumps(message).encode()


# --------------------------------------------------------------------------- child roles


def role_publish(packets_path: str, count: int) -> None:
    """``--role publish``: connect, print ``ready``, wait for a line on stdin, write the
    packets, wait for ``count`` PUBACKs, print the times (epoch s)."""
    packets = Path(packets_path).read_bytes()
    sock = socket.create_connection((HOST, PORT))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet(f"silkgate-bench-pub-{_tag()}"))
    connack = sock.recv(4)
    if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
        raise SystemExit(f"CONNECT refused: {connack!r}")
    print(json.dumps({"event": "ready"}), flush=True)
    sys.stdin.readline()
    received = 0

    def read_acks() -> None:  # the broker sends nothing but 4-byte PUBACKs here
        nonlocal received
        while received < 4 * count:
            data = sock.recv(1 << 16)
            if not data:
                return
            received += len(data)

    reader = threading.Thread(target=read_acks)
    t0 = time.time()
    reader.start()
    sock.sendall(packets)
    t_sent = time.time()
    reader.join()
    t1 = time.time()
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    if received < 4 * count:
        raise SystemExit(f"{received // 4} of {count} PUBACKs before the broker closed")
    event = {"event": "published", "t0": t0, "t_sent": t_sent, "t1": t1, "cpu_s": _cpu_s()}
    print(json.dumps(event), flush=True)


async def role_bare(client_id: str, topic_filter: str, protocol: str, sizes: list[int]) -> None:
    """``--role bare``: the baseline; prints the time of the last message of every round."""
    import aiomqtt

    version = aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(HOST, PORT, identifier=client_id, protocol=version) as client:
        await client.subscribe(topic_filter, qos=1)
        print(json.dumps({"event": "ready"}), flush=True)
        count, ends = 0, iter(list(_cumulative(sizes)))
        end = next(ends)
        async for _ in client.messages:
            count += 1
            if count == end:
                print(json.dumps({"event": "round", "count": count, "t": time.time()}), flush=True)
                end = next(ends, 0)
                if not end:
                    break


def _cumulative(sizes: Sequence[int]) -> list[int]:
    out, total = [], 0
    for n in sizes:
        total += n
        out.append(total)
    return out


# --------------------------------------------------------------------------- processes


def _group(pgid: int) -> dict[int, str]:
    """The processes of process group ``pgid`` and their roles (``main``, ``supervisor``,
    ``w<i>`` for a worker started with ``--worker-index i``)."""
    out: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[2]) == pgid:
                    out[int(proc.name)] = _role((proc / "cmdline").read_bytes().split(b"\0"))
    return out


def _role(argv: list[bytes]) -> str:
    if b"--worker-index" in argv:
        return f"w{argv[argv.index(b'--worker-index') + 1].decode()}"
    return "supervisor" if b"--workers" in argv else "main"


def _ports_to(pids: Sequence[int], remote_port: int) -> list[int]:
    """Local ports of the TCP connections of ``pids`` to ``remote_port``."""
    inodes: set[int] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(int(link[8:-1]))
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if int(f[9]) in inodes and int(f[2].rsplit(":", 1)[1], 16) == remote_port:
                    ports.append(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def _machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far, all cores (/proc/stat: not idle, iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds so far: the subscriber's processes (by role), its PostgreSQL backends (by
    pid), the broker, this driver, the whole machine; and the time."""

    sub: dict[str, float]
    backends: dict[int, float]
    broker: float
    driver: float
    machine: float
    wall: float

    @staticmethod
    async def take(sub: Subscriber) -> CpuSnapshot:
        from gateway.procstats import cpu_s

        by_role: dict[str, float] = {}
        for pid, role in _group(sub.child.pid).items():
            by_role[role] = by_role.get(role, 0.0) + cpu_s(pid)
        backends = {pid: cpu_s(pid) for pid in await sub.backends()}
        return CpuSnapshot(
            by_role, backends, _broker_cpu_s(), _cpu_s(), _machine_busy_s(), time.monotonic()
        )

    def since(self, earlier: CpuSnapshot) -> dict[str, float]:
        """CPU seconds used between ``earlier`` and this one, by party (``other``: the rest of
        the machine, publisher included), plus ``sub:<role>`` per subscriber process."""
        sub = {k: v - earlier.sub.get(k, 0.0) for k, v in self.sub.items()}
        # A backend that exits in between takes its CPU time along; a new one counts whole.
        pg = sum(v - earlier.backends.get(pid, 0.0) for pid, v in self.backends.items())
        used = {
            "sub": sum(sub.values()),
            "mosquitto": self.broker - earlier.broker,
            "postgres": max(0.0, pg),
            "driver": self.driver - earlier.driver,
            "machine": self.machine - earlier.machine,
            "wall": self.wall - earlier.wall,
        }
        ours = sum(used[k] for k in ("sub", "mosquitto", "postgres", "driver"))
        used["other"] = max(0.0, used["machine"] - ours)
        return used | {f"sub:{k}": v for k, v in sub.items()}


def _broker_cpu_s() -> float:
    from gateway.procstats import cpu_s

    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip() == "mosquitto":
                    total += cpu_s(int(proc.name))
    return total


class Child:
    """A child process in its own process group (stopped / continued as a whole), with its
    stdout read line by line: JSON lines become ``events``, every line is kept in ``output``."""

    def __init__(self, name: str, argv: list[str], cwd: Path) -> None:
        self.name, self.argv, self.cwd = name, argv, cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.stopped = False

    async def start(self) -> Child:
        env = {k: v for k, v in os.environ.items() if k != "SILKGATE_DSN"}
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.cwd,  # not the repo root: its gateway/ folder would shadow the package
            env=env | {"PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1"},
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.output.append(line)
            del self.output[:-200]
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    self.events.put_nowait(json.loads(line))
        self.events.put_nowait({"event": "exit"})

    def tail(self) -> str:
        return "".join(self.output[-30:])

    async def event(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """The next event ``name`` (earlier other events are dropped)."""
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.events.get()
                if ev.get("event") == name:
                    return ev
                if ev.get("event") == "exit":
                    rc = await self._wait()
                    raise SystemExit(f"{self.name} exited ({rc}):\n{self.tail()}")

    async def _wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig == signal.SIGCONT:
            self.stopped = False

    async def close(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        """Continue it if stopped, send ``sig`` to it (a supervisor passes it on to its
        workers), wait; after ``timeout`` kill the whole group."""
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            self.signal_group(signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.signal_group(signal.SIGKILL)
                await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return self.proc.returncode or 0


def _self_argv(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


async def publish(messages: list[tuple[str, bytes]], workdir: Path) -> tuple[Child, Path]:
    """A publisher process ready to send ``messages`` (send it a line to go)."""
    path = workdir / f"packets-{_tag()}.bin"
    path.write_bytes(publish_packets(messages))
    pub = await Child(
        "publisher", _self_argv("--role", "publish", str(path), str(len(messages))), HERE
    ).start()
    await pub.event("ready")
    return pub, path


# --------------------------------------------------------------------------- subscribers


@dataclass
class Figures:
    """What one (impl, payload, mode) measured over its rounds."""

    messages: int = 0
    seconds: float = 0.0
    #: CPU seconds by party, from the start of publishing to the end of each round.
    cpu: dict[str, float] = field(default_factory=dict)
    #: CPU seconds by party (and ``wall``, ``machine``) over the measured intervals only.
    interval: dict[str, float] = field(default_factory=dict)
    round_per_s: list[float] = field(default_factory=list)
    publish_per_s: list[float] = field(default_factory=list)

    def add(
        self,
        n: int,
        seconds: float,
        cpu: dict[str, float],
        interval: dict[str, float],
        publisher: tuple[float, float],
        publish_per_s: float,
    ) -> None:
        """One round; ``publisher``: its CPU seconds in all, and within the interval."""
        self.messages += n
        self.seconds += seconds
        _take_publisher(cpu, publisher[0])
        _take_publisher(interval, publisher[1])
        for total, part in ((self.cpu, cpu), (self.interval, interval)):
            for k, v in part.items():
                total[k] = total.get(k, 0.0) + v
        self.round_per_s.append(n / max(seconds, 1e-9))
        self.publish_per_s.append(publish_per_s)

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def fields(self) -> dict[str, object]:
        n = self.messages or 1
        cpu, interval = self.cpu, self.interval
        wall = interval.get("wall") or 1e-9
        parties = ("sub", "mosquitto", "postgres", "publisher", "driver", "other")
        cores = os.cpu_count() or 1
        own = sum(cpu.get(k, 0.0) for k in parties[:4]) / n
        return {
            "per_s": round(self.per_s),
            "best_round_per_s": round(max(self.round_per_s, default=0)),
            "messages": self.messages,
            "rounds": len(self.round_per_s),
            "seconds": round(self.seconds, 3),
            "cpu_us": {k: round(cpu.get(k, 0.0) / n * 1e6, 1) for k in parties},
            "sub_processes": {
                k[4:]: round(v / n * 1e6, 1) for k, v in sorted(cpu.items()) if k[:4] == "sub:"
            },
            "cores": cores,
            "cores_busy": round(interval.get("machine", 0.0) / wall, 2),
            "cores_by": {k: round(interval.get(k, 0.0) / wall, 2) for k in parties},
            "cpu_bound_per_s": round(cores / own) if own else None,
            "publish_per_s": round(min(self.publish_per_s, default=0)),
        }


def _take_publisher(used: dict[str, float], publisher: float) -> None:
    """Move the publisher's CPU seconds out of ``other`` into their own entry."""
    used["publisher"] = publisher
    used["other"] = max(0.0, used.get("other", 0.0) - publisher)


class Subscriber:
    """What a measured round needs of either implementation."""

    impl = ""

    def __init__(self, child: Child, payloads: dict[str, Payloads]) -> None:
        self.child = child
        self.payloads = payloads  # by kind: this subscriber's own topics
        self.published: dict[str, int] = {}  # messages published to it so far, by kind
        self.last: dict[str, tuple[str, bytes]] = {}  # the last one, by kind

    async def round_done(self, kind: str, n: int) -> float:
        """Wait until the round's ``n`` messages of ``kind`` are through; their end time."""
        raise NotImplementedError

    async def backends(self) -> list[int]:
        """The PostgreSQL backends working for the subscriber (and for the benchmark's polls)."""
        return []


class Bare(Subscriber):
    impl = IMPL_BARE

    async def round_done(self, kind: str, n: int) -> float:
        ev = await self.child.event("round", timeout=STALL_S + n / 1000)
        return float(ev["t"])


class Silkgate(Subscriber):
    """``silkgate run`` with ``[mqtt]``; rounds end when their rows are committed."""

    def __init__(
        self, impl: str, child: Child, payloads: dict[str, Payloads], conn: Any, db_port: int
    ) -> None:
        super().__init__(child, payloads)
        self.impl = impl
        self.conn = conn  # asyncpg connection on the gateway's schema
        self.db_port = db_port

    async def backends(self) -> list[int]:
        ports = _ports_to(list(_group(self.child.pid)), self.db_port)
        return [
            row[0]
            for row in await self.conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1::int[])"
                " OR pid = pg_backend_pid()",
                ports,
            )
        ]

    async def round_done(self, kind: str, n: int) -> float:
        from gateway.adapters.mqtt import frame_id

        protocol = RAW_PROTOCOL[kind]
        last = frame_id(*self.last[kind])
        target = self.published[kind]
        progress, seen_at = -1, time.monotonic()
        found = False
        while True:
            if not found:  # an index probe: cheap enough to poll at 5 ms
                found = await self.conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM raw_frames WHERE frame_id = $1)", last
                )
            if found:
                count = await self.conn.fetchval(
                    "SELECT count(*) FROM raw_frames WHERE protocol = $1", protocol
                )
                now = time.time()
                if count >= target:
                    if count > target:
                        raise SystemExit(f"{count} {kind} raw_frames rows for {target} messages")
                    return now
                if count != progress:
                    progress, seen_at = count, time.monotonic()
            if time.monotonic() - seen_at > STALL_S:
                raise SystemExit(
                    f"{self.impl}: no progress for {STALL_S} s ({kind}: {progress} of {target} "
                    f"rows):\n{self.child.tail()}"
                )
            await asyncio.sleep(POLL_S)


async def run_round(
    sub: Subscriber, kind: str, n: int, mode: str, workdir: Path, figures: Figures | None
) -> None:
    """Publish ``n`` messages and wait until ``sub`` has them all; add to ``figures``."""
    messages = sub.payloads[kind].take(n)
    pub, path = await publish(messages, workdir)
    try:
        sub.last[kind] = messages[-1]
        sub.published[kind] = sub.published.get(kind, 0) + n
        before = await CpuSnapshot.take(sub)
        if mode == "drain":
            sub.child.signal_group(signal.SIGSTOP)
            await pub.send("go")
            sent = await pub.event("published")
            start = time.time()
            at_start = await CpuSnapshot.take(sub)
            sub.child.signal_group(signal.SIGCONT)
        else:
            at_start = before
            await pub.send("go")
            sent = await pub.event("published")
            start = float(sent["t0"])
        end = await sub.round_done(kind, n)
        after = await CpuSnapshot.take(sub)
        if figures is not None:
            publisher = float(sent["cpu_s"])
            figures.add(
                n,
                end - start,
                after.since(before),
                after.since(at_start),
                (publisher, publisher if mode == "live" else 0.0),
                n / max(1e-6, sent["t1"] - sent["t0"]),
            )
    finally:
        if sub.child.stopped:
            sub.child.signal_group(signal.SIGCONT)
        await pub.close(signal.SIGTERM, 10)
        path.unlink(missing_ok=True)


def _rounds(total: int) -> list[int]:
    full, rest = divmod(total, ROUND_MAX)
    return [ROUND_MAX] * full + ([rest] if rest else [])


async def drop_session(client_id: str) -> None:
    """End the persistent session ``client_id`` left with the broker (clean start, expiry 0)."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    async with aiomqtt.Client(
        HOST,
        PORT,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        properties=props,
    ):
        pass


@contextlib.asynccontextmanager
async def bare_subscriber(
    kind: str, protocol: str, args: argparse.Namespace
) -> AsyncIterator[Bare]:
    """The baseline subscribed to ``kind``'s topics, for a warm-up and every mode's rounds."""
    payloads = Payloads(kind, f"silkgate-bench/{_tag()}")
    sizes = [WARMUP] + [n for _ in args.modes for n in _rounds(args.messages)]
    client_id = f"silkgate-bench-bare-{_tag()}"
    argv = _self_argv(
        "--role", "bare", client_id, payloads.filter, protocol, ",".join(map(str, sizes))
    )
    child = await Child(IMPL_BARE, argv, HERE).start()
    try:
        await child.event("ready")
        yield Bare(child, {kind: payloads})
    finally:
        await child.close(signal.SIGTERM, 10)
        await drop_session(client_id)


@contextlib.asynccontextmanager
async def scratch_schema() -> AsyncIterator[str]:
    from gateway.store.testing import create_schema, drop_schema, local_dsn, with_search_path

    dsn = local_dsn(REPO)
    schema = await create_schema(dsn, "silkgate_bench_mqtt")
    try:
        yield with_search_path(dsn, schema)
    finally:
        await drop_schema(dsn, schema)


def _toml(sections: dict[str, dict[str, object]], routes: list[dict[str, object]]) -> str:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]  # JSON scalars are TOML
    for route in routes:
        lines.append("[[mqtt.routes]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in route.items()]
    return "\n".join(lines) + "\n"


def supports_workers() -> bool:
    """True when ``silkgate run`` takes ``--workers``."""
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=HERE,
        env=os.environ | {"PYTHONSAFEPATH": "1"},
        check=False,
    ).stdout
    return "--workers" in out


@contextlib.asynccontextmanager
async def silkgate(
    protocol: str, workers: int, args: argparse.Namespace, workdir: Path, show_config: bool
) -> AsyncIterator[Silkgate]:
    """``silkgate run`` (``--workers`` when > 1) with a route per payload kind, on its own
    schema; on leaving, every message published to it is checked in the store."""
    import asyncpg

    prefix = f"silkgate-bench/{_tag()}"
    client_id = f"silkgate-bench-gw-{_tag()}"
    sections: dict[str, dict[str, object]] = {
        "pipeline": {"batch_age_ms": args.batch_age_ms, "writers": args.writers},
        "mqtt": {
            "enabled": True,
            "host": HOST,
            "port": PORT,
            "client_id": client_id,
            "protocol": protocol,
            "session_expiry_s": 600,  # v5: the broker forgets it by itself after a crash
            "max_in_flight": args.max_in_flight,
            "batch": args.mqtt_batch,
        },
    }
    routes: list[dict[str, object]] = [
        {"filter": f"{prefix}/{kind}/+", "codec": kind, "device": "topic:3"}
        for kind in args.payloads
    ]
    if show_config:
        emit("mqtt-config", "silkgate", config=sections, routes=routes)
    async with scratch_schema() as dsn:
        gw_dir = workdir / f"gw-{_tag()}"
        gw_dir.mkdir()
        config = gw_dir / "silkgate.toml"
        local: dict[str, dict[str, object]] = {
            "database": {"dsn": dsn, "pool_size": 6},
            "spool": {"path": str(gw_dir / "spool")},
        }
        config.write_text(_toml(local | sections, routes))
        argv = [sys.executable, "-m", "gateway.cli", "run", "--config", str(config)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        child = await Child("silkgate", argv, gw_dir).start()
        conn = None
        try:
            await _until_up(child, workers)
            conn = await asyncpg.connect(dsn)
            impl = "silkgate" if workers == 1 else f"silkgate-{workers}-workers"
            payloads = {kind: Payloads(kind, prefix) for kind in args.payloads}
            sub = Silkgate(impl, child, payloads, conn, urlsplit(dsn).port or 5432)
            yield sub
            await _check_rows(conn, sub.published)
        finally:
            if conn is not None:
                await conn.close()
            rc = await child.close()
            if rc not in (0, -signal.SIGINT, 130):
                print(f"silkgate exited with {rc}:\n{child.tail()}", file=sys.stderr)
            for cid in _session_ids(client_id, workers):
                await drop_session(cid)


async def _until_up(child: Child, workers: int, timeout: float = 120.0) -> None:
    """Until status lines show the MQTT intake of every worker connected and subscribed
    (a worker's lines start ``[w<i>]``)."""
    deadline = time.monotonic() + timeout
    while len(_up(child.output, workers)) < workers:
        if child.proc is not None and child.proc.returncode is not None:
            raise SystemExit(f"silkgate exited ({child.proc.returncode}):\n{child.tail()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"silkgate: MQTT not up after {timeout} s:\n{child.tail()}")
        await asyncio.sleep(0.1)


def _up(lines: list[str], workers: int) -> set[str]:
    """The processes (``[w<i>]`` prefixes; one gateway: ``""``) whose MQTT intake is up."""
    if workers == 1:
        return {""} if any("mqtt up" in line for line in lines) else set()
    return {ln.split(" ", 1)[0] for ln in lines if ln.startswith("[w") and "mqtt up" in ln}


def _session_ids(client_id: str, workers: int) -> list[str]:
    """The client ids whose sessions a run may leave: the configured one, and per worker."""
    return [client_id] + [f"{client_id}-{i}" for i in range(workers if workers > 1 else 0)]


async def _check_rows(conn: Any, published: dict[str, int]) -> None:
    """Every published message stored once, none a dead letter."""
    dead = await conn.fetchval("SELECT count(*) FROM dead_letters")
    if dead:
        reasons = await conn.fetch("SELECT reason, count(*) FROM dead_letters GROUP BY 1")
        raise SystemExit(f"{dead} dead letters: {[tuple(r) for r in reasons]}")
    tables = {"gbt32960": "vehicle_realtime", "swap": "station_status"}
    for kind, n in published.items():
        stored = await conn.fetchval(f"SELECT count(*) FROM {tables[kind]}")
        if stored != n:
            raise SystemExit(f"{kind}: {stored} rows in {tables[kind]} for {n} messages")


# --------------------------------------------------------------------------- the driver


def _bench(kind: str, mode: str) -> str:
    return f"mqtt-{kind}" if mode == "drain" else f"mqtt-{kind}-live"


async def run_protocol(
    protocol: str, workers: int, args: argparse.Namespace, workdir: Path, first: bool
) -> None:
    """Every payload and mode on one protocol: the baseline and the gateways take turns, round
    by round, so a change in the machine's load touches them alike."""
    async with contextlib.AsyncExitStack() as stack:
        gateways = [await stack.enter_async_context(silkgate(protocol, 1, args, workdir, first))]
        if workers > 1:
            gateways.append(
                await stack.enter_async_context(silkgate(protocol, workers, args, workdir, False))
            )
        for kind in args.payloads:
            async with bare_subscriber(kind, protocol, args) as bare:
                subs: list[Subscriber] = [bare, *gateways]
                for sub in subs:
                    await run_round(sub, kind, WARMUP, "live", workdir, None)
                figures = {(s.impl, m): Figures() for s in subs for m in args.modes}
                for mode in args.modes:
                    for n in _rounds(args.messages):
                        for sub in subs:
                            await run_round(sub, kind, n, mode, workdir, figures[sub.impl, mode])
            for mode in args.modes:
                common = {"protocol": protocol, "mode": mode}
                b = figures[IMPL_BARE, mode]
                one = figures["silkgate", mode]
                emit(_bench(kind, mode), IMPL_BARE, **common, **b.fields())
                emit(
                    _bench(kind, mode),
                    "silkgate",
                    **common,
                    **one.fields(),
                    workers=1,
                    vs=IMPL_BARE,
                    ratio=round(one.per_s / b.per_s, 3),
                    ratio_rounds=_ratio_range(one, b),
                )
                if workers > 1:
                    many = figures[gateways[1].impl, mode]
                    emit(
                        _bench(kind, mode),
                        gateways[1].impl,
                        **common,
                        **many.fields(),
                        workers=workers,
                        vs="1-worker",
                        ratio=round(many.per_s / one.per_s, 3),
                        ratio_rounds=_ratio_range(many, one),
                    )


def _ratio_range(ours: Figures, theirs: Figures) -> list[float]:
    """The lowest and highest rate ratio of two rounds run one after the other."""
    ratios = [a / b for a, b in zip(ours.round_per_s, theirs.round_per_s, strict=True) if b]
    return [round(min(ratios), 3), round(max(ratios), 3)] if ratios else []


async def main_async(args: argparse.Namespace) -> None:
    from gateway.procstats import raise_nofile

    raise_nofile()
    started = time.perf_counter()
    workers_ok = args.workers <= 1 or supports_workers()
    if not workers_ok:
        print(
            f"--workers {args.workers}: this silkgate has no `run --workers` yet; "
            "the worker comparison is skipped",
            file=sys.stderr,
        )
    emit("mqtt-machine", "start", cores=os.cpu_count(), loadavg=os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="silkgate-mqtt-bench-") as tmp:
        for i, protocol in enumerate(args.protocol):
            workers = args.workers if workers_ok else 1
            if workers > 1 and protocol != "5":  # the workers share $share/... subscriptions
                print(f"--workers {workers}: needs MQTT 5, not run on {protocol}", file=sys.stderr)
                workers = 1
            await run_protocol(protocol, workers, args, Path(tmp), i == 0)
    emit("mqtt-machine", "end", cores=os.cpu_count(), loadavg=os.getloadavg())
    print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def _list(choices: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return items

    return parse


def main() -> None:
    if sys.argv[1:2] == ["--role"]:  # a child process of this benchmark
        role, rest = sys.argv[2], sys.argv[3:]
        if role == "publish":
            role_publish(rest[0], int(rest[1]))
            return
        from gateway.adapters.tcp import loop_factory

        sizes = [int(x) for x in rest[3].split(",")]
        with asyncio.Runner(loop_factory=loop_factory()) as runner:  # uvloop, as the gateway
            runner.run(role_bare(rest[0], rest[1], rest[2], sizes))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="per payload and mode")
    parser.add_argument(
        "--protocol", type=_list(["5", "3.1.1"]), default=["5", "3.1.1"], help="5,3.1.1"
    )
    parser.add_argument(
        "--payloads", type=_list(["gbt32960", "swap"]), default=["gbt32960", "swap"]
    )
    parser.add_argument("--modes", type=_list(["drain", "live"]), default=["drain", "live"])
    parser.add_argument("--workers", type=int, default=2, help="compare with N workers (1: no)")
    parser.add_argument("--writers", type=int, default=1, help="silkgate [pipeline] writers")
    parser.add_argument(
        "--batch-age-ms", type=int, default=20, help="silkgate [pipeline] batch_age_ms"
    )
    parser.add_argument("--max-in-flight", type=int, default=1000, help="silkgate [mqtt]")
    parser.add_argument("--mqtt-batch", type=int, default=500, help="silkgate [mqtt] batch")
    parser.add_argument("--quick", action="store_true", help="5,000 messages, drain only")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.modes = 5_000, ["drain"]
    if args.messages < 1:
        parser.error("--messages must be positive")
    from gateway.adapters.tcp import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
