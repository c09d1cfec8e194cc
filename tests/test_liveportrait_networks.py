"""Parity of F, M, W, G and S with the reference, on both LivePortrait fixtures (reduced and official widths).

Everything (config, seed, skip list, frame index, inputs) comes from the fixture; tolerances are the README's.
"""

from __future__ import annotations

from functools import cached_property

import pytest
import torch
from fixture_support import assert_close, assert_stats, fill_module, fill_rule, load_fixture

from joyvasa_core.keypoints import apply_stitching, keypoint_info_from_heads
from joyvasa_core.liveportrait import LivePortraitConfig, build_networks
from joyvasa_core.liveportrait.spade import SpectralNormConv2d

FIXTURES = ["liveportrait_small.safetensors", "liveportrait_full.safetensors"]

# README "Tolerances / LivePortrait"
ATOL_M_RAW = 2e-5
ATOL_M_ANGLES = 2e-4
ATOL_M_INFO = 3e-5
ATOL_F = 5e-5
ATOL_MLP = 1e-5
ATOL_OCCLUSION = 3e-5
ATOL_DEFORMATION = 3e-5
ATOL_W_OUT = 1e-4
ATOL_G_CHAINED = 5e-4
ATOL_G_STORED = 5e-5
RTOL_STATS = 1e-5


class Chain:
    """One fixture's networks, filled once, with the chained outputs computed on first use."""

    def __init__(self, name: str) -> None:
        self.fx = load_fixture(name)
        meta = self.fx.meta
        self.nets = build_networks(LivePortraitConfig.from_dict(meta["config"]))
        for key, net in self.nets.items():
            fill_module(net, meta["fill"]["seed"], meta["fill"]["skip"][key], meta["state_dict"][key])
        self.image = self.fx["src.img256"].permute(2, 0, 1)[None].float() / 255.0

    @cached_property
    def motion(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.nets["motion_extractor"](self.image)

    @cached_property
    def feature(self) -> torch.Tensor:
        with torch.no_grad():
            return self.nets["appearance_feature_extractor"](self.image)

    @cached_property
    def x_d(self) -> torch.Tensor:
        """Recipe (b) driving keypoints of the warped frame, as the README says W was run on."""
        i = int(self.fx.meta["warp_frame_index"])
        return self.fx["kp.b.x_d"][i : i + 1]

    @cached_property
    def warp(self) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.nets["warping_module"](self.feature, kp_source=self.fx["M.x_s"], kp_driving=self.x_d)

    @cached_property
    def image_out(self) -> torch.Tensor:
        with torch.no_grad():
            return self.nets["spade_generator"](self.warp["out"])


@pytest.fixture(scope="module", params=FIXTURES, ids=["small", "full"])
def chain(request) -> Chain:
    return Chain(request.param)


@pytest.mark.parity
def test_liveportrait_fill_checksum_parity(chain: Chain) -> None:
    """Our key names and fill give the fixture's per-key (sum, L2): the weights really are the reference's."""
    meta = chain.fx.meta
    for name, net in chain.nets.items():
        got = fill_rule().checksum(net.state_dict())
        want = meta["fill_checksum"][name]
        assert set(want) <= set(got), f"{name}: keys missing from our state dict"
        for key, (s, l2) in want.items():
            tol = 1e-6 * max(1.0, abs(s), l2)
            assert abs(got[key][0] - s) <= tol, f"{name}.{key}: sum {got[key][0]} vs {s}"
            assert abs(got[key][1] - l2) <= tol, f"{name}.{key}: L2 {got[key][1]} vs {l2}"


@pytest.mark.parity
def test_liveportrait_motion_extractor_parity(chain: Chain) -> None:
    fx = chain.fx
    raw = chain.motion
    assert set(raw) == {"pitch", "yaw", "roll", "t", "exp", "scale", "kp"}
    for key, value in raw.items():
        assert_close(value, fx[f"M.out.{key}"], atol=ATOL_M_RAW, name=f"M.out.{key}")
    info = keypoint_info_from_heads(raw)
    for key in ("pitch", "yaw", "roll"):
        assert_close(getattr(info, key), fx[f"M.info.{key}"], atol=ATOL_M_ANGLES, name=f"M.info.{key}")
    for key in ("t", "exp", "scale", "kp"):
        assert_close(getattr(info, key), fx[f"M.info.{key}"], atol=ATOL_M_INFO, name=f"M.info.{key}")
    assert_close(info.R, fx["M.R_s"], atol=ATOL_M_INFO, name="M.R_s")
    assert_close(info.transformed(), fx["M.x_s"], atol=ATOL_M_INFO, name="M.x_s")


@pytest.mark.parity
def test_liveportrait_appearance_parity(chain: Chain) -> None:
    fx = chain.fx
    f = chain.feature
    if "F.out" in fx:
        assert_close(f, fx["F.out"], atol=ATOL_F, name="F.out")
    else:
        assert_close(f[:, :, ::2, ::4, ::4], fx["F.out_slice"], atol=ATOL_F, name="F.out_slice")
    assert_stats(f, fx["F.out_stats"], rtol=RTOL_STATS, name="F.out")


@pytest.mark.parity
def test_liveportrait_warping_parity(chain: Chain) -> None:
    fx = chain.fx
    w = chain.warp
    assert_close(w["occlusion_map"], fx["W.occlusion_map"], atol=ATOL_OCCLUSION, name="W.occlusion_map")
    if "W.deformation" in fx:
        assert_close(w["deformation"], fx["W.deformation"], atol=ATOL_DEFORMATION, name="W.deformation")
    else:
        assert_close(
            w["deformation"][:, ::2, ::4, ::4, :],
            fx["W.deformation_slice"],
            atol=ATOL_DEFORMATION,
            name="W.deformation_slice",
        )
    if "W.out" in fx:
        assert_close(w["out"], fx["W.out"], atol=ATOL_W_OUT, name="W.out")
    else:
        assert_close(w["out"][:, ::4, ::4, ::4], fx["W.out_slice"], atol=ATOL_W_OUT, name="W.out_slice")
    assert_stats(w["deformation"], fx["W.deformation_stats"], rtol=RTOL_STATS, name="W.deformation")
    assert_stats(w["out"], fx["W.out_stats"], rtol=RTOL_STATS, name="W.out")


@pytest.mark.parity
def test_liveportrait_spade_parity(chain: Chain) -> None:
    """G chained from the image; and, where the fixture keeps the whole W output, G on exactly that input."""
    fx = chain.fx
    assert_close(chain.image_out, fx["G.out"], atol=ATOL_G_CHAINED, name="G.out (chained)")
    assert_stats(chain.image_out, fx["G.out_stats"], rtol=RTOL_STATS, name="G.out")
    if "W.out" in fx:
        with torch.no_grad():
            g = chain.nets["spade_generator"](fx["W.out"])
        assert_close(g, fx["G.out"], atol=ATOL_G_STORED, name="G.out (stored W.out)")


@pytest.mark.parity
def test_liveportrait_stitching_parity(chain: Chain) -> None:
    fx = chain.fx
    s = chain.nets["stitching_retargeting_module"]
    with torch.no_grad():
        assert_close(
            s.stitch(fx["S.in.x_s"], fx["S.in.x_d"]), fx["S.out.stitch_delta"], atol=ATOL_MLP, name="S.out.stitch_delta"
        )
        assert_close(
            apply_stitching(fx["S.in.x_s"], fx["S.in.x_d"], s),
            fx["S.out.x_d_stitched"],
            atol=ATOL_MLP,
            name="S.out.x_d_stitched",
        )
        assert_close(
            s.lip(fx["S.in.x_s"], fx["S.in.lip_ratio"]), fx["S.out.lip_delta"], atol=ATOL_MLP, name="S.out.lip_delta"
        )
        assert_close(
            s.eye(fx["S.in.x_s"], fx["S.in.eye_ratio"]), fx["S.out.eye_delta"], atol=ATOL_MLP, name="S.out.eye_delta"
        )
        assert_close(
            s.lip(fx["M.x_s"], fx["kp.b.lip_ratio"]), fx["kp.b.lip_delta"], atol=ATOL_MLP, name="kp.b.lip_delta"
        )


@pytest.fixture(scope="module")
def small_chain() -> Chain:
    return Chain(FIXTURES[0])


def test_liveportrait_warping_batched_frames_match_single(small_chain: Chain) -> None:
    """B frames against one shared (batch-1) source feature equal B separate calls; so do an expanded feature
    (collapsed to one source internally) and a real per-frame copy of the feature."""
    fx = small_chain.fx
    w = small_chain.nets["warping_module"]
    kp_d = torch.cat([fx["kp.a.x_d"][-1:], fx["kp.b.x_d"][-1:]])
    with torch.no_grad():
        batched = w(small_chain.feature, kp_source=fx["M.x_s"], kp_driving=kp_d)
        expanded = w(small_chain.feature.expand(len(kp_d), -1, -1, -1, -1), kp_source=fx["M.x_s"], kp_driving=kp_d)
        repeated = w(small_chain.feature.repeat(len(kp_d), 1, 1, 1, 1), kp_source=fx["M.x_s"], kp_driving=kp_d)
        for i in range(len(kp_d)):
            single = w(small_chain.feature, kp_source=fx["M.x_s"], kp_driving=kp_d[i : i + 1])
            for key in ("occlusion_map", "deformation", "out"):
                assert_close(batched[key][i : i + 1], single[key], atol=1e-5, name=f"batched {key}[{i}]")
                assert_close(expanded[key][i : i + 1], single[key], atol=1e-5, name=f"expanded {key}[{i}]")
                assert_close(repeated[key][i : i + 1], single[key], atol=1e-5, name=f"repeated {key}[{i}]")
    # The two frames really differ, so the comparison above is not trivially true.
    assert float((batched["out"][0] - batched["out"][-1]).abs().max()) > 1e-3


def test_liveportrait_spectral_norm_folded_once_and_refreshed_on_load() -> None:
    """The folded weight is cached across calls and recomputed from the new u, v, W_orig after a state-dict load."""
    torch.manual_seed(0)
    conv = SpectralNormConv2d(4, 6, 3, padding=1)
    x = torch.randn(1, 4, 5, 5)
    conv(x)
    first = conv.weight
    conv(x)
    assert conv.weight is first
    sd = {k: v.clone() for k, v in conv.state_dict().items()}
    sd["weight_orig"] = sd["weight_orig"] * 2 + 0.1
    v = sd["weight_orig"].reshape(6, -1).T @ sd["weight_u"]
    sd["weight_v"] = v / v.norm()
    conv.load_state_dict(sd)
    w = sd["weight_orig"]
    sigma = torch.dot(sd["weight_u"], w.reshape(6, -1) @ sd["weight_v"])
    assert_close(conv.weight, w / sigma, atol=1e-6, name="refolded weight")
    assert float((conv.weight - first).abs().max()) > 1e-2
    assert_close(conv(x), torch.nn.functional.conv2d(x, w / sigma, sd["bias"], padding=1), atol=1e-5, name="conv")
