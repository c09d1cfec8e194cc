"""The two-layer rule: joyvasa_core never imports ComfyUI, nodes never hold the maths."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMFY_MODULES = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution", "latent_preview"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_never_imports_comfyui():
    files = sorted((REPO / "joyvasa_core").rglob("*.py"))
    assert len(files) > 5, "joyvasa_core should hold the library"
    offenders = {str(p.relative_to(REPO)): sorted(_imported_roots(p) & COMFY_MODULES) for p in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"joyvasa_core must not import ComfyUI: {offenders}"


def test_the_rule_catches_a_comfy_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import folder_paths\nfrom comfy.utils import ProgressBar\n", encoding="utf-8")
    assert _imported_roots(bad) & COMFY_MODULES == {"folder_paths", "comfy"}


def test_pack_metadata_is_registry_ready():
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    project = meta["project"]
    assert project["version"].count(".") == 2
    assert "comfyui" not in project["name"].lower()
    assert meta["tool"]["comfy"]["PublisherId"]
    assert project["urls"]["Repository"].startswith("https://")
    reqs = (REPO / "requirements.txt").read_text(encoding="utf-8").split()
    names = {r.split(">")[0].split("=")[0].split("<")[0].lower() for r in reqs}
    assert not names & {"torch", "torchvision", "torchaudio"}, "ComfyUI-Manager must never touch torch"
    assert {n.split(">")[0] for n in project["dependencies"]} == {r.split(">")[0] for r in reqs}
