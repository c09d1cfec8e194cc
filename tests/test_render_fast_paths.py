"""The CPU fp32 fast paths of the render: Winograd F(4x4, 3x3) for G's wide convolutions, and the dense-motion
heatmaps without subnormal values. Each is checked against float64 direct maths and for where it is used."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fixture_support import fill_module, load_fixture

from joyvasa_core.liveportrait import LivePortraitConfig, build_networks, winograd
from joyvasa_core.liveportrait.blocks import make_coordinate_grid
from joyvasa_core.liveportrait.dense_motion import DenseMotionNetwork

FULL = "liveportrait_full.safetensors"
# The direct fp32 convolution itself is within about 2e-6 of float64 relative to the output's magnitude; Winograd
# F(4x4, 3x3) within about 1e-5.
REL_TOL = 2e-5


def _direct64(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return F.conv2d(x.double(), w.double(), None if b is None else b.double(), padding=1)


@pytest.mark.parametrize(
    ("n", "cin", "cout", "side", "bias"),
    [(1, 512, 512, 64, True), (2, 128, 1024, 16, False), (3, 96, 200, 12, True), (1, 256, 128, 8, True)],
)
def test_winograd_matches_direct_convolution(n: int, cin: int, cout: int, side: int, bias: bool) -> None:
    torch.manual_seed(cin + cout + side)
    x = torch.randn(n, cin, side, side).contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, 3, 3) / (9 * cin) ** 0.5
    b = torch.randn(cout) if bias else None
    out = winograd.conv3x3(x, w, b)
    ref = _direct64(x, w, b)
    assert out.shape == ref.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    err = float((out.double() - ref).abs().max())
    scale = float(ref.abs().max())
    assert err <= REL_TOL * scale, f"max |diff| {err:.3g} against output magnitude {scale:.3g}"
    # Not the direct result by accident: the rounding differs from oneDNN's.
    assert not torch.equal(out, F.conv2d(x, w, b, padding=1))


def test_winograd_bands_cover_the_map(monkeypatch: pytest.MonkeyPatch) -> None:
    """One tile row per band (the smallest budget) and one band for the whole map both give the convolution."""
    torch.manual_seed(3)
    x = torch.randn(2, 160, 16, 24)
    w = torch.randn(176, 160, 3, 3) / 36
    b = torch.randn(176)
    ref = _direct64(x, w, b)
    scale = float(ref.abs().max())
    for band in (1 << 30, 1):
        monkeypatch.setattr(winograd, "_BAND_ELEMENTS", band)
        err = float((winograd.conv3x3(x, w, b).double() - ref).abs().max())
        assert err <= REL_TOL * scale, f"band budget {band}: max |diff| {err:.3g} against {scale:.3g}"


def test_winograd_is_chosen_only_where_it_pays() -> None:
    x = torch.empty(1, 512, 64, 64)
    w = torch.empty(512, 512, 3, 3)
    assert winograd.pays(x, w, 1)
    assert not winograd.pays(x.bfloat16(), w.bfloat16(), 1)  # reduced precision: the hardware's own convolution
    assert not winograd.pays(x, w, 0)
    assert not winograd.pays(torch.empty(1, 512, 62, 64), w, 1)  # side not a multiple of 4
    assert not winograd.pays(torch.empty(1, 64, 256, 256), torch.empty(3, 64, 3, 3), 1)  # narrow: conv_img
    assert not winograd.pays(x, torch.empty(512, 512, 1, 1), 1)


def test_official_spade_runs_its_wide_convolutions_by_winograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the full-width fill-rule networks the middle blocks' convs, their SPADE gamma/beta and shared convs, and
    fc go this way, and G's image equals G with Winograd switched off within G's parity tolerance on a stored
    W output (5e-5)."""
    fx = load_fixture(FULL)
    meta = fx.meta
    nets = build_networks(LivePortraitConfig.from_dict(meta["config"]))
    for key in ("appearance_feature_extractor", "warping_module", "spade_generator"):
        fill_module(nets[key], meta["fill"]["seed"], meta["fill"]["skip"][key], meta["state_dict"][key])
    spade = nets["spade_generator"]
    image = fx["src.img256"].permute(2, 0, 1)[None].float() / 255.0
    calls = []
    real = winograd.conv3x3

    def counting(x, weight, bias):
        calls.append((tuple(weight.shape), x.shape[-1]))
        return real(x, weight, bias)

    with torch.inference_mode():
        feature = nets["appearance_feature_extractor"](image)
        warped = nets["warping_module"](feature, kp_source=fx["M.x_s"].float(), kp_driving=fx["kp.b.x_d"][:1].float())
        monkeypatch.setattr(winograd, "conv3x3", counting)
        fast = spade(warped["out"])
        monkeypatch.setattr(winograd, "pays", lambda *a: False)
        direct = spade(warped["out"])
    assert ((512, 512, 3, 3), 64) in calls and ((1024, 128, 3, 3), 64) in calls
    assert ((512, 256, 3, 3), 64) in calls  # fc
    # 6 middle blocks x (2 convs + 2 SPADEs x (shared, gamma/beta)) + fc + up_0's 2 convs and 3 gamma/betas
    # + up_1's 2 wide gamma/betas (its narrow convs, 256->64 and 64->64, and the 128->128 gamma/beta stay direct).
    assert len(calls) == 6 * 6 + 1 + 5 + 2
    diff = float((fast - direct).abs().max())
    assert 0 < diff <= 5e-5


def test_heatmaps_hold_no_subnormal_values() -> None:
    """Keypoints placed so that the Gaussians' tails fall through the subnormal range inside the volume."""
    dm = DenseMotionNetwork(num_kp=3)
    grid = make_coordinate_grid((16, 64, 64))
    kp_d = torch.tensor([[[0.9, 0.9, 0.9], [-0.9, 0.2, 0.0], [0.0, -0.95, 0.5]]])
    kp_s = kp_d + 0.05
    heat = dm.heatmaps(grid, kp_s, kp_d)
    tiny = torch.finfo(torch.float32).tiny
    assert int(((heat != 0) & (heat.abs() < tiny)).sum()) == 0
    # The same maths without the flush has them, and differs only there.
    var = dm.config.kp_variance

    def gaussian(kp: torch.Tensor) -> torch.Tensor:
        sub = grid.view(1, 1, 16, 64, 64, 3) - kp.view(1, 3, 1, 1, 1, 3)
        return torch.exp(-0.5 * (sub * sub).sum(-1) / var)

    raw = gaussian(kp_d) - gaussian(kp_s)
    subnormal = (raw != 0) & (raw.abs() < tiny)
    assert int(subnormal.sum()) > 1000
    torch.testing.assert_close(heat[:, 1:, 0][~subnormal], raw[~subnormal], rtol=0, atol=0)
