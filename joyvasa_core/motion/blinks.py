"""Blinks on a natural schedule, carried by a motion as an eye-openness track and rendered through LivePortrait's
eye-retargeting network.

JoyVASA's sampled expression may hold few blinks. A blink here is a closure curve (fast close, slower open) on the
motion's ``eye_open`` track (1 = the source face's own openness, 0 = closed); the track leaves the expression and the
pose untouched, so the rest of the motion is unchanged. Blink times are drawn from a seeded gamma renewal process
(shape 4: regular like real blinking, never two in a burst) with the asked mean rate; a person blinks about 15-20 times
a minute, each blink lasting 0.1-0.4 s.

At render time :func:`blink_delta` turns the track into keypoint offsets with the eye-retargeting MLP:
``R_eye(x_s, [c_s_left, c_s_right, c]) - R_eye(x_s, [c_s_left, c_s_right, c_s])`` where ``c_s`` is the source's mean
eye ratio and ``c = eye_open * c_s``, kept on the eye keypoints only. An openness of 1 gives exactly no offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..keypoints import EYE_KEYPOINTS, Retargeting, eye_retarget_delta
from ..validate import ROWS, require_numbers
from .openings import eye_opening
from .sequence import MotionSequence

BLINK_MODES = ("off", "on", "if_none")
OPEN_QUANTILE = 0.9  # the eye ratio a video's open eyes have: most frames are open, blinks are rare dips
GAMMA_SHAPE = 4.0
CLOSING_SHARE = 0.4  # of a blink's duration spent closing; the rest opening again
DETECT_DROP = 0.5  # an eye-openness track below this is a blink
DETECT_MAD = 4.0  # keypoint spread: a dip this many robust deviations below the median ...
DETECT_RELATIVE = 0.2  # ... and at least this share of the median ...
DETECT_MAX_SECONDS = 0.6  # ... lasting no longer than a blink


@dataclass(frozen=True)
class BlinkOptions:
    """When and how the eyes blink, and how open they are between blinks."""

    mode: str = "on"  # off: no blinks added; on: add them; if_none: only when the motion has none
    rate: float = 15.0  # blinks per minute, on average
    duration: float = 0.25  # seconds from open through closed to open
    seed: int = 0
    openness: float = 1.0  # 1 = the source's own eyes, below 1 narrower, above wider

    def __post_init__(self) -> None:
        if self.mode not in BLINK_MODES:
            raise ValueError(f"blinks: mode must be one of {BLINK_MODES}, got {self.mode!r}")
        require_numbers({"rate": self.rate, "duration": self.duration, "openness": self.openness}, ROWS)


def eye_open_from_ratios(ratios: np.ndarray) -> np.ndarray:
    """(N,2) per-frame eye ratios (a video's, a template's c_eyes_lst) -> (N,1) openness, 1 = the clip's open eyes."""
    mean = np.asarray(ratios, dtype=np.float32).reshape(len(ratios), -1).mean(axis=1)
    open_level = max(float(np.quantile(mean, OPEN_QUANTILE)), 1e-6)
    return np.clip(mean / open_level, 0.0, 1.5).astype(np.float32)[:, None]


def blink_times(n_frames: int, fps: int, rate: float, duration: float, seed: int) -> np.ndarray:
    """Start times (s) of the blinks that fit in the clip: gamma intervals of mean 60/rate from a seeded generator."""
    if rate <= 0 or n_frames < 1:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    mean = 60.0 / rate
    length = n_frames / fps
    times, now = [], 0.0
    while True:
        # Start to start; a blink never begins before the previous one has ended (and one frame has passed).
        now += max(float(rng.gamma(GAMMA_SHAPE, mean / GAMMA_SHAPE)), duration + 1.0 / fps)
        if now + duration > length:
            return np.asarray(times)
        times.append(now)


def closure_curve(n_frames: int, fps: int, starts: np.ndarray, duration: float) -> np.ndarray:
    """(N,) closure in [0, 1] (1 = shut) at each frame time for blinks starting at ``starts``."""
    t = np.arange(n_frames) / fps
    out = np.zeros(n_frames)
    close = CLOSING_SHARE * duration
    for s in starts:
        u = t - s
        rising = np.clip(u / close, 0.0, 1.0)
        falling = np.clip((duration - u) / (duration - close), 0.0, 1.0)
        shape = np.where(u < close, rising, falling)
        shape = shape * shape * (3 - 2 * shape)  # smoothstep: the lid eases in and out
        out = np.maximum(out, np.where((u >= 0) & (u <= duration), shape, 0.0))
    return out


def has_blinks(motion: MotionSequence) -> bool:
    """Whether the motion already blinks: its openness track dips below 0.5, or, without a track, its eye keypoints
    close for a short while (a dip well below the median spread, no longer than a blink)."""
    if motion.eye_open is not None:
        return bool((motion.eye_open < DETECT_DROP).any())
    opening = eye_opening(motion).double().numpy()
    if opening.size < 3:
        return False
    median = float(np.median(opening))
    mad = 1.4826 * float(np.median(np.abs(opening - median)))
    dip = (median - opening > DETECT_MAD * mad) & (median - opening > DETECT_RELATIVE * abs(median))
    longest = int(DETECT_MAX_SECONDS * motion.fps) + 1
    run = 0
    for closed in np.append(dip, False):
        if closed:
            run += 1
        elif 0 < run <= longest:
            return True
        else:
            run = 0
    return False


def apply_blinks(motion: MotionSequence, options: BlinkOptions) -> MotionSequence:
    """The motion with blinks (per ``options``) and openness on its eye track; nothing else changes."""
    add = options.mode == "on" or (options.mode == "if_none" and not has_blinks(motion))
    if not add and options.openness == 1.0:
        return motion
    n = motion.n_frames
    track = torch.ones(n, 1) if motion.eye_open is None else motion.eye_open.float().clone()
    note = f"openness {options.openness:g}"
    if add:
        starts = blink_times(n, motion.fps, options.rate, options.duration, options.seed)
        closure = torch.from_numpy(closure_curve(n, motion.fps, starts, options.duration)).float()[:, None]
        track = torch.minimum(track, 1.0 - closure)
        note = f"blinks {len(starts)} ({options.rate:g}/min, {options.duration:g} s, seed {options.seed}), " + note
    if options.openness != 1.0:
        track = track * options.openness
    settings = {**motion.settings, "edits": [*motion.settings.get("edits", []), note]}
    values = {k: getattr(motion, k) for k in ("coef", "pose_raw", "exp", "scale", "t", "pitch", "yaw", "roll", "R")}
    return MotionSequence(**values, fps=motion.fps, seed=motion.seed, settings=settings, eye_open=track)


def blink_delta(
    network: Retargeting, x_s: torch.Tensor, source_eye_ratio: torch.Tensor, eye_open: torch.Tensor
) -> torch.Tensor:
    """(N,21,3) keypoint offsets that set the eyes to ``eye_open`` (N,1) of the source's openness; zero rows
    outside the eye keypoints and zero frames where ``eye_open`` is exactly 1."""
    n = eye_open.shape[0]
    c_s = source_eye_ratio.reshape(1, 2).to(x_s.dtype).expand(n, 2)
    c_ref = c_s.mean(dim=1, keepdim=True)
    target = eye_open.reshape(n, 1).to(x_s.dtype) * c_ref
    both = torch.cat([torch.cat([c_s, target], dim=1), torch.cat([c_s, c_ref], dim=1)])
    x = x_s.expand(2 * n, *x_s.shape[1:]) if x_s.shape[0] == 1 else torch.cat([x_s, x_s])
    delta = eye_retarget_delta(network, x, both)
    delta = delta[:n] - delta[n:]
    mask = torch.zeros(1, delta.shape[1], 1, dtype=delta.dtype, device=delta.device)
    mask[:, list(EYE_KEYPOINTS)] = 1
    moving = (eye_open.reshape(n, 1, 1) != 1).to(delta.dtype)
    return delta * mask * moving
