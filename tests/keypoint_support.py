"""Keypoint options and motion frames as the fixtures write them (reference flag names, angles in degrees)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from joyvasa_core.keypoints import DRIVING_OPTIONS, KeypointOptions, MotionFrames, rotation_matrix

# The reference's flag names (JoyVASA argument config, fixture recipes) -> KeypointOptions fields.
FLAG_NAMES = {
    "flag_relative_motion": "relative_adjustments",
    "flag_stitching": "stitching",
    "flag_normalize_lip": "normalize_lip",
    "flag_eye_retargeting": "eye_retargeting",
    "flag_lip_retargeting": "lip_retargeting",
    "lip_normalize_threshold": "lip_normalize_threshold",
    "c_d_lip": "lip_normalize_target",
    "driving_multiplier": "driving_multiplier",
    "animation_region": "animation_region",
}


def options_from_flags(flags: Mapping[str, Any], base: KeypointOptions | None = None) -> KeypointOptions:
    """Options from reference-style flag names; unknown keys are ignored, missing ones keep ``base``."""
    kw: dict[str, Any] = {attr: flags[key] for key, attr in FLAG_NAMES.items() if key in flags}
    option = flags.get("driving_option")
    if isinstance(option, str):
        kw["driving_option"] = next((o for o in DRIVING_OPTIONS if option.startswith(o)), option)
    return replace(base or KeypointOptions(), **kw)


def frames_from_angles(exp: torch.Tensor, scale: torch.Tensor, t: torch.Tensor, pitch: torch.Tensor,
                       yaw: torch.Tensor, roll: torch.Tensor) -> MotionFrames:
    """Driving frames with R built from degrees by ``rotation_matrix``."""
    n = exp.shape[0]
    return MotionFrames(exp.reshape(n, -1, 3), scale.reshape(n, 1), t.reshape(n, 3), rotation_matrix(pitch, yaw, roll))
