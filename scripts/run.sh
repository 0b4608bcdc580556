#!/usr/bin/env bash
# The main job on a fresh machine: install, start Mosquitto and TimescaleDB, and run the gateway
# with the built-in simulator feeding it trucks; live counts on the terminal, Ctrl-C to stop.
# Usage: scripts/run.sh [silkgate run options]   (default: --simulate 200 --chargers 20)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-venv.sh
bash deploy/services.sh start
export SILKGATE_DB_PASSWORD=${SILKGATE_DB_PASSWORD:-silkgate}
if [ $# -eq 0 ]; then
    set -- --simulate 200 --chargers 20
fi
exec .venv/bin/silkgate run --config deploy/local/silkgate.toml "$@"
