"""Models folders in the real file formats (official .pth, community safetensors, the JoyVASA .pt and template),
holding the golden fixtures' small networks filled by the fixture rule, plus the width configs that declare them.

The pipeline, command-line and ComfyUI tests all run the whole job on these. The live page test, which must keep up
with a speaker, uses ``widths="tiny"``: the same LivePortrait networks narrowed further by ``TINY_LIVEPORTRAIT``.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import torch
from checkpoint_writers import save_community_safetensors, save_official_checkpoint, write_motion_template
from fixture_support import fill_module, load_fixture
from motion_support import build_model, config_from_meta

from joyvasa_core.liveportrait import LivePortraitConfig, build_networks
from joyvasa_core.liveportrait.slots import BASE_SLOTS, STITCHING

LP_SMALL = "liveportrait_small.safetensors"
MOTION_SMALL = "joyvasa_small.safetensors"
# What the tiny LivePortrait changes in the small one's config (the other widths stay). F's four down blocks make W's
# feature map 16x16 (the released and small ones: 64x64), two depth slices, G pixel-shuffles it by 8 back to the same
# 512x512 crop, and every width is about the least the architecture takes: a frame in tens of ms on one CPU core.
TINY_LIVEPORTRAIT = {
    "appearance_feature_extractor_params": {"block_expansion": 4, "num_down_blocks": 4, "max_features": 8,
                                            "reshape_channel": 4, "reshape_depth": 2, "num_resblocks": 1},
    "warping_module_params": {"block_expansion": 2, "max_features": 8, "reshape_channel": 4},
    "dense_motion_params": {"block_expansion": 2, "max_features": 8, "num_blocks": 2, "reshape_depth": 2,
                            "compress": 1},
    "spade_generator_params": {"block_expansion": 2, "max_features": 8, "out_channels": 4, "spade_hidden": 8,
                               "upscale": 8},
}


def liveportrait_config(widths: str = "small") -> dict:
    """The ``liveportrait_config.json`` content of the ``small`` (fixture) or ``tiny`` networks."""
    config = copy.deepcopy(load_fixture(LP_SMALL).meta["config"])
    if widths == "tiny":
        for section, values in TINY_LIVEPORTRAIT.items():
            owner = config["warping_module_params"] if section == "dense_motion_params" else config
            owner[section].update(values)
    elif widths != "small":
        raise ValueError(f"widths {widths!r}: small or tiny")
    return config


@lru_cache(maxsize=2)
def small_liveportrait_networks(widths: str = "small") -> dict[str, torch.nn.Module]:
    """The networks filled by the fixture rule: the small ones' keys and shapes checked against the fixture, the tiny
    ones' (no fixture) skipping the batch-norm counters as the fixture does."""
    meta = load_fixture(LP_SMALL).meta
    nets = build_networks(LivePortraitConfig.from_dict(liveportrait_config(widths)))
    for slot, net in nets.items():
        if widths == "small":
            fill_module(net, meta["fill"]["seed"], meta["fill"]["skip"][slot], meta["state_dict"][slot])
        else:
            skip = [k for k in net.state_dict() if k.endswith("num_batches_tracked")]
            fill_module(net, meta["fill"]["seed"], skip)
    return nets


def write_liveportrait(root: Path, layout: str = "official", animal: bool = False, widths: str = "small") -> Path:
    """Small- (or tiny-) width LivePortrait files in the official (.pth) or community (.safetensors) layout, plus
    the ``liveportrait_config.json`` that declares the widths."""
    nets = small_liveportrait_networks(widths)
    config = liveportrait_config(widths)
    if layout == "official":
        base = root / ("liveportrait_animals/base_models_v1.1" if animal else "liveportrait/base_models")
        base.mkdir(parents=True, exist_ok=True)
        for slot in BASE_SLOTS:
            save_official_checkpoint(nets[slot].state_dict(), base / f"{slot}.pth", slot)
        retarget = root / "liveportrait" / "retargeting_models"
        retarget.mkdir(parents=True, exist_ok=True)
        save_official_checkpoint(nets[STITCHING].state_dict(), retarget / f"{STITCHING}.pth", STITCHING)
        cfg_dir = base.parent
    else:
        lp = root / "liveportrait"
        base = lp / "animal" if animal else lp
        base.mkdir(parents=True, exist_ok=True)
        for slot in BASE_SLOTS:
            save_community_safetensors(nets[slot].state_dict(), base / f"{slot}.safetensors", slot)
        save_community_safetensors(nets[STITCHING].state_dict(), lp / f"{STITCHING}.safetensors", STITCHING)
        cfg_dir = base
    (cfg_dir / "liveportrait_config.json").write_text(json.dumps(config), encoding="utf-8")
    return root


def write_joyvasa(root: Path, reference_layout: bool = False) -> Path:
    """The small motion generator as a real ``.pt`` (args Namespace + model dict) with ``joyvasa_config.json``
    for the widths the official loader does not read from args, and the fixture template as ``.pkl``."""
    fx = load_fixture(MOTION_SMALL)
    meta = fx.meta
    model = build_model(MOTION_SMALL)
    cfg = config_from_meta(meta, meta["pe_modes"][0])
    mdir = root / ("JoyVASA/motion_generator" if reference_layout else "joyvasa")
    tdir = root / ("JoyVASA/motion_template" if reference_layout else "joyvasa")
    mdir.mkdir(parents=True, exist_ok=True)
    tdir.mkdir(parents=True, exist_ok=True)
    arg_names = ("motion_feat_dim", "n_motions", "n_prev_motions", "feature_dim", "n_diff_steps", "fps")
    args = argparse.Namespace(audio_model="hubert_zh", **{k: meta["model"][k] for k in arg_names})
    torch.save({"args": args, "model": model.state_dict(), "iter": 0}, mdir / "motion_generator_hubert_chinese.pt")
    extra = {k: v for k, v in asdict(cfg).items() if k not in arg_names and k != "pe_mode"}
    (mdir / "joyvasa_config.json").write_text(
        json.dumps({"motion_generator": extra, "hubert": meta["hubert_config"]}), encoding="utf-8"
    )
    stats = {k[len("tpl.") :]: fx[k].numpy() for k in fx.keys() if k.startswith("tpl.")}
    write_motion_template(stats, tdir / "motion_template.pkl")
    return root
