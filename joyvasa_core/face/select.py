"""Which face to animate when a photo holds several: sort by an order, then take an index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import FaceInputError
from .detectors.base import DetectedFace


def _area(f: DetectedFace) -> float:
    x0, y0, x1, y1 = (float(v) for v in f.box[:4])
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def _cx(f: DetectedFace) -> float:
    return (float(f.box[0]) + float(f.box[2])) / 2


def _cy(f: DetectedFace) -> float:
    return (float(f.box[1]) + float(f.box[3])) / 2


# "largest" is the reference's 'large-small' (bounding-box area, descending).
ORDERS = {
    "largest": lambda f: -_area(f),
    "smallest": _area,
    "left_to_right": _cx,
    "right_to_left": lambda f: -_cx(f),
    "top_to_bottom": _cy,
    "bottom_to_top": lambda f: -_cy(f),
    "highest_score": lambda f: -float(f.score),
}
FACE_ORDERS = tuple(ORDERS) + ("closest_to_center",)


def sort_faces(faces: Sequence[DetectedFace], order: str = "largest", image_size: tuple[int, int] | None = None):
    """Faces in the requested order (stable, so ties keep the detector's order).

    ``closest_to_center`` needs ``image_size`` (W, H).
    """
    if order == "closest_to_center":
        if image_size is None:
            raise ValueError("closest_to_center needs the image size")
        w, h = image_size
        return sorted(faces, key=lambda f: float(np.hypot(_cx(f) - w / 2, _cy(f) - h / 2)))
    if order not in ORDERS:
        raise FaceInputError(f"face selection: unknown order {order!r}; choose one of {', '.join(FACE_ORDERS)}.")
    return sorted(faces, key=ORDERS[order])


def select_face(
    faces: Sequence[DetectedFace], index: int = 0, order: str = "largest",
    image_size: tuple[int, int] | None = None, what: str = "reference image",
) -> DetectedFace:
    """The ``index``-th face in ``order`` (negative indices count from the end); a clear error when out of range."""
    ranked = sort_faces(faces, order, image_size)
    n = len(ranked)
    if n == 0:
        raise FaceInputError(f"face selection: no face found in the {what}.")
    if not -n <= index < n:
        faces = f"{n} face{'s' if n != 1 else ''} (valid: 0..{n - 1} in order '{order}')"
        raise FaceInputError(
            f"face selection: face_index {index} asked for, but the {what} has {faces}. Lower face_index.",
            cli=f"--face-index {index}: the {what} has {faces}; give a lower --face-index.",
        )
    return ranked[index]
