"""S: the stitching and retargeting MLPs (keypoint deltas), always run in fp32.

The official checkpoint is a nested dict ``{group: {"module.mlp.N.*": ...}}``; this module uses the flattened
community layout ``{group}_module.mlp.N.*`` (``joyvasa_core.checkpoints.liveportrait`` converts between them).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import MLPConfig, StitchingConfig

# The three MLPs; the network holds each as ``{group}_module``.
STITCHING_GROUPS: tuple[str, ...] = ("retarget_shoulder", "retarget_mouth", "retarget_eye")


class RetargetMLP(nn.Module):
    """Linear/ReLU stack under ``mlp`` (Linear keys at even indices: mlp.0, mlp.2, ...)."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        sizes = [config.input_size, *config.hidden_sizes]
        layers: list[nn.Module] = []
        for cin, cout in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(cin, cout), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(sizes[-1], config.output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


class StitchingRetargetingNetwork(nn.Module):
    """The three MLPs; methods take batched keypoints (B, K, 3) and return raw deltas.

    A batch-1 ``x_s`` is broadcast against a batch-B second input (one source, many frames).
    """

    def __init__(self, config: StitchingConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or StitchingConfig()
        self.retarget_shoulder_module = RetargetMLP(cfg.stitching)
        self.retarget_mouth_module = RetargetMLP(cfg.lip)
        self.retarget_eye_module = RetargetMLP(cfg.eye)

    @staticmethod
    def _pair(x_s: torch.Tensor, other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = max(x_s.shape[0], other.shape[0])
        return _flat(x_s).float().expand(b, -1), _flat(other).float().expand(b, -1)

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """Delta (B, 3K+2): per-keypoint offsets then one shared (tx, ty)."""
        s, d = self._pair(x_s, x_d)
        return self.retarget_shoulder_module(torch.cat([s, d], dim=1))

    def lip(self, x_s: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """Lip delta (B, K, 3) from ``ratio`` (B, 2) = [source lip ratio, target lip ratio]."""
        s, r = self._pair(x_s, ratio)
        return self.retarget_mouth_module(torch.cat([s, r], dim=1)).reshape(s.shape[0], -1, 3)

    def eye(self, x_s: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """Eye delta (B, K, 3) from ``ratio`` (B, 3) = [source left, source right, target eye ratio]."""
        s, r = self._pair(x_s, ratio)
        return self.retarget_eye_module(torch.cat([s, r], dim=1)).reshape(s.shape[0], -1, 3)
