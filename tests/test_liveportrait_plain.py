"""The plain forward (``liveportrait/plain.py``, the reference's order) and the fast forwards compute the same W and G.

On the reduced-width fixture's weights and inputs; tolerances are the fixture README's LivePortrait ones (the plain
form is the reference's order of operations, so the fast path must be as close to it as to the reference).
"""

from __future__ import annotations

import torch
from fixture_support import fill_module, load_fixture

from joyvasa_core.liveportrait import LivePortraitConfig, build_networks
from joyvasa_core.liveportrait.plain import generate_plain, render_plain, warp_plain

# README "Tolerances / LivePortrait"
ATOL_W_OUT = 1e-4
ATOL_G_STORED = 5e-5
ATOL_G_CHAINED = 5e-4


def test_plain_and_fast_forwards_agree() -> None:
    fx = load_fixture("liveportrait_small.safetensors")
    meta = fx.meta
    nets = build_networks(LivePortraitConfig.from_dict(meta["config"]))
    for key, net in nets.items():
        fill_module(net, meta["fill"]["seed"], meta["fill"]["skip"][key], meta["state_dict"][key])
    image = fx["src.img256"].permute(2, 0, 1)[None].float() / 255.0
    i = int(meta["warp_frame_index"])
    x_s, x_d = fx["M.x_s"], fx["kp.b.x_d"][i : i + 1]  # the frame the fixture's W ran on
    warping, spade = nets["warping_module"], nets["spade_generator"]
    with torch.no_grad():
        feature = nets["appearance_feature_extractor"](image)
        fast_w = warping(feature, kp_source=x_s, kp_driving=x_d)["out"]
        plain_w = warp_plain(warping, feature, x_s, x_d)
        torch.testing.assert_close(fast_w, plain_w, rtol=0, atol=ATOL_W_OUT)
        assert float(plain_w.abs().max()) > 1e-3, "W's output must not be trivially zero"
        torch.testing.assert_close(spade(plain_w), generate_plain(spade, plain_w), rtol=0, atol=ATOL_G_STORED)
        frames = render_plain(warping, spade, feature, x_s, x_d)
        fast = spade(fast_w).permute(0, 2, 3, 1)
    assert frames.shape == fast.shape == (1, 512, 512, 3)
    torch.testing.assert_close(fast, frames, rtol=0, atol=ATOL_G_CHAINED)
