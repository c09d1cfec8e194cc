"""Hyperparameters of the five LivePortrait networks.

Defaults are the official ``models.yaml`` values, so ``XConfig()`` builds a network whose state dict loads the
official checkpoints. Every width is a field, so reduced test networks (the ``liveportrait_small`` fixture) are
built by the same code. ``from_dict`` accepts the yaml section names and the fixture metadata ``config`` entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

# Backbone name -> (depths, dims) of the ConvNeXtV2 variants LivePortrait can name in its yaml.
CONVNEXTV2_VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "convnextv2_tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
}


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """Keep the keys that are fields of ``cls``: the yaml and fixtures carry notes we do not need."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def as_config(cls: Any, v: Any) -> Any:
    """A sub-config given either as an instance of ``cls`` or as its dict."""
    return v if isinstance(v, cls) else cls.from_dict(v)


_C = TypeVar("_C", bound="_FlatConfig")


class _FlatConfig:
    """``from_dict`` for configs whose fields are all plain values: keep the known keys, ignore the rest."""

    @classmethod
    def from_dict(cls: type[_C], d: dict[str, Any]) -> _C:
        return cls(**_known(cls, d))


@dataclass
class AppearanceConfig(_FlatConfig):
    """F: image -> 3-D appearance feature volume (B, reshape_channel, reshape_depth, 64, 64)."""

    image_channel: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


@dataclass
class MotionExtractorConfig:
    """M: ConvNeXtV2 backbone with seven linear heads (keypoints, pose bins, t, exp, scale)."""

    num_kp: int = 21
    num_bins: int = 66
    in_chans: int = 3
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)
    drop_path_rate: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MotionExtractorConfig:
        kw = _known(cls, d)
        backbone = d.get("backbone")
        if "depths" not in kw or "dims" not in kw:
            if backbone is not None and backbone not in CONVNEXTV2_VARIANTS:
                raise ValueError(
                    f"motion extractor config: backbone {backbone!r} has no known widths and the config gives no "
                    f"'depths'/'dims'; use one of {sorted(CONVNEXTV2_VARIANTS)} or give depths and dims"
                )
            depths, dims = CONVNEXTV2_VARIANTS[backbone or "convnextv2_tiny"]
            kw.setdefault("depths", depths)
            kw.setdefault("dims", dims)
        kw["depths"] = tuple(int(x) for x in kw["depths"])
        kw["dims"] = tuple(int(x) for x in kw["dims"])
        if len(kw["depths"]) != 4 or len(kw["dims"]) != 4:
            raise ValueError(f"motion extractor config: need 4 stages, got depths {kw['depths']} dims {kw['dims']}")
        return cls(**kw)


@dataclass
class DenseMotionConfig(_FlatConfig):
    """The dense-motion hourglass inside W (``dense_motion_params`` in the yaml)."""

    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4
    kp_variance: float = 0.01


@dataclass
class WarpingConfig:
    """W: warps the source feature volume by the keypoint motion and projects it to a 2-D feature map."""

    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    estimate_occlusion_map: bool = True
    flag_use_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WarpingConfig:
        kw = _known(cls, d)
        dm = d.get("dense_motion_params", d.get("dense_motion"))
        if dm is not None:
            kw["dense_motion"] = as_config(DenseMotionConfig, dm)
        return cls(**kw)


@dataclass
class SpadeConfig(_FlatConfig):
    """G: SPADE decoder from W's feature map to the 512x512 image."""

    upscale: int = 2
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64
    spade_hidden: int = 128

    @property
    def input_channels(self) -> int:
        """Channels of W's output, which G takes as both input and SPADE label map."""
        return min(self.max_features, self.block_expansion * 2**self.num_down_blocks)


@dataclass
class MLPConfig:
    """One stitching/retargeting MLP: Linear layers with ReLU between them."""

    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MLPConfig:
        return cls(int(d["input_size"]), tuple(int(h) for h in d["hidden_sizes"]), int(d["output_size"]))


def _stitch_default() -> MLPConfig:
    return MLPConfig(126, (128, 128, 64), 65)


def _lip_default() -> MLPConfig:
    return MLPConfig(65, (128, 128, 64), 63)


def _eye_default() -> MLPConfig:
    return MLPConfig(66, (256, 256, 128, 128, 64), 63)


@dataclass
class StitchingConfig:
    """S: the stitching (shoulder), lip (mouth) and eye retargeting MLPs."""

    stitching: MLPConfig = field(default_factory=_stitch_default)
    lip: MLPConfig = field(default_factory=_lip_default)
    eye: MLPConfig = field(default_factory=_eye_default)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StitchingConfig:
        return cls(**{name: as_config(MLPConfig, d[name]) for name in ("stitching", "lip", "eye") if name in d})
