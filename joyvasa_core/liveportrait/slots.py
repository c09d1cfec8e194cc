"""The five LivePortrait networks as one table, and the config that groups them.

A slot is one network and one weight file: its name is the file stem of the official and community releases, the
yaml section is ``{name}_params``, and ``attribute`` is its field of :class:`LivePortraitConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .appearance import AppearanceFeatureExtractor
from .config import (
    AppearanceConfig,
    MotionExtractorConfig,
    SpadeConfig,
    StitchingConfig,
    WarpingConfig,
    as_config,
)
from .motion_extractor import MotionExtractor
from .spade import SPADEDecoder
from .stitching import StitchingRetargetingNetwork
from .warping import WarpingNetwork

APPEARANCE = "appearance_feature_extractor"
MOTION_EXTRACTOR = "motion_extractor"
WARPING = "warping_module"
SPADE = "spade_generator"
STITCHING = "stitching_retargeting_module"


@dataclass(frozen=True)
class SlotSpec:
    """One network of LivePortrait: its class, its config class and where both are named."""

    name: str
    letter: str
    network: type[nn.Module]
    config: type
    attribute: str
    description: str

    @property
    def label(self) -> str:
        """How messages name the network, e.g. ``LivePortrait warping module (W, warping_module)``."""
        return f"LivePortrait {self.description} ({self.letter}, {self.name})"

    @property
    def section(self) -> str:
        """The ``models.yaml`` section holding its config."""
        return f"{self.name}_params"


SLOT_SPECS: dict[str, SlotSpec] = {
    s.name: s
    for s in (
        SlotSpec(APPEARANCE, "F", AppearanceFeatureExtractor, AppearanceConfig, "appearance",
                 "appearance feature extractor"),
        SlotSpec(MOTION_EXTRACTOR, "M", MotionExtractor, MotionExtractorConfig, "motion_extractor",
                 "motion extractor"),
        SlotSpec(WARPING, "W", WarpingNetwork, WarpingConfig, "warping", "warping module"),
        SlotSpec(SPADE, "G", SPADEDecoder, SpadeConfig, "spade", "SPADE generator"),
        SlotSpec(STITCHING, "S", StitchingRetargetingNetwork, StitchingConfig, "stitching",
                 "stitching/retargeting module"),
    )
}
SLOTS: tuple[str, ...] = tuple(SLOT_SPECS)
BASE_SLOTS: tuple[str, ...] = SLOTS[:4]  # one folder, one version; the stitching file is shared by all variants


@dataclass
class LivePortraitConfig:
    """The five network configs together, as ``models.yaml`` ``model_params`` groups them."""

    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    motion_extractor: MotionExtractorConfig = field(default_factory=MotionExtractorConfig)
    warping: WarpingConfig = field(default_factory=WarpingConfig)
    spade: SpadeConfig = field(default_factory=SpadeConfig)
    stitching: StitchingConfig = field(default_factory=StitchingConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LivePortraitConfig:
        """Accept ``models.yaml`` (optionally under ``model_params``), fixture ``config`` or our attribute names."""
        d = d.get("model_params", d)
        kw = {}
        for spec in SLOT_SPECS.values():
            v = d.get(spec.section, d.get(spec.attribute))
            if v is not None:
                kw[spec.attribute] = as_config(spec.config, v)
        return cls(**kw)

    def of(self, slot: str) -> Any:
        """The config of one slot."""
        return getattr(self, SLOT_SPECS[slot].attribute)


def build_network(slot: str, config: LivePortraitConfig | None = None) -> nn.Module:
    """The ``slot`` network (eval mode) built from its part of ``config`` (official widths when None)."""
    return SLOT_SPECS[slot].network((config or LivePortraitConfig()).of(slot)).eval()


def build_networks(config: LivePortraitConfig | None = None) -> dict[str, nn.Module]:
    """Instantiate all five networks (eval mode) from one config; keys are the slot names."""
    return {slot: build_network(slot, config) for slot in SLOTS}
