"""Lips in sync by default: output frame k is conditioned on the speech from k x 40 ms on (no leading offset), and a
video has round(seconds x 25) frames; the reference's timing (two frames of leading silence kept) stays one switch
away."""

from __future__ import annotations

import math

import pytest
import torch
from fixture_support import load_fixture
from motion_support import model_for, options_from, wave_from

from joyvasa_core.motion.sampler import SamplingOptions, plan_windows, sample_coefficients, window_audio

SMALL = "joyvasa_small.safetensors"


@pytest.fixture(scope="module")
def fx():
    return load_fixture(SMALL)


@pytest.fixture(scope="module")
def model(fx):
    return model_for(SMALL, fx.meta["pe_modes"][0])


@pytest.mark.parametrize("n_samples", [640 * 7 + 319, 640 * 7 + 320, 640 * 100, 640 * 263 + 5])
def test_output_frame_k_hears_the_speech_from_k_times_40ms(n_samples):
    """The samples that window position of output frame k sees are the speech's [k*640, (k+1)*640): checked on a
    ramp (every sample distinct) across window boundaries, for lengths that round down, up and exactly."""
    spf, window = 640, 100
    wave = torch.arange(1, n_samples + 1, dtype=torch.float64)[None]
    plan = plan_windows(n_samples, spf, window)
    kept = plan.kept_frames()
    assert kept.stop - kept.start == math.floor(n_samples / spf + 0.5)
    for k in sorted({0, 1, window - plan.lag_frames - 1, window - plan.lag_frames, kept.stop - kept.start - 1}):
        padded = kept.start + k
        index, pos = divmod(padded, window)
        heard = window_audio(wave, plan, index)[0, pos * spf : (pos + 1) * spf]
        expected = torch.zeros(spf, dtype=torch.float64)
        speech = wave[0, k * spf : (k + 1) * spf]
        expected[: speech.numel()] = speech
        assert torch.equal(heard, expected), f"output frame {k} of {n_samples} samples"


def test_reference_timing_keeps_the_leading_silence():
    plan = plan_windows(640 * 50, 640, 100)
    assert plan.kept_frames(False) == slice(0, 53)  # floor((L + 1920) / 640): two frames of silence first
    assert plan.kept_frames(True) == slice(2, 52)
    # frame 0 of the reference's timing hears only the padding
    assert torch.count_nonzero(window_audio(torch.ones(1, 640 * 50), plan, 0)[0, :1280]) == 0


def test_sampler_returns_the_synced_frames_by_default(fx, model):
    """With the default options the sampler's output is its sampled frames from the lag on (the ones the alignment
    above describes), round(seconds x 25) of them, for a clip spanning several windows."""
    assert SamplingOptions().lag_compensation is True
    cfg = model.config
    wave = wave_from(fx)
    options = options_from(fx.meta, lag_compensation=True, num_steps=2, scheduler="ddim")
    windows = []
    synced = sample_coefficients(model, wave, options, on_window=lambda i, x, a: windows.append(x))
    reference = sample_coefficients(model, wave, options_from(fx.meta, num_steps=2, scheduler="ddim"))
    plan = plan_windows(wave.shape[-1], cfg.samples_per_frame, cfg.n_motions)
    everything = torch.cat(windows, dim=1)[:, : plan.n_frames].float()
    assert synced.shape[1] == math.floor(wave.shape[-1] / cfg.samples_per_frame + 0.5)
    assert torch.equal(synced, everything[:, plan.lag_frames : plan.lag_frames + synced.shape[1]])
    assert torch.equal(reference, everything)
