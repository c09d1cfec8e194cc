"""What the batch tests share: a folder of small-network models, real photos (one without a face), short real
speech, running ``python -m joyvasa_core batch`` as a user does, and reading its videos back with PyAV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import soundfile as sf
from fixture_support import REPO, fixture_path
from model_folders import write_joyvasa, write_liveportrait

from joyvasa_core.partials import TAG

# Parts of the fixture speech (seconds): short clips keep a batch of rows within a few minutes on 2 cores.
SPEECH = {"a.wav": (0.0, 0.4), "b.wav": (1.0, 1.48), "c.wav": (2.0, 2.4)}


def write_batch_folder(root: Path) -> Path:
    """Models (official layout, small widths), three photos of a face, one photo without a face, three speeches."""
    write_liveportrait(root / "models", "official")
    write_joyvasa(root / "models")
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    for name, (start, stop) in SPEECH.items():
        sf.write(str(root / name), wave[int(start * rate): int(stop * rate)], rate, subtype="PCM_16")
    photo = cv2.imread(str(fixture_path("astronaut.png")))
    cv2.imwrite(str(root / "face1.png"), photo)
    cv2.imwrite(str(root / "face2.png"), cv2.flip(photo, 1))
    cv2.imwrite(str(root / "face3.jpg"), cv2.copyMakeBorder(photo, 0, 0, 32, 32, cv2.BORDER_REFLECT))
    noise = np.random.default_rng(0).integers(0, 256, (320, 320, 3), dtype=np.uint8)  # a picture, but no face
    cv2.imwrite(str(root / "noface.png"), noise)
    return root


def expected_frames(speech: Path) -> int:
    """round(seconds x 25), halves up: the synced video's frame count."""
    info = sf.info(str(speech))
    return int(info.frames * 25 / info.samplerate + 0.5)


def batch_command(manifest: Path, out_dir: Path, models: Path, *extra: str) -> list[str]:
    """The batch as a user runs it (``--quiet`` unless ``extra`` holds ``--verbose``, which is dropped)."""
    quiet = [] if "--verbose" in extra else ["--quiet"]
    return [sys.executable, "-m", "joyvasa_core", "batch", str(manifest), "--out-dir", str(out_dir), "--models",
            str(models), "--no-download", "--device", "cpu", *quiet, *[e for e in extra if e != "--verbose"]]


def batch_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", **extra}


def run_batch(manifest: Path, out_dir: Path, models: Path, *extra: str, timeout: float = 900,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(batch_command(manifest, out_dir, models, *extra), cwd=REPO, env=env or batch_env(),
                          capture_output=True, text=True, timeout=timeout)


def probe(path: Path) -> tuple[int, float]:
    """(decoded video frames, seconds of decoded sound) of an mp4."""
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
        rate = container.streams.audio[0].rate
    return frames, samples / rate


def read_report(path: Path) -> list[dict]:
    """The rows of a batch report (JSON Lines)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TAG in p.name]
