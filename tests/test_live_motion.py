"""The live motion stream (``motion.streaming``): with the look-ahead ``all`` it is the offline sampler (same seed,
the parity tolerances), with a short look-ahead frames become final while the speech is still arriving, and the
result never depends on how the speech was cut into pieces. Also the causal smoother and the streaming resampler."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from fixture_support import assert_close, fixture_path, load_fixture
from motion_support import build_model, options_from, template_from, wave_from

from joyvasa_core.audio.io import load_audio
from joyvasa_core.audio.stream import StreamResampler
from joyvasa_core.motion.sampler import generate_motion, plan_windows
from joyvasa_core.motion.smoothing import CausalPoseSmoother, PoseSmoothing
from joyvasa_core.motion.streaming import MotionStream, StreamOptions

SMALL = "joyvasa_small.safetensors"
TOL_MOTION = 1e-4  # fixture README: normalised motion
TOL_EXP = 5e-6
TOL_SCALE_T = 2e-5
TOL_ANGLES = 2e-3
TOL_R = 5e-5
PIECES = (997, 3000, 41, 6400)  # irregular push sizes, cycled


@pytest.fixture(scope="module")
def fx():
    return load_fixture(SMALL)


@pytest.fixture(scope="module")
def model(fx):
    return build_model(SMALL)


def stream_all(stream: MotionStream, wave: torch.Tensor, pieces=PIECES) -> tuple[list[tuple[int, object]], list[int]]:
    """Feed ``wave`` in cycling piece sizes; returns the (first index, motion) chunks and, per chunk, how many
    samples had been fed when it came out."""
    chunks, fed_at, lo, k = [], [], 0, 0
    while lo < wave.numel():
        size = pieces[k % len(pieces)]
        stream.feed(wave[lo : lo + size])
        lo, k = lo + size, k + 1
        for chunk in stream.frames():
            chunks.append(chunk)
            fed_at.append(lo)
    stream.finish()
    for chunk in stream.frames():
        chunks.append(chunk)
        fed_at.append(lo)
    return chunks, fed_at


def joined(chunks, name: str) -> torch.Tensor:
    return torch.cat([getattr(m, name) for _, m in chunks])


@pytest.mark.parametrize("lag_compensation", [True, False])
def test_live_lookahead_all_equals_offline(fx, model, lag_compensation):
    """Look-ahead all: the offline windows, the same noise in the same order: the offline motion within the parity
    tolerances, with the offline frame count."""
    options = options_from(fx.meta, lag_compensation=lag_compensation)
    wave = wave_from(fx).reshape(-1)
    offline = generate_motion(model, wave, template_from(fx), options)
    chunks, _ = stream_all(MotionStream(model, template_from(fx), options, StreamOptions(lookahead=None)), wave)
    plan = plan_windows(wave.numel(), model.config.samples_per_frame, model.config.n_motions,
                        options.leading_silence)
    kept = plan.kept_frames(lag_compensation)
    assert offline.n_frames == kept.stop - kept.start
    assert [first for first, _ in chunks] == list(np.cumsum([0] + [m.n_frames for _, m in chunks[:-1]]))
    assert_close(joined(chunks, "coef"), offline.coef, TOL_MOTION, name="coef")
    assert_close(joined(chunks, "exp"), offline.exp, TOL_EXP, name="exp")
    for name in ("scale", "t"):
        assert_close(joined(chunks, name), getattr(offline, name), TOL_SCALE_T, name=name)
    for name in ("pitch", "yaw", "roll"):
        assert_close(joined(chunks, name), getattr(offline, name), TOL_ANGLES, name=name)
    assert_close(joined(chunks, "R"), offline.R, TOL_R, name="R")


def test_live_short_lookahead_streams_in_order(fx, model):
    """Chunk 3, look-ahead 2: frames come out while the speech is still fed, contiguous from 0, each exactly
    once, round(seconds x 25) in all, and the same motion however the speech is cut into pieces."""
    options = options_from(fx.meta, lag_compensation=True)
    wave = wave_from(fx).reshape(-1)
    live = StreamOptions(chunk_frames=3, lookahead=2)
    chunks, fed_at = stream_all(MotionStream(model, template_from(fx), options, live), wave)
    indices = [first + i for first, m in chunks for i in range(m.n_frames)]
    spf = model.config.samples_per_frame
    assert indices == list(range((wave.numel() + spf // 2) // spf))  # round(seconds x 25), halves up
    assert fed_at[0] < wave.numel(), "the first frame waited for the whole speech"
    whole, _ = stream_all(MotionStream(model, template_from(fx), options, live), wave, pieces=(wave.numel(),))
    assert torch.equal(joined(chunks, "coef"), joined(whole, "coef"))
    offline = generate_motion(model, wave, template_from(fx), options)
    assert joined(chunks, "coef").shape == offline.coef.shape
    assert not torch.allclose(joined(chunks, "coef"), offline.coef, atol=TOL_MOTION), "a short look-ahead must differ"


def test_live_speech_shorter_than_a_frame_without_padding(fx, model):
    options = options_from(fx.meta, leading_silence=False)
    stream = MotionStream(model, template_from(fx), options, StreamOptions(chunk_frames=2, lookahead=1))
    stream.feed(torch.zeros(100))
    with pytest.raises(Exception, match="shorter than one motion frame"):
        stream.finish()


@pytest.mark.parametrize("method,window", [("ema", None), ("median", 3), ("moving_average", 4), ("none", None)])
def test_causal_smoother_equals_whole_sequence(method, window):
    """Chunk by chunk, the smoother gives what smoothing the whole sequence at once gives."""
    pose = torch.randn(37, 7, generator=torch.Generator().manual_seed(5))
    smoothing = PoseSmoothing(method, 0.3, window)
    causal = CausalPoseSmoother(smoothing)
    parts = [causal(part) for part in pose.split([1, 5, 2, 13, 16])]
    assert_close(torch.cat(parts), smoothing(pose), 1e-6, name=method)


def test_stream_resampler_equals_one_shot():
    """44.1 kHz stereo pushed in 100 ms pieces: the 16 kHz mono the file reader makes, sample for sample."""
    data, rate = sf.read(str(fixture_path("speech_en_44k_stereo.wav")), dtype="int16")
    resampler = StreamResampler()
    step = rate // 10
    parts = [resampler(data[lo : lo + step], rate) for lo in range(0, len(data), step)]
    parts.append(resampler.flush())
    expected = load_audio(fixture_path("speech_en_44k_stereo.wav"))
    assert_close(torch.cat(parts), expected, 1e-6, name="resampled")
