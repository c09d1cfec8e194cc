"""Motion editing on a real sampled motion (the shipped fixture's de-normalised output): every part comes from the
stated source exactly, multipliers scale deviations from frame 0, lengths follow the stated rule, and the pipeline
composes video/template lips relatively and honours a pose offset."""

from __future__ import annotations

import pytest
import torch
from fixture_support import load_fixture
from motion_support import MOTION_FIXTURES, ema_alpha, template_from

from joyvasa_core.checkpoints.motion_sequence import read_motion_sequence, write_motion_sequence
from joyvasa_core.keypoints import LIP_KEYPOINTS, rotation_matrix
from joyvasa_core.motion.edit import (
    crossfade,
    fit_indices,
    fit_length,
    lips_absolute,
    mix,
    motion_from_pose,
    offset_pose,
    reference_frame,
    retime,
    scale_parts,
    trim,
)
from joyvasa_core.motion.sequence import MotionSequence
from joyvasa_core.motion.smoothing import PoseSmoothing

OTHER_ROWS = [k for k in range(21) if k not in LIP_KEYPOINTS]


def sampled_motion(pe: str | None = None) -> MotionSequence:
    """The shipped fixture's sampled motion, de-normalised and smoothed as the reference does."""
    fx = load_fixture(MOTION_FIXTURES[1])
    pe = pe or fx.meta["pe_modes"][0]
    smoothing = PoseSmoothing("ema", ema_alpha(fx.meta))
    return MotionSequence.from_coef(fx[f"{pe}.seq.out.coef"], template_from(fx), smoothing)


def other_motion(n: int, fps: int = 25, seed: int = 3) -> MotionSequence:
    """A second, clearly different motion (random pose and expression), as a video would give."""
    g = torch.Generator().manual_seed(seed)
    angles = torch.randn(n, 3, generator=g) * 10
    exp, scale = torch.randn(n, 21, 3, generator=g) * 0.02, 1 + 0.1 * torch.rand(n, 1, generator=g)
    return motion_from_pose(exp=exp, scale=scale,
                            t=torch.randn(n, 3, generator=g) * 0.05, pitch=angles[:, :1], yaw=angles[:, 1:2],
                            roll=angles[:, 2:], fps=fps, settings={"lips_origin": "video"})


@pytest.fixture(scope="module")
def speech() -> MotionSequence:
    return sampled_motion()


def test_mix_takes_each_part_from_its_source(speech):
    head = other_motion(speech.n_frames)
    lips = other_motion(speech.n_frames, seed=9)
    out = mix(speech, head=head, lips=lips)
    assert out.n_frames == speech.n_frames and out.fps == speech.fps
    for name in ("scale", "t", "pitch", "yaw", "roll", "R"):
        assert torch.equal(getattr(out, name), getattr(head, name)), name
    assert torch.equal(out.exp[:, LIP_KEYPOINTS], lips.exp[:, LIP_KEYPOINTS])
    assert torch.equal(out.exp[:, OTHER_ROWS], speech.exp[:, OTHER_ROWS])
    assert out.coef.shape == (speech.n_frames, 0), "edited values: the generator's coefficients no longer apply"
    assert not lips_absolute(out) and lips_absolute(speech)
    # Head only: expression (lips included) stays the speech's, the speech's lips stay absolute.
    head_only = mix(speech, head=head)
    assert torch.equal(head_only.exp, speech.exp) and torch.equal(head_only.R, head.R) and lips_absolute(head_only)
    assert mix(speech) is speech


def test_mismatched_lengths_and_rates_follow_the_rule(speech):
    n = speech.n_frames
    short = other_motion(7)
    looped = mix(speech, head=short, fit="loop")
    assert looped.n_frames == n
    assert torch.equal(looped.yaw, short.yaw[torch.arange(n) % 7])
    held = mix(speech, head=short, fit="hold")
    assert torch.equal(held.yaw[7:], short.yaw[-1:].expand(n - 7, 1)) and torch.equal(held.yaw[:7], short.yaw)
    long = other_motion(3 * n)
    assert torch.equal(mix(speech, head=long).yaw, long.yaw[:n]), "a longer head motion is cut"
    # A 50 fps head is retimed by nearest frame in time (every second frame) before fitting.
    fast = other_motion(2 * n, fps=50)
    assert torch.equal(mix(speech, head=fast).yaw, fast.yaw[0::2])
    assert fit_indices(4, 9, "pingpong").tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert fit_indices(1, 3, "pingpong").tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="mode must be one of"):
        fit_indices(4, 9, "bounce")


def test_trim_loop_pingpong_keep_every_field(speech):
    part = trim(speech, 10, 30)
    assert part.n_frames == 20 and torch.equal(part.coef, speech.coef[10:30]) and torch.equal(part.R, speech.R[10:30])
    assert trim(speech, 100, 10_000).n_frames == speech.n_frames - 100
    with pytest.raises(ValueError, match=f"hold nothing of a {speech.n_frames}-frame motion"):
        trim(speech, speech.n_frames, None)
    ping = fit_length(trim(speech, 0, 5), 12, "pingpong")
    assert torch.equal(ping.exp, speech.exp[[0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3]])
    assert ping.settings["edits"][-1] == "fit(12,pingpong)"
    slow = retime(speech, 10)
    assert slow.fps == 10 and slow.n_frames == round(speech.n_frames * 10 / 25)
    assert torch.equal(slow.exp[3], speech.exp[round(3 * 2.5 + 1e-9)])


def test_multipliers_scale_deviations_from_frame_0(speech):
    head = other_motion(speech.n_frames)
    motion = mix(speech, head=head)
    out = scale_parts(motion, rotation=0.5, translation=2.0, scale=0.0, expression=0.5, lips=3.0)
    assert torch.allclose(out.yaw, motion.yaw[:1] + 0.5 * (motion.yaw - motion.yaw[:1]), atol=1e-5)
    assert torch.allclose(out.R, rotation_matrix(out.pitch, out.yaw, out.roll), atol=1e-6)
    assert torch.allclose(out.t, motion.t[:1] + 2 * (motion.t - motion.t[:1]), atol=1e-6)
    assert torch.equal(out.scale, motion.scale[:1].expand_as(motion.scale))
    e0 = motion.exp[:1]
    assert torch.allclose(out.exp[:, OTHER_ROWS], (e0 + 0.5 * (motion.exp - e0))[:, OTHER_ROWS], atol=1e-7)
    assert torch.allclose(out.exp[:, LIP_KEYPOINTS], (e0 + 1.5 * (motion.exp - e0))[:, LIP_KEYPOINTS], atol=1e-7)
    assert torch.equal(out.exp[0], motion.exp[0]) and torch.equal(out.R[0], rotation_matrix(
        motion.pitch[:1], motion.yaw[:1], motion.roll[:1])[0])
    assert scale_parts(motion) is motion
    lips_only = scale_parts(motion, lips=0.0)
    assert torch.equal(lips_only.R, motion.R) and torch.equal(lips_only.exp[:, OTHER_ROWS], motion.exp[:, OTHER_ROWS])
    assert torch.equal(lips_only.exp[:, LIP_KEYPOINTS], e0[:, LIP_KEYPOINTS].expand(motion.n_frames, -1, -1))


def test_pose_offset_turns_every_frame_including_the_reference(speech):
    out = offset_pose(speech, pitch=0.0, yaw=15.0, roll=-5.0)
    assert torch.allclose(out.yaw, speech.yaw + 15.0) and torch.allclose(out.roll, speech.roll - 5.0)
    assert torch.equal(out.exp, speech.exp)
    ref = reference_frame(out)
    # The composition's rotation (R_d R_d0^T) at frame 0 is the offset itself, not the identity.
    rel = out.R[:1] @ ref.R.transpose(1, 2)
    want = rotation_matrix(speech.pitch[:1], speech.yaw[:1], speech.roll[:1])
    assert torch.allclose(ref.R, want, atol=1e-6)
    assert not torch.allclose(rel, torch.eye(3)[None], atol=1e-2)
    assert torch.equal(reference_frame(speech).R, speech.R[:1])
    again = offset_pose(trim(out, 5), yaw=5.0)
    assert again.settings["pose_offset"] == [0.0, 20.0, -5.0]


def test_crossfade_blends_over_the_overlap(speech):
    b = other_motion(40)
    out = crossfade(speech, b, 10)
    n = speech.n_frames
    assert out.n_frames == n + 40 - 10
    assert torch.equal(out.exp[: n - 10], speech.exp[: n - 10]) and torch.equal(out.exp[n:], b.exp[10:])
    w = 5 / 11
    assert torch.allclose(out.exp[n - 10 + 4], speech.exp[n - 6] * (1 - w) + b.exp[4] * w, atol=1e-7)
    assert torch.equal(out.R[: n - 10], speech.R[: n - 10]) and torch.equal(out.R[n:], b.R[10:])
    assert crossfade(speech, b, 1000).n_frames == n, "the overlap is at most the shorter motion"
    assert crossfade(speech, b, 0).n_frames == n + 40


def test_edited_motion_survives_save_and_load(speech, tmp_path):
    out = offset_pose(mix(speech, head=other_motion(9), fit="pingpong"), yaw=3.0)
    write_motion_sequence(out, tmp_path / "m.safetensors")
    back = read_motion_sequence(tmp_path / "m.safetensors")
    for name in ("coef", "pose_raw", "exp", "scale", "t", "pitch", "yaw", "roll", "R"):
        assert torch.equal(getattr(back, name), getattr(out, name)), name
    assert back.settings == out.settings and back.eye_open is None
