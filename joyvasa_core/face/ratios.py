"""Eye and lip opening ratios, the inputs of LivePortrait's lip normalisation and eye/lip retargeting MLPs.

The MLPs were trained on ratios from LivePortrait's 203-point landmarks:

* ``eye = |upper lid middle - lower lid middle| / (|corner - other corner| + 1e-6)``, per eye;
* ``lip = |inner upper lip middle - inner lower lip middle| / (|mouth corner - other corner| + 1e-6)``.

The other conventions use the points with the same anatomical meaning, so their ratios measure the same thing
(openness over width). They are close to, not identical with, the 203-point values, because each model places its
points a little differently; the lip-normalisation threshold (0.03, a nearly closed mouth) is robust to that.

* ``mp478`` (MediaPipe face mesh): eyes 33/133 corners with 159/145 lids (image-left eye) and 362/263 with
  386/374 (image-right eye); lips 13/14 inner middles over the 61/291 corners.
* ``lmk106`` (InsightFace 2d106det): eyes from the same four points per eye the crop uses, corners 33/39 with lids
  35/40 and 87/93 with 89/94. Its inner-lip indices are not documented in the specs, so no lip ratio (``None``).
* ``lmk5``: no lids, no lips: no ratios.

Eye order is image-left first, as the 203-point "left" eye (points 0-23) comes first in the reference's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-6

# convention -> ((lid_a, lid_b, corner_a, corner_b) per eye, (inner_up, inner_down, corner_a, corner_b) for the lips)
RATIO_POINTS: dict[str, tuple[tuple[tuple[int, int, int, int], ...], tuple[int, int, int, int] | None]] = {
    "lmk203": (((6, 18, 0, 12), (30, 42, 24, 36)), (90, 102, 48, 66)),
    "mp478": (((159, 145, 33, 133), (386, 374, 362, 263)), (13, 14, 61, 291)),
    "lmk106": (((35, 40, 33, 39), (89, 94, 87, 93)), None),
}


@dataclass(frozen=True)
class FaceRatios:
    """Opening ratios of one face: two eyes (image-left first) and the lips; ``None`` where the landmarks lack them."""

    eye_left: float | None
    eye_right: float | None
    lip: float | None
    convention: str

    def __repr__(self) -> str:
        def f(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        return f"FaceRatios(eyes {f(self.eye_left)}/{f(self.eye_right)}, lip {f(self.lip)}, from {self.convention})"


def _ratio(pts: np.ndarray, idx: tuple[int, int, int, int]) -> np.ndarray:
    a, b, c, d = idx
    return np.linalg.norm(pts[..., a, :] - pts[..., b, :], axis=-1) / (
        np.linalg.norm(pts[..., c, :] - pts[..., d, :], axis=-1) + EPS
    )


def eye_ratio(landmarks: np.ndarray, convention: str = "lmk203") -> np.ndarray | None:
    """(..., 2) eye openings (image-left, image-right) of (..., N, 2) landmarks, or None for this convention."""
    spec = RATIO_POINTS.get(convention)
    if spec is None:
        return None
    pts = np.asarray(landmarks, dtype=np.float32)[..., :2]
    return np.stack([_ratio(pts, spec[0][0]), _ratio(pts, spec[0][1])], axis=-1)


def lip_ratio(landmarks: np.ndarray, convention: str = "lmk203") -> np.ndarray | None:
    """(..., 1) lip opening of (..., N, 2) landmarks, or None for this convention."""
    spec = RATIO_POINTS.get(convention)
    if spec is None or spec[1] is None:
        return None
    pts = np.asarray(landmarks, dtype=np.float32)[..., :2]
    return _ratio(pts, spec[1])[..., None]


def face_ratios(landmarks: np.ndarray, convention: str) -> FaceRatios:
    """Both ratios of one face as plain floats; missing ones are None rather than a guess."""
    eyes = eye_ratio(landmarks, convention)
    lip = lip_ratio(landmarks, convention)
    return FaceRatios(
        eye_left=None if eyes is None else float(eyes[0]),
        eye_right=None if eyes is None else float(eyes[1]),
        lip=None if lip is None else float(lip[0]),
        convention=convention,
    )
