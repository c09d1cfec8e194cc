"""LivePortrait weight files: their layouts, loading one into its network strictly, and the safetensors writer
behind ``tools/convert_liveportrait.py``.

Accepted for every slot: the official ``.pth`` release and the community (ComfyUI-LivePortraitKJ) safetensors, human
and animal (v1.0, v1.1) weights alike; they share one layout, so the caller says which variant a file is. The
stitching file comes as the official nested dict ``{group: {"module.mlp.N.*"}}``, the same without the ``module.``
prefix, or the community flat ``{group}_module.mlp.N.*``; all are normalised to the flat layout, which is the
network's own state dict. Half-precision storage is widened on load.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..liveportrait.slots import SLOT_SPECS, SLOTS, STITCHING, LivePortraitConfig, SlotSpec
from ..liveportrait.stitching import STITCHING_GROUPS
from .containers import read_checkpoint, require_tensor_dict, sniff_format
from .identify import HUBERT, LABELS, MOTION_GENERATOR, UNKNOWN, flat_keys, identify_state_dict, unwrap

VARIANTS: tuple[str, ...] = ("human", "animal_v1.0", "animal_v1.1")


def _check_slot(slot: str) -> SlotSpec:
    if slot not in SLOT_SPECS:
        raise ValueError(f"LivePortrait slot {slot!r} is not one of {SLOTS}")
    return SLOT_SPECS[slot]


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"LivePortrait weights variant {variant!r} is not one of {VARIANTS}")
    return variant


# ---------------------------------------------------------------------------------------------------------------------
# Messages


def _where_it_goes(kind: str) -> str:
    if kind in SLOTS:
        return f"put it in the {kind} slot"
    if kind == MOTION_GENERATOR:
        return ("load it with the JoyVASA motion generator loader (it drives LivePortrait, it is not one of its "
                "networks)")
    if kind == HUBERT:
        return "it belongs to the audio encoder, not to LivePortrait"
    return "check that it is a LivePortrait weight file"


# ---------------------------------------------------------------------------------------------------------------------
# Stitching layouts


def to_community_layout(nested: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Official nested stitching dict -> community flat keys: ``nested[g]["module." + k] -> flat[g + "_module." + k]``.
    Inner keys without the DDP ``module.`` prefix are accepted too."""
    flat: dict[str, torch.Tensor] = {}
    for group, inner in nested.items():
        if not isinstance(inner, Mapping):
            raise CheckpointError(f"stitching checkpoint: group {group!r} holds a {type(inner).__name__}, "
                                  "expected a dict of tensors")
        for key, value in inner.items():
            flat[f"{str(group).removesuffix('_module')}_module.{str(key).removeprefix('module.')}"] = value
    return flat


def normalize_stitching_state_dict(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Any of the three stitching layouts -> the flat community layout (the network's own key names)."""
    obj = unwrap(obj)
    if any(isinstance(v, Mapping) for v in obj.values()):
        flat = to_community_layout({k: v for k, v in obj.items() if isinstance(v, Mapping)})
        flat.update({k: v for k, v in obj.items() if not isinstance(v, Mapping)})
        return flat
    out = {}
    for key, value in obj.items():
        key = str(key).removeprefix("module.")
        head, _, tail = key.partition(".")
        if head in STITCHING_GROUPS:
            head += "_module"
        out[f"{head}.{tail.removeprefix('module.')}" if tail else key] = value
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def _summary(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return f"{len(names)} ({shown}{', ...' if len(names) > limit else ''})"


def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _convert_dtypes(sd: dict[str, torch.Tensor], dtype: torch.dtype, path: pathlib.Path,
                    slot: str) -> dict[str, torch.Tensor]:
    """Floats -> ``dtype``; BatchNorm counters -> int64; anything else where a float belongs is an error."""
    wrong = [f"{k} ({str(v.dtype).removeprefix('torch.')})" for k, v in sd.items()
             if not _is_counter(k) and not v.is_floating_point()]
    if wrong:
        raise CheckpointError(
            f"checkpoint {path} ({LABELS[slot]}): {_summary(wrong)} tensors are not floating point where weights "
            "belong; the file is damaged or was quantised/converted by a tool these networks do not support. "
            "Use the released fp32 .pth or .safetensors file."
        )
    bad_counter = [k for k, v in sd.items() if _is_counter(k) and (v.is_complex() or v.dtype == torch.bool)]
    if bad_counter:
        raise CheckpointError(f"checkpoint {path} ({LABELS[slot]}): BatchNorm counters {_summary(bad_counter)} have "
                              "an unexpected dtype; the file is damaged. Download it again.")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if _is_counter(k):
            out[k] = v.to(torch.int64)
        else:
            out[k] = v.to(dtype)
    nonfinite = [k for k, v in out.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if nonfinite:
        raise CheckpointError(f"checkpoint {path} ({LABELS[slot]}): {_summary(nonfinite)} tensors hold NaN or Inf "
                              "values; the file is corrupt or was converted with an overflow. Download it again.")
    return out


def load_liveportrait_state_dict(
    path: str | os.PathLike,
    slot: str,
    dtype: torch.dtype = torch.float32,
    variant: str = "human",
) -> dict[str, torch.Tensor]:
    """Read one LivePortrait weight file for ``slot`` and return its state dict with the network's own key names.

    The file's kind is checked against the slot from its keys (a warping file in the SPADE slot, a JoyVASA motion
    generator anywhere, ... are refused with a message saying where it belongs); fp16/bf16 storage is converted to
    ``dtype``; integer tensors where weights belong are refused. ``variant`` (human / animal_v1.0 / animal_v1.1)
    only labels messages: the layouts are identical.
    """
    _check_slot(slot)
    _check_variant(variant)
    p = pathlib.Path(path)
    obj = read_checkpoint(p)
    kind = identify_state_dict(obj)
    if kind != slot:
        if kind == UNKNOWN:
            sample = flat_keys(unwrap(obj))[:4]
            found = f"keys such as {', '.join(sample)}" if sample else f"a {type(obj).__name__}"
            raise CheckpointError(
                f"checkpoint {p} was given as the {variant} {LABELS[slot]}, but its content does not look like any "
                f"LivePortrait network (found {found}). Check that it is the right file for this slot."
            )
        raise CheckpointError(
            f"checkpoint {p} is a {LABELS[kind]} checkpoint, expected the {LABELS[slot]}; {_where_it_goes(kind)}."
        )
    obj = unwrap(obj)
    if slot == STITCHING:
        obj = normalize_stitching_state_dict(obj)
    elif isinstance(obj, Mapping) and obj and all(str(k).startswith("module.") for k in obj):
        obj = {str(k).removeprefix("module."): v for k, v in obj.items()}
    sd = require_tensor_dict(obj, p, f"a {LABELS[slot]} state dict")
    return _convert_dtypes(sd, dtype, p, slot)


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor | torch.Size | tuple[int, ...]],
    slot: str,
    path: str | os.PathLike = "<state dict>",
) -> None:
    """Strict key and shape comparison with a summarised message (counts and a few names, never a wall of keys)."""
    _check_slot(slot)

    def shape(v: Any) -> tuple[int, ...]:
        return tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v)

    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} file {list(shape(state_dict[k]))} vs network {list(shape(v))}"
        for k, v in expected.items() if k in state_dict and shape(state_dict[k]) != shape(v)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"missing keys: {_summary(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {_summary(unexpected)}")
    if mismatched:
        parts.append(f"shape mismatches: {_summary(mismatched, 2)}")
    if mismatched:
        fix = ("The file was saved for a network of another size: build the network with the file's config "
               "(the official models.yaml values for the released weights).")
    else:
        fix = ("The file is incomplete or from another version of the network; use the released "
               f"{slot}.pth or {slot}.safetensors.")
    raise CheckpointError(f"checkpoint {path} ({LABELS[slot]}) does not match the network: {'; '.join(parts)}. {fix}")


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a loaded network's weights came from (kept on the module as ``checkpoint_info``)."""

    path: str
    slot: str
    variant: str
    file_format: str


def _slot_config(spec: SlotSpec, config: Any) -> Any:
    """The slot's own config from ``config``: that config itself, a ``LivePortraitConfig`` or None (official)."""
    if config is None:
        return spec.config()
    if isinstance(config, spec.config):
        return config
    if isinstance(config, LivePortraitConfig):
        return config.of(spec.name)
    raise TypeError(f"config for {spec.name}: expected {spec.config.__name__} or LivePortraitConfig, "
                    f"got {type(config).__name__}")


def build_liveportrait_module(
    slot: str,
    path: str | os.PathLike,
    config: Any = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    variant: str = "human",
) -> nn.Module:
    """Build the ``slot`` network from ``config`` (official values when None), load ``path`` strictly and return it
    in eval mode on ``device``/``dtype`` with the spectral norm folded. The stitching MLPs always stay fp32."""
    spec = _check_slot(slot)
    module = spec.network(_slot_config(spec, config))
    sd = load_liveportrait_state_dict(path, slot, dtype=torch.float32, variant=variant)
    check_state_dict(sd, module.state_dict(), slot, path)
    module.load_state_dict(sd, strict=True)
    module.eval().requires_grad_(False)
    module.to(device=device, dtype=torch.float32 if slot == STITCHING else dtype)
    if hasattr(module, "fold_spectral_norm"):
        module.fold_spectral_norm()
    module.checkpoint_info = CheckpointInfo(str(path), slot, variant, sniff_format(path))
    return module
