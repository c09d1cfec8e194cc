#!/usr/bin/env bash
# Runs the whole job from the command line, creating .venv on first use (CPU torch first, pinned by constraints.txt).
# Example: bash scripts/run.sh --image portrait.png --audio speech.wav --models models --out talking.mp4
# Many videos: bash scripts/run.sh batch rows.csv --out-dir videos [--ray] (see the README, "Many videos in one run")
# Paths are taken relative to the folder you run it from.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    "$PY" -m venv "$ROOT/.venv"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    "$ROOT/.venv/bin/python" -m pip install -q torch==2.13.0
    "$ROOT/.venv/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -r "$ROOT/requirements.txt"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$ROOT/.venv/bin/python" -m joyvasa_core "$@"
