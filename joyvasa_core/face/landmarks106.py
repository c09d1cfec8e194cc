"""MediaPipe face-mesh points -> the 106-point (InsightFace 2d106det) index layout the crop maths was tuned on.

LivePortrait's crop (scale 2.3, vy -0.125) takes its centre and size from the extent of the
whole landmark cloud. The 106-point cloud stops at the brows, while the 478-point mesh also covers the forehead, so
cropping on the raw mesh gives a crop ~16 % larger and ~12 px higher (size 244 vs 210 px, centre y 94 vs 107 on the
512 px test photo; crop corners up to 34 px apart). Re-expressing the mesh in the 106 layout makes the same crop
parameters mean the same crop for both detectors.

Layout (the golden crop fixture's ``in.lmk106`` was built this way from ``in.mp478``; tests check the match):

* 0-32: the jaw part of the mesh's face oval, from the image-left ear (162) through the chin (152) to the
  image-right ear (389), resampled to 33 points equally spaced by arc length (the mesh's oval is unevenly spaced).
* 33-42 / 87-96: eye A (image-left) / eye B; offsets 0/2/6/7 are corner / upper-lid middle / other corner /
  lower-lid middle, so the crop's eye anchors (33,35,40,39) and (87,89,94,93) are eye centres.
* 43-51 / 97-105: brows (upper edge outer -> inner, then lower edge inner -> outer).
* 52-71: mouth; 52 and 61 are the corners (the crop's mouth anchor), 52-61 the outer upper lip, 62-69 the outer
  lower lip, 70/71 the inner lip middles.
* 72-86: nose; bridge to tip to base (72-81), then the alae.

Only mesh points 0-467 are used, so plain 468-point meshes (no iris refinement) map too.
"""

from __future__ import annotations

import numpy as np

from ..errors import FaceInputError

# Face-oval jaw, ear to ear through the chin (MediaPipe FACEMESH_FACE_OVAL without the forehead part).
JAW_CONTOUR: tuple[int, ...] = (
    162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
    377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389,
)
JAW_POINTS = 33

# Mesh index of each 106-layout point 33-105 (the jaw 0-32 is resampled, not picked).
EYE_A = (33, 246, 159, 158, 157, 173, 133, 145, 153, 163)
BROW_A = (70, 63, 105, 66, 107, 55, 65, 52, 53)
MOUTH = (61, 185, 40, 39, 37, 0, 267, 269, 270, 291, 375, 321, 405, 314, 17, 84, 181, 91, 13, 14)
NOSE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327, 64, 294, 48)
EYE_B = (263, 466, 386, 385, 384, 398, 362, 374, 380, 390)
BROW_B = (300, 293, 334, 296, 336, 285, 295, 282, 283)
PICKED: tuple[int, ...] = EYE_A + BROW_A + MOUTH + NOSE + EYE_B + BROW_B

MESH_SIZES = (468, 478)


def _resample_arc_length(contour: np.ndarray, count: int) -> np.ndarray:
    """(B, K, 2) polylines -> (B, count, 2) points equally spaced along each, both ends kept."""
    seg = np.linalg.norm(np.diff(contour, axis=1), axis=-1)  # (B, K-1)
    cum = np.concatenate([np.zeros_like(seg[:, :1]), np.cumsum(seg, axis=1)], axis=1)  # (B, K)
    target = np.linspace(0.0, 1.0, count)[None, :] * cum[:, -1:]  # (B, count)
    # Segment of each target: the last vertex whose arc length is <= target, kept inside the polyline.
    idx = np.clip((cum[:, None, :] <= target[:, :, None]).sum(-1) - 1, 0, seg.shape[1] - 1)  # (B, count)
    start = np.take_along_axis(cum, idx, axis=1)
    length = np.take_along_axis(seg, idx, axis=1)
    frac = np.where(length > 0, (target - start) / np.where(length > 0, length, 1.0), 0.0)
    frac = np.clip(frac, 0.0, 1.0)[..., None]
    a = np.take_along_axis(contour, idx[..., None], axis=1)
    b = np.take_along_axis(contour, idx[..., None] + 1, axis=1)
    return a + (b - a) * frac


def mesh478_to_lmk106(points: np.ndarray) -> np.ndarray:
    """(..., 478, 2) MediaPipe mesh pixels -> (..., 106, 2) float32 in the 106-point layout (see module docstring).

    Accepts (478, 2) or batched (B, 478, 2) (468-point meshes too; a z column is ignored).
    """
    pts = np.asarray(points)
    if pts.ndim < 2 or pts.shape[-2] not in MESH_SIZES or pts.shape[-1] < 2:
        raise FaceInputError(
            f"mesh -> 106 points: expected MediaPipe mesh landmarks of shape (..., 478, 2), got {pts.shape}; "
            "pass the bundled detector's mp478 points."
        )
    lead = pts.shape[:-2]
    flat = pts[..., :2].reshape(-1, pts.shape[-2], 2).astype(np.float64)
    jaw = _resample_arc_length(flat[:, list(JAW_CONTOUR)], JAW_POINTS)
    out = np.concatenate([jaw, flat[:, list(PICKED)]], axis=1)
    return out.astype(np.float32).reshape(*lead, 106, 2)
