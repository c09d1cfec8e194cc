"""The official ONNX face path (SCRFD + 2d106det + landmark.onnx) on stand-in graphs whose outputs we plant.

The stand-ins have the real files' input/output names and shapes; their outputs are constants that encode a known
face, so decoding, NMS and both landmark mappings must give back exactly what was planted.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from fixture_support import load_fixture
from onnx import TensorProto, helper, numpy_helper

from joyvasa_core.errors import CheckpointError
from joyvasa_core.face.crop import CropConfig, crop_face, transform_points
from joyvasa_core.face.detectors import scrfd
from joyvasa_core.face.detectors.official import OfficialDetectorConfig, OfficialFaceDetector
from joyvasa_core.face.reference import prepare_reference

IMG_W, IMG_H = 800, 600
DET_OUT_NAMES = ["448", "471", "494", "451", "474", "497", "454", "477", "500"]


def _const_model(path: Path, input_name: str, input_shape: list, outputs: list[tuple[str, np.ndarray]]) -> None:
    """A graph with the given input whose outputs are constants (+ 0 * mean(input), so the input is consumed)."""
    nodes = [helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nil"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for name, value in outputs:
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"c_{name}"))
        nodes.append(helper.make_node("Add", [f"c_{name}", "nil"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes, "stand_in", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)], outs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _plant(scores, boxes, kps, size, stride, cell, anchor, box, points5, score):
    """Write one prediction at (stride, cell (col, row), anchor) so it decodes to ``box`` and ``points5``."""
    w = size // stride
    idx = (cell[1] * w + cell[0]) * 2 + anchor
    cx, cy = cell[0] * stride, cell[1] * stride
    scores[stride][idx, 0] = score
    boxes[stride][idx] = np.array([cx - box[0], cy - box[1], box[2] - cx, box[3] - cy]) / stride
    kps[stride][idx] = ((points5 - np.array([cx, cy])) / stride).reshape(-1)


def _face_a():
    lmk = load_fixture("crop.safetensors")["in.lmk106"].numpy().astype(np.float64)
    pts106 = lmk * 1.1 + np.array([150.0, 120.0])
    x0, y0 = pts106.min(0) - 20
    x1, y1 = pts106.max(0) + 20
    return pts106, np.array([x0, y0, x1, y1])


@pytest.fixture(scope="module", params=[("static", 640), ("dynamic", 512)], ids=["static640", "dynamic512"])
def planted(request, tmp_path_factory):
    kind, size = request.param
    root = tmp_path_factory.mktemp(f"official_{kind}")
    buffalo = root / "insightface" / "models" / "buffalo_l"
    lp = root / "liveportrait"
    buffalo.mkdir(parents=True)
    lp.mkdir()
    det_scale = min(size / IMG_W, size / IMG_H)
    pts106_a, box_a = _face_a()
    kps_a = pts106_a[[38, 88, 80, 52, 61]]
    rng = np.random.default_rng(0)
    box_b = np.array([600.0, 420.0, 660.0, 500.0])
    kps_b = rng.uniform(box_b[:2], box_b[2:], size=(5, 2))
    scores = {s: np.zeros(((size // s) ** 2 * 2, 1)) for s in scrfd.STRIDES}
    boxes = {s: np.zeros(((size // s) ** 2 * 2, 4)) for s in scrfd.STRIDES}
    kps = {s: np.zeros(((size // s) ** 2 * 2, 10)) for s in scrfd.STRIDES}

    def cell(box, stride):
        c = (box[:2] + box[2:]) / 2 * det_scale
        return int(c[0] // stride), int(c[1] // stride)

    _plant(scores, boxes, kps, size, 32, cell(box_a, 32), 1, box_a * det_scale, kps_a * det_scale, 0.9)
    dup = box_a + np.array([6.0, -4.0, 6.0, -4.0])  # same face, lower score: NMS must drop it
    _plant(scores, boxes, kps, size, 16, cell(dup, 16), 0, dup * det_scale, kps_a * det_scale, 0.8)
    _plant(scores, boxes, kps, size, 8, cell(box_b, 8), 0, box_b * det_scale, kps_b * det_scale, 0.6)
    low = np.array([40.0, 450.0, 100.0, 520.0])  # under the threshold
    _plant(scores, boxes, kps, size, 8, cell(low, 8), 1, low * det_scale, kps_b * det_scale, 0.1)
    outputs = [scores[s] for s in scrfd.STRIDES] + [boxes[s] for s in scrfd.STRIDES] + [kps[s] for s in scrfd.STRIDES]
    det_shape = [1, 3, size, size] if kind == "static" else ["N", 3, "H", "W"]
    _const_model(buffalo / "det_10g.onnx", "input.1", det_shape, list(zip(DET_OUT_NAMES, outputs, strict=True)))

    # 2d106det: constant normalised coordinates that put face A's 106 points back where they were planted.
    n = 192
    s = n / (max(box_a[2] - box_a[0], box_a[3] - box_a[1]) * 1.5)
    c = (box_a[:2] + box_a[2:]) / 2
    crop_pts = (pts106_a - c) * s + n / 2
    fc1 = (crop_pts / (n // 2) - 1).reshape(1, 212)
    _const_model(buffalo / "2d106det.onnx", "data", [1, 3, 192, 192], [("fc1", fc1)])

    # landmark.onnx: 203 points of face A, expressed in the 224 crop the reference makes from the 106 points.
    pts203 = rng.uniform(box_a[:2] + 10, box_a[2:] - 10, size=(203, 2))
    crop224 = crop_face(np.zeros((IMG_H, IMG_W, 3), np.uint8), pts106_a.astype(np.float32), "lmk106",
                        CropConfig(dsize=224, scale=1.5, vy_ratio=-0.1, rotate=True, out_size=224))
    norm203 = transform_points(pts203, crop224.M_o2c).astype(np.float64) / 224
    _const_model(lp / "landmark.onnx", "input", [1, 3, 224, 224],
                 [("o0", np.zeros((1, 214))), ("o1", np.zeros((1, 3))), ("o2", norm203.reshape(1, 406))])
    image = rng.integers(0, 255, size=(IMG_H, IMG_W, 3), dtype=np.uint8)
    return {
        "root": root, "size": size, "image": image, "box_a": box_a, "kps_a": kps_a, "pts106_a": pts106_a,
        "pts203_a": pts203, "box_b": box_b, "kps_b": kps_b, "fc1": fc1,
    }


def test_crop_official_detector_decodes_planted_faces(planted):
    det = OfficialFaceDetector(planted["root"], providers=["CPUExecutionProvider"],
                               config=OfficialDetectorConfig(det_size=512))
    assert det.det_input_size == (planted["size"], planted["size"])
    faces = det.detect(planted["image"])
    assert len(faces) == 2, faces  # duplicate suppressed by NMS, low score dropped
    a, b = faces
    assert a.convention == "lmk106" and a.landmarks.shape == (106, 2)
    np.testing.assert_allclose(a.box, planted["box_a"], atol=1e-3)
    np.testing.assert_allclose(a.score, 0.9, atol=1e-6)
    np.testing.assert_allclose(a.extra["kps5"], planted["kps_a"], atol=1e-3)
    np.testing.assert_allclose(a.landmarks, planted["pts106_a"], atol=1e-3)
    np.testing.assert_allclose(a.extra["lmk203"], planted["pts203_a"], atol=2e-3)
    np.testing.assert_allclose(b.box, planted["box_b"], atol=1e-3)
    np.testing.assert_allclose(b.score, 0.6, atol=1e-6)
    np.testing.assert_allclose(b.extra["kps5"], planted["kps_b"], atol=1e-3)
    # Face B gets the same constant 106 output, mapped back through B's own 192 crop.
    box = planted["box_b"]
    s = 192 / (max(box[2] - box[0], box[3] - box[1]) * 1.5)
    expected_b = ((planted["fc1"].reshape(106, 2) + 1) * 96 - 96) / s + (box[:2] + box[2:]) / 2
    np.testing.assert_allclose(b.landmarks, expected_b, atol=1e-3)


def test_crop_official_detector_reference_end_to_end(planted):
    det = OfficialFaceDetector(planted["root"], providers=["CPUExecutionProvider"])
    ref = prepare_reference(planted["image"], det)
    face = ref[0]
    np.testing.assert_allclose(face.face.box, planted["box_a"], atol=1e-3)
    assert face.ratio_convention == "lmk203"
    assert face.crop.convention == "lmk106" and face.crop.crop256.shape == (256, 256, 3)
    expected = crop_face(planted["image"], planted["pts106_a"].astype(np.float32), "lmk106")
    # The 106 points come back through float32 model outputs (~1e-5 relative), which the crop's translation column
    # (hundreds of pixels) carries: README matrix atol plus that relative error.
    np.testing.assert_allclose(face.crop.M_o2c, expected.M_o2c, rtol=1e-5, atol=1e-3)
    ref_b = prepare_reference(planted["image"], det, face_order="smallest")
    np.testing.assert_allclose(ref_b[0].face.box, planted["box_b"], atol=1e-3)


def test_crop_scrfd_preprocess_letterbox():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, size=(IMG_H, IMG_W, 3), dtype=np.uint8)
    blob, det_scale = scrfd.preprocess(image, (640, 640))
    assert blob.shape == (1, 3, 640, 640) and blob.dtype == np.float32
    assert det_scale == pytest.approx(480 / 600)
    resized = cv2.resize(image, (640, 480)).astype(np.float32)
    np.testing.assert_allclose(blob[0, :, :480].transpose(1, 2, 0), (resized - 127.5) / 128, atol=1e-6)
    np.testing.assert_allclose(blob[0, :, 480:], -127.5 / 128)


def test_crop_scrfd_nms_and_anchors():
    dets = np.array([[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.8], [20, 20, 30, 30, 0.7], [0, 0, 10, 10, 0.95]],
                    dtype=np.float32)
    assert scrfd.nms(dets, 0.4) == [3, 2]
    centers = scrfd.anchor_centers(2, 3, 16)
    assert centers.shape == (12, 2)
    np.testing.assert_array_equal(centers[:4], [[0, 0], [0, 0], [16, 0], [16, 0]])
    np.testing.assert_array_equal(centers[6], [0, 16])


def test_crop_official_detector_missing_files(tmp_path):
    with pytest.raises(CheckpointError) as err:
        OfficialFaceDetector(tmp_path)
    msg = str(err.value)
    for part in ("det_10g.onnx", "2d106det.onnx", "landmark.onnx", str(tmp_path), "models/insightface/models/buffalo_l",
                 "models/liveportrait"):
        assert part in msg, part
