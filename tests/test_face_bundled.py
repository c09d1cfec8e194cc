"""The bundled MediaPipe face detector: torch ports vs the original TFLite models, and the whole pipeline on a photo.

Parity uses ``tests/fixtures/mediapipe_litert.safetensors``, recorded once by ``tools/make_mediapipe_parity_fixture.py``
with the LiteRT interpreter on the exact uint8 model inputs, so these tests need neither the 35 MB mediapipe wheel
nor a TFLite runtime. It belongs to the bundled weights (not to a golden fixture set), so it is always read from
tests/fixtures. The pipeline tests compare with MediaPipe FaceMesh's own refined 478 points (``in.mp478`` of
crop.safetensors) and MediaPipe's detection box on the same photo.
"""

from __future__ import annotations

import json
from functools import lru_cache

import cv2
import numpy as np
import pytest
import torch
from fixture_support import BUNDLED_FIXTURES, load_fixture
from safetensors import safe_open

from joyvasa_core.errors import FaceInputError
from joyvasa_core.face.detectors.blazeface import build_blazeface, postprocess, ssd_anchors
from joyvasa_core.face.detectors.bundled import WEIGHTS_PATH, BundledFaceDetector, load_mediapipe_net
from joyvasa_core.face.detectors.facemesh import FaceMeshNet
from joyvasa_core.face.detectors.iris import IrisNet

PARITY_FIXTURE = BUNDLED_FIXTURES / "mediapipe_litert.safetensors"
PIXEL_ATOL = 1.0  # boxes and landmarks, in model-input pixels


@lru_cache(maxsize=1)
def litert() -> tuple[dict, dict[str, np.ndarray]]:
    with safe_open(str(PARITY_FIXTURE), "np") as f:
        return json.loads(f.metadata()["json"]), {k: f.get_tensor(k) for k in f.keys()}


@lru_cache(maxsize=2)
def detector(range_: str) -> BundledFaceDetector:
    return BundledFaceDetector(range_)


def model_input(key: str) -> torch.Tensor:
    meta, t = litert()
    rng = meta["input_range"][key]
    x = t[f"{key}.input"].astype(np.float32) * np.float32(rng["scale"]) + np.float32(rng["offset"])
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    wh = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None)
    inter = float(wh[0] * wh[1])
    return inter / (float(np.prod(a[2:] - a[:2])) + float(np.prod(b[2:] - b[:2])) - inter)


def astronaut() -> tuple[np.ndarray, np.ndarray]:
    """The photo and MediaPipe's 478 points, moved into OpenCV's pixel frame (pixel i at i) that the bundled
    detector and the crop use: MediaPipe's are normalised x size, where pixel i covers [i, i + 1)."""
    fx = load_fixture("crop.safetensors")
    return fx["in.image"].numpy(), fx["in.mp478"].numpy() - np.float32(0.5)


def recorded_photo(image: np.ndarray) -> bool:
    """Whether ``image`` is the bundled photo the LiteRT run (and its MediaPipe box) was recorded on; another
    fixture set's photo has its MediaPipe mesh (``in.mp478``) but no recorded box."""
    bgr = cv2.imread(str(BUNDLED_FIXTURES / litert()[0]["image"]))
    return bgr is not None and bgr.shape == image.shape and np.array_equal(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), image)


@pytest.mark.parity
@pytest.mark.parametrize("range_", ["short", "full"])
def test_crop_blazeface_parity(range_):
    _, t = litert()
    net, cfg = build_blazeface(range_)
    net = load_mediapipe_net(net, range_)
    with torch.no_grad():
        reg, cls = net(model_input(range_))
    anchors = ssd_anchors(cfg)
    n = len(anchors)
    ref_reg, ref_cls = t[f"{range_}.out0"].reshape(n, 16), t[f"{range_}.out1"].reshape(n, 1)
    assert reg.shape == (1, n, 16) and cls.shape == (1, n, 1)
    ours = postprocess(reg[0].numpy(), cls[0].numpy(), anchors, cfg)
    theirs = postprocess(ref_reg, ref_cls, anchors, cfg)
    assert len(theirs) == 1, "the recorded TFLite run found one face on astronaut.png"
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        size = cfg.input_size
        assert np.abs(a.box - b.box).max() * size <= PIXEL_ATOL, (a.box * size, b.box * size)
        assert np.abs(a.keypoints - b.keypoints).max() * size <= PIXEL_ATOL
        assert abs(a.score - b.score) <= 1e-3
    # Raw outputs over every anchor, in input pixels and logits.
    assert np.abs(reg[0].numpy() - ref_reg).max() <= 1e-2
    assert np.abs(cls[0].numpy() - ref_cls).max() <= 1e-2


@pytest.mark.parity
def test_crop_facemesh_parity():
    _, t = litert()
    net = load_mediapipe_net(FaceMeshNet(), "mesh")
    with torch.no_grad():
        pts, presence = net(model_input("mesh"))
    ref = t["mesh.out0"].reshape(1, 468, 3)
    assert pts.shape == (1, 468, 3)
    assert np.abs(pts[..., :2].numpy() - ref[..., :2]).max() <= PIXEL_ATOL
    assert np.abs(pts.numpy() - ref).max() <= 1e-2
    assert abs(float(presence[0]) - float(t["mesh.out1"].reshape(-1)[0])) <= 1e-2


@pytest.mark.parity
def test_crop_iris_parity():
    _, t = litert()
    net = load_mediapipe_net(IrisNet(), "iris")
    with torch.no_grad():
        contour, iris = net(model_input("iris"))
    ref_c, ref_i = t["iris.out0"].reshape(-1, 71, 3), t["iris.out1"].reshape(-1, 5, 3)
    assert contour.shape == ref_c.shape and iris.shape == ref_i.shape
    assert np.abs(contour[..., :2].numpy() - ref_c[..., :2]).max() <= PIXEL_ATOL
    assert np.abs(iris[..., :2].numpy() - ref_i[..., :2]).max() <= PIXEL_ATOL
    assert np.abs(iris.numpy() - ref_i).max() <= 1e-2


def test_bundled_weights_file_is_small_and_traceable():
    assert WEIGHTS_PATH.stat().st_size < 6_000_000
    with safe_open(str(WEIGHTS_PATH), "np") as f:
        meta = json.loads(f.metadata()["json"])
        prefixes = {k.split(".")[0] for k in f.keys()}
    assert prefixes == {"short", "full", "mesh", "iris"}
    assert meta["source"] == "mediapipe==0.10.21"
    recorded = litert()[0]["models"]
    for key, model in meta["models"].items():
        assert model["sha256"] == recorded[key]["sha256"], f"{key}: weights and parity fixture come from other files"
    assert (WEIGHTS_PATH.parent / "LICENSE-mediapipe.txt").read_text().count("Apache License") >= 1


@pytest.mark.parametrize("range_", ["short", "full"])
def test_crop_bundled_detector_finds_the_astronaut(range_):
    image, ref = astronaut()
    faces = detector(range_).detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.convention == "mp478" and face.landmarks.shape == (478, 2) and face.landmarks.dtype == np.float32
    if recorded_photo(image):
        x, y, w, h = litert()[0]["mediapipe_box_xywh"]
        mp_box = np.array([x, y, x + w, y + h], np.float64)
        assert box_iou(face.box, mp_box) >= 0.6  # the full-range model's box sits higher (more forehead)
        if range_ == "short":  # the same model as MediaPipe's own detection: nearly the same box
            # MediaPipe's box is in its frame (pixel i covers [i, i + 1)), ours in OpenCV's (+0.5). Measured 3.10 px
            # (bottom edge): MediaPipe samples its input half a pixel off and reads one view, ours pools two.
            assert np.abs(face.box + 0.5 - [x, y, x + w, y + h]).max() <= 3.5
    else:  # no recorded box for this photo: the box must hold MediaPipe's eyes and mouth
        inner = ref[[468, 473, 13, 14]]
        assert (inner >= face.box[:2]).all() and (inner <= face.box[2:4]).all(), (face.box, inner)
    assert face.score >= 0.5
    err = np.linalg.norm(face.landmarks - ref, axis=1)
    assert err[:468].mean() <= 2.0, f"mesh mean error {err[:468].mean():.2f} px"
    assert err[:468].max() <= 5.0
    assert err[468:].max() <= 2.0, f"iris errors {err[468:].round(2)}"


@pytest.mark.parametrize("degrees", [-30.0, 25.0])
def test_crop_bundled_detector_follows_a_rotated_face(degrees):
    image, ref = astronaut()
    centre = ref.mean(0)
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), degrees, 1.0)
    rotated = cv2.warpAffine(image, m, (image.shape[1], image.shape[0]))
    faces = detector("short").detect(rotated)
    assert len(faces) == 1
    err = np.linalg.norm(faces[0].landmarks - (ref @ m[:, :2].T + m[:, 2]), axis=1)
    assert err.mean() <= 2.5, f"mean error {err.mean():.2f} px at {degrees} degrees"


def test_bundled_detector_batches_several_faces():
    image, ref = astronaut()
    y0, x0 = int(ref[:, 1].min()) - 60, int(ref[:, 0].min()) - 50
    tile = image[y0 : y0 + 200, x0 : x0 + 200]
    pair = np.ascontiguousarray(np.concatenate([tile, tile], axis=1))
    faces = detector("short").detect(pair)
    assert len(faces) == 2
    faces = sorted(faces, key=lambda f: f.box[0])
    for k, face in enumerate(faces):
        err = np.linalg.norm(face.landmarks - (ref - [x0 - 200 * k, y0]), axis=1)
        assert err.mean() <= 2.0


def test_bundled_detector_blank_image_has_no_face():
    det = detector("short")
    assert det.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert det.detect(np.full((320, 240, 3), 128, np.uint8)) == []
    assert detector("full").detect(np.zeros((240, 320, 3), np.uint8)) == []


def test_bundled_detector_rejects_non_images():
    with pytest.raises(FaceInputError, match="RGB uint8"):
        detector("short").detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(FaceInputError, match="RGB uint8"):
        detector("short").detect(np.zeros((64, 64, 3), np.float32))


@pytest.mark.parametrize("mesh_crop", ["lmk106", "kj478"])
def test_crop_from_bundled_points_matches_mediapipe_crop(mesh_crop):
    from joyvasa_core.face.crop import CropConfig, crop_face

    image, ref = astronaut()
    face = detector("short").detect(image)[0]
    cfg = CropConfig(mesh_crop=mesh_crop)
    ours, theirs = crop_face(image, face.landmarks, "mp478", cfg), crop_face(image, ref, "mp478", cfg)
    corners = np.array([[0, 0, 1], [512, 0, 1], [0, 512, 1], [512, 512, 1]], np.float64)
    dist = np.linalg.norm(corners @ ours.M_c2o[:2].T - corners @ theirs.M_c2o[:2].T, axis=1)
    assert dist.max() <= 6.0, f"crop corners differ by {dist.round(2)} px"
