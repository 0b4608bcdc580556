"""The built-in status page (``/status``, ``/status.json``; gateway/status_page): a real
``silkgate run`` fed by ``silkgate simulate`` loaded in headless Chromium (installed by
deploy/services.sh) until it shows frames and a dot per vehicle, then a screenshot checked
pixel by pixel; the supervisor of ``--workers 2`` serving it; device ids that are HTML shown
as text; the "database unavailable" state; the last-positions query, its cache and its
failures; the metrics summary (rates across a worker restart, errors by reason); the HTTP
routes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

from gateway.metrics import Snapshot, SnapshotBuilder, WorkerState, merge
from gateway.metrics_server import MetricsHttp
from gateway.status_page import LastPositions, Rates, StatusPage, summarize
from gateway.store.testing import create_schema, drop_schema, migrated_schema, with_search_path

from .gatewaykit import RunProcess, _free_port

if TYPE_CHECKING:
    from .conftest import Services

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1280, 1500
#: the page's colours (status.css): header, GB/T dot, JT/T dot, alert box, alert text
HEADER, GBT, JT = (0x16, 0x20, 0x2B), (0xD9, 0x48, 0x0F), (0x19, 0x71, 0xC2)
ALERT_BOX, ALERT_TEXT = (0xFF, 0xF0, 0xF0), (0xC9, 0x2A, 0x2A)


# -- headless Chromium over the DevTools protocol ----------------------------------------------


def chromium_binary() -> str:
    """Chromium's headless shell (deploy/services.sh installs it; run here as root when it is
    missing, e.g. with services from SILKGATE_DSN)."""
    names = ("chromium-headless-shell", "chromium", "chromium-browser")
    found = next((p for p in map(shutil.which, names) if p), None)
    if found is None and os.geteuid() == 0:
        subprocess.run(
            ["bash", str(REPO / "deploy" / "services.sh"), "browser"],
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=1200,
        )
        found = next((p for p in map(shutil.which, names) if p), None)
    if found is None:
        pytest.fail("no Chromium: run `sudo deploy/services.sh install` (or `... browser`)")
    return found


class Tab:
    """One page of the browser, driven over its DevTools WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.requests: list[str] = []
        self.errors: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mine = self.next_id
        await self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if msg.get("id") == mine:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            self._event(msg)

    def _event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params["exceptionDetails"])[:500])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])

    async def evaluate(self, expression: str) -> Any:
        out = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in out:
            raise AssertionError(f"{expression}: {out['exceptionDetails']}")
        return out["result"].get("value")

    async def open(self, url: str) -> None:
        for domain in ("Page", "Runtime", "Network", "Log"):
            await self.send(f"{domain}.enable")
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        await self.send("Page.navigate", url=url)

    async def wait_for(self, expression: str, timeout: float = 45.0) -> Any:
        """Poll ``expression`` until it is true (false while it throws: the page is loading)."""
        deadline = time.monotonic() + timeout
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"
        while True:
            value = await self.evaluate(guarded)
            if value:
                return value
            assert time.monotonic() < deadline, f"not true in {timeout} s: {expression}"
            await asyncio.sleep(0.25)

    async def screenshot(self) -> Image.Image:
        shot = await self.send("Page.captureScreenshot", format="png")
        data = base64.b64decode(shot["data"])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        image = Image.open(io.BytesIO(data))
        image.load()
        return image


TabOpener = Callable[[], contextlib.AbstractAsyncContextManager[Tab]]


@contextlib.asynccontextmanager
async def browser(tmp: Path) -> AsyncIterator[TabOpener]:
    """A headless Chromium; yields a function opening a new tab (an async context manager).
    Debian's command is a shell script around the real binary, and the browser has helper
    processes: all run in a session of their own, killed together at the end."""
    port = _free_port()
    with (tmp / "chromium.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                chromium_binary(),
                *("--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"),
                *("--disable-extensions", "--disable-background-networking", "--mute-audio"),
                *("--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={port}"),
                f"--user-data-dir={tmp / 'chromium'}",
                f"--window-size={WIDTH},{HEIGHT}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/json/version")).status_code == 200:
                        break
                assert proc.poll() is None, (tmp / "chromium.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "chromium is not listening"
                await asyncio.sleep(0.1)

            @contextlib.asynccontextmanager
            async def tab() -> AsyncIterator[Tab]:
                target = (await client.put("/json/new?about:blank")).json()
                async with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
                    yield Tab(ws)

            yield tab
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _pixels(image: Image.Image, box: tuple[int, int, int, int], rgb: tuple[int, int, int]) -> int:
    """Pixels of ``box`` (left, top, right, bottom) within 12 per channel of ``rgb``."""
    region = image.convert("RGB").crop(box)
    total = 0
    for n, px in region.getcolors(region.width * region.height) or []:
        assert isinstance(px, tuple)
        if all(abs(a - b) <= 12 for a, b in zip(px, rgb, strict=True)):
            total += n
    return total


def _rect(value: dict[str, float]) -> tuple[int, int, int, int]:
    x, y = int(value["x"]), int(value["y"])
    return x, y, x + int(value["width"]), y + int(value["height"])


# -- a real gateway ----------------------------------------------------------------------------


@pytest.fixture
def schema_dsn(services: Services) -> Iterator[str]:
    schema = asyncio.run(create_schema(services.dsn, "silkgate_status"))
    yield with_search_path(services.dsn, schema)
    asyncio.run(drop_schema(services.dsn, schema))


class Gateway(RunProcess):
    """``silkgate run`` with GB/T 32960 and JT/T 808 listeners and [metrics] on a free port."""

    def __init__(self, tmp: Path, dsn: str, *args: str) -> None:
        self.ports = {"gbt32960": _free_port(), "jt808": _free_port()}
        listeners = "".join(
            f'[listeners.{p}]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
            for p, port in self.ports.items()
        )
        config = tmp / "silkgate.toml"
        config.write_text(
            f'[database]\ndsn = "{dsn}"\n[spool]\npath = "{tmp / "spool"}"\n'
            f"[pipeline]\nbatch_age_ms = 50\n{listeners}[metrics]\nenabled = true\nport = 0\n"
        )
        super().__init__(config, *args)

    def base(self) -> str:
        """``http://127.0.0.1:PORT`` of /metrics and /status, once it listens."""
        return self.metrics_url().removesuffix("/metrics")

    def stop(self) -> int:
        """SIGINT unless it has exited (SIGKILL when that does not end it); the exit status."""
        if self.proc.poll() is None:
            try:
                return super().stop()
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.wait()


def simulate(gw: Gateway, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway.cli", "simulate", "--host", "127.0.0.1"),
            *("--gbt-port", str(gw.ports["gbt32960"]), "--jt-port", str(gw.ports["jt808"])),
            *(*args, "--quiet"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/tmp",
    )


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=20) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        data: dict[str, Any] = json.loads(resp.read())
        return data


def _devices(dsn: str) -> set[str]:
    async def go() -> set[str]:
        conn = await asyncpg.connect(dsn)
        try:
            return {r[0] for r in await conn.fetch("SELECT DISTINCT device_id FROM positions")}
        finally:
            await conn.close()

    return asyncio.run(go())


def test_status_page_in_chromium(schema_dsn: str, tmp_path: Path) -> None:
    gw = Gateway(tmp_path, schema_dsn)
    sim: subprocess.Popen[str] | None = None
    try:
        base = gw.base()
        gw.wait_line(lambda ln: ln.startswith("listening: jt808 on "))
        sim = simulate(gw, "--gbt", "3", "--jt", "3", "--interval", "0.2", "--duration", "60")
        shot = asyncio.run(_look_at_the_page(f"{base}/status", tmp_path))
        # what the page drew is what the store holds: one dot per terminal
        dots: list[dict[str, Any]] = shot["dots"]
        assert {d["device"] for d in dots} == _devices(schema_dsn)
        assert len(dots) == 6
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(30)
        gw.stop()


async def _look_at_the_page(url: str, tmp: Path) -> dict[str, Any]:
    async with browser(tmp) as new_tab, new_tab() as tab:
        await tab.open(url)
        # frames counted, a rate measured, six vehicles on the map
        await tab.wait_for(
            "Number(document.getElementById('kpi-frames').dataset.value) > 0"
            " && !document.querySelector('#kpi-frames .sub').textContent.includes('measuring')"
            " && document.querySelectorAll('#map circle.dot').length === 6"
        )
        texts = await tab.evaluate(
            "({health: document.getElementById('health').textContent,"
            " protocols: document.getElementById('protocols').textContent,"
            " frames: document.querySelector('#kpi-frames .value').textContent,"
            " note: document.getElementById('map-note').textContent,"
            " vehicles: document.querySelectorAll('#vehicles tbody tr').length})"
        )
        assert texts["health"] == "running", texts
        assert "gbt32960" in texts["protocols"] and "jt808" in texts["protocols"], texts
        assert re.fullmatch(r"[\d,]+", texts["frames"]) and texts["frames"] != "0", texts
        assert texts["note"].startswith("6 vehicles with a fix in the last 24"), texts
        assert texts["vehicles"] == 6, texts
        # freeze the page (no more polls) so that the screenshot is what is measured below:
        # a poll already under way renders once more within the poll interval
        await tab.evaluate("window.fetch = () => new Promise(() => {}); true")
        await asyncio.sleep(2.5)
        geometry = await tab.evaluate(
            "({map: document.getElementById('map').getBoundingClientRect().toJSON(),"
            " header: document.querySelector('header').getBoundingClientRect().toJSON(),"
            " dots: [...document.querySelectorAll('#map circle.dot')].map(c => {"
            "   const r = c.getBoundingClientRect();"
            "   return {x: r.x + r.width / 2, y: r.y + r.height / 2, cls: c.getAttribute('class'),"
            "           device: c.dataset.device}; })})"
        )
        image = await tab.screenshot()
        image.save(tmp / "status.png")
        # nothing came from anywhere but the gateway, and the script raised nothing
        origin = url.removesuffix("/status")
        assert all(u.startswith((origin, "data:")) for u in tab.requests), tab.requests
        assert not tab.errors, tab.errors
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    rgb = image.convert("RGB")
    assert len(rgb.getcolors(WIDTH * HEIGHT) or []) > 50  # not a blank page
    assert _pixels(rgb, _rect(geometry["header"]), HEADER) > 0.8 * WIDTH * 40
    box = _rect(geometry["map"])
    assert box[2] - box[0] > 600 and box[3] - box[1] > 300, box
    dot_px = _pixels(rgb, box, GBT) + _pixels(rgb, box, JT)
    assert dot_px >= 40, dot_px  # a dot of radius 5 is about 60 pixels of its colour
    top = geometry["dots"][-1]  # drawn last: nothing covers it
    colour = GBT if "p-gbt32960" in top["cls"] else JT
    x, y = round(top["x"]), round(top["y"])
    assert x in range(box[0], box[2]) and y in range(box[1], box[3]), (top, box)
    assert _pixels(rgb, (x - 1, y - 1, x + 2, y + 2), colour) == 9, rgb.getpixel((x, y))
    return dict(geometry)


def test_supervisor_serves_the_status_page(schema_dsn: str, tmp_path: Path) -> None:
    gw = Gateway(tmp_path, schema_dsn, "--workers", "2")
    try:
        base = gw.base()
        served = [ln for ln in gw.lines if "metrics: " in ln]
        assert served == [f"supervisor: metrics: {base}/metrics"]  # no worker serves
        for i in (0, 1):
            gw.wait_line(lambda ln: ln.startswith(f"[w{i}] listening: jt808"))  # noqa: B023
        sim = simulate(gw, "--gbt", "4", "--frames", "5", "--interval", "0.05", "--seed", "7")
        _, err = sim.communicate(timeout=60)
        assert sim.returncode == 0, err
        sent = 4 * (5 + 2)  # a login, five reports, a logout each
        deadline = time.monotonic() + 20
        while True:
            data = get_json(f"{base}/status.json")
            done = data["totals"]["frames"] == sent and data["totals"]["connections"] == 0
            if done and len(data["map"]["devices"]) == 4:
                break
            assert time.monotonic() < deadline, data
            time.sleep(0.3)
        assert [(w["worker"], w["up"]) for w in data["workers"]] == [(0, True), (1, True)]
        (gbt,) = [p for p in data["protocols"] if p["protocol"] == "gbt32960"]
        assert gbt["frames"] == sent and gbt["connections"] == 0
        assert data["map"]["state"] == "ok"
        with urllib.request.urlopen(f"{base}/status", timeout=10) as resp:
            html = resp.read().decode()
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        # self-contained: no URL of another host anywhere in the page
        for name in ("status", "status.js", "status.css"):
            with urllib.request.urlopen(f"{base}/{name}", timeout=10) as resp:
                text = resp.read().decode()
            text = text.replace("http://www.w3.org/2000/svg", "")  # a namespace, not loaded
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), name
        assert 'src="status.js"' in html
    finally:
        gw.stop()


# -- the page on seeded positions, and with the database away ----------------------------------

NOW = datetime.now(UTC)
EVIL = ['<img src=x onerror="window.pwned=1">', '"><script>window.pwned=2</script>']


@pytest.fixture(scope="module")
def positions_dsn(services: Services) -> Iterator[str]:
    for dsn in migrated_schema(services.dsn, "silkgate_status_pos"):
        asyncio.run(_seed_positions(dsn))
        yield dsn


async def _seed_positions(dsn: str) -> None:
    rows: list[tuple[Any, ...]] = []
    for i, device in enumerate(["LPOS00000000000A", "LPOS00000000000B", *EVIL]):
        for k in range(5):  # the newest is k = 4
            t = NOW - timedelta(minutes=10 - k)
            rows.append((t, device, "gbt32960", 13.7 + 0.01 * i, 100.5 + 0.001 * k, True, 30.0))
    # A: a newer fix that is not valid, and one with no coordinates: neither is the last
    rows.append((NOW - timedelta(minutes=1), "LPOS00000000000A", "gbt32960", 0.0, 0.0, False, 0))
    rows.append((NOW - timedelta(seconds=30), "LPOS00000000000A", "gbt32960", None, None, True, 0))
    rows.append((NOW - timedelta(minutes=3), "013900000001", "jt808", 13.6, 100.6, True, 55.5))
    rows.append((NOW - timedelta(hours=30), "013900000002", "jt808", 13.5, 100.7, True, 0))  # old
    rows.append((NOW - timedelta(minutes=5), "013900000003", "jt808", 1.0, 1.0, False, 0))  # no fix
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "positions",
            records=[(*r[:3], r[0], *r[3:], False) for r in rows],
            columns=[
                *("time", "device_id", "protocol", "received_at", "lat", "lon"),
                *("fix_valid", "speed_kmh", "reissue"),
            ],
        )
    finally:
        await conn.close()


def _snapshots() -> list[Snapshot]:
    b = SnapshotBuilder()
    b.add("silkgate_frames_total", 42, protocol="gbt32960", kind="realtime")
    b.add("silkgate_connections", 3, protocol="gbt32960")
    b.add("silkgate_dead_letters_total", 2, protocol="gbt32960", reason="bad_checksum")
    snap = Snapshot(worker=0, pid=os.getpid(), time=time.time(), metrics=b.metrics())
    return merge([WorkerState(0, snap.pid)], {0: snap}, snap.time, 5)


def _dead_dsn() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://silkgate:secretpw@127.0.0.1:{port}/silkgate"


async def _served(page: StatusPage) -> MetricsHttp:
    http = MetricsHttp("127.0.0.1", 0, lambda: "", page.pages())
    await http.start()
    return http


@pytest.mark.asyncio
async def test_page_shows_device_ids_as_text_and_a_database_away(
    positions_dsn: str, tmp_path: Path
) -> None:
    good = StatusPage(_snapshots, LastPositions(positions_dsn))
    away = StatusPage(_snapshots, LastPositions(_dead_dsn(), connect_timeout_s=1.0))
    servers = [await _served(good), await _served(away)]
    try:
        async with browser(tmp_path) as new_tab:
            async with new_tab() as tab:
                await tab.open(f"http://127.0.0.1:{servers[0].port}/status")
                await tab.wait_for("document.querySelectorAll('#map circle.dot').length === 5")
                seen = await tab.evaluate(
                    "({pwned: window.pwned === undefined ? null : window.pwned,"
                    " imgs: document.querySelectorAll('img').length,"
                    " scripts: document.querySelectorAll('script').length,"
                    " devices: [...document.querySelectorAll('#map circle.dot')]"
                    "   .map(c => c.dataset.device).sort(),"
                    " titles: [...document.querySelectorAll('#map circle.dot title')]"
                    "   .map(t => t.textContent),"
                    " cells: [...document.querySelectorAll('#vehicles tbody td:first-child')]"
                    "   .map(td => td.textContent)})"
                )
                assert not tab.errors, tab.errors
            assert seen["pwned"] is None and seen["imgs"] == 0 and seen["scripts"] == 1, seen
            expected = sorted(["LPOS00000000000A", "LPOS00000000000B", *EVIL, "013900000001"])
            assert seen["devices"] == expected
            assert sorted(seen["cells"]) == expected
            assert any(t.startswith(EVIL[0] + " (gbt32960)") for t in seen["titles"]), seen
            async with new_tab() as tab:
                await tab.open(f"http://127.0.0.1:{servers[1].port}/status")
                await tab.wait_for("document.getElementById('map').dataset.state === 'unavailable'")
                seen = await tab.evaluate(
                    "({map: document.getElementById('map').textContent,"
                    " health: document.getElementById('health').textContent,"
                    " frames: document.querySelector('#kpi-frames .value').textContent,"
                    " errors: document.getElementById('errors').textContent,"
                    " box: document.getElementById('map').getBoundingClientRect().toJSON()})"
                )
                image = await tab.screenshot()
                assert not tab.errors, tab.errors
        assert "Database unavailable" in seen["map"], seen
        assert "secretpw" not in seen["map"]
        assert seen["health"] == "database unavailable" and seen["frames"] == "42", seen
        assert "bad_checksum" in seen["errors"], seen  # the metrics do not need the database
        box = _rect(seen["box"])
        assert _pixels(image, box, ALERT_BOX) > 5000  # the banner across the map
        assert _pixels(image, box, ALERT_TEXT) > 50  # and its red text
    finally:
        for server in servers:
            await server.close()
        await good.close()
        await away.close()


class Proxy:
    """A TCP proxy to the database that the test can take away (and bring back)."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.port = _free_port()
        self.dsn = urlunsplit(
            parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{self.port}")
        )
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()


@pytest.mark.asyncio
async def test_last_positions(positions_dsn: str) -> None:
    proxy = Proxy(positions_dsn)
    await proxy.start()
    lp = LastPositions(proxy.dsn, cache_s=0.5, retry_s=0.5, connect_timeout_s=1.0)
    try:
        answer = await lp.get()
        assert answer.state == "ok" and not answer.truncated
        by_id = {d["id"]: d for d in answer.devices}
        assert set(by_id) == {"LPOS00000000000A", "LPOS00000000000B", *EVIL, "013900000001"}
        a = by_id["LPOS00000000000A"]  # its newest valid fix, not the later invalid ones
        assert (a["lat"], a["lon"], a["speed_kmh"]) == (13.7, 100.504, 30.0)
        assert a["time"] == pytest.approx((NOW - timedelta(minutes=6)).timestamp(), abs=0.01)
        assert by_id["013900000001"]["protocol"] == "jt808"
        assert await lp.get() is answer  # cached
        await asyncio.sleep(0.6)
        assert await lp.get() is not answer
        # the database goes away: unavailable, with the last good devices and their time
        read_at = (await lp.get()).read_at
        await proxy.stop()
        await asyncio.sleep(0.6)
        broken = await lp.get()
        assert broken.state == "unavailable" and broken.error, broken
        assert len(broken.devices) == 5 and broken.read_at == read_at
        await proxy.start()  # back: a new connection, after retry_s
        await asyncio.sleep(0.6)
        assert (await lp.get()).state == "ok"
    finally:
        await lp.close()
        await proxy.stop()
    few = LastPositions(positions_dsn, max_devices=2)
    try:
        answer = await few.get()
        assert answer.truncated and len(answer.devices) == 2
    finally:
        await few.close()


@pytest.mark.asyncio
async def test_database_away() -> None:
    lp = LastPositions(_dead_dsn(), connect_timeout_s=1.0, cache_s=0.0, retry_s=30.0)
    started = time.monotonic()
    answer = await lp.get()
    assert time.monotonic() - started < 3.0
    assert answer.state == "unavailable" and answer.devices == [] and answer.read_at == 0
    assert "secretpw" not in answer.error and answer.error, answer
    started = time.monotonic()
    again = await lp.get()  # within retry_s: no new connection attempt
    assert time.monotonic() - started < 0.1 and again.state == "unavailable"
    assert again.error == answer.error


# -- the summary -------------------------------------------------------------------------------


def _snap(worker: int, pid: int, t: float, frames: float, **extra: float) -> Snapshot:
    b = SnapshotBuilder()
    b.add("silkgate_frames_total", frames, protocol="gbt32960", kind="realtime")
    b.add("silkgate_records_total", 2 * frames, protocol="gbt32960")
    b.add("silkgate_rows_committed_total", 3 * frames, table="raw_frames")
    b.add("silkgate_queue_rows", extra.get("queued", 0), table="positions")
    b.add("silkgate_spool_bytes", extra.get("spool", 0))
    b.add("silkgate_spool_max_bytes", 1000)
    b.add("silkgate_spooling", 1 if extra.get("spool") else 0)
    b.add("silkgate_dead_letters_total", 3, protocol="gbt32960", reason="bad_checksum")
    b.add("silkgate_connections_closed_total", 10, protocol="gbt32960", reason="peer_closed")
    b.add("silkgate_connections_closed_total", 2, protocol="gbt32960", reason="idle_timeout")
    b.add("silkgate_connections_refused_total", 1, protocol="gbt32960", reason="max_connections")
    b.add("silkgate_rows_rejected_total", 0)
    return Snapshot(worker=worker, pid=pid, time=t, started=t - 60, metrics=b.metrics())


def test_summary_rates_errors_and_workers() -> None:
    rates = Rates()

    def at(t: float, snaps: list[Snapshot], workers: list[WorkerState]) -> dict[str, Any]:
        own = {s.worker: s for s in snaps}
        return summarize(merge(workers, own, t, 5.0), rates, t)

    both = [WorkerState(0, 100), WorkerState(1, 200)]
    first = at(1000.0, [_snap(0, 100, 1000, 100), _snap(1, 200, 1000, 50)], both)
    assert first["rates"] is None  # one snapshot each: nothing measured yet
    assert first["totals"]["frames"] == 150 and first["totals"]["dead_letters"] == 6
    # two seconds on: worker 0 counted 40 more; worker 1 was restarted (new pid, from 0)
    snaps = [_snap(0, 100, 1002, 140, queued=7), _snap(1, 201, 1002, 5, spool=300)]
    second = at(1002.0, snaps, [WorkerState(0, 100), WorkerState(1, 201, restarts=1)])
    r = second["rates"]
    assert r["frames"] == 20.0 and r["frames:gbt32960"] == 20.0  # not 20 - 45 / 2
    assert r["records"] == 40.0 and r["rows_committed"] == 60.0 and r["dead_letters"] == 0.0
    assert second["protocols"][0]["frames_per_s"] == 20.0
    assert second["totals"]["frames"] == 145
    assert second["queue"] == {"rows": 7, "by_table": {"positions": 7}}
    spool = second["spool"]
    assert (spool["bytes"], spool["max_bytes"], spool["spooling"]) == (300, 2000, True)
    assert [(w["worker"], w["up"], w["pid"], w["restarts"]) for w in second["workers"]] == [
        (0, True, 100, 0),
        (1, True, 201, 1),
    ]
    errors = [(e["what"], e["protocol"], e["reason"], e["count"]) for e in second["errors"]]
    assert errors == [
        ("dead letter", "gbt32960", "bad_checksum", 6),
        ("connection closed", "gbt32960", "idle_timeout", 4),
        ("connection refused", "gbt32960", "max_connections", 2),
    ]  # peer_closed is no error, nor a zero count
    # worker 1 down: its snapshot is not served, the page says so
    third = at(1004.0, [_snap(0, 100, 1004, 180)], [WorkerState(0, 100), WorkerState(1, None)])
    assert [(w["worker"], w["up"]) for w in third["workers"]] == [(0, True), (1, False)]
    assert third["rates"]["frames"] == 20.0 and third["totals"]["frames"] == 180
    json.dumps(third)  # JSON-able as it is


# -- HTTP --------------------------------------------------------------------------------------


async def _request(port: int, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status, *fields = head.decode().split("\r\n")
    return status, {k.lower(): v for k, _, v in (f.partition(": ") for f in fields)}, body


@pytest.mark.asyncio
async def test_routes() -> None:
    page = StatusPage(_snapshots, LastPositions(_dead_dsn(), connect_timeout_s=0.5))

    async def broken() -> tuple[int, dict[str, str], bytes]:
        raise RuntimeError("a bug")

    http = MetricsHttp("127.0.0.1", 0, lambda: "m 1\n", {**page.pages(), "/broken": broken})
    await http.start()
    try:
        status, headers, body = await _request(http.port, b"GET /status HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK" and body.startswith(b"<!doctype html>")
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        status, headers, body = await _request(http.port, b"HEAD /status.js HTTP/1.1\r\n\r\n")
        assert status.endswith("200 OK") and body == b""
        assert headers["content-type"] == "text/javascript; charset=utf-8"
        assert int(headers["content-length"]) > 1000
        status, headers, _ = await _request(http.port, b"GET /status.css?v=1 HTTP/1.1\r\n\r\n")
        assert status.endswith("200 OK") and headers["content-type"].startswith("text/css")
        status, headers, body = await _request(http.port, b"GET /status.json HTTP/1.1\r\n\r\n")
        data = json.loads(body)
        assert headers["cache-control"] == "no-store"
        assert data["totals"]["frames"] == 42 and data["map"]["state"] == "unavailable"
        status, _, body = await _request(http.port, b"GET / HTTP/1.1\r\n\r\n")
        assert b"/metrics" in body and b"/status" in body
        status, _, _ = await _request(http.port, b"GET /status.txt HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 404 Not Found"
        status, _, _ = await _request(http.port, b"POST /status HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 405 Method Not Allowed"
        status, _, _ = await _request(http.port, b"GET /broken HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 500 Internal Server Error"
        status, _, body = await _request(http.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status.endswith("200 OK") and body == b"m 1\n"
    finally:
        await http.close()
        await page.close()
