"""Image files in and out: the portrait a job animates, the PNG of a motion preview.

Beside ``audio/io.py`` (speech) and ``video.py`` (the mp4 writer): a file becomes an array here, the face code works
on arrays. A truncated or unreadable file is an error naming the option that gave it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import FaceInputError, JoyVASAError
from .partials import atomic_path
from .validate import CLI, Words, check_input_file

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _truncated(data: np.ndarray) -> str | None:
    """The format of an image file cut short (its end marker missing), decided before a decoder prints warnings."""
    head, tail = bytes(data[:8]), bytes(data[-1024:])
    if head == PNG_SIGNATURE and b"IEND" not in tail:
        return "PNG"
    if head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        return "JPEG"
    return None


def read_image(path: str | os.PathLike, key: str = "image", words: Words = CLI) -> np.ndarray:
    """RGB(A) uint8/uint16 array of an image file (the alpha is kept: the reference loader's policy decides)."""
    import cv2

    p = check_input_file(key, path, words, "portrait image")
    data = np.fromfile(str(p), dtype=np.uint8)
    shown = words.value(key, p)
    if not data.size:
        raise FaceInputError(f"{shown}: the file is empty (0 bytes); give the portrait image.")
    kind = _truncated(data)
    if kind:
        raise FaceInputError(f"{shown}: the {kind} file is truncated (an interrupted download or copy); save or "
                             "download it again.")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FaceInputError(f"{shown}: cannot be read as an image (png, jpg, webp, bmp, tiff...).")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def write_png(img: np.ndarray, path: Path, key: str = "motion_preview", words: Words = CLI) -> None:
    """RGB uint8 as a PNG, complete under its name or not at all."""
    import cv2

    ok, data = cv2.imencode(".png", img[..., ::-1])
    if not ok:
        raise JoyVASAError(f"{words.value(key, path)}: the image could not be encoded.")
    with atomic_path(path) as partial:
        partial.write_bytes(data.tobytes())
