"""Small conv building blocks shared by F (appearance) and W (warping / dense motion).

Attribute names are the official ones (``conv``, ``norm``, ``conv1`` ...) because they become state-dict keys.
In eval mode a conv followed by its batch norm runs as one conv with the norm folded into its weights, channels-last,
in the input's precision (``derived.conv_params``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .derived import conv_params, memory_format_for


def conv_norm(owner: nn.Module, conv: nn.Conv2d | nn.Conv3d, norm: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """``norm(conv(x))`` (``conv(x)`` without a norm); one folded conv in eval mode."""
    if norm is not None and norm.training:
        return norm(conv(x))
    dims = x.dim() - 2
    weight, bias = conv_params(owner, conv, x.dtype, memory_format_for(dims), norm)
    fn = F.conv3d if dims == 3 else F.conv2d
    return fn(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def per_depth_slice(fn, x: torch.Tensor) -> torch.Tensor:
    """A 2-D op applied to every depth slice of (B, C, D, H, W) ``x`` as one (B*D, C, H, W) batch. The (1, 2, 2)
    pooling and upsampling are 2-D per slice; done this way they run in bf16 on CPU (the 3-D kernels do not) and a
    channels-last-3d volume goes through without a copy."""
    b, c, d = x.shape[:3]
    out = fn(x.transpose(1, 2).reshape(b * d, c, *x.shape[3:]))
    return out.view(b, d, c, *out.shape[2:]).transpose(1, 2)


class SameBlock2d(nn.Module):
    """Conv2d -> BN2d -> ReLU (or LeakyReLU 0.01), resolution unchanged."""

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1, lrelu: bool = False
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features)
        self.lrelu = lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = conv_norm(self, self.conv, self.norm, x)
        return F.leaky_relu(x, 0.01, inplace=True) if self.lrelu else F.relu(x, inplace=True)


class DownBlock2d(nn.Module):
    """Conv2d -> BN2d -> ReLU -> AvgPool2d(2)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x)), inplace=True), 2)


class DownBlock3d(nn.Module):
    """Conv3d -> BN3d -> ReLU -> AvgPool3d((1,2,2)): depth is never pooled."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(conv_norm(self, self.conv, self.norm, x), inplace=True)
        return per_depth_slice(lambda t: F.avg_pool2d(t, 2), x)


class UpBlock3d(nn.Module):
    """Nearest x(1,2,2) -> Conv3d -> BN3d -> ReLU."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = per_depth_slice(lambda t: F.interpolate(t, scale_factor=2, mode="nearest"), x)
        return F.relu(conv_norm(self, self.conv, self.norm, x), inplace=True)


class ResBlock3d(nn.Module):
    """Pre-activation 3-D residual block: x + conv2(relu(norm2(conv1(relu(norm1(x))))))."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(in_features)
        self.norm2 = nn.BatchNorm3d(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out), inplace=True))
        return out + x


class HourglassEncoder(nn.Module):
    """3-D U-Net encoder; returns the input and every level, all used as skips."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            cin = in_features if i == 0 else min(max_features, block_expansion * 2**i)
            blocks.append(DownBlock3d(cin, min(max_features, block_expansion * 2 ** (i + 1))))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    """3-D U-Net decoder; the last skip is the raw hourglass input, so it ends with block_expansion + in_features."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            mult = 1 if i == num_blocks - 1 else 2
            cin = mult * min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(UpBlock3d(cin, min(max_features, block_expansion * 2**i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(conv_norm(self, self.conv, self.norm, out), inplace=True)


class Hourglass(nn.Module):
    """Encoder + decoder; output has ``out_filters`` channels at the input resolution."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def make_coordinate_grid(
    spatial_size: tuple[int, int, int], dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """(D,H,W,3) grid with last axis (x, y, z) in [-1, 1], endpoints included (FOMM convention).

    Written as ``2 * (i / (n - 1)) - 1`` to reproduce the reference values bit for bit.
    """
    d, h, w = spatial_size
    x = 2 * (torch.arange(w, dtype=dtype, device=device) / (w - 1)) - 1
    y = 2 * (torch.arange(h, dtype=dtype, device=device) / (h - 1)) - 1
    z = 2 * (torch.arange(d, dtype=dtype, device=device) / (d - 1)) - 1
    return torch.stack(
        [x.view(1, 1, w).expand(d, h, w), y.view(1, h, 1).expand(d, h, w), z.view(d, 1, 1).expand(d, h, w)], dim=-1
    )
