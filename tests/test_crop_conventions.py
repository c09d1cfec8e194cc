"""Crop options and the other landmark conventions (478-point mesh, 203, 5 points) and their eye/lip ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fixture_support import load_fixture

from joyvasa_core.errors import FaceInputError
from joyvasa_core.face.crop import CropConfig, anchor_points, crop_face, rect_from_landmarks
from joyvasa_core.face.mask import mask_template
from joyvasa_core.face.ratios import eye_ratio, face_ratios, lip_ratio


def _fx():
    return load_fixture("crop.safetensors")


def _cfg(**kw) -> CropConfig:
    p = _fx().meta["params"]
    base = dict(dsize=p["dsize"], scale=p["scale"], vx_ratio=p["vx_ratio"], vy_ratio=p["vy_ratio"],
                rotate=p["flag_do_rot"])
    base.update(kw)
    return CropConfig(**base)


def test_crop_without_rotation_and_with_offsets():
    fx = _fx()
    img, lmk = fx["in.image"].numpy(), fx["in.lmk106"].numpy()
    rot = crop_face(img, lmk, "lmk106", _cfg())
    flat = crop_face(img, lmk, "lmk106", _cfg(rotate=False))
    assert flat.M_o2c[0, 1] == 0 and flat.M_o2c[1, 0] == 0 and flat.rect[3] == 0
    np.testing.assert_allclose(flat.rect[:3], rot.rect[:3], atol=1e-4)
    centre = flat.M_c2o[:2] @ np.array([flat.dsize / 2, flat.dsize / 2, 1.0])
    np.testing.assert_allclose(centre, rot.rect[:2], atol=1e-3)
    moved = crop_face(img, lmk, "lmk106", _cfg(vx_ratio=0.1))
    angle, size = rot.rect[3], rot.rect[2]
    ux = np.array([math.cos(angle), math.sin(angle)])  # the crop's x axis in the image
    np.testing.assert_allclose(moved.rect[:2] - rot.rect[:2], 0.1 * size * ux, atol=1e-3)
    bigger = crop_face(img, lmk, "lmk106", _cfg(scale=2 * _fx().meta["params"]["scale"]))
    assert bigger.rect[2] == pytest.approx(2 * rot.rect[2], rel=1e-5)


def test_crop_mediapipe_478_and_5_point_conventions():
    fx = _fx()
    img, mesh, lmk = fx["in.image"].numpy(), fx["in.mp478"].numpy(), fx["in.lmk106"].numpy()
    a478 = anchor_points(mesh, "mp478")
    np.testing.assert_allclose(a478[0], (mesh[468] + mesh[473]) / 2, atol=1e-5)
    np.testing.assert_allclose(a478[1], mesh[14], atol=1e-5)
    c106, s106, ang106 = rect_from_landmarks(lmk, "lmk106")
    c478, s478, ang478 = rect_from_landmarks(mesh, "mp478")
    # Same face, different point clouds: close, not equal (the mesh covers the forehead).
    assert abs(ang478 - ang106) < 0.05 and 0.8 < s478 / s106 < 1.4
    assert np.linalg.norm(c478 - c106) < 0.15 * s106
    five = np.stack([mesh[468], mesh[473], mesh[1], mesh[61], mesh[291]])
    crop5 = crop_face(img, five, "lmk5", _cfg(scale=6.0))
    assert crop5.crop256.shape == (256, 256, 3) and crop5.pt_crop.shape == (5, 2)
    with pytest.raises(FaceInputError, match="need 106 points"):
        crop_face(img, mesh, "lmk106")
    with pytest.raises(FaceInputError, match="unknown landmark convention"):
        crop_face(img, lmk, "lmk107")


def test_crop_ratios_203_formula_and_equivalents():
    pts = np.zeros((203, 2), np.float32)
    pts[0], pts[12], pts[6], pts[18] = (0, 0), (10, 0), (5, -2), (5, 1)  # eye A: opening 3 over width 10
    pts[24], pts[36], pts[30], pts[42] = (20, 0), (28, 0), (24, -1), (24, 1)  # eye B: 2 over 8
    pts[48], pts[66], pts[90], pts[102] = (0, 20), (20, 20), (10, 19), (10, 22)  # lips: 3 over 20
    np.testing.assert_allclose(eye_ratio(pts), [0.3, 0.25], rtol=1e-5)
    np.testing.assert_allclose(lip_ratio(pts), [0.15], rtol=1e-5)
    batch = np.stack([pts, pts * 2])
    assert eye_ratio(batch).shape == (2, 2) and lip_ratio(batch).shape == (2, 1)
    fx = _fx()
    r478 = face_ratios(fx["in.mp478"].numpy(), "mp478")
    r106 = face_ratios(fx["in.lmk106"].numpy(), "lmk106")
    assert r478.lip is not None and 0.0 < r478.lip < 1.0 and r106.lip is None
    assert abs(r478.eye_left - r106.eye_left) < 0.05 and abs(r478.eye_right - r106.eye_right) < 0.05
    assert face_ratios(np.zeros((5, 2)), "lmk5").eye_left is None


def test_crop_mask_template_other_size():
    m = mask_template(256)
    assert m.shape == (256, 256, 3) and not m.flags.writeable
    assert m[128, 128, 0] == 255 and m[0, 0, 0] == 0 and m[0, 128, 0] == 0 and m[4, 128, 0] == 127
    np.testing.assert_array_equal(m, m.transpose(1, 0, 2))  # same fall-off on rows and columns
