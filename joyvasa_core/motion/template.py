"""Motion template: maps the generator's normalised 73-d frames to LivePortrait's expression and head pose.

Layout per frame: [0:63] exp (21 keypoints x xyz), [63] scale, [64:67] t, [67] pitch, [68] yaw,
[69] roll (degrees), [70:73] unused at inference. exp is z-scored; pose values are min-max scaled ("mix" mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

MOTION_DIM = 73
EXP_SLICE = slice(0, 63)
SCALE_SLICE = slice(63, 64)
T_SLICE = slice(64, 67)
PITCH_SLICE = slice(67, 68)
YAW_SLICE = slice(68, 69)
ROLL_SLICE = slice(69, 70)
POSE_SLICE = slice(63, 70)
POSE_NAMES = ("scale", "t", "pitch", "yaw", "roll")
POSE_SIZES = {"scale": 1, "t": 3, "pitch": 1, "yaw": 1, "roll": 1}
# The statistics inference reads; the released file holds 45 keys, the rest are training-only.
TEMPLATE_KEYS = ("mean_exp", "std_exp") + tuple(f"{m}_{q}" for q in POSE_NAMES for m in ("min", "max"))
TRAIN_EPS = 1e-9


def _as_tensor(value: Any) -> torch.Tensor:
    if torch.is_tensor(value):
        return value.detach().to("cpu", torch.float32).reshape(-1)
    return torch.as_tensor(np.asarray(value, dtype=np.float32)).reshape(-1)


@dataclass(frozen=True, eq=False)
class MotionTemplate:
    """The statistics inference reads from ``motion_template.pkl``: exp mean/std, pose min/max."""

    mean_exp: torch.Tensor
    std_exp: torch.Tensor
    min_pose: torch.Tensor
    max_pose: torch.Tensor

    @classmethod
    def from_dict(cls, stats: Mapping[str, Any], source: str = "motion template") -> MotionTemplate:
        """Build from the pickled dict (numpy arrays or tensors); only the 12 keys inference uses are required."""
        missing = [k for k in TEMPLATE_KEYS if k not in stats]
        if missing:
            raise CheckpointError(
                f"{source}: missing keys {missing} (found {sorted(stats)[:12]}...). Load JoyVASA's "
                "motion_template/motion_template.pkl into the motion template slot."
            )
        values = {k: _as_tensor(stats[k]) for k in TEMPLATE_KEYS}
        expected = {"mean_exp": 63, "std_exp": 63}
        for q, n in POSE_SIZES.items():
            expected[f"min_{q}"] = n
            expected[f"max_{q}"] = n
        wrong = {k: int(values[k].numel()) for k, n in expected.items() if values[k].numel() != n}
        if wrong:
            raise CheckpointError(f"{source}: wrong sizes {wrong}, expected {expected}. Is this the JoyVASA template?")
        min_pose = torch.cat([values[f"min_{q}"] for q in POSE_NAMES])
        max_pose = torch.cat([values[f"max_{q}"] for q in POSE_NAMES])
        return cls(values["mean_exp"], values["std_exp"], min_pose, max_pose)

    def denormalize(self, coef: torch.Tensor) -> dict[str, torch.Tensor]:
        """(..., 73) normalised frames -> exp (...,21,3), scale (...,1), t (...,3), pitch/yaw/roll (...,1) degrees."""
        if coef.shape[-1] != MOTION_DIM:
            raise ValueError(f"motion template: frames must have {MOTION_DIM} values, got {coef.shape[-1]}")
        dev = dict(device=coef.device, dtype=coef.dtype)
        exp = coef[..., EXP_SLICE] * self.std_exp.to(**dev) + self.mean_exp.to(**dev)
        pose = self.denormalize_pose(coef[..., POSE_SLICE])
        return {"exp": exp.reshape(*coef.shape[:-1], 21, 3), **split_pose(pose)}

    def denormalize_pose(self, pose_coef: torch.Tensor) -> torch.Tensor:
        """(..., 7) normalised [scale, tx, ty, tz, pitch, yaw, roll] -> physical units (no eps, as the wrapper)."""
        lo = self.min_pose.to(device=pose_coef.device, dtype=pose_coef.dtype)
        hi = self.max_pose.to(device=pose_coef.device, dtype=pose_coef.dtype)
        return pose_coef * (hi - lo) + lo



def split_pose(pose: torch.Tensor) -> dict[str, torch.Tensor]:
    """(..., 7) -> scale (...,1), t (...,3), pitch, yaw, roll (...,1)."""
    return {
        "scale": pose[..., 0:1],
        "t": pose[..., 1:4],
        "pitch": pose[..., 4:5],
        "yaw": pose[..., 5:6],
        "roll": pose[..., 6:7],
    }
