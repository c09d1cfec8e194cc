"""Motion as material: build a motion from pose parts, retime, fit to a length, mix, scale, offset, crossfade.

Every function returns a new :class:`MotionSequence` and never changes its inputs. The rules, stated once:

* **Frame 0 is the reference.** Composition drives the face relative to motion frame 0, so multipliers scale each
  part's deviation from frame 0 (0 holds the part still as it is at frame 0, 1 leaves it unchanged, 2 doubles it).
  A constant head-pose offset would cancel against frame 0, so it is recorded as ``settings["pose_offset"]`` and
  :func:`reference_frame` removes it from the reference: the whole clip, frame 0 included, turns by the offset.
* **Lengths and rates.** A motion at another fps is first retimed to the output's fps by the nearest frame in time.
  :func:`mix` takes its length and fps from the expression motion (the speech, usually); the head and lips motions
  are fitted to it with ``fit`` (``loop``, ``pingpong`` or ``hold`` the last frame; a longer one is cut).
  :func:`crossfade` overlaps at most the shorter motion.
* **What survives an edit.** Picking frames (trim, loop, retime) keeps every per-frame field, the generator's
  normalised ``coef`` included. An edit that changes values drops ``coef`` (an (N, 0) tensor: it no longer describes
  the motion) and makes the edited pose the raw pose, so re-smoothing starts from what the user sees.
* ``settings["lips_origin"]`` says where the lip rows of ``exp`` came from: ``audio`` (JoyVASA: composed absolute,
  the default when the key is absent), ``video`` or ``template`` (LivePortrait's relative composition).
"""

from __future__ import annotations

from typing import Any

import torch

from ..keypoints import LIP_KEYPOINTS, MotionFrames, rotation_matrix
from ..validate import ROWS, check_frames, require_numbers
from .sequence import FRAME_FIELDS, MotionSequence

FIT_MODES = ("loop", "pingpong", "hold")
LIPS_ORIGINS = ("audio", "video", "template")
POSE_FIELDS = ("scale", "t", "pitch", "yaw", "roll", "R")


def motion_from_pose(
    exp: torch.Tensor, scale: torch.Tensor, t: torch.Tensor, pitch: torch.Tensor, yaw: torch.Tensor,
    roll: torch.Tensor, R: torch.Tensor | None = None, fps: int = 25, seed: int | None = None,
    settings: dict[str, Any] | None = None, eye_open: torch.Tensor | None = None,
) -> MotionSequence:
    """A motion from LivePortrait quantities (exp (N,21,3), scale (N,1), t (N,3), degrees (N,1), R (N,3,3)).

    ``R`` defaults to the rotation of the angles; the raw pose is the pose given (no smoothing), and ``coef`` is
    empty because no generator made these frames.
    """
    n = exp.shape[0]
    f32 = dict(dtype=torch.float32, device="cpu")
    exp = exp.to(**f32).reshape(n, -1, 3)
    scale, t = scale.to(**f32).reshape(n, 1), t.to(**f32).reshape(n, 3)
    pitch, yaw, roll = (a.to(**f32).reshape(n, 1) for a in (pitch, yaw, roll))
    R = rotation_matrix(pitch, yaw, roll) if R is None else R.to(**f32).reshape(n, 3, 3)
    pose_raw = torch.cat([scale, t, pitch, yaw, roll], dim=1)
    eye = None if eye_open is None else eye_open.to(**f32).reshape(n, 1)
    return MotionSequence(coef=torch.zeros(n, 0), pose_raw=pose_raw, exp=exp, scale=scale, t=t, pitch=pitch, yaw=yaw,
                          roll=roll, R=R, fps=int(fps), seed=seed, settings=dict(settings or {}), eye_open=eye)


def lips_origin(motion: MotionSequence) -> str:
    """Where the motion's lip rows come from (``audio`` unless the motion says otherwise)."""
    return str(motion.settings.get("lips_origin", "audio"))


def lips_absolute(motion: MotionSequence) -> bool:
    """JoyVASA's speech lips are composed absolute; lips from a video or a LivePortrait template relative."""
    return lips_origin(motion) == "audio"


def pose_offset(motion: MotionSequence) -> torch.Tensor:
    """(3,) degrees (pitch, yaw, roll) added to the whole clip by :func:`offset_pose`; zeros when none."""
    return torch.tensor(motion.settings.get("pose_offset", [0.0, 0.0, 0.0]), dtype=torch.float32)


def reference_frame(motion: MotionSequence) -> MotionFrames:
    """Motion frame 0 as the composition's reference d_0, with any pose offset taken out of its rotation."""
    exp, scale, t = motion.exp[:1].reshape(1, -1, 3), motion.scale[:1].reshape(1, 1), motion.t[:1].reshape(1, 3)
    offset = pose_offset(motion)
    if not bool(offset.any()):
        return MotionFrames(exp=exp, scale=scale, t=t, R=motion.R[:1])
    angles = torch.cat([motion.pitch[:1], motion.yaw[:1], motion.roll[:1]], dim=1).float() - offset
    return MotionFrames(exp=exp, scale=scale, t=t, R=rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]))


def _edited(motion: MotionSequence, what: str, **extra: Any) -> dict[str, Any]:
    return {**motion.settings, **extra, "edits": [*motion.settings.get("edits", []), what]}


def _fields(motion: MotionSequence) -> dict[str, torch.Tensor | None]:
    return {"exp": motion.exp, "scale": motion.scale, "t": motion.t, "pitch": motion.pitch, "yaw": motion.yaw,
            "roll": motion.roll, "R": motion.R, "eye_open": motion.eye_open}


def _rebuild(motion: MotionSequence, values: dict[str, Any], settings: dict[str, Any]) -> MotionSequence:
    """A value edit: ``values`` over the motion's own fields, raw pose = the edited pose, no coef."""
    merged = {**_fields(motion), **values}
    return motion_from_pose(fps=motion.fps, seed=motion.seed, settings=settings, **merged)


# ---------------------------------------------------------------------------------------------------------------------
# Picking frames


def take(motion: MotionSequence, index: torch.Tensor, what: str, fps: int | None = None) -> MotionSequence:
    """Frames ``index`` (a 1-D index tensor, repeats allowed) with every per-frame field, ``coef`` included."""
    check_frames(int(index.numel()), f"{what.split('(')[0]} motion: the result")
    index = index.to(torch.long)
    values = {k: getattr(motion, k)[index] for k in FRAME_FIELDS}
    eye = None if motion.eye_open is None else motion.eye_open[index]
    return MotionSequence(**values, fps=motion.fps if fps is None else fps, seed=motion.seed,
                          settings=_edited(motion, what), eye_open=eye)


def trim(motion: MotionSequence, start: int = 0, stop: int | None = None) -> MotionSequence:
    """Frames [start, stop), clamped to the motion; an empty range is an error that says the motion's length."""
    n = motion.n_frames
    lo = max(0, min(int(start), n))
    hi = n if stop is None else max(lo, min(int(stop), n))
    if hi <= lo:
        raise ValueError(f"trim motion: frames [{start}, {stop}) hold nothing of a {n}-frame motion; pick a start "
                         f"below {n} and a stop above the start")
    return take(motion, torch.arange(lo, hi), f"trim({lo},{hi})")


def fit_indices(n_source: int, n_frames: int, mode: str = "loop") -> torch.Tensor:
    """Indices that stretch ``n_source`` frames to ``n_frames``: cut when shorter, else loop / ping-pong / hold."""
    if mode not in FIT_MODES:
        raise ValueError(f"fit motion: mode must be one of {FIT_MODES}, got {mode!r}")
    if n_source < 1 or n_frames < 1:
        raise ValueError(f"fit motion: need at least one frame in and out, got {n_source} -> {n_frames}")
    i = torch.arange(n_frames)
    if mode == "loop":
        return i % n_source
    if mode == "hold" or n_source == 1:
        return i.clamp(max=n_source - 1)
    period = 2 * n_source - 2  # 0 1 2 3 2 1 0 1 ...: the end frames are not repeated
    k = i % period
    return torch.where(k < n_source, k, period - k)


def fit_length(motion: MotionSequence, n_frames: int, mode: str = "loop") -> MotionSequence:
    """The motion cut or extended to ``n_frames`` (see :func:`fit_indices`)."""
    if n_frames == motion.n_frames:
        return motion
    check_frames(int(n_frames), "fit motion: the length")
    return take(motion, fit_indices(motion.n_frames, int(n_frames), mode), f"fit({n_frames},{mode})")


def retime(motion: MotionSequence, fps: int) -> MotionSequence:
    """The motion at ``fps`` by nearest frame in time (same duration, frame 0 kept)."""
    fps = int(fps)
    if fps < 1:
        raise ValueError(f"retime motion: fps must be at least 1, got {fps}")
    if fps == motion.fps:
        return motion
    n_out = max(1, round(motion.n_frames * fps / motion.fps))
    index = torch.floor(torch.arange(n_out, dtype=torch.float64) * motion.fps / fps + 0.5).long()
    return take(motion, index.clamp(max=motion.n_frames - 1), f"retime({motion.fps}->{fps})", fps)


# ---------------------------------------------------------------------------------------------------------------------
# Changing values


def mix(
    expression: MotionSequence, head: MotionSequence | None = None, lips: MotionSequence | None = None,
    fit: str = "loop",
) -> MotionSequence:
    """Expression (and eyes) from ``expression``, head pose (rotation, translation, scale) from ``head``, the lip rows
    of the expression from ``lips``. The result has the expression motion's length and fps; the others are retimed
    and fitted to it with ``fit``. A missing ``head``/``lips`` keeps the expression motion's own."""
    n, fps = expression.n_frames, expression.fps

    def fitted(other: MotionSequence) -> MotionSequence:
        return fit_length(retime(other, fps), n, fit)

    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    parts = []
    if head is not None:
        h = fitted(head)
        values.update({k: getattr(h, k) for k in POSE_FIELDS})
        extra["pose_offset"] = h.settings.get("pose_offset", [0.0, 0.0, 0.0])
        parts.append(f"head {head.n_frames}f")
    if lips is not None:
        lp = fitted(lips)
        rows = list(LIP_KEYPOINTS)
        exp = expression.exp.clone()
        exp[:, rows] = lp.exp[:, rows].to(exp.dtype)
        values["exp"] = exp
        extra["lips_origin"] = lips_origin(lips)
        parts.append(f"lips {lips.n_frames}f")
    if not parts:
        return expression
    settings = _edited(expression, f"mix({', '.join(parts)}, fit {fit})", **extra)
    return _rebuild(expression, values, settings)


def scale_parts(
    motion: MotionSequence, rotation: float = 1.0, translation: float = 1.0, scale: float = 1.0,
    expression: float = 1.0, lips: float = 1.0,
) -> MotionSequence:
    """Each part's deviation from frame 0 times its multiplier; ``lips`` applies to the lip rows on top of
    ``expression``. Multipliers of 1 leave the part bit-identical (R is only recomputed when rotation changes)."""
    require_numbers({"head_rotation": rotation, "translation": translation, "scale": scale, "expression": expression,
                     "lips": lips}, ROWS)
    values: dict[str, Any] = {}

    def around_first(x: torch.Tensor, k: float) -> torch.Tensor:
        return x[:1] + (x - x[:1]) * k

    if rotation != 1.0:
        for k in ("pitch", "yaw", "roll"):
            values[k] = around_first(getattr(motion, k), rotation)
        values["R"] = rotation_matrix(values["pitch"], values["yaw"], values["roll"])
    if translation != 1.0:
        values["t"] = around_first(motion.t, translation)
    if scale != 1.0:
        values["scale"] = around_first(motion.scale, scale)
    if expression != 1.0 or lips != 1.0:
        exp = around_first(motion.exp, expression) if expression != 1.0 else motion.exp.clone()
        rows = list(LIP_KEYPOINTS)
        if lips != 1.0:
            exp[:, rows] = around_first(motion.exp[:, rows], expression * lips)
        values["exp"] = exp
    if not values:
        return motion
    what = f"scale(rotation={rotation:g}, translation={translation:g}, scale={scale:g}, expression={expression:g}, " \
           f"lips={lips:g})"
    return _rebuild(motion, values, _edited(motion, what))


def offset_pose(motion: MotionSequence, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> MotionSequence:
    """Turn the whole clip by constant angles (degrees); see the module docstring for why frame 0 turns too."""
    require_numbers({"pitch": pitch, "yaw": yaw, "roll": roll}, ROWS)
    if pitch == yaw == roll == 0.0:
        return motion
    offset = torch.tensor([pitch, yaw, roll], dtype=torch.float32)
    angles = {k: getattr(motion, k) + offset[i] for i, k in enumerate(("pitch", "yaw", "roll"))}
    total = (pose_offset(motion) + offset).tolist()
    settings = _edited(motion, f"offset({pitch:g},{yaw:g},{roll:g})", pose_offset=total)
    return _rebuild(motion, {**angles, "R": rotation_matrix(angles["pitch"], angles["yaw"], angles["roll"])},
                    settings)


def crossfade(first: MotionSequence, second: MotionSequence, frames: int) -> MotionSequence:
    """``first`` then ``second`` (retimed to the first's fps), blended linearly over ``frames`` overlapping frames
    (at most the shorter motion; 0 is a cut). Length: ``len(first) + len(second) - frames``. The result keeps the
    first motion's settings, so its lips are composed as the first's are."""
    b = retime(second, first.fps)
    k = max(0, min(int(frames), first.n_frames, b.n_frames))
    a_n = first.n_frames
    ramp = torch.arange(1, k + 1, dtype=torch.float32) / (k + 1)  # strictly between the two: no duplicated frame
    values: dict[str, Any] = {}
    for name in ("exp", "scale", "t", "pitch", "yaw", "roll", "eye_open"):
        xa, xb = getattr(first, name), getattr(b, name)
        if name == "eye_open" and xa is None and xb is None:
            continue
        xa = torch.ones(a_n, 1) if xa is None else xa
        xb = torch.ones(b.n_frames, 1) if xb is None else xb
        shape = (-1,) + (1,) * (xa.ndim - 1)
        mid = xa[a_n - k :] * (1 - ramp.reshape(shape)) + xb[:k] * ramp.reshape(shape)
        values[name] = torch.cat([xa[: a_n - k], mid, xb[k:]])
    blended = rotation_matrix(*(values[a][a_n - k : a_n] for a in ("pitch", "yaw", "roll")))
    values["R"] = torch.cat([first.R[: a_n - k], blended, b.R[k:]])
    return _rebuild(first, values, _edited(first, f"crossfade({b.n_frames}f over {k})"))
