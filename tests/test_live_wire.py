"""The live page's wire format (``joyvasa_core/live/wire.py``): what the server takes as audio, what it refuses and
with which words, and the frame messages the page and the test client decode."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from live_client import decode_frame

from joyvasa_core.live.wire import WireError, decode_pcm, encode_frame, parse_control, stream_format

F32 = stream_format({"type": "start", "sample_rate": 16000, "format": "f32le"})
S16 = stream_format({"type": "start", "sample_rate": 48000, "format": "s16le"})


def test_pcm_in_both_formats_becomes_float_samples():
    wave = np.sin(np.linspace(0, 20, 640)).astype("<f4") * 0.5
    np.testing.assert_array_equal(decode_pcm(wave.tobytes(), F32, 4096), wave)
    ints = (wave * 32767).astype("<i2")
    got = decode_pcm(ints.tobytes(), S16, 4096)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, wave, atol=1 / 16000)


@pytest.mark.parametrize(
    ("data", "fmt", "words"),
    [
        (b"\0" * 5000, F32, "over the limit of 4,096 bytes; send chunks of at most 64 ms"),
        (b"\0" * 7, F32, "not whole 4-byte samples"),
        (np.array([0.1, np.nan], "<f4").tobytes(), F32, "finite"),
        (np.array([0.1, 1e6], "<f4").tobytes(), F32, "not audio"),
        (b"\0" * 8, None, "before the start message"),
    ],
)
def test_not_audio_is_refused_with_what_to_send(data, fmt, words):
    with pytest.raises(WireError, match=words.replace("(", r"\(").replace(")", r"\)")):
        decode_pcm(data, fmt, 4096)


@pytest.mark.parametrize(
    ("text", "words"),
    [("hello", "must be JSON"), ('{"type": "play"}', "must be JSON"), ("[1, 2]", "must be JSON")],
)
def test_unknown_text_is_refused(text, words):
    with pytest.raises(WireError, match=words):
        parse_control(text)


@pytest.mark.parametrize(
    ("start", "words"),
    [({"sample_rate": 100}, "8000..192000"), ({"sample_rate": "16000"}, "integer sample_rate"),
     ({"sample_rate": 16000, "format": "mp3"}, "f32le")],
)
def test_bad_start_is_refused(start, words):
    with pytest.raises(WireError, match=words):
        stream_format({"type": "start", **start})


def test_frame_message_round_trip():
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :32] = (250, 10, 10)  # red left half, as RGB
    arrived = time.perf_counter() - 0.5
    message = encode_frame(7, 25.0, frame, 95, upto=5120, engine_s=0.01234, arrived=arrived)
    header, data = decode_frame(message)
    assert {k: header[k] for k in ("seq", "t", "upto", "engine_ms")} == {"seq": 7, "t": 0.28, "upto": 5120,
                                                                         "engine_ms": 12.3}
    assert 500 <= header["server_ms"] < 500 + 1000 * (time.perf_counter() - arrived)
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert picture.shape == frame.shape
    assert np.abs(picture.astype(int) - frame).mean() < 3
