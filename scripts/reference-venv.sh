#!/usr/bin/env bash
# Creates the Python venv the reference scripts use (TA-Lib, numpy, vaderSentiment 3.3.2) and
# prints its python. Python >= 3.12 is preferred (3.12 changed float sum(), which VADER uses).
# Usage: PY=$(bash scripts/reference-venv.sh); $PY tests/reference/indicators_reference.py
set -euo pipefail
dir="${CRYPTOFLOW_REFERENCE_VENV:-/tmp/cryptoflow-reference/venv}"
if [ ! -x "$dir/bin/python" ]; then
    base=""
    for c in python3.13 python3.12 "$HOME"/.pyenv/versions/3.13*/bin/python3 \
             "$HOME"/.pyenv/versions/3.12*/bin/python3 python3; do
        if "$c" -c 'import sys; assert sys.version_info >= (3, 8)' >/dev/null 2>&1; then
            base="$c"; break
        fi
    done
    [ -n "$base" ] || { echo "reference-venv: no python3 found" >&2; exit 1; }
    mkdir -p "$(dirname "$dir")"
    "$base" -m venv "$dir" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check \
        "TA-Lib==0.8.2" "numpy>=2" "vaderSentiment==3.3.2" >&2
fi
echo "$dir/bin/python"
