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
# The browser checks again on the newest web UI ComfyUI 0.3.75 can serve (tests/comfyui/requirements-frontend-newest.txt;
# 83 s beside 62 s for the 1.32.9 pass on 2 quiet cores). Only on a whole run: arguments narrow the run to what they name.
if [ $# = 0 ] && [ "${JOYVASA_SKIP_COMFYUI:-0}" != 1 ] && [ "${JOYVASA_COMFYUI_BROWSER:-1}" != 0 ]; then
  NEWEST="$(sed -n 's/^comfyui-frontend-package==//p' tests/comfyui/requirements-frontend-newest.txt)"
  HOME_DIR="$(cd "${JOYVASA_COMFYUI_HOME:-.comfyui}" && pwd)"
  JOYVASA_COMFYUI_FRONTEND_ROOT="$HOME_DIR/frontends/$NEWEST/comfyui_frontend_package/static" \
    .venv/bin/python -m pytest -q tests/comfyui/test_browser.py tests/comfyui/test_web_extension.py \
    tests/comfyui/test_nodes_browser.py tests/comfyui/test_user_journey.py
fi
