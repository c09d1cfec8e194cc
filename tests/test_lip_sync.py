"""Lips in sync by default: output frame k is conditioned on the speech from k x 40 ms on (no leading offset), and a
video has round(seconds x 25) frames; the reference's timing (two frames of leading silence kept) stays one switch
away. (The sampler's side: test_motion_sampling.test_sampler_returns_the_synced_frames_by_default.)"""

from __future__ import annotations

import math

import pytest
import torch

from joyvasa_core.motion.sampler import plan_windows, window_audio


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
