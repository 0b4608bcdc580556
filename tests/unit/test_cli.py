"""`silkgate decode` and `silkgate info` end to end."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main


def _hex(vectors: list[dict[str, Any]], vid: str) -> str:
    return str(next(v["hex"] for v in vectors if v["id"] == vid))


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[Any], str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


def test_decode_gbt32960_realtime(
    gbt_vectors: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    status, docs, err = _run(["decode", _hex(gbt_vectors, "GB-02")], capsys)
    assert status == 0 and err == ""
    (doc,) = docs
    assert doc["protocol"] == "gbt32960" and doc["version"] == 2016
    assert doc["command"] == "0x02" and doc["device_id"] == "ERR08030000000000"
    body = doc["body"]
    assert body["time"]["utc"] == "2018-06-23T04:05:02Z"
    vehicle = next(b for b in body["blocks"] if b["kind"] == "VehicleData")
    assert vehicle["speed_kmh"] == 5.0 and vehicle["soc_pct"] == 50


def test_decode_sentinels_are_null(
    gbt_vectors: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    status, (doc,), _ = _run(
        ["decode", "--protocol", "gbt32960", _hex(gbt_vectors, "GB-13")], capsys
    )
    assert status == 0
    vehicle = next(b for b in doc["body"]["blocks"] if b["kind"] == "VehicleData")
    assert vehicle["speed_kmh"] is None and vehicle["quality"]["speed_kmh"] == "invalid"


def test_decode_jt808_with_spaces_and_normalize(
    jt_vectors: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    text = _hex(jt_vectors, "JT-01")
    spaced = " ".join(text[i : i + 2] for i in range(0, len(text), 2))
    status, (doc,), _ = _run(["decode", spaced], capsys)
    assert status == 0
    assert doc["protocol"] == "jt808" and doc["command"] == "0x0200"
    assert doc["device_id"] == "011223344550"
    status, docs, _ = _run(["decode", "--normalize", text], capsys)
    assert status == 0
    assert [d["record"] for d in docs] == ["Position", "Alarm"]
    assert docs[0]["time"] == "2018-07-15T02:10:10Z"


def test_decode_bad_frame_reports_and_continues(
    jt_vectors: list[dict[str, Any]],
    gbt_vectors: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [_hex(jt_vectors, "JT-18"), "zz-not-hex", "", _hex(gbt_vectors, "GB-08")]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    status, docs, err = _run(["decode", "-"], capsys)
    assert status == 1
    assert [d["command"] for d in docs] == ["0x07"]
    assert "frame 1:" in err and "frame 2: bad_input" in err


def test_console_script_info(tmp_path: Path) -> None:
    # Outside the repo root: there, ``import gateway`` would find the source folder first.
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "info"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    info = json.loads(proc.stdout)
    assert set(info["codecs"]) == {"gbt32960", "jt808"}


@pytest.mark.asyncio
async def test_simulate_prints_a_json_summary(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from platform_stub import PlatformStub

    async with PlatformStub() as stub:
        argv = ["simulate", "--gbt", "2", "--jt", "2", "--frames", "3", "--interval", "0.02"]
        argv += ["--gbt-port", str(stub.gbt_port), "--jt-port", str(stub.jt_port)]
        argv += ["--version", "2025", "--version", "2019", "--seed", "7"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,  # outside the repo root (see test_console_script_info)
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    summary = json.loads(lines[-1])
    assert summary["generated"] == summary["sent"] == summary["acked"] == 12
    assert summary["logins"] == 4 and summary["unacked"] == 0 and summary["errors"] == 0
    assert summary["ack_latency_ms"]["p99"] is not None
    assert summary["gbt32960"]["terminals"] == 2 and summary["jt808"]["registrations"] == 2
    assert len(stub.reports) == 12 and all(r.acked for r in stub.reports)
    assert "online" in err.decode()  # the live counts


def test_simulate_rejects_a_bad_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--gbt", "1", "--window", "0", "--quiet"]) == 2
    assert "SimConfig.window" in capsys.readouterr().err
