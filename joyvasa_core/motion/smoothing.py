"""Causal smoothing of the de-normalised head pose (scale, t, angles); expression is never smoothed.

The reference smooths with an EMA of alpha 0.01 (time constant about 100 frames), which makes the head very still;
median (3) and moving average (10) are the reference's other, lighter choices, and ``none`` keeps the raw pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SMOOTHING_METHODS = ("ema", "median", "moving_average", "none")
DEFAULT_EMA_ALPHA = 0.01
DEFAULT_WINDOWS = {"median": 3, "moving_average": 10}


@dataclass(frozen=True)
class PoseSmoothing:
    """How the head pose is smoothed: ``method``, the EMA ``alpha`` and the median / moving-average ``window``
    (None = the method's default)."""

    method: str = "ema"
    alpha: float = DEFAULT_EMA_ALPHA
    window: int | None = None

    def __call__(self, pose: torch.Tensor) -> torch.Tensor:
        return smooth_pose(pose, self.method, alpha=self.alpha, window=self.window)

    def settings(self) -> dict[str, object]:
        """The entries a motion's settings record."""
        return {"smoothing": self.method, "smoothing_alpha": self.alpha, "smoothing_window": self.window}


def smooth_pose(
    pose: torch.Tensor, method: str = "ema", alpha: float = DEFAULT_EMA_ALPHA, window: int | None = None
) -> torch.Tensor:
    """Smooth (..., N, C) along frames, causally (frame k only sees frames <= k), computed in float64."""
    if method not in SMOOTHING_METHODS:
        raise ValueError(f"pose smoothing: method must be one of {SMOOTHING_METHODS}, got {method!r}")
    if method == "none" or pose.shape[-2] == 0:
        return pose.clone()
    values = pose.detach().to("cpu", torch.float64).numpy()
    flat = values.reshape(-1, *values.shape[-2:])
    if method == "ema":
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"pose smoothing: EMA alpha must be in (0, 1], got {alpha}")
        out = _ema(flat, alpha)
    else:
        size = DEFAULT_WINDOWS[method] if window is None else int(window)
        if size < 1:
            raise ValueError(f"pose smoothing: window must be >= 1, got {size}")
        out = _median(flat, size) if method == "median" else _moving_average(flat, size)
    return torch.from_numpy(out.reshape(values.shape)).to(device=pose.device, dtype=pose.dtype)


def _ema(x: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty_like(x)
    out[:, 0] = x[:, 0]
    keep = 1.0 - alpha
    for k in range(1, x.shape[1]):
        out[:, k] = alpha * x[:, k] + keep * out[:, k - 1]
    return out


def _median(x: np.ndarray, size: int) -> np.ndarray:
    out = np.empty_like(x)
    n = x.shape[1]
    for k in range(min(size - 1, n)):
        out[:, k] = np.median(x[:, : k + 1], axis=1)
    if n >= size:
        windows = np.lib.stride_tricks.sliding_window_view(x, size, axis=1)
        out[:, size - 1 :] = np.median(windows, axis=-1)
    return out


def _moving_average(x: np.ndarray, size: int) -> np.ndarray:
    csum = np.cumsum(x, axis=1)
    out = np.empty_like(x)
    n = x.shape[1]
    head = min(size, n)
    out[:, :head] = csum[:, :head] / np.arange(1, head + 1)[None, :, None]
    if n > size:
        out[:, size:] = (csum[:, size:] - csum[:, :-size]) / size
    return out


class CausalPoseSmoother:
    """:class:`PoseSmoothing` applied to a stream, chunk by chunk, with the same result as smoothing the whole
    sequence at once: the EMA carries its last smoothed value (float64), median / moving average the raw frames
    their window still needs. Its ``settings`` are the smoothing's, so a chunk's MotionSequence records them."""

    def __init__(self, smoothing: PoseSmoothing) -> None:
        self.smoothing = smoothing
        self.carry: torch.Tensor | None = None  # (1, C) float64 for the EMA; (<= window - 1, C) raw frames otherwise

    def settings(self) -> dict[str, object]:
        return self.smoothing.settings()

    def __call__(self, pose: torch.Tensor) -> torch.Tensor:
        """Smooth the next (N, C) frames of the stream."""
        method = self.smoothing.method
        if method == "none" or pose.shape[0] == 0:
            return pose.clone()
        n = pose.shape[0]
        if method == "ema":
            values = pose.double() if self.carry is None else torch.cat([self.carry, pose.double()])
            out = smooth_pose(values, method, alpha=self.smoothing.alpha)[-n:]
            self.carry = out[-1:].clone()
            return out.to(pose.dtype)
        size = DEFAULT_WINDOWS[method] if self.smoothing.window is None else int(self.smoothing.window)
        values = pose if self.carry is None else torch.cat([self.carry, pose.to(self.carry.dtype)])
        out = smooth_pose(values, method, window=size)[-n:]
        self.carry = values[-(size - 1) :].clone() if size > 1 else values[:0].clone()
        return out.to(pose.dtype)
