"""Reference-image checks: every bad input gets a FaceInputError that names the input and the fix."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from fixture_support import fixture_path, load_fixture

from joyvasa_core.errors import FaceInputError
from joyvasa_core.face.crop import crop_face, whole_image_crop
from joyvasa_core.face.detectors.base import DetectedFace
from joyvasa_core.face.pasteback import PasteBack
from joyvasa_core.face.reference import ReferenceOptions, prepare_reference
from joyvasa_core.face.select import select_face, sort_faces


def _astronaut() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(fixture_path("astronaut.png"))), cv2.COLOR_BGR2RGB)


def _lmk106() -> np.ndarray:
    return load_fixture("crop.safetensors")["in.lmk106"].numpy()


class FakeDetector:
    """Returns the fixture's 106 astronaut landmarks, scaled to the image it is given; records what it saw."""

    name = "fake"

    def __init__(self, faces: int = 1, ref_size: int = 512) -> None:
        self.faces, self.ref_size, self.seen = faces, ref_size, []

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        self.seen.append(image.shape)
        h, w = image.shape[:2]
        lmk = _lmk106() * np.array([w / self.ref_size, h / self.ref_size], dtype=np.float32)
        out = []
        for i in range(self.faces):
            pts = lmk * (1 - 0.2 * i) + np.float32(i * 0.1 * w)
            box = np.concatenate([pts.min(0), pts.max(0)]).astype(np.float32)
            out.append(DetectedFace(box=box, score=0.9 - 0.1 * i, landmarks=pts, convention="lmk106"))
        return out


class NoFace(FakeDetector):
    def detect(self, image):
        self.seen.append(image.shape)
        return []


class MustNotRun:
    name = "must-not-run"

    def detect(self, image):
        raise AssertionError("animal mode must not run a detector by default")


def test_crop_reference_astronaut_matches_crop_maths():
    img = _astronaut()
    ref = prepare_reference(img, FakeDetector())
    expected = crop_face(img, _lmk106(), "lmk106")
    np.testing.assert_array_equal(ref[0].crop.M_o2c, expected.M_o2c)
    np.testing.assert_array_equal(ref[0].crop256, expected.crop256)
    assert ref[0].ratios.convention == "lmk106" and ref[0].ratios.eye_left > 0.1


@pytest.mark.parametrize("layout", ["HxW", "HxWx1", "float01", "torch"])
def test_crop_greyscale_and_float_inputs_are_converted(layout):
    grey = cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2GRAY)
    image = {"HxW": grey, "HxWx1": grey[:, :, None], "float01": grey.astype(np.float32) / 255,
             "torch": torch.from_numpy(grey.astype(np.float32) / 255)}[layout]
    ref = prepare_reference(image, FakeDetector())
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(ref[0].image, rgb)
    np.testing.assert_array_equal(ref[0].crop256, crop_face(rgb, _lmk106(), "lmk106").crop256)
    assert any("greyscale" in n for n in ref[0].notes)


def test_crop_rgba_alpha_dropped_or_composited():
    img = _astronaut()
    rgba = np.concatenate([img, np.zeros_like(img[:, :, :1])], axis=2)
    rgba[100:400, 100:400, 3] = 255
    dropped = prepare_reference(rgba, FakeDetector())
    np.testing.assert_array_equal(dropped[0].image, img)
    assert "alpha channel dropped" in dropped[0].notes
    white = prepare_reference(rgba, FakeDetector(), alpha="white")
    assert (white[0].image[:100] == 255).all()
    np.testing.assert_array_equal(white[0].image[100:400, 100:400], img[100:400, 100:400])


def test_crop_tiny_image_refused():
    with pytest.raises(FaceInputError, match=r"reference image: 1x1 pixels is too small.*larger image"):
        prepare_reference(np.full((1, 1, 3), 128, np.uint8), FakeDetector())


def test_crop_huge_images():
    # A 12000x10 strip cannot hold a face: refused up front, nothing resized.
    strip = np.random.default_rng(0).integers(0, 255, size=(10, 12000, 3), dtype=np.uint8)
    with pytest.raises(FaceInputError, match="12000x10"):
        prepare_reference(strip, FakeDetector())
    # A 12000 px wide photo is shrunk to the 1280 limit (even sides) before detection, as the reference does.
    wide = np.random.default_rng(1).integers(0, 255, size=(600, 12000, 3), dtype=np.uint8)
    det = NoFace()
    with pytest.raises(FaceInputError, match="no face"):
        prepare_reference(wide, det)
    assert det.seen == [(64, 1280, 3)]
    # Far too many pixels: refused from the shape alone (a broadcast view allocates nothing).
    giant = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (30000, 30000, 3))
    with pytest.raises(FaceInputError, match=r"30000x30000 is 900 megapixels.*Downscale"):
        prepare_reference(giant, FakeDetector())


def test_crop_large_photo_resized_then_cropped():
    big = cv2.resize(_astronaut(), (2000, 2000), interpolation=cv2.INTER_LINEAR)
    det = FakeDetector()
    ref = prepare_reference(big, det)
    assert det.seen == [(1280, 1280, 3)]
    assert ref[0].image.shape == (1280, 1280, 3) and ref[0].input_size == (2000, 2000)
    assert ref[0].crop.rect[2] == pytest.approx(crop_face(_astronaut(), _lmk106(), "lmk106").rect[2] * 2.5, rel=1e-4)


@pytest.mark.parametrize("value,word", [(0, "all black"), (255, "all white"), (90, "single flat colour")])
def test_crop_blank_image_refused(value, word):
    with pytest.raises(FaceInputError, match=word):
        prepare_reference(np.full((512, 512, 3), value, np.uint8), FakeDetector())


def test_crop_no_face_suggests_box_or_whole():
    with pytest.raises(FaceInputError) as err:
        prepare_reference(_astronaut(), NoFace())
    msg = str(err.value)
    assert "no face found" in msg and "'box'" in msg and "'whole'" in msg and "animal" in msg


def test_crop_face_too_small():
    small = cv2.resize(_astronaut(), (64, 64), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceInputError, match=r"face is only \d+x\d+ px"):
        prepare_reference(small, FakeDetector())


def test_crop_face_index_out_of_range_and_orders():
    with pytest.raises(FaceInputError, match=r"face_index 3 asked for, but the reference image has 2 faces"):
        prepare_reference(_astronaut(), FakeDetector(faces=2), face_index=3)
    faces = FakeDetector(faces=3).detect(_astronaut())
    assert [f.score for f in sort_faces(faces, "largest")] == pytest.approx([0.9, 0.8, 0.7])
    assert [f.score for f in sort_faces(faces, "smallest")] == pytest.approx([0.7, 0.8, 0.9])
    # Which planted face is rightmost depends on where the fixture's face sits in the photo.
    by_x = sorted(faces, key=lambda f: float(f.box[0] + f.box[2]))
    assert float(by_x[0].box[0] + by_x[0].box[2]) < float(by_x[-1].box[0] + by_x[-1].box[2])
    assert select_face(faces, 0, "right_to_left") is by_x[-1]
    assert select_face(faces, -1, "left_to_right") is by_x[-1]
    assert select_face(faces, 0, "left_to_right") is by_x[0]
    assert select_face(faces, 0, "highest_score").score == pytest.approx(0.9)
    with pytest.raises(FaceInputError, match="unknown order"):
        select_face(faces, 0, "random")


def test_crop_animal_default_is_whole_image_without_detection():
    cat = cv2.cvtColor(cv2.imread(str(fixture_path("chelsea.png"))), cv2.COLOR_BGR2RGB)
    ref = prepare_reference(cat, MustNotRun(), mode="animal")
    img = ref[0].image
    np.testing.assert_array_equal(ref[0].crop256, whole_image_crop(img).crop256)  # undistorted, padded
    assert ref[0].face is None and ref[0].ratios is None and ref.detector is None
    squeezed = prepare_reference(cat, MustNotRun(), mode="animal", crop="squeeze")
    np.testing.assert_array_equal(squeezed[0].crop256, cv2.resize(img, (256, 256)))  # the reference's
    assert squeezed.detector is None


def test_crop_animal_box_and_mask():
    cat = cv2.cvtColor(cv2.imread(str(fixture_path("chelsea.png"))), cv2.COLOR_BGR2RGB)
    h, w = cat.shape[:2]
    box = (120, 40, 300, 220)
    by_box = prepare_reference(cat, MustNotRun(), mode="animal", box=box, box_scale=1.2, vy_ratio=0.0)
    crop = by_box[0].crop
    assert crop.method == "box" and crop.rect[2] == pytest.approx(180 * 1.2)
    np.testing.assert_allclose(crop.rect[:2], [210, 130], atol=1e-4)
    mask = np.zeros((h, w), np.float32)
    mask[40:220, 120:300] = 1.0
    by_mask = prepare_reference(cat, MustNotRun(), mode="animal", mask=mask, box_scale=1.2, vy_ratio=0.0)
    np.testing.assert_array_equal(by_mask[0].crop.crop256, crop.crop256)
    with pytest.raises(FaceInputError, match="mask is empty"):
        prepare_reference(cat, MustNotRun(), mode="animal", mask=np.zeros((h, w), np.float32))
    with pytest.raises(FaceInputError, match="outside"):
        prepare_reference(cat, MustNotRun(), mode="animal", box=(w + 5, 0, w + 50, 40))


def test_crop_batch_gives_one_face_each():
    img = _astronaut()
    batch = torch.from_numpy(np.stack([img, img[:, ::-1]]).astype(np.float32) / 255)
    ref = prepare_reference(batch, FakeDetector(), ReferenceOptions())
    assert len(ref) == 2 and [f.crop256.shape for f in ref] == [(256, 256, 3)] * 2
    assert not np.array_equal(ref[0].crop256, ref[1].crop256)
    black = np.stack([img, np.zeros_like(img)])
    with pytest.raises(FaceInputError, match="reference image 1 of 2"):
        prepare_reference(black, FakeDetector())


def test_crop_whole_image_pasteback_lands_in_place():
    """The whole-image transform includes cv2.resize's half-pixel convention, so paste-back is aligned."""
    cat = cv2.cvtColor(cv2.imread(str(fixture_path("chelsea.png"))), cv2.COLOR_BGR2RGB)
    crop = whole_image_crop(cat)
    out = PasteBack(cat, crop.M_c2o)(torch.from_numpy(crop.crop512)[None], as_uint8=True)[0].numpy()
    inner = (slice(20, -20), slice(20, -20))
    err = np.abs(out[inner].astype(np.int32) - cat[inner]).mean()
    naive = np.array([[512 / cat.shape[1], 0, 0], [0, 512 / cat.shape[0], 0], [0, 0, 1]], np.float32)
    shifted = PasteBack(cat, np.linalg.inv(naive))(torch.from_numpy(crop.crop512)[None], as_uint8=True)[0].numpy()
    err_naive = np.abs(shifted[inner].astype(np.int32) - cat[inner]).mean()
    assert err < 3.0 and err < err_naive


def test_crop_short_range_misses_two_small_faces_full_range_finds_them():
    """Two portraits side by side (1024x512): the short-range model finds neither, the full-range one both; the
    default detector falls back to it and says so in a note."""
    from joyvasa_core.face.detectors.bundled import BundledFaceDetector
    from joyvasa_core.loading import bundled_face_detector

    img = _astronaut()
    pair = np.concatenate([img, img[:, ::-1]], axis=1)
    assert BundledFaceDetector(range="short").detect(pair) == []
    detector = bundled_face_detector("auto")
    ref = prepare_reference(pair, detector, face_order="right_to_left")
    assert ref.detector == "mediapipe-full" and ref[0].face.convention == "mp478"
    assert float(ref[0].face.box[0]) > 512, "right_to_left picks the face in the right half"
    assert "the short-range face detector found no face; the full-range one found 2, used instead" in ref[0].notes
    with pytest.raises(FaceInputError, match="no face found by the mediapipe-short and mediapipe-full detector") as err:
        prepare_reference(np.random.default_rng(0).integers(0, 256, (320, 320, 3), dtype=np.uint8), detector)
    assert "--box x,y,w,h" in err.value.for_cli() and "crop 'box'" in str(err.value)
