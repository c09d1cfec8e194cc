"""The layer rules of docs/architecture.md, one test each ("Who may import whom", the edge objects), and a test that
each rule catches what it forbids."""

from __future__ import annotations

import ast
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (scripts/test_matrix.sh): tomli, pytest's own TOML parser there, is the same
    import tomli as tomllib

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


def _matrix_entries() -> list[dict[str, str]]:
    """scripts/test_matrix.sh's ENTRIES rows: name|python|torch|transformers|numpy."""
    script = (REPO / "scripts" / "test_matrix.sh").read_text(encoding="utf-8")
    block = re.search(r"^ENTRIES=\(\n(.*?)^\)", script, re.S | re.M).group(1)
    keys = ("name", "python", "torch", "transformers", "numpy")
    return [dict(zip(keys, row.split("|"), strict=True)) for row in re.findall(r'"([^"]+)"', block)]


def test_claimed_ranges_are_the_tested_ones():
    """pyproject claims no Python and no floor that scripts/test_matrix.sh (or the main venv, 3.11) does not test."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    entries = _matrix_entries()
    main_python = re.search(r"PYTHON:-python(3\.\d+)", (REPO / "scripts" / "test.sh").read_text(encoding="utf-8"))[1]
    tested = sorted({e["python"] for e in entries} | {main_python}, key=lambda v: tuple(map(int, v.split("."))))
    classified = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if re.fullmatch(r".*Python :: 3\.\d+", c)]
    assert classified == tested and project["requires-python"] == f">={tested[0]}"
    oldest = next(e for e in entries if e["python"] == tested[0])
    floors = dict(re.fullmatch(r"([\w-]+)>=([\d.]+)", d).groups() for d in project["dependencies"])
    for name in ("transformers", "numpy"):
        assert oldest[name].startswith(floors[name] + "."), f"{name}: claimed >={floors[name]}, tested {oldest[name]}"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for e in entries:
        assert f"`{e['name']}`" in readme and f"torch {e['torch']}" in readme, e["name"]


DOMAIN_PACKAGES = ("motion", "liveportrait", "audio", "face")
# Modules of joyvasa_core a domain package may never import: the file readers, the orchestration, the front ends.
DOMAIN_FORBIDDEN = ("checkpoints", "pipeline", "job", "cli", "loading")
# ... and the readers: they build domain objects, never run the pipeline.
CHECKPOINTS_FORBIDDEN = ("pipeline", "job", "cli")


def _core_imports(path: Path, package: tuple[str, ...]) -> set[str]:
    """The ``joyvasa_core`` submodules a file of ``joyvasa_core.<package>`` imports (relative, absolute or inside a
    function), as dotted names below ``joyvasa_core``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
                names = [".".join(target)] if node.module else [".".join(target + [a.name]) for a in node.names]
                found.update(names)
            elif node.module and node.module.startswith("joyvasa_core."):
                found.add(node.module.removeprefix("joyvasa_core."))
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("joyvasa_core.") for a in node.names if a.name.startswith("joyvasa_core."))
    return found


def _forbidden_imports(path: Path, forbidden: tuple[str, ...] = DOMAIN_FORBIDDEN) -> list[str]:
    package = path.relative_to(REPO / "joyvasa_core").parent.parts if path.is_relative_to(REPO) else ("motion",)
    return sorted(m for m in _core_imports(path, package) if m.split(".")[0] in forbidden)


def test_domain_packages_never_import_readers_pipeline_or_cli():
    files = [p for pkg in DOMAIN_PACKAGES for p in sorted((REPO / "joyvasa_core" / pkg).rglob("*.py"))]
    assert len(files) > 20
    offenders = {str(p.relative_to(REPO)): _forbidden_imports(p) for p in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"motion/, liveportrait/, audio/ and face/ must not import {DOMAIN_FORBIDDEN}: {offenders}"


def test_the_domain_rule_catches_relative_and_lazy_imports(tmp_path):
    probe = tmp_path / "probe.py"  # read as a module of joyvasa_core.motion
    probe.write_text(
        "def f():\n    from ..checkpoints.joyvasa import read_motion_template\n"
        "from .. import pipeline\nimport joyvasa_core.cli\nfrom .template import MotionTemplate\n"
        "from ..face.reference import ReferenceFace\n",
        encoding="utf-8",
    )
    assert _forbidden_imports(probe) == ["checkpoints.joyvasa", "cli", "pipeline"]


def test_checkpoints_never_import_the_pipeline_or_front_ends():
    files = sorted((REPO / "joyvasa_core" / "checkpoints").rglob("*.py"))
    assert len(files) > 4
    offenders = {str(p.relative_to(REPO)): _forbidden_imports(p, CHECKPOINTS_FORBIDDEN) for p in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"checkpoints/ reads files into domain objects, never imports {CHECKPOINTS_FORBIDDEN}: " \
                            f"{offenders}"


def test_the_pipeline_never_imports_a_front_end():
    for name in ("pipeline.py", "job.py"):
        path = REPO / "joyvasa_core" / name
        assert "cli" not in {m.split(".")[0] for m in _core_imports(path, ())}, f"{name} imports the command line"


# Calls that read or write a file (builtins, pathlib, safetensors, OpenCV, numpy/torch/pickle serialisation).
FILE_CALLS = {"open", "safe_open", "save_file", "load_file", "read_bytes", "write_bytes", "read_text", "write_text",
              "fromfile", "imread", "imwrite"}
SERIALISERS = {"torch", "np", "numpy", "pickle"}


def _file_methods(source: str) -> list[str]:
    """``Class.method`` of every method that reads or writes a file (a domain object must not: readers do)."""
    found = []
    for cls in (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef)):
        for fn in (n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for call in (c for c in ast.walk(fn) if isinstance(c, ast.Call)):
                f = call.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                base = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
                if name in FILE_CALLS or (base in SERIALISERS and name in ("save", "load", "dump")):
                    found.append(f"{cls.name}.{fn.name}")
    return sorted(set(found))


def test_domain_objects_never_read_or_write_files():
    files = [p for pkg in DOMAIN_PACKAGES for p in sorted((REPO / "joyvasa_core" / pkg).rglob("*.py"))]
    offenders = {str(p.relative_to(REPO)): _file_methods(p.read_text(encoding="utf-8")) for p in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"domain objects do not read files; a reader in checkpoints/ returns them: {offenders}"


def test_the_file_rule_catches_a_saving_method():
    source = ("class Motion:\n    def save(self, path):\n        save_file({}, path)\n"
              "    def load(cls, path):\n        return torch.load(path)\n"
              "    def n(self):\n        return len(self.x)\n")
    assert _file_methods(source) == ["Motion.load", "Motion.save"]


EDGE_OBJECTS = ("LivePortraitModels", "MotionModel", "ReferenceFace", "Appearance", "Speech",
                "MotionSequence", "TargetKeypoints")


def test_edge_objects_are_frozen_dataclasses_in_types():
    import dataclasses
    import inspect

    import joyvasa_core.types as types

    for name in EDGE_OBJECTS:
        cls = getattr(types, name)
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, f"{name} is not a frozen dataclass"
        assert "def __repr__" in inspect.getsource(cls), f"{name} has no one-line repr of its own"
    table = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8").split("## Objects on the graph edges")[1]
    assert all(f"`types.{n}`" in table or f".{n}`" in table for n in EDGE_OBJECTS), "the edge table and the list differ"


MATHS_MODULES = {"torch", "numpy", "cv2", "math", "scipy", "PIL"}
ARITHMETIC = (ast.Mult, ast.Div, ast.FloorDiv, ast.Pow, ast.MatMult, ast.Sub, ast.Mod)


def _maths(source: str) -> list[str]:
    """Where a node file does maths: imports of array/maths libraries, and arithmetic (strings and lists may still be
    joined with ``+``, types with ``|``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in MATHS_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in MATHS_MODULES:
                found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ARITHMETIC):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


# ComfyUI glue, not stage adapters: placing models with ComfyUI's memory manager, drawing the progress preview.
COMFY_GLUE = {"memory.py", "progress.py"}


def test_nodes_hold_no_maths():
    files = sorted(p for p in (REPO / "nodes").glob("*.py") if p.name not in COMFY_GLUE)
    assert len(files) > 5
    offenders = {p.name: _maths(p.read_text(encoding="utf-8")) for p in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"nodes/ are adapters; move the maths into joyvasa_core: {offenders}"


NODE_FORBIDDEN_IMPORTS = {"torch", "numpy", "cv2"}


def test_no_node_file_imports_torch_numpy_or_cv2():
    """The glue (memory manager, progress preview) included: tensors are handled in joyvasa_core."""
    files = sorted((REPO / "nodes").glob("*.py"))
    offenders = {p.name: sorted(_imported_roots(p) & NODE_FORBIDDEN_IMPORTS) for p in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"nodes/ never import {sorted(NODE_FORBIDDEN_IMPORTS)}: {offenders}"


def test_the_maths_rule_catches_arrays_and_arithmetic():
    source = "import torch\nfrom numpy import stack\nn = round(frames / fps * 16000)\nn -= 1\nlabel = 'a' + 'b'\n"
    assert sorted(_maths(source)) == ["1: import torch", "2: from numpy import ...", "3: frames / fps",
                                      "3: frames / fps * 16000", "4: n -= 1"]


def test_ray_is_imported_by_the_ray_runner_alone():
    """Ray is optional (requirements-ray.txt): only ``batch/ray_runner.py`` may import it, and nothing imports that
    module but the batch command, when ``--ray`` is given."""
    files = sorted((REPO / "joyvasa_core").rglob("*.py"))
    importers = sorted(str(p.relative_to(REPO)) for p in files if "ray" in _imported_roots(p))
    assert importers == ["joyvasa_core/batch/ray_runner.py"]
    runner_users = sorted(str(p.relative_to(REPO)) for p in files
                          if "batch.ray_runner" in _core_imports(p, p.relative_to(REPO / "joyvasa_core").parent.parts))
    assert runner_users == ["joyvasa_core/batch/command.py"]
