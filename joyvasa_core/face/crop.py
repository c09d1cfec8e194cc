"""LivePortrait's square face crop: two anchor points give the angle, all landmarks give the centre and size.

MediaPipe's 478-point mesh (``mp478``) is cropped through its 106-point equivalent by default
(``CropConfig.mesh_crop="lmk106"``, see ``landmarks106.py``): the crop parameters were tuned on the 106-point cloud,
and the raw mesh, which covers the forehead, gives a larger, higher crop. ``mesh_crop="kj478"`` keeps the raw-mesh
crop (iris centres 468/473 and mouth point 14 as anchors, all 478 points for centre and size).

The maths is LivePortrait's source crop. The reference runs it in NumPy 1.x, where arrays stay float32 but every
*scalar* expression (``dsize / size``, ``cos(angle)``, the matrix entries) is promoted to float64 before the matrix is
stored as float32. NumPy 2 keeps those scalars in float32 (NEP 50), so this module converts them to Python floats
explicitly: that reproduces the reference's matrices to the last float32 bit on the fixture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import FaceInputError
from .landmarks106 import mesh478_to_lmk106

# Anchor points per landmark convention: (eye-A indices, eye-B indices, mouth indices). The crop uses the midpoint of
# the two eye centres and the mean of the mouth points.
ANCHORS: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    "lmk106": ((33, 35, 40, 39), (87, 89, 94, 93), (52, 61)),
    "lmk203": ((0, 6, 12, 18), (24, 30, 36, 42), (48, 66)),
    "lmk101": ((39, 42, 45, 48), (51, 54, 57, 60), (75, 81)),
    "lmk68": (tuple(range(36, 42)), tuple(range(42, 48)), (48, 54)),
    "mp478": ((468,), (473,), (14,)),
    "lmk5": ((0,), (1,), (3, 4)),
    # X-Pose animal_face: right eye (outer, inner), left eye (inner, outer), nose, lip right, lip left, upper, lower.
    "animal9": ((0, 1), (2, 3), (5, 6)),
}

POINT_COUNTS = {"lmk106": 106, "lmk203": 203, "lmk101": 101, "lmk68": 68, "mp478": 478, "lmk5": 5, "animal9": 9}

# How an mp478 mesh is cropped: via its 106-point equivalent (the layout scale/vy were tuned on) or the raw mesh.
MESH_CROPS = ("lmk106", "kj478")

# How the whole-image crop makes a square of a picture that is not one (``whole_image_crop``).
WHOLE_FITS = ("pad", "squeeze")


@dataclass(frozen=True)
class CropConfig:
    """Source crop options; the defaults are the official source crop."""

    dsize: int = 512
    scale: float = 2.3
    vx_ratio: float = 0.0
    vy_ratio: float = -0.125
    rotate: bool = True
    out_size: int = 256
    mesh_crop: str = "lmk106"

    def __post_init__(self) -> None:
        if self.mesh_crop not in MESH_CROPS:
            raise FaceInputError(
                f"crop: unknown mesh_crop {self.mesh_crop!r}; expected one of {list(MESH_CROPS)} ('lmk106' crops a "
                "MediaPipe mesh like the 106-point detector, 'kj478' on the raw 478 points)."
            )


@dataclass(frozen=True, repr=False)
class FaceCrop:
    """One cropped face and the transforms that tie the crop to the image it came from.

    ``crop512`` is the ``dsize`` crop (512 by default) used for paste-back, ``crop256`` the network input.
    ``M_o2c`` (2, 3) maps original pixels to crop pixels, ``M_c2o`` (3, 3) the way back (both float32, as the
    reference keeps them). ``rect`` is ``[center_x, center_y, size, angle_rad]`` in original pixels.
    """

    crop512: np.ndarray
    crop256: np.ndarray
    M_o2c: np.ndarray
    M_c2o: np.ndarray
    rect: np.ndarray
    pt_crop: np.ndarray | None
    landmarks: np.ndarray | None
    convention: str | None
    image_size: tuple[int, int]
    method: str = "landmarks"
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def dsize(self) -> int:
        return int(self.crop512.shape[0])

    def __repr__(self) -> str:
        cx, cy, size, angle = (float(v) for v in self.rect)
        w, h = self.image_size
        return (
            f"FaceCrop({self.method}, image {w}x{h}, centre ({cx:.1f},{cy:.1f}), size {size:.1f}px, "
            f"angle {math.degrees(angle):.1f} deg, crop {self.dsize}->{self.crop256.shape[0]}, {self.convention})"
        )


def _as_points(landmarks: np.ndarray, convention: str) -> np.ndarray:
    if convention not in ANCHORS:
        raise FaceInputError(
            f"crop: unknown landmark convention {convention!r}; expected one of {sorted(ANCHORS)}."
        )
    pts = np.asarray(landmarks, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] < 2:
        raise FaceInputError(f"crop: landmarks must be (N, 2) pixel (x, y); got shape {pts.shape}.")
    pts = np.ascontiguousarray(pts[:, :2])
    need = POINT_COUNTS[convention]
    if pts.shape[0] != need:
        raise FaceInputError(f"crop: {convention} landmarks need {need} points, got {pts.shape[0]}.")
    if not np.isfinite(pts).all():
        raise FaceInputError("crop: the landmarks contain NaN or infinite values; the detector output is unusable.")
    return pts


def anchor_points(landmarks: np.ndarray, convention: str) -> np.ndarray:
    """(2, 2) float32: the eye midpoint and the mouth point that set the crop's vertical axis."""
    pts = _as_points(landmarks, convention)
    eye_a, eye_b, mouth = ANCHORS[convention]
    left = np.mean(pts[list(eye_a)], axis=0)
    right = np.mean(pts[list(eye_b)], axis=0)
    eye = (left + right) / 2
    lip = np.mean(pts[list(mouth)], axis=0)
    return np.stack([eye, lip], axis=0).astype(np.float32)


def rect_from_landmarks(
    landmarks: np.ndarray, convention: str, scale: float = 2.3, vx_ratio: float = 0.0, vy_ratio: float = -0.125
) -> tuple[np.ndarray, float, float]:
    """Square crop ``(center (2,) float32, size, angle_rad)`` from a landmark set.

    The points are used as given (``mp478`` = the raw-mesh crop); ``crop_points`` picks the points ``crop_face`` uses.
    """
    pts = _as_points(landmarks, convention)
    pt2 = anchor_points(pts, convention)
    uy = pt2[1] - pt2[0]
    length = np.linalg.norm(uy)
    if length <= 1e-3:
        uy = np.array([0, 1], dtype=np.float32)
    else:
        uy = (uy / length).astype(np.float32)
    ux = np.array((uy[1], -uy[0]), dtype=np.float32)
    angle = math.acos(float(np.clip(ux[0], -1.0, 1.0)))
    if ux[1] < 0:
        angle = -angle
    axes = np.array([ux, uy], dtype=np.float32)
    center0 = np.mean(pts, axis=0)
    rpts = (pts - center0) @ axes.T
    lt = np.min(rpts, axis=0)
    rb = np.max(rpts, axis=0)
    center1 = (lt + rb) / 2
    extent = rb - lt
    size = np.float32(max(extent[0], extent[1])) * np.float32(scale)
    center = center0 + ux * center1[0] + uy * center1[1]
    center = center + ux * (np.float32(vx_ratio) * size) + uy * (np.float32(vy_ratio) * size)
    return center.astype(np.float32), float(size), angle


def crop_points(landmarks: np.ndarray, convention: str, mesh_crop: str = "lmk106") -> tuple[np.ndarray, str]:
    """The points and convention the crop maths runs on: an mp478 mesh becomes its 106-point equivalent unless
    ``mesh_crop`` is ``"kj478"``; every other convention is used as given."""
    pts = _as_points(landmarks, convention)
    if convention == "mp478" and mesh_crop == "lmk106":
        return mesh478_to_lmk106(pts), "lmk106"
    return pts, convention


def crop_matrix(center: np.ndarray, size: float, angle: float, dsize: int = 512, rotate: bool = True) -> np.ndarray:
    """Original -> crop similarity (2, 3) float32, scalars in float64 as the reference."""
    s = float(dsize) / float(size)
    cx, cy = float(center[0]), float(center[1])
    t = float(np.float32(dsize / 2))
    if rotate:
        c, n = math.cos(angle), math.sin(angle)
        m = [[s * c, s * n, t - s * (c * cx + n * cy)], [-s * n, s * c, t - s * (-n * cx + c * cy)]]
    else:
        m = [[s, 0.0, t - s * cx], [0.0, s, t - s * cy]]
    return np.array(m, dtype=np.float32)


def invert_affine(M_o2c: np.ndarray) -> np.ndarray:
    """(3, 3) float32 inverse of ``[M_o2c; 0 0 1]``, inverted in float32 as the reference does."""
    full = np.vstack([np.asarray(M_o2c, dtype=np.float32)[:2], np.array([0, 0, 1], dtype=np.float32)])
    return np.linalg.inv(full)


def transform_points(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Apply a 2x3 (or the top of a 3x3) affine to (N, 2) points, in float32."""
    M = np.asarray(M, dtype=np.float32)
    return np.asarray(points, dtype=np.float32)[:, :2] @ M[:2, :2].T + M[:2, 2]


def warp_crop(image: np.ndarray, M_o2c: np.ndarray, dsize: int, out_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The ``dsize`` crop (bilinear, zero border) and its ``out_size`` network input (INTER_AREA when shrinking)."""
    crop = cv2.warpAffine(
        image, np.asarray(M_o2c, dtype=np.float32)[:2], (dsize, dsize), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    if out_size == dsize:
        return crop, crop.copy()
    interp = cv2.INTER_AREA if out_size < dsize else cv2.INTER_LINEAR
    return crop, cv2.resize(crop, (out_size, out_size), interpolation=interp)


def crop_face(image: np.ndarray, landmarks: np.ndarray, convention: str, config: CropConfig | None = None) -> FaceCrop:
    """Crop a face from its landmarks, keeping both transforms for paste-back.

    Unlike the reference, ``vx_ratio`` is applied (the reference's ``crop_image`` drops it; identical at 0). An mp478
    mesh is cropped as set by ``config.mesh_crop``; the result keeps all its points (``landmarks``, ``pt_crop``) for
    the eye/lip ratios, and the 106-point equivalent used for the crop in ``extra["crop_landmarks"]``.
    """
    cfg = config or CropConfig()
    pts = _as_points(landmarks, convention)
    rect_pts, rect_conv = crop_points(pts, convention, cfg.mesh_crop)
    center, size, angle = rect_from_landmarks(rect_pts, rect_conv, cfg.scale, cfg.vx_ratio, cfg.vy_ratio)
    if not size > 0:
        raise FaceInputError(
            f"crop: the {convention} landmarks all sit on one point, so the face has no size; check the detector."
        )
    M_o2c = crop_matrix(center, size, angle, cfg.dsize, cfg.rotate)
    M_c2o = invert_affine(M_o2c)
    crop, small = warp_crop(image, M_o2c, cfg.dsize, cfg.out_size)
    rect = np.array([center[0], center[1], size, angle if cfg.rotate else 0.0], dtype=np.float64)
    return FaceCrop(
        crop512=crop, crop256=small, M_o2c=M_o2c, M_c2o=M_c2o, rect=rect, pt_crop=transform_points(pts, M_o2c),
        landmarks=pts, convention=convention, image_size=(int(image.shape[1]), int(image.shape[0])),
        extra={"crop_landmarks": rect_pts, "crop_convention": rect_conv} if rect_conv != convention else {},
    )


def crop_from_box(
    image: np.ndarray, box, scale: float = 1.0, vx_ratio: float = 0.0, vy_ratio: float = 0.0, dsize: int = 512,
    out_size: int = 256,
) -> FaceCrop:
    """Axis-aligned square crop around a box ``(x0, y0, x1, y1)``: side ``scale * max(w, h)``, centre shifted by
    ``vx/vy_ratio * side``. Used for user boxes and masks (animals, or faces no detector finds)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise FaceInputError(f"crop: the box {list(box)} is empty; give (x0, y0, x1, y1) with x1 > x0 and y1 > y0.")
    size = max(x1 - x0, y1 - y0) * float(scale)
    center = np.array([(x0 + x1) / 2 + vx_ratio * size, (y0 + y1) / 2 + vy_ratio * size], dtype=np.float32)
    M_o2c = crop_matrix(center, size, 0.0, dsize, rotate=False)
    crop, small = warp_crop(image, M_o2c, dsize, out_size)
    return FaceCrop(
        crop512=crop, crop256=small, M_o2c=M_o2c, M_c2o=invert_affine(M_o2c),
        rect=np.array([center[0], center[1], size, 0.0], dtype=np.float64), pt_crop=None, landmarks=None,
        convention=None, image_size=(int(image.shape[1]), int(image.shape[0])), method="box",
    )


def extend_to_square(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """The image inside a ``side`` square at (``left``, ``top``), the rest filled by a blurred extension of its edges.

    Why not black (or any constant): the straight high-contrast border would be an edge the keypoint detector and
    the warp treat as part of the subject, and when the head moves the warp pulls that colour into the picture. Edge
    replication alone continues each border pixel's colour to the square's side, so there is no step at the border,
    but fine detail there (fur, hair) turns into stripes; blurring the replicated part (sigma ``side / 16``), fading
    in over ``side / 32`` px from the border, leaves a smooth colour field with nothing to animate. Mirroring would
    copy the subject into the padding.
    """
    h, w = image.shape[:2]
    if (h, w) == (side, side):
        return image.copy()
    canvas = cv2.copyMakeBorder(image, top, side - h - top, left, side - w - left, cv2.BORDER_REPLICATE)
    ramp = max(side / 32, 1.0)
    blurred = cv2.GaussianBlur(canvas, (0, 0), sigmaX=2 * ramp)
    xs, ys = np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32)
    dx = np.maximum(np.maximum(left - xs, xs - (left + w - 1)), 0)
    dy = np.maximum(np.maximum(top - ys, ys - (top + h - 1)), 0)
    weight = np.clip(np.maximum(dy[:, None], dx[None, :]) / ramp, 0, 1)[..., None]
    out = canvas.astype(np.float32) * (1 - weight) + blurred.astype(np.float32) * weight
    out[top : top + h, left : left + w] = image
    return np.clip(out + 0.5, 0, 255).astype(image.dtype)


def whole_image_crop(image: np.ndarray, dsize: int = 512, out_size: int = 256, fit: str = "pad") -> FaceCrop:
    """No face crop: the whole image as the square the networks see.

    ``fit="pad"`` (the default) keeps the picture undistorted: it is centred in a square of its longer side, the rest
    filled by :func:`extend_to_square`, and that square is resized. ``fit="squeeze"`` resizes W x H straight to the
    square, as the reference does for animals and its command line (a 451 x 300 cat is seen 1.5 times narrower).
    Either way the 256 input is ``cv2.resize`` of the (padded) image straight to 256 (INTER_LINEAR, as the reference),
    and the transforms include cv2.resize's half-pixel convention so that paste-back lands exactly;
    ``extra["picture"]`` is the picture's area in the ``dsize`` crop (x0, y0, x1, y1).
    """
    if fit not in WHOLE_FITS:
        raise FaceInputError(f"crop: unknown whole-image fit {fit!r}; expected one of {list(WHOLE_FITS)}.")
    h, w = image.shape[:2]
    if fit == "pad":
        side = max(w, h)
        left, top = (side - w) // 2, (side - h) // 2
        square = extend_to_square(image, left, top, side)
        sx = sy = dsize / side
    else:
        left = top = 0
        square = image
        sx, sy = dsize / w, dsize / h
    M_o2c = np.array([[sx, 0.0, (left + 0.5) * sx - 0.5], [0.0, sy, (top + 0.5) * sy - 0.5]], dtype=np.float32)
    crop = cv2.resize(square, (dsize, dsize), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(square, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
    picture = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
    return FaceCrop(
        crop512=crop, crop256=small, M_o2c=M_o2c, M_c2o=invert_affine(M_o2c),
        rect=np.array([(w - 1) / 2, (h - 1) / 2, max(w, h), 0.0], dtype=np.float64), pt_crop=None, landmarks=None,
        convention=None, image_size=(int(w), int(h)), method="whole", extra={"fit": fit, "picture": picture},
    )


def limited_size(h: int, w: int, max_dim: int = 1280) -> tuple[int, int]:
    """(H, W) after the reference's ``resize_to_limit`` shrink, before trimming to the division."""
    if max_dim > 0 and max(h, w) > max_dim:
        if h > w:
            return max_dim, int(w * (max_dim / h))
        return int(h * (max_dim / w)), max_dim
    return h, w


def resize_to_limit(image: np.ndarray, max_dim: int = 1280, division: int = 2) -> np.ndarray:
    """Shrink so the longer side is at most ``max_dim`` (cv2 INTER_LINEAR, as the reference), then trim the bottom and
    right so both sides are multiples of ``division``. A side that would become 0 raises FaceInputError."""
    h, w = image.shape[:2]
    new_h, new_w = limited_size(h, w, max_dim)
    if (new_h, new_w) != (h, w):
        if new_w < 1 or new_h < 1:
            raise FaceInputError(
                f"reference image: {w}x{h} is too elongated; shrinking it to the {max_dim}px limit leaves "
                f"{max(new_w, 0)}x{max(new_h, 0)}. Crop the image around the face first."
            )
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if division > 1:
        h, w = image.shape[:2]
        new_h, new_w = h - h % division, w - w % division
        if new_h < 1 or new_w < 1:
            raise FaceInputError(
                f"reference image: {w}x{h} is too thin (sides must be at least {division}px after resizing); "
                "crop the image around the face first."
            )
        image = image[:new_h, :new_w]
    return image
