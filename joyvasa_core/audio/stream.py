"""Speech that arrives in pieces -> the 16 kHz mono float32 the motion generator reads, piece by piece.

The same conversions as ``io.load_audio`` (integer PCM scaled by its type range, channel mean, soxr high quality),
with soxr's streaming resampler, which keeps its filter state between pieces: the pieces join without clicks and the
output, once flushed, has the length a one-shot resampling would have. A piece may come at any rate and in any
channel layout ((T,), (C, T), (T, C) or a ComfyUI (1, C, T)); a change of rate flushes the old resampler first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr
import torch

from ..errors import AudioInputError
from . import SAMPLE_RATE
from .io import RESAMPLE_QUALITY, raw_channels


class StreamResampler:
    """Converts pieces of speech to 16 kHz mono; ``flush`` returns what the resampler still holds."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self.resampler: soxr.ResampleStream | None = None

    def __call__(self, samples: Any, sample_rate: float) -> torch.Tensor:
        """The 16 kHz mono samples (1-D float32) this piece completes (a resampler holds back a few ms)."""
        data, rate, what = raw_channels(samples, sample_rate, "live speech")
        if not np.isfinite(data).all():
            raise AudioInputError(f"{what}: NaN or Inf samples; send float samples in [-1, 1] or integer PCM")
        mono = data.mean(axis=0) if data.shape[0] > 1 else data[0]
        out = [] if rate == self.rate else [self.flush()]
        if rate != self.rate:
            self.rate = rate
            self.resampler = None if rate == SAMPLE_RATE else soxr.ResampleStream(
                rate, SAMPLE_RATE, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        if self.resampler is None:
            out.append(torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)))
        else:
            out.append(torch.from_numpy(self.resampler.resample_chunk(np.ascontiguousarray(mono, np.float32))))
        return torch.cat(out)

    def flush(self) -> torch.Tensor:
        """The samples the resampler still holds (empty at 16 kHz or before any piece)."""
        if self.resampler is None:
            return torch.zeros(0)
        tail = self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        self.resampler = None
        self.rate = None
        return torch.from_numpy(np.ascontiguousarray(tail, dtype=np.float32))
