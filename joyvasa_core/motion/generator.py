"""``MotionGenerator``: JoyVASA's audio-to-motion model (``DitTalkingHead``) with the checkpoint's exact layout.

Its ``state_dict`` is the ``model`` dict of ``motion_generator_hubert_chinese.pt``: the HuBERT audio encoder, the
768 -> D feature map, the learned start/null tokens, the denoiser and the stored diffusion schedule buffers.
Sampling lives in ``sampler.py``; this module only holds the networks and loads the weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import nn
from transformers import HubertConfig

from ..audio.encoder import build_hubert, encode_window, hubert_config
from ..errors import CheckpointError
from .config import MotionGeneratorConfig
from .denoiser import DenoisingNetwork
from .schedulers import DiffusionSchedule

# Buffers the module computes itself; a checkpoint may omit them (or, for TE.pe, the official loader drops them).
COMPUTED_BUFFERS = (
    "denoising_net.alignment_mask",
    "denoising_net.TE.pe",
    "denoising_net.PE.pe",
    "diffusion_sched.betas",
    "diffusion_sched.alphas",
    "diffusion_sched.alpha_bars",
    "diffusion_sched.sigmas_flex",
    "diffusion_sched.sigmas_inflex",
)


class MotionGenerator(nn.Module):
    """Holds the audio encoder, the learned tokens, the denoiser and the schedule of one JoyVASA checkpoint."""

    def __init__(self, config: MotionGeneratorConfig | None = None, audio_config: HubertConfig | None = None) -> None:
        super().__init__()
        config = config or MotionGeneratorConfig()
        audio_config = audio_config or hubert_config()
        if audio_config.hidden_size != config.audio_hidden_dim:
            raise ValueError(
                f"MotionGenerator: HuBERT hidden size {audio_config.hidden_size} != config.audio_hidden_dim "
                f"{config.audio_hidden_dim}"
            )
        self.config = config
        p, d, dm = config.n_prev_motions, config.feature_dim, config.motion_feat_dim
        self.start_audio_feat = nn.Parameter(torch.zeros(1, p, d))
        self.start_motion_feat = nn.Parameter(torch.zeros(1, p, dm))
        self.null_audio_feat = nn.Parameter(torch.zeros(1, 1, d))
        self.audio_encoder = build_hubert(audio_config)
        self.audio_feature_map = nn.Linear(audio_config.hidden_size, d)
        self.denoising_net = DenoisingNetwork(config)
        self.diffusion_sched = DiffusionSchedule(config.n_diff_steps, config.cosine_s)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.null_audio_feat.device

    @property
    def dtype(self) -> torch.dtype:
        return self.null_audio_feat.dtype

    @property
    def pe_mode(self) -> str:
        return self.config.pe_mode

    @torch.no_grad()
    def encode_audio_window(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One window (B, 640*T) of 16 kHz audio -> HuBERT hidden (B,2T,768) and features (B,T,D)."""
        return encode_window(self.audio_encoder, self.audio_feature_map, samples)

    def load_checkpoint_state(self, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Load a ``model`` dict the way the official loader does, but refuse files that are not this model.

        ``denoising_net.TE.pe`` is dropped (the reference pops it and uses its own table); other computed buffers are
        taken from the file when present with the right shape (the stored schedule is what the reference used).
        Missing learned weights or wrong shapes raise CheckpointError; unexpected keys are ignored with a warning,
        as ``strict=False`` would. HuBERT's weight norm must carry the parametrization names (the checkpoint reader
        renames the legacy ``weight_g/weight_v`` of older files).
        """
        own = self.state_dict()
        incoming = dict(state_dict)
        incoming.pop("denoising_net.TE.pe", None)
        merged: dict[str, torch.Tensor] = {}
        missing, wrong_shape = [], []
        for key, value in own.items():
            if key in incoming and tuple(incoming[key].shape) == tuple(value.shape):
                merged[key] = incoming[key]
            elif key in COMPUTED_BUFFERS:
                merged[key] = value
            elif key in incoming:
                wrong_shape.append(f"{key} {tuple(incoming[key].shape)} (expected {tuple(value.shape)})")
            else:
                missing.append(key)
        if missing or wrong_shape:
            raise CheckpointError(
                f"motion generator {source}: {len(missing)} missing weights {missing[:5]}, "
                f"{len(wrong_shape)} wrong shapes {wrong_shape[:5]}. Use JoyVASA's "
                "motion_generator/motion_generator_hubert_chinese.pt (or a file with the same config)."
            )
        unexpected = sorted(set(incoming) - set(own))
        if unexpected:
            warnings.warn(
                f"motion generator {source}: ignoring {len(unexpected)} unexpected keys {unexpected[:5]}", stacklevel=2
            )
        self.load_state_dict(merged, strict=True)
