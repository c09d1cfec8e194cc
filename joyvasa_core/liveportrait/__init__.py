"""LivePortrait's five networks (F, M, W, G, S), weight-compatible with the official checkpoints."""

from __future__ import annotations

from .appearance import AppearanceFeatureExtractor
from .config import (
    AppearanceConfig,
    DenseMotionConfig,
    LivePortraitConfig,
    MLPConfig,
    MotionExtractorConfig,
    SpadeConfig,
    StitchingConfig,
    WarpingConfig,
)
from .dense_motion import DenseMotionNetwork
from .motion_extractor import MotionExtractor
from .spade import SPADEDecoder
from .stitching import StitchingRetargetingNetwork
from .warping import WarpingNetwork

__all__ = [
    "AppearanceConfig",
    "AppearanceFeatureExtractor",
    "DenseMotionConfig",
    "DenseMotionNetwork",
    "LivePortraitConfig",
    "MLPConfig",
    "MotionExtractor",
    "MotionExtractorConfig",
    "SPADEDecoder",
    "SpadeConfig",
    "StitchingConfig",
    "StitchingRetargetingNetwork",
    "WarpingConfig",
    "WarpingNetwork",
    "build_networks",
]


def build_networks(config: LivePortraitConfig | None = None) -> dict:
    """Instantiate all five networks (eval mode) from one config; keys match the checkpoint file stems."""
    cfg = config or LivePortraitConfig()
    nets = {
        "appearance_feature_extractor": AppearanceFeatureExtractor(cfg.appearance),
        "motion_extractor": MotionExtractor(cfg.motion),
        "warping_module": WarpingNetwork(cfg.warping),
        "spade_generator": SPADEDecoder(cfg.spade),
        "stitching_retargeting_module": StitchingRetargetingNetwork(cfg.stitching),
    }
    for net in nets.values():
        net.eval()
    return nets
