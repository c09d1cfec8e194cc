"""Any motion file by its name: a LivePortrait driving template (.pkl) or a saved motion (.safetensors)."""

from __future__ import annotations

import os
from pathlib import Path

from ..motion.sequence import MotionSequence
from .driving_template import read_driving_template


def read_motion_file(path: str | os.PathLike) -> MotionSequence:
    """``.pkl``: LivePortrait's driving template (restricted unpickler); anything else: ``MotionSequence.load``."""
    return read_driving_template(path) if Path(path).suffix.lower() == ".pkl" else MotionSequence.load(path)
