"""Finding and loading every model of the job from a models folder, in the layouts people already have.

LivePortrait (human): the community safetensors ``liveportrait/*.safetensors`` or the official release
``liveportrait/base_models/*.pth`` + ``liveportrait/retargeting_models/stitching_retargeting_module.pth``.
Animals: ``liveportrait/animal/`` (community, v1.0) or ``liveportrait_animals/base_models_v1.1`` (official, preferred)
or ``base_models`` (v1.0); animals use the human stitching file, as the reference does.
JoyVASA: ``joyvasa/`` (this pack) or the reference's ``JoyVASA/motion_generator/`` + ``JoyVASA/motion_template/``.
Faces: the official InsightFace + landmark ONNX files when all are present, else the bundled PyTorch detector.

``root`` may be ComfyUI's ``models`` folder, the reference's ``pretrained_weights`` folder, a folder holding either,
or the ``liveportrait`` folder itself. Widths other than the official ones (custom-trained or test networks) are
declared by an optional ``liveportrait_config.json`` (``models.yaml`` content as JSON) next to the weights, and
``joyvasa_config.json`` (``{"motion_generator": {...}, "hubert": {...}}``) next to the motion generator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .audio.encoder import hubert_config
from .checkpoints.joyvasa import GENERATOR_FILE, TEMPLATE_FILE, read_motion_generator, read_motion_template
from .checkpoints.liveportrait import build_liveportrait_module
from .errors import CheckpointError
from .hardware import auto_device, choose_dtype, device_info
from .liveportrait.slots import (
    APPEARANCE,
    BASE_SLOTS,
    SLOT_SPECS,
    STITCHING,
    LivePortraitConfig,
)
from .motion.config import MotionGeneratorConfig
from .types import LivePortraitModels, MotionModel

LIVEPORTRAIT_CONFIG_FILE = "liveportrait_config.json"
JOYVASA_CONFIG_FILE = "joyvasa_config.json"
WEIGHT_EXTS: tuple[str, ...] = (".safetensors", ".pth")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEVICES = ("auto", "cpu", "cuda", "mps")
# Folders that may sit between ``root`` and the weight folders; ``liveportrait`` is the KwaiVGI/LivePortrait tree
# downloaded with the hub's command line into models/liveportrait (liveportrait/liveportrait/base_models/...).
_PREFIXES: tuple[str, ...] = ("", "pretrained_weights", "models", "liveportrait")


# ---------------------------------------------------------------------------------------------------------------------
# Device and dtype


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` = CUDA, else Apple's MPS, else the CPU (:func:`hardware.auto_device`); an unavailable CUDA/MPS
    request is a clear error."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return auto_device()
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r}: this torch build sees no CUDA GPU; use --device cpu (or auto).")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CheckpointError("device 'mps': Apple's Metal backend is not available here; use --device cpu.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise CheckpointError(f"device {device!r} is unknown; use one of {', '.join(DEVICES)}.") from None


def auto_dtype(device: torch.device) -> tuple[torch.dtype, str]:
    """The fastest precision that keeps the picture (>= 40 dB PSNR against fp32, measured by bench/bench_render.py
    and tests/test_render_precision.py) on ``device``, and why: decided by :func:`hardware.choose_dtype`."""
    return choose_dtype(device_info(device))


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """``fp32`` / ``fp16`` / ``bf16`` / ``auto`` (:func:`auto_dtype` for ``device``, CPU when not given)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).strip().lower()
    if name == "auto":
        return auto_dtype(device if device is not None else torch.device("cpu"))[0]
    if name not in DTYPES:
        raise CheckpointError(f"dtype {dtype!r} is unknown; use one of fp32, fp16, bf16, auto.")
    return DTYPES[name]


# ---------------------------------------------------------------------------------------------------------------------
# Locating files


@dataclass(frozen=True)
class LivePortraitFiles:
    """Where each network's weights were found, which variant they are, and an optional width config."""

    paths: dict[str, Path]
    variant: str
    config_path: Path | None = None


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[str] = set()
    out = []
    for p in paths:
        key = str(p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _liveportrait_dirs(root: Path, sub: str) -> list[Path]:
    """Human weight folders in order: the community ``liveportrait/``, then the official ``sub`` (``base_models`` or
    ``retargeting_models``) inside it or on its own, under every prefix, then ``root`` itself."""
    dirs: list[Path] = []
    for pre in _PREFIXES:
        base = root / pre if pre else root
        dirs += [base / "liveportrait", base / "liveportrait" / sub, base / sub]
    dirs.append(root)
    return _unique(dirs)


def _animal_dirs(root: Path, version: str | None) -> list[tuple[Path, str]]:
    """(folder, variant) in order of preference: v1.1 official, then the community folder and v1.0 official."""
    dirs: list[tuple[Path, str]] = []
    for pre in _PREFIXES:
        base = root / pre if pre else root
        for off in (base / "liveportrait_animals", base / "liveportrait" / "liveportrait_animals"):
            dirs += [(off / "base_models_v1.1", "animal_v1.1"), (off / "base_models", "animal_v1.0")]
        dirs += [(base / "liveportrait" / "animal", "animal_v1.0"), (base / "animal", "animal_v1.0")]
    if version is not None:
        dirs = [d for d in dirs if d[1] == f"animal_{version}"]
    unique: dict[str, tuple[Path, str]] = {}
    for folder, var in dirs:
        unique.setdefault(str(folder), (folder, var))
    return list(unique.values())


def _find_in(folder: Path, slot: str) -> Path | None:
    for ext in WEIGHT_EXTS:
        path = folder / f"{slot}{ext}"
        if path.is_file():
            return path
    return None


def _expected_names(slots: tuple[str, ...]) -> str:
    return ", ".join(f"{s}.safetensors|.pth" for s in slots)


def _shown(dirs: list[Path], root: Path) -> str:
    existing = [d for d in dirs if d.is_dir()]
    shown = existing or dirs[:6]
    return ", ".join(str(d) for d in shown) + ("" if existing else " (none of these folders exist)")


def _config_beside(paths: list[Path], name: str) -> Path | None:
    for p in paths:
        for folder in (p.parent, p.parent.parent):
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def _missing_base_weights(variant: str, base: Path, searched: list[Path], partial: Path | None) -> CheckpointError:
    """No folder holds all four base networks: which files, where they go, where we looked, what one folder lacks."""
    note = ""
    if partial is not None:
        missing = [s for s in BASE_SLOTS if _find_in(partial, s) is None]
        note = f" {partial} has only some of them; missing there: {_expected_names(tuple(missing))}."
    where = ("liveportrait/ (community safetensors) or liveportrait/base_models/ (official .pth)"
             if variant == "human" else
             "liveportrait/animal/ (community) or liveportrait_animals/base_models_v1.1/ (official)")
    return CheckpointError(
        f"LivePortrait {variant} weights: expected {_expected_names(BASE_SLOTS)} in {where} under {base}; "
        f"searched {_shown(searched, base)}.{note} Download them from KwaiVGI/LivePortrait or "
        "Kijai/LivePortrait_safetensors."
    )


def _missing_stitching_weights(base: Path, searched: list[Path]) -> CheckpointError:
    return CheckpointError(
        f"LivePortrait stitching weights: expected {STITCHING}.safetensors in liveportrait/ or {STITCHING}.pth "
        f"in liveportrait/retargeting_models/ under {base} (animals use the human file too); searched "
        f"{_shown(searched, base)}."
    )


def find_liveportrait_files(root: str | os.PathLike, variant: str = "human") -> LivePortraitFiles:
    """Locate F, M, W, G and S for ``variant`` (``human``, ``animal``, ``animal_v1.0``, ``animal_v1.1``).

    Each network is taken from the first folder that has it, the four base networks from one folder (so versions
    never mix). Missing files raise a CheckpointError that names the files expected and the folders searched.
    """
    base = Path(root).expanduser()
    if base.exists() and not base.is_dir():
        raise CheckpointError(f"models folder {base}: is a file, not a folder. Pass --models with the folder holding "
                              "liveportrait/ and joyvasa/ (ComfyUI's models folder works).")
    if not base.is_dir():
        raise CheckpointError(f"models folder {base}: no such folder. Pass --models with the folder holding "
                              "liveportrait/ and joyvasa/ (ComfyUI's models folder works).")
    if variant == "human":
        candidates = [(d, "human") for d in _liveportrait_dirs(base, "base_models")]
    elif variant.startswith("animal"):
        version = variant.split("_", 1)[1] if "_" in variant else None
        if version not in (None, "v1.0", "v1.1"):
            raise CheckpointError(f"LivePortrait variant {variant!r} is unknown; use human, animal_v1.0 or "
                                  "animal_v1.1.")
        candidates = _animal_dirs(base, version)
    else:
        raise CheckpointError(f"LivePortrait variant {variant!r} is unknown; use human, animal_v1.0 or animal_v1.1.")
    found: dict[str, Path] = {}
    chosen = variant
    best: tuple[int, Path] | None = None
    for folder, var in candidates:
        hits = {s: _find_in(folder, s) for s in BASE_SLOTS}
        n = sum(p is not None for p in hits.values())
        if n == len(BASE_SLOTS):
            found = {s: p for s, p in hits.items() if p is not None}
            chosen = var
            break
        if n and (best is None or n > best[0]):
            best = (n, folder)
    if not found:
        raise _missing_base_weights(variant, base, [d for d, _ in candidates], best[1] if best else None)
    s_dirs = _liveportrait_dirs(base, "retargeting_models")
    if variant != "human":
        s_dirs += [d.parent / "retargeting_models" for d, _ in candidates] + [d for d, _ in candidates]
    stitching = next((p for p in (_find_in(d, STITCHING) for d in s_dirs) if p is not None), None)
    if stitching is None:
        raise _missing_stitching_weights(base, _unique(s_dirs))
    found[STITCHING] = stitching
    config_path = _config_beside([found[APPEARANCE]], LIVEPORTRAIT_CONFIG_FILE)
    return LivePortraitFiles(paths=found, variant=chosen, config_path=config_path)


def _first_complete_liveportrait(
    roots: str | os.PathLike | Sequence[str | os.PathLike], variant: str
) -> LivePortraitFiles:
    if isinstance(roots, (str, os.PathLike)):
        return find_liveportrait_files(roots, variant)
    if not roots:
        raise CheckpointError(f"LivePortrait {variant} weights: no models/liveportrait folder exists; create it and "
                              "put the weights there.")
    first_error: CheckpointError | None = None
    for root in roots:
        try:
            return find_liveportrait_files(root, variant)
        except CheckpointError as err:
            first_error = first_error or err
    raise first_error


def find_joyvasa_files(root: str | os.PathLike) -> tuple[Path, Path]:
    """``(motion_generator_hubert_chinese.pt, motion_template.pkl)`` from ``joyvasa/`` or the reference layout."""
    base = Path(root).expanduser()
    pairs: list[tuple[Path, Path]] = []
    for pre in _PREFIXES:
        b = base / pre if pre else base
        pairs += [
            (b / "joyvasa", b / "joyvasa"),
            (b / "JoyVASA" / "motion_generator", b / "JoyVASA" / "motion_template"),
            (b / "motion_generator", b / "motion_template"),
        ]
    pairs.append((base, base))
    generator = next((m / GENERATOR_FILE for m, _ in pairs if (m / GENERATOR_FILE).is_file()), None)
    template = next((t / TEMPLATE_FILE for _, t in pairs if (t / TEMPLATE_FILE).is_file()), None)
    if generator is None or template is None:
        missing = [n for n, p in ((GENERATOR_FILE, generator), (TEMPLATE_FILE, template)) if p is None]
        dirs = _unique([d for pair in pairs for d in pair])
        raise CheckpointError(
            f"JoyVASA weights: {' and '.join(missing)} not found under {base}; expected joyvasa/{GENERATOR_FILE} and "
            f"joyvasa/{TEMPLATE_FILE} (or the reference's JoyVASA/motion_generator/ and JoyVASA/motion_template/); "
            f"searched {_shown(dirs, base)}. Download them from the jdh-algo/JoyVASA model page."
        )
    return generator, template


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{what} {path}: cannot be read as JSON ({exc}); fix or delete the file.") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{what} {path}: expected a JSON object, found a {type(data).__name__}.")
    return data


def load_liveportrait(
    root: str | os.PathLike | Sequence[str | os.PathLike],
    variant: str = "human",
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "fp32",
    config: LivePortraitConfig | None = None,
) -> LivePortraitModels:
    """Find and load the five LivePortrait networks (weights fp32; ``dtype`` is the autocast compute precision).

    ``root`` may be several models folders (ComfyUI's, plus those extra_model_paths.yaml adds): the first holding a
    complete set is used, and when none does the first folder's error says what is missing.
    """
    files = _first_complete_liveportrait(root, variant)
    dev = resolve_device(device)
    if config is None and files.config_path is not None:
        try:
            config = LivePortraitConfig.from_dict(_read_json(files.config_path, "LivePortrait config"))
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"LivePortrait config {files.config_path}: {exc}") from None
    config = config or LivePortraitConfig()
    nets = {
        spec.attribute: build_liveportrait_module(slot, files.paths[slot], config=config, device=dev,
                                                  variant=files.variant)
        for slot, spec in SLOT_SPECS.items()
    }
    return LivePortraitModels(
        **nets,
        device=dev,
        dtype=resolve_dtype(dtype, dev),
        variant=files.variant,
        paths={k: str(v) for k, v in files.paths.items()},
    )


def load_motion_model(
    root: str | os.PathLike | None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "fp32",
    pe_mode: str = "legacy",
    generator_path: str | os.PathLike | None = None,
    template_path: str | os.PathLike | None = None,
) -> MotionModel:
    """Find and load the JoyVASA motion generator and template (or take the two files given, whatever their names).

    The architecture comes from the checkpoint's ``args`` like the official loader; a ``joyvasa_config.json``
    beside the checkpoint may add ``motion_generator`` fields (e.g. ``n_layers``) and a ``hubert`` config for
    non-standard widths. The default ``legacy`` positional encoding is what the released checkpoint was trained with.
    """
    if generator_path is None or template_path is None:
        found_generator, found_template = find_joyvasa_files(root)
        generator_path = Path(generator_path) if generator_path is not None else found_generator
        template_path = Path(template_path) if template_path is not None else found_template
    generator_path, template_path = Path(generator_path), Path(template_path)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    extra_path = _config_beside([generator_path], JOYVASA_CONFIG_FILE)
    extra = _read_json(extra_path, "JoyVASA config") if extra_path else {}
    overrides = dict(extra.get("motion_generator", {}))
    known = {f.name for f in fields(MotionGeneratorConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise CheckpointError(f"JoyVASA config {extra_path}: unknown motion_generator fields {unknown}; "
                              f"known: {sorted(known)}.")
    try:
        hub = {k: tuple(v) if isinstance(v, list) else v for k, v in extra.get("hubert", {}).items()}
        audio_config = hubert_config(**hub)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"JoyVASA config {extra_path}: {exc}") from None
    generator = read_motion_generator(generator_path, pe_mode, overrides, audio_config,
                                      overrides_source=f"JoyVASA config {extra_path}")
    generator = generator.to(device=dev, dtype=dt)
    generator.diffusion_sched.float()  # the schedule stays fp32 whatever the compute precision
    template = read_motion_template(template_path)
    return MotionModel(generator=generator, template=template, device=dev, dtype=dt,
                       paths={"motion_generator": str(generator_path), "motion_template": str(template_path)})


def official_detector_dirs(root: str | os.PathLike) -> tuple[Path, Path] | None:
    """``(buffalo_l folder, landmark.onnx folder)`` when all three official face files are present."""
    from .face.detectors.official import DET_FILE, LMK106_FILE, LMK203_FILE

    base = Path(root).expanduser()
    for pre in _PREFIXES:
        b = base / pre if pre else base
        buffalo = b / "insightface" / "models" / "buffalo_l"
        lp = b / "liveportrait"
        if (buffalo / DET_FILE).is_file() and (buffalo / LMK106_FILE).is_file() and (lp / LMK203_FILE).is_file():
            return buffalo, lp
    return None


DETECTOR_RANGES = ("auto", "short", "full")


def bundled_face_detector(range: str = "auto", device: str | torch.device = "cpu"):
    """The bundled detector: ``short`` (portraits), ``full`` (smaller faces), or ``auto`` = short range, then full
    range when the short one finds no face (built only then)."""
    from .face.detectors.bundled import BundledFaceDetector
    from .face.detectors.fallback import FallbackDetector

    if range not in DETECTOR_RANGES:
        raise CheckpointError(f"face detector range {range!r} is unknown; use one of {', '.join(DETECTOR_RANGES)}.")
    if range != "auto":
        return BundledFaceDetector(range=range, device=device)
    return FallbackDetector([BundledFaceDetector(range="short", device=device),
                             lambda: BundledFaceDetector(range="full", device=device)], ["short-range", "full-range"])


def load_face_detector(root: str | os.PathLike | None, device: str | torch.device = "auto", prefer: str = "auto",
                       range: str = "auto"):
    """The official ONNX detector when its files are under ``root`` (``prefer='auto'``), else the bundled one
    (``range``: see ``bundled_face_detector``)."""
    if prefer not in ("auto", "official", "bundled"):
        raise CheckpointError(f"face detector {prefer!r} is unknown; use auto, official or bundled.")
    dev = resolve_device(device)
    dirs = official_detector_dirs(root) if prefer != "bundled" and root is not None else None
    if dirs is not None:
        from .face.detectors.official import OfficialFaceDetector

        return OfficialFaceDetector(dirs[0], landmark_dir=dirs[1])
    if prefer == "official":
        where = f" under {root}" if root is not None else " in the models folders"
        raise CheckpointError(
            f"official face detector: det_10g.onnx and 2d106det.onnx in insightface/models/buffalo_l/ and "
            f"landmark.onnx in liveportrait/ were not all found{where}; place them or use the bundled one."
        )
    return bundled_face_detector(range, dev)


@dataclass(frozen=True, eq=False)
class ModelSet:
    """Everything one job needs, loaded once: renderer, motion generator and (humans) a face detector."""

    liveportrait: LivePortraitModels
    motion_model: MotionModel | None
    detector: Any = None


def load_models(
    root: str | os.PathLike,
    animal: bool = False,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    detector: str = "auto",
    need_motion_model: bool = True,
    need_detector: bool = True,
    detector_range: str = "auto",
) -> ModelSet:
    """The command line's loader: LivePortrait (human or animal) in ``dtype`` (``auto``: :func:`auto_dtype`), JoyVASA
    (unless a motion is reused) and a detector (humans only; animals are not cropped by default)."""
    dev = resolve_device(device)
    lp = load_liveportrait(root, "animal" if animal else "human", dev, dtype)
    motion_model = load_motion_model(root, dev) if need_motion_model else None
    det = load_face_detector(root, dev, detector, detector_range) if need_detector and not animal else None
    return ModelSet(liveportrait=lp, motion_model=motion_model, detector=det)
