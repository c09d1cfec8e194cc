"""Crops of a driving video, as LivePortrait's video-driven path makes them, with our face detection.

Every frame's face is found (the largest one) and gives a square from its landmarks with the driving crop's
parameters (scale 2.2, vy -0.1, LivePortrait's driving-video crop); the squares' centres and sizes are
averaged over the clip and that one axis-aligned square crops every frame, so the crop does not shake with the
detector. The 512 crop is resized to 256 with INTER_LINEAR, as the reference resizes driving crops. A frame where no
face is found is cropped with the shared square too and listed in ``missing``; a clip with no face at all is an
error. ``crop=False`` resizes whole frames (the reference's square-video path).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import FaceInputError
from .crop import crop_matrix, crop_points, rect_from_landmarks
from .detectors.base import FaceDetector
from .reference import to_rgb_uint8
from .select import select_face

DRIVING_SCALE = 2.2
DRIVING_VY = -0.1


@dataclass(frozen=True, eq=False, repr=False)
class DrivingCrops:
    """The network inputs of a driving clip and what the face detection saw on each frame."""

    crops256: np.ndarray  # (N, 256, 256, 3) uint8
    rect: np.ndarray  # [center_x, center_y, size] of the shared square, original pixels
    missing: tuple[int, ...] = ()  # frames where no face was found

    def __len__(self) -> int:
        return int(self.crops256.shape[0])

    def __repr__(self) -> str:
        cx, cy, size = (float(v) for v in self.rect)
        return (f"DrivingCrops({len(self)} frames, square {size:.0f}px at ({cx:.0f},{cy:.0f}), "
                f"{len(self.missing)} without a face)")


def driving_crops(
    frames, detector: FaceDetector | None, crop: bool = True, scale: float = DRIVING_SCALE,
    vy_ratio: float = DRIVING_VY, dsize: int = 512, out_size: int = 256,
) -> DrivingCrops:
    """Crop every frame of ``frames`` ((N, H, W, 3) in any layout ``to_rgb_uint8`` reads) for the motion extractor."""
    images = [to_rgb_uint8(frames[i], f"driving frame {i}")[0] for i in range(len(frames))]
    if not images:
        raise FaceInputError("motion from video: the video has no frames; connect a video with at least one frame.")
    h, w = images[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in images):
        raise FaceInputError("motion from video: the frames differ in size; give frames of one video.")
    rects, missing = [], []
    for i, img in enumerate(images):
        faces = detector.detect(img) if detector is not None and crop else []
        if not faces:
            missing.append(i)
            continue
        face = select_face(faces, 0, "largest", (w, h), f"driving frame {i}")
        pts, conv = crop_points(face.landmarks, face.convention)
        center, size, _ = rect_from_landmarks(pts, conv, scale, 0.0, vy_ratio)
        rects.append((float(center[0]), float(center[1]), size))
    if not crop:
        small = np.stack([cv2.resize(im, (out_size, out_size), interpolation=cv2.INTER_LINEAR) for im in images])
        rect = np.array([(w - 1) / 2, (h - 1) / 2, max(w, h)], dtype=np.float64)
        return DrivingCrops(small, rect)
    if detector is None:
        raise FaceInputError("motion from video: cropping needs a face detector; connect one, or turn crop off "
                             "for a video that already shows only the face.")
    if not rects:
        raise FaceInputError(f"motion from video: no face found in any of the {len(images)} frames by the "
                             f"{getattr(detector, 'name', 'face')} detector; use a video with a clear, front-facing "
                             "face, or turn crop off.")
    cx, cy, size = (float(v) for v in np.mean(np.asarray(rects, dtype=np.float64), axis=0))
    M = crop_matrix(np.array([cx, cy], dtype=np.float32), size, 0.0, dsize, rotate=False)
    small = []
    for img in images:
        c512 = cv2.warpAffine(img, M, (dsize, dsize), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)
        small.append(cv2.resize(c512, (out_size, out_size), interpolation=cv2.INTER_LINEAR))
    return DrivingCrops(np.stack(small), np.array([cx, cy, size]), tuple(missing))
