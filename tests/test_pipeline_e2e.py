"""The whole job through the command line: a models folder in the official file formats (the fixture's small widths,
declared by ``liveportrait_config.json`` / ``joyvasa_config.json``), the real photo and real speech, and the mp4
checked with PyAV; motion reuse, the animal preset, and bad inputs that must exit 2 without touching any file."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import soundfile as sf
import torch
from fixture_support import REPO, fixture_path
from model_folders import write_joyvasa, write_liveportrait

from joyvasa_core import cli
from joyvasa_core.checkpoints.motion_sequence import read_motion_sequence
from joyvasa_core.partials import TAG
from joyvasa_core.video import VideoWriter

CLIP_SECONDS = 0.3  # of the fixture speech: 10 frames keep four CLI runs well under a minute on 2 cores
PAD = 64  # the photo is widened by reflection so the paste-back size (640x512) differs from the 512 crop


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    models = root / "models"
    write_liveportrait(models, "official")
    write_liveportrait(models, "official", animal=True)
    write_joyvasa(models)
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    speech = root / "speech.wav"
    sf.write(str(speech), wave[: int(CLIP_SECONDS * rate)], rate, subtype="PCM_16")
    photo = cv2.imread(str(fixture_path("astronaut.png")))
    image = root / "portrait.png"
    cv2.imwrite(str(image), cv2.copyMakeBorder(photo, 0, 0, PAD, PAD, cv2.BORDER_REFLECT))
    black = root / "black.png"
    cv2.imwrite(str(black), np.zeros((256, 256, 3), np.uint8))
    silent = root / "silent.wav"
    sf.write(str(silent), np.zeros(rate, np.int16), rate, subtype="PCM_16")
    return {"root": root, "models": models, "speech": speech, "image": image, "black": black, "silent": silent}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, "-m", "joyvasa_core", "--device", "cpu", "--quiet", *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def video_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        audio = container.streams.audio
        out = {
            "codec": v.codec_context.name, "pix_fmt": v.codec_context.pix_fmt, "rate": v.average_rate,
            "size": (v.codec_context.width, v.codec_context.height), "n_audio": len(audio),
        }
        if audio:
            a = audio[0]
            out["audio_codec"] = a.codec_context.name
            out["audio_seconds"] = float(a.duration * a.time_base)
    out["frames"] = len(video_frames(path))
    return out


def expected_frames(speech: Path) -> int:
    """The frame count of a video in sync with the speech (the default): round(seconds x 25), halves up."""
    return math.floor(sf.info(str(speech)).duration * 25 + 0.5)


@pytest.fixture(scope="module")
def web_run(job) -> dict[str, Path]:
    out, motion = job["root"] / "talking.mp4", job["root"] / "motion.safetensors"
    res = run_cli("--image", job["image"], "--audio", job["speech"], "--models", job["models"], "--out", out,
                  "--seed", "0", "--save-motion", motion)
    assert res.returncode == 0, res.stderr
    return {"out": out, "motion": motion}


def test_cli_web_preset_writes_h264_with_speech(job, web_run):
    info = probe(web_run["out"])
    n = expected_frames(job["speech"])
    h, w = cv2.imread(str(job["image"])).shape[:2]
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["rate"] == Fraction(25) and info["frames"] == n
    assert info["size"] == (w, h), "paste-back returns the original image size"
    assert info["n_audio"] == 1 and info["audio_codec"] == "aac"
    assert abs(info["audio_seconds"] - sf.info(str(job["speech"])).duration) < 1 / 25
    assert read_motion_sequence(web_run["motion"]).n_frames == n
    # Paste-back: away from the face the frames are the photo itself (up to H.264), around it they move.
    frames = video_frames(web_run["out"]).astype(np.int16)
    photo = cv2.cvtColor(cv2.imread(str(job["image"])), cv2.COLOR_BGR2RGB).astype(np.int16)
    assert np.abs(frames[:, -16:, :16] - photo[-16:, :16]).mean() < 4
    assert [p.name for p in job["root"].iterdir() if TAG in p.name] == []


def test_cli_reused_motion_gives_identical_frames(job, web_run):
    again = job["root"] / "again.mp4"
    res = run_cli("--image", job["image"], "--audio", job["speech"], "--models", job["models"], "--out", again,
                  "--motion", web_run["motion"])
    assert res.returncode == 0, res.stderr
    assert np.array_equal(video_frames(again), video_frames(web_run["out"]))


def test_cli_animal_preset_renders_at_the_photos_size(job, web_run):
    """The cat (451 x 300, trimmed to even sides) comes back at its own size, undistorted; --no-pasteback still
    gives G's 512 crop."""
    out = job["root"] / "cat.mp4"
    res = run_cli("--image", fixture_path("chelsea.png"), "--audio", job["speech"], "--models", job["models"],
                  "--out", out, "--animal", "--seed", "1")
    assert res.returncode == 0, res.stderr
    info = probe(out)
    assert info["frames"] == expected_frames(job["speech"]) and info["rate"] == Fraction(25)
    assert info["size"] == (450, 300), "the whole-image crop's picture, at the photo's size"
    crop = job["root"] / "cat_crop.mp4"
    res = run_cli("--image", fixture_path("chelsea.png"), "--models", job["models"], "--out", crop, "--animal",
                  "--motion", web_run["motion"], "--no-pasteback")
    assert res.returncode == 0, res.stderr
    assert probe(crop)["size"] == (512, 512)


def test_cli_no_crop_portrait_renders_at_the_photos_size(job, web_run):
    """A portrait taller than wide through --no-crop: the video has the photo's size; --no-crop squeeze (the
    reference's) too, stretched back."""
    photo = cv2.imread(str(fixture_path("astronaut.png")))[:, 106:406]  # 300 x 512
    image = job["root"] / "tall.png"
    cv2.imwrite(str(image), photo)
    for fit in ("whole", "squeeze"):
        out = job["root"] / f"tall_{fit}.mp4"
        res = run_cli("--image", image, "--models", job["models"], "--out", out, "--no-crop", fit,
                      "--motion", web_run["motion"])
        assert res.returncode == 0, res.stderr
        assert probe(out)["size"] == (300, 512)


def test_cli_bad_image_exits_2_and_keeps_the_existing_output(job):
    out = job["root"] / "precious.mp4"
    out.write_bytes(b"the user's earlier video")
    res = run_cli("--image", job["black"], "--audio", job["speech"], "--models", job["models"], "--out", out,
                  "--overwrite")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "all black" in lines[0]
    assert "Traceback" not in res.stderr
    assert out.read_bytes() == b"the user's earlier video"
    assert [p.name for p in job["root"].iterdir() if TAG in p.name] == []


def _main(capsys, *args) -> tuple[int, str]:
    code = cli.main(["--device", "cpu", "--quiet", *map(str, args)])
    return code, capsys.readouterr().err


def test_cli_user_errors_are_one_line_and_write_nothing(job, capsys):
    out = job["root"] / "never.mp4"
    code, err = _main(capsys, "--image", job["image"], "--audio", job["silent"], "--models", job["models"],
                      "--out", out)
    assert code == 2 and "silent" in err and len(err.strip().splitlines()) == 1
    noise = job["root"] / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 256, (320, 320, 3), dtype=np.uint8))
    code, err = _main(capsys, "--image", noise, "--audio", job["speech"], "--models", job["models"], "--out", out)
    assert code == 2 and "no face" in err
    code, err = _main(capsys, "--image", job["image"], "--audio", job["speech"], "--models", job["root"] / "none",
                      "--out", out, "--no-download")
    assert code == 2 and "no such folder" in err
    empty = job["root"] / "empty_models"
    empty.mkdir(exist_ok=True)
    code, err = _main(capsys, "--image", job["image"], "--audio", job["speech"], "--models", empty, "--out", out,
                      "--no-download")
    assert code == 2 and "appearance_feature_extractor" in err and str(empty) in err
    existing = job["root"] / "exists.mp4"
    existing.write_bytes(b"keep")
    code, err = _main(capsys, "--image", job["image"], "--audio", job["speech"], "--models", job["models"],
                      "--out", existing)
    assert code == 2 and "already exists" in err and existing.read_bytes() == b"keep"
    assert not out.exists()


def test_interrupted_writer_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")
    frames = torch.rand(3, 64, 48, 3)
    with pytest.raises(KeyboardInterrupt), VideoWriter(target, audio=torch.zeros(16000) + 0.1,
                                                       overwrite=True) as writer:
        writer.write(frames)
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    # Completed, an odd-sized frame is padded to even sides and the speech is muxed.
    with VideoWriter(target, audio=torch.zeros(16000) + 0.1, overwrite=True) as writer:
        writer.write(torch.rand(2, 63, 47, 3))
    info = probe(target)
    assert info["size"] == (48, 64) and info["frames"] == 2 and info["n_audio"] == 1
