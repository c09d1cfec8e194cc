"""Run by ComfyUI-Manager after it installs requirements.txt (cwd = this pack's folder).

It prepares this pack's own model folder and checks the environment. It never installs anything: torch belongs to
ComfyUI, and the other dependencies come from requirements.txt. Shared folders are left alone: ComfyUI-LivePortraitKJ
downloads into models/liveportrait and insightface into models/insightface/models/buffalo_l only when those folders
do not exist, so an empty one would break them; this pack's loaders fill them on first use instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

MODEL_FOLDERS = ("joyvasa",)
RUNTIME_MODULES = ("torch", "transformers", "huggingface_hub", "safetensors", "numpy", "cv2", "soundfile", "soxr", "av",
                   "onnxruntime")


def find_models_dir(pack_dir: Path) -> Path | None:
    """ComfyUI/models when this pack sits in ComfyUI/custom_nodes/<pack>, else None."""
    comfy_root = pack_dir.resolve().parent.parent
    if (comfy_root / "custom_nodes").is_dir() and (comfy_root / "main.py").exists():
        return comfy_root / "models"
    return None


def prepare_model_folders(models_dir: Path) -> list[Path]:
    """Create the pack's own folder users drop their checkpoints into; returns the ones it created."""
    created = []
    for name in MODEL_FOLDERS:
        folder = models_dir / name
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            created.append(folder)
    return created


def check_environment() -> list[str]:
    """Problems a user should fix, in words; empty when all is well."""
    problems = []
    for module in RUNTIME_MODULES:
        if importlib.util.find_spec(module) is None:
            problems.append(
                f"Python module '{module}' is missing: run `pip install -r requirements.txt` in {Path.cwd()}."
            )
    return problems


def main() -> int:
    pack_dir = Path(os.getcwd())
    models_dir = find_models_dir(pack_dir)
    if models_dir is None:
        print("[JoyVASA] not inside ComfyUI/custom_nodes: skipping model folders")
    else:
        for folder in prepare_model_folders(models_dir):
            print(f"[JoyVASA] created {folder}")
    problems = check_environment()
    for problem in problems:
        print(f"[JoyVASA] {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
