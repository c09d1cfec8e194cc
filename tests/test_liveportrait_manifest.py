"""The official configuration builds networks whose state dicts are exactly the official checkpoints' layouts.

Networks are built on the meta device: only names, shapes, dtypes and parameter/buffer kinds are compared.
"""

from __future__ import annotations

import json

import pytest
import torch
from checkpoint_writers import to_official_layout
from fixture_support import fixture_dir, load_fixture

from joyvasa_core.checkpoints.liveportrait import to_community_layout
from joyvasa_core.liveportrait import (
    AppearanceConfig,
    AppearanceFeatureExtractor,
    LivePortraitConfig,
    MotionExtractor,
    MotionExtractorConfig,
    SpadeConfig,
    SPADEDecoder,
    StitchingConfig,
    StitchingRetargetingNetwork,
    WarpingConfig,
    WarpingNetwork,
)

FLAT_MANIFESTS = {
    "appearance_feature_extractor": (AppearanceFeatureExtractor, AppearanceConfig),
    "motion_extractor": (MotionExtractor, MotionExtractorConfig),
    "warping_module": (WarpingNetwork, WarpingConfig),
    "spade_generator": (SPADEDecoder, SpadeConfig),
}
ROLE_TO_FIELD = {"stitching": "stitching", "lip": "lip", "eye": "eye"}


def _manifest(name: str) -> dict:
    return json.loads((fixture_dir() / "manifests" / f"liveportrait_{name}.json").read_text())


def _layout(module: torch.nn.Module) -> dict[str, dict]:
    """key -> shape, dtype, kind, in state-dict order."""
    params = {k for k, _ in module.named_parameters()}
    buffers = {k for k, _ in module.named_buffers()}
    out = {}
    for key, value in module.state_dict().items():
        assert (key in params) != (key in buffers), f"{key} is neither exactly a parameter nor a buffer"
        out[key] = {
            "shape": list(value.shape),
            "dtype": str(value.dtype).removeprefix("torch."),
            "kind": "parameter" if key in params else "buffer",
        }
    return out


def _expected(entries: dict[str, dict]) -> dict[str, dict]:
    return {k: {"shape": v["shape"], "dtype": v["dtype"], "kind": v["kind"]} for k, v in entries.items()}


def _assert_same_layout(got: dict[str, dict], want: dict[str, dict], name: str) -> None:
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    assert not missing and not extra, f"{name}: missing {missing[:5]}, unexpected {extra[:5]}"
    assert list(got) == list(want), f"{name}: key order differs"
    wrong = [(k, got[k], want[k]) for k in want if got[k] != want[k]]
    assert not wrong, f"{name}: {wrong[:5]}"


@pytest.mark.parametrize("name", list(FLAT_MANIFESTS))
def test_liveportrait_official_layout_matches_manifest(name: str) -> None:
    cls, cfg_cls = FLAT_MANIFESTS[name]
    manifest = _manifest(name)
    assert cfg_cls.from_dict(manifest["config"]) == cfg_cls(), "the manifest's config is not our default"
    with torch.device("meta"):
        net = cls(cfg_cls())
    got = _layout(net)
    _assert_same_layout(got, _expected(manifest["keys"]), name)
    assert len(got) == manifest["num_tensors"]
    assert sum(p.numel() for p in net.parameters()) == manifest["num_parameters"]


def test_liveportrait_stitching_layout_matches_manifest() -> None:
    manifest = _manifest("stitching_retargeting_module")
    cfg = StitchingConfig.from_dict({net["role"]: net["config"] for net in manifest["networks"].values()})
    assert cfg == StitchingConfig()
    with torch.device("meta"):
        net = StitchingRetargetingNetwork(cfg)
    got = _layout(net)
    _assert_same_layout(got, _expected(manifest["layouts"]["flattened"]), "stitching (flattened)")
    assert sum(p.numel() for p in net.parameters()) == sum(manifest["params"].values())
    for group, keys in manifest["groups"].items():
        sub = getattr(net, f"{group}_module")
        assert [k["key"] for k in keys] == list(sub.state_dict()), group


def test_liveportrait_stitching_official_nested_layout_round_trip() -> None:
    """The official nested checkpoint maps onto our flat keys and back without loss."""
    manifest = _manifest("stitching_retargeting_module")
    nested = {
        group: {k: torch.zeros(v["shape"]) for k, v in inner.items()}
        for group, inner in manifest["layouts"]["official"].items()
    }
    flat = to_community_layout(nested)
    assert list(flat) == list(manifest["layouts"]["flattened"])
    back = to_official_layout(flat)
    assert {g: list(d) for g, d in back.items()} == {g: list(d) for g, d in nested.items()}
    net = StitchingRetargetingNetwork()
    net.load_state_dict(flat, strict=True)
    assert float(net.retarget_eye_module.mlp[0].weight.detach().abs().sum()) == 0.0


@pytest.mark.parametrize("name", ["liveportrait_small.safetensors", "liveportrait_full.safetensors"])
def test_liveportrait_config_reads_fixture_config(name: str) -> None:
    """Every hyperparameter in the fixture metadata lands in the matching config field."""
    meta = load_fixture(name).meta["config"]
    cfg = LivePortraitConfig.from_dict(meta)
    sections = {
        "appearance_feature_extractor_params": cfg.appearance,
        "motion_extractor_params": cfg.motion_extractor,
        "warping_module_params": cfg.warping,
        "dense_motion_params": cfg.warping.dense_motion,
        "spade_generator_params": cfg.spade,
    }
    values = dict(meta)
    values["dense_motion_params"] = meta["warping_module_params"]["dense_motion_params"]
    checked = 0
    for section, sub in sections.items():
        for key, value in values[section].items():
            if hasattr(sub, key) and not isinstance(value, dict):
                got = getattr(sub, key)
                assert (list(got) if isinstance(got, tuple) else got) == value, f"{section}.{key}"
                checked += 1
    for role in ("stitching", "lip", "eye"):
        mlp = getattr(cfg.stitching, role)
        want = meta["stitching_retargeting_module_params"][role]
        assert (mlp.input_size, list(mlp.hidden_sizes), mlp.output_size) == (
            want["input_size"],
            want["hidden_sizes"],
            want["output_size"],
        )
    assert checked >= 25
