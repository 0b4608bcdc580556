"""Pick the Cython accelerator or the pure-Python reference for a codec package.

The accelerator is used unless ``SILKGATE_NO_EXTENSIONS=1``. A missing accelerator is an
ImportError, never a silent fall-back: an install that did not build the extensions is broken.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

NO_EXTENSIONS_ENV = "SILKGATE_NO_EXTENSIONS"


def extensions_disabled() -> bool:
    """True when the environment asks for the pure-Python reference codecs."""
    return os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0")


def load(package: str) -> ModuleType:
    """Return ``<package>._accel`` or, when extensions are disabled, ``<package>.reference``."""
    if extensions_disabled():
        return importlib.import_module(f"{package}.reference")
    try:
        return importlib.import_module(f"{package}._accel")
    except ImportError as exc:
        raise ImportError(
            f"the Cython accelerator {package}._accel is not built ({exc}); reinstall silkgate "
            f"with a C compiler, or set {NO_EXTENSIONS_ENV}=1 to run the pure-Python reference"
        ) from exc


def implementation_name(module: ModuleType) -> str:
    """``"cython"`` or ``"python"`` for a module returned by :func:`load`."""
    return "cython" if module.__name__.endswith("._accel") else "python"
