"""LivePortrait weight files: what a file is, its layouts, and loading it into a network strictly.

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
from .files import read_checkpoint, require_tensor_dict, save_safetensors, sniff_format

APPEARANCE = "appearance_feature_extractor"
MOTION = "motion_extractor"
WARPING = "warping_module"
SPADE = "spade_generator"
STITCHING = "stitching_retargeting_module"
SLOTS: tuple[str, ...] = (APPEARANCE, MOTION, WARPING, SPADE, STITCHING)
JOYVASA_MOTION = "joyvasa_motion_generator"
HUBERT = "hubert"
UNKNOWN = "unknown"

VARIANTS: tuple[str, ...] = ("human", "animal_v1.0", "animal_v1.1")

STITCHING_GROUPS: tuple[str, ...] = ("retarget_shoulder", "retarget_mouth", "retarget_eye")

LABELS: dict[str, str] = {
    APPEARANCE: "LivePortrait appearance feature extractor (F, appearance_feature_extractor)",
    MOTION: "LivePortrait motion extractor (M, motion_extractor)",
    WARPING: "LivePortrait warping module (W, warping_module)",
    SPADE: "LivePortrait SPADE generator (G, spade_generator)",
    STITCHING: "LivePortrait stitching/retargeting module (S, stitching_retargeting_module)",
    JOYVASA_MOTION: "JoyVASA motion generator (motion_generator_hubert_chinese.pt)",
    HUBERT: "HuBERT audio encoder",
    UNKNOWN: "unrecognised",
}

_ALIASES: dict[str, str] = {
    "f": APPEARANCE, "appearance": APPEARANCE, "appearance_feature_extractor": APPEARANCE,
    "m": MOTION, "motion": MOTION, "motion_extractor": MOTION,
    "w": WARPING, "warping": WARPING, "warping_module": WARPING, "warp": WARPING,
    "g": SPADE, "spade": SPADE, "spade_generator": SPADE, "generator": SPADE, "decoder": SPADE,
    "s": STITCHING, "stitching": STITCHING, "stitching_retargeting_module": STITCHING, "retargeting": STITCHING,
}


def canonical_slot(slot: str) -> str:
    """Slot name from any accepted alias (``"F"``, ``"warping"``, ``"spade_generator"``...)."""
    key = slot.strip().lower().removesuffix(".pth").removesuffix(".safetensors")
    if key not in _ALIASES:
        raise ValueError(f"LivePortrait slot {slot!r} is not one of {SLOTS}")
    return _ALIASES[key]


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"LivePortrait weights variant {variant!r} is not one of {VARIANTS}")
    return variant


# ---------------------------------------------------------------------------------------------------------------------
# Identification


def _unwrap(obj: Any) -> Any:
    """Strip the wrappers training scripts and converters add: ``{"state_dict": sd}``, ``{"model": sd}``."""
    for _ in range(2):
        if isinstance(obj, Mapping):
            for key in ("state_dict", "model", "module"):
                inner = obj.get(key)
                if isinstance(inner, Mapping) and not isinstance(inner, torch.Tensor) and (
                    len(obj) == 1 or key == "model"
                ):
                    obj = inner
                    break
            else:
                return obj
    return obj


def _flat_keys(obj: Any) -> list[str]:
    if not isinstance(obj, Mapping):
        return []
    keys = []
    for k, v in obj.items():
        if isinstance(v, Mapping):
            keys += [f"{k}.{kk}" for kk in v]
        else:
            keys.append(str(k))
    return keys


def identify_state_dict(obj: Any) -> str:
    """Which network a loaded checkpoint belongs to, from its key names: a slot name, ``JOYVASA_MOTION``,
    ``HUBERT`` or ``UNKNOWN``. Works on wrapped, nested and flat layouts."""
    if isinstance(obj, Mapping) and "model" in obj and ("args" in obj or "iter" in obj):
        if any(str(k).startswith(("denoising_net.", "audio_encoder.")) for k in _flat_keys(obj["model"])):
            return JOYVASA_MOTION
    keys = [k.removeprefix("module.") for k in _flat_keys(_unwrap(obj))]
    if not keys:
        return UNKNOWN

    def share(*prefixes: str) -> float:
        return sum(k.startswith(prefixes) for k in keys) / len(keys)

    if share("denoising_net.", "start_motion_feat", "start_audio_feat", "null_audio_feat", "audio_feature_map.",
             "diffusion_sched.") > 0.05:
        return JOYVASA_MOTION
    if share(*STITCHING_GROUPS) > 0.5:
        return STITCHING
    if share("dense_motion_network.") > 0.3:
        return WARPING
    if share("G_middle_", "up_0.", "up_1.", "conv_img.") > 0.5:
        return SPADE
    if share("detector.") > 0.9:
        return MOTION
    if share("resblocks_3d.", "down_blocks.", "first.", "second.") > 0.9 and any(
        k.startswith("resblocks_3d.") for k in keys
    ):
        return APPEARANCE
    if share("feature_extractor.conv_layers.", "encoder.layers.", "feature_projection.", "encoder.pos_conv_embed.",
             "hubert.") > 0.5:
        return HUBERT
    return UNKNOWN


def _where_it_goes(kind: str) -> str:
    if kind in SLOTS:
        return f"put it in the {kind} slot"
    if kind == JOYVASA_MOTION:
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


def to_official_layout(flat: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Community flat stitching keys -> official nested dict: split at the first dot, drop ``_module`` from the
    group, re-prefix the inner key with ``module.``."""
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        head, _, tail = key.partition(".")
        nested.setdefault(head.removesuffix("_module"), {})["module." + tail] = value
    return nested


def normalize_stitching_state_dict(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Any of the three stitching layouts -> the flat community layout (the network's own key names)."""
    obj = _unwrap(obj)
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
    slot = canonical_slot(slot)
    _check_variant(variant)
    p = pathlib.Path(path)
    obj = read_checkpoint(p)
    kind = identify_state_dict(obj)
    if kind != slot:
        if kind == UNKNOWN:
            sample = _flat_keys(_unwrap(obj))[:4]
            found = f"keys such as {', '.join(sample)}" if sample else f"a {type(obj).__name__}"
            raise CheckpointError(
                f"checkpoint {p} was given as the {variant} {LABELS[slot]}, but its content does not look like any "
                f"LivePortrait network (found {found}). Check that it is the right file for this slot."
            )
        raise CheckpointError(
            f"checkpoint {p} is a {LABELS[kind]} checkpoint, expected the {LABELS[slot]}; {_where_it_goes(kind)}."
        )
    obj = _unwrap(obj)
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
    slot = canonical_slot(slot)

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


def _network_class(slot: str) -> tuple[type[nn.Module], type, str]:
    """(network class, config class, attribute of LivePortraitConfig) of a slot, imported on demand."""
    from ..liveportrait import config as cfg

    if slot == APPEARANCE:
        from ..liveportrait.appearance import AppearanceFeatureExtractor

        return AppearanceFeatureExtractor, cfg.AppearanceConfig, "appearance"
    if slot == MOTION:
        from ..liveportrait.motion_extractor import MotionExtractor

        return MotionExtractor, cfg.MotionExtractorConfig, "motion"
    if slot == WARPING:
        from ..liveportrait.warping import WarpingNetwork

        return WarpingNetwork, cfg.WarpingConfig, "warping"
    if slot == SPADE:
        from ..liveportrait.spade import SPADEDecoder

        return SPADEDecoder, cfg.SpadeConfig, "spade"
    from ..liveportrait.stitching import StitchingRetargetingNetwork

    return StitchingRetargetingNetwork, cfg.StitchingConfig, "stitching"


def _resolve_config(slot: str, config: Any) -> Any:
    net_cls, cfg_cls, attr = _network_class(slot)
    if config is None or isinstance(config, cfg_cls):
        return config or cfg_cls()
    if hasattr(config, attr) and isinstance(getattr(config, attr), cfg_cls):
        return getattr(config, attr)
    if isinstance(config, Mapping):
        from ..liveportrait.config import LivePortraitConfig

        section = f"{slot}_params"
        if section in config or attr in config or "model_params" in config:
            return getattr(LivePortraitConfig.from_dict(dict(config)), attr)
        return cfg_cls.from_dict(dict(config))
    raise TypeError(f"config for {slot}: expected {cfg_cls.__name__}, LivePortraitConfig or a dict, "
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
    slot = canonical_slot(slot)
    net_cls, _, _ = _network_class(slot)
    module = net_cls(_resolve_config(slot, config))
    sd = load_liveportrait_state_dict(path, slot, dtype=torch.float32, variant=variant)
    check_state_dict(sd, module.state_dict(), slot, path)
    module.load_state_dict(sd, strict=True)
    module.eval().requires_grad_(False)
    module.to(device=device, dtype=torch.float32 if slot == STITCHING else dtype)
    if hasattr(module, "fold_spectral_norm"):
        module.fold_spectral_norm()
    module.checkpoint_info = CheckpointInfo(str(path), slot, variant, sniff_format(path))
    return module


def guess_variant(path: str | os.PathLike) -> str:
    """Best guess of the weights variant from the folder names the official and community releases use; the
    caller's own choice always wins (the files themselves are indistinguishable)."""
    parts = [x.lower() for x in pathlib.Path(path).parts]
    if any("animal" in x for x in parts):
        return "animal_v1.1" if any(x.endswith("v1.1") for x in parts) else "animal_v1.0"
    return "human"


# ---------------------------------------------------------------------------------------------------------------------
# Saving


def save_community_safetensors(
    state_dict: Mapping[str, Any],
    path: str | os.PathLike,
    slot: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write weights in the community safetensors layout (stitching flattened; other slots unchanged)."""
    sd: Mapping[str, Any] = _unwrap(state_dict)
    is_stitching = (slot is not None and canonical_slot(slot) == STITCHING) or identify_state_dict(sd) == STITCHING
    if is_stitching:
        sd = normalize_stitching_state_dict(sd)
    sd = require_tensor_dict(sd, path, "a state dict")
    save_safetensors(sd, path, metadata)


def save_official_checkpoint(state_dict: Mapping[str, Any], path: str | os.PathLike, slot: str) -> None:
    """Write weights as the official release does: ``torch.save`` of the flat state dict, or for the stitching
    module the nested ``{group: {"module.mlp.N.*"}}`` dict."""
    slot = canonical_slot(slot)
    sd: Any = _unwrap(state_dict)
    if slot == STITCHING:
        sd = to_official_layout(normalize_stitching_state_dict(sd))
        sd = {g: {k: v.detach().cpu().clone() for k, v in inner.items()} for g, inner in sd.items()}
    else:
        sd = {k: v.detach().cpu().clone() for k, v in require_tensor_dict(sd, path).items()}
    torch.save(sd, str(path))
