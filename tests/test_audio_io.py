"""Speech loading: files, arrays and ComfyUI AUDIO all become the 16 kHz mono float32 waveform of the reference."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from fixture_support import fixture_path, load_fixture

from joyvasa_core.audio.io import SILENCE_PEAK, load_audio
from joyvasa_core.errors import AudioInputError

SR = 16_000
# README: the 44.1 kHz file is the 16 kHz speech resampled, left = speech, right = speech / 2.
DOWNMIX_GAIN = 0.75
# Measured for speech_en_44k_stereo.wav -> soxr HQ -> 16 kHz against 0.75 x speech_en_16k.wav: max |diff| 3.8e-3,
# RMS 3.8e-4 (0.57 % of the signal RMS). All of it lies above 7 kHz, in the transition bands of the two resamplers
# (the file's own 44.1 kHz resampler and soxr's): below 7 kHz the max |diff| is 2.5e-5, i.e. the 16-bit quantisation
# of the stereo file. A one-sample misalignment moves the full-band max to 0.35, a left-only downmix to 0.18.
FULL_BAND_ATOL = 5e-3
FULL_BAND_RMS_RATIO = 1e-2
LOW_BAND_HZ = 7000
LOW_BAND_ATOL = 1e-4


def _speech_16k() -> np.ndarray:
    """The 16 kHz fixture waveform as the fixtures define it: int16 / 32768 in float32."""
    pcm, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    assert rate == SR
    return pcm.astype(np.float32) / 32768.0


def _lowpass(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    spec = np.fft.rfft(x.astype(np.float64))
    spec[np.fft.rfftfreq(len(x), 1.0 / SR) > cutoff_hz] = 0
    return np.fft.irfft(spec, len(x))


def test_audio_16k_file_matches_fixture_waveform():
    fx = load_fixture("joyvasa_shipped.safetensors")
    audio_meta = fx.meta["audio"]
    wave = load_audio(fixture_path(audio_meta["source"]))
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert audio_meta["sample_rate"] == SR
    n = audio_meta["samples_used"]
    assert torch.equal(wave[:n], fx["seq.in.wave"])


def test_audio_44k_stereo_downmix_and_resample():
    ref = DOWNMIX_GAIN * _speech_16k()
    got = load_audio(fixture_path("speech_en_44k_stereo.wav")).numpy()
    assert abs(len(got) - len(ref)) <= 1
    n = min(len(got), len(ref))
    diff = got[:n] - ref[:n]
    assert np.abs(diff).max() <= FULL_BAND_ATOL
    assert np.sqrt(np.mean(diff**2)) <= FULL_BAND_RMS_RATIO * np.sqrt(np.mean(ref**2))
    assert np.abs(_lowpass(diff, LOW_BAND_HZ)).max() <= LOW_BAND_ATOL


def test_audio_int16_pcm_arrays_and_layouts():
    pcm, _ = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    expected = torch.from_numpy(_speech_16k())
    assert torch.equal(load_audio(pcm, sample_rate=SR), expected)
    assert torch.equal(load_audio(torch.from_numpy(pcm), sample_rate=SR), expected)
    stereo = np.stack([pcm, pcm // 2], axis=0)  # (C, T)
    mixed = (stereo.astype(np.float32) / 32768.0).mean(axis=0)
    assert torch.equal(load_audio(stereo, sample_rate=SR), torch.from_numpy(mixed))
    assert torch.equal(load_audio(stereo.T.copy(), sample_rate=SR), torch.from_numpy(mixed))  # (T, C)
    comfy = {"waveform": torch.from_numpy(stereo.astype(np.float32) / 32768.0)[None], "sample_rate": SR}
    assert torch.allclose(load_audio(comfy), torch.from_numpy(mixed), atol=0, rtol=0)


@pytest.mark.parametrize(
    "dtype, scale, offset",
    [(np.int16, 32768.0, 0), (np.int32, 2.0**31, 0), (np.int8, 128.0, 0), (np.uint8, 128.0, 128)],
)
def test_audio_integer_pcm_scaled_by_type_range(dtype, scale, offset):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    pcm = rng.integers(info.min, info.max, size=4000, endpoint=True).astype(dtype)
    got = load_audio(pcm, sample_rate=SR).numpy()
    want = ((pcm.astype(np.float64) - offset) / scale).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert np.abs(got).max() <= 1.0


def test_audio_float_passes_unchanged():
    x = np.linspace(-0.9, 0.9, 2000, dtype=np.float64)
    np.testing.assert_array_equal(load_audio(x, sample_rate=SR).numpy(), x.astype(np.float32))
    half = torch.tensor(x, dtype=torch.float16)
    assert torch.equal(load_audio(half, sample_rate=SR), half.float())


def test_audio_8_channels_at_8khz():
    rate, n, freq = 8000, 8000, 440.0
    t = np.arange(n) / rate
    gains = np.linspace(0.1, 0.8, 8)
    multi = (gains[:, None] * np.sin(2 * np.pi * freq * t)[None]).astype(np.float32)  # (8, T)
    expected_16k = gains.mean() * np.sin(2 * np.pi * freq * np.arange(2 * n) / SR)
    for source in (multi, multi.T.copy(), torch.from_numpy(multi)[None]):
        got = load_audio(source, sample_rate=rate).numpy()
        assert len(got) == 2 * n
        inner = slice(400, 2 * n - 400)  # away from the resampler's start/end transients
        assert np.abs(got[inner] - expected_16k[inner]).max() < 1e-3
    got_dict = load_audio({"waveform": torch.from_numpy(multi)[None], "sample_rate": rate})
    assert torch.equal(got_dict, load_audio(multi, sample_rate=rate))


def test_audio_flac_and_other_rates_through_soundfile(tmp_path):
    speech = _speech_16k()
    flac = tmp_path / "speech.flac"
    sf.write(str(flac), speech, SR, subtype="PCM_16")
    assert torch.equal(load_audio(flac), torch.from_numpy(speech))
    stereo_22k = np.stack([speech, -0.5 * speech], axis=1)
    wav = tmp_path / "speech_22k.wav"
    sf.write(str(wav), stereo_22k, 22050, subtype="FLOAT")
    want = soxr.resample(stereo_22k.mean(axis=1).astype(np.float32), 22050, SR, quality="HQ")
    np.testing.assert_allclose(load_audio(str(wav)).numpy(), want, atol=1e-7)


def test_audio_aac_mp4_through_pyav_has_no_priming_or_tail(tmp_path):
    av = pytest.importorskip("av")
    n = 2 * SR
    sine = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(n) / SR)).astype(np.float32)
    path = tmp_path / "speech.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=SR)
        stream.layout = "mono"
        for start in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(sine[None, start : start + 1024].copy(), format="flt", layout="mono")
            frame.sample_rate = SR
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    got = load_audio(path).numpy()
    assert len(got) == n  # the decoder returns 768 extra samples of AAC end padding: trimmed
    inner = slice(2000, n - 2000)
    # lossy codec: 5e-4 measured; a shift of one sample (or of the 1024-sample priming) would give >= 0.05
    assert np.abs(got[inner] - sine[inner]).max() < 5e-3


# --- errors a user can hit --------------------------------------------------------------------------------------


def _raises(match: str, source, **kw) -> str:
    with pytest.raises(AudioInputError, match=match) as info:
        load_audio(source, **kw)
    return str(info.value)


def test_audio_empty_inputs(tmp_path):
    _raises("empty", np.zeros(0, np.float32), sample_rate=SR)
    _raises("empty", {"waveform": torch.zeros(1, 2, 0), "sample_rate": SR})
    empty_wav = tmp_path / "empty.wav"
    sf.write(str(empty_wav), np.zeros(0, np.float32), SR)
    _raises("empty", empty_wav)
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    _raises("empty", zero_bytes)


def test_audio_shorter_than_one_motion_frame():
    rng = np.random.default_rng(1)
    msg = _raises("shorter than one motion frame", rng.uniform(-0.5, 0.5, 639).astype(np.float32), sample_rate=SR)
    assert "640" in msg and "40 ms" in msg
    _raises("shorter than one motion frame", rng.uniform(-0.5, 0.5, 1500).astype(np.float32), sample_rate=44100)
    assert load_audio(rng.uniform(-0.5, 0.5, 640).astype(np.float32), sample_rate=SR).shape == (640,)


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")])
def test_audio_non_finite_samples(bad, word):
    x = np.sin(np.arange(4000, dtype=np.float32) / 10)
    x[123] = bad
    msg = _raises(word, x, sample_rate=SR)
    assert "1 " + word in msg
    _raises(word, {"waveform": torch.from_numpy(x)[None, None], "sample_rate": SR})


def test_audio_silence_is_reported():
    msg = _raises("silent", np.zeros(16000, np.int16), sample_rate=SR)
    assert "peak" in msg
    _raises("silent", np.full(16000, SILENCE_PEAK / 2, np.float32), sample_rate=SR)
    x = np.sin(np.arange(16000, dtype=np.float32) / 10)
    _raises("cancel", np.stack([x, -x]), sample_rate=SR)
    quiet = np.full(16000, SILENCE_PEAK * 4, np.float32)
    assert float(load_audio(quiet, sample_rate=SR).abs().max()) == pytest.approx(SILENCE_PEAK * 4)


def test_audio_input_mistakes(tmp_path):
    x = np.sin(np.arange(4000, dtype=np.float32) / 10)
    _raises("sample rate is unknown", x)
    _raises("sample rate is unknown", {"waveform": torch.from_numpy(x)[None, None]})
    _raises("positive", x, sample_rate=0)
    _raises("batch of 2", torch.from_numpy(x).reshape(1, 1, -1).repeat(2, 1, 1), sample_rate=SR)
    _raises("int64", torch.arange(4000), sample_rate=SR)
    _raises("channels from time", np.zeros((100, 4000), np.float32), sample_rate=SR)
    _raises("no such file", tmp_path / "missing.wav")
    garbage = tmp_path / "notes.mp3"
    garbage.write_text("this is not audio\n" * 20)
    _raises("could not decode", garbage)
    _raises("unsupported type", 12345)
