"""The whole-image crop keeps the picture's shape (issue 21): the square the networks see holds the whole picture
undistorted, the padding has no edge to animate, and the picture's area comes back out at the photo's size. The
reference's squeeze stays available (crop mode ``squeeze``) and is what the parity tests use; on a square picture
both are the same crop, to the bit.

The aspect ratio is measured on the crop image itself: SIFT features of the photo matched in the crop, and the x and
y scale of the affine map that carries one onto the other.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from fixture_support import fixture_path

from joyvasa_core.errors import FaceInputError
from joyvasa_core.face.crop import whole_image_crop
from joyvasa_core.face.pasteback import PictureArea
from joyvasa_core.face.reference import ReferenceOptions, prepare_reference


def read_rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(fixture_path(name))), cv2.COLOR_BGR2RGB)


def cat() -> np.ndarray:
    return read_rgb("chelsea.png")  # 451 x 300, wider than tall


def portrait() -> np.ndarray:
    """Taller than wide: the astronaut's middle 300 columns (300 x 512)."""
    return np.ascontiguousarray(read_rgb("astronaut.png")[:, 100:400])


def measured_scales(photo: np.ndarray, crop: np.ndarray) -> tuple[float, float]:
    """(x scale, y scale) of the photo as seen in the crop, from matched SIFT features (RANSAC affine fit)."""
    sift = cv2.SIFT_create()
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (photo, crop)]
    (kp_a, des_a), (kp_b, des_b) = (sift.detectAndCompute(g, None) for g in grey)
    pairs = cv2.BFMatcher().knnMatch(des_a, des_b, k=2)
    good = [m for m, n in pairs if m.distance < 0.7 * n.distance]
    assert len(good) >= 30, f"only {len(good)} features matched"
    src = np.float32([kp_a[m.queryIdx].pt for m in good])
    dst = np.float32([kp_b[m.trainIdx].pt for m in good])
    affine, inliers = cv2.estimateAffine2D(src, dst, ransacReprojThreshold=2.0)
    assert int(inliers.sum()) >= 30
    return float(np.hypot(affine[0, 0], affine[1, 0])), float(np.hypot(affine[0, 1], affine[1, 1]))


@pytest.mark.parametrize("photo", [cat, portrait], ids=["cat 451x300", "portrait 300x512"])
def test_whole_crop_keeps_the_aspect_ratio_measured_on_the_crop(photo):
    image = photo()
    sx, sy = measured_scales(image, whole_image_crop(image).crop512)
    assert abs(sx / sy - 1) <= 0.01, f"the picture is seen {sx / sy:.3f} times as wide as it is"
    assert abs(sx - 512 / max(image.shape[:2])) <= 0.01, "the whole picture fills the square's long side"
    # The reference's squeeze, measured the same way, stretches the short side to the square.
    h, w = image.shape[:2]
    qx, qy = measured_scales(image, whole_image_crop(image, fit="squeeze").crop512)
    assert abs((qx / qy) / (h / w) - 1) <= 0.01 and abs(qx / qy - 1) > 0.3


def test_padding_continues_the_edges_without_a_step_or_stripes():
    """Across the picture's border the colour does not jump (a black fill jumps by the border's brightness), and
    the padding far from the picture is smooth (replication alone draws the fur at the border out into stripes)."""
    image = cat()
    crop = whole_image_crop(image).crop512.astype(np.float32)
    y0, y1 = (int(round(v)) for v in whole_image_crop(image).extra["picture"][1::2])
    step = np.abs(crop[y0 - 1] - crop[y0 + 1]).mean() + np.abs(crop[y1 - 2] - crop[y1]).mean()
    inside = np.abs(crop[y0 + 2] - crop[y0 + 4]).mean() + np.abs(crop[y1 - 4] - crop[y1 - 2]).mean()
    black_step = crop[y0 + 1].mean() + crop[y1 - 2].mean()
    assert step <= 1.5 * inside + 2 and step < 0.1 * black_step, (step, inside, black_step)
    far = crop[: y0 // 2]  # the top padding, away from the fade
    stripes = np.abs(np.diff(far, axis=1)).mean()
    replicated = np.abs(np.diff(np.repeat(crop[y0 + 1 : y0 + 2], 4, axis=0), axis=1)).mean()
    assert stripes < 0.2 * replicated, (stripes, replicated)


@pytest.mark.parametrize("fit", ["pad", "squeeze"])
@pytest.mark.parametrize("photo", [cat, portrait], ids=["cat", "portrait"])
def test_picture_area_comes_back_at_the_photos_size(photo, fit):
    """The rendered square, taken back out, is the photo again (up to the two resamplings), at the photo's size."""
    image = photo()
    crop = whole_image_crop(image, fit=fit)
    back = PictureArea(image.shape[1], image.shape[0], crop.M_o2c)
    frames = torch.from_numpy(np.stack([crop.crop512] * 2))
    out = back(frames, as_uint8=True)
    assert out.shape == (2, *image.shape) and out.dtype == torch.uint8
    err = np.abs(out[0].numpy().astype(np.int16) - image).mean()
    assert err <= 4.0, f"mean error {err:.2f}"
    # Off by one pixel would already cost more: the area is exactly the picture's.
    shifted = np.abs(out[0].numpy()[:, 1:].astype(np.int16) - image[:, :-1]).mean()
    assert err < 0.8 * shifted
    as_float = back(frames.permute(0, 3, 1, 2).float() / 255, layout="nchw")
    assert torch.equal((as_float * 255).round().to(torch.uint8), out)


def test_square_picture_pads_nothing_so_parity_holds():
    image = read_rgb("astronaut.png")
    pad, squeeze = whole_image_crop(image), whole_image_crop(image, fit="squeeze")
    assert np.array_equal(pad.crop512, squeeze.crop512) and np.array_equal(pad.crop256, squeeze.crop256)
    assert np.array_equal(pad.M_o2c, squeeze.M_o2c)
    with pytest.raises(FaceInputError, match="unknown whole-image fit 'stretch'"):
        whole_image_crop(image, fit="stretch")


def test_crop_modes_whole_and_squeeze_and_the_animal_default():
    image = cat()
    animal = prepare_reference(image, None, ReferenceOptions(mode="animal"))[0].crop
    assert animal.method == "whole" and animal.extra["fit"] == "pad"
    squeezed = prepare_reference(image, None, ReferenceOptions(mode="animal", crop="squeeze"))[0].crop
    assert squeezed.extra["fit"] == "squeeze"
    # resize_to_limit trims the cat to even sides (450 x 300): the picture spans 512 x 341.33 of the square.
    x0, y0, x1, y1 = animal.extra["picture"]
    assert (x0, x1) == (0, 512) and abs((x1 - x0) / (y1 - y0) - 450 / 300) < 1e-6
