"""HuBERT audio encoder of the JoyVASA motion generator: one window of 16 kHz speech -> 25 fps features.

The official loader builds the Chinese HuBERT-base from its ``config.json`` and then overwrites every weight with the
``audio_encoder.*`` tensors of the JoyVASA checkpoint, so only the configuration matters and it is the library default
``HubertConfig()``: shipping it in code means no download and no second weight file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from transformers import HubertConfig, HubertModel

from . import SAMPLE_RATE

MOTION_FPS = 25
HUBERT_FPS = 50
SAMPLES_PER_FRAME = SAMPLE_RATE // MOTION_FPS  # 640
PAD_UNIT = 320  # one HuBERT frame (CNN total stride)
PAD_THRESHOLD = 80  # extra samples so that 640*T samples give exactly 2*T CNN frames

_POS_CONV = "pos_conv_embed.conv."
_LEGACY_TO_PARAM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


def hubert_config(**overrides) -> HubertConfig:
    """The Chinese-HuBERT-base configuration (``HubertConfig()`` defaults), with eager attention.

    Eager attention is what the reference ran (its forward forces ``output_attentions``); overrides let tests build
    the reduced fixture configurations from their metadata.
    """
    overrides.setdefault("attn_implementation", "eager")
    config = HubertConfig(**overrides)
    config._attn_implementation = overrides["attn_implementation"]
    return config


def build_hubert(config: HubertConfig | None = None) -> HubertModel:
    """An eval-mode ``HubertModel`` of ``config``; its weights are meant to be replaced by the checkpoint's."""
    return HubertModel(config if config is not None else hubert_config()).eval()


def remap_pos_conv_weight_norm(state_dict: Mapping[str, torch.Tensor], to_parametrizations: bool = True) -> dict:
    """Rename HuBERT's positional-conv weight-norm pair between the legacy and the parametrization names.

    Checkpoints saved before torch 2.1 hold ``...pos_conv_embed.conv.weight_g/weight_v``; current transformers modules
    expect ``...conv.parametrizations.weight.original0/original1`` (g, v). Works on any prefix (``audio_encoder.``).
    """
    names = _LEGACY_TO_PARAM if to_parametrizations else {v: k for k, v in _LEGACY_TO_PARAM.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if _POS_CONV in key:
            head, tail = key.rsplit(_POS_CONV, 1)
            key = head + _POS_CONV + names.get(tail, tail)
        out[key] = value
    return out


def pad_audio(samples: torch.Tensor, unit: int = PAD_UNIT, threshold: int = PAD_THRESHOLD) -> torch.Tensor:
    """JoyVASA's window padding: two reflect pads (+1 replicate when odd) so the CNN yields whole frames.

    For 640*T samples this adds 40 samples per side (20 reflected, then 20 reflected again of the padded signal).
    """
    length = samples.shape[-1]
    side = math.ceil((unit * (length // unit) + threshold - length) / 2)
    if side < 0:
        return samples
    reflect, replicate = divmod(side, 2)
    x = samples.unsqueeze(1)
    if reflect > 0:
        x = F.pad(x, (reflect, reflect), mode="reflect")
        x = F.pad(x, (reflect, reflect), mode="reflect")
    if replicate:
        x = F.pad(x, (1, 1), mode="replicate")
    return x.squeeze(1)


def _resample_time(x: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """Linear resampling of (B, L, C) along L; skipped when the length already matches (bit-exact identity)."""
    if x.shape[1] == size:
        return x
    return F.interpolate(x.transpose(1, 2), size=size, mode="linear", align_corners=align_corners).transpose(1, 2)


@torch.no_grad()
def encode_window(
    hubert: HubertModel, feature_map: torch.nn.Linear, samples: torch.Tensor, n_frames: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio features of one window.

    ``samples``: (B, 640*T) raw 16 kHz mono in [-1, 1] (no normalisation). Returns the HuBERT ``last_hidden_state``
    (B, 2T, 768) at 50 Hz and the 25 fps features (B, T, D): mean of frame pairs, then ``feature_map``.
    ``n_frames`` defaults to ``len // 640`` (the reference passes the window's T).
    """
    if samples.dim() == 1:
        samples = samples.unsqueeze(0)
    if samples.dim() != 2:
        raise ValueError(f"encode_window expects (B, samples), got shape {tuple(samples.shape)}")
    n_frames = samples.shape[-1] // SAMPLES_PER_FRAME if n_frames is None else int(n_frames)
    if n_frames < 1:
        raise ValueError(f"window of {samples.shape[-1]} samples is shorter than one motion frame")
    param = next(hubert.parameters())
    x = pad_audio(samples.to(device=param.device, dtype=param.dtype))

    hubert_frames = 2 * n_frames
    feats = hubert.feature_extractor(x).transpose(1, 2)  # (B, L, C) at 50 Hz
    # The reference's custom forward: keep round(frames * 50 / fps) CNN frames, then linearly resample to the
    # requested count (align_corners=True). Both are identities for 640*T samples.
    feats = feats[:, : round(hubert_frames * HUBERT_FPS / MOTION_FPS)]
    feats = _resample_time(feats, hubert_frames, align_corners=True)
    hidden = hubert.feature_projection(feats)
    if isinstance(hidden, tuple):
        hidden = hidden[0]
    hidden = hubert.encoder(hidden)[0]

    # 50 Hz -> 25 fps by linear interpolation (align_corners=False): exactly the mean of frames 2i and 2i+1.
    pooled = _resample_time(hidden, n_frames, align_corners=False)
    return hidden, feature_map(pooled)
