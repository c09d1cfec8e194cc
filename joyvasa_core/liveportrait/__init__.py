"""LivePortrait's five networks (F, M, W, G, S), weight-compatible with the official checkpoints."""

from __future__ import annotations

from .appearance import AppearanceFeatureExtractor
from .config import (
    AppearanceConfig,
    DenseMotionConfig,
    MLPConfig,
    MotionExtractorConfig,
    SpadeConfig,
    StitchingConfig,
    WarpingConfig,
)
from .dense_motion import DenseMotionNetwork
from .motion_extractor import MotionExtractor
from .slots import SLOT_SPECS, SLOTS, LivePortraitConfig, SlotSpec, build_network, build_networks
from .spade import SPADEDecoder
from .stitching import StitchingRetargetingNetwork
from .warping import WarpingNetwork

__all__ = [
    "SLOTS",
    "SLOT_SPECS",
    "AppearanceConfig",
    "AppearanceFeatureExtractor",
    "DenseMotionConfig",
    "DenseMotionNetwork",
    "LivePortraitConfig",
    "MLPConfig",
    "MotionExtractor",
    "MotionExtractorConfig",
    "SPADEDecoder",
    "SlotSpec",
    "SpadeConfig",
    "StitchingConfig",
    "StitchingRetargetingNetwork",
    "WarpingConfig",
    "WarpingNetwork",
    "build_network",
    "build_networks",
]
