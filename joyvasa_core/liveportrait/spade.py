"""G: the SPADE decoder (W's feature map -> 512x512 RGB), run per frame.

Spectral norm is evaluated the way the reference does in eval mode, ``W = W_orig / (u . (W_orig v))`` from the
stored u and v, with no power iteration; the folded weight is computed once and cached, not per frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import SpadeConfig


class SpectralNormConv2d(nn.Module):
    """Conv2d stored in ``torch.nn.utils.spectral_norm`` layout: ``bias``, ``weight_orig``, ``weight_u``,
    ``weight_v``, so the official files load strictly. The folded weight is cached and dropped whenever the
    state dict is loaded or the module is moved/cast."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, bias: bool = True
    ) -> None:
        super().__init__()
        self.padding = padding
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.weight_orig = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("weight_u", torch.empty(out_channels))
        self.register_buffer("weight_v", torch.empty(in_channels * kernel_size * kernel_size))
        self._folded: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight_orig, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight_orig[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            u = torch.randn(self.weight_u.shape)
            self.weight_u.copy_(u / u.norm().clamp_min(1e-12))
            v = self.weight_orig.reshape(self.weight_orig.shape[0], -1).T @ self.weight_u
            self.weight_v.copy_(v / v.norm().clamp_min(1e-12))
        self._folded = None

    def fold(self) -> torch.Tensor:
        """Recompute ``W_orig / sigma`` from the stored u and v (sigma = u . (W_orig v)) and cache it."""
        with torch.inference_mode(False), torch.no_grad():
            w = self.weight_orig
            calc = w if w.dtype in (torch.float32, torch.float64) else w.float()
            mat = calc.reshape(calc.shape[0], -1)
            sigma = torch.dot(self.weight_u.to(calc.dtype), torch.mv(mat, self.weight_v.to(calc.dtype)))
            self._folded = (calc / sigma).to(w.dtype)
        return self._folded

    @property
    def weight(self) -> torch.Tensor:
        """The effective (folded) weight."""
        return self._folded if self._folded is not None else self.fold()

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        self._folded = None
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _apply(self, fn, recurse: bool = True):
        self._folded = None
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class SPADE(nn.Module):
    """Spatially-adaptive norm: InstanceNorm(x) * (1 + gamma(seg)) + beta(seg); ``seg`` already at x's size."""

    def __init__(self, norm_nc: int, label_nc: int, nhidden: int = 128) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """SPADE residual block with spectral-normed convs; learned 1x1 shortcut (no bias) when fin != fout."""

    def __init__(self, fin: int, fout: int, label_nc: int, nhidden: int = 128) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = SpectralNormConv2d(fin, fmiddle, 3, padding=1)
        self.conv_1 = SpectralNormConv2d(fmiddle, fout, 3, padding=1)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, 1, bias=False)
        self.norm_0 = SPADE(fin, label_nc, nhidden)
        self.norm_1 = SPADE(fmiddle, label_nc, nhidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, nhidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx


class SPADEDecoder(nn.Module):
    """(B, C_in, 64, 64) feature (also the SPADE label map) -> (B, 3, 512, 512) image in (0, 1)."""

    def __init__(self, config: SpadeConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SpadeConfig()
        cin = cfg.input_channels
        self.fc = nn.Conv2d(cin, 2 * cin, kernel_size=3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * cin, 2 * cin, cin, cfg.spade_hidden))
        self.up_0 = SPADEResnetBlock(2 * cin, cin, cin, cfg.spade_hidden)
        self.up_1 = SPADEResnetBlock(cin, cfg.out_channels, cin, cfg.spade_hidden)
        if cfg.upscale is None or cfg.upscale <= 1:
            self.conv_img = nn.Conv2d(cfg.out_channels, 3, kernel_size=3, padding=1)
        else:
            self.conv_img = nn.Sequential(
                nn.Conv2d(cfg.out_channels, 3 * cfg.upscale**2, kernel_size=3, padding=1), nn.PixelShuffle(cfg.upscale)
            )

    def spectral_convs(self) -> list[SpectralNormConv2d]:
        return [m for m in self.modules() if isinstance(m, SpectralNormConv2d)]

    def fold_spectral_norm(self) -> None:
        """Fold every spectral-normed weight now (loaders call this so the first frame pays nothing extra)."""
        for m in self.spectral_convs():
            m.fold()

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        segs: dict[tuple[int, int], torch.Tensor] = {tuple(feature.shape[2:]): feature}

        def seg_at(x: torch.Tensor) -> torch.Tensor:
            # The nearest-resized label map is the same for every block at one resolution: compute it once.
            size = tuple(x.shape[2:])
            if size not in segs:
                segs[size] = F.interpolate(feature, size=size, mode="nearest")
            return segs[size]

        blocks: list[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = [
            getattr(self, f"G_middle_{i}") for i in range(6)
        ]
        x = self.fc(feature)
        for block in blocks:
            x = block(x, seg_at(x))
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.up_0(x, seg_at(x))
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.up_1(x, seg_at(x))
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.sigmoid(x)
