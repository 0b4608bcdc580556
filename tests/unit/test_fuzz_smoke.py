"""Smoke run of benchmarks/fuzz_codecs.py: a few thousand fuzz inputs through both codecs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_codecs.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_codecs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_smoke(seed: int) -> None:
    fuzz = _load_script()
    # No faulthandler watchdog inside pytest; the per-input soft limit still applies.
    report = fuzz.fuzz(1500, seed=seed, impl="both", hard_limit=0, encoder_seeds=40)
    details = "\n".join(
        f"{f.kind} [{f.protocol}/{f.impl}] {f.data.hex().upper()}\n{f.detail}"
        for f in report.failures
    )
    assert not report.failures, details
    assert report.summary["inputs"] == 1500
    assert report.summary["errors"] == 0
    outcomes = report.summary["outcomes"]
    # The mutations must reach the body parsers: some inputs decode, some fail deep inside.
    assert outcomes.get("gbt32960/ok", 0) > 0
    assert outcomes.get("jt808/ok", 0) > 0


def test_main_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    fuzz = _load_script()
    assert (
        fuzz.main(["--count", "200", "--seed", "3", "--impl", "python", "--hard-limit", "0"]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["bench"] == "fuzz_codecs"
    assert summary["impl"] == "python"
    assert summary["inputs"] == 200
    assert set(summary) >= {"seconds", "per_s", "errors", "rss_growth_mb"}
