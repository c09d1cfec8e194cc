"""Fetching the model files a job needs, on first use, through ``huggingface_hub``.

The models folder is always looked at first: when a feature's files are found (in any layout the finders accept),
not one request leaves the machine. Missing files are probed (one quick HEAD each, so an unreachable hub fails in
a second instead of after the client's retries), then fetched with ``hf_hub_download`` into a scratch folder inside
the models folder, checked (size, and the strict readers), and only then moved to their final name: a failed,
interrupted or corrupt download never leaves a file where the loaders look. ``HF_ENDPOINT``, ``HF_TOKEN`` and
``HF_HUB_OFFLINE`` are read at call time, the way huggingface_hub reads them.
"""

from __future__ import annotations

import errno
import inspect
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import Cancelled, CheckpointError
from .model_catalog import (
    ANIMAL,
    ANIMAL_V10,
    ANIMAL_V11,
    DEFAULT_ENDPOINT,
    HUMAN,
    KIND_LIVEPORTRAIT,
    KIND_MOTION,
    KIND_TEMPLATE,
    MOTION_GENERATOR,
    OFFICIAL_DETECTOR,
    SHARED_LIVEPORTRAIT,
    ModelFile,
    files_for,
)

# (file, bytes done, bytes total); raising from it cancels the download.
FileProgress = Callable[[ModelFile, int, int], None]

# Folders ComfyUI-LivePortraitKJ downloads into only when they do not exist: whoever creates one fills it completely.
SHARED_FOLDERS: tuple[tuple[str, str], ...] = (
    (f"{SHARED_LIVEPORTRAIT}/animal", ANIMAL_V10),
    (SHARED_LIVEPORTRAIT, HUMAN),
)
STAGING_PREFIX = ".joyvasa-download-"
_TRUE = {"1", "on", "yes", "true"}
MODEL_FILE_EXTS = (".pth", ".pt", ".safetensors", ".pkl", ".onnx", ".json")  # what a broken link is looked for on


class DownloadError(CheckpointError):
    """Model files are missing and could not be fetched; the message lists each with its URL and folder."""


def endpoint() -> str:
    """The hub's address: ``HF_ENDPOINT`` when set (a mirror, or a local test server), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def user_models_dir() -> Path:
    """The command line's default models folder: ``JOYVASA_MODELS``, else a per-user data folder
    (``%LOCALAPPDATA%``, ``~/Library/Application Support`` or ``$XDG_DATA_HOME``, then ``joyvasa/models``)."""
    if os.environ.get("JOYVASA_MODELS"):
        return Path(os.environ["JOYVASA_MODELS"]).expanduser()
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "joyvasa" / "models"


def offline() -> bool:
    """huggingface_hub's offline switches (``TRANSFORMERS_OFFLINE`` counts too, as it does there)."""
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any((f or "").strip().lower() in _TRUE for f in flags)


# ---------------------------------------------------------------------------------------------------------------------
# What is missing


def feature_paths(models_dir: str | os.PathLike, feature: str) -> list[Path] | None:
    """The files the loaders would use for ``feature`` under ``models_dir`` (any accepted layout), or None."""
    from . import loading

    root = Path(models_dir).expanduser()
    if not root.is_dir():
        return None
    if feature == OFFICIAL_DETECTOR:
        dirs = loading.official_detector_dirs(root)
        return None if dirs is None else [dirs[0], dirs[1]]
    try:
        if feature == MOTION_GENERATOR:
            return list(loading.find_joyvasa_files(root))
        if feature in (HUMAN, ANIMAL, ANIMAL_V10, ANIMAL_V11):
            return list(loading.find_liveportrait_files(root, feature).paths.values())
    except CheckpointError:
        return None
    raise ValueError(f"unknown model feature {feature!r}")


def feature_present(models_dir: str | os.PathLike, feature: str) -> bool:
    """Whether the loaders would find ``feature``'s files under ``models_dir``."""
    return feature_paths(models_dir, feature) is not None


def fingerprint(paths: Iterable[str | os.PathLike | None]) -> str:
    """Size and modification time of each file ("missing" for absent ones): changes when a file is replaced,
    removed or appears, so a cached model is not reused over files that are gone."""
    parts = []
    for p in paths:
        try:
            st = os.stat(p) if p is not None else None
        except OSError:
            st = None
        parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}" if st is not None else f"{p}:missing")
    return "|".join(parts)


def feature_fingerprint(roots: Iterable[str | os.PathLike], feature: str) -> str:
    """:func:`fingerprint` of the files the loaders would use from the first of ``roots`` holding ``feature``."""
    for root in roots:
        paths = feature_paths(root, feature)
        if paths is not None:
            return fingerprint(paths)
    return f"{feature}:missing"


def locate_or_download(
    roots: Iterable[str | os.PathLike],
    home: str | os.PathLike,
    feature: str,
    allow: bool = True,
    progress: FileProgress | None = None,
) -> Path:
    """The first of ``roots`` that holds ``feature``; else ``home`` after fetching what it lacks there."""
    for root in roots:
        if feature_present(root, feature):
            return Path(root)
    download_missing(home, [feature], allow=allow, progress=progress)
    return Path(home)


def missing_files(models_dir: str | os.PathLike, features: Iterable[str]) -> list[ModelFile]:
    """The manifest files to fetch so that ``features`` load from ``models_dir``: none for a feature already
    present; else those of its files not at their target. A shared LivePortrait folder that does not exist yet is
    planned complete (the human set, or the whole animal set), so ComfyUI-LivePortraitKJ finds what it expects."""
    root = Path(models_dir).expanduser()
    wanted: list[ModelFile] = []
    for feature in features:
        if not feature_present(root, feature):
            wanted += [f for f in files_for(feature) if not (root / f.target).is_file()]
    for folder, feature in SHARED_FOLDERS:
        if wanted and not (root / folder).exists() and any(f.target.startswith(folder + "/") for f in wanted):
            wanted += [f for f in files_for(feature) if not (root / f.target).is_file()]
    unique: dict[str, ModelFile] = {}
    for f in wanted:
        unique.setdefault(f.target, f)
    return list(unique.values())


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def missing_error(root: Path, files: list[ModelFile], reason: str, notes: dict[str, str] | None = None,
                  cli_reason: str | None = None) -> DownloadError:
    """One message: why nothing was fetched, then each file with its folder, approximate size and URL (one line
    per file for the nodes' dialog; the same on one line, after ``--models``, for the command line)."""
    notes = notes or {}
    base = endpoint()
    where = f"{root}" if root.is_dir() else f"{root} (no such folder)"
    head = f"JoyVASA model files: {len(files)} missing under {where} and not downloaded: {reason}"
    items = []
    for f in files:
        note = f" [{notes[f.target]}]" if f.target in notes else ""
        items.append(f"{root / f.folder}{os.sep}{f.name} (~{_size(f.approx_bytes)}, {f.licence}) <- "
                     f"{f.url(base)}{note}")
    fix = "Put each file in its folder (or fix the cause and run again)"
    node = "\n".join([f"{head}. {fix}:"] + [f"  {item}" for item in items])
    cli_head = head if cli_reason is None else head[: -len(reason)] + cli_reason
    return DownloadError(node, cli=f"--models {cli_head}. {fix}: " + "; ".join(items))


# ---------------------------------------------------------------------------------------------------------------------
# Fetching


class _ByteReport:
    """What ``hf_hub_download`` takes as ``tqdm_class``: forwards byte counts, keeps a cancel raised by the caller
    so it is not mistaken for a network error."""

    def __init__(self, file: ModelFile, total: int, report: FileProgress | None) -> None:
        self.file, self.total, self.report = file, total, report
        self.cancel: BaseException | None = None

    def bar(self, *args, **kwargs):
        owner = self

        class _Bar:
            def __init__(self) -> None:
                self.n = int(kwargs.get("initial") or 0)
                owner.emit(self.n)

            def update(self, n: int = 1) -> None:
                self.n += n
                owner.emit(self.n)

            def close(self) -> None:
                return None

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> bool:
                return False

        return _Bar()

    def emit(self, done: int) -> None:
        if self.report is None:
            return
        try:
            self.report(self.file, min(max(done, 0), self.total), self.total)
        except BaseException as exc:
            self.cancel = exc
            raise


def _hub_error(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 404:
        return "not found on the hub (404)"
    if status in (401, 403):
        return f"refused ({status}): the repository needs a token; set HF_TOKEN"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {first}"[:300]


def _probe(files: list[ModelFile]) -> tuple[dict[str, int], dict[str, str], str | None]:
    """HEAD each file once (no retries). Returns sizes, per-file problems and, when the hub cannot be reached at
    all, the reason (the remaining files are not tried)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    sizes: dict[str, int] = {}
    problems: dict[str, str] = {}
    base = endpoint()
    for f in files:
        url = hf_hub_url(f.repo_id, f.repo_path, revision=f.revision, endpoint=base)
        try:
            meta = get_hf_file_metadata(url, timeout=10)
        except Exception as exc:  # noqa: BLE001 - every failure is reported per file
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status is None:
                return sizes, problems, f"cannot reach {base} ({_hub_error(exc)})"
            problems[f.target] = _hub_error(exc)
            continue
        if meta.size is None:
            problems[f.target] = "the hub did not say the file's size"
        else:
            sizes[f.target] = int(meta.size)
    return sizes, problems, None


def check_downloaded(file: ModelFile, path: Path) -> None:
    """Open a freshly downloaded file with the strict readers (HTML pages, truncated or wrong files fail here)."""
    from .checkpoints.containers import EMPTY, HTML, LFS_POINTER, sniff_format

    if file.kind == KIND_LIVEPORTRAIT:
        from .checkpoints.liveportrait import load_liveportrait_state_dict

        variant = next((f for f in file.features if f.startswith(("human", "animal_"))), "human")
        load_liveportrait_state_dict(path, file.slot or "", variant=variant)
    elif file.kind == KIND_MOTION:
        from .checkpoints.joyvasa import read_motion_checkpoint

        read_motion_checkpoint(path)
    elif file.kind == KIND_TEMPLATE:
        from .checkpoints.joyvasa import read_motion_template

        read_motion_template(path)
    else:
        fmt = sniff_format(path)
        if fmt in (HTML, LFS_POINTER, EMPTY):
            raise CheckpointError(f"{path.name}: the server sent {fmt} content, not the model file")


def _fetch(file: ModelFile, staging: Path, bytes_: _ByteReport) -> Path:
    from huggingface_hub import hf_hub_download

    kwargs = {}
    if "tqdm_class" in inspect.signature(hf_hub_download).parameters:  # older clients fetch without byte counts
        kwargs["tqdm_class"] = bytes_.bar
    path = Path(hf_hub_download(file.repo_id, file.repo_path, revision=file.revision, local_dir=staging,
                                endpoint=endpoint(), **kwargs))
    bytes_.emit(bytes_.total)
    return path


def _refuse_broken_links(root: Path, depth: int = 3) -> None:
    """A model file that is a symbolic link to itself or to nothing is not "missing": say what it is. Looks at the
    model files (weights, templates, detectors) up to ``depth`` folders under ``root``, where the loaders look."""
    base = len(root.parts)
    for folder, dirs, names in os.walk(root):
        if len(Path(folder).parts) - base >= depth:
            dirs[:] = []
        for name in names:
            path = Path(folder, name)
            if path.suffix.lower() not in MODEL_FILE_EXTS or not path.is_symlink():
                continue
            try:
                os.stat(path)
            except OSError as exc:
                what = "a loop of links (it points to itself)" if exc.errno == errno.ELOOP else \
                    f"a link to {os.readlink(path)}, which does not exist"
                fix = "delete the link or point it at the real file"
                raise DownloadError(f"model file {path}: is {what}; {fix}.",
                                    cli=f"--models {root}: {path.relative_to(root)} is {what}; {fix}.") from None


def download_missing(
    models_dir: str | os.PathLike,
    features: Iterable[str],
    allow: bool = True,
    progress: FileProgress | None = None,
) -> list[ModelFile]:
    """Make ``features`` loadable from ``models_dir``; returns the files fetched (none when all are present, and
    then no request is made). ``allow=False`` turns every missing file into a :class:`DownloadError`, as do an
    offline setting, an unreachable hub or a file that fails its checks; files already fetched in the same call
    stay (they passed the checks). A cancel raised by ``progress`` propagates and leaves no partial file."""
    root = Path(models_dir).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise DownloadError(f"models folder {root}: is a file, not a folder; give the folder holding liveportrait/ "
                            "and joyvasa/.", cli=f"--models {root}: is a file, not a folder; give the folder holding "
                            "liveportrait/ and joyvasa/ (ComfyUI's models folder works).")
    files = missing_files(root, list(features))
    if not files:
        return []
    _refuse_broken_links(root)
    if not allow:
        raise missing_error(root, files, "downloads are turned off (choose 'download missing files' in the loader)",
                            cli_reason="downloads are turned off (drop --no-download to fetch them)")
    if offline():
        raise missing_error(root, files, "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set; unset it to download")
    sizes, problems, unreachable = _probe(files)
    if unreachable or problems:
        raise missing_error(root, files, unreachable or "the hub refused some files", problems)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    fetched: list[ModelFile] = []
    try:
        for f in files:
            bytes_ = _ByteReport(f, sizes[f.target], progress)
            try:
                path = _fetch(f, staging, bytes_)
                got = path.stat().st_size
                if got != sizes[f.target]:
                    raise CheckpointError(f"{got} bytes arrived, the hub announced {sizes[f.target]}")
                check_downloaded(f, path)
            except Exception as exc:  # noqa: BLE001 - reported per file, the others still download
                if bytes_.cancel is not None or isinstance(exc, Cancelled):
                    raise
                if isinstance(exc, CheckpointError):
                    why = str(exc).replace(str(staging) + os.sep, "")
                else:
                    why = _hub_error(exc)
                problems[f.target] = f"the download was not usable and was deleted: {why}"
                continue
            final = root / f.target
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
            fetched.append(f)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if problems:
        failed = [f for f in files if f.target in problems]
        raise missing_error(root, failed, "some downloads failed", problems)
    return fetched

