"""Blinks: the eye-openness track follows the seeded schedule at the asked rate, nothing else in the motion changes,
the modes and the detector behave, and the eye-retargeting network turns the track into eye-keypoint offsets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from fixture_support import load_fixture
from model_folders import LP_SMALL, write_liveportrait
from test_motion_edit import sampled_motion

from joyvasa_core.face.reference import ReferenceOptions, prepare_reference
from joyvasa_core.keypoints import EYE_KEYPOINTS, KeypointOptions
from joyvasa_core.loading import load_liveportrait
from joyvasa_core.motion.blinks import (
    BlinkOptions,
    BlinkSchedule,
    LiveBlinks,
    apply_blinks,
    blink_delta,
    blink_times,
    closure_curve,
    has_blinks,
    job_blinks,
)
from joyvasa_core.motion.edit import fit_length
from joyvasa_core.motion.sequence import FRAME_FIELDS
from joyvasa_core.pipeline import compute_target_keypoints, extract_appearance

NON_EYE = [k for k in range(21) if k not in EYE_KEYPOINTS]


@pytest.fixture(scope="module")
def speech():
    return sampled_motion()


def _runs(closed: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], closed.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def test_schedule_rate_and_seed_are_honoured(speech):
    minutes = 4
    long = fit_length(speech, 25 * 60 * minutes, "loop")
    opts = BlinkOptions(rate=15, duration=0.3, seed=7)
    out = apply_blinks(long, opts)
    track = out.eye_open.reshape(-1).numpy()
    starts = blink_times(long.n_frames, 25, 15, 0.3, 7)
    assert np.allclose(track, 1 - closure_curve(long.n_frames, 25, starts, 0.3), atol=1e-7)
    runs = _runs(track < 0.5)
    assert len(runs) == len(starts)
    assert abs(len(runs) - 15 * minutes) <= 0.15 * 15 * minutes, f"{len(runs)} blinks in {minutes} min at 15/min"
    for (a, b), s in zip(runs, starts, strict=True):
        assert a / 25 >= s and b / 25 <= s + 0.3 + 1 / 25, "each closure lies inside its scheduled blink"
        assert track[a:b].min() < 0.05, "the eyes shut"
    assert np.all(np.diff(starts) > 0.3), "blinks never overlap"
    fast = apply_blinks(long, replace(opts, rate=40))
    assert len(_runs(fast.eye_open.reshape(-1).numpy() < 0.5)) > 2 * len(runs)
    again = apply_blinks(long, opts)
    other = apply_blinks(long, replace(opts, seed=8))
    assert torch.equal(again.eye_open, out.eye_open) and not torch.equal(other.eye_open, out.eye_open)
    for name in FRAME_FIELDS:
        assert torch.equal(getattr(out, name), getattr(long, name)), f"blinks changed {name}"


def test_modes_openness_and_detection(speech):
    assert apply_blinks(speech, BlinkOptions(mode="off")) is speech
    assert not has_blinks(speech), "the fixture motion holds no eye closure"
    wide = apply_blinks(speech, BlinkOptions(mode="off", openness=1.2))
    assert torch.equal(wide.eye_open, torch.full((speech.n_frames, 1), 1.2))
    blinking = apply_blinks(speech, BlinkOptions(rate=60, seed=1))
    assert has_blinks(blinking)
    assert apply_blinks(blinking, BlinkOptions(mode="if_none", rate=60, seed=2)) is blinking
    assert apply_blinks(speech, BlinkOptions(mode="if_none", rate=60, seed=1)).eye_open.equal(blinking.eye_open)
    # Without a track, a short collapse of the eye keypoints' vertical spread is a blink; a long one is not.
    exp = speech.exp.clone()
    rows = list(EYE_KEYPOINTS)
    mean_y = exp[:, rows, 1].mean(dim=1, keepdim=True)
    shut = exp.clone()
    shut[50:55, rows, 1] = mean_y[50:55] + 0.1 * (exp[50:55, rows, 1] - mean_y[50:55])
    assert has_blinks(replace(speech, exp=shut))
    held = exp.clone()
    held[20:80, rows, 1] = mean_y[20:80] + 0.1 * (exp[20:80, rows, 1] - mean_y[20:80])
    assert not has_blinks(replace(speech, exp=held)), "eyes closed for 2.4 s are not a blink"
    with pytest.raises(ValueError, match="mode must be one of"):
        BlinkOptions(mode="sometimes")


@pytest.fixture(scope="module")
def lp_models(tmp_path_factory):
    return load_liveportrait(write_liveportrait(tmp_path_factory.mktemp("models")), "human", device="cpu")


def test_blinks_move_only_the_eyes_through_the_retargeting_network(lp_models, speech):
    fx = load_fixture(LP_SMALL)
    ref = prepare_reference(fx["src.img256"].numpy(), None, ReferenceOptions(mode="human", crop="whole"))
    eye_ratio = fx["S.in.eye_ratio"][:1, :2]
    appearance = replace(extract_appearance(lp_models, ref), eye_ratio=eye_ratio)
    motion = apply_blinks(speech, BlinkOptions(rate=40, seed=3))
    closed = motion.eye_open.reshape(-1) < 1
    assert 0 < int(closed.sum()) < motion.n_frames
    plain_opts = KeypointOptions(stitching=False, normalize_lip=False)
    plain = compute_target_keypoints(lp_models, appearance, speech, plain_opts).x_d
    blink = compute_target_keypoints(lp_models, appearance, motion, plain_opts).x_d
    assert torch.equal(blink[~closed], plain[~closed]), "open frames are untouched"
    assert torch.equal(blink[:, NON_EYE], plain[:, NON_EYE]), "only the eye keypoints move"
    delta = blink_delta(lp_models.stitching, appearance.x_s, eye_ratio, motion.eye_open)
    assert torch.allclose(blink - plain, delta, atol=1e-6)
    assert float(delta[closed][:, list(EYE_KEYPOINTS)].abs().max()) > 1e-3
    # The delta is the eye MLP's own: R_eye(x_s, [c_l, c_r, c]) - R_eye(x_s, [c_l, c_r, c_s]).
    i = int(torch.nonzero(closed)[0])
    c_s = float(eye_ratio.mean())
    c = float(motion.eye_open[i]) * c_s
    x = appearance.x_s.reshape(1, -1)
    net = lp_models.stitching
    want = (net.eye(x, torch.tensor([[*eye_ratio[0].tolist(), c]])) - net.eye(x, torch.tensor(
        [[*eye_ratio[0].tolist(), c_s]]))).reshape(21, 3)
    assert torch.allclose(delta[i, list(EYE_KEYPOINTS)], want[list(EYE_KEYPOINTS)], atol=1e-6)
    # With stitching (the web preset) open frames still match exactly.
    web = KeypointOptions.web()
    assert torch.equal(compute_target_keypoints(lp_models, appearance, motion, web).x_d[~closed],
                       compute_target_keypoints(lp_models, appearance, speech, web).x_d[~closed])


def test_live_schedule_is_the_offline_one_decided_block_by_block(speech):
    """The live track, asked for in irregular blocks of frames (as a session's frames become final), is the same
    whatever the blocks, equals the offline track frame for frame, except a last blink the offline clip's end would
    cut short (the offline job leaves it out; live cannot know the end is near, so it shows it until it stops)."""
    opts = BlinkOptions(rate=120, duration=0.25, seed=7)
    n = 55  # 2.2 s: the fifth blink (2.04 s) would end past the clip
    blocks = (3, 1, 7, 10, 2, 13, 4, 15)
    live, first = [], 0
    maker = LiveBlinks.of(opts, 25)
    for size in blocks:
        live.append(maker.track(first, size))
        first += size
    live = torch.cat(live).reshape(-1)
    assert torch.equal(live, LiveBlinks(opts, 25).track(0, n).reshape(-1)), "the blocks change nothing"
    starts = BlinkSchedule(25, 120, 0.25, 7).until(n / 25)
    assert len(starts) == 5 and starts[-1] + 0.25 > n / 25
    assert np.array_equal(blink_times(n, 25, 120, 0.25, 7), starts[:-1]), "offline: the schedule less the cut blink"
    offline = apply_blinks(fit_length(speech, n, "loop"), opts).eye_open.reshape(-1)
    cut = int(np.floor(starts[-1] * 25)) + 1  # the first frame the last blink closes the eyes
    assert torch.equal(live[:cut], offline[:cut]) and bool((offline[cut:] == 1).all())
    assert float(live[cut:].min()) < 0.5, "live shows the blink the clip's end cuts short"
    assert len(_runs(live.numpy() < 0.5)) == 5 and len(_runs(offline.numpy() < 0.5)) == 4
    # Openness without blinks; off with the portrait's own eyes changes nothing; if_none needs the whole motion.
    wide = LiveBlinks.of(BlinkOptions(mode="off", openness=1.2), 25).track(0, 4)
    assert torch.equal(wide, torch.full((4, 1), 1.2))
    assert LiveBlinks.of(BlinkOptions(mode="off"), 25) is None
    with pytest.raises(ValueError, match="live takes off or on, not 'if_none'"):
        LiveBlinks(BlinkOptions(mode="if_none"), 25)
    assert job_blinks("on", 2**32 + 7, 120) == opts, "a job's seed seeds its blinks (low 32 bits)"
