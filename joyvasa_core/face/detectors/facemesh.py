"""MediaPipe face mesh (468 points) as plain PyTorch, plus the rotated face ROI it runs on.

The network mirrors ``face_landmark.tflite`` of the mediapipe 0.10.21 wheel (Apache-2.0). The ROI follows
MediaPipe's ``face_detection_front_detection_to_roi`` graph: the detection box centre, rotated so the eyes
(keypoints 0 -> 1) are horizontal, made square on its long side and scaled by 1.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from .mp_layers import BlazeResidual, TFConv2d, TFPReLU


@dataclass(frozen=True)
class FaceMeshConfig:
    """Input size, ROI scale and face-presence threshold of MediaPipe's face landmark graph."""

    input_size: int = 192
    roi_scale: float = 1.5
    presence_threshold: float = 0.5


@dataclass(frozen=True)
class RotatedRect:
    """A square ROI in image pixels: centre, side length and rotation (radians, image y axis down)."""

    cx: float
    cy: float
    size: float
    angle: float

    def to_crop(self, out_size: int) -> np.ndarray:
        """2×3 affine image -> crop in continuous coordinates: the rect's corners onto the crop's corners (0 and
        out_size). Give it to OpenCV through :func:`cv2_affine`."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = out_size / self.size
        # crop = k · Rᵀ (p − centre) + out_size/2, R = [[c, −s], [s, c]].
        m = np.array([[k * c, k * s, 0.0], [-k * s, k * c, 0.0]])
        m[:, 2] = out_size / 2 - m[:, :2] @ np.array([self.cx, self.cy])
        return m

    def project(self, pts: np.ndarray, in_size: float) -> np.ndarray:
        """Crop points (…, 2) in model-input pixels -> image pixels (MediaPipe LandmarkProjection)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        u = (pts[..., 0] / in_size - 0.5) * self.size
        v = (pts[..., 1] / in_size - 0.5) * self.size
        return np.stack([c * u - s * v + self.cx, s * u + c * v + self.cy], -1)


def cv2_affine(m: np.ndarray) -> np.ndarray:
    """A 2×3 affine between continuous coordinates (pixel i covers [i, i + 1), MediaPipe's normalised frame times
    the size) -> the matrix ``cv2.warpAffine`` needs (pixel i sits at i): y + 0.5 = A (x + 0.5) + t.

    Without it every warp samples half an output pixel off, always towards the same side, so a face and its mirror
    image are seen shifted in opposite directions and their landmarks disagree by a pixel or more.
    """
    m = np.asarray(m, dtype=np.float64)
    return np.concatenate([m[:, :2], m[:, 2:] + 0.5 * m[:, :2].sum(1, keepdims=True) - 0.5], axis=1)


def rect_from_points(box_xyxy: np.ndarray, start: np.ndarray, end: np.ndarray, scale: float) -> RotatedRect:
    """DetectionsToRects + RectTransformation: box centre, angle of start -> end, long side × scale, squared."""
    angle = float(np.arctan2(end[1] - start[1], end[0] - start[0]))
    cx = float(box_xyxy[0] + box_xyxy[2]) / 2
    cy = float(box_xyxy[1] + box_xyxy[3]) / 2
    side = max(float(box_xyxy[2] - box_xyxy[0]), float(box_xyxy[3] - box_xyxy[1])) * scale
    return RotatedRect(cx, cy, side, angle)


def warp_roi(image: np.ndarray, rect: RotatedRect, out_size: int, flip: bool = False) -> np.ndarray:
    """Bilinear crop of a rotated ROI with replicated borders (ImageToTensor's default).

    ``flip`` mirrors the crop afterwards the way ``cv2.flip`` does (pixel i -> out_size − 1 − i).
    """
    m = rect.to_crop(out_size)
    if flip:
        m = np.array([[-1.0, 0.0, float(out_size)], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0.0, 0.0, 1.0]])
    return cv2.warpAffine(image, cv2_affine(m), (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


# (in, out, stride) of the shared trunk after the stem: 96² -> 6².
_TRUNK = (
    (16, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 64, 1),
    (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 128, 2), (128, 128, 1), (128, 128, 1),
)  # fmt: skip


class MeshHead(nn.Module):
    """Branch from the 6² trunk map: residual blocks -> 1×1 to 32 + PReLU -> block -> 3×3 VALID conv to 1×1."""

    def __init__(self, blocks: tuple[tuple[int, int, int], ...], out_values: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(BlazeResidual(i, o, s, prelu=True) for i, o, s in blocks))
        self.reduce = TFConv2d(128, 32, 1, 1, "valid")
        self.reduce_act = TFPReLU(32)
        self.block32 = BlazeResidual(32, 32, prelu=True)
        self.out = TFConv2d(32, out_values, 3, 3, "valid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block32(self.reduce_act(self.reduce(self.blocks(x))))
        return self.out(x).flatten(1)


class FaceMeshNet(nn.Module):
    """face_landmark.tflite: 192² RGB in [0, 1] -> landmarks (B, 468, 3) in input pixels, presence logit (B,)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = TFConv2d(3, 16, 3, 2, "same")
        self.stem_act = TFPReLU(16)
        self.trunk = nn.Sequential(*(BlazeResidual(i, o, s, prelu=True) for i, o, s in _TRUNK))
        self.landmarks = MeshHead(((128, 128, 2), (128, 128, 1), (128, 128, 1)), 1404)
        self.presence = MeshHead(((128, 128, 2),), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(self.stem_act(self.stem(x)))
        return self.landmarks(x).view(-1, 468, 3), self.presence(x)[:, 0]
