"""Batch manifests the command refuses before any model loads: each problem one line naming the row, column, value
and fix, exit 2, and nothing written (no video, no report, no folder). Also: relative paths, JSON Lines, the content
keys, ``--skip-invalid`` and ``--ray`` without Ray. No networks run here (rows whose video exists are skipped)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch
from batch_support import read_report
from fixture_support import fixture_path

from joyvasa_core.audio.io import load_audio
from joyvasa_core.batch import command
from joyvasa_core.batch.keys import array_digest, portrait_key, speech_key

HEADER = "image,audio,out,seed"


@pytest.fixture()
def folder(tmp_path) -> Path:
    shutil.copy(fixture_path("astronaut.png"), tmp_path / "portrait.png")
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    sf.write(str(tmp_path / "speech.wav"), wave[: rate // 2], rate, subtype="PCM_16")
    return tmp_path


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def write_manifest(folder: Path, manifest: str, text: str | bytes) -> Path:
    path = folder / manifest
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text, encoding="utf-8")
    return path


def run(capsys, folder: Path, manifest: Path | str, *extra: str) -> tuple[int, list[str]]:
    code = command.main([str(manifest), "--out-dir", str(folder / "videos"), "--models", str(folder / "models"),
                         "--no-download", "--device", "cpu", "--quiet", *extra])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# (id, manifest file name, its content, words the error line must hold)
CASES = [
    ("missing-column", "m.csv", "image,out\nportrait.png,a.mp4\n", ["no 'audio', 'motion' or 'driving_video' column"]),
    ("missing-out-column", "m.csv", "image,audio\nportrait.png,speech.wav\n", ["no 'out' column"]),
    ("unknown-option", "m.csv", f"{HEADER},colour\nportrait.png,speech.wav,a.mp4,1,red\n",
     ["column 'colour' is not an option"]),
    ("batch-option-in-a-row", "m.csv", f"{HEADER},device\nportrait.png,speech.wav,a.mp4,1,cuda\n",
     ["column 'device' is an option of the whole batch", "--device"]),
    ("two-columns-one-option", "m.csv", f"{HEADER},cfg_scale,cfg-scale\nportrait.png,speech.wav,a.mp4,1,2,3\n",
     ["columns 'cfg_scale' and 'cfg-scale' both name --cfg-scale"]),
    ("overwrite-column", "m.csv", f"{HEADER},overwrite\nportrait.png,speech.wav,a.mp4,1,true\n",
     ["never replaces a finished video"]),
    ("bad-value", "m.csv", f"{HEADER}\nportrait.png,speech.wav,a.mp4,abc\n",
     ["row 1, column seed, value 'abc'", "invalid int"]),
    ("out-of-range", "m.csv", f"{HEADER},crf\nportrait.png,speech.wav,a.mp4,1,60\n",
     ["row 1, column crf: --crf 60", "0 to 51"]),
    ("bad-switch", "m.csv", f"{HEADER},animal\nportrait.png,speech.wav,a.mp4,1,maybe\n",
     ["row 1, column animal, value 'maybe'", "true or false"]),
    ("bad-choice", "m.jsonl", '{"image": "portrait.png", "audio": "speech.wav", "out": "a.mp4", "sampler": "euler"}\n',
     ["row 1, column sampler, value 'euler'", "ddim"]),
    ("duplicate-outputs", "m.csv", f"{HEADER}\nportrait.png,speech.wav,a.mp4,1\nportrait.png,speech.wav,./a.mp4,2\n",
     ["row 2, column out", "row 1 writes the same file"]),
    ("path-not-existing", "m.csv", f"{HEADER}\nportrait.png,nowhere.wav,a.mp4,1\n",
     ["row 1, column audio: --audio", "nowhere.wav", "no such file"]),
    ("output-is-an-input", "m.csv", f"{HEADER}\nportrait.png,speech.wav,a.mp4,1\nvideos/a.mp4,speech.wav,b.mp4,1\n",
     ["row 1, column out", "input of row 2"]),
    ("output-outside-out-dir", "m.csv", f"{HEADER}\nportrait.png,speech.wav,../a.mp4,1\n",
     ["row 1, column out, value '../a.mp4'", "inside --out-dir"]),
    ("output-not-a-video", "m.csv", f"{HEADER}\nportrait.png,speech.wav,a.png,1\n", ["row 1", ".png", ".mp4"]),
    ("empty-image", "m.csv", f"{HEADER}\n,speech.wav,a.mp4,1\n", ["row 1, column image: empty"]),
    ("not-utf8", "m.csv", f"{HEADER}\nportr\u00e4it.png,speech.wav,a.mp4,1\n".encode("latin-1"),
     ["not UTF-8", "line 2", "save it as UTF-8"]),
    ("empty", "m.csv", "", ["is empty"]),
    ("header-only", "m.csv", f"{HEADER}\n", ["has no rows"]),
    ("jsonl-not-json", "m.jsonl", '{"image": "portrait.png",\n', ["line 1 is not JSON"]),
    ("not-a-manifest-format", "m.txt", "image,audio,out\n", [".txt is not a manifest format"]),
]


@pytest.mark.parametrize(("name", "text", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_manifest_one_line_exit_2_nothing_written(capsys, folder, name, text, words):
    manifest = write_manifest(folder, name, text)
    before = snapshot(folder)
    code, lines = run(capsys, folder, manifest)
    assert code == 2, lines
    assert lines[0].startswith("error: ") and all(w in lines[0] for w in words), lines
    assert len(lines) == 1 or "rows are invalid; nothing was run" in lines[-1], lines  # the rows' lines, the count
    assert snapshot(folder) == before, "a refused manifest must write nothing (no folder, no report)"


def test_a_folder_as_manifest(capsys, folder):
    (folder / "rows.csv").mkdir()
    before = snapshot(folder)
    code, lines = run(capsys, folder, folder / "rows.csv")
    assert code == 2 and len(lines) == 1 and "is a folder" in lines[0] and ".csv or .jsonl" in lines[0]
    assert snapshot(folder) == before


def test_missing_manifest(capsys, folder):
    code, lines = run(capsys, folder, folder / "absent.csv")
    assert code == 2 and lines == [f"error: manifest {folder / 'absent.csv'}: no such file; check the path."]


def test_every_bad_row_reported_at_once(capsys, folder):
    text = f"{HEADER},crf\nportrait.png,speech.wav,a.mp4,x,18\nportrait.png,speech.wav,b.mp4,1,99\n" \
           "portrait.png,speech.wav,c.mp4,1,18\nportrait.png,speech.wav,c.mp4,3,18\n"
    manifest = write_manifest(folder, "m.csv", text)
    code, lines = run(capsys, folder, manifest)
    assert code == 2
    assert [line.split(",")[0] for line in lines[:3]] == ["error: row 1", "error: row 2", "error: row 4"]
    assert lines[-1] == "error: 3 of 4 rows are invalid; nothing was run. Fix them, or pass --skip-invalid to run " \
                        "the others."
    assert not (folder / "videos").exists()


def test_skip_invalid_reports_the_bad_rows_and_resumes_the_rest(capsys, folder):
    """Relative paths from the manifest's folder (a subfolder here), a row whose video is complete is skipped
    without loading a model, the bad row is reported as invalid and the exit status is 1."""
    sub = folder / "lists"
    sub.mkdir()
    (folder / "videos").mkdir()
    shutil.copy(fixture_path("astronaut.png"), sub / "face.png")
    done = folder / "videos" / "done.mp4"
    make_tiny_mp4(done)
    manifest = write_manifest(sub, "m.jsonl", '{"image": "face.png", "audio": "../speech.wav", "out": "done.mp4"}\n'
                     '{"image": "face.png", "audio": "../speech.wav", "out": "bad.mp4", "cfg-scale": -1}\n')
    code, lines = run(capsys, folder, manifest, "--skip-invalid")
    assert code == 1
    rows = read_report(folder / "videos" / "m.report.jsonl")
    assert [(r["row"], r["status"]) for r in rows] == [(2, "invalid"), (1, "skipped")]
    assert "--cfg-scale -1" in rows[0]["error"] and rows[1]["frames"] == 5 and rows[1]["out"] == str(done)
    assert sorted(p.name for p in (folder / "videos").iterdir()) == ["done.mp4", "m.report.jsonl"]


def make_tiny_mp4(path: Path, n: int = 5) -> None:
    from joyvasa_core.video import VideoWriter

    with VideoWriter(path, fps=25) as writer:
        writer.write(np.zeros((n, 64, 64, 3), np.uint8))


def test_ray_option_without_ray_is_one_line(capsys, folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without the package gives
    manifest = write_manifest(folder, "m.csv", f"{HEADER}\nportrait.png,speech.wav,a.mp4,1\n")
    before = snapshot(folder)
    code, lines = run(capsys, folder, manifest, "--ray")
    assert code == 2 and len(lines) == 1
    assert "--ray: the optional 'ray' package is not installed" in lines[0] and "requirements-ray.txt" in lines[0]
    assert snapshot(folder) == before


@pytest.mark.parametrize(("flag", "value", "use"), [
    ("--workers", "0", "1 to 1024"), ("--workers", "5000", "1 to 1024"), ("--retries", "-1", "0 to 100"),
    ("--cpus-per-worker", "0", "1 to 1024")])
def test_bad_batch_option(capsys, folder, flag, value, use):
    manifest = write_manifest(folder, "m.csv", f"{HEADER}\nportrait.png,speech.wav,a.mp4,1\n")
    before = snapshot(folder)
    code, lines = run(capsys, folder, manifest, flag, value)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: {flag} {value}: out of range;") and lines[0].endswith(f"Use {use}.")
    assert snapshot(folder) == before


def test_a_file_under_an_output_name_that_is_no_video_is_kept(capsys, folder):
    (folder / "videos").mkdir()
    mine = folder / "videos" / "a.mp4"
    mine.write_bytes(b"the user's notes, saved under a video name")
    manifest = write_manifest(folder, "m.csv", f"{HEADER}\nportrait.png,speech.wav,a.mp4,1\n")
    code, _ = run(capsys, folder, manifest)
    assert code == 1
    [row] = read_report(folder / "videos" / "m.report.jsonl")
    assert row["status"] == "failed" and "exists but is not a video" in row["error"] and "move it away" in row["error"]
    assert mine.read_bytes() == b"the user's notes, saved under a video name"


def test_content_keys(folder):
    """The same samples in another file format give the same speech key, the same pixels in another image format
    the same portrait key; a seed, a sample, a pixel or a crop option more or less gives another key."""
    wave = load_audio(str(folder / "speech.wav"))
    sf.write(str(folder / "speech.flac"), (wave.numpy() * 32768).round().astype(np.int16), 16000)
    same = array_digest(load_audio(str(folder / "speech.flac")))
    assert same == array_digest(wave)
    assert speech_key(same, {"seed": 1}) == speech_key(array_digest(wave), {"seed": 1})
    assert speech_key(same, {"seed": 1}) != speech_key(same, {"seed": 2})
    assert array_digest(wave[:-1]) != same and array_digest(torch.zeros(3)) != array_digest(torch.zeros(4))
    photo = cv2.imread(str(folder / "portrait.png"))
    cv2.imwrite(str(folder / "portrait.bmp"), photo)
    pixels = array_digest(photo)
    assert array_digest(cv2.imread(str(folder / "portrait.bmp"))) == pixels
    assert portrait_key(pixels, {"face_index": 0}) == portrait_key(array_digest(photo.copy()), {"face_index": 0})
    assert portrait_key(pixels, {"face_index": 0}) != portrait_key(pixels, {"face_index": 1})
    photo[0, 0, 0] ^= 1
    assert portrait_key(array_digest(photo), {"face_index": 0}) != portrait_key(pixels, {"face_index": 0})
