"""Motion from a driving video: every frame's motion is exactly what the motion extractor gives on that frame's crop
(and matches the golden fixture's M outputs), the crop is LivePortrait's averaged driving square found by our face
detection, and the motion drives a face the way LivePortrait's video-driven path composes keypoints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from fixture_support import assert_close, fixture_path, load_fixture
from model_folders import LP_SMALL
from test_blinks import lp_models  # noqa: F401  (the shared small-network fixture)

from joyvasa_core.errors import FaceInputError
from joyvasa_core.face.crop import crop_matrix, crop_points, rect_from_landmarks
from joyvasa_core.face.detectors.bundled import BundledFaceDetector
from joyvasa_core.face.driving import DRIVING_SCALE, DRIVING_VY, driving_crops
from joyvasa_core.face.reference import ReferenceOptions, prepare_reference
from joyvasa_core.keypoints import KeypointOptions, keypoint_info_from_heads, transform_keypoints
from joyvasa_core.motion.edit import lips_absolute
from joyvasa_core.pipeline import (
    _image_tensor,
    compute_target_keypoints,
    extract_appearance,
    extract_motion,
    motion_from_video,
)

ATOL_M_ANGLES = 2e-4  # fixture README: M angles
ATOL_M_INFO = 3e-5  # fixture README: M.info.{t, exp, scale, kp}, M.R_s
ATOL_KP = 5e-5  # fixture README: keypoints


def _fixture_frames() -> tuple[np.ndarray, object]:
    """Three 256 frames: the fixture's source image, its mirror, and a darker copy."""
    fx = load_fixture(LP_SMALL)
    img = fx["src.img256"].numpy()
    return np.stack([img, img[:, ::-1], (img * 0.7).astype(np.uint8)]), fx


def test_each_frame_is_the_extractor_on_its_crop(lp_models):  # noqa: F811
    frames, fx = _fixture_frames()
    motion = motion_from_video(lp_models, frames, crop=False, batch_size=1)
    assert motion.n_frames == 3 and motion.fps == 25 and not lips_absolute(motion)
    assert motion.coef.shape == (3, 0) and motion.eye_open is None
    for i in range(3):
        with torch.no_grad():
            heads = lp_models.motion_extractor(_image_tensor(frames[i : i + 1], lp_models.device))
            info = keypoint_info_from_heads(heads)
        for name in ("exp", "scale", "t", "pitch", "yaw", "roll", "R"):
            assert torch.equal(getattr(motion, name)[i : i + 1], getattr(info, name)), f"frame {i} {name}"
    # Frame 0 is the fixture's source: the reference's own M outputs.
    for key in ("pitch", "yaw", "roll"):
        assert_close(getattr(motion, key)[:1], fx[f"M.info.{key}"], atol=ATOL_M_ANGLES, name=key)
    for key in ("exp", "scale", "t"):
        assert_close(getattr(motion, key)[:1], fx[f"M.info.{key}"], atol=ATOL_M_INFO, name=key)
    assert_close(motion.R[:1], fx["M.R_s"], atol=ATOL_M_INFO, name="R")
    assert not torch.allclose(motion.yaw[1], motion.yaw[0]), "the mirrored frame turns the other way"
    batched = motion_from_video(lp_models, frames, crop=False, batch_size=16)
    assert torch.allclose(batched.exp, motion.exp, atol=1e-5)


def test_video_keypoints_follow_liveportraits_video_composition(lp_models):  # noqa: F811
    frames, fx = _fixture_frames()
    motion = motion_from_video(lp_models, frames, crop=False)
    source = np.ascontiguousarray(frames[1])  # another face than the video's frame 0
    ref = prepare_reference(source, None, ReferenceOptions(mode="human", crop="whole"))
    appearance = extract_appearance(lp_models, ref)
    s = appearance.info
    plain = KeypointOptions(driving_option="pose-friendly", stitching=False, normalize_lip=False)
    x_d = compute_target_keypoints(lp_models, appearance, motion, plain).x_d
    # liveportrait.md 10.4, relative, region all: every row of exp relative (no JoyVASA lip override).
    R_new = (motion.R @ motion.R[:1].transpose(1, 2)) @ s.R
    delta = s.exp + (motion.exp - motion.exp[:1])
    scale = s.scale * (motion.scale / motion.scale[:1])
    t = s.t + (motion.t - motion.t[:1])
    t[:, 2] = 0
    want = transform_keypoints(s.kp.expand(3, -1, -1), delta, scale, t, R_new)
    assert_close(x_d, want, atol=ATOL_KP, name="x_d")
    assert_close(x_d[0], appearance.x_s[0], atol=ATOL_KP, name="frame 0 is the source")
    # The same frames marked as speech lips would take the lip rows absolute: a different result.
    speech_like = type(motion)(**{**motion.__dict__, "settings": {}})
    assert not torch.allclose(compute_target_keypoints(lp_models, appearance, speech_like, plain).x_d, x_d, atol=1e-3)


@pytest.fixture(scope="module")
def moving_face() -> np.ndarray:
    """Three frames of a real face photo drifting right and down, as a camera pan would."""
    img = cv2.cvtColor(cv2.imread(str(fixture_path("astronaut.png"))), cv2.COLOR_BGR2RGB)
    shifts = [(6 * i, 4 * i) for i in range(3)]
    return np.stack([cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, dy]]), img.shape[1::-1]) for dx, dy in shifts])


class RecordingDetector:
    """The bundled detector, keeping what it found on each frame so the test can redo the crop maths by hand."""

    def __init__(self) -> None:
        self.inner = BundledFaceDetector()
        self.name = self.inner.name
        self.found: list = []

    def detect(self, image):
        faces = self.inner.detect(image)
        self.found.append(faces)
        return faces


def test_driving_crop_is_the_averaged_square_of_our_detection(lp_models, moving_face):  # noqa: F811
    detector = RecordingDetector()
    motion = motion_from_video(lp_models, moving_face, detector, fps=30)
    assert motion.fps == 30 and motion.n_frames == 3 and motion.settings["frames_without_face"] == []
    rects = []
    for faces in detector.found:
        (face,) = faces
        pts, conv = crop_points(face.landmarks, face.convention)
        center, size, _ = rect_from_landmarks(pts, conv, DRIVING_SCALE, 0.0, DRIVING_VY)
        rects.append([center[0], center[1], size])
    mean = np.mean(np.asarray(rects, dtype=np.float64), axis=0)
    M = crop_matrix(mean[:2].astype(np.float32), float(mean[2]), 0.0, 512, rotate=False)
    want = np.stack([cv2.resize(cv2.warpAffine(f, M, (512, 512), flags=cv2.INTER_LINEAR), (256, 256),
                                interpolation=cv2.INTER_LINEAR) for f in moving_face])
    # One square for the clip (the face drifts inside it), and the motion is M on exactly those crops.
    info = extract_motion(lp_models, want)
    for name in ("exp", "scale", "t", "pitch", "yaw", "roll", "R"):
        assert torch.equal(getattr(motion, name), getattr(info, name)), name
    crops = driving_crops(moving_face[:1], detector)
    assert np.array_equal(crops.crops256[0], cv2.resize(cv2.warpAffine(
        moving_face[0], crop_matrix(np.float32(rects[0][:2]), float(rects[0][2]), 0.0, 512, rotate=False),
        (512, 512), flags=cv2.INTER_LINEAR), (256, 256), interpolation=cv2.INTER_LINEAR))


def test_video_errors(lp_models):  # noqa: F811
    black = np.zeros((3, 128, 128, 3), np.uint8)
    black[:, 10:20, 10:20] = 200  # not uniform, but no face
    with pytest.raises(FaceInputError, match="no face found in any of the 3 frames by the mediapipe-short"):
        motion_from_video(lp_models, black, None)  # no detector given: the bundled one
    with pytest.raises(FaceInputError, match="needs a face detector"):
        driving_crops(black, None)
    with pytest.raises(FaceInputError, match="no frames"):
        motion_from_video(lp_models, black[:0], None, crop=False)
