#!/usr/bin/env bash
# The main job on a fresh machine: install, start Mosquitto and TimescaleDB, and run the gateway
# with the built-in simulators feeding it: trucks over TCP, OCPP chargers, and swap stations and
# charger site controllers over MQTT; live counts on the terminal, Ctrl-C to stop.
# Usage: scripts/run.sh [silkgate run options]
#   (default: --simulate 200 --chargers 20 --swap-stations 5 --charger-sites 2)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-venv.sh
bash deploy/services.sh start
export SILKGATE_DB_PASSWORD=${SILKGATE_DB_PASSWORD:-silkgate}
if [ $# -eq 0 ]; then
    set -- --simulate 200 --chargers 20 --swap-stations 5 --charger-sites 2
fi
exec .venv/bin/silkgate run --config deploy/local/silkgate.toml "$@"
