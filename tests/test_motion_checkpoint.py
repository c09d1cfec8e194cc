"""JoyVASA checkpoint and motion template files: the real layouts load, code never runs, wrong files say so."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import pickle
import sys

import numpy as np
import pytest
import torch
from checkpoint_writers import write_motion_template
from fixture_support import fixture_path, load_fixture
from safetensors.torch import save_file

from joyvasa_core.audio.encoder import build_hubert, hubert_config, remap_pos_conv_weight_norm
from joyvasa_core.checkpoints.joyvasa import read_motion_checkpoint, read_motion_template, read_template_stats
from joyvasa_core.errors import CheckpointError
from joyvasa_core.motion.template import TEMPLATE_KEYS

POS_CONV = "audio_encoder.encoder.pos_conv_embed.conv."
LEGACY = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}


def _motion_state_dict(meta: dict) -> dict[str, torch.Tensor]:
    """A state dict with the fixture's motion-generator layout (random values, real dtypes)."""
    gen = torch.Generator().manual_seed(meta["fill"]["seed"])
    out = {}
    for key, (shape, dtype) in meta["state_dict"].items():
        if dtype == "bool":
            out[key] = torch.rand(shape, generator=gen) > 0.5
        else:
            out[key] = torch.randn(shape, generator=gen).to(getattr(torch, dtype))
    return out


def _legacy_names(sd: dict) -> dict:
    out = {}
    for key, value in sd.items():
        for new, old in LEGACY.items():
            if key == POS_CONV + new:
                key = POS_CONV + old
        out[key] = value
    return out


class _WindowsPathStandIn(pathlib.PureWindowsPath):
    """Pickles as ``pathlib.WindowsPath``, as a checkpoint saved on Windows does (that class can't exist here)."""


@pytest.fixture(scope="module")
def small_meta() -> dict:
    return load_fixture("joyvasa_small.safetensors").meta


@pytest.fixture()
def real_format_file(tmp_path, small_meta, monkeypatch):
    state = _motion_state_dict(small_meta)
    _WindowsPathStandIn.__module__, _WindowsPathStandIn.__qualname__ = "pathlib", "WindowsPath"
    monkeypatch.setattr(pathlib, "WindowsPath", _WindowsPathStandIn)
    args = argparse.Namespace(
        data_root=pathlib.PosixPath("/data/talking_heads"),
        exp_dir=pathlib.PureWindowsPath(r"D:\experiments\joyvasa"),
        out_dir=_WindowsPathStandIn(r"C:\runs\hubert"),
        stats_file=[pathlib.PosixPath("/data/stats.pkl")],
        audio_model="hubert_zh",
        use_indicator=True,
        **{k: small_meta["model"][k] for k in ("motion_feat_dim", "n_motions", "n_prev_motions", "feature_dim")},
    )
    path = tmp_path / "motion_generator_hubert_chinese.pt"
    torch.save({"args": args, "model": _legacy_names(state), "iter": 1}, path)
    monkeypatch.undo()
    return path, state


def test_motion_checkpoint_real_format_loads(real_format_file, small_meta):
    path, state = real_format_file
    assert b"cpathlib\nWindowsPath\n" in _pickle_bytes(path)  # what a Windows-saved file names
    args, sd = read_motion_checkpoint(path)
    assert args["data_root"] == "/data/talking_heads"
    assert args["exp_dir"] == str(pathlib.PureWindowsPath(r"D:\experiments\joyvasa"))
    assert args["out_dir"] == str(pathlib.PureWindowsPath(r"C:\runs\hubert"))
    assert args["stats_file"] == ["/data/stats.pkl"]
    assert args["audio_model"] == "hubert_zh" and args["use_indicator"] is True
    for key in ("motion_feat_dim", "n_motions", "n_prev_motions", "feature_dim"):
        assert args[key] == small_meta["model"][key]
    assert set(sd) == set(state)  # legacy weight_g/weight_v came back under the parametrization names
    for key, value in state.items():
        assert sd[key].dtype == value.dtype and torch.equal(sd[key], value), key


def _pickle_bytes(path: pathlib.Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def test_motion_checkpoint_bare_state_dict_and_safetensors(tmp_path, small_meta):
    state = _motion_state_dict(small_meta)
    bare = tmp_path / "bare.pth"
    torch.save(state, bare)
    args, sd = read_motion_checkpoint(bare)
    assert args == {} and set(sd) == set(state)
    st = tmp_path / "motion.safetensors"
    save_file(state, str(st), metadata={"args": json.dumps({"n_motions": small_meta["model"]["n_motions"]})})
    args, sd = read_motion_checkpoint(st)
    assert args == {"n_motions": small_meta["model"]["n_motions"]}
    assert all(torch.equal(sd[k], v) for k, v in state.items())


def test_motion_pos_conv_remap_loads_into_hubert(small_meta):
    hubert = build_hubert(hubert_config(**small_meta["hubert_config"]))
    sd = {k: torch.randn_like(v) for k, v in hubert.state_dict().items()}
    legacy = remap_pos_conv_weight_norm(sd, to_parametrizations=False)
    assert "encoder.pos_conv_embed.conv.weight_g" in legacy and "encoder.pos_conv_embed.conv.weight_v" in legacy
    assert not any("parametrizations" in k for k in legacy)
    back = remap_pos_conv_weight_norm(legacy)
    assert list(back) == list(sd)
    hubert.load_state_dict(back, strict=True)
    g = back["encoder.pos_conv_embed.conv.parametrizations.weight.original0"]
    v = back["encoder.pos_conv_embed.conv.parametrizations.weight.original1"]
    weight = g * v / v.norm(dim=(0, 1), keepdim=True)  # weight norm over all but the kernel axis
    torch.testing.assert_close(hubert.encoder.pos_conv_embed.conv.weight, weight)


class _RunsCode:
    """Unpickling this would call ``func(*args)``: a safe loader must refuse it before the call."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: pathlib.Path) -> list[tuple[str, _RunsCode]]:
    command = f"\"{sys.executable}\" -c \"open(r'{marker}', 'w').close()\""
    calls = [(os.system, (command,)), (open, (str(marker), "w"))]
    return [(f"{func.__module__}.{func.__qualname__}", _RunsCode(func, args)) for func, args in calls]


@pytest.mark.parametrize("which", [0, 1])
def test_motion_checkpoint_refuses_code_and_never_runs_it(tmp_path, which, small_meta):
    marker = tmp_path / "code_ran.txt"
    name, payload = _payloads(marker)[which]
    state = {"denoising_net.feature_proj.weight": torch.zeros(2, 2)}
    zipped = tmp_path / "evil.pt"
    torch.save({"args": payload, "model": state, "iter": 1}, zipped)
    plain = tmp_path / "evil_plain.pt"
    plain.write_bytes(pickle.dumps({"args": payload, "model": {}}, protocol=4))
    template = tmp_path / "evil_template.pkl"
    template.write_bytes(pickle.dumps({k: payload for k in TEMPLATE_KEYS}, protocol=4))
    for path in (zipped, plain):
        with pytest.raises(CheckpointError, match="refused") as info:
            read_motion_checkpoint(path)
        assert name in str(info.value)
    with pytest.raises(CheckpointError, match="refused") as info:
        read_motion_template(template)
    assert name in str(info.value)
    assert not marker.exists(), "a refused global was executed"


def _manifest_state(name: str) -> object:
    manifest = json.loads((fixture_path("manifests") / f"{name}.json").read_text())
    if "groups" in manifest:  # stitching: official nested DDP layout
        return {g: {"module." + e["key"]: torch.zeros(1) for e in entries} for g, entries in manifest["groups"].items()}
    return {key: torch.zeros(1) for key in manifest["keys"]}


@pytest.mark.parametrize(
    "manifest, slot",
    [
        ("liveportrait_motion_extractor", "motion_extractor"),
        ("liveportrait_appearance_feature_extractor", "appearance_feature_extractor"),
        ("liveportrait_warping_module", "warping_module"),
        ("liveportrait_spade_generator", "spade_generator"),
        ("liveportrait_stitching_retargeting_module", "stitching_retargeting_module"),
    ],
)
def test_motion_checkpoint_liveportrait_file_in_motion_slot(tmp_path, manifest, slot):
    path = tmp_path / f"{slot}.pth"
    torch.save(_manifest_state(manifest), path)
    with pytest.raises(CheckpointError) as info:
        read_motion_checkpoint(path)
    msg = str(info.value)
    assert "LivePortrait" in msg and f"{slot} slot" in msg and "motion_generator_hubert_chinese.pt" in msg
    assert str(path) in msg


def test_motion_checkpoint_truncated(real_format_file, tmp_path):
    path, _ = real_format_file
    data = path.read_bytes()
    for n, cut in enumerate((len(data) // 2, len(data) - 100, 10)):
        truncated = tmp_path / f"truncated{n}.pt"
        truncated.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated|corrupt"):
            read_motion_checkpoint(truncated)


def _fixture_template() -> dict[str, np.ndarray]:
    fx = load_fixture("joyvasa_small.safetensors")
    return {k.removeprefix("tpl."): fx[k].numpy() for k in fx.keys() if k.startswith("tpl.")}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_motion_template_round_trip(tmp_path, protocol):
    stats = _fixture_template()
    assert set(TEMPLATE_KEYS) <= set(stats)
    path = write_motion_template(stats, tmp_path / "motion_template.pkl", protocol=protocol)
    back = read_template_stats(path)
    assert set(back) == set(stats)
    for key, value in stats.items():
        assert back[key].dtype == np.float32
        np.testing.assert_array_equal(back[key], value)


def test_motion_template_numpy1_pickle(tmp_path):
    """The released file was written by numpy 1.x, whose pickles name numpy.core.multiarray (and numpy scalars)."""
    stats = _fixture_template()
    stats_with_scalar = dict(stats, abs_max_scale=np.float32(stats["max_scale"].item()))
    data = pickle.dumps(stats_with_scalar, protocol=2).replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray" in data and b"numpy._core" not in data
    path = tmp_path / "motion_template.pkl"
    path.write_bytes(data)
    back = read_template_stats(path)
    np.testing.assert_array_equal(back["mean_exp"], stats["mean_exp"])
    assert float(back["abs_max_scale"]) == float(stats["max_scale"].item())


def test_motion_template_missing_keys_and_wrong_files(tmp_path, real_format_file):
    stats = _fixture_template()
    dropped = ["std_exp", "max_yaw"]
    path = tmp_path / "partial.pkl"
    path.write_bytes(pickle.dumps({k: v for k, v in stats.items() if k not in dropped}, protocol=4))
    with pytest.raises(CheckpointError, match="missing keys") as info:
        read_motion_template(path)
    assert all(k in str(info.value) for k in dropped)
    with pytest.raises(CheckpointError, match="missing keys"):
        write_motion_template({"mean_exp": stats["mean_exp"]}, tmp_path / "bad.pkl")

    good = write_motion_template(stats, tmp_path / "motion_template.pkl")
    with pytest.raises(CheckpointError, match="motion template slot"):
        read_motion_checkpoint(good)
    ckpt, _ = real_format_file
    with pytest.raises(CheckpointError, match="JoyVASA motion generator"):
        read_motion_template(ckpt)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated"):
        read_motion_template(truncated)
    with pytest.raises(CheckpointError, match="no such file"):
        read_motion_template(tmp_path / "absent.pkl")
