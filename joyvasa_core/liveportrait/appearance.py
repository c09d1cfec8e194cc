"""F: the appearance feature extractor (image -> 3-D feature volume), run once per source image."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import DownBlock2d, ResBlock3d, SameBlock2d
from .config import AppearanceConfig


class AppearanceFeatureExtractor(nn.Module):
    """(B,3,256,256) RGB in [0,1] -> (B, reshape_channel, reshape_depth, 64, 64).

    The 2-D channels are split as ``c * reshape_depth + d`` when lifted to 3-D, exactly as the reference.
    """

    def __init__(self, config: AppearanceConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or AppearanceConfig()
        self.first = SameBlock2d(cfg.image_channel, cfg.block_expansion)
        blocks = []
        out_features = cfg.block_expansion
        for i in range(cfg.num_down_blocks):
            in_features = min(cfg.max_features, cfg.block_expansion * 2**i)
            out_features = min(cfg.max_features, cfg.block_expansion * 2 ** (i + 1))
            blocks.append(DownBlock2d(in_features, out_features))
        self.down_blocks = nn.ModuleList(blocks)
        self.second = nn.Conv2d(out_features, cfg.max_features, kernel_size=1)
        if cfg.reshape_channel * cfg.reshape_depth != cfg.max_features:
            raise ValueError(
                f"appearance config: reshape_channel*reshape_depth ({cfg.reshape_channel}*{cfg.reshape_depth}) "
                f"must equal max_features ({cfg.max_features})"
            )
        self.resblocks_3d = nn.Sequential()
        for i in range(cfg.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(cfg.reshape_channel))

    def forward(self, source_image: torch.Tensor) -> torch.Tensor:
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        out = out.view(b, self.config.reshape_channel, self.config.reshape_depth, h, w)
        return self.resblocks_3d(out)
