"""What every face detector returns, so the cropper does not care which one found the face."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class DetectedFace:
    """One face in an image, in that image's pixel coordinates.

    ``landmarks`` is (N, 2) float32 pixel (x, y); ``convention`` names the point layout the crop maths and the
    eye/lip ratios understand: ``"lmk203"`` (LivePortrait landmark.onnx), ``"lmk106"`` (InsightFace 2d106det),
    ``"mp478"`` (MediaPipe face mesh with irises) or ``"lmk5"`` (eyes, nose, mouth corners).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    convention: str
    extra: dict = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        x0, y0, x1, y1 = (float(v) for v in self.box)
        return (
            f"DetectedFace(box=[{x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}], score={self.score:.2f}, "
            f"{self.convention} x{len(self.landmarks)})"
        )


class FaceDetector(Protocol):
    """A detector finds every face of an RGB uint8 (H, W, 3) image and gives its landmarks."""

    name: str

    def detect(self, image: np.ndarray) -> list[DetectedFace]: ...
