"""Motion for speech that is still arriving: the offline sampler's window step, slid a few frames at a time.

A step samples a window of T frames that starts at the first frame not yet final, conditioned (``WindowContext``) on
the last P final frames. Its audio is the padded speech from that frame on, cut after ``chunk + lookahead`` frames
and zero beyond, as the offline path pads its last window (the released model was trained on truncated windows).
The step's first ``chunk`` frames become final and the next step starts after them. A step waits only for the speech
it reads, so the motion depends on the speech and the options, never on how the speech was cut into pushes.

With the look-ahead ``all`` a step reads its whole window and keeps all T frames: the steps are the offline windows,
drawing the same noise in the same order, so the motion equals :func:`~joyvasa_core.motion.sampler.generate_motion`'s.
Frames are de-normalised and smoothed causally (:class:`CausalPoseSmoother`) as they become final; the leading
silence's frames are dropped as the offline path drops them (``lag_compensation``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from ..errors import AudioInputError
from .generator import MotionGenerator
from .sampler import (
    LEADING_PAD_FRAMES,
    NoiseStream,
    SamplingOptions,
    WindowContext,
    WindowSampler,
    encode_chunk,
    plan_windows,
)
from .sequence import MotionSequence
from .smoothing import CausalPoseSmoother
from .template import MotionTemplate

DEFAULT_CHUNK_FRAMES = 10  # 400 ms kept per step: P of the released model, so each step's context is its own frames
DEFAULT_LOOKAHEAD_FRAMES = 10  # 400 ms of speech past the kept frames: a syllable and more of right context


@dataclass(frozen=True)
class StreamOptions:
    """How the motion follows the speech: ``chunk_frames`` become final per step, each step waits for
    ``lookahead`` more frames of speech past them (None = ``all``: the whole window, the offline result)."""

    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    lookahead: int | None = DEFAULT_LOOKAHEAD_FRAMES

    def __post_init__(self) -> None:
        if self.chunk_frames < 1:
            raise ValueError(f"live motion: chunk must be at least 1 frame, got {self.chunk_frames}")
        if self.lookahead is not None and self.lookahead < 0:
            raise ValueError(f"live motion: look-ahead must be 0 or more frames (or 'all'), got {self.lookahead}")

    def span(self, window_frames: int) -> tuple[int, int]:
        """(frames kept per step, frames of speech a step reads) for windows of ``window_frames``: ``all`` keeps and
        reads the whole window; otherwise the chunk is at most a window and speech past the window is not read."""
        if self.lookahead is None:
            return window_frames, window_frames
        keep = min(self.chunk_frames, window_frames)
        return keep, min(keep + self.lookahead, window_frames)

    def describe(self) -> str:
        return f"chunk {self.chunk_frames}, look-ahead {'all' if self.lookahead is None else self.lookahead}"


class MotionStream:
    """Normalised speech (16 kHz mono) in, final motion frames out, step by step. Single-threaded: the caller
    serialises ``feed``/``finish``/``frames``."""

    def __init__(
        self, model: MotionGenerator, template: MotionTemplate, options: SamplingOptions | None = None,
        stream: StreamOptions | None = None, noise: NoiseStream | None = None,
    ) -> None:
        options = options or SamplingOptions()
        if options.seed is None and noise is None:
            options = replace(options, seed=secrets.randbits(63))
        cfg = model.config
        self.model, self.template, self.options = model, template, options
        self.stream = stream or StreamOptions()
        self.spf, self.window = cfg.samples_per_frame, cfg.n_motions
        self.keep, self.reads = self.stream.span(self.window)
        self.sampler = WindowSampler(model, options, noise or NoiseStream(seed=options.seed))
        self.context = WindowContext.start(model)
        self.smoother = CausalPoseSmoother(options.pose_smoothing)
        lead = LEADING_PAD_FRAMES * self.spf if options.leading_silence else 0
        self.lag = lead // self.spf if options.lag_compensation else 0
        self.buffer = torch.zeros(lead)  # the padded speech from padded sample ``offset`` on
        self.offset = 0
        self.lead = lead
        self.n_speech = 0  # speech samples received
        self.finished = False
        self.pos = 0  # padded-stream frame the next step starts at
        self.pending: list[torch.Tensor] = []  # sampled (1, 73) frames not handed out yet, in order
        self.pending_start = 0  # padded-stream frame of pending[0]
        self.emitted = 0  # output frames handed out
        self.timings = {"encode": 0.0, "sample": 0.0}  # seconds spent in HuBERT and in the denoiser
        self.settings = {
            "scheduler": options.scheduler, "num_steps": options.num_steps or cfg.n_diff_steps,
            "cfg_scale": options.cfg_scale, "flexibility": options.flexibility, "ddim_eta": options.ddim_eta,
            "pe_mode": model.pe_mode, "leading_silence": options.leading_silence,
            "lag_compensation": options.lag_compensation, "live": self.stream.describe(), "noise": "seed",
        }

    @property
    def seed(self) -> int | None:
        return self.options.seed

    def feed(self, speech: torch.Tensor) -> None:
        """Append 16 kHz mono samples (1-D float)."""
        if self.finished:
            raise RuntimeError("live motion: the speech was finished; start a new session for more speech")
        speech = speech.detach().reshape(-1).float().cpu()
        self.buffer = torch.cat([self.buffer, speech])
        self.n_speech += int(speech.numel())

    def finish(self) -> None:
        """No more speech: the last steps read zeros past its end, as the offline path pads its last window."""
        if not self.finished and self._output_bound() == 0:
            plan_windows(self.n_speech, self.spf, self.window, self.options.leading_silence)  # raises: too short
        self.finished = True

    def _output_bound(self) -> int:
        """Padded-stream frames certainly kept: those before the end of the kept frames the speech received so far
        would have (monotone in the speech length, final once finished)."""
        try:
            plan = plan_windows(self.n_speech, self.spf, self.window, self.options.leading_silence)
        except AudioInputError:
            return 0
        return plan.kept_frames(self.options.lag_compensation).stop

    def speech_end(self, index: int) -> int:
        """The speech samples up to the end of output frame ``index``'s own 40 ms (what it shows)."""
        return max(0, min((index + self.lag + 1) * self.spf - self.lead, self.n_speech))

    def _ready(self) -> bool:
        if self.finished:
            return self.pos < self._output_bound()
        return self.lead + self.n_speech >= (self.pos + self.reads) * self.spf

    def _step(self) -> None:
        """Sample the window at ``pos`` and keep its first frames."""
        start = self.pos * self.spf - self.offset
        size = self.window * self.spf
        chunk = torch.zeros(1, size)
        readable = self.buffer[start : start + self.reads * self.spf]
        chunk[0, : readable.numel()] = readable
        t0 = time.perf_counter()
        audio = encode_chunk(self.model, chunk)
        t1 = time.perf_counter()
        motion = self.sampler(audio, self.context)
        self.timings["encode"] += t1 - t0
        self.timings["sample"] += time.perf_counter() - t1
        self.context = self.context.after(motion, audio, self.keep)
        if not self.pending:
            self.pending_start = self.pos
        self.pending.extend(motion[0, : self.keep].float().cpu().split(1))
        self.pos += self.keep
        drop = self.pos * self.spf - self.offset
        self.buffer = self.buffer[drop:].clone()
        self.offset += drop

    def _take(self) -> tuple[int, MotionSequence] | None:
        """The pending frames that are final, smoothed, as (first output index, motion)."""
        while self.pending and self.pending_start < self.lag:  # the leading silence's frames
            self.pending.pop(0)
            self.pending_start += 1
        n = min(len(self.pending), self._output_bound() - self.pending_start)
        if n <= 0:
            return None
        coef = torch.cat(self.pending[:n])
        del self.pending[:n]
        first = self.pending_start - self.lag
        self.pending_start += n
        self.emitted += n
        motion = MotionSequence.from_coef(coef, self.template, smoothing=self.smoother, fps=self.model.config.fps,
                                          seed=self.options.seed, settings=self.settings)
        return first, motion

    @torch.no_grad()
    def frames(self) -> Iterator[tuple[int, MotionSequence]]:
        """Every step the speech received allows, yielding (first output index, motion) as frames become final."""
        while True:
            taken = self._take()
            if taken is not None:
                yield taken
            if not self._ready():
                if self.finished:
                    self.pending.clear()  # sampled past the last kept frame, as the offline path's last window
                return
            self._step()

    @property
    def waiting(self) -> bool:
        """Nothing to hand out and no step to sample until more speech (or ``finish``) arrives: no network runs."""
        return not self.pending and not self._ready()

    @property
    def done(self) -> bool:
        """Finished and every kept frame handed out."""
        return self.finished and not self._ready() and not self.pending
