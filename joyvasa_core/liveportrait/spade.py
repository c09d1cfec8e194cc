"""G: the SPADE decoder (W's feature map -> 512x512 RGB), run per frame.

What G computes, plainly and in the reference's order, is ``plain.generate_plain``: read that first. This module is
the fast way to compute the same thing (``tests/test_liveportrait_plain.py`` checks that they agree).

Spectral norm is evaluated the way the reference does in eval mode, ``W = W_orig / (u . (W_orig v))`` from the
stored u and v, with no power iteration; the folded weight is computed once and cached, not per frame.

The forward computes what the reference computes, arranged for speed: channels-last activations, weights cast once
to the compute precision (autocast's, when on), gamma and beta of each SPADE as one convolution, the instance-norm
statistics of a block's input computed once for its two norms, the element-wise work fused and in place, and the
label map never upsampled: a 3x3 conv of a nearest-upsampled map is, per output phase, a conv of at most 2x2 taps
over the small map (2.25x fewer operations at x2, 4x at x4). On the CPU in fp32 the wide 3x3 convs run by Winograd
F(4x4, 3x3) (``winograd.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import winograd
from .config import SpadeConfig
from .derived import compute_dtype, conv_params, derived, memory_format_for

_FMT = memory_format_for(2)


def _conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding)``, by Winograd where it pays."""
    if winograd.pays(x, weight, padding):
        return winograd.conv3x3(x, weight, bias)
    return F.conv2d(x, weight, bias, padding=padding)


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
        weight, bias = conv_params(self, self, x.dtype, _FMT, weight=self.weight)
        return _conv(x, weight, bias, self.padding)


def _phase_taps(factor: int) -> list[tuple[int, list[list[int]]]]:
    """For each output phase along one axis of a ``factor``-times nearest-upsampled map, the 3-tap kernel as seen
    from the small map: (first small-map offset, the kernel taps that land on each successive offset)."""
    plan = []
    for phase in range(factor):
        groups: dict[int, list[int]] = {}
        for tap, delta in enumerate((-1, 0, 1)):
            groups.setdefault((phase + delta) // factor, []).append(tap)
        offsets = sorted(groups)
        plan.append((offsets[0], [groups[o] for o in offsets]))
    return plan


def phase_kernels(weight: torch.Tensor, factor: int) -> list[tuple[int, int, int, int, torch.Tensor]]:
    """(row phase, column phase, first row offset, first column offset, kernel) for every output phase."""
    taps = _phase_taps(factor)
    out = []
    for a, (r0, row_groups) in enumerate(taps):
        for b, (c0, col_groups) in enumerate(taps):
            rows = [torch.stack([weight[:, :, r][:, :, :, c].sum((2, 3)) for c in col_groups], -1) for r in row_groups]
            out.append((a, b, r0, c0, torch.stack(rows, -2)))
    return out


def conv3x3_upsampled(
    seg: torch.Tensor, kernels: list[tuple[int, int, int, int, torch.Tensor]], bias: torch.Tensor, factor: int
) -> torch.Tensor:
    """``conv2d(interpolate(seg, scale_factor=factor, mode='nearest'), w, bias, padding=1)`` from ``seg`` itself, with
    ``kernels = phase_kernels(w, factor)``; channels-last output."""
    n, _, h, w = seg.shape
    padded = F.pad(seg, (1, 1, 1, 1))
    out = seg.new_empty(n, h, factor, w, factor, bias.shape[0])
    for a, b, r0, c0, k in kernels:
        kh, kw = k.shape[2:]
        part = padded[:, :, 1 + r0 : 1 + r0 + h + kh - 1, 1 + c0 : 1 + c0 + w + kw - 1]
        out[:, :, a, :, b, :] = F.conv2d(part, k, bias).permute(0, 2, 3, 1)
    return out.view(n, h * factor, w * factor, -1).permute(0, 3, 1, 2)


def instance_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and 1/sqrt(biased var + 1e-5) over H, W (InstanceNorm2d, no affine), in fp32
    arithmetic and returned in ``x``'s dtype.

    Two passes (the mean, then the mean squared deviation): as accurate as ``var_mean``'s running update and 3-7x
    faster on a channels-last map on the CPU.
    """
    xf = x.float()
    mean = xf.mean(dim=(2, 3), keepdim=True)
    var = (xf - mean).square_().mean(dim=(2, 3), keepdim=True)
    return mean.to(x.dtype), var.add_(1e-5).rsqrt_().to(x.dtype)


class SPADE(nn.Module):
    """Spatially-adaptive norm: InstanceNorm(x) * (1 + gamma(seg)) + beta(seg); ``seg`` already at x's size."""

    def __init__(self, norm_nc: int, label_nc: int, nhidden: int = 128) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)

    def shared_features(self, seg: torch.Tensor, factor: int) -> torch.Tensor:
        """ReLU(mlp_shared(seg upsampled ``factor`` times)), the upsampling folded into the conv."""
        conv = self.mlp_shared[0]
        dt = seg.dtype
        if factor == 1:
            weight, bias = conv_params(self, conv, dt, _FMT)
            return F.relu_(_conv(seg, weight, bias, 1))

        def make() -> tuple[list, torch.Tensor]:
            kernels = [(a, b, r, c, k.to(dt).contiguous(memory_format=_FMT))
                       for a, b, r, c, k in phase_kernels(conv.weight.double(), factor)]
            return kernels, conv.bias.to(dt)

        kernels, bias = derived(self, ("shared", factor, dt), [conv.weight, conv.bias], make)
        return F.relu_(conv3x3_upsampled(seg, kernels, bias, factor))

    def forward(
        self, x: torch.Tensor, seg: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``seg`` is the label map at ``x``'s size or at an integer fraction of it (nearest upsampling implied);
        ``stats`` may carry ``instance_stats(x)`` computed already."""
        actv = self.shared_features(seg, x.shape[2] // seg.shape[2])
        g, b = self.mlp_gamma, self.mlp_beta

        def make() -> tuple[torch.Tensor, torch.Tensor]:
            weight = torch.cat([g.weight, b.weight]).to(actv.dtype).contiguous(memory_format=_FMT)
            return weight, torch.cat([g.bias, b.bias]).to(actv.dtype)

        weight, bias = derived(self, ("gamma_beta", actv.dtype), [g.weight, g.bias, b.weight, b.bias], make)
        gamma_beta = _conv(actv, weight, bias, 1)
        c = x.shape[1]
        mean, rstd = instance_stats(x) if stats is None else stats
        scale = gamma_beta[:, :c].add_(1).mul_(rstd)
        return (x - mean).mul_(scale).add_(gamma_beta[:, c:])


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
        """``seg`` at ``x``'s size or an integer fraction of it (see ``SPADE.forward``)."""
        stats = instance_stats(x)
        x_s = self.conv_s(self.norm_s(x, seg, stats)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu_(self.norm_0(x, seg, stats), 0.2))
        dx = self.conv_1(F.leaky_relu_(self.norm_1(dx, seg), 0.2))
        return dx.add_(x_s)


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
        """Runs in autocast's precision when it is on (weights cast once, not per call), else in ``feature``'s."""
        dt = compute_dtype(feature)
        with torch.autocast(feature.device.type, enabled=False):
            seg = feature.to(dt).contiguous(memory_format=_FMT)
            weight, bias = conv_params(self, self.fc, dt, _FMT)
            x = _conv(seg, weight, bias, 1)
            for i in range(6):
                x = getattr(self, f"G_middle_{i}")(x, seg)
            x = self.up_0(F.interpolate(x, scale_factor=2, mode="nearest"), seg)
            x = self.up_1(F.interpolate(x, scale_factor=2, mode="nearest"), seg)
            conv = self.conv_img[0] if isinstance(self.conv_img, nn.Sequential) else self.conv_img
            weight, bias = conv_params(self, conv, dt, _FMT)
            x = F.conv2d(F.leaky_relu_(x, 0.2), weight, bias, padding=1)
            if isinstance(self.conv_img, nn.Sequential):
                x = self.conv_img[1](x)
            return torch.sigmoid_(x)
