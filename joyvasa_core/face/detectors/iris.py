"""MediaPipe iris landmarks as plain PyTorch, and the refinement of the 468-point mesh to 478 points.

The network mirrors ``iris_landmark.tflite`` of the mediapipe 0.10.21 wheel (Apache-2.0). It sees one left eye
(image-left, mesh corners 33 -> 133) per 64² crop; the other eye (corners 362 -> 263) is mirrored first and its
points mirrored back, as MediaPipe's ``iris_landmark_left_and_right`` graph does. The 5 iris points of each eye
(centre first) are appended to the mesh: 468–472 for the 33/133 eye, 473–477 for the 362/263 eye, the layout of
MediaPipe's refined 478-point mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .facemesh import RotatedRect, rect_from_points
from .mp_layers import TFConv2d, TFPReLU, pad_channels


@dataclass(frozen=True)
class IrisConfig:
    """Eye ROI options of MediaPipe's iris graph: corner landmarks, scale 2.3, 64² input."""

    input_size: int = 64
    roi_scale: float = 2.3
    left_corners: tuple[int, int] = (33, 133)
    right_corners: tuple[int, int] = (362, 263)


def eye_rect(mesh_xy: np.ndarray, corners: tuple[int, int], scale: float) -> RotatedRect:
    """LandmarksToDetection + DetectionsToRects + RectTransformation for one eye, in image pixels."""
    a, b = mesh_xy[corners[0]], mesh_xy[corners[1]]
    box = np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])])
    return rect_from_points(box, a, b, scale)


class IrisResBlock(nn.Module):
    """1×1 to half width + PReLU -> dw 3×3 -> 1×1 back; add the input; PReLU."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.reduce = TFConv2d(ch, ch // 2, 1, 1, "valid")
        self.reduce_act = TFPReLU(ch // 2)
        self.dw = TFConv2d(ch // 2, ch // 2, 3, 1, "same", depthwise=True)
        self.expand = TFConv2d(ch // 2, ch, 1, 1, "valid")
        self.act = TFPReLU(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.expand(self.dw(self.reduce_act(self.reduce(x)))))


class IrisDownBlock(nn.Module):
    """2×2 stride-2 VALID conv to ``mid`` + PReLU -> dw 3×3 -> 1×1 to ``out``; skip max-pooled and padded."""

    def __init__(self, in_ch: int, mid: int, out_ch: int) -> None:
        super().__init__()
        self.out_ch = out_ch
        self.reduce = TFConv2d(in_ch, mid, 2, 2, "valid")
        self.reduce_act = TFPReLU(mid)
        self.dw = TFConv2d(mid, mid, 3, 1, "same", depthwise=True)
        self.expand = TFConv2d(mid, out_ch, 1, 1, "valid")
        self.act = TFPReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self.dw(self.reduce_act(self.reduce(x))))
        return self.act(pad_channels(nn.functional.max_pool2d(x, 2, 2), self.out_ch) + y)


class IrisBranch(nn.Module):
    """8² -> 2 blocks, down, 2 blocks, down, 2 blocks -> 2×2 VALID conv to the output vector."""

    def __init__(self, out_values: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            IrisResBlock(128), IrisResBlock(128), IrisDownBlock(128, 64, 128),
            IrisResBlock(128), IrisResBlock(128), IrisDownBlock(128, 64, 128),
            IrisResBlock(128), IrisResBlock(128),
        )  # fmt: skip
        self.out = TFConv2d(128, out_values, 2, 1, "valid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(x)).flatten(1)


class IrisNet(nn.Module):
    """iris_landmark.tflite: 64² RGB in [0, 1] -> eye contour (B, 71, 3) and iris (B, 5, 3) in input pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = TFConv2d(3, 64, 3, 2, "same")
        self.stem_act = TFPReLU(64)
        self.trunk = nn.Sequential(
            *(IrisResBlock(64) for _ in range(4)),
            IrisDownBlock(64, 64, 128),
            *(IrisResBlock(128) for _ in range(4)),
            IrisDownBlock(128, 64, 128),
        )
        self.contour = IrisBranch(213)
        self.iris = IrisBranch(15)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(self.stem_act(self.stem(x)))
        return self.contour(x).view(-1, 71, 3), self.iris(x).view(-1, 5, 3)
