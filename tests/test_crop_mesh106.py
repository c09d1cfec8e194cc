"""Cropping a MediaPipe mesh through its 106-point equivalent (``landmarks106.py``), so the bundled detector's crop
matches the 106-point crop the crop parameters were tuned on.

``in.lmk106`` of crop.safetensors was built from ``in.mp478`` (fixture README, "crop.safetensors"), so the mapping
must reproduce it to float32 rounding, and the crop from the mesh must be the fixture's crop at the README's rect /
matrix tolerance (1e-3). The bundled detector's own mesh differs from MediaPipe's by ~1 px per point, which moves
the crop by a few pixels; the bounds below sit just above the measured values (noted per bound).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from fixture_support import assert_close, load_fixture

from joyvasa_core.errors import FaceInputError
from joyvasa_core.face.crop import MESH_CROPS, CropConfig, crop_face, crop_points, rect_from_landmarks
from joyvasa_core.face.landmarks106 import JAW_POINTS, mesh478_to_lmk106
from joyvasa_core.face.ratios import face_ratios

# Derived jaw points are arc-length interpolations computed in float64 and stored in float32: measured max 2.2e-5 px
# on the fixture (float32 spacing at 100-270 px is 0.8e-5 to 3e-5); every other point is a plain copy (exact).
JAW_ATOL = 1e-4


def _fx():
    return load_fixture("crop.safetensors")


def _cfg(meta: dict, **kw) -> CropConfig:
    p = meta["params"]
    return CropConfig(dsize=p["dsize"], scale=p["scale"], vx_ratio=p["vx_ratio"], vy_ratio=p["vy_ratio"],
                      rotate=p["flag_do_rot"], **kw)


def _corners(dsize: int) -> np.ndarray:
    return np.array([[0, 0, 1], [dsize, 0, 1], [0, dsize, 1], [dsize, dsize, 1]], np.float64)


def _corner_dist(a, b) -> np.ndarray:
    """Image-space distance between the four crop corners of two crops of the same dsize."""
    c = _corners(a.dsize)
    return np.linalg.norm(c @ a.M_c2o[:2].T.astype(np.float64) - c @ b.M_c2o[:2].T.astype(np.float64), axis=1)


@pytest.mark.parity
def test_crop_mesh_to_106_matches_fixture_parity():
    fx = _fx()
    mesh, lmk = fx["in.mp478"].numpy(), fx["in.lmk106"].numpy()
    derived = mesh478_to_lmk106(mesh)
    assert derived.shape == lmk.shape and derived.dtype == np.float32
    np.testing.assert_array_equal(derived[JAW_POINTS:], lmk[JAW_POINTS:])
    err = np.linalg.norm(derived - lmk, axis=1)
    assert err[:JAW_POINTS].max() <= JAW_ATOL, f"jaw max error {err[:JAW_POINTS].max():.2e} px"
    # The anchors the crop uses (indices from the fixture metadata) are exact copies of mesh points.
    anchors = fx.meta["anchors"]
    for name in ("eye_a", "eye_b", "mouth"):
        np.testing.assert_array_equal(derived[anchors[name]], lmk[anchors[name]])


def test_crop_mesh_to_106_batches_and_checks_shape():
    mesh = _fx()["in.mp478"].numpy()
    moved = mesh * np.float32(1.5) + np.float32([40.0, -7.0])
    batch = mesh478_to_lmk106(np.stack([mesh, moved]))
    assert batch.shape == (2, 106, 2)
    np.testing.assert_array_equal(batch[0], mesh478_to_lmk106(mesh))
    # Arc-length resampling commutes with a similarity: the mapping follows the face.
    np.testing.assert_allclose(batch[1], batch[0] * 1.5 + [40.0, -7.0], atol=1e-3)
    # A plain 468-point mesh (no irises) and a z column give the same points.
    with_z = np.concatenate([mesh[:468], np.ones((468, 1), np.float32)], axis=1)
    np.testing.assert_array_equal(mesh478_to_lmk106(with_z), batch[0])
    with pytest.raises(FaceInputError, match="478"):
        mesh478_to_lmk106(mesh[:106])


@pytest.mark.parity
def test_crop_from_mesh_via_106_parity():
    fx = _fx()
    img, mesh = fx["in.image"].numpy(), fx["in.mp478"].numpy()
    crop = crop_face(img, mesh, "mp478", _cfg(fx.meta))
    assert_close(torch.from_numpy(crop.rect), fx["out.rect"], atol=1e-3, name="rect")
    assert_close(torch.from_numpy(crop.M_o2c), fx["out.M_o2c"], atol=1e-3, name="M_o2c")
    assert_close(torch.from_numpy(crop.M_c2o), fx["out.M_c2o"], atol=1e-3, name="M_c2o")
    ref = crop_face(img, fx["in.lmk106"].numpy(), "lmk106", _cfg(fx.meta))
    dist = _corner_dist(crop, ref)
    assert dist.max() <= 1e-2, f"crop corners differ by {dist} px"
    # The crop keeps the whole mesh (for the eye/lip ratios) and records the 106 points it was cut from.
    assert crop.convention == "mp478" and crop.landmarks.shape == mesh.shape and crop.pt_crop.shape == mesh.shape
    assert crop.extra["crop_convention"] == "lmk106"
    assert_close(torch.from_numpy(crop.extra["crop_landmarks"]), fx["in.lmk106"], atol=JAW_ATOL, name="lmk106")
    pt106 = crop.extra["crop_landmarks"] @ crop.M_o2c[:, :2].T + crop.M_o2c[:, 2]
    assert_close(torch.from_numpy(pt106), fx["out.pt_crop"], atol=1e-3, name="pt_crop")
    assert face_ratios(crop.landmarks, crop.convention) == face_ratios(mesh, "mp478")


def test_crop_mesh_kj478_option_keeps_the_raw_mesh_crop():
    fx = _fx()
    img, mesh = fx["in.image"].numpy(), fx["in.mp478"].numpy()
    raw = crop_face(img, mesh, "mp478", _cfg(fx.meta, mesh_crop="kj478"))
    p = fx.meta["params"]
    center, size, angle = rect_from_landmarks(mesh, "mp478", p["scale"], p["vx_ratio"], p["vy_ratio"])
    np.testing.assert_array_equal(raw.rect, np.array([center[0], center[1], size, angle], np.float64))
    assert "crop_landmarks" not in raw.extra
    pts, conv = crop_points(mesh, "mp478", "kj478")
    assert conv == "mp478" and pts.shape == mesh.shape
    # The raw mesh includes the forehead: a larger, higher crop, tens of pixels away from the 106-point crop.
    via106 = crop_face(img, mesh, "mp478", _cfg(fx.meta))
    assert raw.rect[2] > via106.rect[2] * 1.1 and raw.rect[1] < via106.rect[1]
    assert _corner_dist(raw, via106).max() > 10.0
    assert set(MESH_CROPS) == {"lmk106", "kj478"}
    with pytest.raises(FaceInputError, match="mesh_crop"):
        _cfg(fx.meta, mesh_crop="mesh")


@lru_cache(maxsize=2)
def _bundled_face(range_: str):
    from joyvasa_core.face.detectors.bundled import BundledFaceDetector

    faces = BundledFaceDetector(range_).detect(_fx()["in.image"].numpy())
    assert len(faces) == 1
    return faces[0]


# Measured on astronaut.png against the 106-point crop: short range (the default, MediaPipe's own detector) corners
# 2.57/3.76/0.31/2.75 px, centre 2.02 px, size +1.1 %, angle 0.28 deg; full range (its box and so the mesh ROI sit
# higher) corners 5.72/6.80/3.36/4.98 px, centre 1.77 px, size +3.2 %, angle 0.67 deg. The full range's angle bound
# is the one above 0.5 deg: the bundled detector is mirror-symmetric (test_crop_mirror.py), MediaPipe's mesh, which
# the 106 points come from, is not, and on its own ROI it tilts this crop 0.25 deg (half its mirror gap).
BUNDLED_BOUNDS = {"short": (4.0, 0.025, 0.5), "full": (7.0, 0.035, 0.7)}


@pytest.mark.parity
@pytest.mark.parametrize("range_", ["short", "full"])
def test_crop_bundled_detector_matches_106_crop_parity(range_):
    fx = _fx()
    img = fx["in.image"].numpy()
    face = _bundled_face(range_)
    assert face.convention == "mp478"
    ours = crop_face(img, face.landmarks, face.convention, _cfg(fx.meta))
    # MediaPipe's pixel coordinates are normalised x size (pixel i covers [i, i + 1)); the bundled detector gives
    # OpenCV's (pixel i at i), as the crop maths reads them: compare both in the same frame.
    ref = crop_face(img, fx["in.lmk106"].numpy() - 0.5, "lmk106", _cfg(fx.meta))
    corner_max, size_rel, angle_max = BUNDLED_BOUNDS[range_]
    dist = _corner_dist(ours, ref)
    assert dist.max() <= corner_max, f"{range_}: crop corners differ by {dist.round(2)} px"
    assert np.linalg.norm(ours.rect[:2] - ref.rect[:2]) <= 2.5
    assert abs(ours.rect[2] / ref.rect[2] - 1) <= size_rel
    assert abs(np.degrees(ours.rect[3] - ref.rect[3])) <= angle_max
    # The raw-mesh crop of the same detection would be far off the 106-point crop.
    raw = crop_face(img, face.landmarks, face.convention, _cfg(fx.meta, mesh_crop="kj478"))
    assert _corner_dist(raw, ref).max() > 3 * corner_max
