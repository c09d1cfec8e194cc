"""LivePortrait keypoint maths against the chained-run fixtures, plus batching and convex-hull checks.

Every config value, flag, ratio and frame index comes from the fixture (metadata or stored inputs).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from fixture_support import assert_close, fill_module, load_fixture
from keypoint_support import frames_from_angles, options_from_flags

from joyvasa_core.keypoints import (
    LIP_KEYPOINTS,
    KeypointComposer,
    KeypointInfo,
    KeypointOptions,
    MotionFrames,
    apply_driving_multiplier,
    apply_motion_multiplier,
    apply_stitching,
    compose_relative,
    convex_hull_volume,
    eye_retarget_delta,
    headpose_to_degrees,
    hull_motion_multiplier,
    keypoint_info_from_heads,
    lip_retarget_delta,
    rotation_matrix,
)
from joyvasa_core.liveportrait import LivePortraitConfig
from joyvasa_core.liveportrait.stitching import StitchingRetargetingNetwork

FILES = ["liveportrait_small.safetensors", "liveportrait_full.safetensors"]
S_SLOT = "stitching_retargeting_module"

# Fixture README tolerances (LivePortrait table).
ATOL_ANGLES = 2e-4  # M.info.pitch/yaw/roll
ATOL_M_INFO = 3e-5  # M.info.{t,exp,scale,kp}, M.R_s, M.x_s
ATOL_KP = 5e-5  # kp.* except the multiplier, S.in.x_d
ATOL_MULT = 1e-5  # kp.b.motion_multiplier
ATOL_MLP = 1e-5  # S.out.*, kp.b.lip_delta


def _heads(f) -> dict[str, torch.Tensor]:
    return {k.removeprefix("M.out."): f[k] for k in f.keys() if k.startswith("M.out.")}


def _source_from_fixture(f) -> KeypointInfo:
    """The source info exactly as the reference stored it (composition tests use it alone, not our M maths)."""
    return KeypointInfo(
        kp=f["M.info.kp"], exp=f["M.info.exp"], scale=f["M.info.scale"], t=f["M.info.t"],
        pitch=f["M.info.pitch"], yaw=f["M.info.yaw"], roll=f["M.info.roll"], R=f["M.R_s"],
    )


def _frames(f, prefix: str) -> MotionFrames:
    return MotionFrames(f[prefix + "exp"], f[prefix + "scale"], f[prefix + "t"], f[prefix + "R"])


def _stitching_network(f) -> StitchingRetargetingNetwork:
    meta = f.meta
    cfg = LivePortraitConfig.from_dict(meta["config"]).stitching
    net = StitchingRetargetingNetwork(cfg)
    return fill_module(net, meta["fill"]["seed"], meta["fill"]["skip"][S_SLOT], meta["state_dict"][S_SLOT])


_NETS: dict[str, StitchingRetargetingNetwork] = {}


def _net(name: str) -> StitchingRetargetingNetwork:
    if name not in _NETS:
        _NETS[name] = _stitching_network(load_fixture(name))
    return _NETS[name]


def _recipe_b(f, net) -> KeypointComposer:
    options = options_from_flags(f.meta["recipe_b"])
    c_s, c_d = (float(v) for v in f["kp.b.lip_ratio"][0])
    assert c_d == pytest.approx(options.lip_normalize_target), "recipe_b metadata and kp.b.lip_ratio disagree on c_d"
    return KeypointComposer(_source_from_fixture(f), _frames(f, "drv.ref."), options, net, source_lip_ratio=c_s)


@pytest.mark.parity
@pytest.mark.parametrize("name", FILES)
def test_liveportrait_keypoint_info_parity(name):
    """Raw M heads -> degrees (softmax expectation), reshaped kp/exp, R_s and x_s."""
    f = load_fixture(name)
    info = keypoint_info_from_heads(_heads(f))
    for k in ("pitch", "yaw", "roll"):
        assert_close(getattr(info, k), f[f"M.info.{k}"], ATOL_ANGLES, name=f"M.info.{k}")
    for k in ("kp", "exp", "t", "scale"):
        assert_close(getattr(info, k), f[f"M.info.{k}"], ATOL_M_INFO, name=f"M.info.{k}")
    assert_close(info.R, f["M.R_s"], ATOL_M_INFO, name="M.R_s")
    assert_close(info.transformed(), f["M.x_s"], ATOL_M_INFO, name="M.x_s")


@pytest.mark.parity
@pytest.mark.parametrize("name", FILES)
def test_liveportrait_composition_parity(name):
    """R_new, delta (with the absolute lip rows), scale, t (t_z = 0) and x_d from the stored source and motion."""
    f = load_fixture(name)
    drv = frames_from_angles(f["drv.exp"], f["drv.scale"], f["drv.t"], f["drv.pitch"], f["drv.yaw"],
                                   f["drv.roll"])
    ref = frames_from_angles(f["drv.ref.exp"], f["drv.ref.scale"], f["drv.ref.t"], f["drv.ref.pitch"],
                                   f["drv.ref.yaw"], f["drv.ref.roll"])
    assert_close(drv.R, f["drv.R"], ATOL_KP, name="drv.R")
    assert_close(ref.R, f["drv.ref.R"], ATOL_KP, name="drv.ref.R")
    src = _source_from_fixture(f)
    c = compose_relative(src, _frames(f, "drv."), _frames(f, "drv.ref."), f.meta["recipe_b"]["animation_region"])
    assert_close(c.R, f["kp.R_new"], ATOL_KP, name="kp.R_new")
    assert_close(c.delta, f["kp.delta_new"], ATOL_KP, name="kp.delta_new")
    assert_close(c.scale, f["kp.scale_new"], ATOL_KP, name="kp.scale_new")
    assert_close(c.t, f["kp.t_new"], ATOL_KP, name="kp.t_new")
    assert_close(c.x_d, f["kp.x_d_composed"], ATOL_KP, name="kp.x_d_composed")
    c0 = compose_relative(src, _frames(f, "drv.ref."), _frames(f, "drv.ref."))
    assert_close(c0.x_d, f["kp.ref.x_d_composed"], ATOL_KP, name="kp.ref.x_d_composed")


@pytest.mark.parity
@pytest.mark.parametrize("name", FILES)
def test_liveportrait_recipe_a_parity(name):
    """CLI default: composition then the driving multiplier, nothing else."""
    f = load_fixture(name)
    options = options_from_flags(f.meta["recipe_a"])
    composer = KeypointComposer(_source_from_fixture(f), _frames(f, "drv.ref."), options,
                                _net(name) if options.stitching else None)
    out = composer(_frames(f, "drv."))
    assert_close(out.x_d, f["kp.a.x_d"], ATOL_KP, name="kp.a.x_d")


@pytest.mark.parity
@pytest.mark.parametrize("name", FILES)
def test_liveportrait_recipe_b_parity(name):
    """Gradio default: hull multiplier, stitching with the shared (tx, ty), lip-normalisation delta."""
    f = load_fixture(name)
    composer = _recipe_b(f, _net(name))
    assert composer.motion_multiplier is not None
    assert_close(composer.motion_multiplier, f["kp.b.motion_multiplier"].reshape(1), ATOL_MULT,
                 name="kp.b.motion_multiplier")
    assert composer.lip_delta is not None
    assert_close(composer.lip_delta, f["kp.b.lip_delta"], ATOL_MLP, name="kp.b.lip_delta")
    out = composer(_frames(f, "drv."))
    assert_close(out.composed.x_d, f["kp.x_d_composed"], ATOL_KP, name="kp.x_d_composed")
    assert_close(out.x_pre_stitch, f["kp.b.x_d_pre_stitch"], ATOL_KP, name="kp.b.x_d_pre_stitch")
    assert_close(out.x_d, f["kp.b.x_d"], ATOL_KP, name="kp.b.x_d")
    warp = f.meta["warp_frame_index"]
    assert_close(out.x_pre_stitch[warp: warp + 1], f["S.in.x_d"], ATOL_KP, name="S.in.x_d")


@pytest.mark.parity
@pytest.mark.parametrize("name", FILES)
def test_liveportrait_recipe_b_from_heads_parity(name):
    """The whole keypoint chain from M's raw heads (our degrees and R feed the composition)."""
    f = load_fixture(name)
    composer = KeypointComposer(keypoint_info_from_heads(_heads(f)), _frames(f, "drv.ref."),
                                options_from_flags(f.meta["recipe_b"]), _net(name),
                                source_lip_ratio=float(f["kp.b.lip_ratio"][0, 0]))
    assert_close(composer.x_s, f["M.x_s"], ATOL_M_INFO, name="M.x_s")
    assert_close(composer(_frames(f, "drv.")).x_d, f["kp.b.x_d"], ATOL_KP, name="kp.b.x_d")


@pytest.mark.parity
@pytest.mark.parametrize("name", FILES)
def test_liveportrait_stitching_retargeting_parity(name):
    """The three MLPs on the stored inputs, and stitching applied with the shared (tx, ty)."""
    f = load_fixture(name)
    net = _net(name)
    with torch.no_grad():
        delta = net.stitch(f["S.in.x_s"], f["S.in.x_d"])
        assert_close(delta, f["S.out.stitch_delta"], ATOL_MLP, name="S.out.stitch_delta")
        stitched = apply_stitching(f["S.in.x_s"], f["S.in.x_d"], delta)
        assert_close(stitched, f["S.out.x_d_stitched"], ATOL_MLP, name="S.out.x_d_stitched")
        assert_close(apply_stitching(f["S.in.x_s"], f["S.in.x_d"], net), f["S.out.x_d_stitched"], ATOL_MLP,
                     name="S.out.x_d_stitched (network)")
        lip = lip_retarget_delta(net, f["S.in.x_s"], f["S.in.lip_ratio"])
        assert_close(lip, f["S.out.lip_delta"], ATOL_MLP, name="S.out.lip_delta")
        eye = eye_retarget_delta(net, f["S.in.x_s"], f["S.in.eye_ratio"])
        assert_close(eye, f["S.out.eye_delta"], ATOL_MLP, name="S.out.eye_delta")


def test_liveportrait_stitching_shares_one_translation():
    """Only the per-keypoint block moves keypoints individually; (tx, ty) moves all of them the same way."""
    x = torch.randn(3, 21, 3, generator=torch.Generator().manual_seed(1))
    delta = torch.zeros(3, 65)
    delta[:, 63] = torch.tensor([0.5, -1.0, 2.0])
    delta[:, 64] = 0.25
    out = apply_stitching(x[:1], x, delta)
    assert torch.equal(out[..., 2], x[..., 2])
    assert_close(out[..., 0] - x[..., 0], delta[:, 63:64].expand(3, 21), 1e-6, name="tx")
    assert_close(out[..., 1] - x[..., 1], torch.full((3, 21), 0.25), 1e-6, name="ty")


def _perturbed(info: KeypointInfo, seed: int) -> KeypointInfo:
    g = torch.Generator().manual_seed(seed)
    pitch, yaw, roll = (a + 5 * torch.randn(a.shape, generator=g) for a in (info.pitch, info.yaw, info.roll))
    return KeypointInfo(
        kp=info.kp + 0.1 * torch.randn(info.kp.shape, generator=g), exp=info.exp, scale=info.scale * 1.1,
        t=info.t + 0.05, pitch=pitch, yaw=yaw, roll=roll, R=rotation_matrix(pitch, yaw, roll),
    )


def _cat_info(a: KeypointInfo, b: KeypointInfo) -> KeypointInfo:
    return KeypointInfo(**{k: torch.cat([getattr(a, k), getattr(b, k)]) for k in a.__dict__})


def _cat_frames(a: MotionFrames, b: MotionFrames) -> MotionFrames:
    return MotionFrames(*(torch.cat([getattr(a, k), getattr(b, k)]) for k in ("exp", "scale", "t", "R")))


def test_liveportrait_keypoints_batched_equals_per_item():
    """B > 1 sources, each with its own reference and frame, equal the batch-1 results item by item."""
    f = load_fixture(FILES[0])
    net = _net(FILES[0])
    src0 = _source_from_fixture(f)
    src1 = _perturbed(src0, 3)
    drv, ref = _frames(f, "drv."), _frames(f, "drv.ref.")
    options = options_from_flags(f.meta["recipe_b"])
    c_s = float(f["kp.b.lip_ratio"][0, 0])
    n = len(drv)
    batched = KeypointComposer(_cat_info(src0, src1), _cat_frames(ref, drv[0]), options, net,
                               source_lip_ratio=torch.tensor([c_s, c_s]))
    out = batched(_cat_frames(drv[n - 1], drv[n - 1]))
    singles = [
        KeypointComposer(src0, ref, options, net, source_lip_ratio=c_s)(drv[n - 1]),
        KeypointComposer(src1, drv[0], options, net, source_lip_ratio=c_s)(drv[n - 1]),
    ]
    assert batched.motion_multiplier is not None and batched.motion_multiplier.shape == (2,)
    # x_d passes the stitching/lip MLPs, whose CPU kernels round differently with the batch size: README MLP atol.
    for i, single in enumerate(singles):
        assert_close(out.x_d[i: i + 1], single.x_d, ATOL_MLP, name=f"batched item {i}")
        assert_close(out.composed.R[i: i + 1], single.composed.R, 1e-6, name=f"batched R item {i}")
    # One source, many frames: a window at once equals frame by frame.
    composer = KeypointComposer(src0, ref, options, net, source_lip_ratio=c_s)
    window = composer(drv)
    for i in range(n):
        assert_close(window.x_d[i: i + 1], composer(drv[i]).x_d, ATOL_MLP, name=f"frame {i}")


def test_liveportrait_pose_maths_batched():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 66, generator=g) * 3
    deg = headpose_to_degrees(logits)
    assert deg.shape == (4, 1)
    for i in range(4):
        assert_close(deg[i: i + 1], headpose_to_degrees(logits[i: i + 1]), 1e-6, name="degrees")
    assert torch.equal(headpose_to_degrees(deg), deg), "degrees must pass through unchanged"
    # A one-hot at bin k gives 3k - 97.5 (expectation, not argmax: check a two-bin mix too).
    onehot = torch.full((2, 66), -1e4)
    onehot[0, 10] = 0
    onehot[1, 10] = onehot[1, 11] = 0
    assert_close(headpose_to_degrees(onehot), torch.tensor([[-67.5], [-66.0]]), 1e-4, name="bins")
    pitch, yaw, roll = (torch.randn(4, 1, generator=g) * 30 for _ in range(3))
    R = rotation_matrix(pitch, yaw, roll)
    assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(4, 3, 3), 1e-6, name="orthonormal")
    for i in range(4):
        assert_close(R[i: i + 1], rotation_matrix(pitch[i], yaw[i], roll[i]), 1e-7, name="per item")
    # Pure yaw of +90 degrees: x @ R maps the x axis to +z under R = (Rz Ry Rx)^T.
    r = rotation_matrix(torch.zeros(1), torch.full((1,), 90.0), torch.zeros(1))
    assert_close(torch.tensor([[1.0, 0, 0]]) @ r[0], torch.tensor([[0.0, 0, -1]]), 1e-6, name="yaw axis")


def test_liveportrait_multiplier_helpers():
    x_s = torch.randn(1, 21, 3, generator=torch.Generator().manual_seed(2))
    x_d = x_s + 0.1
    assert_close(apply_driving_multiplier(x_d, x_s, 1.5), x_s + 0.15, 1e-6, name="driving multiplier")
    assert torch.equal(apply_motion_multiplier(x_s, x_s, x_s, 2.0), x_s), "frame 0 must map to x_s"
    # A copy scaled by 2 has 8x the volume, so its multiplier is sqrt(1/8).
    m = hull_motion_multiplier(x_s, 2 * x_s)
    assert float(m[0]) == pytest.approx(8 ** -0.5, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# Convex hull volume


def _brute_force_hull_volume(p: np.ndarray) -> float:
    """Every triple whose plane has all points on one side is a hull facet (points in general position)."""
    centre = p.mean(axis=0)
    vol = 0.0
    for i, j, k in itertools.combinations(range(len(p)), 3):
        n = np.cross(p[j] - p[i], p[k] - p[i])
        s = (p - p[i]) @ n
        others = np.delete(s, [i, j, k])
        if (others <= 1e-12).all() or (others >= -1e-12).all():
            vol += abs(np.linalg.det(np.stack([p[i] - centre, p[j] - centre, p[k] - centre]))) / 6
    return vol


def test_liveportrait_hull_volume_known_solids():
    cube = np.array(list(itertools.product([0.0, 2.0], repeat=3)))
    assert convex_hull_volume(cube) == pytest.approx(8.0, rel=1e-12)
    # Face centres, edge midpoints and interior points are coplanar/inside: the volume must not change.
    extra = np.array([[1, 1, 0], [1, 1, 2], [0, 1, 1], [1, 0, 0], [2, 2, 1], [1, 1, 1], [0.5, 0.5, 0.5]], float)
    mixed = np.concatenate([extra[:3], cube, extra[3:]])
    assert convex_hull_volume(mixed) == pytest.approx(8.0, rel=1e-12)
    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    assert convex_hull_volume(tet) == pytest.approx(1 / 6, rel=1e-12)
    octa = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    assert convex_hull_volume(octa) == pytest.approx(4 / 3, rel=1e-12)
    flat = np.random.default_rng(0).normal(size=(21, 3))
    flat[:, 2] = 0.3
    assert convex_hull_volume(flat) == 0.0
    assert convex_hull_volume(np.zeros((21, 3))) == 0.0


def test_liveportrait_hull_volume_random_vs_brute_force():
    rng = np.random.default_rng(1234)
    for trial in range(20):
        p = rng.normal(size=(21, 3)) * rng.uniform(0.1, 5.0, size=3)
        ref = _brute_force_hull_volume(p)
        assert convex_hull_volume(p) == pytest.approx(ref, rel=1e-10), f"trial {trial}"
        # Invariant under point order, rotation and translation.
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        moved = p[rng.permutation(21)] @ q + rng.normal(size=3) * 10
        assert convex_hull_volume(moved) == pytest.approx(ref, rel=1e-9), f"trial {trial} moved"
    # Torch float32 input (what x_s is) is widened to float64 first.
    t = torch.tensor(rng.normal(size=(21, 3)), dtype=torch.float32)
    assert convex_hull_volume(t) == pytest.approx(_brute_force_hull_volume(t.double().numpy()), rel=1e-12)


def test_liveportrait_keypoint_options_presets():
    cli = KeypointOptions.cli()
    assert (cli.relative_adjustments, cli.stitching, cli.normalize_lip, cli.driving_multiplier) == (False, False, False,
                                                                                              1.1)
    assert not cli.uses_hull_multiplier
    gradio = KeypointOptions.web()
    assert gradio.uses_hull_multiplier and gradio.stitching and gradio.normalize_lip
    assert gradio.driving_multiplier == 1.0
    animal = KeypointOptions.animal()
    assert animal.uses_hull_multiplier and not animal.lip_absolute and not animal.relative_scale
    assert options_from_flags({"driving_option": "pose-friendly"}).uses_hull_multiplier is False
    with pytest.raises(ValueError, match="animation_region"):
        KeypointOptions(animation_region="mouth")
    with pytest.raises(ValueError, match="stitching network"):
        KeypointComposer(_source_from_fixture(load_fixture(FILES[0])), _frames(load_fixture(FILES[0]), "drv.ref."),
                         gradio, None)


def test_liveportrait_animal_composition_keeps_scale_and_lip_relative():
    f = load_fixture(FILES[0])
    src, drv, ref = _source_from_fixture(f), _frames(f, "drv."), _frames(f, "drv.ref.")
    c = compose_relative(src, drv, ref, lip_absolute=False, relative_scale=False)
    assert torch.equal(c.scale, src.scale.expand(len(drv), 1))
    assert_close(c.delta, src.exp + (drv.exp - ref.exp), 1e-7, name="relative exp everywhere")
    human = compose_relative(src, drv, ref)
    assert torch.equal(human.delta[:, 6], drv.exp[:, 6]), "human mode takes lip rows absolute"


def test_liveportrait_animation_regions():
    f = load_fixture(FILES[0])
    src, drv, ref = _source_from_fixture(f), _frames(f, "drv."), _frames(f, "drv.ref.")
    n = len(drv)
    pose = compose_relative(src, drv, ref, "pose")
    assert torch.equal(pose.delta, src.exp.expand(n, -1, -1))
    assert_close(pose.R, (drv.R @ ref.R.transpose(1, 2)) @ src.R, 1e-7, name="pose R")
    exp_only = compose_relative(src, drv, ref, "exp")
    assert torch.equal(exp_only.R, src.R.expand(n, 3, 3))
    lip = compose_relative(src, drv, ref, "lip")
    rows = list(LIP_KEYPOINTS)
    others = [k for k in range(src.exp.shape[1]) if k not in rows]
    assert torch.equal(lip.delta[:, others], src.exp.expand(n, -1, -1)[:, others])
    assert_close(lip.delta[:, rows], (src.exp + (drv.exp - ref.exp))[:, rows], 1e-7, name="lip rows")
    for region in ("pose", "exp", "lip", "eyes"):
        c = compose_relative(src, drv, ref, region)
        assert_close(c.scale, src.scale * (drv.scale / ref.scale), 1e-7, name=f"{region} scale")
        assert torch.equal(c.t[:, 2], torch.zeros(n))


def test_eye_retargeting_adds_its_delta_once():
    """With eye retargeting on, the retargeting MLP's offset is added once (blinks add theirs separately)."""
    name = FILES[0]
    f, net = load_fixture(name), _net(name)
    flags = dict(relative_adjustments=False, driving_option="pose-friendly", stitching=False, normalize_lip=False)
    source, ref, drv = _source_from_fixture(f), _frames(f, "drv.ref."), _frames(f, "drv.")
    eye_s = torch.tensor([[0.31, 0.29]])
    on = KeypointComposer(source, ref, KeypointOptions(eye_retargeting=True, **flags), net, source_eye_ratio=eye_s)
    off = KeypointComposer(source, ref, KeypointOptions(**flags), net, source_eye_ratio=eye_s)
    n = drv.exp.shape[0]
    c_d = torch.full((n,), 0.05)
    moved = on(drv, eye_ratio=c_d).x_d - off(drv).x_d
    expected = eye_retarget_delta(net, on.x_s.expand(n, -1, -1), torch.cat([eye_s.expand(n, 2), c_d[:, None]], 1))
    assert moved.abs().max() > 0
    assert_close(moved, expected.reshape(moved.shape), ATOL_KP, name="eye retargeting delta")
