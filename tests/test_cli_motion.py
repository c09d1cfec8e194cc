"""The motion options of the command line: a video-driven run that exports its LivePortrait driving template, then
that template with the speech's lips and blinks, with previews and templates checked; bad combinations exit 2
before any model loads."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from fixture_support import fixture_path
from test_pipeline_e2e import _main, job, run_cli, video_frames  # noqa: F401  (job: the shared models + media)

from joyvasa_core.checkpoints.driving_template import read_driving_template
from joyvasa_core.checkpoints.motion_sequence import read_motion_sequence
from joyvasa_core.keypoints import LIP_KEYPOINTS
from joyvasa_core.motion.blinks import blink_times, closure_curve
from joyvasa_core.motion.edit import lips_absolute
from joyvasa_core.motion.preview import AXIS_HEIGHT, PANEL_HEIGHT, PANELS
from joyvasa_core.motion.sequence import FRAME_FIELDS
from joyvasa_core.video import VideoWriter

VIDEO_FRAMES = 3
OTHER_ROWS = [k for k in range(21) if k not in LIP_KEYPOINTS]


@pytest.fixture(scope="module")
def drive(job) -> object:  # noqa: F811
    """A real face photo panning, as a real mp4."""
    face = cv2.cvtColor(cv2.imread(str(fixture_path("astronaut.png"))), cv2.COLOR_BGR2RGB)
    path = job["root"] / "drive.mp4"
    frames = [cv2.warpAffine(face, np.float32([[1, 0, 5 * i], [0, 1, 3 * i]]), face.shape[1::-1])
              for i in range(VIDEO_FRAMES)]
    with VideoWriter(path, fps=25) as writer:
        writer.write(torch.from_numpy(np.stack(frames)))
    return path


def test_video_driving_then_speech_lips_on_its_template(job, drive):  # noqa: F811
    root = job["root"]
    alone, video_pkl = root / "video_only.mp4", root / "video.pkl"
    res = run_cli("--image", job["image"], "--motion-from-video", drive, "--models", job["models"], "--out", alone,
                  "--save-motion", root / "video.safetensors", "--export-template", video_pkl,
                  "--motion-preview", root / "video.png")
    assert res.returncode == 0, res.stderr
    video = read_motion_sequence(root / "video.safetensors")
    assert video.n_frames == VIDEO_FRAMES == len(video_frames(alone)) and not lips_absolute(video)
    back = read_driving_template(video_pkl)
    for name in FRAME_FIELDS:
        assert torch.equal(getattr(back, name), getattr(video, name)), name
    assert cv2.imread(str(root / "video.png")).shape == (len(PANELS) * PANEL_HEIGHT + AXIS_HEIGHT, 1024, 3)
    # The video's template (head, expression) with the speech's lips, blinks, preview and template out.
    out, preview, template = root / "mixed.mp4", root / "motion.png", root / "motion.pkl"
    res = run_cli("--image", job["image"], "--audio", job["speech"], "--models", job["models"], "--out", out,
                  "--seed", "0", "--motion", video_pkl, "--lips-from", "speech", "--blinks", "on",
                  "--blink-rate", "120", "--motion-preview", preview, "--export-template", template,
                  "--save-motion", root / "mixed.safetensors")
    assert res.returncode == 0, res.stderr
    mixed = read_motion_sequence(root / "mixed.safetensors")
    assert mixed.n_frames == VIDEO_FRAMES, "the expression motion (here the template) sets the length"
    for name in ("R", "t", "scale", "yaw"):
        assert torch.equal(getattr(mixed, name), getattr(video, name)), f"head {name} from the template"
    assert torch.equal(mixed.exp[:, OTHER_ROWS], video.exp[:, OTHER_ROWS])
    assert not torch.equal(mixed.exp[:, LIP_KEYPOINTS], video.exp[:, LIP_KEYPOINTS])
    assert lips_absolute(mixed), "the lips are the speech's"
    # Blinks on: the schedule of the run's seed (3 frames hold no blink at 120/min, the track is still written).
    closure = closure_curve(VIDEO_FRAMES, 25, blink_times(VIDEO_FRAMES, 25, 120, 0.25, 0), 0.25)
    assert mixed.eye_open is not None and torch.equal(mixed.eye_open, 1 - torch.from_numpy(closure).float()[:, None])
    assert "blinks 0 (120/min, 0.25 s, seed 0)" in mixed.settings["edits"][-1]
    assert len(video_frames(out)) == mixed.n_frames
    again = read_driving_template(template)
    for name in FRAME_FIELDS:
        assert torch.equal(getattr(again, name), getattr(mixed, name)), name
    assert torch.equal(again.eye_open, mixed.eye_open)
    plot = cv2.imread(str(preview))
    assert plot.shape == ((len(PANELS) + 1) * PANEL_HEIGHT + AXIS_HEIGHT, 1024, 3)
    assert [p.name for p in root.iterdir() if p.name.endswith(".part")] == []


@pytest.mark.parametrize(("extra", "message"), [
    (("--head-from", "video"), "--head-from video: needs --motion-from-video"),
    (("--motion-from-video", "DRIVE"), "nothing takes from the video"),
    (("--lips-from", "motion"), "--lips-from motion: needs --motion"),
    (("--export-template", "OUT/t.txt"), "not a driving template this tool writes; give a name ending in .pkl"),
    (("--motion-preview", "OUT/p.jpg"), "not a preview image this tool writes; give a name ending in .png"),
    (("--blinks", "on", "--blink-rate", "500"), "--blink-rate 500.0: out of range"),
])
def test_bad_motion_options_exit_2_before_loading(job, drive, capsys, extra, message):  # noqa: F811
    out = job["root"] / "never.mp4"
    extra = tuple(str(drive) if a == "DRIVE" else a.replace("OUT", str(job["root"])) for a in extra)
    code, err = _main(capsys, "--image", job["image"], "--audio", job["speech"], "--models", job["root"] / "none",
                      "--out", out, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
