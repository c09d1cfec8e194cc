"""What W and G compute, stated plainly in the reference's order of operations: read this first.

The networks' own forwards (``warping.py``, ``dense_motion.py``, ``spade.py``) compute the same thing arranged for
speed: channels-last maps, weights cast and folded once, the source side done once per source, SPADE's label map
never upsampled, Winograd convolutions on the CPU (see their module notes). These functions take the very same
modules (their layers and weights) and run them one frame at a time in fp32, the way the reference does, so a
reader can see what is computed apart from how it is made fast. ``tests/test_liveportrait_plain.py`` checks that
the two agree; ``bench/bench_render.py`` times the fast path against this one.

Shapes: feature (B, C, D, H, W) = (1, 32, 16, 64, 64); keypoints (B, K, 3) with K = 21; W's out (B, 256, 64, 64);
G's image (B, 3, 512, 512).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import make_coordinate_grid


def warp_plain(warping: nn.Module, feature: torch.Tensor, kp_source: torch.Tensor,
               kp_driving: torch.Tensor) -> torch.Tensor:
    """W's ``out``: the source volume warped from the source keypoints to the driving ones, occlusion applied."""
    dm = warping.dense_motion_network
    bs, _, d, h, w = feature.shape
    fc = F.relu(dm.norm(dm.compress(feature)))  # (B, 4, D, H, W): the compressed source
    k1 = dm.num_kp + 1
    identity = make_coordinate_grid((d, h, w), dtype=kp_source.dtype).view(1, 1, d, h, w, 3)
    # One sparse motion per keypoint (plus the identity): move every voxel by that keypoint's displacement.
    shifted = identity - kp_driving.view(bs, -1, 1, 1, 1, 3) + kp_source.view(bs, -1, 1, 1, 1, 3)
    sparse = torch.cat([identity.repeat(bs, 1, 1, 1, 1, 1), shifted], dim=1)  # (B, K+1, D, H, W, 3)
    repeated = fc.unsqueeze(1).repeat(1, k1, 1, 1, 1, 1).view(bs * k1, -1, d, h, w)
    deformed = F.grid_sample(repeated, sparse.view(bs * k1, d, h, w, 3), align_corners=False).view(bs, k1, -1, d, h, w)
    # Gaussian heatmaps: driving minus source, with a zero map for the identity.
    var = dm.config.kp_variance
    g_d = torch.exp(-0.5 * ((identity - kp_driving.view(bs, -1, 1, 1, 1, 3)) ** 2).sum(-1) / var)
    g_s = torch.exp(-0.5 * ((identity - kp_source.view(bs, -1, 1, 1, 1, 3)) ** 2).sum(-1) / var)
    heat = torch.cat([torch.zeros(bs, 1, d, h, w), g_d - g_s], dim=1).unsqueeze(2)
    pred = _hourglass(dm.hourglass, torch.cat([heat, deformed], dim=2).view(bs, -1, d, h, w))
    # A softmax mask over the K+1 motions blends them into one dense deformation; the occlusion map is 2-D.
    mask = F.softmax(dm.mask(pred), dim=1).unsqueeze(2)
    deformation = (sparse.permute(0, 1, 5, 2, 3, 4) * mask).sum(dim=1).permute(0, 2, 3, 4, 1)
    occlusion = torch.sigmoid(dm.occlusion(pred.view(bs, -1, h, w)))
    warped = F.grid_sample(feature, deformation, align_corners=False)
    third = warping.third
    out = F.leaky_relu(third.norm(third.conv(warped.view(bs, -1, h, w))), 0.01)
    return warping.fourth(out) * occlusion


def _hourglass(hourglass: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The 3-D U-Net: conv-norm-relu and pooling down, upsampling and conv-norm-relu up, skips concatenated."""
    skips = [x]
    for block in hourglass.encoder.down_blocks:
        skips.append(F.avg_pool3d(F.relu(block.norm(block.conv(skips[-1]))), (1, 2, 2)))
    out = skips.pop()
    dec = hourglass.decoder
    for block in dec.up_blocks:
        out = F.relu(block.norm(block.conv(F.interpolate(out, scale_factor=(1, 2, 2)))))
        out = torch.cat([out, skips.pop()], dim=1)
    return F.relu(dec.norm(dec.conv(out)))


def _spade(norm: nn.Module, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """InstanceNorm(x) * (1 + gamma(seg)) + beta(seg), the label map resized to x's size."""
    normalized = F.instance_norm(x, eps=1e-5)
    actv = norm.mlp_shared(F.interpolate(seg, size=x.shape[2:], mode="nearest"))
    return normalized * (1 + norm.mlp_gamma(actv)) + norm.mlp_beta(actv)


def _sn_conv(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A spectral-normed conv: its folded weight ``W_orig / sigma``."""
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding)


def _resblock(block: nn.Module, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    x_s = _sn_conv(block.conv_s, _spade(block.norm_s, x, seg)) if block.learned_shortcut else x
    dx = _sn_conv(block.conv_0, F.leaky_relu(_spade(block.norm_0, x, seg), 0.2))
    dx = _sn_conv(block.conv_1, F.leaky_relu(_spade(block.norm_1, dx, seg), 0.2))
    return x_s + dx


def generate_plain(spade: nn.Module, feature: torch.Tensor) -> torch.Tensor:
    """G's image in (0, 1): W's output is both the input and the SPADE label map of every block."""
    x = spade.fc(feature)
    for i in range(6):
        x = _resblock(getattr(spade, f"G_middle_{i}"), x, feature)
    x = _resblock(spade.up_0, F.interpolate(x, scale_factor=2), feature)
    x = _resblock(spade.up_1, F.interpolate(x, scale_factor=2), feature)
    return torch.sigmoid(spade.conv_img(F.leaky_relu(x, 0.2)))


def render_plain(warping: nn.Module, spade: nn.Module, feature: torch.Tensor, kp_source: torch.Tensor,
                 kp_driving: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) frames: W then G for each of the N driving keypoints, one frame at a time, in fp32."""
    frames = []
    for i in range(kp_driving.shape[0]):
        image = generate_plain(spade, warp_plain(warping, feature, kp_source, kp_driving[i : i + 1]))
        frames.append(image.permute(0, 2, 3, 1))
    return torch.cat(frames)
