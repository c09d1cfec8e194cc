"""Golden parity of the JoyVASA motion generator against the reference's fixtures (both files, both PE modes)."""

from __future__ import annotations

import json

import pytest
import torch
from fixture_support import assert_close, fill_rule, fixture_path, load_fixture
from motion_support import MOTION_FIXTURES, build_model, model_for, options_from, template_from, wave_from

from joyvasa_core.motion.generator import MotionGenerator
from joyvasa_core.motion.sampler import NoiseStream, generate_motion, plan_windows, sample_coefficients, window_audio
from joyvasa_core.motion.schedulers import SCHEDULE_KEYS, DDPMAncestralScheduler, cosine_schedule
from joyvasa_core.motion.sequence import MotionSequence
from joyvasa_core.motion.smoothing import PoseSmoothing

# Fixture README, "Tolerances / Motion generator".
TOL_SCHEDULE = 1e-6
TOL_HUBERT = 5e-5
TOL_FEAT = 5e-5
TOL_FORWARD = 2e-5
TOL_MOTION = 1e-4
TOL_EXP = 5e-6
TOL_SCALE_T = 2e-5
TOL_ANGLES = 2e-3
TOL_POSE_RAW = (2e-5, 1e-5)
TOL_R = 5e-5

CASES = [(name, pe) for name in MOTION_FIXTURES for pe in ("legacy", "fixed")]


def _pe_cases():
    """(file, pe) pairs, checked against each fixture's own ``pe_modes`` list."""
    return pytest.mark.parametrize("name,pe", CASES, ids=[f"{n.split('.')[0]}-{p}" for n, p in CASES])


def _assert_pe_listed(fx, pe: str) -> None:
    assert pe in fx.meta["pe_modes"], f"{pe} not in fixture pe_modes {fx.meta['pe_modes']}"


@pytest.mark.parity
def test_motion_state_dict_matches_manifest():
    """The default (shipped) config gives exactly the official checkpoint's keys, order, shapes and buffers."""
    manifest_path = fixture_path("manifests") / "joyvasa_motion_generator.json"
    manifest = json.loads(manifest_path.read_text())
    model = MotionGenerator()
    sd = model.state_dict()
    assert list(sd) == list(manifest["keys"])
    assert {k: list(v.shape) for k, v in sd.items()} == {k: v["shape"] for k, v in manifest["keys"].items()}
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert {k: list(sd[k].shape) for k in manifest["buffers"]} == manifest["buffers"]
    assert sd["denoising_net.alignment_mask"].dtype == torch.bool
    cfg = manifest["config"]
    assert (model.config.motion_feat_dim, model.config.n_motions) == (cfg["motion_feat_dim"], cfg["n_motions"])
    assert (model.config.n_prev_motions, model.config.feature_dim) == (cfg["n_prev_motions"], cfg["feature_dim"])
    assert (model.config.n_heads, model.config.n_layers) == (cfg["denoiser"]["n_heads"], cfg["denoiser"]["n_layers"])


@pytest.mark.parity
@pytest.mark.parametrize("name", MOTION_FIXTURES)
def test_motion_fill_checksum_parity(name):
    """Every filled tensor equals the fixture's fill (per-key sum and L2), so the weights are the reference's."""
    fx = load_fixture(name)
    model = build_model(name)
    got = fill_rule().checksum(model.state_dict())
    skip = set(fx.meta["fill"]["skip"])
    want = {k: v for k, v in fx.meta["fill_checksum"].items() if k not in skip}
    assert set(want) <= set(got)
    for key, (total, norm) in want.items():
        assert abs(got[key][0] - total) <= 1e-7 * max(1.0, norm), key
        assert abs(got[key][1] - norm) <= 1e-7 * max(1.0, norm), key


@pytest.mark.parity
@pytest.mark.parametrize("name", MOTION_FIXTURES)
def test_motion_schedule_parity(name):
    fx = load_fixture(name)
    meta = fx.meta
    model = build_model(name)
    computed = cosine_schedule(meta["model"]["n_diff_steps"], meta["model"]["cosine_s"])
    for key in SCHEDULE_KEYS:
        assert_close(getattr(model.diffusion_sched, key), fx[f"sched.{key}"], TOL_SCHEDULE, name=f"buffer {key}")
        assert_close(computed[key], fx[f"sched.{key}"], TOL_SCHEDULE, name=f"computed {key}")
    flex = meta["sampling"]["flexibility"]
    scheduler = DDPMAncestralScheduler(model.diffusion_sched, flexibility=flex)
    expected = fx["sched.sigmas_flex"] * flex + fx["sched.sigmas_inflex"] * (1 - flex)
    assert_close(scheduler.sigmas, expected, TOL_SCHEDULE, name="sigmas")


@pytest.mark.parity
@pytest.mark.parametrize("name", MOTION_FIXTURES)
def test_motion_noise_regeneration_parity(name):
    """The seed reproduces x_T and every per-step z bit-exactly, in the documented draw order."""
    fx = load_fixture(name)
    meta = fx.meta
    t, n = meta["model"]["n_motions"], meta["model"]["n_diff_steps"]
    shape = tuple(fx["seq.in.motion_at_T"].shape)
    assert shape == (1, t, meta["model"]["motion_feat_dim"])
    stream = NoiseStream(seed=meta["sampling"]["noise_seed"])
    assert torch.equal(stream.initial(shape), fx["seq.in.motion_at_T"])
    z = fx["seq.in.z"]
    assert z.shape[0] == meta["n_windows"] * (n - 1)
    for i in range(z.shape[0]):
        assert torch.equal(stream.step(shape), z[i].reshape(shape)), f"z[{i}]"


@pytest.mark.parity
@_pe_cases()
def test_motion_denoiser_forward_parity(name, pe):
    fx = load_fixture(name)
    _assert_pe_listed(fx, pe)
    net = model_for(name, pe).denoising_net
    args = [fx[f"fwd.in.{k}"] for k in ("motion_feat", "audio_feat", "prev_motion_feat", "prev_audio_feat", "step")]
    with torch.no_grad():
        fast = net(*args)
        literal = net(*args, precompute_cross=False)
    assert_close(fast, fx[f"{pe}.fwd.out"], TOL_FORWARD, name=f"{pe} forward (precomputed cross-attention)")
    assert_close(literal, fx[f"{pe}.fwd.out"], TOL_FORWARD, name=f"{pe} forward (masked cross-attention)")


@pytest.mark.parity
@pytest.mark.parametrize("name", MOTION_FIXTURES)
def test_motion_window_slicing_parity(name):
    """Padding, window cuts and the frame count equal the reference exactly."""
    fx = load_fixture(name)
    meta = fx.meta
    model = build_model(name)
    wave = wave_from(fx)
    assert wave.shape[-1] == meta["audio"]["samples_used"]
    plan = plan_windows(wave.shape[-1], model.config.samples_per_frame, model.config.n_motions,
                        options_from(meta).leading_silence)
    assert (plan.leading_pad, plan.trailing_pad) == (meta["audio"]["leading_pad"], meta["audio"]["trailing_pad"])
    assert plan.n_windows == meta["n_windows"]
    assert plan.n_frames == meta["n_frames"] == int(fx["seq.out.n_frames"])
    assert plan.n_frames == (wave.shape[-1] + plan.leading_pad + plan.trailing_pad) // plan.samples_per_frame
    for i in range(plan.n_windows):
        assert torch.equal(window_audio(wave.unsqueeze(0), plan, i), fx[f"seq.win{i}.audio_in"]), f"window {i}"
    assert f"seq.win{plan.n_windows}.audio_in" not in fx


@pytest.mark.parity
@pytest.mark.parametrize("name", MOTION_FIXTURES)
def test_motion_audio_features_parity(name):
    """HuBERT hidden states and 25 fps features of every stored window."""
    fx = load_fixture(name)
    model = build_model(name)
    for i in range(fx.meta["n_windows"]):
        hidden, feat = model.encode_audio_window(fx[f"seq.win{i}.audio_in"])
        assert_close(hidden, fx[f"seq.win{i}.hubert_hidden"], TOL_HUBERT, name=f"window {i} hubert_hidden")
        assert_close(feat, fx[f"seq.win{i}.audio_feat"], TOL_FEAT, name=f"window {i} audio_feat")


@pytest.mark.parity
@_pe_cases()
def test_motion_sequence_parity(name, pe):
    """End to end from the waveform with the seed: every window, the coefficients and all de-normalised outputs."""
    fx = load_fixture(name)
    _assert_pe_listed(fx, pe)
    meta = fx.meta
    model = model_for(name, pe)
    windows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(index, motion, feat):
        windows[index] = (motion.clone(), feat.clone())

    options = options_from(meta)
    coef = sample_coefficients(model, wave_from(fx), options, on_window=keep)
    assert sorted(windows) == list(range(meta["n_windows"]))
    for i, (motion, feat) in windows.items():
        assert_close(feat, fx[f"seq.win{i}.audio_feat"], TOL_FEAT, name=f"window {i} audio_feat")
        assert_close(motion, fx[f"{pe}.seq.win{i}.motion"], TOL_MOTION, name=f"{pe} window {i} motion")
    assert coef.shape[1] == int(fx["seq.out.n_frames"])
    assert_close(coef[0], fx[f"{pe}.seq.out.coef"], TOL_MOTION, name=f"{pe} coef")

    template = template_from(fx)
    seq = generate_motion(model, wave_from(fx), template, options)
    assert len(seq) == int(fx["seq.out.n_frames"])
    assert_close(seq.coef, fx[f"{pe}.seq.out.coef"], TOL_MOTION, name=f"{pe} sequence coef")
    # pose_raw end to end: the README's pose_raw tolerance (2e-5 + 1e-5 rel) is finer than what its own coef
    # tolerance (1e-4, times the template's 70-degree yaw range) implies, so it holds only where the run is
    # bit-exact with the reference (it is on the fixture machine's torch 2.13). Here pose_raw must be exactly the
    # de-normalised sampled coef and agree to the coef tolerance mapped through the template; the README tolerance
    # itself is applied to de-normalisation alone in test_motion_denormalise_parity.
    assert torch.equal(seq.pose_raw, template.denormalize_pose(seq.coef[:, 63:70]))
    span = (template.max_pose - template.min_pose).abs()
    pose_err = (seq.pose_raw - fx[f"{pe}.seq.out.pose_raw"]).abs()
    assert bool((pose_err <= TOL_MOTION * span + TOL_POSE_RAW[0]).all()), f"{pe} pose_raw: {float(pose_err.max())}"
    assert_close(seq.exp, fx[f"{pe}.seq.out.exp"], TOL_EXP, name=f"{pe} exp")
    assert_close(seq.scale, fx[f"{pe}.seq.out.scale"], TOL_SCALE_T, name=f"{pe} scale")
    assert_close(seq.t, fx[f"{pe}.seq.out.t"], TOL_SCALE_T, name=f"{pe} t")
    for angle in ("pitch", "yaw", "roll"):
        assert_close(getattr(seq, angle), fx[f"{pe}.seq.out.{angle}"], TOL_ANGLES, name=f"{pe} {angle}")
    assert_close(seq.R, fx[f"{pe}.seq.out.R"], TOL_R, name=f"{pe} R")
    assert seq.fps == meta["model"]["fps"]


@pytest.mark.parity
@pytest.mark.parametrize("name", MOTION_FIXTURES)
def test_motion_denormalise_parity(name):
    """De-normalisation and smoothing alone, from the stored coefficients (isolates them from the sampler)."""
    fx = load_fixture(name)
    meta = fx.meta
    pe = meta["pe_modes"][0]
    seq = MotionSequence.from_coef(fx[f"{pe}.seq.out.coef"], template_from(fx),
                                   PoseSmoothing("ema", options_from(meta).smoothing_alpha), fps=meta["model"]["fps"])
    assert_close(seq.pose_raw, fx[f"{pe}.seq.out.pose_raw"], *TOL_POSE_RAW, name="pose_raw")
    assert_close(seq.exp, fx[f"{pe}.seq.out.exp"], TOL_EXP, name="exp")
    assert_close(seq.scale, fx[f"{pe}.seq.out.scale"], TOL_SCALE_T, name="scale")
    assert_close(seq.t, fx[f"{pe}.seq.out.t"], TOL_SCALE_T, name="t")
    for angle in ("pitch", "yaw", "roll"):
        assert_close(getattr(seq, angle), fx[f"{pe}.seq.out.{angle}"], TOL_ANGLES, name=angle)
    assert_close(seq.R, fx[f"{pe}.seq.out.R"], TOL_R, name="R")

