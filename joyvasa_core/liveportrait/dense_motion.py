"""The dense-motion network inside W: keypoints -> per-voxel deformation grid and occlusion map.

The source feature is per source image and the keypoints are per frame, so the source side (compression) is
computed once for a batch-1 feature and shared by all B frames instead of being repeated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..hardware import runs_on_cpu_instead
from .blocks import Hourglass, conv_norm, make_coordinate_grid
from .config import DenseMotionConfig
from .derived import compute_dtype, derived, memory_format_for


def grid_sample_shared(feature: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Trilinear ``grid_sample`` (zeros padding, align_corners=False) in fp32.

    ``feature`` (Bf,C,D,H,W), ``grid`` (N,Do,Ho,Wo,3) with N a multiple of Bf: grid n samples feature
    n // (N // Bf). The N // Bf grids of one feature are stacked along depth in one call, which avoids copying the
    feature N // Bf times. The maths stays fp32 even under autocast: bf16 grid coordinates would move the samples
    by up to half a voxel.
    """
    n, do = grid.shape[:2]
    bf, c = feature.shape[:2]
    if n % bf:
        raise ValueError(f"grid_sample_shared: {n} grids cannot be shared by a feature batch of {bf}")
    m = n // bf
    device = feature.device
    on_cpu = runs_on_cpu_instead("aten::grid_sampler_3d", device)  # Apple's MPS has no kernel for it
    out = F.grid_sample(
        feature.float().cpu() if on_cpu else feature.float(),
        (grid.float().cpu() if on_cpu else grid.float()).reshape(bf, m * do, *grid.shape[2:]),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    ).to(device)
    if m == 1:
        return out
    return out.view(bf, c, m, do, *out.shape[3:]).transpose(1, 2).reshape(n, c, do, *out.shape[3:])


def collapse_expanded(x: torch.Tensor) -> torch.Tensor:
    """A batch made with ``expand`` (stride 0) holds one tensor: keep batch 1 so the work is done once."""
    return x[:1] if x.shape[0] > 1 and x.stride(0) == 0 else x


class DenseMotionNetwork(nn.Module):
    """Predicts how each voxel of the driving volume samples the source volume."""

    def __init__(
        self,
        config: DenseMotionConfig | None = None,
        num_kp: int = 21,
        feature_channel: int = 32,
        estimate_occlusion_map: bool = True,
    ) -> None:
        super().__init__()
        self.config = cfg = config or DenseMotionConfig()
        self.num_kp = num_kp
        self.hourglass = Hourglass(
            cfg.block_expansion,
            in_features=(num_kp + 1) * (cfg.compress + 1),
            max_features=cfg.max_features,
            num_blocks=cfg.num_blocks,
        )
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, cfg.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(cfg.compress)
        self.occlusion: nn.Conv2d | None = None
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters * cfg.reshape_depth, 1, kernel_size=7, padding=3)

    def compress_feature(self, feature: torch.Tensor) -> torch.Tensor:
        """Source-side work (Conv3d 1x1 -> BN -> ReLU); depends only on the source feature."""
        return F.relu(self.norm(self.compress(feature)), inplace=True)

    def sparse_motions(self, grid: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """(B, K+1, D, H, W, 3) from the (D,H,W,3) ``grid``: identity for the background, then
        ``grid - kp_d[k] + kp_s[k]``."""
        b, k = kp_driving.shape[:2]
        spatial = grid.shape[:3]
        shift = grid.view(1, 1, *spatial, 3) - kp_driving.view(b, k, 1, 1, 1, 3)
        shift = shift + kp_source.view(b, k, 1, 1, 1, 3)
        return torch.cat([grid.view(1, 1, *spatial, 3).expand(b, 1, *spatial, 3), shift], dim=1)

    def heatmaps(self, grid: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """(B, K+1, 1, D, H, W): Gaussian(driving) - Gaussian(source), zero map first for the background.

        Values below the smallest normal float are set to zero. The Gaussians' tails leave a shell of subnormal
        values that make the CPU's convolutions over this volume about 3x slower, and zeroing them leaves every
        convolution's output bit for bit the same.
        """
        b, k = kp_driving.shape[:2]
        spatial = grid.shape[:3]
        var = self.config.kp_variance

        def gaussian(kp: torch.Tensor) -> torch.Tensor:
            sub = grid.view(1, 1, *spatial, 3) - kp.view(b, k, 1, 1, 1, 3)
            return torch.exp(-0.5 * (sub * sub).sum(-1) / var)

        heat = gaussian(kp_driving) - gaussian(kp_source)
        heat = heat.masked_fill_(heat.abs() < torch.finfo(heat.dtype).tiny, 0.0)
        zeros = heat.new_zeros(b, 1, *spatial)
        return torch.cat([zeros, heat], dim=1).unsqueeze(2)

    def forward(
        self,
        feature: torch.Tensor,
        kp_source: torch.Tensor,
        kp_driving: torch.Tensor,
        compressed: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``feature`` (1 or B, C, D, H, W); keypoints (B, K, 3). ``compressed`` may carry a cached
        ``compress_feature(feature)`` so a per-source caller pays for it once."""
        b = kp_driving.shape[0]
        dt = compute_dtype(feature)
        feature = collapse_expanded(feature)
        if kp_source.shape[0] != b:
            kp_source = kp_source.expand(b, *kp_source.shape[1:])
        fc = self.compress_feature(feature) if compressed is None else compressed
        spatial = tuple(fc.shape[2:])
        k1 = self.num_kp + 1
        kp_source, kp_driving = kp_source.float(), kp_driving.float()
        grid = make_coordinate_grid(spatial, dtype=kp_source.dtype, device=kp_source.device)
        sparse = self.sparse_motions(grid, kp_source, kp_driving)
        deformed = grid_sample_shared(fc, sparse.reshape(b * k1, *spatial, 3))
        deformed = deformed.reshape(b, k1, -1, *spatial)
        heat = self.heatmaps(grid, kp_source, kp_driving)
        hg_in = torch.cat([heat, deformed], dim=2).view(b, -1, *spatial)
        with torch.autocast(hg_in.device.type, enabled=False):
            pred = self.hourglass(hg_in.to(dt).contiguous(memory_format=memory_format_for(3)))
            mask = torch.softmax(self.mask_logits(pred).float(), dim=1)
            occlusion = None
            if self.occlusion is not None:
                h, w = pred.shape[3:]
                occlusion = torch.sigmoid(conv_norm(self, self.occlusion, None, pred.reshape(b, -1, h, w)).float())
        deformation = (sparse.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 4, 1)
        out = {"mask": mask, "deformation": deformation}
        if occlusion is not None:
            out["occlusion_map"] = occlusion
        return out

    def mask_logits(self, pred: torch.Tensor) -> torch.Tensor:
        """The 7x7x7 mask conv. In bf16/fp16 on CPU it runs as 7 depth-shifted 2-D convs over the depth slices:
        oneDNN's reduced-precision 3-D conv at 22 output channels is slower than fp32, its 2-D conv is not."""
        conv = self.mask
        if pred.device.type != "cpu" or pred.dtype == torch.float32:
            return conv_norm(self, conv, None, pred)
        kd = conv.kernel_size[0]
        pad = conv.padding[0]

        def make() -> tuple[list[torch.Tensor], torch.Tensor]:
            w = conv.weight.to(pred.dtype)
            taps = [w[:, :, k].contiguous(memory_format=memory_format_for(2)) for k in range(kd)]
            return taps, conv.bias.to(pred.dtype)

        taps, bias = derived(self, ("mask_taps", pred.dtype), [conv.weight, conv.bias], make)
        b, c, d, h, w = pred.shape
        # Depth-major so that the d slices seen by each tap are one contiguous run of the batch dimension.
        slices = F.pad(pred, (0, 0, 0, 0, pad, pad)).permute(2, 0, 1, 3, 4).reshape(-1, c, h, w)
        slices = slices.contiguous(memory_format=memory_format_for(2))
        out = None
        for k, tap in enumerate(taps):
            r = F.conv2d(slices[k * b : (k + d) * b], tap, bias if k == 0 else None, padding=conv.padding[1:])
            out = r if out is None else out.add_(r)
        return out.view(d, b, -1, h, w).permute(1, 2, 0, 3, 4)
