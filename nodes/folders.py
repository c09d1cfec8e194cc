"""ComfyUI model folders of the pack, and file names from widgets turned into paths that stay inside ComfyUI's
folders (a workflow from the internet must not read or write anywhere else)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import folder_paths

from ..joyvasa_core.validate import NODE, check_free_space, check_output_name, output_prefix, short_path

JOYVASA = "joyvasa"
LIVEPORTRAIT = "liveportrait"
INSIGHTFACE = "insightface"

MOTION_CHECKPOINT_EXTS = (".pt", ".pth", ".safetensors")
TEMPLATE_EXTS = (".pkl",)
MOTION_FILE_EXTS = (".safetensors",)
_FOLDER_EXTS = {
    JOYVASA: set(MOTION_CHECKPOINT_EXTS + TEMPLATE_EXTS),
    LIVEPORTRAIT: {".pth", ".safetensors", ".onnx", ".json"},
    INSIGHTFACE: {".onnx"},
}


def register_model_folders() -> None:
    """Add ``models/joyvasa``, ``models/liveportrait`` and ``models/insightface`` (extra_model_paths.yaml may add
    more locations under the same names); our extension sets keep the combos free of unrelated files."""
    for name, exts in _FOLDER_EXTS.items():
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
        paths, current = folder_paths.folder_names_and_paths[name]
        merged = set(current) | exts if current else set(exts)
        folder_paths.folder_names_and_paths[name] = (paths, merged)


def list_files(folder: str, exts: Iterable[str]) -> list[str]:
    """Files of a registered model folder with one of ``exts`` (recursive, ComfyUI's cached listing). A folder
    removed while the server runs makes ComfyUI's cache check fail: the stale entry is dropped and listed again."""
    exts = tuple(e.lower() for e in exts)
    try:
        names = folder_paths.get_filename_list(folder)
    except OSError:
        folder_paths.filename_list_cache.pop(folder, None)
        folder_paths.cache_helper.clear()
        names = folder_paths.get_filename_list(folder)
    return [f for f in names if f.lower().endswith(exts)]


def model_path_or_none(folder: str, name: str) -> str | None:
    """Like :func:`model_path`, but None when the file is not there (yet)."""
    try:
        return model_path(folder, name)
    except FileNotFoundError:
        return None


def model_path(folder: str, name: str) -> str:
    """Full path of ``name`` in a registered model folder; never outside it."""
    if not name or os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise FileNotFoundError(f"model file name {name!r} must be a file inside models/{folder}/ (no absolute "
                                "path, no '..').")
    return folder_paths.get_full_path_or_raise(folder, name)


def model_roots(*folders: str) -> list[str]:
    """Folders to hand to joyvasa_core's finders: the parent of every registered location of ``folders`` (the
    finders expect the ``models`` folder) and the locations themselves, then ComfyUI's models folder."""
    roots: list[str] = []
    for folder in folders:
        for path in folder_paths.get_folder_paths(folder):
            roots += [os.path.dirname(os.path.normpath(path)), path]
    roots.append(folder_paths.models_dir)
    seen: set[str] = set()
    return [r for r in roots if os.path.isdir(r) and not (r in seen or seen.add(r))]


def inside(path: str, base: str) -> bool:
    """Whether ``path`` (symlinks resolved) lies in ``base``."""
    path, base = os.path.realpath(path), os.path.realpath(base)
    return os.path.commonpath((path, base)) == base


def user_file(name: str, default_dir: str | None = None) -> str:
    """An input/output/temp file named like ComfyUI's widgets (``"x.safetensors"`` = input/, ``"x [output]"``);
    refuses names that escape their folder."""
    rel, base = folder_paths.annotated_filepath(name)
    base = base or default_dir or folder_paths.get_input_directory()
    path = os.path.join(base, rel)
    if os.path.isabs(rel) or not inside(path, base):
        raise FileNotFoundError(f"file {name!r} is outside ComfyUI's {os.path.basename(base)}/ folder; only files "
                                "inside input/ or output/ can be loaded.")
    return path


def list_user_files(exts: Iterable[str]) -> list[str]:
    """Files with ``exts`` in input/ (plain names) and output/ (``name [output]``), recursive, sorted."""
    exts = tuple(e.lower() for e in exts)
    out: list[str] = []
    for base, suffix in ((folder_paths.get_input_directory(), ""), (folder_paths.get_output_directory(), " [output]")):
        if not os.path.isdir(base):
            continue
        found = []
        for dirpath, _dirs, files in os.walk(base, followlinks=True):
            for f in files:
                if f.lower().endswith(exts):
                    found.append(os.path.relpath(os.path.join(dirpath, f), base).replace(os.sep, "/") + suffix)
        out += sorted(found)
    return out


def check_user_file(name: str, what: str) -> bool | str:
    """VALIDATE_INPUTS for a file widget: True, or the message ComfyUI shows before running anything."""
    try:
        path = user_file(name)
    except FileNotFoundError as err:
        return str(err)
    return True if os.path.isfile(path) else f"{what} {name!r} not found"


def user_file_fingerprint(name: str) -> str:
    """IS_CHANGED for a file widget: changes when the file is replaced or edited."""
    path = user_file(name)
    st = os.stat(path)
    return hashlib.sha256(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()


def output_file(
    filename_prefix: str, suffix: str, example: str, kind: str = "output", needed: int = 0,
) -> tuple[str, dict]:
    """A new numbered file under output/ (or temp/) for ``filename_prefix`` (empty: ``example``): its path and the
    UI entry that names it. Refused before anything is written: a prefix that leaves the folder, a name too long for
    it (its partial file included), something not a file already there, and ``needed`` bytes the disk lacks."""
    from .errors import NodeError

    root = folder_paths.get_output_directory() if kind == "output" else folder_paths.get_temp_directory()
    prefix = output_prefix(filename_prefix, example)
    if os.path.isabs(prefix) or not inside(os.path.join(root, prefix), root):
        raise NodeError(f"filename_prefix {short_path(prefix)!r} points outside {kind}/; use a relative path such as "
                        f"{example}.")
    check_output_name("filename_prefix", Path(root, prefix + "_00001_" + suffix))
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, root)
    filename = f"{name}_{counter:05}_{suffix}"
    path = Path(folder, filename)
    check_output_name("filename_prefix", path)
    os.makedirs(folder, exist_ok=True)
    check_free_space("filename_prefix", path, needed, NODE, f"the {suffix.lstrip('.')} file")
    return str(path), {"filename": filename, "subfolder": subfolder, "type": kind}
