"""install.py prepares its own model folder inside a ComfyUI tree, leaves shared ones absent and never installs
anything."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _install_module():
    spec = importlib.util.spec_from_file_location("joyvasa_install", REPO / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_creates_model_folders_inside_comfyui(tmp_path):
    install = _install_module()
    pack = tmp_path / "ComfyUI" / "custom_nodes" / "joyvasa"
    pack.mkdir(parents=True)
    (tmp_path / "ComfyUI" / "main.py").write_text("", encoding="utf-8")
    models = install.find_models_dir(pack)
    assert models == (tmp_path / "ComfyUI" / "models").resolve()
    created = install.prepare_model_folders(models)
    assert {p.relative_to(models).as_posix() for p in created} == {"joyvasa"}
    assert install.prepare_model_folders(models) == []
    # shared folders other packs download into only when they are absent stay absent
    assert not (models / "liveportrait").exists() and not (models / "insightface").exists()


def test_install_outside_comfyui_touches_nothing(tmp_path):
    assert _install_module().find_models_dir(tmp_path / "a" / "b") is None


def test_install_never_runs_pip():
    text = (REPO / "install.py").read_text(encoding="utf-8")
    assert "subprocess" not in text and "pip install" not in text.replace("`pip install -r requirements.txt`", "")
