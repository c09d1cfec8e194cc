"""Bad input on the command line: every case exits 2 with one line that names the option, prints no traceback, and
creates, changes or leaves behind no file. Most cases fail in validation before any model loads and run in-process;
the ones where a signal or a real disk limit matters run the real command in a subprocess on the small networks.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch
from fixture_support import REPO, fixture_path
from model_folders import write_joyvasa, write_liveportrait
from safetensors.torch import save_file

from joyvasa_core import cli
from joyvasa_core.checkpoints.driving_template import template_dict
from joyvasa_core.checkpoints.motion_sequence import write_motion_sequence
from joyvasa_core.loading import load_motion_model
from joyvasa_core.motion.sampler import SamplingOptions
from joyvasa_core.motion.sequence import FRAME_FIELDS, MotionSequence
from joyvasa_core.partials import TAG, partial_path, remove_stale_partials
from joyvasa_core.pipeline import prepare_speech, sample_motion
from joyvasa_core.validate import (
    CLI,
    NODE,
    VIDEO_EXTS,
    Output,
    check_free_space,
    check_options,
    check_outputs,
    speech_notes,
    validate_inputs,
)
from joyvasa_core.video import VideoWriter

MOTION_SECONDS = 1.5  # of the fixture speech: a 40-frame motion, so a render lasts long enough to be stopped


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_input")
    models = root / "models"
    write_liveportrait(models, "official")
    write_joyvasa(models)
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    speech = root / "speech.wav"
    sf.write(str(speech), wave[: int(0.3 * rate)], rate, subtype="PCM_16")
    image = root / "portrait.png"
    shutil.copy(fixture_path("astronaut.png"), image)
    png = image.read_bytes()
    (root / "truncated.png").write_bytes(png[: len(png) // 3])
    (root / "portrait.mp4").write_bytes(png)  # a real portrait under a video name: must never be written over
    cv2.imwrite(str(root / "black.png"), np.zeros((256, 256, 3), np.uint8))
    big = cv2.resize(cv2.imread(str(image)), (1400, 1400), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(root / "big_rgba.png"), np.concatenate([big, np.full_like(big[:, :, :1], 255)], axis=2))
    cv2.imwrite(str(root / "noise.png"), np.random.default_rng(0).integers(0, 256, (320, 320, 3), dtype=np.uint8))
    sf.write(str(root / "silent.wav"), np.zeros(rate, np.int16), rate, subtype="PCM_16")
    (root / "folder").mkdir()
    (root / "existing.mp4").write_bytes(b"the user's earlier video")
    broken = root / "broken_models"
    shutil.copytree(models, broken)
    warping = broken / "liveportrait" / "base_models" / "warping_module.pth"
    warping.write_bytes(warping.read_bytes()[:20000])
    mm = load_motion_model(models, "cpu")
    features = prepare_speech(torch.from_numpy(wave[: int(MOTION_SECONDS * rate)] / 32768.0).float(), mm)
    motion = sample_motion(mm, features, SamplingOptions(seed=0))
    write_motion_sequence(motion, root / "motion.safetensors")
    two = {k: getattr(motion, k)[:2] for k in FRAME_FIELDS}
    write_motion_sequence(MotionSequence(**two, fps=motion.fps, seed=motion.seed, settings=motion.settings),
                          root / "motion2.safetensors")
    nan = {k: getattr(motion, k).contiguous() for k in FRAME_FIELDS}
    nan["exp"] = torch.full_like(nan["exp"], float("nan"))  # what --cfg-scale 1e308 used to save
    save_file(nan, str(root / "nan.safetensors"), metadata={"json": json.dumps({"format": "joyvasa_motion",
                                                                                "settings": motion.settings})})
    raw = template_dict(motion)
    raw["motion"][3]["t"][0, 1] = float("nan")
    (root / "nan.pkl").write_bytes(pickle.dumps(raw))
    os.mkfifo(root / "pipe.mp4")
    linked = root / "linked_models"
    shutil.copytree(models, linked)
    looped = linked / "liveportrait" / "base_models" / "warping_module.pth"
    looped.unlink()
    looped.symlink_to(looped.name)
    return {"root": root, "models": models, "speech": speech, "image": image, "broken": broken, "linked": linked}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file()}


def _args(job, **over) -> list[str]:
    base = {"--image": job["image"], "--audio": job["speech"], "--models": job["models"],
            "--out": job["root"] / "talking.mp4"}
    base.update(over)
    return [str(x) for kv in base.items() if kv[1] is not None for x in kv]


def R(job, name: str) -> str:
    return str(job["root"] / name)


# (id, extra/replaced arguments, words the one line must hold); every one exits 2 and writes nothing.
CASES = [
    ("steps-with-ddpm", lambda j: ["--steps", "10"], ["--steps 10", "--sampler ddim"]),
    ("seed-beyond-64-bits", lambda j: ["--seed", str(2**64)], ["--seed 18446744073709551616", "18446744073709551615"]),
    ("seed-negative", lambda j: ["--seed", "-1"], ["--seed -1", "not wrapped"]),
    ("crf-above-51", lambda j: ["--crf", "52"], ["--crf 52", "0 to 51"]),
    ("crf-negative", lambda j: ["--crf", "-1"], ["--crf -1", "0 to 51"]),
    ("cfg-negative", lambda j: ["--cfg-scale", "-0.5"], ["--cfg-scale -0.5", "0.0 to 20.0"]),
    ("batch-size-0", lambda j: ["--batch-size", "0"], ["--batch-size 0", "1 to 512"]),
    ("face-index-negative", lambda j: ["--face-index", "-1"], ["--face-index -1"]),
    ("box-three-numbers", lambda j: ["--box", "1,2,3"], ["--box 1,2,3", "x,y,w,h"]),
    ("box-empty", lambda j: ["--box", "10,10,0,50"], ["--box 10,10,0,50", "positive width"]),
    ("box-not-numbers", lambda j: ["--box", "a,b"], ["--box", "x,y,w,h"]),
    ("crf-not-a-number", lambda j: ["--crf", "abc"], ["--crf", "invalid int"]),
    ("unknown-sampler", lambda j: ["--sampler", "euler"], ["--sampler", "ddim"]),
    ("no-speech-no-motion", lambda j: _args(j, **{"--audio": None}), ["--audio", "--motion"]),
    ("out-is-a-png", lambda j: _args(j, **{"--out": R(j, "photo.png")}), ["--out", ".png", ".mp4"]),
    ("out-is-the-image", lambda j: _args(j, **{"--image": R(j, "portrait.mp4"), "--out": R(j, "portrait.mp4")})
     + ["--overwrite"], ["--out", "--image input"]),
    ("save-motion-is-the-motion", lambda j: ["--motion", R(j, "motion.safetensors"), "--save-motion",
                                             R(j, "motion.safetensors"), "--overwrite"], ["--save-motion", "--motion"]),
    ("out-exists", lambda j: _args(j, **{"--out": R(j, "existing.mp4")}), ["--out", "already exists", "--overwrite"]),
    ("out-is-a-folder", lambda j: _args(j, **{"--out": R(j, "folder")}), ["--out", "is a folder"]),
    ("out-folder-missing", lambda j: _args(j, **{"--out": R(j, "nowhere/talking.mp4")}), ["--out", "does not exist"]),
    ("save-motion-folder-missing", lambda j: ["--save-motion", R(j, "nowhere/motion.safetensors")],
     ["--save-motion", "does not exist"]),
    ("save-motion-extension", lambda j: ["--save-motion", R(j, "motion.txt")], ["--save-motion", ".safetensors"]),
    ("image-is-a-folder", lambda j: _args(j, **{"--image": R(j, "folder")}), ["--image", "is a folder"]),
    ("image-missing", lambda j: _args(j, **{"--image": R(j, "nobody.png")}), ["--image", "no such file"]),
    ("image-truncated", lambda j: _args(j, **{"--image": R(j, "truncated.png")}), ["--image", "truncated"]),
    ("image-all-black", lambda j: _args(j, **{"--image": R(j, "black.png")}), ["all black", "--image file"]),
    ("audio-silent", lambda j: _args(j, **{"--audio": R(j, "silent.wav")}), ["--audio", "silent"]),
    ("audio-missing", lambda j: _args(j, **{"--audio": R(j, "nobody.wav")}), ["--audio", "no such file"]),
    ("models-missing", lambda j: _args(j, **{"--models": R(j, "nowhere")}) + ["--no-download"],
     ["--models", "no such folder", "downloads are turned off (drop --no-download"]),
    ("models-is-a-file", lambda j: _args(j, **{"--models": R(j, "portrait.png")}), ["--models", "is a file, not a "
                                                                                    "folder"]),
    ("model-file-links-to-itself", lambda j: _args(j, **{"--models": j["linked"]}) + ["--no-download"],
     ["--models", "warping_module.pth is a loop of links"]),
    ("cfg-scale-1e308", lambda j: ["--cfg-scale", "1e308"], ["--cfg-scale 1e+308: out of range", "0.0 to 20.0"]),
    ("cfg-scale-nan", lambda j: ["--cfg-scale", "nan"], ["--cfg-scale nan: out of range"]),
    ("ddim-steps-5000", lambda j: ["--sampler", "ddim", "--steps", "5000"], ["--steps 5000: out of range", "1000"]),
    ("blink-rate-500", lambda j: ["--blinks", "on", "--blink-rate", "500"], ["--blink-rate 500.0", "0.0 to 120.0"]),
    ("out-name-300-bytes", lambda j: _args(j, **{"--out": R(j, "a" * 300 + ".mp4")}),
     ["--out", "...", "304 bytes", "at most 255"]),
    ("out-name-235-bytes", lambda j: _args(j, **{"--out": R(j, "a" * 231 + ".mp4")}),
     ["--out", "235 bytes", "partial file"]),
    ("out-is-dev-full", lambda j: _args(j, **{"--out": "/dev/full"}), ["--out /dev/full: is a device"]),
    ("out-is-a-fifo", lambda j: _args(j, **{"--out": R(j, "pipe.mp4")}) + ["--overwrite"], ["--out", "is a fifo"]),
    ("box-mostly-off-the-photo", lambda j: ["--box", "10,10,1e9,1e9"], ["--box 10,10,1e+09,1e+09", "mostly outside"]),
    ("motion-of-nan", lambda j: ["--motion", R(j, "nan.safetensors")],
     ["--motion", "NaN or Inf (exp in", "(made by scheduler ddpm"]),
    ("template-of-nan", lambda j: ["--motion", R(j, "nan.pkl")], ["--motion", "nan.pkl", "holds NaN or Inf"]),
    ("models-empty", lambda j: _args(j, **{"--models": R(j, "folder")}) + ["--no-download"],
     ["--models", "appearance_feature_extractor", "/Kijai/LivePortrait_safetensors/resolve/main/"]),
    ("box-outside-the-image", lambda j: ["--box", "5000,5000,100,100"], ["--box 5000,5000,100,100", "outside"]),
    # the rest load (some of) the small networks first
    ("checkpoint-truncated", lambda j: _args(j, **{"--models": j["broken"]}), ["--models", "warping_module.pth",
                                                                               "truncated or corrupt"]),
    ("ddim-steps-above-checkpoint", lambda j: ["--sampler", "ddim", "--steps", "50"], ["--steps 50", "at most"]),
    ("no-face", lambda j: _args(j, **{"--image": R(j, "noise.png")}), ["no face", "--box", "--no-crop"]),
    ("face-index-beyond-the-faces", lambda j: ["--face-index", "3"], ["--face-index 3", "1 face", "lower"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(job, capfd, case):
    _, make_args, words = case
    args = make_args(job)
    if args[0] != "--image":
        args = _args(job) + args
    before = snapshot(job["root"])
    try:
        code = cli.main(["--device", "cpu", "--quiet", *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "libpng" not in err and "internal miniz" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert snapshot(job["root"]) == before


def test_notes_do_not_stop_the_job(tmp_path):
    paths, notes = check_outputs([Output("out", tmp_path / "talking", VIDEO_EXTS, "video container")], {})
    assert paths == {"out": tmp_path / "talking.mp4"}
    assert notes == [f"--out {tmp_path / 'talking'} has no extension; writing {tmp_path / 'talking.mp4'}."]
    notes = check_options({"dtype": "fp16", "device_type": "cpu", "crf": 18}, CLI)
    assert notes == ["--dtype fp16 on a CPU runs slower than fp32 (CPUs emulate half precision); --dtype fp32 is "
                     "faster there."]
    assert speech_notes(0.2) and "quarter second" in speech_notes(0.2)[0] and speech_notes(0.3) == []


def test_node_words_and_validate_inputs():
    assert validate_inputs({"seed": 3, "cfg_scale": 4.0, "sampler": "ddpm", "steps": 50}) is True
    assert validate_inputs({"seed": -1}) == ("seed -1: out of range; a seed is a whole number from 0 to 2^64-1 (a "
                                             "negative one is not wrapped to another seed). Use 0 to "
                                             "18446744073709551615.")
    assert validate_inputs({"cfg_scale": None, "seed": None}) is True  # linked inputs are known only when running
    with pytest.raises(ValueError, match=r"^steps 80: .* at most .* lower steps"):
        check_options({"sampler": "ddim", "steps": 80, "checkpoint_steps": 50}, NODE)


def test_too_little_disk_space_is_refused(tmp_path):
    out = tmp_path / "talking.mp4"
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(ValueError, match=r"^--out .*talking\.mp4: the disk has \d+ MB free and the video needs"):
        check_free_space("out", out, free + 2**30, CLI)
    check_free_space("out", out, 2**20, CLI)
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_partials_of_dead_runs_are_removed(tmp_path):
    dead = partial_path(tmp_path / "talking.mp4", _dead_pid())
    live = partial_path(tmp_path / "other.mp4", os.getppid())
    mine = partial_path(tmp_path / "mine.mp4")
    foreign = tmp_path / ".talking.partial-123.mp4"  # not named by this package: never touched
    for p in (dead, live, mine, foreign):
        p.write_bytes(b"x")
    assert dead.name.startswith(".talking.") and TAG in dead.name
    assert remove_stale_partials(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, mine, foreign))


def test_sighup_inside_the_writer_removes_the_partial(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(cli.Stopped) as stopped, cli.stop_cleanly_on_signals(), VideoWriter(target) as writer:
        writer.write(torch.rand(60, 64, 64, 3))  # past x264's look-ahead: the partial file gets packets
        deadline = time.monotonic() + 60  # the writer encodes in its own thread
        while partial_path(target).stat().st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert partial_path(target).stat().st_size > 0
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(5)  # the handler raises here, long before this ends
    assert stopped.value.signum == signal.SIGHUP
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


def _render_cmd(job, out: Path, motion: str = "motion.safetensors", image: str = "portrait.png") -> list[str]:
    """A real run that only renders: a saved motion, the command line preset (no detector), one frame a batch."""
    return [sys.executable, "-m", "joyvasa_core", "--device", "cpu", "--quiet", "--image", str(job["root"] / image),
            "--motion", str(job["root"] / motion), "--models", str(job["models"]), "--preset", "cli",
            "--batch-size", "1", "--out", str(out), "--overwrite"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}


def test_sigterm_stops_a_real_run_and_keeps_the_old_output(tmp_path, job):
    out = tmp_path / "talking.mp4"
    out.write_bytes(b"the user's earlier video")
    partial = None
    proc = subprocess.Popen(_render_cmd(job, out, image="big_rgba.png"), cwd=REPO, env=_env(),
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while partial is None and proc.poll() is None and time.monotonic() < deadline:
            partial = next((p for p in tmp_path.iterdir() if TAG in p.name), None)
            time.sleep(0.02)
        assert partial is not None, f"the render never started writing: {proc.communicate()[1]}"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    # What was done to the photo is said as notes (even with --quiet), then the one line of the stop.
    assert err.strip().splitlines() == ["note: alpha channel dropped", "note: resized 1400x1400 -> 1280x1280 "
                                        "(max_dim 1280)", "", "stopped by SIGTERM; no video was written."]
    assert sorted(tmp_path.iterdir()) == [out] and out.read_bytes() == b"the user's earlier video"


def test_full_disk_while_writing_is_one_line(tmp_path, job):
    out = tmp_path / "talking.mp4"

    def small_disk() -> None:  # a real kernel limit on file size: writes beyond it fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    res = subprocess.run(_render_cmd(job, out, "motion2.safetensors"), cwd=REPO, env=_env(), capture_output=True,
                         text=True, timeout=300, preexec_fn=small_disk)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: --out {out}: the disk filled up"), res.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_box_over_the_edge_is_clipped_with_a_note(tmp_path, job):
    out = tmp_path / "talking.mp4"
    proc = subprocess.run(_render_cmd(job, out, motion="motion2.safetensors") + ["--box", "200,200,400,400"],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "note: the box was clipped to the 512x512 image: 200,200,312,312 (61% of it was on the image)" in \
        proc.stderr.splitlines(), proc.stderr
    assert sorted(tmp_path.iterdir()) == [out] and out.stat().st_size > 0
