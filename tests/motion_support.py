"""Builds the motion generator, template and sampling options of a ``joyvasa_*`` fixture from its metadata only."""

from __future__ import annotations

import re
from functools import lru_cache

import torch
from fixture_support import fill_module, load_fixture

from joyvasa_core.audio.encoder import hubert_config
from joyvasa_core.errors import Cancelled
from joyvasa_core.motion.config import MotionGeneratorConfig
from joyvasa_core.motion.generator import MotionGenerator
from joyvasa_core.motion.sampler import SamplingOptions
from joyvasa_core.motion.template import MOTION_DIM, TRAIN_EPS, MotionTemplate

MOTION_FIXTURES = ("joyvasa_small.safetensors", "joyvasa_shipped.safetensors")

# What this implementation computes; a fixture describing anything else must fail loudly, not pass by accident.
IMPLEMENTED = {
    "target": "sample",
    "architecture": "decoder",
    "diff_schedule": "cosine",
    "cfg_mode": "incremental",
    "guiding_conditions": ["audio"],
}


def config_from_meta(meta: dict, pe_mode: str) -> MotionGeneratorConfig:
    model = meta["model"]
    for key, value in IMPLEMENTED.items():
        assert model[key] == value, f"fixture model.{key} = {model[key]!r}, implementation supports {value!r}"
    den = model["denoiser"]
    assert den["use_indicator"] is False
    assert den["ffn"] % model["feature_dim"] == 0
    return MotionGeneratorConfig(
        motion_feat_dim=model["motion_feat_dim"],
        n_motions=model["n_motions"],
        n_prev_motions=model["n_prev_motions"],
        feature_dim=model["feature_dim"],
        n_diff_steps=model["n_diff_steps"],
        fps=model["fps"],
        sample_rate=meta["audio"]["sample_rate"],
        audio_hidden_dim=model["audio_feature_map_in"],
        n_heads=den["n_heads"],
        n_layers=den["n_layers"],
        mlp_ratio=den["ffn"] // model["feature_dim"],
        time_embedding_rows=den["time_embedding_rows"],
        pos_encoding_rows=den["pos_encoding_rows"],
        cosine_s=model["cosine_s"],
        pe_mode=pe_mode,
    )


def audio_config_from_meta(meta: dict):
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["hubert_config"].items()}
    return hubert_config(**cfg)


@lru_cache(maxsize=2)
def build_model(name: str) -> MotionGenerator:
    """Filled generator for fixture ``name`` (cached: the shipped one takes seconds); PE mode set by the caller."""
    meta = load_fixture(name).meta
    model = MotionGenerator(config_from_meta(meta, meta["pe_modes"][0]), audio_config_from_meta(meta))
    fill_module(model, meta["fill"]["seed"], meta["fill"]["skip"], meta["state_dict"])
    return model


def model_for(name: str, pe_mode: str) -> MotionGenerator:
    """The cached generator switched in place to ``pe_mode`` (both modes use the same weights)."""
    model = build_model(name)
    model.config = model.config.with_pe_mode(pe_mode)
    model.denoising_net.config = model.config
    return model


def normalize_motion(template: MotionTemplate, exp: torch.Tensor, scale: torch.Tensor, t: torch.Tensor,
                     pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """The template's inverse map (training-time eps 1e-9): de-normalised motion -> (N, 73) coefficients, dims
    70..72 (unused at inference) zero."""
    n = exp.shape[:-2]
    dev = dict(device=exp.device, dtype=exp.dtype)
    exp_c = (exp.reshape(*n, 63) - template.mean_exp.to(**dev)) / (template.std_exp.to(**dev) + TRAIN_EPS)
    pose = torch.cat([scale, t, pitch, yaw, roll], dim=-1)
    lo, hi = template.min_pose.to(**dev), template.max_pose.to(**dev)
    pose_c = (pose - lo) / (hi - lo + TRAIN_EPS)
    return torch.cat([exp_c, pose_c, exp.new_zeros(*n, MOTION_DIM - 70)], dim=-1)


def template_from(fx) -> MotionTemplate:
    return MotionTemplate.from_dict({k[len("tpl.") :]: fx[k] for k in fx.keys() if k.startswith("tpl.")})


def ema_alpha(meta: dict) -> float:
    match = re.search(r"EMA alpha=([0-9.eE+-]+)", meta["smoothing"])
    assert match, f"fixture smoothing {meta['smoothing']!r} is not an EMA description"
    return float(match.group(1))


def options_from(meta: dict, **overrides) -> SamplingOptions:
    sampling, audio = meta["sampling"], meta["audio"]
    assert sampling["dynamic_threshold"] == 0, "dynamic thresholding is not implemented (reference default 0)"
    assert audio["pad_mode"] == "zero"
    values = dict(
        cfg_scale=sampling["cfg_scale"],
        scheduler="ddpm",
        flexibility=sampling["flexibility"],
        seed=sampling["noise_seed"],
        leading_silence=audio["leading_pad"] > 0,
        lag_compensation=False,  # the fixtures hold the reference's frames, leading silence included
        smoothing="ema",
        smoothing_alpha=ema_alpha(meta),
    )
    values.update(overrides)
    return SamplingOptions(**values)


def wave_from(fx) -> torch.Tensor:
    return fx["seq.in.wave"]


class StopAfter:
    """Progress that records every ``update`` and cancels once ``n`` updates have been seen."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls: list[tuple[int, int]] = []

    def update(self, done: int, total: int, preview=None) -> None:
        self.calls.append((done, total))

    def check_cancel(self) -> None:
        if len(self.calls) >= self.n:
            raise Cancelled("stop")
