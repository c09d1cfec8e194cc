#!/usr/bin/env bash
# The core's tests on other Pythons and library versions than the main venv's (Python 3.11, torch 2.13.0 CPU):
# imports and layer rules, a whole job through the command line on small networks, and every parity test.
#
#   bash scripts/test_matrix.sh                 # every entry below
#   bash scripts/test_matrix.sh 3.13-newest     # one entry (CI runs this one, after scripts/test.sh)
#
# One venv per entry under $JOYVASA_MATRIX_DIR (default ~/.cache/joyvasa-matrix), kept between runs. Only Python
# 3.11 has a CPU torch wheel on this machine's disk: for another Python the installer takes PyPI's torch, a CUDA
# build (the wheel plus NVIDIA's libraries, about 5.5 GB in the venv); it runs on the CPU all the same. uv installs
# it when there is one (.venv/bin/uv, which scripts/test.sh installs with comfy-cli, or on PATH): it downloads in
# parallel and keeps the wheels in its cache (~/.cache/uv) for the next venv; pip otherwise. uv reads no pip
# configuration, so every version that matters is pinned here. Pythons come from pyenv (~/.pyenv/versions) or PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
MATRIX_DIR="${JOYVASA_MATRIX_DIR:-$HOME/.cache/joyvasa-matrix}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# uv with the system's certificates, as pip uses them (its own bundle fails behind a TLS proxy); older uv: the old name
export UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=1

# name | python | torch | transformers | numpy: "oldest" pins the floors the pack claims (pyproject, README), "newest"
# leaves transformers and numpy to the installer (the newest it finds) and takes torch 2.14.1, the newest pip may
# install on these machines.
ENTRIES=(
  "3.10-oldest|3.10|2.13.0|4.39.3|1.24.4"
  "3.12-newest|3.12|2.14.1||"
  "3.13-newest|3.13|2.14.1||"
)
CORE_TESTS=(tests/test_layout.py tests/test_hardware.py tests/test_pipeline_e2e.py
            tests/test_crop_parity.py tests/test_crop_mesh106.py tests/test_face_bundled.py
            tests/test_liveportrait_keypoints.py tests/test_liveportrait_networks.py
            tests/test_motion_parity.py tests/test_motion_audio_parity.py tests/test_motion_window_features.py)

find_python() {
  local want="$1" v
  for v in "$HOME"/.pyenv/versions/"$want".*; do
    [ -x "$v/bin/python" ] && { echo "$v/bin/python"; return; }
  done
  command -v "python$want" || { echo "no Python $want (pyenv install $want)" >&2; return 1; }
}

find_uv() {
  if [ -x "$ROOT/.venv/bin/uv" ]; then echo "$ROOT/.venv/bin/uv"; else command -v uv || true; fi
}

install_entry() {
  local venv="$1" python="$2" torch="$3" constraints="$4" uv
  uv="$(find_uv)"
  if [ -n "$uv" ]; then
    [ -x "$venv/bin/python" ] || "$uv" venv -q --python "$python" "$venv"
    "$uv" pip install -q --python "$venv/bin/python" -c "$constraints" "torch==$torch" -r requirements-test.txt
  else
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q -c "$constraints" "torch==$torch"
    "$venv/bin/python" -m pip install -q -c "$constraints" -r requirements-test.txt
  fi
}

run_entry() {
  local name="$1" py="$2" torch="$3" transformers="$4" numpy="$5"
  local venv="$MATRIX_DIR/$name" constraints="$MATRIX_DIR/$name.constraints.txt" started
  { echo "torch==$torch"; [ -z "$transformers" ] || echo "transformers==$transformers"
    [ -z "$numpy" ] || echo "numpy==$numpy"; } > "$constraints"
  started=$SECONDS
  install_entry "$venv" "$(find_python "$py")" "$torch" "$constraints"
  echo "== $name: $("$venv/bin/python" -c 'import sys, torch, transformers, numpy
print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"numpy {numpy.__version__}, CPU {torch.backends.cpu.get_cpu_capability()}")') (installed in $((SECONDS - started)) s)"
  started=$SECONDS
  JOYVASA_SKIP_COMFYUI=1 OMP_NUM_THREADS=2 "$venv/bin/python" -m pytest -q "${CORE_TESTS[@]}"
  echo "== $name: tests passed in $((SECONDS - started)) s"
}

mkdir -p "$MATRIX_DIR"
selected=("$@")
for want in "${selected[@]}"; do
  [[ " ${ENTRIES[*]} " == *" $want|"* ]] || { echo "test_matrix: no entry '$want'" >&2; exit 2; }
done
for entry in "${ENTRIES[@]}"; do
  IFS="|" read -r name py torch transformers numpy <<< "$entry"
  if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " == *" $name "* ]]; then
    continue
  fi
  run_entry "$name" "$py" "$torch" "$transformers" "$numpy"
done
