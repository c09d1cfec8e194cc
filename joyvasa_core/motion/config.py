"""Hyper-parameters of the JoyVASA motion generator (``DitTalkingHead``), official values as defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..audio import SAMPLE_RATE

PE_MODES = ("legacy", "fixed")


@dataclass(frozen=True)
class MotionGeneratorConfig:
    """Everything that shapes the motion generator's weights and its sampling windows.

    The defaults are what the official loader really builds for ``motion_generator_hubert_chinese.pt``: the
    checkpoint's own ``args`` only set the six window/width fields, while the denoiser keeps its constructor
    defaults (8 layers, 8 heads, 501-row time table, sinusoidal PE, no indicator channel).
    """

    motion_feat_dim: int = 73
    n_motions: int = 100
    n_prev_motions: int = 10
    feature_dim: int = 256
    n_diff_steps: int = 50
    fps: int = 25
    sample_rate: int = SAMPLE_RATE
    audio_hidden_dim: int = 768
    n_heads: int = 8
    n_layers: int = 8
    mlp_ratio: int = 4
    time_embedding_rows: int = 501
    pos_encoding_rows: int = 600
    layer_norm_eps: float = 1e-5
    cosine_s: float = 0.008
    pe_mode: str = "legacy"

    def __post_init__(self) -> None:
        if self.pe_mode not in PE_MODES:
            raise ValueError(f"MotionGeneratorConfig: pe_mode must be one of {PE_MODES}, got {self.pe_mode!r}")
        if self.feature_dim % self.n_heads:
            raise ValueError(f"MotionGeneratorConfig: feature_dim {self.feature_dim} not divisible by {self.n_heads}")
        if self.sample_rate % self.fps:
            raise ValueError(f"MotionGeneratorConfig: sample_rate {self.sample_rate} not a multiple of fps {self.fps}")
        if self.n_prev_motions + self.n_motions >= self.pos_encoding_rows:
            raise ValueError("MotionGeneratorConfig: P + T must be below pos_encoding_rows (legacy PE reads row P+T)")
        if self.n_diff_steps >= self.time_embedding_rows:
            raise ValueError("MotionGeneratorConfig: n_diff_steps must be below time_embedding_rows")

    @property
    def n_tokens(self) -> int:
        """L = P + T tokens the denoiser sees per window."""
        return self.n_prev_motions + self.n_motions

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per motion frame (640 at 16 kHz / 25 fps)."""
        return self.sample_rate // self.fps

    @property
    def window_samples(self) -> int:
        """Raw samples per sliding window (64,000 for T=100)."""
        return self.samples_per_frame * self.n_motions

    @classmethod
    def from_checkpoint_args(cls, args: dict[str, Any], **overrides: Any) -> MotionGeneratorConfig:
        """Map a checkpoint's train.py ``args`` the way the official loader does.

        Only ``motion_feat_dim, n_motions, n_prev_motions, feature_dim, n_diff_steps`` (and ``fps``, a constructor
        default that train.py also records) reach the module; ``n_layers``/``n_heads`` in the args describe a denoiser
        the loader never builds, so they are deliberately ignored.
        """
        mapped: dict[str, Any] = {}
        for name in ("motion_feat_dim", "n_motions", "n_prev_motions", "feature_dim", "n_diff_steps", "fps"):
            value = args.get(name)
            if value is not None:
                mapped[name] = int(value)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"MotionGeneratorConfig: unknown fields {unknown}")
        return cls(**{**mapped, **overrides})

    def with_pe_mode(self, pe_mode: str) -> MotionGeneratorConfig:
        """Same weights, other positional-encoding mode (the two modes share every tensor)."""
        return replace(self, pe_mode=pe_mode)
