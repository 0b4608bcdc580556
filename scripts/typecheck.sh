#!/usr/bin/env bash
# mypy over the installed import names (gateway, gateway.codecs, gateway.adapters map to three
# folders, so module names cannot be derived from file paths), then over tests and benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
mods=()
while IFS= read -r f; do
    m=${f%.py}; m=${m%/__init__}; m=${m//\//.}
    case $m in
        codecs*) m=gateway.$m ;;
        adapters*) m=gateway.$m ;;
    esac
    mods+=(-m "$m")
done < <(find gateway codecs adapters -name '*.py' | sort)
.venv/bin/mypy "${mods[@]}"
.venv/bin/mypy
