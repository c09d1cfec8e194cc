"""LivePortrait's driving-motion ``.pkl`` (its "motion template", ``-d motion.pkl``) <-> :class:`MotionSequence`.

It is called a driving template here so it is not confused with JoyVASA's ``motion_template.pkl`` (normalisation
statistics). The layout LivePortrait and FasterLivePortrait write and read is a plain pickle of::

    {"n_frames": N, "output_fps": fps,
     "motion": [{"scale": (1,1), "R": (1,3,3), "exp": (1,21,3), "t": (1,3), ...} for each frame],
     "c_eyes_lst": [(1,2) per frame] or [], "c_lip_lst": [(1,1) per frame] or []}

with float32 numpy arrays. LivePortrait's own templates add ``kp`` and ``x_s`` (canonical and transformed keypoints
of the driving frame), FasterLivePortrait's JoyVASA motion ``pitch``/``yaw``/``roll`` (1,1) degrees; older files
name R ``R_d`` and the ratio lists ``c_d_eyes_lst``/``c_d_lip_lst``. Both spellings are read.

Written here: the four LivePortrait keys plus the angles per frame, empty ratio lists (LivePortrait reads them only
for eye/lip retargeting), and a ``joyvasa`` entry that LivePortrait ignores, holding what makes the round trip exact
(the generator's coefficients, the raw pose, the eye-openness track, seed and settings as JSON).

Reading goes through an unpickler that can only rebuild numpy arrays and builtin containers: a file that names any
other global (which is how a pickle runs code) is refused before anything is called.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, MotionError
from ..keypoints import rotation_angles
from ..motion.blinks import eye_open_from_ratios
from ..motion.edit import motion_from_pose
from ..motion.sequence import MotionSequence
from ..partials import atomic_path
from ..validate import frames_problem
from .joyvasa import NumpyUnpickler
from .motion_sequence import FILE_FORMAT

EXTRA_KEY = "joyvasa"
MAX_BYTES = 2_000_000_000  # about 2 hours of frames at 25 fps are ~10 MB; anything near this is not a template
FRAME_SHAPES = {"scale": (1, 1), "R": (1, 3, 3), "exp": (1, 21, 3), "t": (1, 3), "pitch": (1, 1), "yaw": (1, 1),
                "roll": (1, 1)}
_FIX = "export it again with LivePortrait's make_motion_template or this pack's Export Driving Template"


class _DrivingTemplateUnpickler(NumpyUnpickler):
    def refusal(self, global_name: str) -> CheckpointError:
        return CheckpointError(
            f"driving template {self._source}: refused to unpickle it, it names the global {global_name}; a "
            "driving template holds only numpy arrays, lists and numbers, and unpickling anything else can run "
            "code. Use a .pkl written by LivePortrait, FasterLivePortrait or this pack."
        )

    def torch_file(self) -> CheckpointError:
        return CheckpointError(f"driving template {self._source}: this is a PyTorch file, not a driving template "
                               ".pkl")


def _unpickle(data: bytes, source: str) -> Any:
    try:
        return _DrivingTemplateUnpickler(io.BytesIO(data), source).load()
    except CheckpointError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError) as exc:
        raise CheckpointError(f"driving template {source}: the pickle cannot be read ({type(exc).__name__}: {exc}); "
                              f"it is truncated or not a pickle; {_FIX}.") from None


def _array(value: Any, shape: tuple[int, ...], where: str, source: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise CheckpointError(f"driving template {source}: {where} is a {type(value).__name__}, not numbers; "
                              f"{_FIX}.") from None
    if arr.size != int(np.prod(shape)):
        raise CheckpointError(f"driving template {source}: {where} has shape {arr.shape}, expected {shape}; {_FIX}.")
    if not np.isfinite(arr).all():
        raise CheckpointError(f"driving template {source}: {where} holds NaN or Inf; {_FIX}.")
    return arr.reshape(shape)


def template_dict(motion: MotionSequence) -> dict[str, Any]:
    """The pickle's content for ``motion`` (see the module docstring)."""
    def f32(x: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
        return x.detach().to("cpu", torch.float32).numpy().reshape(shape).copy()

    frames = []
    for i in range(motion.n_frames):
        frames.append({k: f32(getattr(motion, k)[i], shape) for k, shape in FRAME_SHAPES.items()})
    extra: dict[str, Any] = {
        "format": FILE_FORMAT,
        "coef": motion.coef.detach().to("cpu", torch.float32).numpy().copy(),
        "pose_raw": motion.pose_raw.detach().to("cpu", torch.float32).numpy().copy(),
        "seed": motion.seed,
        "settings": json.dumps(motion.settings),
    }
    if motion.eye_open is not None:
        extra["eye_open"] = motion.eye_open.detach().to("cpu", torch.float32).numpy().copy()
    return {"n_frames": motion.n_frames, "output_fps": motion.fps, "motion": frames, "c_eyes_lst": [],
            "c_lip_lst": [], EXTRA_KEY: extra}


def write_driving_template(motion: MotionSequence, path: str | os.PathLike) -> Path:
    """Write ``motion`` as a driving template .pkl; the file appears complete under its name or not at all."""
    p = Path(path)
    with atomic_path(p) as partial, open(partial, "wb") as fh:
        pickle.dump(template_dict(motion), fh, protocol=4)
    return p


def _ratio_track(raw: Mapping[str, Any], keys: Sequence[str], n: int, width: int, source: str) -> np.ndarray | None:
    for key in keys:
        values = raw.get(key)
        if isinstance(values, (list, tuple)) and len(values) == n and n > 0:
            return np.stack([_array(v, (1, width), f"{key}[{i}]", source)[0] for i, v in enumerate(values)])
    return None


def motion_from_template(raw: Any, source: str = "driving template") -> MotionSequence:
    """A :class:`MotionSequence` from the unpickled content of a driving template (rules in the module docstring).

    The frame count is the length of the ``motion`` list (``n_frames`` is only checked against it); angles come from
    the file when it has them, else from R. A file this pack wrote comes back exactly as it was saved.
    """
    if not isinstance(raw, Mapping) or not isinstance(raw.get("motion"), (list, tuple)):
        kind = type(raw).__name__ if not isinstance(raw, Mapping) else f"a dict with keys {sorted(map(str, raw))[:8]}"
        raise CheckpointError(f"driving template {source}: holds {kind}, expected a dict with a 'motion' list of "
                              f"per-frame dicts; {_FIX}.")
    frames = raw["motion"]
    n = len(frames)
    if n == 0:
        raise CheckpointError(f"driving template {source}: the 'motion' list is empty; {_FIX}.")
    if frames_problem(n, "it"):
        raise CheckpointError(f"driving template {source}: {frames_problem(n, 'it')}")
    stated = raw.get("n_frames", n)
    if not isinstance(stated, (int, np.integer)) or int(stated) != n:
        raise CheckpointError(f"driving template {source}: n_frames says {stated!r} but 'motion' holds {n} frames; "
                              f"{_FIX}.")
    fps = raw.get("output_fps", 25)
    if not isinstance(fps, (int, float, np.integer, np.floating)) or not 1 <= float(fps) <= 1000:
        raise CheckpointError(f"driving template {source}: output_fps is {fps!r}, expected a frame rate; {_FIX}.")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in FRAME_SHAPES}
    has_angles = True
    for i, frame in enumerate(frames):
        if not isinstance(frame, Mapping):
            raise CheckpointError(f"driving template {source}: motion[{i}] is a {type(frame).__name__}, expected a "
                                  f"dict with scale, R, exp and t; {_FIX}.")
        rot = frame.get("R", frame.get("R_d"))
        missing = [k for k, v in (("scale", frame.get("scale")), ("R", rot), ("exp", frame.get("exp")),
                                  ("t", frame.get("t"))) if v is None]
        if missing:
            raise CheckpointError(f"driving template {source}: motion[{i}] lacks {missing} (it has "
                                  f"{sorted(map(str, frame))}); {_FIX}.")
        values = {**frame, "R": rot}
        has_angles = has_angles and all(k in frame for k in ("pitch", "yaw", "roll"))
        for k, shape in FRAME_SHAPES.items():
            if k in values:
                cols[k].append(_array(values[k], shape, f"motion[{i}]['{k}']", source))
    t = {k: torch.from_numpy(np.concatenate(v)) for k, v in cols.items() if len(v) == n}
    if not has_angles:
        t["pitch"], t["yaw"], t["roll"] = rotation_angles(t["R"])
    extra = raw.get(EXTRA_KEY)
    if isinstance(extra, Mapping) and extra.get("format") == FILE_FORMAT:
        return _own_motion(t, extra, int(fps), n, source)
    eyes = _ratio_track(raw, ("c_eyes_lst", "c_d_eyes_lst"), n, 2, source)
    eye_open = None if eyes is None else torch.from_numpy(eye_open_from_ratios(eyes))
    settings = {"source": "liveportrait driving template", "lips_origin": "template"}
    return motion_from_pose(fps=int(fps), settings=settings, eye_open=eye_open, **t)


def _own_motion(t: dict[str, torch.Tensor], extra: Mapping[str, Any], fps: int, n: int, source: str) -> MotionSequence:
    """A file this pack wrote: the frame values plus the stored coefficients, raw pose, eyes, seed and settings."""
    try:
        coef = torch.from_numpy(np.asarray(extra["coef"], dtype=np.float32).reshape(n, -1).copy())
        pose_raw = torch.from_numpy(_array(extra["pose_raw"], (n, 7), "joyvasa pose_raw", source).copy())
        settings = json.loads(extra.get("settings") or "{}")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"driving template {source}: its joyvasa entry is damaged ({exc}); {_FIX}.") from None
    eye = extra.get("eye_open")
    eye_open = None if eye is None else torch.from_numpy(_array(eye, (n, 1), "joyvasa eye_open", source).copy())
    seed = extra.get("seed")
    return MotionSequence(coef=coef, pose_raw=pose_raw, fps=fps, seed=None if seed is None else int(seed),
                          settings=settings if isinstance(settings, dict) else {}, eye_open=eye_open, **t)


def read_driving_template(path: str | os.PathLike) -> MotionSequence:
    """Load a driving template .pkl as a motion; every problem is a CheckpointError naming the file and the fix."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"driving template {p}: no such file; check the path.")
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise CheckpointError(f"driving template {p}: {size} bytes is far too large for a driving template.")
    try:
        return motion_from_template(_unpickle(p.read_bytes(), str(p)), str(p))
    except MotionError as exc:
        raise CheckpointError(f"driving template {p}: {exc}") from None
