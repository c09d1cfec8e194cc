"""The objects that travel along graph edges (and between the command line's stages).

Each is a small frozen dataclass with a one-line ``__repr__``, so a "show any" node tells the user what it holds
without dumping tensors. ``ReferenceFace`` (``JOYVASA_FACE``) and ``MotionSequence`` (``JOYVASA_MOTION``) live with
the code that makes them and are re-exported here so adapters import every edge type from one place.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .audio import SAMPLE_RATE
from .face.reference import PreparedFace, ReferenceFace, ReferenceOptions
from .keypoints import KeypointInfo, KeypointOptions
from .liveportrait.slots import SLOT_SPECS
from .motion.sampler import WindowPlan
from .motion.sequence import MotionSequence
from .motion.template import MotionTemplate

__all__ = [
    "Appearance",
    "Speech",
    "LivePortraitModels",
    "MotionModel",
    "MotionSequence",
    "PreparedFace",
    "ReferenceFace",
    "ReferenceOptions",
    "TargetKeypoints",
]

_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def dtype_name(dtype: torch.dtype) -> str:
    """``fp32`` / ``fp16`` / ``bf16``: the names the command line and the nodes use."""
    return _DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


def _shape(x: torch.Tensor | None) -> str:
    return "none" if x is None else "x".join(str(s) for s in x.shape)


@dataclass(frozen=True, eq=False, repr=False)
class Appearance:
    """Everything per-source the renderer needs, computed once: F's feature volume, M's source keypoint info,
    x_s, W's compressed source (the per-source part of the dense motion) and the source eye/lip openness.

    ``feature`` is (B, C, D, 64, 64) ((1, 32, 16, 64, 64) for the official config); ``eye_ratio`` (B, 2) and
    ``lip_ratio`` (B, 1) are None when the source has no usable landmarks (animals, a box crop).
    """

    feature: torch.Tensor
    info: KeypointInfo
    x_s: torch.Tensor
    compressed: torch.Tensor | None = None
    eye_ratio: torch.Tensor | None = None
    lip_ratio: torch.Tensor | None = None
    mode: str = "human"

    @property
    def batch_size(self) -> int:
        return int(self.x_s.shape[0])

    def __repr__(self) -> str:
        lip = "n/a" if self.lip_ratio is None else f"{float(self.lip_ratio.reshape(-1)[0]):.3f}"
        return (
            f"Appearance({self.batch_size} source, {self.mode}, feature {_shape(self.feature)} "
            f"{dtype_name(self.feature.dtype)} on {self.feature.device}, x_s {_shape(self.x_s)}, "
            f"yaw {float(self.info.yaw.reshape(-1)[0]):.1f} deg, lip ratio {lip})"
        )


@dataclass(frozen=True, eq=False, repr=False)
class Speech:
    """Speech ready for the motion generator: the 16 kHz mono waveform, how it is cut into windows, and (once a
    motion model encoded them) every window's 25 fps features.

    ``window_features`` (W, T, D) are HuBERT + feature map per window (``motion.sampler.encode_windows``): they
    depend on the audio, the padding and the audio networks only, so re-sampling with another seed, cfg or step
    count reuses them instead of running HuBERT again. ``model_fingerprint`` names the networks that made them
    (``audio_model_fingerprint``), so another motion model refuses them instead of sampling from foreign features.
    Without them (None) the sampler encodes each window itself. ``plan`` gives the sampled frame count (``floor((L0
    + 1920) / 640)`` with the reference's padding), the pads applied and the frames a video in sync keeps
    (``n_frames``: round(seconds x 25)), so downstream nodes know the video length before any sampling; the waveform
    stays for the video's sound track.
    """

    waveform: torch.Tensor
    plan: WindowPlan
    sample_rate: int = SAMPLE_RATE
    source: str | None = None
    window_features: torch.Tensor | None = None
    model_fingerprint: str | None = None

    @property
    def n_frames(self) -> int:
        """Frames of the video with the default lip sync (the leading silence's frames dropped)."""
        kept = self.plan.kept_frames(True)
        return kept.stop - kept.start

    @property
    def duration(self) -> float:
        """Seconds of speech (before padding)."""
        return self.waveform.shape[-1] / self.sample_rate

    def __repr__(self) -> str:
        p = self.plan
        name = f", {self.source}" if self.source else ""
        feats = ("window features encoded at sampling" if self.window_features is None
                 else f"window features {_shape(self.window_features)}")
        return (
            f"Speech({self.duration:.2f} s @ {self.sample_rate} Hz -> {self.n_frames} frames in {p.n_windows} "
            f"window(s) of {p.window_frames}, pads {p.leading_pad}+{p.trailing_pad} samples, {feats}{name})"
        )


@dataclass(frozen=True, eq=False, repr=False)
class TargetKeypoints:
    """The driving keypoints x_d of every frame (N, 21, 3), the source x_s they were composed against, and how."""

    x_d: torch.Tensor
    x_s: torch.Tensor
    options: KeypointOptions
    fps: int = 25
    mode: str = "human"

    @property
    def n_frames(self) -> int:
        return int(self.x_d.shape[0])

    def __len__(self) -> int:
        return self.n_frames

    def __repr__(self) -> str:
        opts = self.options
        parts = [
            f"{self.n_frames} frames @ {self.fps} fps",
            self.mode,
            "hull multiplier" if opts.uses_hull_multiplier else "no hull multiplier",
            "stitching" if opts.stitching else "no stitching",
            "lip normalisation" if opts.normalize_lip and opts.relative_adjustments else "no lip normalisation",
            f"multiplier {opts.driving_multiplier:g}",
        ]
        return f"TargetKeypoints({', '.join(parts)})"


class JoyVASALivePortraitNetworks(nn.ModuleDict):
    """LivePortrait's F, M, W, G (and S) as one module, for a memory manager (its name shows in ComfyUI's log)."""


class JoyVASAMotionNetworks(nn.ModuleDict):
    """The motion generator (diffusion transformer + HuBERT) as one module, for a memory manager."""


def _as_module(module: nn.ModuleDict, device: torch.device) -> nn.Module:
    module.device = device  # ComfyUI's ModelPatcher reads the module's current device from here
    return module


@dataclass(frozen=True, eq=False, repr=False)
class LivePortraitModels:
    """F, M, W, G and S of one weights variant, on one device.

    Weights stay fp32 (the stitching MLPs and keypoint maths always are); ``dtype`` is the compute precision of
    F, M, W and G, applied with autocast as the official wrapper does, so fp16/bf16 never touches the keypoints.
    """

    appearance: nn.Module
    motion_extractor: nn.Module
    warping: nn.Module
    spade: nn.Module
    stitching: nn.Module | None
    device: torch.device
    dtype: torch.dtype = torch.float32
    variant: str = "human"
    paths: dict[str, str] = field(default_factory=dict)

    def networks(self) -> dict[str, nn.Module]:
        """The loaded networks by field name, in slot order (S left out when it is not loaded)."""
        nets = {spec.attribute: getattr(self, spec.attribute) for spec in SLOT_SPECS.values()}
        return {name: net for name, net in nets.items() if net is not None}

    def as_module(self) -> nn.Module:
        """The networks as the one module a memory manager loads and offloads."""
        return _as_module(JoyVASALivePortraitNetworks(self.networks()), self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Reduced-precision compute for the image networks (no-op in fp32)."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @property
    def crop_size(self) -> int:
        """Side of G's output image (512 for every released config): F's 256 input halved by each of its down
        blocks is W's feature map, which G doubles twice and then pixel-shuffles by ``upscale``."""
        feature = 256 >> getattr(getattr(self.appearance, "config", None), "num_down_blocks", 2)
        upscale = getattr(self.spade.config, "upscale", 2) or 1
        return feature * 4 * int(upscale)

    def __repr__(self) -> str:
        fmt = {p.rsplit(".", 1)[-1] for p in self.paths.values()} or {"in-memory"}
        return (
            f"LivePortraitModels({self.variant}, {self.device}, {dtype_name(self.dtype)}, "
            f"{'+'.join(sorted(fmt))} weights, stitching {'yes' if self.stitching is not None else 'no'})"
        )


@dataclass(frozen=True, eq=False, repr=False)
class MotionModel:
    """The JoyVASA motion generator with the template that de-normalises its output."""

    generator: nn.Module
    template: MotionTemplate
    device: torch.device
    dtype: torch.dtype = torch.float32
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Any:
        return self.generator.config

    def as_module(self) -> nn.Module:
        """The generator as the one module a memory manager loads and offloads."""
        return _as_module(JoyVASAMotionNetworks({"generator": self.generator}), self.device)

    def __repr__(self) -> str:
        c = self.generator.config
        return (
            f"MotionModel(T={c.n_motions}, P={c.n_prev_motions}, D={c.feature_dim}, {c.n_diff_steps} steps, "
            f"pe {c.pe_mode}, {self.device}, {dtype_name(self.dtype)})"
        )
