"""A motion drawn as curves over time: head rotation, translation, scale, mouth and eye opening, and the speech
waveform underneath, as one RGB image (a ComfyUI IMAGE, a PNG on the command line).

Plain OpenCV drawing rather than matplotlib: OpenCV is already a dependency, the picture is a handful of polylines,
and drawing into a numpy array needs no figure backend, no font cache and no extra 40 MB install in ComfyUI.

Layout: panels of ``PANEL_HEIGHT`` pixels stacked from the top in the order of :data:`PANELS` (the waveform last,
when given), each with its name, its value range and the curves' legend; time in seconds along the bottom.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from ..audio import SAMPLE_RATE
from .openings import eye_opening, mouth_opening
from .sequence import MotionSequence

PANEL_HEIGHT = 120
MARGIN_LEFT = 70
MARGIN_RIGHT = 12
AXIS_HEIGHT = 40
BACKGROUND = (255, 255, 255)
GRID = (225, 225, 225)
TEXT = (40, 40, 40)
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44))  # blue, red, green (RGB)
FONT = cv2.FONT_HERSHEY_SIMPLEX
PANELS = ("rotation", "translation", "scale", "mouth", "eyes")


def _series(motion: MotionSequence) -> list[tuple[str, Sequence[str], np.ndarray]]:
    """(panel title, curve names, (N, C) values) for every motion panel. Pose is drawn as the change from frame 0,
    which is what moves the face (composition is relative to frame 0); the legend gives the frame-0 values."""
    def np_(x: torch.Tensor) -> np.ndarray:
        return x.detach().to("cpu", torch.float64).reshape(motion.n_frames, -1).numpy()

    def from_first(values: np.ndarray, names: Sequence[str]) -> tuple[list[str], np.ndarray]:
        return [f"{n} {v:.3g}" for n, v in zip(names, values[0], strict=True)], values - values[:1]

    rot_names, angles = from_first(np.concatenate([np_(motion.pitch), np_(motion.yaw), np_(motion.roll)], axis=1),
                                   ("pitch", "yaw", "roll"))
    t_names, t = from_first(np_(motion.t), ("tx", "ty", "tz"))
    s_names, scale = from_first(np_(motion.scale), ("scale",))
    eye_title = "eye openness (track)" if motion.eye_open is not None else "eye opening (keypoints)"
    return [
        ("head rotation, deg from frame 0", rot_names, angles),
        ("translation from frame 0", t_names, t),
        ("scale from frame 0", s_names, scale),
        ("mouth opening (keypoints)", ("mouth",), np_(mouth_opening(motion))),
        (eye_title, ("eyes",), np_(eye_opening(motion))),
    ]


def _label(img: np.ndarray, text: str, org: tuple[int, int], colour=TEXT, scale: float = 0.4) -> None:
    cv2.putText(img, text, org, FONT, scale, colour, 1, cv2.LINE_AA)


def _panel(img: np.ndarray, top: int, title: str, names: Sequence[str], values: np.ndarray, x_of) -> None:
    """Curves of ``values`` (N, C) in the band [top, top + PANEL_HEIGHT), sharing one y range."""
    h, w = PANEL_HEIGHT, img.shape[1]
    y0, y1 = top + 18, top + h - 8
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3)
    for frac in (0.0, 0.5, 1.0):
        y = int(round(y1 - frac * (y1 - y0)))
        cv2.line(img, (MARGIN_LEFT, y), (w - MARGIN_RIGHT, y), GRID, 1)
    _label(img, f"{hi:.3g}", (4, y0 + 4))
    _label(img, f"{lo:.3g}", (4, y1))
    _label(img, title, (MARGIN_LEFT + 4, top + 13), scale=0.45)
    slot = 110
    legend_x = w - MARGIN_RIGHT - slot * len(names)
    for c, name in enumerate(names):
        colour = COLOURS[c % len(COLOURS)]
        cv2.line(img, (legend_x + slot * c, top + 9), (legend_x + slot * c + 14, top + 9), colour, 2)
        _label(img, name, (legend_x + slot * c + 18, top + 13), colour)
        ys = y1 - (values[:, c] - lo) / (hi - lo) * (y1 - y0)
        pts = np.stack([x_of(np.arange(len(ys))), ys], axis=1)
        cv2.polylines(img, [np.round(pts).astype(np.int32).reshape(-1, 1, 2)], False, colour, 1, cv2.LINE_AA)
    cv2.rectangle(img, (MARGIN_LEFT, top + 16), (w - MARGIN_RIGHT, top + h - 6), (170, 170, 170), 1)


def _waveform(img: np.ndarray, top: int, wave: np.ndarray, rate: int, seconds: float, delay: float) -> None:
    """Min/max envelope of the speech per pixel column over the motion's duration, starting ``delay`` s in."""
    h, w = PANEL_HEIGHT, img.shape[1]
    y0, y1 = top + 18, top + h - 8
    mid = (y0 + y1) / 2
    cols = w - MARGIN_LEFT - MARGIN_RIGHT
    peak = max(float(np.abs(wave).max()) if wave.size else 0.0, 1e-6)
    edges = (np.linspace(0, seconds, cols + 1) - delay) * rate
    edges = np.round(edges).astype(np.int64)
    for i in range(cols):
        a0, b0 = max(edges[i], 0), max(edges[i + 1], edges[i] + 1)
        seg = wave[a0:b0] if b0 > 0 else wave[:0]
        if seg.size == 0:
            continue
        a, b = float(seg.min()) / peak, float(seg.max()) / peak
        x = MARGIN_LEFT + i
        cv2.line(img, (x, int(mid - b * (mid - y0))), (x, int(mid - a * (mid - y0))), (110, 110, 110), 1)
    _label(img, "speech", (MARGIN_LEFT + 4, top + 13), scale=0.45)
    cv2.rectangle(img, (MARGIN_LEFT, top + 16), (w - MARGIN_RIGHT, top + h - 6), (170, 170, 170), 1)


def render_motion_preview(
    motion: MotionSequence, waveform: torch.Tensor | np.ndarray | None = None, sample_rate: int = SAMPLE_RATE,
    width: int = 1024, audio_delay: float = 0.0,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB plot of ``motion`` and, when given, the mono ``waveform`` starting ``audio_delay``
    seconds after frame 0 (the sampler's leading silence: 0.08 s by default)."""
    if width < 320:
        raise ValueError(f"motion preview: width must be at least 320 pixels, got {width}")
    series = _series(motion)
    wave = None
    if waveform is not None:
        wave = np.asarray(waveform.detach().cpu() if isinstance(waveform, torch.Tensor) else waveform, np.float64)
        wave = wave.reshape(-1, wave.shape[-1]).mean(axis=0) if wave.ndim > 1 else wave
    n_panels = len(series) + (wave is not None)
    img = np.full((n_panels * PANEL_HEIGHT + AXIS_HEIGHT, width, 3), BACKGROUND, np.uint8)
    n = max(motion.n_frames, 2)
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT

    def x_of(i: np.ndarray) -> np.ndarray:
        return MARGIN_LEFT + i / (n - 1) * plot_w

    for k, (title, names, values) in enumerate(series):
        _panel(img, k * PANEL_HEIGHT, title, names, values, x_of)
    if wave is not None:
        _waveform(img, len(series) * PANEL_HEIGHT, wave, sample_rate, motion.n_frames / motion.fps, audio_delay)
    axis = n_panels * PANEL_HEIGHT
    seconds = motion.n_frames / motion.fps
    step = next(s for s in (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1e9) if seconds / s <= 12)
    for tick in np.arange(0, seconds + 1e-9, step):
        x = int(round(MARGIN_LEFT + tick / max(seconds, 1e-9) * plot_w))
        cv2.line(img, (x, axis), (x, axis + 4), TEXT, 1)
        _label(img, f"{tick:g}s", (x - 8, axis + 17))
    _label(img, f"{motion.n_frames} frames @ {motion.fps} fps, {seconds:.2f} s", (MARGIN_LEFT, axis + 34))
    return img


def motion_preview_image(
    motion: MotionSequence, waveform: torch.Tensor | np.ndarray | None = None, sample_rate: int | None = None,
    width: int = 1024, audio_delay: float = 0.0,
) -> torch.Tensor:
    """The plot as a (1, H, W, 3) float image in [0, 1]; ``sample_rate`` None means ``SAMPLE_RATE``."""
    img = render_motion_preview(motion, waveform, sample_rate or SAMPLE_RATE, width=width, audio_delay=audio_delay)
    return torch.from_numpy(img).float().div(255)[None]
