"""``MotionSequence``: the generated motion as it travels between stages (``checkpoints/motion_sequence.py`` writes
and reads it as a file).

It carries both views: the generator's normalised (N,73) frames, and the de-normalised LivePortrait quantities
(exp, scale, t, angles and R) after pose smoothing, plus the raw pose so smoothing can be changed without sampling
again. Angles are in degrees; R follows LivePortrait's transposed convention (keypoints are row vectors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import MotionError
from ..keypoints import rotation_matrix
from ..validate import frames_problem
from .smoothing import CausalPoseSmoother, PoseSmoothing
from .template import POSE_SLICE, MotionTemplate, split_pose

FRAME_FIELDS = ("coef", "pose_raw", "exp", "scale", "t", "pitch", "yaw", "roll", "R")
OPTIONAL_FIELDS = ("eye_open",)  # per-frame tracks only some motions carry (None otherwise)


def non_finite_fields(tensors: dict[str, torch.Tensor]) -> str:
    """Which tensors hold NaN or Inf, and in how many frames: ``"exp in 50 of 50 frames, R in 50 of 50 frames"``
    (empty when all are finite). A motion is checked wherever it is made or read, since one NaN blacks a frame."""
    parts = []
    for key, x in tensors.items():
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            rows = int((~torch.isfinite(x.reshape(x.shape[0], -1))).any(dim=1).sum())
            parts.append(f"{key} in {rows} of {x.shape[0]} frames")
    return ", ".join(parts)


def origin(settings: dict[str, Any]) -> str:
    """Where a motion came from, for messages: its source and edits, or the sampler settings that made it."""
    keys = ("source", "scheduler", "num_steps", "cfg_scale", "seed", "edits")
    said = [f"{k} {settings[k]}" for k in keys if settings.get(k) not in (None, [], "")]
    return f" (made by {', '.join(said)})" if said else ""


@dataclass(frozen=True, eq=False)
class MotionSequence:
    """Motion for N frames at ``fps``: normalised coefficients and smoothed, de-normalised LivePortrait motion."""

    coef: torch.Tensor
    pose_raw: torch.Tensor
    exp: torch.Tensor
    scale: torch.Tensor
    t: torch.Tensor
    pitch: torch.Tensor
    yaw: torch.Tensor
    roll: torch.Tensor
    R: torch.Tensor
    fps: int = 25
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    eye_open: torch.Tensor | None = None  # (N,1) eye openness, 1 = the source face's own, 0 = closed (blinks)

    def __post_init__(self) -> None:
        n = self.coef.shape[0]
        present = [k for k in FRAME_FIELDS + OPTIONAL_FIELDS if getattr(self, k) is not None]
        bad = {k: tuple(getattr(self, k).shape) for k in present if getattr(self, k).shape[0] != n}
        if bad:
            raise ValueError(f"MotionSequence: every field must have {n} frames, got {bad}")
        problem = frames_problem(n, "the motion")
        if problem:
            raise MotionError(problem)
        non_finite = non_finite_fields({k: getattr(self, k) for k in present})
        if non_finite:
            raise MotionError(f"the motion holds NaN or Inf ({non_finite}){origin(self.settings)}; it cannot be "
                              "rendered (the face would be black); make it again with other settings.")

    @classmethod
    def from_coef(
        cls,
        coef: torch.Tensor,
        template: MotionTemplate,
        smoothing: PoseSmoothing | CausalPoseSmoother | None = None,
        fps: int = 25,
        seed: int | None = None,
        settings: dict[str, Any] | None = None,
    ) -> MotionSequence:
        """De-normalise (N,73) frames with ``template`` and smooth the pose (exp stays raw, R from smoothed angles);
        a :class:`CausalPoseSmoother` smooths them as the next frames of a stream."""
        coef = coef.detach().to("cpu", torch.float32)
        exp = template.denormalize(coef)["exp"]
        pose_raw = template.denormalize_pose(coef[:, POSE_SLICE])
        return cls._smoothed(coef, pose_raw, exp, smoothing or PoseSmoothing(), fps=fps, seed=seed,
                             settings=settings or {})

    @classmethod
    def _smoothed(
        cls, coef: torch.Tensor, pose_raw: torch.Tensor, exp: torch.Tensor,
        smoothing: PoseSmoothing | CausalPoseSmoother, *, fps: int,
        seed: int | None, settings: dict[str, Any],
    ) -> MotionSequence:
        """The sequence with its pose smoothed by ``smoothing`` from ``pose_raw``; ``settings`` records how."""
        pose = split_pose(smoothing(pose_raw))
        rot = rotation_matrix(pose["pitch"], pose["yaw"], pose["roll"])
        return cls(coef=coef, pose_raw=pose_raw, exp=exp, R=rot, fps=fps, seed=seed,
                   settings={**settings, **smoothing.settings()}, **pose)

    def resmooth(self, smoothing: PoseSmoothing) -> MotionSequence:
        """Same frames, other pose smoothing (from the stored raw pose; no template or sampling needed)."""
        return self._smoothed(self.coef, self.pose_raw, self.exp, smoothing, fps=self.fps, seed=self.seed,
                              settings=self.settings)

    @property
    def n_frames(self) -> int:
        return int(self.coef.shape[0])

    @property
    def duration(self) -> float:
        """Seconds of video the motion covers."""
        return self.n_frames / self.fps

    def __len__(self) -> int:
        return self.n_frames

    def __repr__(self) -> str:
        s = self.settings
        parts = [f"{self.n_frames} frames", f"{self.duration:.2f} s @ {self.fps} fps", f"seed {self.seed}"]
        if "scheduler" in s:
            parts.append(f"{s['scheduler']} {s.get('num_steps')} steps")
        if "cfg_scale" in s:
            parts.append(f"cfg {s['cfg_scale']}")
        if "pe_mode" in s:
            parts.append(f"pe {s['pe_mode']}")
        parts.append(f"smoothing {s.get('smoothing', '?')}")
        return f"MotionSequence({', '.join(parts)})"

    @property
    def nbytes(self) -> int:
        """Bytes of the frame tensors: the size of the saved file, less its small header."""
        return sum(getattr(self, k).nbytes for k in FRAME_FIELDS + OPTIONAL_FIELDS if getattr(self, k) is not None)

