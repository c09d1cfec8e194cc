"""Any motion file by its name: a LivePortrait driving template (.pkl) or a saved motion (.safetensors)."""

from __future__ import annotations

import os
from pathlib import Path

from ..motion.sequence import MotionSequence
from .driving_template import read_driving_template
from .motion_sequence import read_motion_sequence


def read_motion_file(path: str | os.PathLike) -> MotionSequence:
    """``.pkl``: LivePortrait's driving template (restricted unpickler); anything else: a saved motion
    (``read_motion_sequence``)."""
    return read_driving_template(path) if Path(path).suffix.lower() == ".pkl" else read_motion_sequence(path)
