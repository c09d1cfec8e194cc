"""JoyVASA's own files, read into their domain objects: the motion generator checkpoint (a ``MotionGenerator``) and
the motion template pickle (a ``MotionTemplate``).

``motion_generator_hubert_chinese.pt`` is a torch pickle ``{"args": argparse.Namespace, "model": state dict,
"iter": int}`` whose args hold ``pathlib.PosixPath`` values (``WindowsPath`` in files saved on Windows); both are
rebuilt as pure paths so the file opens on any OS, and nothing but tensors, containers and those data classes is
ever unpickled. ``motion_template.pkl`` is a plain pickle of a dict of numpy arrays, read with an unpickler that can
only rebuild numpy arrays and builtin containers.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import io
import json
import os
import pathlib
import pickle
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from transformers import HubertConfig

from ..audio.encoder import remap_pos_conv_weight_norm
from ..errors import CheckpointError
from ..liveportrait.slots import SLOTS
from ..motion.config import MotionGeneratorConfig
from ..motion.generator import MotionGenerator
from ..motion.template import TEMPLATE_KEYS, MotionTemplate
from .containers import (
    HARMLESS_GLOBALS,
    PICKLE,
    SAFETENSORS,
    TORCH_LEGACY,
    TORCH_ZIP,
    read_checkpoint,
    read_safetensors_metadata,
    require_tensor_dict,
    sniff_format,
)
from .identify import HUBERT, LABELS, MOTION_GENERATOR, UNKNOWN, identify_state_dict

GENERATOR_FILE = "motion_generator_hubert_chinese.pt"
TEMPLATE_FILE = "motion_template.pkl"

# Python 3.13 moved the path classes into pathlib._local; files pickled there name that module.
MOTION_CHECKPOINT_GLOBALS: tuple[Any, ...] = HARMLESS_GLOBALS + (
    (pathlib.PurePosixPath, "pathlib._local.PosixPath"),
    (pathlib.PureWindowsPath, "pathlib._local.WindowsPath"),
    (pathlib.PurePosixPath, "pathlib._local.PurePosixPath"),
    (pathlib.PureWindowsPath, "pathlib._local.PureWindowsPath"),
)
# Audio encoders of the released checkpoints; the official loader builds HuBERT for each of these names.
SUPPORTED_AUDIO_MODELS = ("hubert_zh", "hubert_zh_ori", "hubert")


# ---------------------------------------------------------------------------------------------------------------------
# Motion generator checkpoint


def read_motion_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(args, state_dict)`` of a JoyVASA motion generator file, loaded without arbitrary unpickling.

    ``args`` is the training Namespace as a plain dict (paths as strings; empty for a bare state dict or a
    safetensors conversion, whose ``args`` metadata JSON is used when present). ``state_dict`` is the ``model`` entry
    unchanged except for HuBERT's legacy ``weight_g/weight_v`` names, mapped to the parametrization names.
    """
    p = pathlib.Path(path)
    # A plain (non-torch) pickle is never a loadable checkpoint; probe it safely for a precise message first.
    probe = _probe_plain_pickle(p) if p.is_file() else None
    if probe == "template":
        raise CheckpointError(
            f"motion generator checkpoint {p}: this is the motion template ({TEMPLATE_FILE}), not the network. "
            f"Put it in the motion template slot and load JoyVASA's {GENERATOR_FILE} here."
        )
    if probe:
        raise CheckpointError(
            f"motion generator checkpoint {p}: refused to unpickle it, it names the global {probe}; only tensors, "
            "containers and the training args are loaded (unpickling other objects can run code). "
            f"Use JoyVASA's released motion_generator/{GENERATOR_FILE}."
        )
    obj = read_checkpoint(p, MOTION_CHECKPOINT_GLOBALS)
    kind = identify_state_dict(obj)
    if kind != MOTION_GENERATOR:
        raise CheckpointError(f"motion generator checkpoint {p}: {_wrong_file(kind, obj)}")

    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        args, state = obj.get("args"), obj["model"]
    else:
        args, state = _safetensors_args(p), obj
    state = require_tensor_dict(state, p, "the motion generator state dict")
    return _plain_args(args, p), remap_pos_conv_weight_norm(state)


def config_from_args(
    args: dict[str, Any], pe_mode: str = "legacy", source: str = "checkpoint"
) -> MotionGeneratorConfig:
    """Checkpoint ``args`` -> config; like the official loader, only ``audio_model`` and the sizes are honoured."""
    audio_model = args.get("audio_model")
    if audio_model is not None and audio_model not in SUPPORTED_AUDIO_MODELS:
        raise CheckpointError(
            f"motion generator {source}: audio_model {audio_model!r} is not supported (only HuBERT checkpoints, "
            f"{SUPPORTED_AUDIO_MODELS}, were released); use {GENERATOR_FILE}"
        )
    return MotionGeneratorConfig.from_checkpoint_args(args, pe_mode=pe_mode)


def read_motion_generator(
    path: str | os.PathLike,
    pe_mode: str = "legacy",
    overrides: Mapping[str, Any] | None = None,
    audio_config: HubertConfig | None = None,
    overrides_source: str = "JoyVASA config",
) -> MotionGenerator:
    """The motion generator of a JoyVASA checkpoint, in eval mode on the CPU in fp32.

    The architecture comes from the checkpoint's ``args`` as in the official loader; ``overrides`` (config fields)
    and ``audio_config`` describe widths the args do not record, ``overrides_source`` names where they came from.
    """
    args, state = read_motion_checkpoint(path)
    config = config_from_args(args, pe_mode=pe_mode, source=str(path))
    try:
        generator = MotionGenerator(replace(config, **dict(overrides or {})), audio_config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{overrides_source}: {exc}") from None
    generator.load_checkpoint_state(state, source=str(path))
    return generator.eval().requires_grad_(False)


def _wrong_file(kind: str, obj: Any) -> str:
    label = LABELS.get(kind, kind)
    if kind in SLOTS:
        return (
            f"this is the {label} weight file, not the JoyVASA motion generator. Load it with the LivePortrait "
            f"loader in its {kind} slot, and put JoyVASA's motion_generator/{GENERATOR_FILE} here."
        )
    if kind == HUBERT:
        return (
            f"this is a bare {label} (e.g. chinese-hubert-base's pytorch_model.bin). It is not needed: "
            f"JoyVASA's {GENERATOR_FILE} carries its own HuBERT weights; load that file here."
        )
    keys = _sample_keys(obj)
    return (
        f"{LABELS[UNKNOWN] if kind == UNKNOWN else label} contents (first keys: {keys}), not the JoyVASA motion "
        f"generator. Download motion_generator/{GENERATOR_FILE} from the jdh-algo/JoyVASA model page."
    )


def _sample_keys(obj: Any, limit: int = 5) -> list[str]:
    if isinstance(obj, Mapping):
        inner = obj.get("model") if isinstance(obj.get("model"), Mapping) else obj
        return [str(k) for k in list(inner)[:limit]]
    return [type(obj).__name__]


def _safetensors_args(path: pathlib.Path) -> Any:
    """A safetensors conversion may keep the training args as JSON under the ``args`` metadata key."""
    if sniff_format(path) != SAFETENSORS:
        return None
    raw = read_safetensors_metadata(path).get("args")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise CheckpointError(
            f"motion generator checkpoint {path}: its 'args' metadata is not valid JSON. Re-create the conversion "
            "or remove that metadata entry."
        ) from None


def _plain(value: Any) -> Any:
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _plain_args(args: Any, path: pathlib.Path) -> dict[str, Any]:
    if args is None:
        return {}
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if not isinstance(args, Mapping):
        raise CheckpointError(
            f"motion generator checkpoint {path}: 'args' is a {type(args).__name__}, expected the training "
            "argparse.Namespace or a dict. Use the released file."
        )
    return {str(k): _plain(v) for k, v in args.items()}


# ---------------------------------------------------------------------------------------------------------------------
# Motion template


def numpy_pickle_globals() -> dict[tuple[str, str], Any]:
    """The only callables a template pickle may name: numpy's array/scalar rebuilders under their numpy 1 and 2
    module paths (taken from numpy's own reducers, so no deprecated module is imported) and builtin containers."""
    reconstruct = np.ndarray((0,), np.float32).__reduce__()[0]
    scalar = np.float32(0).__reduce__()[0]
    frombuffer = np.zeros(1, np.float32).__reduce_ex__(5)[0]
    table: dict[tuple[str, str], Any] = {}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    table[("_codecs", "encode")] = codecs.encode  # protocol-2 pickles store bytes as latin-1 text
    table[("collections", "OrderedDict")] = collections.OrderedDict
    for builtins in ("builtins", "__builtin__"):
        for name, obj in (
            ("set", set),
            ("frozenset", frozenset),
            ("bytearray", bytearray),
            ("list", list),
            ("dict", dict),
            ("tuple", tuple),
            ("bytes", bytes),
            ("float", float),
            ("int", int),
        ):
            table[(builtins, name)] = obj
    return table


class _RefusedGlobal(CheckpointError):
    """A pickle named a global outside the allow-list; ``global_name`` says which."""

    def __init__(self, message: str, global_name: str) -> None:
        super().__init__(message)
        self.global_name = global_name


class NumpyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and containers; any other global is refused before it can be called.

    Subclasses say what the file should have been: ``refusal`` builds the error for a refused global,
    ``torch_file`` the one for a PyTorch file (persistent ids) given where a plain pickle belongs.
    """

    _allowed = numpy_pickle_globals()

    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file)
        self._source = source

    def refusal(self, global_name: str) -> CheckpointError:
        raise NotImplementedError

    def torch_file(self) -> CheckpointError:
        raise NotImplementedError

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise self.refusal(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise self.torch_file()


class _TemplateUnpickler(NumpyUnpickler):
    def refusal(self, global_name: str) -> CheckpointError:
        return _RefusedGlobal(
            f"motion template {self._source}: refused to unpickle it, it names the global {global_name}, "
            "and a template holds only numpy arrays (unpickling other objects can run code). Use JoyVASA's "
            f"motion_template/{TEMPLATE_FILE}.",
            global_name,
        )

    def torch_file(self) -> CheckpointError:
        return CheckpointError(
            f"motion template {self._source}: this is a PyTorch file, not {TEMPLATE_FILE}. Put it in the motion "
            "generator slot if it is the JoyVASA checkpoint."
        )


def _unpickle_template(data: bytes, source: str) -> Any:
    try:
        return _TemplateUnpickler(io.BytesIO(data), source).load()
    except CheckpointError:
        raise
    except (
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
    ) as exc:
        raise CheckpointError(
            f"motion template {source}: the pickle cannot be read ({type(exc).__name__}: {exc}); it is truncated or "
            f"corrupt. Download motion_template/{TEMPLATE_FILE} again."
        ) from None


def _probe_plain_pickle(path: pathlib.Path) -> str | None:
    """What a plain (non-torch) pickle holds: "template", the name of a refused global, or None.

    Uses the template unpickler, which can only build numpy arrays, so probing never runs code.
    """
    try:
        if sniff_format(path) != PICKLE or path.stat().st_size > 10_000_000:
            return None
        obj = _unpickle_template(path.read_bytes(), str(path))
    except _RefusedGlobal as exc:
        return exc.global_name
    except (CheckpointError, OSError):
        return None
    return "template" if isinstance(obj, Mapping) and any(k in obj for k in TEMPLATE_KEYS) else None


def read_motion_template(path: str | os.PathLike) -> MotionTemplate:
    """The statistics of ``motion_template.pkl`` that inference reads."""
    return MotionTemplate.from_dict(read_template_stats(path), source=f"motion template {path}")


def read_template_stats(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every entry of ``motion_template.pkl`` as a float32 numpy array; the keys inference needs must be present."""
    p = pathlib.Path(path)
    source = str(p)
    if not p.is_file():
        raise CheckpointError(
            f"motion template {p}: no such file. Download motion_template/{TEMPLATE_FILE} from "
            "the jdh-algo/JoyVASA model page into this path."
        )
    fmt = sniff_format(p)
    if fmt in (TORCH_ZIP, TORCH_LEGACY, SAFETENSORS):
        kind = identify_state_dict(read_checkpoint(p, MOTION_CHECKPOINT_GLOBALS))
        raise CheckpointError(
            f"motion template {p}: this is a weight file ({LABELS.get(kind, kind)}), not {TEMPLATE_FILE}. "
            "Put it in its own slot and load JoyVASA's motion_template/motion_template.pkl here."
        )
    obj = _unpickle_template(p.read_bytes(), source)
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"motion template {p}: holds a {type(obj).__name__}, expected a dict of numpy arrays. "
            f"Use JoyVASA's motion_template/{TEMPLATE_FILE}."
        )
    return validate_motion_template(obj, source)


def validate_motion_template(stats: Mapping[str, Any], source: str = "motion template") -> dict[str, np.ndarray]:
    """All entries as float32 arrays; a CheckpointError lists every key inference needs that is missing."""
    missing = [k for k in TEMPLATE_KEYS if k not in stats]
    if missing:
        raise CheckpointError(
            f"motion template {source}: missing keys {missing} (it has {sorted(map(str, stats))[:12]}). "
            f"Use JoyVASA's motion_template/{TEMPLATE_FILE}, which holds mean/std of exp and min/max of scale, t, "
            "pitch, yaw and roll."
        )
    out: dict[str, np.ndarray] = {}
    for key, value in stats.items():
        if torch.is_tensor(value):
            value = value.detach().cpu().numpy()
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise CheckpointError(
                f"motion template {source}: entry {key!r} is a {type(value).__name__}, not "
                "numbers. Use JoyVASA's motion template file."
            ) from None
        if key in TEMPLATE_KEYS and not np.isfinite(array).all():
            raise CheckpointError(
                f"motion template {source}: entry {key!r} holds NaN or Inf. Download the template again."
            )
        out[str(key)] = array
    return out
