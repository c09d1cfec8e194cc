"""A live session: speech pushed as it arrives, finished frames out as soon as they are final.

One session holds the loaded models (shared, never freed here), one prepared reference face (F, M and W's source
compression done once) and the options. ``push`` takes speech at any rate and channel layout; iterating what it
returns (or ``frames()``) samples the motion steps the speech allows (``motion.streaming.MotionStream``), composes the
keypoints against the first frame, renders and pastes back, frame by frame. ``idle`` and ``keep_alive`` feed silence,
so the face keeps the model's own silence motion at 25 fps while nobody speaks and speech that resumes continues the
same motion. Blinks (on by default, ``motion.blinks.LIVE_BLINKS``) come from the offline job's schedule, decided frame
block by frame block as the frames become final, talking or idle, through the eye-retargeting network as the
offline render applies them. ``finish`` flushes; ``close`` frees everything the session made.

Threads: ``push``/``idle``/``keep_alive``/``finish`` may come from any thread (a lock guards the speech); one consumer
iterates the frames. Transport-agnostic: the file command, the bench and a web page drive the same calls.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..audio.stream import StreamResampler
from ..loading import ModelSet
from ..motion.blinks import LIVE_BLINKS, BlinkOptions, LiveBlinks, job_blinks
from ..motion.sequence import MotionSequence
from ..motion.streaming import MotionStream, StreamOptions
from ..pipeline import (
    AnimateOptions,
    SourceFace,
    animate_options,
    compose_keypoints,
    default_batch_size,
    keypoint_composer,
    paste_back_into_photo,
    prepare_face,
    render_frames,
)
from ..types import TargetKeypoints
from .stats import LiveStats

KEEP_ALIVE_GRACE_S = 0.2  # the speech may trail the clock by this much before silence is filled in


@dataclass(frozen=True, eq=False)
class LiveFrame:
    """One final frame: its index (25 fps), the picture (H, W, 3) uint8 RGB (None when rendering is off), its driving
    keypoints (21, 3), when its own 40 ms of speech had arrived and when it was finished (``clock`` seconds)."""

    index: int
    image: np.ndarray | None
    keypoints: torch.Tensor
    speech_time: float
    time: float

    @property
    def latency(self) -> float:
        """Seconds the frame came after its speech."""
        return self.time - self.speech_time


class LiveSession:
    """Talking-head frames from speech still arriving (see the module docstring). ``face`` is a prepared
    ``SourceFace`` (shared by sessions of the same portrait) or the portrait image to prepare; ``render`` False
    gives the keypoints only (motion figures, comparisons); ``blinks`` None: the live default at 15 a minute, seeded
    by the session's seed as the offline job seeds them. ``keep_loaded`` is called whenever networks are about to run
    (never while the session only waits for speech): a host that moves networks between devices while the session
    lives (ComfyUI frees memory for other workflows) puts them back on the session's device there."""

    def __init__(
        self, models: ModelSet, face: Any, options: AnimateOptions | None = None,
        stream: StreamOptions | None = None, render: bool = True, clock: Callable[[], float] = time.perf_counter,
        blinks: BlinkOptions | None = None, keep_loaded: Callable[[], object] | None = None,
    ) -> None:
        if models.motion_model is None:
            raise ValueError("live session: the models hold no motion generator; load them with the motion model")
        self.models, self.clock, self.render = models, clock, render
        self.keep_loaded = keep_loaded
        self.options = options or animate_options()
        lp = models.liveportrait
        face = face if isinstance(face, SourceFace) else prepare_face(face, lp, models.detector, self.options)
        self.face = face
        self.reference, self.appearance = face.reference, face.appearance
        self.paste_back = paste_back_into_photo(self.reference, self.options.keypoints.stitching,
                                                self.options.paste_back and render, crop_size=lp.crop_size)
        mm = models.motion_model
        self.motion = MotionStream(mm.generator, mm.template, self.options.sampling, stream)
        self.options = replace(self.options, sampling=self.motion.options)  # the seed drawn, when none was given
        self.blinks = LiveBlinks.of(blinks or job_blinks(LIVE_BLINKS, self.seed), mm.config.fps)
        self.batch_size = self.options.batch_size or default_batch_size(lp.device)
        self.resampler = StreamResampler()
        self.lock = threading.Lock()
        self.composer = None
        self.queue: deque[tuple[int, torch.Tensor]] = deque()  # composed keypoints (index, (21, 3)) to render
        self.arrivals: deque[tuple[int, float]] = deque()  # (speech samples received, clock) after each push
        self.stats = LiveStats(fps=mm.config.fps)
        self.started: float | None = None
        self.closed = False

    # -- speech in -------------------------------------------------------------------------------------------------

    def push(self, samples: Any, sample_rate: float) -> Iterator[LiveFrame]:
        """Add speech ((T,), (C, T), (T, C), int PCM or float) and iterate the frames it makes final."""
        with self.lock:
            now = self._begin()
            self._feed(self.resampler(samples, sample_rate), now)
        return self.frames()

    def idle(self, seconds: float) -> Iterator[LiveFrame]:
        """Add ``seconds`` of silence: the face goes on with the model's silence motion."""
        with self.lock:
            self._silence(int(round(seconds * SAMPLE_RATE)), self._begin())
        return self.frames()

    def keep_alive(self, grace: float = KEEP_ALIVE_GRACE_S) -> Iterator[LiveFrame]:
        """Fill silence up to the clock when the speech trails it by more than ``grace`` seconds (nobody speaks):
        call it every frame or so from a serving loop, and the frames keep coming at 25 fps."""
        with self.lock:
            now = self._begin()
            behind = (now - self.started) - self.motion.n_speech / SAMPLE_RATE
            if behind > grace:
                self._silence(int(behind * SAMPLE_RATE), now)
        return self.frames()

    def finish(self) -> Iterator[LiveFrame]:
        """No more speech: iterate the remaining frames (the last steps read zeros past the end)."""
        with self.lock:
            now = self._begin()
            if not self.motion.finished:
                self._feed(self.resampler.flush(), now)
                self.motion.finish()
        return self.frames()

    def _begin(self) -> float:
        if self.closed:
            raise RuntimeError("live session: the session is closed; start a new one")
        now = self.clock()
        if self.started is None:
            self.started = now
            self.stats.started = now
        return now

    def _silence(self, n_samples: int, now: float) -> None:
        """Silence after everything pushed so far (the resampler's held samples first)."""
        self._feed(torch.cat([self.resampler.flush(), torch.zeros(n_samples)]), now)

    def _feed(self, speech: torch.Tensor, now: float) -> None:
        if speech.numel():
            self.motion.feed(speech)
        self.arrivals.append((self.motion.n_speech, now))

    # -- frames out ------------------------------------------------------------------------------------------------

    def frames(self) -> Iterator[LiveFrame]:
        """Every frame the speech received so far makes final, in order, each as soon as it is rendered."""
        while True:
            with self.lock:
                if self.closed:
                    return
                t0 = self.clock()
                batch = self._next_batch()
                self.stats.busy += self.clock() - t0
            if not batch:
                return
            yield from batch

    def _next_batch(self) -> list[LiveFrame]:
        """Sample the next step when nothing is left to render, then render up to a batch of frames."""
        if self.keep_loaded is not None and (self.queue or not self.motion.waiting):
            self.keep_loaded()  # networks are about to run: a host may have moved them off the device meanwhile
        if not self.queue:
            for first, motion in self.motion.frames():
                self._compose(first, motion)
                break
        if not self.queue:
            return []
        take = [self.queue.popleft() for _ in range(min(self.batch_size, len(self.queue)))]
        images = self._render(torch.stack([x for _, x in take]))
        now = self.clock()
        out = [LiveFrame(index=i, image=img, keypoints=x, speech_time=self._arrival(i), time=now)
               for (i, x), img in zip(take, images, strict=True)]
        self.stats.add(out)
        return out

    def _compose(self, first: int, motion: MotionSequence) -> None:
        t0 = self.clock()
        lp = self.models.liveportrait
        eye_open = None if self.blinks is None else self.blinks.track(first, motion.n_frames)
        if eye_open is not None and not bool((eye_open == 1).all()):  # open eyes need no eye-retargeting pass
            motion = replace(motion, eye_open=eye_open)
        if self.composer is None:
            self.composer = keypoint_composer(lp, self.appearance, motion, self.options.keypoints)
        x_d = compose_keypoints(lp, self.composer, self.appearance, motion)
        self.queue.extend(zip(range(first, first + motion.n_frames), x_d, strict=True))
        self.stats.timings["compose"] += self.clock() - t0

    def _render(self, x_d: torch.Tensor) -> list[np.ndarray | None]:
        if not self.render:
            return [None] * len(x_d)
        t0 = self.clock()
        keypoints = TargetKeypoints(x_d=x_d, x_s=self.composer.x_s.float().cpu(), options=self.composer.options,
                                    fps=self.stats.fps, mode=self.appearance.mode)
        chunks = render_frames(self.models.liveportrait, self.appearance, keypoints, self.paste_back,
                               self.batch_size, as_uint8=True)
        images = [frame.numpy() for chunk in chunks for frame in chunk]
        self.stats.timings["render"] += self.clock() - t0
        return images

    def _arrival(self, index: int) -> float:
        """When the speech of output frame ``index`` had arrived (the push that completed its 40 ms)."""
        needed = self.motion.speech_end(index)
        while len(self.arrivals) > 1 and self.arrivals[0][0] < needed:
            self.arrivals.popleft()
        return self.arrivals[0][1]

    # -- state -----------------------------------------------------------------------------------------------------

    @property
    def seed(self) -> int | None:
        return self.motion.seed

    @property
    def done(self) -> bool:
        """Finished, and every frame handed out (a closed session is done)."""
        return self.motion is None or (self.motion.done and not self.queue)

    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the frames: the photo's with paste-back, else G's crop."""
        if self.paste_back is not None:
            return self.paste_back.width, self.paste_back.height
        return self.models.liveportrait.crop_size, self.models.liveportrait.crop_size

    def close(self) -> None:
        """Free the reference, appearance, motion state and queued frames (the models stay loaded)."""
        with self.lock:
            self.closed = True
            self.face = self.reference = self.appearance = self.paste_back = self.composer = None
            self.motion = None
            self.queue.clear()
            self.arrivals.clear()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
