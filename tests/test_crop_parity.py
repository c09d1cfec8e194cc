"""Crop maths, resize and paste-back against the reference (crop.safetensors; README "Crop and paste-back")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixture_support import assert_close, load_fixture

from joyvasa_core.face.crop import ANCHORS, CropConfig, crop_face
from joyvasa_core.face.mask import mask_template
from joyvasa_core.face.pasteback import PasteBack, paste_back, prepare_paste_back

pytestmark = pytest.mark.parity


def _fx():
    return load_fixture("crop.safetensors")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.numpy()


def _config(meta: dict) -> CropConfig:
    p = meta["params"]
    return CropConfig(dsize=p["dsize"], scale=p["scale"], vx_ratio=p["vx_ratio"], vy_ratio=p["vy_ratio"],
                      rotate=p["flag_do_rot"])


def _crop():
    fx = _fx()
    return fx, crop_face(_np(fx["in.image"]), _np(fx["in.lmk106"]), "lmk106", _config(fx.meta))


def _assert_uint8(actual: np.ndarray, expected: np.ndarray, max_abs: float, mean_abs: float | None, name: str):
    assert actual.shape == expected.shape and actual.dtype == np.uint8, name
    diff = np.abs(actual.astype(np.int32) - expected.astype(np.int32))
    assert diff.max() <= max_abs, f"{name}: max |diff| {diff.max()} > {max_abs}"
    if mean_abs is not None:
        assert diff.mean() <= mean_abs, f"{name}: mean |diff| {diff.mean():.4f} > {mean_abs}"


def test_crop_anchor_indices_match_fixture_parity():
    meta = _fx().meta
    eye_a, eye_b, mouth = ANCHORS["lmk106"]
    assert list(eye_a) == meta["anchors"]["eye_a"]
    assert list(eye_b) == meta["anchors"]["eye_b"]
    assert list(mouth) == meta["anchors"]["mouth"]


def test_crop_transform_parity():
    fx, crop = _crop()
    assert_close(torch.from_numpy(crop.rect), fx["out.rect"], atol=1e-3, name="rect")
    assert_close(torch.from_numpy(crop.M_o2c), fx["out.M_o2c"], atol=1e-3, name="M_o2c")
    assert_close(torch.from_numpy(crop.M_c2o), fx["out.M_c2o"], atol=1e-3, name="M_c2o")
    # pt_crop is in crop pixels: the rect's pixel tolerance applies.
    assert_close(torch.from_numpy(crop.pt_crop), fx["out.pt_crop"], atol=1e-3, name="pt_crop")
    assert crop.M_o2c.dtype == np.float32 and crop.M_c2o.dtype == np.float32


def test_crop_images_parity():
    fx, crop = _crop()
    _assert_uint8(crop.crop512, _np(fx["out.crop512"]), 8, 0.25, "crop512")
    _assert_uint8(crop.crop256, _np(fx["out.crop256"]), 3, None, "crop256")


def test_crop_mask_template_formula_parity():
    stored = _np(_fx()["in.mask_template"])
    ours = mask_template(stored.shape[0])
    diff = np.abs(ours.astype(np.int32) - stored.astype(np.int32))
    assert diff.max() <= 1
    assert int((diff.max(axis=2) > 0).sum()) <= 212


def test_crop_mask_ori_parity():
    fx, crop = _crop()
    h, w = fx["in.image"].shape[:2]
    mask_ori = prepare_paste_back(_np(fx["in.mask_template"]), crop.M_c2o, (w, h))
    assert_close(torch.from_numpy(mask_ori), fx["out.mask_ori"], atol=8e-3, name="mask_ori")
    generated = prepare_paste_back(None, crop.M_c2o, (w, h))
    assert_close(torch.from_numpy(generated), fx["out.mask_ori"], atol=8e-3, name="mask_ori from generated template")


def _pasteback_input(fx) -> np.ndarray:
    assert fx.meta["pasteback_input"].startswith("255 - out.crop512")
    return 255 - _np(fx["out.crop512"])


def test_crop_pasteback_warped_parity():
    import cv2

    fx, crop = _crop()
    h, w = fx["in.image"].shape[:2]
    warped = cv2.warpAffine(_pasteback_input(fx), crop.M_c2o[:2], (w, h), flags=cv2.INTER_LINEAR)
    _assert_uint8(warped, _np(fx["out.pasteback_warped"]), 8, 0.25, "pasteback_warped")


def test_crop_pasteback_parity():
    fx, crop = _crop()
    image = _np(fx["in.image"])
    h, w = image.shape[:2]
    mask_ori = prepare_paste_back(_np(fx["in.mask_template"]), crop.M_c2o, (w, h))
    out = paste_back(_pasteback_input(fx), crop.M_c2o, image, mask_ori)
    _assert_uint8(out, _np(fx["out.pasteback"]), 4, 0.05, "pasteback (cv2)")
    out_gen = paste_back(_pasteback_input(fx), crop.M_c2o, image, prepare_paste_back(None, crop.M_c2o, (w, h)))
    _assert_uint8(out_gen, _np(fx["out.pasteback"]), 4, 0.05, "pasteback (generated mask)")


def test_crop_pasteback_batched_torch_parity():
    fx, crop = _crop()
    image = _np(fx["in.image"])
    h, w = image.shape[:2]
    frame = _pasteback_input(fx)
    paster = PasteBack(image, crop.M_c2o, crop_size=crop.dsize, mask_crop=_np(fx["in.mask_template"]))
    # Several different frames in one call, uint8 and float inputs, small chunks to cross chunk borders.
    frames = np.stack([frame, _np(fx["out.crop512"]), np.roll(frame, 37, axis=1)])
    out_u8 = paster(torch.from_numpy(frames), as_uint8=True, chunk=2).numpy()
    out_f = paster(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, layout="nchw")
    assert out_u8.shape == (3, h, w, 3) and out_f.shape == (3, h, w, 3) and out_f.dtype == torch.float32
    _assert_uint8(out_u8[0], _np(fx["out.pasteback"]), 4, 0.05, "batched pasteback vs fixture")
    mask_ori = paster.mask_ori
    for i in range(len(frames)):
        ref = paste_back(frames[i], crop.M_c2o, image, mask_ori)
        _assert_uint8(out_u8[i], ref, 4, 0.05, f"batched vs cv2, frame {i}")
        from_float = np.round(out_f[i].numpy() * 255).astype(np.uint8)
        ref_f = paste_back(frames[i].astype(np.float32) / 255, crop.M_c2o, image, mask_ori)
        _assert_uint8(from_float, ref_f, 4, 0.05, f"batched float vs cv2, frame {i}")
    # Outside the mask the original is untouched, bit for bit.
    outside = mask_ori[:, :, 0] == 0
    assert np.array_equal(out_u8[1][outside], image[outside])
