"""The live page's wire format: what the browser sends up the WebSocket and what comes back down.

One WebSocket per viewer, one live session per WebSocket.

Up (browser -> server):
  - text ``{"type": "start", "sample_rate": R, "format": "f32le" | "s16le"}`` once, before any audio;
  - binary messages of mono PCM in that format (little endian), each at most ``max_bytes``;
  - text ``{"type": "stop"}``: the speech is over, flush the look-ahead.

Down (server -> browser):
  - text ``{"type": "ready", "fps": F, "max_bytes": N}`` when the session is open;
  - one binary message per frame: a 4-byte big-endian header length, a UTF-8 JSON header ``{"seq": n, "t": s,
    "upto": samples, "engine_ms": ms, "server_ms": ms}``, then the JPEG. ``t`` is the speech time in seconds the
    frame shows, ``upto`` how many of the page's samples had arrived when the frame's speech was complete (the page
    times the frame's latency from when it sent that sample), ``server_ms`` the time from that sample's arrival to
    the frame encoded (waiting for the session, the engine, the JPEG), ``engine_ms`` the engine's part of it (the
    rest of the page's latency is the network and the page);
  - text ``{"type": "done", "frames": N}`` after a stop, once every frame is sent;
  - text ``{"type": "error", "message": "..."}`` before the server closes a connection whose input it refuses.
"""

from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import JoyVASAError

FORMATS = {"f32le": np.dtype("<f4"), "s16le": np.dtype("<i2")}
MIN_RATE, MAX_RATE = 8000, 192000
HEADER = struct.Struct(">I")


class WireError(JoyVASAError, ValueError):
    """A message the live server refuses: its text says what was wrong and what the page should send instead."""


@dataclass(frozen=True)
class StreamFormat:
    """The audio a connection announced in its start message."""

    sample_rate: int
    dtype: np.dtype


def parse_control(text: str) -> dict:
    """A text message as a control dict with a known ``type``; anything else is a ``WireError``."""
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict) or message.get("type") not in ("start", "stop"):
        raise WireError(f"live: a text message must be JSON {{\"type\": \"start\" | \"stop\"}}, got {text[:80]!r}; "
                        "audio goes in binary messages")
    return message


def stream_format(message: dict) -> StreamFormat:
    """The sample rate and sample format of a start message, checked."""
    rate, fmt = message.get("sample_rate"), message.get("format", "f32le")
    if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE:
        raise WireError(f"live: start needs an integer sample_rate in {MIN_RATE}..{MAX_RATE} Hz, got {rate!r}")
    if fmt not in FORMATS:
        raise WireError(f"live: start format must be one of {sorted(FORMATS)}, got {fmt!r}")
    return StreamFormat(rate, FORMATS[fmt])


def decode_pcm(data: bytes, fmt: StreamFormat | None, max_bytes: int) -> np.ndarray:
    """A binary message as float32 mono samples in -1..1, or a ``WireError`` saying why it is not audio."""
    if fmt is None:
        raise WireError("live: audio arrived before the start message; send {\"type\": \"start\", \"sample_rate\": "
                        "16000, \"format\": \"f32le\"} first")
    if len(data) > max_bytes:
        limit_ms = 1000 * max_bytes / (fmt.dtype.itemsize * fmt.sample_rate)
        raise WireError(f"live: an audio message of {len(data):,} bytes is over the limit of {max_bytes:,} bytes; "
                        f"send chunks of at most {limit_ms:.0f} ms")
    if len(data) % fmt.dtype.itemsize:
        raise WireError(f"live: {len(data)} bytes is not whole {fmt.dtype.itemsize}-byte samples: not the announced "
                        "mono PCM")
    samples = np.frombuffer(data, fmt.dtype)
    if fmt.dtype.kind == "i":
        return samples.astype(np.float32) / 32768.0
    if not np.isfinite(samples).all() or (samples.size and float(np.abs(samples).max()) > 64.0):
        raise WireError("live: float32 samples must be finite and about -1..1: this message is not audio")
    return samples.astype(np.float32, copy=False)


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """An RGB uint8 picture (H, W, 3) as JPEG bytes."""
    rgb = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"live: JPEG encoding failed for a picture of shape {rgb.shape}")
    return data.tobytes()


def encode_frame(seq: int, fps: float, frame: np.ndarray, quality: int, upto: int, engine_s: float,
                 arrived: float) -> bytes:
    """One frame message: the header and the frame as JPEG. ``upto`` is how many of the viewer's samples had been
    received when the frame's speech was complete, ``arrived`` when the last of them arrived (``time.perf_counter``);
    ``engine_s`` how long the engine took from its push to the finished frame."""
    data = jpeg(frame, quality)
    header = {"seq": seq, "t": round(seq / fps, 4), "upto": upto, "engine_ms": _ms(engine_s),
              "server_ms": _ms(time.perf_counter() - arrived)}
    encoded = json.dumps(header).encode()
    return HEADER.pack(len(encoded)) + encoded + data


def _ms(seconds: float) -> float | None:
    return round(1000 * seconds, 1) if math.isfinite(seconds) else None


def control(kind: str, **fields: object) -> str:
    """A text message to the page."""
    return json.dumps({"type": kind, **fields})
