"""What a loaded weight file is, from its key names: one of the five LivePortrait slots, the JoyVASA motion
generator, a bare HuBERT, or unrecognised. Every reader asks here, so a file in the wrong slot is named the same way
whichever loader it was given to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..liveportrait.slots import APPEARANCE, MOTION_EXTRACTOR, SLOT_SPECS, SPADE, STITCHING, WARPING
from ..liveportrait.stitching import STITCHING_GROUPS

MOTION_GENERATOR = "joyvasa_motion_generator"
HUBERT = "hubert"
UNKNOWN = "unknown"

LABELS: dict[str, str] = {
    **{name: spec.label for name, spec in SLOT_SPECS.items()},
    MOTION_GENERATOR: "JoyVASA motion generator (motion_generator_hubert_chinese.pt)",
    HUBERT: "HuBERT audio encoder",
    UNKNOWN: "unrecognised",
}


def unwrap(obj: Any) -> Any:
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


def flat_keys(obj: Any) -> list[str]:
    """Key names one level deep (``group.key`` for a nested dict)."""
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
    """Which network a loaded checkpoint belongs to, from its key names: a slot name, ``MOTION_GENERATOR``,
    ``HUBERT`` or ``UNKNOWN``. Works on wrapped, nested and flat layouts."""
    if isinstance(obj, Mapping) and "model" in obj and ("args" in obj or "iter" in obj):
        if any(str(k).startswith(("denoising_net.", "audio_encoder.")) for k in flat_keys(obj["model"])):
            return MOTION_GENERATOR
    keys = [k.removeprefix("module.") for k in flat_keys(unwrap(obj))]
    if not keys:
        return UNKNOWN

    def share(*prefixes: str) -> float:
        return sum(k.startswith(prefixes) for k in keys) / len(keys)

    if share("denoising_net.", "start_motion_feat", "start_audio_feat", "null_audio_feat", "audio_feature_map.",
             "diffusion_sched.") > 0.05:
        return MOTION_GENERATOR
    if share(*STITCHING_GROUPS) > 0.5:
        return STITCHING
    if share("dense_motion_network.") > 0.3:
        return WARPING
    if share("G_middle_", "up_0.", "up_1.", "conv_img.") > 0.5:
        return SPADE
    if share("detector.") > 0.9:
        return MOTION_EXTRACTOR
    if share("resblocks_3d.", "down_blocks.", "first.", "second.") > 0.9 and any(
        k.startswith("resblocks_3d.") for k in keys
    ):
        return APPEARANCE
    if share("feature_extractor.conv_layers.", "encoder.layers.", "feature_projection.", "encoder.pos_conv_embed.",
             "hubert.") > 0.5:
        return HUBERT
    return UNKNOWN
