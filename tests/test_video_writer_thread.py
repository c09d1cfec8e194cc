"""The video writer's thread: the same file as encoding in the caller's thread, errors raised to the caller, nothing
left behind on failure, and rendering overlapped with the encode."""

from __future__ import annotations

import threading
import time

import av
import numpy as np
import pytest
import torch

from joyvasa_core.video import VideoWriter


def decoded(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def chunks() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 96, 128, 3, generator=g)
    # Smoothly moving frames (x264 codes them like video, not noise), float and uint8 chunks mixed.
    out = [(base.roll(i * 3, dims=2) * 0.8 + 0.1).expand(3, -1, -1, -1).clone() for i in range(4)]
    out[1] = out[1].mul(255).to(torch.uint8)
    return out


def test_background_writer_gives_the_same_video(tmp_path):
    paths = {}
    for background in (False, True):
        paths[background] = tmp_path / f"bg{int(background)}.mp4"
        with VideoWriter(paths[background], audio=torch.zeros(8000) + 0.1, background=background) as writer:
            for chunk in chunks():
                writer.write(chunk)
        assert writer.n_frames == 12
    a, b = decoded(paths[False]), decoded(paths[True])
    assert a.shape == (12, 96, 128, 3) and np.array_equal(a, b)


def test_writer_thread_error_reaches_the_caller_and_leaves_no_file(tmp_path):
    target = tmp_path / "out.mp4"
    writer = VideoWriter(target)
    writer.write(torch.rand(2, 64, 64, 3))
    writer.write(torch.rand(2, 32, 64, 3))  # another size: fails in the writer thread
    with pytest.raises(ValueError, match="differs from the first frames"):
        for _ in range(3):  # raised by a later write or, at the latest, by close
            writer.write(torch.rand(1, 64, 64, 3))
        writer.close()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_encode_runs_while_the_caller_works(tmp_path, monkeypatch):
    """``write`` hands the chunk over and returns: the caller's next work overlaps the encode."""
    frames = torch.rand(8, 256, 256, 3)
    seen = []
    original = VideoWriter._encode

    def slow_encode(self, chunk):
        seen.append(threading.current_thread().name)
        time.sleep(0.3)
        original(self, chunk)

    monkeypatch.setattr(VideoWriter, "_encode", slow_encode)  # the real encode, made measurably slow
    with VideoWriter(tmp_path / "o.mp4") as writer:
        t0 = time.perf_counter()
        writer.write(frames)
        handed_over = time.perf_counter() - t0
    assert handed_over < 0.2 and seen == ["joyvasa-video-writer"]
    assert decoded(tmp_path / "o.mp4").shape[0] == 8
