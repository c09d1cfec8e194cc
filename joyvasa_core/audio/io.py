"""Speech input -> the 16 kHz mono float32 waveform the motion generator reads.

The reference loads audio with ``librosa.load(sr=16000, mono=True)``: channel mean, then soxr high-quality
resampling, integer PCM scaled by its type range, no loudness normalisation. This module reproduces that with
soundfile + soxr (and PyAV for containers libsndfile cannot open) without librosa's heavy stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch

from ..errors import AudioInputError
from . import SAMPLE_RATE
from .encoder import SAMPLES_PER_FRAME

MAX_CHANNELS = 64  # an array axis longer than this is time, never channels
SILENCE_PEAK = 1e-5  # below one 16-bit LSB (3.05e-5): digital silence
RESAMPLE_QUALITY = "HQ"  # librosa's default 'soxr_hq'

_SOUNDFILE_EXTS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64"}
# Signed PCM: value / 2**(bits-1). Unsigned 8-bit PCM is offset by 128 (WAV convention).
_INT_SCALE = {np.dtype(np.int8): 128.0, np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}


def load_audio(source: Any, sample_rate: int | None = None) -> torch.Tensor:
    """Decode ``source`` to a 1-D float32 tensor: 16 kHz, mono, in the input's own scale.

    ``source`` may be:

    * a file path: WAV/FLAC/OGG/MP3/AIFF through soundfile; MP4/M4A/AAC/anything else through PyAV (AAC encoder
      priming and end padding are trimmed using the container's timestamps and duration);
    * a numpy array or torch tensor with ``sample_rate`` given: (T,), (C, T) or (T, C) — the longer axis is time,
      the other one (at most 64 long) channels — or a ComfyUI waveform (1, C, T);
    * a ComfyUI AUDIO dict ``{"waveform": (1, C, T), "sample_rate": int}``.

    Channels are averaged, the rate is converted with soxr (high quality), integer PCM is scaled by its type range
    (int16 / 32768, int32 / 2**31, int8 / 128, uint8 (x - 128) / 128); float input passes unchanged.
    Raises AudioInputError for empty, too short (< one 40 ms motion frame), non-finite or silent audio.
    """
    if isinstance(source, Mapping):
        data, rate, what = _from_comfy_dict(source, sample_rate)
    elif isinstance(source, (str, os.PathLike)):
        data, rate, what = _read_file(Path(source))
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        data, rate, what = raw_channels(source, sample_rate, "audio array")
    else:
        raise AudioInputError(
            f"audio input: unsupported type {type(source).__name__}; pass a file path, a numpy array / torch tensor "
            "with its sample rate, or a ComfyUI AUDIO dict"
        )
    return _finish(data, rate, what)


def _check_rate(rate: Any, what: str) -> float:
    if rate is None:
        raise AudioInputError(
            f"{what}: the sample rate is unknown; pass sample_rate= (e.g. 16000 or 44100) together with raw samples"
        )
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise AudioInputError(f"{what}: sample rate {rate!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise AudioInputError(f"{what}: sample rate {rate!r} must be a positive number of samples per second")
    return value


def _from_comfy_dict(audio: Mapping, sample_rate: int | None) -> tuple[np.ndarray, float, str]:
    what = "ComfyUI AUDIO input"
    if "waveform" not in audio:
        raise AudioInputError(
            f"{what}: no 'waveform' entry (keys: {sorted(map(str, audio))}); expected "
            "{'waveform': (1, C, T) tensor, 'sample_rate': int}"
        )
    rate = audio.get("sample_rate", sample_rate)
    return raw_channels(audio["waveform"], rate, what)


def raw_channels(array: np.ndarray | torch.Tensor, rate: Any, what: str) -> tuple[np.ndarray, float, str]:
    """Raw samples -> (channels, time) float32, plus the checked sample rate."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        if array.dtype == torch.bfloat16:
            array = array.float()
        array = array.numpy()
    array = np.asarray(array)
    what = f"{what} (shape {tuple(array.shape)}, {array.dtype})"
    if array.size == 0:
        raise AudioInputError(f"{what}: the audio is empty (0 samples); give a speech clip of at least 40 ms")
    rate_hz = _check_rate(rate, what)
    data = _to_float(array, what)
    if data.ndim == 3:
        if data.shape[0] != 1:
            raise AudioInputError(
                f"{what}: a batch of {data.shape[0]} clips; one portrait is driven by one clip, so split the batch "
                "or pick one clip"
            )
        data = data[0]
    if data.ndim == 1:
        data = data[None]
    elif data.ndim == 2:
        if min(data.shape) > MAX_CHANNELS:
            raise AudioInputError(
                f"{what}: cannot tell channels from time (both axes longer than {MAX_CHANNELS}); pass (T,), (C, T) "
                "or (T, C)"
            )
        if data.shape[0] > data.shape[1]:
            data = data.T
    else:
        raise AudioInputError(f"{what}: expected 1-3 dimensions ((T,), (C, T), (T, C) or (1, C, T))")
    return data, rate_hz, what


def _to_float(array: np.ndarray, what: str) -> np.ndarray:
    """Integer PCM scaled by its type range; floats cast to float32 unchanged."""
    dtype = array.dtype
    if dtype in _INT_SCALE:
        return (array.astype(np.float64) / _INT_SCALE[dtype]).astype(np.float32)
    if dtype == np.uint8:
        return ((array.astype(np.float64) - 128.0) / 128.0).astype(np.float32)
    if np.issubdtype(dtype, np.floating):
        return array.astype(np.float32)
    raise AudioInputError(
        f"{what}: unsupported sample type {dtype}; use float in [-1, 1] or integer PCM (int16, int32, int8, uint8)"
    )


def _read_file(path: Path) -> tuple[np.ndarray, float, str]:
    what = f"audio file '{path}'"
    if not path.is_file():
        raise AudioInputError(f"{what}: no such file; check the path")
    if path.stat().st_size == 0:
        raise AudioInputError(f"{what}: the file is empty (0 bytes); re-export the speech clip")
    errors = []
    if path.suffix.lower() in _SOUNDFILE_EXTS:
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
            return data.T, float(rate), what
        except (RuntimeError, TypeError, ValueError) as exc:  # LibsndfileError is a RuntimeError
            errors.append(f"soundfile: {exc}")
    try:
        data, rate = _decode_with_av(path)
        return data, rate, what
    except AudioInputError:
        raise
    except Exception as exc:  # any decoder failure becomes one actionable message
        errors.append(f"PyAV: {exc}")
    raise AudioInputError(
        f"{what}: could not decode the audio ({'; '.join(errors)}); re-encode it as 16-bit PCM WAV and try again"
    )


def _decode_with_av(path: Path) -> tuple[np.ndarray, float]:
    """All samples of the first audio stream as (channels, time) float32, encoder priming and end padding trimmed.

    The decoder already drops the priming the container signals (MP4 edit list, Matroska codec delay); what is left
    before timestamp 0 is cut here, and the tail is cut to the stream's declared duration (AAC pads the last frame).
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioInputError(f"audio file '{path}': the file has no audio stream; pick a file with speech")
        stream = container.streams.audio[0]
        converter = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        rate = None
        skip = 0
        for frame in container.decode(stream):
            if rate is None:
                rate = frame.sample_rate
                if frame.pts is not None and frame.time_base is not None and frame.pts < 0:
                    skip = round(-frame.pts * frame.time_base * rate)
            for out in converter.resample(frame):
                chunks.append(out.to_ndarray())
        for out in converter.resample(None):
            chunks.append(out.to_ndarray())
        if rate is None or not chunks:
            raise AudioInputError(f"audio file '{path}': the audio stream holds no samples; re-export the clip")
        data = np.concatenate(chunks, axis=1)[:, skip:]
        if stream.duration is not None and stream.time_base is not None:
            declared = round(Fraction(stream.duration) * stream.time_base * rate)
            if 0 < declared < data.shape[1]:
                data = data[:, :declared]
    return np.ascontiguousarray(data, dtype=np.float32), float(rate)


def _finish(data: np.ndarray, rate: float, what: str) -> torch.Tensor:
    """Validate, downmix (channel mean), resample to 16 kHz; (C, T) float32 in, 1-D tensor out."""
    if data.shape[-1] == 0:
        raise AudioInputError(f"{what}: the audio is empty (0 samples); give a speech clip of at least 40 ms")
    finite = np.isfinite(data)
    if not finite.all():
        n_nan = int(np.isnan(data).sum())
        n_inf = int(data.size - finite.sum() - n_nan)
        raise AudioInputError(
            f"{what}: {n_nan} NaN and {n_inf} Inf samples; the audio is corrupt or came from a failed processing "
            "step, re-export it"
        )
    peak_in = float(np.abs(data).max())
    mono = data.mean(axis=0) if data.shape[0] > 1 else data[0]  # float32, like librosa.to_mono
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)
    if mono.shape[0] < SAMPLES_PER_FRAME:
        raise AudioInputError(
            f"{what}: {data.shape[-1]} samples at {rate:g} Hz ({data.shape[-1] / rate * 1000:.1f} ms) is shorter than "
            f"one motion frame ({SAMPLES_PER_FRAME} samples at {SAMPLE_RATE} Hz = 40 ms); give a longer speech clip"
        )
    peak = float(np.abs(mono).max())
    if peak < SILENCE_PEAK:
        if peak_in >= SILENCE_PEAK:
            raise AudioInputError(
                f"{what}: the channels cancel out when mixed to mono (peak {peak_in:.3g} per channel, {peak:.3g} "
                "mixed); one channel is phase-inverted, pass a single channel instead"
            )
        raise AudioInputError(
            f"{what}: the audio is silent (peak {peak:.3g}, below {SILENCE_PEAK:g}); JoyVASA needs speech to move "
            "the lips, check the file or the mute/volume of the recording"
        )
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
