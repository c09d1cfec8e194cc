"""What a live session measures about itself: time to the first frame, latency behind the speech, real-time factor
and where the time went (speech encoding, motion sampling, keypoints, rendering)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LiveStats:
    """Running figures of one session (seconds on the session's clock)."""

    fps: int = 25
    started: float | None = None  # the first push
    first_frame: float | None = None
    frames: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    busy: float = 0.0  # time spent making frames (motion, keypoints, rendering)
    timings: dict[str, float] = field(default_factory=lambda: {"compose": 0.0, "render": 0.0})

    def add(self, frames: Iterable[Any]) -> None:
        for frame in frames:
            if self.first_frame is None:
                self.first_frame = frame.time
            self.frames += 1
            self.latency_sum += frame.latency
            self.latency_max = max(self.latency_max, frame.latency)

    @property
    def time_to_first_frame(self) -> float | None:
        """From the first push to the first finished frame."""
        if self.first_frame is None or self.started is None:
            return None
        return self.first_frame - self.started

    @property
    def mean_latency(self) -> float:
        return self.latency_sum / self.frames if self.frames else 0.0

    def real_time_factor(self, speech_seconds: float) -> float:
        """Busy seconds per second of speech: below 1 keeps up with a speaker."""
        return self.busy / speech_seconds if speech_seconds > 0 else float("inf")

    def shares(self, motion_timings: dict[str, float]) -> dict[str, float]:
        """Share of the busy time per part: encode (HuBERT), sample (denoiser), compose (keypoints), render (W, G,
        paste-back); ``other`` is the rest (buffers, conversions)."""
        parts = {**motion_timings, **self.timings}
        total = self.busy or 1.0
        shares = {k: v / total for k, v in parts.items()}
        shares["other"] = max(0.0, 1.0 - sum(shares.values()))
        return shares

    def line(self, speech_seconds: float) -> str:
        """The one-line summary the live command prints."""
        ttff = self.time_to_first_frame
        first = "n/a" if ttff is None else f"{ttff * 1000:.0f} ms"
        return (f"first frame {first} after the first chunk, {self.frames} frames, latency behind speech mean "
                f"{self.mean_latency * 1000:.0f} ms / worst {self.latency_max * 1000:.0f} ms, real-time factor "
                f"{self.real_time_factor(speech_seconds):.2f} ({speech_seconds:.2f} s of speech in {self.busy:.2f} s)")
