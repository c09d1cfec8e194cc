"""Detectors tried in turn: the first that finds a face wins, and its faces say that the first one found none.

The bundled short-range model is tuned for portraits (a face filling much of the picture); the full-range model finds
smaller faces, e.g. two people side by side. Trying the other one before giving up turns many "no face found" into a
crop, and the note says which model found the face so the choice can be made explicit next time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from .base import DetectedFace, FaceDetector


class FallbackDetector:
    """``FaceDetector`` over several detectors; later ones are built only when an earlier one finds nothing."""

    def __init__(self, detectors: Sequence[FaceDetector | Callable[[], FaceDetector]], labels: Sequence[str]) -> None:
        if len(detectors) != len(labels) or not detectors:
            raise ValueError("fallback detector: give one label per detector, at least one")
        self._detectors = list(detectors)
        self.labels = tuple(labels)
        self.found_by: str | None = None
        self._all_missed = False

    def _get(self, i: int) -> FaceDetector:
        det = self._detectors[i]
        if callable(det) and not hasattr(det, "detect"):
            det = self._detectors[i] = det()
        return det

    @property
    def name(self) -> str:
        """The detector that found the last faces; all of them when none did; the first before any detection."""
        if self._all_missed:
            return " and ".join(getattr(d, "name", lb) for d, lb in zip(self._detectors, self.labels, strict=True))
        return self.found_by or getattr(self._get(0), "name", self.labels[0])

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        self._all_missed = False
        for i, label in enumerate(self.labels):
            det = self._get(i)
            faces = det.detect(image)
            if faces:
                self.found_by = getattr(det, "name", label)
                if i == 0:
                    return faces
                missed = " and the ".join(self.labels[:i])
                note = (f"the {missed} face detector found no face; the {label} one found "
                        f"{len(faces)}, used instead")
                return [replace(f, extra={**f.extra, "fallback_note": note}) for f in faces]
        self.found_by, self._all_missed = None, True
        return []
