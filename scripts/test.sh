#!/usr/bin/env bash
# The whole test suite: install, lint, type-check, then pytest against both codec implementations.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-venv.sh
# CI must fail when the Cython extensions did not build, never fall back to pure Python.
unset SILKGATE_NO_EXTENSIONS
# -P: not from the repo root's source folder, which has no gateway/codecs
.venv/bin/python -P -c 'import gateway.codecs.gbt32960 as g, gateway.codecs.jt808 as j
assert g.IMPLEMENTATION == j.IMPLEMENTATION == "cython", (g.IMPLEMENTATION, j.IMPLEMENTATION)'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
scripts/typecheck.sh
.venv/bin/pytest "$@"
