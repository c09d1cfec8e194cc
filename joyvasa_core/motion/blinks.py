"""Blinks on a natural schedule, carried by a motion as an eye-openness track and rendered through LivePortrait's
eye-retargeting network.

JoyVASA's sampled expression may hold few blinks. A blink here is a closure curve (fast close, slower open) on the
motion's ``eye_open`` track (1 = the source face's own openness, 0 = closed); the track leaves the expression and the
pose untouched, so the rest of the motion is unchanged. Blink times are drawn from a seeded gamma renewal process
(shape 4: regular like real blinking, never two in a burst) with the asked mean rate; a person blinks about 15-20 times
a minute, each blink lasting 0.1-0.4 s.

The draw is causal (:class:`BlinkSchedule`): each start depends only on the blinks before it, never on the clip's
length, so the offline job (the whole clip at once) and a live session (frames as they come, talking or idle) place
the same blinks for the same seed and options. The one difference: knowing where the clip ends, the offline job
leaves out a last blink the end would cut short; a live session cannot know the speech is ending (waiting for a
blink's length to find out would delay every frame), so it shows that blink until the session ends.

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
DEFAULT_RATE = 15.0  # blinks per minute: the low end of how often people blink
LIVE_BLINK_MODES = ("off", "on")  # if_none looks for blinks in the whole motion, which a live session never has
LIVE_BLINKS = "on"  # a live face idles between answers: never blinking, it looks frozen (README, Live)
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
    rate: float = DEFAULT_RATE  # blinks per minute, on average
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


class BlinkSchedule:
    """Blink starts drawn one at a time: gamma intervals (start to start, shape 4) of mean 60/rate from a seeded
    generator, each at least the blink's length and one frame. Every start depends only on those before it."""

    def __init__(self, fps: int, rate: float, duration: float, seed: int) -> None:
        self.fps, self.rate, self.duration = fps, rate, duration
        self.rng = np.random.default_rng(seed)
        self.starts: list[float] = []  # drawn and not yet over
        self.last = 0.0  # the latest start drawn (0: none yet)

    def until(self, t: float) -> np.ndarray:
        """Start times (s) up to ``t`` of the blinks not yet forgotten, drawing as far as needed."""
        if self.rate > 0:
            mean = 60.0 / self.rate
            while self.last <= t:
                self.last += max(float(self.rng.gamma(GAMMA_SHAPE, mean / GAMMA_SHAPE)), self.duration + 1.0 / self.fps)
                self.starts.append(self.last)
        return np.asarray([s for s in self.starts if s <= t])

    def closure(self, first: int, n_frames: int) -> np.ndarray:
        """(n_frames,) closure of frames [first, first + n_frames); frames come in order, so blinks over before
        ``first`` are forgotten (a session of hours keeps a few starts)."""
        self.starts = [s for s in self.starts if s + self.duration >= first / self.fps]
        starts = self.until((first + n_frames - 1) / self.fps)
        return closure_curve(n_frames, self.fps, starts, self.duration, first)


def blink_times(n_frames: int, fps: int, rate: float, duration: float, seed: int) -> np.ndarray:
    """Start times (s) of the blinks that fit in the clip: the schedule's, less a last one the clip's end would cut."""
    if rate <= 0 or n_frames < 1:
        return np.zeros(0)
    length = n_frames / fps
    starts = BlinkSchedule(fps, rate, duration, seed).until(length)
    return starts[starts + duration <= length]


def closure_curve(n_frames: int, fps: int, starts: np.ndarray, duration: float, first: int = 0) -> np.ndarray:
    """(N,) closure in [0, 1] (1 = shut) at the times of frames [first, first + N) for blinks starting at ``starts``."""
    t = (first + np.arange(n_frames)) / fps
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


def eye_track(closure: np.ndarray | None, openness: float, track: torch.Tensor | None = None) -> torch.Tensor:
    """(N,1) eye openness: ``track`` (None: open) closed where ``closure`` (None: no blinks) says, then scaled by
    ``openness``. The offline motion and the live session both make their track here."""
    if closure is not None:
        shut = 1.0 - torch.from_numpy(closure).float()[:, None]
        track = shut if track is None else torch.minimum(track, shut)
    return track * openness if openness != 1.0 else track


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
    starts = blink_times(n, motion.fps, options.rate, options.duration, options.seed) if add else None
    closure = None if starts is None else closure_curve(n, motion.fps, starts, options.duration)
    base = torch.ones(n, 1) if motion.eye_open is None else motion.eye_open.float()
    track = eye_track(closure, options.openness, base)
    note = f"openness {options.openness:g}"
    if add:
        note = f"blinks {len(starts)} ({options.rate:g}/min, {options.duration:g} s, seed {options.seed}), " + note
    settings = {**motion.settings, "edits": [*motion.settings.get("edits", []), note]}
    values = {k: getattr(motion, k) for k in ("coef", "pose_raw", "exp", "scale", "t", "pitch", "yaw", "roll", "R")}
    return MotionSequence(**values, fps=motion.fps, seed=motion.seed, settings=settings, eye_open=track)


class LiveBlinks:
    """A live session's eye track, frame block by frame block as the frames become final: the offline job's schedule
    (:class:`BlinkSchedule`, same options, same seed) and openness, never looking past the frames asked for."""

    def __init__(self, options: BlinkOptions, fps: int) -> None:
        if options.mode not in LIVE_BLINK_MODES:
            raise ValueError(f"blinks: live takes {' or '.join(LIVE_BLINK_MODES)}, not {options.mode!r} (it would "
                             "look for blinks in the whole motion, which a live session never has)")
        self.options = options
        self.schedule = BlinkSchedule(fps, options.rate, options.duration, options.seed)

    @classmethod
    def of(cls, options: BlinkOptions, fps: int) -> LiveBlinks | None:
        """The track maker for ``options``; None when it changes nothing (no blinks, the portrait's own eyes)."""
        if options.mode == "off" and options.openness == 1.0:
            return None
        return cls(options, fps)

    def track(self, first: int, n_frames: int) -> torch.Tensor:
        """(n_frames, 1) eye openness of output frames [first, first + n_frames), called in frame order."""
        closure = self.schedule.closure(first, n_frames) if self.options.mode == "on" else None
        return eye_track(closure, self.options.openness, torch.ones(n_frames, 1))


def job_blinks(mode: str, seed: int, rate: float = DEFAULT_RATE) -> BlinkOptions:
    """The blinks of a job (offline or live) whose noise seed is ``seed``: the schedule takes its low 32 bits."""
    return BlinkOptions(mode=mode, rate=rate, seed=seed % 2**32)


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
