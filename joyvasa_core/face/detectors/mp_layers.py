"""TFLite operator equivalents shared by the MediaPipe face networks (BlazeFace, face mesh, iris).

The ports must reproduce the TFLite graphs number for number, so padding follows TensorFlow's rules rather than
PyTorch's: ``SAME`` pads ``total = max((ceil(n/s) - 1)·s + k - n, 0)`` with the extra pixel on the right/bottom
(a stride-2 3×3 depthwise conv on an even input pads 0 left, 1 right). Every layer that carries TFLite weights is
one of :class:`TFConv2d` or :class:`TFPReLU`; the converter fills them in module registration order, so each
network registers its layers in the order the TFLite graph runs them (trunk first, then the head of output 0,
then the head of output 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's ``SAME`` for one spatial axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFConv2d(nn.Conv2d):
    """CONV_2D / DEPTHWISE_CONV_2D with TFLite padding.

    ``padding`` is ``"same"`` (TensorFlow rule, asymmetric for stride 2), ``"valid"``, or an int for the explicit
    symmetric PAD op some graphs put in front of a VALID conv.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        padding: str | int = "same",
        depthwise: bool = False,
    ) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=in_ch if depthwise else 1)
        self.tf_padding = padding
        self.depthwise = depthwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_padding == "same":
            k, s = self.kernel_size[0], self.stride[0]
            top, bottom = tf_same_pad(x.shape[-2], k, s)
            left, right = tf_same_pad(x.shape[-1], k, s)
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        elif isinstance(self.tf_padding, int) and self.tf_padding > 0:
            p = self.tf_padding
            x = F.pad(x, (p, p, p, p))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


class TFPReLU(nn.Module):
    """PRELU with one slope per channel (TFLite stores it as (1, 1, C))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, x * self.weight.view(1, -1, 1, 1))


def pad_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """The channel-padding PAD op of BlazeNet residuals: zeros appended after the existing channels."""
    extra = channels - x.shape[1]
    return F.pad(x, (0, 0, 0, 0, 0, extra)) if extra > 0 else x


class BlazeResidual(nn.Module):
    """BlazeNet residual: depthwise 3×3 (stride 1|2) -> pointwise; the skip is max-pooled and zero-padded to the
    output width; ReLU (BlazeFace) or PReLU (face mesh) after the add."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, prelu: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.out_ch = out_ch
        self.dw = TFConv2d(in_ch, in_ch, 3, stride, "same", depthwise=True)
        self.pw = TFConv2d(in_ch, out_ch, 1, 1, "valid")
        self.act = TFPReLU(out_ch) if prelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        skip = F.max_pool2d(x, 2, 2) if self.stride == 2 else x
        return self.act(pad_channels(skip, self.out_ch) + y)


def depth_to_space_tf(x: torch.Tensor, block: int) -> torch.Tensor:
    """DEPTH_TO_SPACE in TensorFlow's channel order (block position major, channel minor), on NCHW tensors."""
    b, c, h, w = x.shape
    out_c = c // (block * block)
    x = x.view(b, block, block, out_c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, out_c, h * block, w * block)


def nhwc_rows(x: torch.Tensor, values: int) -> torch.Tensor:
    """RESHAPE of an NHWC map to (B, H·W·k, values): the anchor order of the SSD heads."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, values)
