#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install silkgate with its dev extra; building the Cython
# extensions is part of the install and a failed build fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for cand in python3.13 python3.12 python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            PY=$cand
            break
        fi
    done
fi
[ -n "$PY" ] || { echo "setup-venv: Python 3.11+ not found" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Build requirements first so the editable install can build in this environment.
.venv/bin/python -m pip install -q --upgrade pip 'setuptools>=77' wheel 'Cython>=3.0'
.venv/bin/python -m pip install -q --no-build-isolation --config-settings editable_mode=strict -e '.[dev]'
# Rebuild the extensions in place: an editable install does not rebuild changed .pyx files.
.venv/bin/python setup.py -q build_ext --inplace >/dev/null
