"""Mouth and eye opening of a motion, read from its expression keypoints.

A motion carries the expression deformation ``exp`` of LivePortrait's 21 implicit keypoints, not landmarks, so the
openings here are proxies: the vertical spread of the lip keypoints (6, 12, 14, 17, 19, 20) and of the eye keypoints
(11, 13, 15, 16, 18). The face's own canonical keypoints are the same in every frame, so a change of spread is a change
of opening; the values are in keypoint units, for comparing frames of one motion, not faces.
"""

from __future__ import annotations

import torch

from ..keypoints import EYE_KEYPOINTS, LIP_KEYPOINTS
from .sequence import MotionSequence


def _spread_y(exp: torch.Tensor, rows: tuple[int, ...]) -> torch.Tensor:
    y = exp.reshape(exp.shape[0], -1, 3)[:, list(rows), 1].float()
    return y.max(dim=1).values - y.min(dim=1).values


def mouth_opening(motion: MotionSequence) -> torch.Tensor:
    """(N,) vertical spread of the lip keypoints' expression."""
    return _spread_y(motion.exp, LIP_KEYPOINTS)


def eye_opening(motion: MotionSequence) -> torch.Tensor:
    """(N,) the eye-openness track when the motion has one (1 = open), else the eye keypoints' vertical spread."""
    if motion.eye_open is not None:
        return motion.eye_open.reshape(-1).float()
    return _spread_y(motion.exp, EYE_KEYPOINTS)
