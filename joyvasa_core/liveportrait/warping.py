"""W: the warping module (source feature volume + keypoints -> warped 2-D feature map for G), run per frame.

What W computes, plainly and in the reference's order, is ``plain.warp_plain``: read that first. This module and
``dense_motion.py`` are the fast way to compute the same thing (``tests/test_liveportrait_plain.py`` checks it).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import SameBlock2d, conv_norm
from .config import WarpingConfig
from .dense_motion import DenseMotionNetwork, collapse_expanded, grid_sample_shared
from .derived import compute_dtype, memory_format_for


class WarpingNetwork(nn.Module):
    """Warps ``feature_3d`` from the source keypoints to the driving keypoints.

    The keypoints are keyword-only: LivePortrait's own positional order is (feature, driving, source), so a
    positional call could swap them silently. ``feature_3d`` may have batch 1 while the keypoints have batch B: the
    source side is then computed once and shared by the B frames.
    """

    def __init__(self, config: WarpingConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or WarpingConfig()
        self.dense_motion_network = DenseMotionNetwork(
            cfg.dense_motion,
            num_kp=cfg.num_kp,
            feature_channel=cfg.reshape_channel,
            estimate_occlusion_map=cfg.estimate_occlusion_map,
        )
        out_ch = cfg.block_expansion * 2**cfg.num_down_blocks
        self.third = SameBlock2d(cfg.max_features, out_ch, kernel_size=3, padding=1, lrelu=True)
        self.fourth = nn.Conv2d(out_ch, out_ch, kernel_size=1)

    def compress_source(self, feature_3d: torch.Tensor) -> torch.Tensor:
        """The per-source part of the dense motion, to pass as ``compressed`` for every later frame."""
        return self.dense_motion_network.compress_feature(feature_3d)

    def forward(
        self,
        feature_3d: torch.Tensor,
        *,
        kp_source: torch.Tensor,
        kp_driving: torch.Tensor,
        compressed: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Returns ``occlusion_map`` (B,1,H,W), ``deformation`` (B,D,H,W,3) and ``out`` (B,C_out,H,W)."""
        dt = compute_dtype(feature_3d)
        feature_3d = collapse_expanded(feature_3d)
        dense = self.dense_motion_network(feature_3d, kp_source, kp_driving, compressed=compressed)
        deformation = dense["deformation"]
        occlusion = dense.get("occlusion_map")
        warped = grid_sample_shared(feature_3d, deformation)
        b, c, d, h, w = warped.shape
        with torch.autocast(warped.device.type, enabled=False):
            x = warped.reshape(b, c * d, h, w).to(dt).contiguous(memory_format=memory_format_for(2))
            out = conv_norm(self, self.fourth, None, self.third(x))
            if self.config.flag_use_occlusion_map and occlusion is not None:
                out = out.mul_(occlusion.to(dt))
        return {"occlusion_map": occlusion, "deformation": deformation, "out": out}
