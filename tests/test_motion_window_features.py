"""Window features computed once (``encode_windows``) and reused by the sampler: identical motion, no second HuBERT
pass for another seed, and clear errors for features that do not fit the audio or the model."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from fixture_support import assert_close, load_fixture
from motion_support import (
    MOTION_FIXTURES,
    StopAfter,
    build_model,
    model_for,
    options_from,
    template_from,
    wave_from,
)

from joyvasa_core.errors import AudioInputError, Cancelled
from joyvasa_core.motion.generator import MotionGenerator
from joyvasa_core.motion.sampler import (
    audio_model_fingerprint,
    encode_windows,
    generate_motion,
    plan_windows,
    sample_coefficients,
)

SMALL = "joyvasa_small.safetensors"
TOL_FEAT = 5e-5  # fixture README, audio features (seq.win{i}.audio_feat)


@pytest.fixture(scope="module")
def fx():
    return load_fixture(SMALL)


@pytest.fixture(scope="module")
def model(fx):
    return model_for(SMALL, fx.meta["pe_modes"][0])


@contextmanager
def hubert_calls(model: MotionGenerator) -> Iterator[list[int]]:
    """Counts forward calls of the model's HuBERT encoder (one per encoded window batch)."""
    calls: list[int] = []
    handle = model.audio_encoder.encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


@pytest.mark.parity
@pytest.mark.parametrize("name", MOTION_FIXTURES)
def test_motion_encode_windows_parity(name):
    """Every window's precomputed features agree with the reference's stored per-window features."""
    fx = load_fixture(name)
    model = build_model(name)
    features = encode_windows(model, wave_from(fx), options_from(fx.meta).leading_silence)
    n_windows, cfg = fx.meta["n_windows"], model.config
    assert features.shape == (1, n_windows, cfg.n_motions, cfg.feature_dim)
    assert features.device.type == "cpu"
    for i in range(n_windows):
        assert_close(features[:, i], fx[f"seq.win{i}.audio_feat"], TOL_FEAT, name=f"window {i} audio_feat")


def test_motion_window_features_bit_identical(fx, model):
    """Motion from precomputed features equals the in-sampler path bit for bit, window features included."""
    options = options_from(fx.meta)
    seen: dict[int, torch.Tensor] = {}
    plain = sample_coefficients(model, wave_from(fx), options,
                                on_window=lambda i, _m, a: seen.__setitem__(i, a.clone()))
    features = encode_windows(model, wave_from(fx), options.leading_silence)
    assert sorted(seen) == list(range(fx.meta["n_windows"]))
    for i, feat in seen.items():
        assert torch.equal(features[:, i], feat), f"window {i}"
    assert torch.equal(sample_coefficients(model, wave_from(fx), options, window_features=features), plain)
    assert torch.equal(sample_coefficients(model, wave_from(fx), options, window_features=features[0]), plain)
    template = template_from(fx)
    seq = generate_motion(model, wave_from(fx), template, options, window_features=features)
    assert torch.equal(seq.coef, generate_motion(model, wave_from(fx), template, options).coef)
    # Other padding and lag compensation: the features follow the padding, the lag trim does not touch them.
    quiet = options_from(fx.meta, leading_silence=False, lag_compensation=True)
    quiet_features = encode_windows(model, wave_from(fx), leading_silence=False)
    assert torch.equal(sample_coefficients(model, wave_from(fx), quiet, window_features=quiet_features),
                       sample_coefficients(model, wave_from(fx), quiet))


def test_motion_window_features_batched(fx, model):
    """A batch of two clips gets (2, W, T, D) features, each item the single clip's (to the feature tolerance: CPU
    kernels differ with the batch size), and the batched motion from them is the batched in-sampler motion exactly."""
    options = options_from(fx.meta)
    wave = wave_from(fx)
    other = torch.flip(wave, dims=[-1])
    batch = torch.stack([wave, other])
    features = encode_windows(model, batch, options.leading_silence)
    assert features.shape[0] == 2
    assert_close(features[1:], encode_windows(model, other, options.leading_silence), TOL_FEAT, name="batch item")
    with hubert_calls(model) as calls:
        reused = sample_coefficients(model, batch, options, window_features=features)
    assert not calls
    assert torch.equal(reused, sample_coefficients(model, batch, options))


def test_motion_other_seed_reuses_features_without_hubert(fx, model):
    """Encoding runs HuBERT once per window; sampling from the features with any seed or cfg never runs it."""
    options = options_from(fx.meta)
    n_windows = fx.meta["n_windows"]
    with hubert_calls(model) as calls:
        features = encode_windows(model, wave_from(fx), options.leading_silence)
        assert len(calls) == n_windows
        first = sample_coefficients(model, wave_from(fx), options, window_features=features)
        second = sample_coefficients(model, wave_from(fx), options_from(fx.meta, seed=options.seed + 1),
                               window_features=features)
        third = sample_coefficients(model, wave_from(fx), options_from(fx.meta, cfg_scale=options.cfg_scale + 1.0),
                              window_features=features)
        assert len(calls) == n_windows
        fallback = sample_coefficients(model, wave_from(fx), options_from(fx.meta, seed=options.seed + 1))
        assert len(calls) == 2 * n_windows
    assert float((first - second).abs().mean()) > 0.1
    assert float((first - third).abs().max()) > 1e-3
    assert torch.equal(second, fallback)


def test_motion_mismatched_window_features_are_clear(fx, model):
    options = options_from(fx.meta)
    wave = wave_from(fx)
    features = encode_windows(model, wave, options.leading_silence)
    cfg = model.config
    wrong = {
        "windows": torch.cat([features, features[:, :1]], dim=1),
        "frames": features[:, :, :-1],
        "dim": torch.cat([features, features[..., :1]], dim=-1),
        "batch": features.repeat(2, 1, 1, 1),
    }
    for what, bad in wrong.items():
        with pytest.raises(AudioInputError, match="precomputed audio features") as err:
            sample_coefficients(model, wave, options, window_features=bad)
        assert str(tuple(bad.shape)) in str(err.value), what
        assert f"{cfg.n_motions} frames" in str(err.value), what
    with pytest.raises(AudioInputError, match="float tensor"):
        sample_coefficients(model, wave, options, window_features=features.to(torch.int64))
    # Features of a shorter clip (fewer windows) do not fit this audio either.
    plan = plan_windows(wave.shape[-1], cfg.samples_per_frame, cfg.n_motions, options.leading_silence)
    if plan.n_windows > 1:
        short = wave[: cfg.samples_per_frame * cfg.n_motions // 2]
        with pytest.raises(AudioInputError, match=f"{plan.n_windows} window"):
            sample_coefficients(model, wave, options, window_features=encode_windows(model, short))


def test_motion_encode_windows_progress_and_cancel(fx, model):
    stop = StopAfter(2)
    n_windows = fx.meta["n_windows"]
    if n_windows > 2:
        with pytest.raises(Cancelled):
            encode_windows(model, wave_from(fx), options_from(fx.meta).leading_silence, progress=stop)
        assert stop.calls == [(1, n_windows), (2, n_windows)]
    else:
        encode_windows(model, wave_from(fx), options_from(fx.meta).leading_silence, progress=stop)
        assert stop.calls == [(i + 1, n_windows) for i in range(n_windows)]


def test_motion_audio_model_fingerprint(model):
    """Same weights -> same id (another object too); another feature map or dtype -> another id."""
    fingerprint = audio_model_fingerprint(model)
    twin = copy.deepcopy(model)
    assert audio_model_fingerprint(twin) == fingerprint
    with torch.no_grad():
        twin.audio_feature_map.bias.add_(1e-3)
    assert audio_model_fingerprint(twin) != fingerprint
    assert audio_model_fingerprint(copy.deepcopy(model).to(torch.bfloat16)) != fingerprint
