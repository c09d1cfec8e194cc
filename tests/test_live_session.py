"""The live session on the small networks, the real photo and real speech: frames come out while the speech is still
pushed, in order, none missing or repeated; an idle gap keeps them coming at 25 fps with the model's own silence
motion; blinks, talking and idle, fall where the offline job's ``--blinks`` puts them; and ``python -m joyvasa_core
live --lookahead all`` writes the offline job's video, frame for frame."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from fixture_support import REPO, fixture_path
from model_folders import write_joyvasa, write_liveportrait

from joyvasa_core import cli
from joyvasa_core.images import read_image
from joyvasa_core.keypoints import EYE_KEYPOINTS
from joyvasa_core.live import LiveSession
from joyvasa_core.live.source import live_options, live_source
from joyvasa_core.loading import load_models
from joyvasa_core.motion.blinks import BlinkOptions, BlinkSchedule, apply_blinks, closure_curve, job_blinks
from joyvasa_core.motion.sequence import FRAME_FIELDS, MotionSequence
from joyvasa_core.motion.streaming import MotionStream, StreamOptions
from joyvasa_core.pipeline import animate_options, compute_target_keypoints, prepare_face

CLIP_SECONDS = 0.4  # of the fixture speech: 10 frames
PIECE = 1280  # 80 ms pushes
SHORT = StreamOptions(chunk_frames=3, lookahead=2)
BLINKS = job_blinks("on", 7, 120)  # the test seed's schedule at the fastest rate: blinks at 0.46, 0.85, 1.21 s, ...
NO_BLINKS = BlinkOptions(mode="off")
EYES = list(EYE_KEYPOINTS)
FAST = {"seed": 7, "scheduler": "ddim", "num_steps": 2}  # the blink tests' sampler: the motion's quality is not theirs
BLINK_STREAM = StreamOptions(chunk_frames=10, lookahead=2)


class FakeClock:
    """A clock the test moves by hand, so an idle gap lasts exactly what the test says."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    write_liveportrait(root / "models")
    write_joyvasa(root / "models")
    models = load_models(root / "models", device="cpu", dtype="fp32")
    options = animate_options(sampling={"seed": 7})
    image = read_image(fixture_path("astronaut.png"))
    face = prepare_face(image, models.liveportrait, models.detector, options)
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="float32")
    speech = root / "speech.wav"
    sf.write(str(speech), wave[: int(CLIP_SECONDS * rate)], rate, subtype="PCM_16")
    return {"root": root, "models": models, "options": options, "face": face, "rate": rate,
            "wave": wave[: int(CLIP_SECONDS * rate)], "speech": speech, "image": fixture_path("astronaut.png")}


def frame_count(seconds_samples: int, rate: int) -> int:
    """round(seconds x 25), halves up: the offline job's frame count."""
    per_frame = rate // 25
    return (seconds_samples + per_frame // 2) // per_frame


def test_live_frames_before_the_last_push_in_order(setup):
    """Look-ahead 2 frames: the first frame is out before the last piece is pushed; indices 0..N-1 exactly once;
    uint8 RGB pictures of the pasted-back photo's size, each after its own speech."""
    wave, rate = setup["wave"], setup["rate"]
    pieces = [wave[lo : lo + PIECE] for lo in range(0, len(wave), PIECE)]
    frames, first_at = [], None
    with LiveSession(setup["models"], setup["face"], setup["options"], SHORT) as session:
        for k, piece in enumerate(pieces):
            for frame in session.push(piece, rate):
                first_at = k if first_at is None else first_at
                frames.append(frame)
        frames += list(session.finish())
        width, height = session.frame_size()
        assert session.done
    assert first_at is not None and first_at < len(pieces) - 1
    assert [f.index for f in frames] == list(range(frame_count(len(wave), rate)))
    assert (width, height) == (512, 512)  # the astronaut photo is 512 x 512, pasted back
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (height, width, 3)
        assert f.latency >= 0
    assert len({f.image.tobytes() for f in frames}) > 1, "the face must move"


def test_live_idle_gap_keeps_25_fps_with_the_silence_motion(setup):
    """Speech, one second nobody speaks (keep_alive on a clock), speech again: the gap gives 25 frames a second, and
    the frames equal a session that was pushed the same silence as samples, so idle is the model's own silence
    motion and the resumed speech continues it without a jump."""
    wave, rate = setup["wave"], setup["rate"]
    half = len(wave) // 2
    clock = FakeClock()
    idle = LiveSession(setup["models"], setup["face"], setup["options"], SHORT, render=False, clock=clock,
                       blinks=BLINKS)
    before = list(idle.push(wave[:half], rate))
    clock.now += half / rate  # the speech took its own time to arrive
    gap_frames = []
    for _ in range(25):  # one second of serving-loop ticks, 40 ms apart
        clock.now += 0.04
        gap_frames += list(idle.keep_alive())
    filled = idle.motion.n_speech - half
    after = list(idle.push(wave[half:], rate)) + list(idle.finish())
    assert abs(len(gap_frames) - 25) <= 8, f"{len(gap_frames)} frames in one idle second"
    assert abs(filled / rate - 1.0) < 0.25
    frames = before + gap_frames + after
    assert [f.index for f in frames] == list(range(frame_count(len(wave) + filled, rate)))

    # Blinks on (120 a minute): the schedule closes the eyes during the gap, and it is still the same motion.
    starts = BlinkSchedule(25, BLINKS.rate, BLINKS.duration, BLINKS.seed).until(len(frames) / 25)
    closure = closure_curve(len(frames), 25, starts, BLINKS.duration)
    assert closure[gap_frames[0].index : gap_frames[-1].index + 1].max() > 0.9, "the idle face blinks"

    pushed = LiveSession(setup["models"], setup["face"], setup["options"], SHORT, render=False, blinks=BLINKS)
    same = list(pushed.push(wave[:half], rate)) + list(pushed.push(np.zeros(filled, np.float32), rate))
    same += list(pushed.push(wave[half:], rate)) + list(pushed.finish())
    assert torch.equal(torch.stack([f.keypoints for f in frames]), torch.stack([f.keypoints for f in same]))
    idle.close()
    pushed.close()


def session_keypoints(setup, blinks: BlinkOptions, piece: int, idle_s: float) -> torch.Tensor:
    """The speech pushed in pieces of ``piece`` samples, ``idle_s`` seconds of ``idle()``, finish: every frame's
    keypoints (the eyes the render used), in order."""
    wave, rate = setup["wave"], setup["rate"]
    options = animate_options(sampling=FAST)
    with LiveSession(setup["models"], setup["face"], options, BLINK_STREAM, render=False, blinks=blinks) as live:
        frames = [f for lo in range(0, len(wave), piece) for f in live.push(wave[lo : lo + piece], rate)]
        frames += list(live.idle(idle_s)) + list(live.finish())
    assert [f.index for f in frames] == list(range(len(frames)))
    return torch.stack([f.keypoints for f in frames])


def streamed_motion(setup, idle_s: float) -> MotionSequence:
    """The motion a session samples for the speech and the silence after it, from the motion stream alone."""
    motion_model = setup["models"].motion_model
    stream = MotionStream(motion_model.generator, motion_model.template, animate_options(sampling=FAST).sampling,
                          BLINK_STREAM)
    stream.feed(torch.from_numpy(np.concatenate([setup["wave"], np.zeros(int(idle_s * setup["rate"]), np.float32)])))
    stream.finish()
    chunks = [m for _, m in stream.frames()]
    return MotionSequence(**{k: torch.cat([getattr(m, k) for m in chunks]) for k in FRAME_FIELDS}, fps=25)


def test_live_blinks_follow_the_offline_schedule_talking_and_idle(setup):
    """Blinks on (120 a minute, the test's seed): 0.4 s of speech then 1.4 s idle. The eye keypoints move at exactly
    the scheduled blink frames (the offline schedule, all while idle here) and every frame between blinks is the
    blink-free one; pushing the speech in other pieces changes nothing (causal); and the frames are the offline
    render's keypoints of the same motion with ``--blinks on``, up to the last blink, which the offline clip's end
    would cut short: the offline job leaves it out, live (which cannot know the end is near) shows it."""
    idle_s = 1.4
    on = session_keypoints(setup, BLINKS, PIECE, idle_s)
    off = session_keypoints(setup, NO_BLINKS, PIECE, idle_s)
    n = len(on)
    assert n == round((CLIP_SECONDS + idle_s) * 25)
    assert torch.equal(session_keypoints(setup, BLINKS, 333, idle_s), on), "causal: the pieces change nothing"
    starts = BlinkSchedule(25, BLINKS.rate, BLINKS.duration, BLINKS.seed).until(n / 25)
    closure = closure_curve(n, 25, starts, BLINKS.duration)
    moved = (on[:, EYES] - off[:, EYES]).abs().amax(dim=(1, 2)).numpy()
    assert np.array_equal(moved > 0, closure > 0), "the eyes move exactly at the scheduled blinks"
    assert np.corrcoef(closure, moved)[0, 1] > 0.95, "the eyes move as far as the lids close"
    assert torch.equal(on[closure == 0], off[closure == 0]), "open eyes: the blink-free frames"
    assert len(starts) == 4 and min(starts) > CLIP_SECONDS, "every blink while idle"
    models, appearance = setup["models"].liveportrait, setup["face"].appearance
    keypoint_options = setup["options"].keypoints
    motion = streamed_motion(setup, idle_s)
    offline = compute_target_keypoints(models, appearance, apply_blinks(motion, BLINKS), keypoint_options).x_d
    plain = compute_target_keypoints(models, appearance, motion, keypoint_options).x_d
    cut = int(np.floor(starts[-1] * 25)) + 1  # the first frame of the blink the offline clip leaves out
    assert torch.allclose(off, plain, atol=1e-5) and torch.allclose(on[:cut], offline[:cut], atol=1e-5)
    assert torch.equal(offline[cut:], plain[cut:]) and moved[cut:].max() > 1e-4


def test_live_front_ends_give_every_session_their_blinks(setup):
    """The node's widgets and the page server's source: the blinks reach each session, seeded by the job's seed;
    without any, a session blinks by default (15 a minute, the session's seed)."""
    _, _, blinks = live_options(setup["face"].reference, 2**32 + 7, 4.0, True, 3, 2, "on", 120.0)
    assert blinks == BLINKS
    models = setup["models"]

    def opened(**extra) -> BlinkOptions | None:
        source = live_source(lambda: models.liveportrait, lambda: models.motion_model, setup["face"],
                             setup["options"], SHORT, **extra)
        with source.open_session() as session:
            return None if session.blinks is None else session.blinks.options

    assert opened(blinks=blinks) == BLINKS
    assert opened() == BlinkOptions(mode="on", rate=15.0, seed=7)
    assert opened(blinks=NO_BLINKS) is None


def run_cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, "-m", "joyvasa_core", *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def decoded(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_live_command_lookahead_all_is_the_offline_video(setup):
    """``live --lookahead all`` and the single job, same seed and options: the same frame count, round(seconds x
    25), the same pictures (up to the encoder), and the figures line with a zero keypoint RMSE against itself."""
    common = ["--image", setup["image"], "--audio", setup["speech"], "--models", setup["root"] / "models",
              "--no-download", "--device", "cpu", "--dtype", "fp32", "--seed", "7", "--blinks", "on", "--blink-rate",
              "120", "--quiet"]  # both take the blinks; seed 7's first blink (0.46 s) is past this 0.4 s clip
    live_out, offline_out = setup["root"] / "live.mp4", setup["root"] / "offline.mp4"
    live = run_cli("live", *common, "--out", live_out, "--lookahead", "all", "--chunk-ms", "120",
                   "--compare-offline")
    assert live.returncode == 0, live.stderr
    offline = run_cli(*common, "--out", offline_out)
    assert offline.returncode == 0, offline.stderr
    a, b = decoded(live_out), decoded(offline_out)
    assert len(a) == len(b) == frame_count(len(setup["wave"]), setup["rate"])
    assert np.abs(a.astype(np.int16) - b).mean() < 0.5
    line = live.stdout.strip().splitlines()[-1]
    assert f"{len(a)} frames" in line and "first frame" in line and "real-time factor" in line
    assert "keypoint RMSE per frame vs look-ahead all: mean 0, worst 0" in line


@pytest.mark.parametrize("extra,message", [
    (["--motion", "m.safetensors"], "--motion: does not apply to live"),
    (["--blinks", "if_none"], "--blinks if_none: live cannot look for blinks in a motion that is still being made; "
                              "use off or on."),
    (["--blink-rate", "500"], "--blink-rate 500.0: out of range"),
    (["--step-frames", "0"], "--step-frames 0: out of range"),
    (["--step-frames", "101"], "--step-frames 101: out of range"),
    (["--chunk-ms", "0"], "--chunk-ms 0"),
    (["--chunk-ms", "nan"], "--chunk-ms nan: out of range"),
    (["--chunk-ms", "inf"], "--chunk-ms inf: out of range"),
    (["--lookahead", "-1"], "--lookahead -1: out of range"),
    (["--lookahead", "1000"], "--lookahead 1000: out of range"),
])
def test_live_command_bad_options_exit_2(setup, capsys, extra, message):
    code = cli.main(["live", "--image", str(setup["image"]), "--audio", str(setup["speech"]), "--out",
                     str(setup["root"] / "bad.mp4"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (setup["root"] / "bad.mp4").exists()


def test_keep_loaded_is_called_only_when_networks_run(setup):
    """A host's keep_loaded (ComfyUI's load_models_gpu) runs before each step or batch of frames, never for a push
    that only waits for more speech: 10 ms pieces make about four pushes per frame."""
    wave, rate = setup["wave"], setup["rate"]
    calls, pushes, outputs = [], 0, 0
    with LiveSession(setup["models"], setup["face"], animate_options(sampling=FAST), BLINK_STREAM, render=False,
                     keep_loaded=lambda: calls.append(1)) as live:
        for lo in range(0, len(wave), rate // 100):
            got = list(live.push(wave[lo : lo + rate // 100], rate))
            pushes, outputs = pushes + 1, outputs + bool(got)
        assert 1 <= outputs <= len(calls) < pushes / 2
        before = len(calls)
        frames = list(live.finish())
    assert frames and len(calls) > before
