"""Behaviour of the motion sampler around the reference path: seeds, DDIM, caching, files, smoothing, options."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
from fixture_support import assert_close, load_fixture
from motion_support import StopAfter, model_for, normalize_motion, options_from, template_from, wave_from

from joyvasa_core.checkpoints.joyvasa import read_motion_generator
from joyvasa_core.checkpoints.motion_sequence import read_motion_sequence, write_motion_sequence
from joyvasa_core.errors import AudioInputError, Cancelled, CheckpointError
from joyvasa_core.keypoints import rotation_matrix
from joyvasa_core.motion.config import MotionGeneratorConfig
from joyvasa_core.motion.generator import MotionGenerator
from joyvasa_core.motion.sampler import (
    NoiseStream,
    SamplingOptions,
    generate_motion,
    plan_windows,
    sample_coefficients,
    steps_control,
)
from joyvasa_core.motion.schedulers import DDIMScheduler
from joyvasa_core.motion.sequence import MotionSequence
from joyvasa_core.motion.smoothing import PoseSmoothing, smooth_pose
from joyvasa_core.motion.template import MotionTemplate

SMALL = "joyvasa_small.safetensors"
TOL_FORWARD = 2e-5  # fixture README, denoiser forward
TOL_MOTION = 1e-4  # fixture README, normalised motion


@pytest.fixture(scope="module")
def fx():
    return load_fixture(SMALL)


@pytest.fixture(scope="module")
def model(fx):
    return model_for(SMALL, fx.meta["pe_modes"][0])


@pytest.fixture(scope="module")
def reference_coef(fx, model):
    return sample_coefficients(model, wave_from(fx), options_from(fx.meta))


def _other_seed(meta) -> int:
    return meta["sampling"]["noise_seed"] + 1


def test_motion_same_seed_same_motion(fx, model, reference_coef):
    again = sample_coefficients(model, wave_from(fx), options_from(fx.meta))
    assert torch.equal(again, reference_coef)


def test_motion_different_seed_different_motion(fx, model, reference_coef):
    other = sample_coefficients(model, wave_from(fx), options_from(fx.meta, seed=_other_seed(fx.meta)))
    assert other.shape == reference_coef.shape
    assert float((other - reference_coef).abs().mean()) > 0.1


def test_motion_injected_noise_equals_seeded_noise(fx, model, reference_coef):
    noise = NoiseStream(x_T=fx["seq.in.motion_at_T"], z=fx["seq.in.z"])
    injected = sample_coefficients(model, wave_from(fx), options_from(fx.meta), noise=noise)
    assert torch.equal(injected, reference_coef)
    assert noise.n_steps_drawn == fx["seq.in.z"].shape[0]


def test_motion_batched_sampling_matches_single(fx, model):
    """Batch 2 (same clip, same noise per item) gives the single-clip motion for both items."""
    z = fx["seq.in.z"]
    noise = NoiseStream(x_T=fx["seq.in.motion_at_T"], z=z)
    single = sample_coefficients(model, wave_from(fx), options_from(fx.meta), noise=noise)
    batched_noise = NoiseStream(x_T=fx["seq.in.motion_at_T"].repeat(2, 1, 1), z=z.repeat(1, 2, 1, 1))
    wave = wave_from(fx).unsqueeze(0).repeat(2, 1)
    batched = sample_coefficients(model, wave, options_from(fx.meta), noise=batched_noise)
    assert batched.shape[0] == 2
    for item in batched:
        assert_close(item, single[0], TOL_MOTION, name="batched item")


def test_motion_ddim_runs_and_is_deterministic(fx, model, reference_coef):
    n_train = fx.meta["model"]["n_diff_steps"]
    steps = max(2, n_train // 2)
    options = options_from(fx.meta, scheduler="ddim", num_steps=steps)
    first = sample_coefficients(model, wave_from(fx), options)
    second = sample_coefficients(model, wave_from(fx), options_from(fx.meta, scheduler="ddim", num_steps=steps,
                                                                 seed=_other_seed(fx.meta)))
    assert first.shape == reference_coef.shape
    assert bool(torch.isfinite(first).all())
    # eta = 0: the only randomness is x_T, so the same seed repeats exactly and another seed changes the motion.
    assert torch.equal(first, sample_coefficients(model, wave_from(fx), options))
    assert not torch.equal(first, second)
    assert float((first - reference_coef).abs().max()) > 0


def test_motion_ddim_schedule_and_final_step():
    sched = DDIMScheduler(n_steps=50)
    sched.set_timesteps(10)
    ts = sched.timesteps.tolist()
    assert ts[0] == 50 and ts[-1] == 1 and len(ts) == 10
    assert all(a > b for a, b in zip(ts, ts[1:], strict=False))
    assert not any(sched.noise_needed(t) for t in ts)
    x0 = torch.randn(1, 4, 73)
    x = torch.randn(1, 4, 73)
    for t in ts:
        x = sched.step(x0, t, x)
    assert torch.equal(x, x0)
    with pytest.raises(ValueError):
        sched.set_timesteps(51)


def test_motion_precomputed_cross_attention_equals_plain_forward(fx, model):
    net = model.denoising_net
    args = [fx[f"fwd.in.{k}"] for k in ("motion_feat", "audio_feat", "prev_motion_feat", "prev_audio_feat", "step")]
    with torch.no_grad():
        memory = net.encode_memory(args[1], args[3])
        plain = net(*args, precompute_cross=False)
        for step in fx["fwd.in.step"].tolist():
            cached = net.denoise(args[0], args[2], step, memory)
            literal = net(args[0], args[1], args[2], args[3], step, precompute_cross=False)
            assert_close(cached, literal, TOL_FORWARD, name=f"step {step}")
        assert_close(net.denoise(args[0], args[2], args[4], memory), plain, TOL_FORWARD, name="per-item steps")
    assert memory.shape == (model.config.n_layers, *args[1].shape[:1], model.config.n_tokens, model.config.feature_dim)


def test_motion_sequence_save_load_round_trip(fx, model, tmp_path):
    seq = generate_motion(model, wave_from(fx), template_from(fx), options_from(fx.meta))
    path = tmp_path / "motion.safetensors"
    write_motion_sequence(seq, path)
    back = read_motion_sequence(path)
    for name in ("coef", "pose_raw", "exp", "scale", "t", "pitch", "yaw", "roll", "R"):
        assert torch.equal(getattr(back, name), getattr(seq, name)), name
    assert (back.fps, back.seed, back.settings) == (seq.fps, seq.seed, seq.settings)
    assert repr(back) == repr(seq) and "\n" not in repr(seq)
    assert f"{len(seq)} frames" in repr(seq)
    with pytest.raises(CheckpointError, match="format"):
        read_motion_sequence(fx.path)


def test_motion_smoothing_choices(fx):
    pe = fx.meta["pe_modes"][0]
    raw = fx[f"{pe}.seq.out.pose_raw"]
    alpha = options_from(fx.meta).smoothing_alpha
    ema = smooth_pose(raw, "ema", alpha=alpha)
    assert_close(ema[:, 0:1], fx[f"{pe}.seq.out.scale"], 2e-5, name="ema scale")
    assert torch.equal(ema[0], raw[0])
    assert torch.equal(smooth_pose(raw, "none"), raw)
    median = smooth_pose(raw, "median", window=3)
    assert torch.equal(median[0], raw[0])
    assert_close(median[1], (raw[0] + raw[1]) / 2, 1e-5, name="median of two")
    k = raw.shape[0] - 1
    assert_close(median[k], raw[k - 2 : k + 1].median(dim=0).values, 1e-5, name="median of three")
    mavg = smooth_pose(raw, "moving_average", window=10)
    assert_close(mavg[9], raw[:10].mean(dim=0), 1e-4, name="moving average")
    assert_close(mavg[k], raw[k - 9 : k + 1].mean(dim=0), 1e-4, name="moving average tail")
    seq = MotionSequence.from_coef(fx[f"{pe}.seq.out.coef"], template_from(fx), PoseSmoothing("ema", alpha))
    light = seq.resmooth(PoseSmoothing("median"))
    assert torch.equal(light.exp, seq.exp) and torch.equal(light.pose_raw, seq.pose_raw)
    assert not torch.equal(light.yaw, seq.yaw)
    assert_close(light.R, rotation_matrix(light.pitch, light.yaw, light.roll), 1e-6, name="R from smoothed angles")
    with pytest.raises(ValueError):
        smooth_pose(raw, "gaussian")


def test_motion_lag_compensation_keeps_the_speech_frames(fx, model, reference_coef):
    """Sync (the default): the reference's frames without the leading silence's two, cut to round(seconds x 25)."""
    cfg = model.config
    n_samples = wave_from(fx).shape[-1]
    plan = plan_windows(n_samples, cfg.samples_per_frame, cfg.n_motions)
    assert plan.lag_frames == fx.meta["audio"]["leading_pad"] // cfg.samples_per_frame == 2
    shifted = sample_coefficients(model, wave_from(fx), options_from(fx.meta, lag_compensation=True))
    speech_frames = math.floor(n_samples / cfg.samples_per_frame + 0.5)
    assert shifted.shape[1] == speech_frames
    assert torch.equal(shifted, reference_coef[:, plan.lag_frames : plan.lag_frames + speech_frames])


def test_motion_without_leading_silence(fx, model):
    wave = wave_from(fx)
    coef = sample_coefficients(model, wave, options_from(fx.meta, leading_silence=False))
    assert coef.shape[1] == wave.shape[-1] // model.config.samples_per_frame


def test_motion_template_missing_keys_is_clear(fx):
    stats = {k[len("tpl.") :]: fx[k] for k in fx.keys() if k.startswith("tpl.")}
    del stats["max_yaw"], stats["std_exp"]
    with pytest.raises(CheckpointError, match="max_yaw") as err:
        MotionTemplate.from_dict(stats)
    assert "std_exp" in str(err.value)


def test_motion_template_round_trip(fx):
    template = template_from(fx)
    pe = fx.meta["pe_modes"][0]
    coef = fx[f"{pe}.seq.out.coef"]
    parts = template.denormalize(coef)
    back = normalize_motion(template, parts["exp"], parts["scale"], parts["t"], parts["pitch"], parts["yaw"],
                            parts["roll"])
    assert_close(back[:, :70], coef[:, :70], 1e-4, name="normalise(denormalise)")


def test_motion_progress_and_cancel(fx, model):
    stop = StopAfter(3)
    with pytest.raises(Cancelled):
        sample_coefficients(model, wave_from(fx), options_from(fx.meta), progress=stop)
    total = fx.meta["n_windows"] * fx.meta["model"]["n_diff_steps"]
    assert stop.calls == [(1, total), (2, total), (3, total)]


def test_motion_bad_audio_is_clear(model):
    with pytest.raises(AudioInputError):
        sample_coefficients(model, torch.zeros(0))
    with pytest.raises(AudioInputError, match="NaN"):
        sample_coefficients(model, torch.full((2000,), float("nan")))
    with pytest.raises(AudioInputError, match="shorter"):
        sample_coefficients(model, torch.zeros(model.config.samples_per_frame - 1),
                            SamplingOptions(leading_silence=False))


def test_motion_config_from_checkpoint_args():
    args = {"motion_feat_dim": 73, "n_motions": 100, "n_prev_motions": 10, "feature_dim": 256, "n_diff_steps": 50,
            "n_layers": 6, "n_heads": 4, "audio_model": "hubert_zh"}
    cfg = MotionGeneratorConfig.from_checkpoint_args(args)
    assert cfg == MotionGeneratorConfig()
    assert cfg.n_layers == 8 and cfg.n_heads == 8 and cfg.pe_mode == "legacy"
    assert MotionGeneratorConfig.from_checkpoint_args({**args, "n_motions": 8}, pe_mode="fixed").n_motions == 8


def test_motion_checkpoint_file_loads_like_the_official_loader(fx, model, tmp_path):
    """A torch pickle with args/model/iter (legacy weight-norm names, no TE.pe) loads into an equal model."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    prefix = "audio_encoder.encoder.pos_conv_embed.conv."
    sd[prefix + "weight_g"] = sd.pop(prefix + "parametrizations.weight.original0")
    sd[prefix + "weight_v"] = sd.pop(prefix + "parametrizations.weight.original1")
    del sd["denoising_net.TE.pe"]
    cfg = model.config
    args = argparse.Namespace(motion_feat_dim=cfg.motion_feat_dim, n_motions=cfg.n_motions,
                              n_prev_motions=cfg.n_prev_motions, feature_dim=cfg.feature_dim,
                              n_diff_steps=cfg.n_diff_steps, audio_model="hubert_zh", n_layers=6)
    path = tmp_path / "motion_generator.pt"
    torch.save({"args": args, "model": sd, "iter": 1}, path)
    loaded = read_motion_generator(path, pe_mode=cfg.pe_mode, audio_config=model.audio_encoder.config)
    ref = model.state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, ref[key]), key

    broken = {k: v for k, v in sd.items() if not k.startswith("denoising_net.motion_dec")}
    with pytest.raises(CheckpointError, match="missing"):
        MotionGenerator(cfg, model.audio_encoder.config).load_checkpoint_state(broken)


def test_motion_unseeded_run_records_its_seed(fx, model):
    options = options_from(fx.meta, seed=None)
    seq = generate_motion(model, wave_from(fx), template_from(fx), options)
    assert isinstance(seq.seed, int)
    again = generate_motion(model, wave_from(fx), template_from(fx), options_from(fx.meta, seed=seq.seed))
    assert torch.equal(again.coef, seq.coef)


def test_motion_cfg_one_skips_the_null_branch_consistently(fx, model):
    """cfg 1 runs only the conditional branch; it must agree with the two-branch formula at a scale next to 1."""
    single = sample_coefficients(model, wave_from(fx), options_from(fx.meta, cfg_scale=1.0))
    both = sample_coefficients(model, wave_from(fx), options_from(fx.meta, cfg_scale=1.0 + 1e-7))
    assert_close(single, both, TOL_MOTION, name="cfg 1")
    assert float((single - sample_coefficients(model, wave_from(fx), options_from(fx.meta))).abs().max()) > 1e-2


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


def test_steps_control_applies_to_ddim_only():
    """The Sample Motion node always shows its steps widget; ddpm ignores it (all of the checkpoint's steps)."""
    assert steps_control("ddim", 20) == 20
    assert steps_control("ddpm", 20) is None
    assert steps_control("ddim", None) is None
