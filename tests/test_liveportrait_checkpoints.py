"""LivePortrait checkpoint files: layouts, conversions, dtype handling and every user-facing failure."""

from __future__ import annotations

import argparse
import json
import pathlib
import pickle

import pytest
import torch
from checkpoint_writers import save_community_safetensors, save_official_checkpoint, to_official_layout
from fixture_support import fill_module, fixture_dir, load_fixture

from joyvasa_core.checkpoints.containers import read_checkpoint, sniff_format
from joyvasa_core.checkpoints.identify import MOTION_GENERATOR, identify_state_dict
from joyvasa_core.checkpoints.liveportrait import (
    build_liveportrait_module,
    load_liveportrait_state_dict,
    normalize_stitching_state_dict,
    to_community_layout,
)
from joyvasa_core.errors import CheckpointError
from joyvasa_core.liveportrait import SLOT_SPECS, LivePortraitConfig
from joyvasa_core.liveportrait.appearance import AppearanceFeatureExtractor
from joyvasa_core.liveportrait.slots import APPEARANCE, MOTION_EXTRACTOR, SLOTS, SPADE, STITCHING, WARPING
from joyvasa_core.liveportrait.spade import SPADEDecoder
from joyvasa_core.liveportrait.stitching import StitchingRetargetingNetwork

SMALL = "liveportrait_small.safetensors"
REPO = pathlib.Path(__file__).resolve().parents[1]


def _manifest(name: str) -> dict:
    path = fixture_dir() / "manifests" / f"{name}.json"
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _small_module(slot: str) -> torch.nn.Module:
    """A reduced-width network of ``slot`` filled by the fixture rule (fast; the point here is the file format)."""
    f = load_fixture(SMALL)
    module = SLOT_SPECS[slot].network(LivePortraitConfig.from_dict(f.meta["config"]).of(slot))
    return fill_module(module, f.meta["fill"]["seed"], f.meta["fill"]["skip"][slot], f.meta["state_dict"][slot])


def _small_config(slot: str):
    return LivePortraitConfig.from_dict(load_fixture(SMALL).meta["config"]).of(slot)


def _assert_identical(a: dict, b: dict) -> None:
    assert list(a) == list(b) or sorted(a) == sorted(b), f"keys differ: {sorted(set(a) ^ set(b))[:5]}"
    for k in a:
        if isinstance(a[k], dict):
            _assert_identical(a[k], b[k])
        else:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert torch.equal(a[k], b[k]), f"{k} differs"


# ---------------------------------------------------------------------------------------------------------------------
# Layouts and round trips


def test_liveportrait_stitching_round_trip_official_community_official(tmp_path):
    """Official nested .pth -> community safetensors -> official nested: bit-identical, names as the manifest."""
    manifest = _manifest("liveportrait_stitching_retargeting_module")
    net = fill_module(StitchingRetargetingNetwork(), 0)  # official config
    official = to_official_layout(net.state_dict())
    want_nested = {g: {k: v["shape"] for k, v in inner.items()} for g, inner in manifest["layouts"]["official"].items()}
    assert {g: {k: list(v.shape) for k, v in inner.items()} for g, inner in official.items()} == want_nested

    pth = tmp_path / "stitching_retargeting_module.pth"
    save_official_checkpoint(net.state_dict(), pth, STITCHING)
    raw = torch.load(pth, weights_only=True)
    _assert_identical(raw, official)

    flat = load_liveportrait_state_dict(pth, STITCHING)
    assert sorted(flat) == sorted(manifest["layouts"]["flattened"])
    community = tmp_path / "stitching_retargeting_module.safetensors"
    save_community_safetensors(raw, community)
    assert sniff_format(community) == "safetensors"
    back = to_official_layout(read_checkpoint(community))
    _assert_identical(back, raw)
    _assert_identical(to_community_layout(raw), read_checkpoint(community))


def test_liveportrait_stitching_accepts_three_layouts(tmp_path):
    net = _small_module(STITCHING)
    flat = net.state_dict()
    nested = to_official_layout(flat)
    bare = {g: {k.removeprefix("module."): v for k, v in inner.items()} for g, inner in nested.items()}
    for name, obj in (("nested", nested), ("bare", bare), ("flat", dict(flat))):
        assert identify_state_dict(obj) == STITCHING, name
        _assert_identical(normalize_stitching_state_dict(obj), dict(flat))
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        built = build_liveportrait_module(STITCHING, path, config=_small_config(STITCHING))
        _assert_identical(built.state_dict(), dict(flat))


def test_liveportrait_official_config_round_trip(tmp_path):
    """F at the official config: .pth -> safetensors -> .pth is bit-identical and matches the manifest keys."""
    manifest = _manifest("liveportrait_appearance_feature_extractor")
    f_net = fill_module(AppearanceFeatureExtractor(), 0)
    sd = f_net.state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == {k: v["shape"] for k, v in manifest["keys"].items()}
    pth = tmp_path / "appearance_feature_extractor.pth"
    save_official_checkpoint(sd, pth, APPEARANCE)
    st = tmp_path / "appearance_feature_extractor.safetensors"
    save_community_safetensors(load_liveportrait_state_dict(pth, APPEARANCE), st, slot=APPEARANCE)
    pth2 = tmp_path / "again.pth"
    save_official_checkpoint(read_checkpoint(st), pth2, APPEARANCE)
    _assert_identical(torch.load(pth2, weights_only=True), torch.load(pth, weights_only=True))
    for path in (pth, st):
        built = build_liveportrait_module(APPEARANCE, path)
        _assert_identical(built.state_dict(), dict(sd))
        assert built.checkpoint_info.slot == APPEARANCE and not built.training


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_liveportrait_half_stored_safetensors_load_and_run(tmp_path, half):
    """Half-precision storage is widened to fp32 on load; the network runs and equals the fp32 one exactly."""
    ref = _small_module(SPADE)
    widened = {k: v.to(half).float() if v.is_floating_point() else v for k, v in ref.state_dict().items()}
    ref.load_state_dict(widened)
    path = tmp_path / "spade_generator.safetensors"
    save_community_safetensors({k: v.to(half) if v.is_floating_point() else v for k, v in widened.items()}, path)
    assert read_checkpoint(path)["fc.weight"].dtype == half
    g = build_liveportrait_module(SPADE, path, config=_small_config(SPADE), variant="animal_v1.1")
    assert isinstance(g, SPADEDecoder) and g.fc.weight.dtype == torch.float32
    assert g.checkpoint_info.variant == "animal_v1.1"
    x = torch.rand(1, _small_config(SPADE).input_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out, want = g(x), ref.eval()(x)
    assert torch.isfinite(out).all() and out.shape == want.shape
    assert torch.equal(out, want)


def test_liveportrait_identifies_every_manifest():
    names = {
        "liveportrait_appearance_feature_extractor": APPEARANCE,
        "liveportrait_motion_extractor": "motion_extractor",
        "liveportrait_warping_module": WARPING,
        "liveportrait_spade_generator": SPADE,
        "joyvasa_motion_generator": MOTION_GENERATOR,
    }
    for name, kind in names.items():
        keys = _manifest(name)["keys"]
        assert identify_state_dict({k: torch.empty(0) for k in keys}) == kind, name
    stitching = _manifest("liveportrait_stitching_retargeting_module")["layouts"]
    nested = {g: {k: torch.empty(0) for k in inner} for g, inner in stitching["official"].items()}
    assert identify_state_dict(nested) == STITCHING
    assert identify_state_dict({k: torch.empty(0) for k in stitching["flattened"]}) == STITCHING
    assert identify_state_dict({"foo.weight": torch.empty(0)}) == "unknown"
    assert set(SLOTS) == {APPEARANCE, MOTION_EXTRACTOR, WARPING, SPADE, STITCHING}


def test_liveportrait_unknown_variant_or_slot_is_refused():
    with pytest.raises(ValueError, match="slot"):
        load_liveportrait_state_dict("x.pth", "warp")
    with pytest.raises(ValueError, match="variant"):
        load_liveportrait_state_dict("x.pth", WARPING, variant="dog")


# ---------------------------------------------------------------------------------------------------------------------
# Failures a user can hit


def _saved_small(tmp_path, slot: str, fmt: str = "safetensors"):
    sd = _small_module(slot).state_dict()
    path = tmp_path / f"{slot}.{'safetensors' if fmt == 'safetensors' else 'pth'}"
    if fmt == "safetensors":
        save_community_safetensors(sd, path, slot=slot)
    else:
        save_official_checkpoint(sd, path, slot)
    return path, sd


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_liveportrait_truncated_file_is_a_clear_error(tmp_path, fmt):
    path, _ = _saved_small(tmp_path, WARPING, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CheckpointError) as err:
        load_liveportrait_state_dict(path, WARPING)
    msg = str(err.value)
    assert str(path) in msg and "truncated" in msg and "Download the file again" in msg


def test_liveportrait_wrong_file_in_slot_names_it_and_its_slot(tmp_path):
    path, _ = _saved_small(tmp_path, WARPING, "pth")
    with pytest.raises(CheckpointError) as err:
        build_liveportrait_module("spade_generator", path, config=_small_config(SPADE))
    msg = str(err.value)
    assert "is a LivePortrait warping module" in msg and "expected the LivePortrait SPADE generator" in msg
    assert "put it in the warping_module slot" in msg and str(path) in msg


def test_liveportrait_joyvasa_file_in_liveportrait_slot(tmp_path):
    keys = list(_manifest("joyvasa_motion_generator")["keys"])[:12]
    path = tmp_path / "motion_generator_hubert_chinese.pt"
    args = argparse.Namespace(n_motions=100, feature_dim=256, data_root=pathlib.PosixPath("/data/train"))
    torch.save({"args": args, "model": {k: torch.zeros(1) for k in keys}, "iter": 20000}, path)
    with pytest.raises(CheckpointError) as err:
        load_liveportrait_state_dict(path, "motion_extractor")
    msg = str(err.value)
    assert "JoyVASA motion generator" in msg and "motion extractor" in msg and "JoyVASA motion generator loader" in msg
    # The generic reader rebuilds the data-only training args (what the JoyVASA loader needs) without executing code.
    loaded = read_checkpoint(path)
    assert loaded["args"].n_motions == 100 and str(loaded["args"].data_root) == "/data/train"


def test_liveportrait_missing_keys_are_summarised(tmp_path):
    sd = dict(_small_module(WARPING).state_dict())
    dropped = [k for k in sd if k.endswith("running_var")]
    for k in dropped:
        del sd[k]
    sd["extra.weight"] = torch.zeros(2)
    path = tmp_path / "warping_module.safetensors"
    save_community_safetensors(sd, path)
    with pytest.raises(CheckpointError) as err:
        build_liveportrait_module(WARPING, path, config=_small_config(WARPING))
    msg = str(err.value)
    assert f"missing keys: {len(dropped)} (" in msg and "unexpected keys: 1 (extra.weight)" in msg
    assert msg.count("running_var") <= 4, "the message must summarise, not list every key"


def test_liveportrait_other_size_file_is_a_clear_error(tmp_path):
    path = tmp_path / "appearance_feature_extractor.pth"
    save_official_checkpoint(fill_module(AppearanceFeatureExtractor(), 0).state_dict(), path, APPEARANCE)
    with pytest.raises(CheckpointError, match="another size"):
        build_liveportrait_module(APPEARANCE, path, config=_small_config(APPEARANCE))


def test_liveportrait_integer_weights_are_refused(tmp_path):
    sd = dict(_small_module(STITCHING).state_dict())
    key = "retarget_mouth_module.mlp.0.weight"
    sd[key] = sd[key].round().to(torch.int32)
    path = tmp_path / "stitching_retargeting_module.safetensors"
    save_community_safetensors(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_liveportrait_state_dict(path, STITCHING)
    assert "not floating point" in str(err.value) and key in str(err.value) and "int32" in str(err.value)


def test_liveportrait_nonfinite_weights_are_refused(tmp_path):
    sd = dict(_small_module(STITCHING).state_dict())
    sd["retarget_eye_module.mlp.0.bias"] = torch.full_like(sd["retarget_eye_module.mlp.0.bias"], float("inf"))
    path = tmp_path / "s.safetensors"
    save_community_safetensors(sd, path)
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        load_liveportrait_state_dict(path, STITCHING)


class _Payload:
    """Unpickling this would create ``marker``: the loader must refuse before anything runs."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_liveportrait_pickled_objects_are_refused_not_run(tmp_path, writer):
    marker = tmp_path / "executed"
    path = tmp_path / "appearance_feature_extractor.pth"
    obj = {"first.conv.weight": torch.zeros(1), "hook": _Payload(str(marker))}
    if writer == "torch":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(CheckpointError) as err:
        load_liveportrait_state_dict(path, APPEARANCE)
    assert not marker.exists(), "the pickled payload ran"
    assert str(path) in str(err.value)
    if writer == "torch":
        assert "refused to unpickle" in str(err.value) and "open" in str(err.value)


def test_liveportrait_not_a_weight_file(tmp_path):
    cases = {
        "empty.pth": (b"", "empty"),
        "lfs.safetensors": (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 3361936\n", "git lfs"),
        "page.safetensors": (b"<!DOCTYPE html><html><body>Not found</body></html>", "web page"),
        "noise.pth": (bytes(range(7, 200)), "unrecognised"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            load_liveportrait_state_dict(path, SPADE)
        assert words in str(err.value).lower() and str(path) in str(err.value), name
    with pytest.raises(CheckpointError, match="no such file"):
        load_liveportrait_state_dict(tmp_path / "absent.pth", SPADE)


def test_liveportrait_non_dict_and_unknown_content(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="does not look like any LivePortrait network"):
        load_liveportrait_state_dict(path, WARPING)
    path = tmp_path / "strings.pth"
    torch.save({"first.conv.weight": torch.zeros(1), "resblocks_3d.3dr0.note": "hello"}, path)
    with pytest.raises(CheckpointError, match="1 entries are not tensors"):
        load_liveportrait_state_dict(path, APPEARANCE)


def test_liveportrait_format_is_sniffed_not_guessed_from_extension(tmp_path):
    """A safetensors file named .pth and a .pth named .safetensors both load."""
    sd = _small_module(STITCHING).state_dict()
    a = tmp_path / "really_safetensors.pth"
    save_community_safetensors(sd, a)
    b = tmp_path / "really_torch.safetensors"
    torch.save(dict(sd), b)
    assert (sniff_format(a), sniff_format(b)) == ("safetensors", "torch-zip")
    _assert_identical(load_liveportrait_state_dict(a, STITCHING), dict(sd))
    _assert_identical(load_liveportrait_state_dict(b, STITCHING), dict(sd))


def test_liveportrait_convert_tool_writes_community_files(tmp_path):
    """tools/convert_liveportrait.py: official nested stitching -> flat safetensors; slot from stem or contents."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_liveportrait", REPO / "tools" / "convert_liveportrait.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    stitching = _small_module(STITCHING).state_dict()
    spade = _small_module(SPADE).state_dict()
    save_official_checkpoint(stitching, tmp_path / f"{STITCHING}.pth", STITCHING)
    save_official_checkpoint(spade, tmp_path / "renamed.pth", SPADE)
    out = tmp_path / "community"
    assert tool.main([str(tmp_path / f"{STITCHING}.pth"), str(tmp_path / "renamed.pth"), "--out", str(out)]) == 0
    _assert_identical(read_checkpoint(out / f"{STITCHING}.safetensors"), dict(stitching))
    _assert_identical(read_checkpoint(out / f"{SPADE}.safetensors"), dict(spade))
    before = (out / f"{SPADE}.safetensors").read_bytes()
    assert tool.main([str(tmp_path / "renamed.pth"), "--out", str(out)]) == 1
    assert (out / f"{SPADE}.safetensors").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [f"{SPADE}.safetensors", f"{STITCHING}.safetensors"]
