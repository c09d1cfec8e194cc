"""HuBERT window encoding against the reference: hidden states and 25 fps features of every stored window."""

from __future__ import annotations

import pytest
import torch
from fixture_support import assert_close, fill_module, load_fixture

from joyvasa_core.audio.encoder import build_hubert, encode_window, hubert_config, pad_audio

FIXTURES = ("joyvasa_small.safetensors", "joyvasa_shipped.safetensors")
PREFIXES = ("audio_encoder.", "audio_feature_map.")
HIDDEN_ATOL = 5e-5  # README tolerances: HuBERT hidden, audio features
FEAT_ATOL = 5e-5


class _AudioPart(torch.nn.Module):
    """The motion generator's audio modules under their checkpoint names (the fill value depends on the key)."""

    def __init__(self, meta: dict) -> None:
        super().__init__()
        model = meta["model"]
        self.audio_encoder = build_hubert(hubert_config(**meta["hubert_config"]))
        self.audio_feature_map = torch.nn.Linear(model["audio_feature_map_in"], model["feature_dim"])


@pytest.fixture(scope="module", params=FIXTURES)
def audio_part(request):
    fx = load_fixture(request.param)
    expected = {k: v for k, v in fx.meta["state_dict"].items() if k.startswith(PREFIXES)}
    assert expected, "fixture has no audio_encoder/audio_feature_map keys"
    module = fill_module(_AudioPart(fx.meta), fx.meta["fill"]["seed"], fx.meta["fill"]["skip"], expected)
    return fx, module


@pytest.mark.parity
def test_motion_audio_encoder_parity(audio_part):
    fx, module = audio_part
    windows = fx.meta["n_windows"]
    assert windows >= 1
    for i in range(windows):
        audio = fx[f"seq.win{i}.audio_in"]
        hidden, feat = encode_window(module.audio_encoder, module.audio_feature_map, audio)
        assert_close(hidden, fx[f"seq.win{i}.hubert_hidden"], HIDDEN_ATOL, name=f"{fx.meta['fixture']} win{i} hidden")
        assert_close(feat, fx[f"seq.win{i}.audio_feat"], FEAT_ATOL, name=f"{fx.meta['fixture']} win{i} audio_feat")


@pytest.mark.parity
def test_motion_audio_encoder_batched_parity(audio_part):
    """B windows at once give each window's own features (GroupNorm and attention are per sample)."""
    fx, module = audio_part
    ids = list(range(fx.meta["n_windows"]))[:2]
    audio = torch.cat([fx[f"seq.win{i}.audio_in"] for i in ids])
    hidden, feat = encode_window(module.audio_encoder, module.audio_feature_map, audio)
    for b, i in enumerate(ids):
        assert_close(hidden[b : b + 1], fx[f"seq.win{i}.hubert_hidden"], HIDDEN_ATOL, name=f"batched hidden {i}")
        assert_close(feat[b : b + 1], fx[f"seq.win{i}.audio_feat"], FEAT_ATOL, name=f"batched audio_feat {i}")


def test_motion_audio_window_padding():
    """640*T samples gain 40 per side: 20 reflected, then 20 reflected again from the padded signal."""
    fx = load_fixture(FIXTURES[0])
    audio = fx["seq.win0.audio_in"]
    padded = pad_audio(audio)
    assert padded.shape[-1] == audio.shape[-1] + 80
    torch.testing.assert_close(padded[:, 40:-40], audio, rtol=0, atol=0)
    once = torch.nn.functional.pad(audio[:, None], (20, 20), mode="reflect")[:, 0]
    assert torch.equal(padded[:, 20:-20], once)
    assert torch.equal(padded[:, :20], once[:, 1:21].flip(-1))
    odd = torch.arange(700.0)[None]  # 2 full units of 320 + 60: side = ceil((640 + 80 - 700) / 2) = 10 -> 5+5 reflect
    assert pad_audio(odd).shape[-1] == 720
    assert pad_audio(torch.arange(702.0)[None]).shape[-1] == 702 + 2 * 9  # side 9: 4+4 reflect, 1 replicate


def test_motion_audio_other_lengths_resample_like_reference(audio_part):
    """A window that is not 640*T long is still mapped to T frames (truncate, then linear resample)."""
    fx, module = audio_part
    audio = fx["seq.win0.audio_in"]
    samples_per_frame = fx.meta["audio"]["sample_rate"] // fx.meta["model"]["fps"]
    frames = audio.shape[-1] // samples_per_frame
    short = audio[:, : -(samples_per_frame // 2)]
    hidden, feat = encode_window(module.audio_encoder, module.audio_feature_map, short, n_frames=frames)
    assert hidden.shape[1] == 2 * frames and feat.shape[1] == frames
    assert torch.isfinite(feat).all()
    # The pooling really is the pair mean (the interpolation rounds differently: README audio-feature tolerance).
    pooled = hidden.reshape(hidden.shape[0], frames, 2, -1).mean(2)
    assert_close(module.audio_feature_map(pooled), feat, FEAT_ATOL, name="pair mean")
