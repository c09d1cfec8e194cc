"""Streaming mp4 writer (PyAV): H.264 yuv420p at 25 fps with AAC speech, frames written as they are rendered.

The reference writes frames with ffmpeg at crf 18 and muxes the original, un-padded speech; the
same is done here in one pass without a temporary video and without an ffmpeg binary. The file is written under a
hidden partial name in the target folder (``partials``) and renamed only when complete, so a failed or cancelled run
never leaves a broken file and never replaces the user's existing output (unless ``overwrite``); a full disk is one
clear error.

Conversion to uint8 and the H.264 encode run in a writer thread (``background``, the default), fed through a short
queue, so they overlap with the rendering of the next chunk instead of adding to it.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .errors import JoyVASAError
from .partials import partial_path, remove_stale_partials, track, untrack
from .validate import MAX_FRAMES, VIDEO_EXTS, Output, check_outputs


class OutputFileError(JoyVASAError, OSError):
    """The output cannot be written (exists without overwrite, folder missing, disk full...)."""


DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _disk_full(path: Path, exc: OSError) -> OutputFileError:
    return OutputFileError(f"--out {path}: the disk filled up while writing the video ({exc.strerror or exc}); "
                           "nothing was saved. Free some space or write to another disk.")


@dataclass(frozen=True)
class VideoFile:
    """A finished video on disk."""

    path: Path
    n_frames: int
    fps: int
    size: tuple[int, int] | None


def to_uint8_frames(frames: Any) -> np.ndarray:
    """(N, H, W, 3) uint8, or float in [0, 1] truncated to uint8 like the reference; torch or numpy."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach()
        if frames.dtype != torch.uint8:
            frames = frames.float().clamp(0, 1).mul(255).to(torch.uint8)
        frames = frames.cpu().numpy()
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0, 1) * 255).astype(np.uint8)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"video writer: frames must be (N, H, W, 3), got {arr.shape}")
    return arr


def _even(arr: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: repeat the last row/column rather than drop a pixel of the picture."""
    h, w = arr.shape[1:3]
    if h % 2 or w % 2:
        arr = np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return arr


_END = object()
QUEUED_CHUNKS = 2  # chunks waiting for the writer thread: enough to overlap, few enough to keep memory flat


class VideoWriter:
    """Write frames chunk by chunk; speech is interleaved as the video advances.

    Use as a context manager: leaving the block normally finishes and renames the file; an exception (including
    KeyboardInterrupt) removes the temporary file and leaves any existing output untouched. With ``background``
    the chunks are encoded by a writer thread (a chunk must not be modified after ``write``); an error there is
    raised by the next ``write`` or by ``close``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: int = 25,
        crf: int = 18,
        audio: torch.Tensor | np.ndarray | None = None,
        sample_rate: int = SAMPLE_RATE,
        overwrite: bool = False,
        preset: str = "medium",
        audio_bitrate: int = 128_000,
        background: bool = True,
    ) -> None:
        self.path = check_outputs([Output("out", path, VIDEO_EXTS, "video container")], {}, overwrite)[0]["out"]
        self.overwrite = overwrite
        self.fps = int(fps)
        self.crf = int(crf)
        self.preset = preset
        self.sample_rate = int(sample_rate)
        self.audio_bitrate = int(audio_bitrate)
        wave = None
        if audio is not None:
            wave = audio.detach().float().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
            wave = np.clip(wave.astype(np.float32).reshape(-1), -1.0, 1.0)
        self._audio = wave
        self._audio_pos = 0
        remove_stale_partials(self.path.parent)
        self.tmp = partial_path(self.path)
        self.tmp.touch()  # the muxer creates its file only with the first packet; the name is ours from now on
        track(self.tmp)
        self._container = None
        self._video = None
        self._astream = None
        self.n_frames = 0
        self.size: tuple[int, int] | None = None
        self.background = background
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUED_CHUNKS)
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._dropping = False

    def _open(self, width: int, height: int) -> None:
        import av

        self._container = av.open(str(self.tmp), mode="w", format="mp4")
        v = self._container.add_stream("libx264", rate=Fraction(self.fps, 1))
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": str(self.crf), "preset": self.preset}
        self._video = v
        if self._audio is not None and self._audio.size:
            a = self._container.add_stream("aac", rate=self.sample_rate)
            a.layout = "mono"
            a.bit_rate = self.audio_bitrate
            self._astream = a
        self.size = (width, height)

    def _mux_audio(self, until: int) -> None:
        import av

        if self._astream is None:
            return
        until = min(until, self._audio.size)
        if until <= self._audio_pos:
            return
        frame = av.AudioFrame.from_ndarray(self._audio[None, self._audio_pos : until], format="fltp", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._audio_pos
        frame.time_base = Fraction(1, self.sample_rate)
        for packet in self._astream.encode(frame):
            self._container.mux(packet)
        self._audio_pos = until

    def write(self, frames: Any) -> None:
        """Append (N, H, W, 3) frames (uint8, or float in [0, 1]); every chunk must have the first chunk's size."""
        self._raise_worker_error()
        if not self.background:
            self._encode(frames)
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="joyvasa-video-writer", daemon=True)
            self._worker.start()
        self._queue.put(frames)  # waits while QUEUED_CHUNKS are pending: memory stays bounded

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is not None or self._dropping:
                continue  # keep draining so that a waiting ``write`` is released
            try:
                self._encode(item)
            except BaseException as exc:  # handed to the caller's thread by the next write/close
                self._error = exc

    def _stop_worker(self, drop: bool = False) -> None:
        """Wait for the writer thread to encode what is queued (or, with ``drop``, to discard it) and end."""
        if self._worker is None:
            return
        self._dropping = drop
        self._queue.put(_END)
        self._worker.join()
        self._worker = None

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _encode(self, frames: Any) -> None:
        try:
            self._write(frames)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise _disk_full(self.path, exc) from None
            raise

    def _write(self, frames: Any) -> None:
        import av

        arr = _even(to_uint8_frames(frames))
        h, w = arr.shape[1:3]
        if self._container is None:
            self._open(w, h)
        elif (w, h) != self.size:
            raise ValueError(f"video writer: frame size {w}x{h} differs from the first frames' {self.size}")
        for img in arr:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.n_frames
            frame.time_base = Fraction(1, self.fps)
            for packet in self._video.encode(frame):
                self._container.mux(packet)
            self.n_frames += 1
        self._mux_audio(self.n_frames * self.sample_rate // self.fps)

    def close(self) -> Path:
        """Flush the encoders, mux the rest of the speech, and move the finished file into place."""
        try:
            self._stop_worker()
            self._raise_worker_error()
        except BaseException:
            self.abort()
            raise
        if self._container is None:
            self.abort()
            raise OutputFileError(f"output {self.path}: no frames were rendered, nothing was written.")
        try:
            for packet in self._video.encode():
                self._container.mux(packet)
            if self._astream is not None:
                self._mux_audio(self._audio.size)
                for packet in self._astream.encode():
                    self._container.mux(packet)
            self._container.close()
            self._container = None
            if self.path.exists() and not self.overwrite:
                raise OutputFileError(f"output {self.path} appeared while rendering; the result was not saved over "
                                      "it. Pass --overwrite or choose another name.")
            os.replace(self.tmp, self.path)
            untrack(self.tmp)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                raise _disk_full(self.path, exc) from None
            raise
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; the target path is never touched."""
        self._stop_worker(drop=True)
        self._error = None
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the partial file is deleted below whatever state the muxer is in
                pass
            self._container = None
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            pass
        untrack(self.tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_video(path: str | os.PathLike, max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, float]:
    """Every frame of a video file as (N, H, W, 3) uint8 RGB, and its frame rate; clear errors for bad files. A video
    longer than ``max_frames`` (an hour at 25 fps) is refused from its header before a frame is decoded."""
    import av

    p = Path(path).expanduser()
    if not p.is_file():
        raise JoyVASAError(f"driving video {p}: no such file; check the path.")
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise JoyVASAError(f"driving video {p}: holds no video stream; give a video file (mp4, mov, mkv...).")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            stated = stream.frames or int((container.duration or 0) / 1_000_000 * rate)
            if stated > max_frames:
                raise JoyVASAError(f"driving video {p}: {stated} frames ({stated / rate / 3600:.1f} hours); the "
                                   f"limit is {max_frames} frames: trim it first.")
            frames = []
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) > max_frames:
                    raise JoyVASAError(f"driving video {p}: more than {max_frames} frames; trim it first.")
    except av.FFmpegError as exc:
        raise JoyVASAError(f"driving video {p}: cannot be decoded ({exc}); give a video file (mp4, mov, mkv...).") \
            from None
    if not frames:
        raise JoyVASAError(f"driving video {p}: has no frames.")
    return np.stack(frames), rate
