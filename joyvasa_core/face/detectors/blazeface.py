"""BlazeFace, MediaPipe's face detector (short range 128², full range 192²), as plain PyTorch.

The networks mirror ``face_detection_short_range.tflite`` and ``face_detection_full_range_sparse.tflite`` of the
mediapipe 0.10.21 wheel (Apache-2.0). Decoding follows MediaPipe's ``SsdAnchorsCalculator``,
``TensorsToDetectionsCalculator`` and weighted ``NonMaxSuppressionCalculator`` so the boxes match MediaPipe's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .mp_layers import BlazeResidual, TFConv2d, depth_to_space_tf, nhwc_rows


@dataclass(frozen=True)
class BlazeFaceConfig:
    """Anchor and decoding options of one MediaPipe face detection model (its graph's option values)."""

    input_size: int = 128
    num_layers: int = 4
    strides: tuple[int, ...] = (8, 16, 16, 16)
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    anchor_offset: float = 0.5
    num_boxes: int = 896
    num_keypoints: int = 6
    score_clipping_thresh: float = 100.0
    min_score_thresh: float = 0.5
    min_suppression_threshold: float = 0.3


SHORT_RANGE = BlazeFaceConfig()
FULL_RANGE = BlazeFaceConfig(
    input_size=192,
    num_layers=1,
    strides=(4,),
    interpolated_scale_aspect_ratio=0.0,
    num_boxes=2304,
)


def ssd_anchors(cfg: BlazeFaceConfig) -> np.ndarray:
    """(num_boxes, 2) anchor centres (x, y) in [0, 1], as MediaPipe's SsdAnchorsCalculator with fixed anchor size.

    Layers that share a stride share one feature map; each of its cells gets one anchor per aspect ratio per layer,
    plus one interpolated-scale anchor when that ratio is > 0. With ``fixed_anchor_size`` every anchor is 1×1, so
    only the centres matter.
    """
    centres = []
    layer = 0
    while layer < cfg.num_layers:
        per_cell = 0
        last = layer
        while last < cfg.num_layers and cfg.strides[last] == cfg.strides[layer]:
            per_cell += len(cfg.aspect_ratios) + (1 if cfg.interpolated_scale_aspect_ratio > 0 else 0)
            last += 1
        fm = math.ceil(cfg.input_size / cfg.strides[layer])
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        grid = np.stack([(xs + cfg.anchor_offset) / fm, (ys + cfg.anchor_offset) / fm], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        layer = last
    anchors = np.concatenate(centres).astype(np.float32)
    if len(anchors) != cfg.num_boxes:
        raise ValueError(f"anchor options give {len(anchors)} anchors, the model has {cfg.num_boxes}")
    return anchors


@dataclass
class RawDetection:
    """One decoded detection in the model's normalised input frame: box (xmin, ymin, xmax, ymax), 6 keypoints."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float
    extra: dict = field(default_factory=dict)


def decode_boxes(raw_boxes: np.ndarray, anchors: np.ndarray, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Regressor rows -> boxes (N, 4) xyxy and keypoints (N, K, 2), normalised to the model input.

    Offsets are in input pixels relative to the anchor centre (MediaPipe ``reverse_output_order``: x before y).
    """
    s = float(input_size)
    cx = raw_boxes[:, 0] / s + anchors[:, 0]
    cy = raw_boxes[:, 1] / s + anchors[:, 1]
    w = raw_boxes[:, 2] / s
    h = raw_boxes[:, 3] / s
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    kps = raw_boxes[:, 4:].reshape(len(raw_boxes), (raw_boxes.shape[1] - 4) // 2, 2) / s + anchors[:, None, :]
    return boxes.astype(np.float32), kps.astype(np.float32)


def scores_from_logits(raw_scores: np.ndarray, clip: float) -> np.ndarray:
    """Sigmoid of the clipped logits, as ``sigmoid_score`` with ``score_clipping_thresh``."""
    return (1.0 / (1.0 + np.exp(-np.clip(raw_scores.astype(np.float64), -clip, clip)))).astype(np.float32)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    ix0 = np.maximum(box[0], others[:, 0])
    iy0 = np.maximum(box[1], others[:, 1])
    ix1 = np.minimum(box[2], others[:, 2])
    iy1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, threshold: float) -> list[RawDetection]:
    """MediaPipe's WEIGHTED non-maximum suppression.

    Repeatedly take the best remaining detection; every remaining detection whose IoU with it exceeds ``threshold``
    (itself included) is merged into a score-weighted mean of boxes and keypoints, which keeps the best score.
    """
    order = np.argsort(-scores, kind="stable")
    out: list[RawDetection] = []
    while len(order):
        top = order[0]
        overlap = _iou(boxes[top], boxes[order]) > threshold
        overlap[0] = True
        group, order = order[overlap], order[~overlap]
        w = scores[group].astype(np.float64)
        w = w / w.sum()
        box = (boxes[group] * w[:, None]).sum(0)
        kps = (keypoints[group] * w[:, None, None]).sum(0)
        out.append(RawDetection(box.astype(np.float32), kps.astype(np.float32), float(scores[top])))
    return out


# Keypoint order of a detection after a left-right flip: the eyes (0, 1) and the ears (4, 5) trade places.
KEYPOINT_MIRROR = (1, 0, 2, 3, 5, 4)


def _candidates(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, cfg: BlazeFaceConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, keypoints and scores of every anchor above the score threshold with a non-empty box."""
    scores = scores_from_logits(raw_scores.reshape(-1), cfg.score_clipping_thresh)
    keep = scores >= cfg.min_score_thresh
    boxes, kps = decode_boxes(raw_boxes[keep], anchors[keep], cfg.input_size)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[valid], kps[valid], scores[keep][valid]


def unflip(boxes: np.ndarray, kps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Detections made on the left-right flipped input, in the unflipped input's normalised frame."""
    boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], -1)
    kps = kps[:, list(KEYPOINT_MIRROR)].copy()
    kps[..., 0] = 1 - kps[..., 0]
    return boxes, kps


def postprocess(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, cfg: BlazeFaceConfig,
    flipped: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[RawDetection]:
    """One image's raw outputs (N, 16) and (N, 1) -> suppressed detections in normalised model-input coordinates.

    ``flipped``: the raw outputs on the same input flipped left-right. Its candidates are flipped back and suppressed
    together with the others, so a photo and its mirror image give mirror-image detections (the network alone does
    not: its boxes move by a pixel or two and its eye line tilts when the photo is mirrored).
    """
    boxes, kps, scores = _candidates(raw_boxes, raw_scores, anchors, cfg)
    if flipped is not None:
        f_boxes, f_kps, f_scores = _candidates(flipped[0], flipped[1], anchors, cfg)
        f_boxes, f_kps = unflip(f_boxes, f_kps)
        boxes, kps = np.concatenate([boxes, f_boxes]), np.concatenate([kps, f_kps])
        scores = np.concatenate([scores, f_scores])
    if not len(scores):
        return []
    return weighted_nms(boxes, kps, scores, cfg.min_suppression_threshold)


# (in, out, stride) of the short-range backbone after the 5×5 stem; the stride-8 (16×16) map ends at index 10.
_SHORT_BLOCKS = (
    (24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2), (48, 56, 1), (56, 64, 1),
    (64, 72, 1), (72, 80, 1), (80, 88, 1), (88, 96, 2), (96, 96, 1), (96, 96, 1), (96, 96, 1), (96, 96, 1),
)  # fmt: skip


class BlazeFaceShortNet(nn.Module):
    """face_detection_short_range.tflite: 128² RGB in [-1, 1] -> regressors (B, 896, 16), logits (B, 896, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = TFConv2d(3, 24, 5, 2, "same")
        self.blocks = nn.ModuleList(BlazeResidual(i, o, s) for i, o, s in _SHORT_BLOCKS)
        self.regressor_s8 = TFConv2d(88, 32, 1, 1, "same")
        self.regressor_s16 = TFConv2d(96, 96, 1, 1, "same")
        self.classifier_s8 = TFConv2d(88, 2, 1, 1, "same")
        self.classifier_s16 = TFConv2d(96, 6, 1, 1, "same")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.stem(x))
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == 10:
                f16 = x
        reg = torch.cat([nhwc_rows(self.regressor_s8(f16), 16), nhwc_rows(self.regressor_s16(x), 16)], 1)
        cls = torch.cat([nhwc_rows(self.classifier_s8(f16), 1), nhwc_rows(self.classifier_s16(x), 1)], 1)
        return reg, cls


class BottleneckBlock(nn.Module):
    """Full-range block: dw 3×3 (stride) -> 1×1 squeeze + ReLU -> dw 3×3 -> 1×1 expand.

    Stride-1 blocks with equal widths add the input and apply ReLU; downsampling blocks have no skip and apply
    ReLU to the expand conv directly.
    """

    def __init__(self, in_ch: int, mid: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.residual = stride == 1 and in_ch == out_ch
        self.dw1 = TFConv2d(in_ch, in_ch, 3, stride, 1, depthwise=True)
        self.squeeze = TFConv2d(in_ch, mid, 1, 1, "valid")
        self.dw2 = TFConv2d(mid, mid, 3, 1, 1, depthwise=True)
        self.expand = TFConv2d(mid, out_ch, 1, 1, "valid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self.dw2(torch.relu(self.squeeze(self.dw1(x)))))
        return torch.relu(x + y) if self.residual else torch.relu(y)


def _stage(in_ch: int, mid: int, out_ch: int, repeats: int, down: bool) -> nn.Sequential:
    first = [BottleneckBlock(in_ch, mid, out_ch, 2)] if down else []
    return nn.Sequential(*first, *(BottleneckBlock(out_ch, mid, out_ch) for _ in range(repeats)))


class SSDHead(nn.Module):
    """1×1 conv -> pad 1 -> dw 3×3 stride 2 -> depth-to-space 2: one prediction per 48×48 anchor."""

    def __init__(self, in_ch: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.proj = TFConv2d(in_ch, 4 * values, 1, 1, "same")
        self.dw = TFConv2d(4 * values, 4 * values, 3, 2, 1, depthwise=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nhwc_rows(depth_to_space_tf(self.dw(self.proj(x)), 2), self.values)


class BlazeFaceFullNet(nn.Module):
    """face_detection_full_range_sparse.tflite: 192² RGB in [-1, 1] -> regressors (B, 2304, 16), logits (B, 2304, 1).

    A stride-2 backbone (96 -> 6) with a feature-pyramid top-down path back to 48×48.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = TFConv2d(3, 32, 3, 2, 1)
        self.stage96 = _stage(32, 8, 32, 2, down=False)
        self.stage48 = _stage(32, 16, 64, 2, down=True)
        self.lateral48 = TFConv2d(64, 48, 1, 1, "valid")
        self.stage24 = _stage(64, 32, 128, 2, down=True)
        self.lateral24 = TFConv2d(128, 64, 1, 1, "valid")
        self.stage12 = _stage(128, 48, 192, 2, down=True)
        self.lateral12 = TFConv2d(192, 96, 1, 1, "valid")
        self.stage6 = _stage(192, 96, 384, 3, down=True)
        self.top12 = TFConv2d(384, 96, 1, 1, "valid")
        self.up12 = _stage(96, 48, 96, 2, down=False)
        self.top24 = TFConv2d(96, 64, 1, 1, "valid")
        self.up24 = _stage(64, 32, 64, 2, down=False)
        self.top48 = TFConv2d(64, 48, 1, 1, "valid")
        self.up48 = _stage(48, 24, 48, 1, down=False)
        self.regressor = SSDHead(48, 16)
        self.classifier = SSDHead(48, 1)

    @staticmethod
    def _upsample(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stage96(torch.relu(self.stem(x)))
        x = self.stage48(x)
        lat48 = torch.relu(self.lateral48(x))
        x = self.stage24(x)
        lat24 = torch.relu(self.lateral24(x))
        x = self.stage12(x)
        lat12 = torch.relu(self.lateral12(x))
        x = self.stage6(x)
        x = self.up12(lat12 + self._upsample(torch.relu(self.top12(x))))
        x = self.up24(lat24 + self._upsample(torch.relu(self.top24(x))))
        x = self.up48(lat48 + self._upsample(torch.relu(self.top48(x))))
        return self.regressor(x), self.classifier(x)


def build_blazeface(range_: str) -> tuple[nn.Module, BlazeFaceConfig]:
    """The network and options of ``"short"`` or ``"full"`` range."""
    if range_ == "short":
        return BlazeFaceShortNet(), SHORT_RANGE
    if range_ == "full":
        return BlazeFaceFullNet(), FULL_RANGE
    raise ValueError(f"BlazeFace range must be 'short' or 'full', got {range_!r}")
