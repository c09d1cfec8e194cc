"""A ``MotionSequence`` as a file: safetensors with the frame tensors and a ``json`` metadata entry (fps, seed,
settings). The domain object never touches the disk; this reader and writer do."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError, MotionError
from ..motion.sequence import FRAME_FIELDS, OPTIONAL_FIELDS, MotionSequence
from ..partials import atomic_path
from ..validate import frames_problem

FILE_FORMAT = "joyvasa_motion"
FILE_VERSION = 1


def write_motion_sequence(motion: MotionSequence, path: str | os.PathLike) -> None:
    """Write ``motion`` atomically: the file appears complete under ``path`` or not at all."""
    meta = {"format": FILE_FORMAT, "version": FILE_VERSION, "fps": motion.fps, "seed": motion.seed,
            "settings": motion.settings}
    present = [k for k in FRAME_FIELDS + OPTIONAL_FIELDS if getattr(motion, k) is not None]
    tensors = {k: getattr(motion, k).detach().to("cpu").contiguous() for k in present}
    with atomic_path(path) as partial:
        save_file(tensors, str(partial), metadata={"json": json.dumps(meta)})


def read_motion_sequence(path: str | os.PathLike) -> MotionSequence:
    """Read a file written by :func:`write_motion_sequence`; anything else raises CheckpointError naming what was
    found."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"motion file: {path} does not exist; save a motion there first")
    try:
        with safe_open(str(path), "pt") as f:
            raw = (f.metadata() or {}).get("json")
            frames = max((f.get_slice(k).get_shape()[:1] or [0])[0] for k in f.keys()) if f.keys() else 0
            too_long = frames_problem(frames, "the motion")  # measured from the header, before any tensor is read
            tensors = {} if too_long else {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise CheckpointError(f"motion file: {path} is not a safetensors file ({exc})") from exc
    if too_long:
        raise CheckpointError(f"motion file: {path}: {too_long}")
    meta = json.loads(raw) if raw else {}
    if meta.get("format") != FILE_FORMAT:
        raise CheckpointError(
            f"motion file: {path} has format {meta.get('format')!r}, expected {FILE_FORMAT!r}; "
            "it was not written by Save Motion or --save-motion"
        )
    missing = [k for k in FRAME_FIELDS if k not in tensors]
    if missing:
        raise CheckpointError(f"motion file: {path} lacks tensors {missing}; re-save the motion")
    known = {f.name for f in fields(MotionSequence)}
    extra = {k: meta[k] for k in ("fps", "seed", "settings") if k in known and k in meta}
    optional = {k: tensors[k] for k in OPTIONAL_FIELDS if k in tensors}
    try:  # the motion checks itself: frame counts, finite values
        return MotionSequence(**{k: tensors[k] for k in FRAME_FIELDS}, **optional, **extra)
    except MotionError as exc:
        raise MotionError(f"motion file: {path}: {exc}") from None
