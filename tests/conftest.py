"""Shared fixtures: both codec implementations, and the sample frames in ../shared/vectors/."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import settings

# CI runs a fixed set of examples (a red CI must be reproducible, and a submission whose CI fails
# does not land); local runs explore new random examples every time.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SILKGATE_SHARED", REPO.parent / "shared"))
IMPLEMENTATIONS = ("reference", "_accel")


def load_vectors(name: str) -> list[dict[str, Any]]:
    """The vectors of ../shared/vectors/<name>.json (a missing file is an error, not a skip)."""
    path = SHARED / "vectors" / f"{name}.json"
    with path.open(encoding="utf-8") as fh:
        vectors: list[dict[str, Any]] = json.load(fh)
    return vectors


def vector(name: str, vector_id: str) -> dict[str, Any]:
    """One vector by its id, e.g. ``vector("gbt32960", "GB-12")``."""
    for v in load_vectors(name):
        if v["id"] == vector_id:
            return v
    raise KeyError(vector_id)


def vector_bytes(name: str, vector_id: str) -> bytes:
    return bytes.fromhex(vector(name, vector_id)["hex"])


@pytest.fixture(params=IMPLEMENTATIONS, ids=["python", "cython"])
def gbt32960(request: pytest.FixtureRequest) -> ModuleType:
    """The GB/T 32960 codec, once as the pure-Python reference and once as the accelerator."""
    return importlib.import_module(f"gateway.codecs.gbt32960.{request.param}")


@pytest.fixture(params=IMPLEMENTATIONS, ids=["python", "cython"])
def jt808(request: pytest.FixtureRequest) -> ModuleType:
    """The JT/T 808 codec, once as the pure-Python reference and once as the accelerator."""
    return importlib.import_module(f"gateway.codecs.jt808.{request.param}")


@pytest.fixture(scope="session")
def gbt_vectors() -> list[dict[str, Any]]:
    """The GB/T 32960 sample frames with their expected values."""
    return load_vectors("gbt32960")


@pytest.fixture(scope="session")
def jt_vectors() -> list[dict[str, Any]]:
    """The JT/T 808 sample frames with their expected values."""
    return load_vectors("jt808")
