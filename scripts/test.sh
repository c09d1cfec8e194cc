#!/usr/bin/env bash
# Creates .venv (CPU torch first, pinned by constraints.txt), installs what the tests need, runs them.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m parity -k liveportrait`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -r requirements-test.txt
.venv/bin/python -m ruff check .
# A real ComfyUI for tests/comfyui (in .comfyui/, git-ignored). JOYVASA_SKIP_COMFYUI=1 skips it and those tests.
[ "${JOYVASA_SKIP_COMFYUI:-0}" = 1 ] || bash scripts/setup_comfyui.sh
.venv/bin/python -m pytest -q "$@"
