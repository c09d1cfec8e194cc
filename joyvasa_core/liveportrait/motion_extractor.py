"""M: the motion extractor (image -> canonical keypoints, head-pose bins, translation, expression, scale)."""

from __future__ import annotations

import torch
from torch import nn

from .config import MotionExtractorConfig
from .convnextv2 import ConvNeXtV2


class MotionExtractor(nn.Module):
    """Wraps the ConvNeXtV2 under ``detector`` so the state-dict keys are ``detector.*`` as in the checkpoints.

    ``forward`` returns the raw heads: ``pitch``, ``yaw``, ``roll`` (B, num_bins) logits, ``t`` (B,3),
    ``exp`` and ``kp`` (B, 3*num_kp), ``scale`` (B,1). Degrees and reshapes belong to the keypoint maths.
    """

    def __init__(self, config: MotionExtractorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MotionExtractorConfig()
        self.detector = ConvNeXtV2(
            in_chans=cfg.in_chans,
            depths=tuple(cfg.depths),
            dims=tuple(cfg.dims),
            num_kp=cfg.num_kp,
            num_bins=cfg.num_bins,
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.detector(x)
