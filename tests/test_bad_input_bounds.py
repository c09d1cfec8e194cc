"""Bad input, round three, in the core every front end calls: the one table of bounds, no motion of NaN on any path
(made, read, edited, rendered), work over an hour refused with the number before it starts, output names checked
against the folder's real limit (partial file included), outputs that are not files, boxes off the photo, empty
prefixes, file modes, and a stop signal answered while the main thread is stuck in one long native call."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from fixture_support import REPO
from safetensors.torch import save_file

from joyvasa_core.checkpoints.driving_template import read_driving_template, template_dict
from joyvasa_core.checkpoints.motion_sequence import read_motion_sequence, write_motion_sequence
from joyvasa_core.download import DownloadError, download_missing
from joyvasa_core.errors import CheckpointError, MotionError, OptionError
from joyvasa_core.keypoints import KeypointOptions
from joyvasa_core.model_catalog import HUMAN
from joyvasa_core.motion.blinks import BlinkOptions
from joyvasa_core.motion.edit import fit_length, motion_from_pose, offset_pose, scale_parts, trim
from joyvasa_core.motion.sampler import SamplingOptions
from joyvasa_core.motion.sequence import FRAME_FIELDS, MotionSequence
from joyvasa_core.partials import FILE_MODE, TAG
from joyvasa_core.pipeline import check_renderable, render_frames
from joyvasa_core.types import TargetKeypoints
from joyvasa_core.validate import (
    CLI,
    MAX_FRAMES,
    NODE,
    RANGES,
    ROWS,
    VIDEO_EXTS,
    Output,
    bounds,
    box_problem,
    check_free_space,
    check_outputs,
    estimate_motion_bytes,
    name_limit,
    option_problem,
    output_prefix,
    validate_inputs,
)


def motion(n: int = 6, **settings) -> MotionSequence:
    g = torch.Generator().manual_seed(1)
    angles = torch.randn(n, 3, generator=g)
    return motion_from_pose(exp=torch.randn(n, 21, 3, generator=g) * 0.01, scale=torch.ones(n, 1),
                            t=torch.zeros(n, 3), pitch=angles[:, :1], yaw=angles[:, 1:2], roll=angles[:, 2:],
                            settings=settings)


def fields(m: MotionSequence, **over) -> dict:
    values = {k: getattr(m, k).clone() for k in FRAME_FIELDS}
    values.update(over)
    return values


# ---------------------------------------------------------------------------------------------------------------------
# One table of bounds


def test_every_row_has_bounds_and_widget_bounds_come_from_it():
    for key, r in RANGES.items():
        assert r.lo is not None and r.hi is not None and r.lo <= r.hi, key
        assert bounds(key) == {"min": r.lo, "max": r.hi}
    assert set(ROWS.values()) <= set(RANGES)
    assert bounds("cfg_scale") == {"min": 0.0, "max": 20.0}
    assert bounds("length") == {"min": 0, "max": MAX_FRAMES} and MAX_FRAMES == 3600 * 25


@pytest.mark.parametrize("values, node, cli", [
    ({"cfg_scale": 1e308}, "cfg_scale 1e+308: out of range", "--cfg-scale 1e+308: out of range"),
    ({"cfg_scale": float("nan")}, "cfg_scale nan: out of range", "--cfg-scale nan: out of range"),
    ({"steps": 5000}, "steps 5000: out of range", "--steps 5000: out of range"),
    ({"blink_rate": 500.0}, "blink_rate 500.0: out of range", "--blink-rate 500.0: out of range"),
    ({"batch_size": 100_000}, "batch_size 100000: out of range", "--batch-size 100000: out of range"),
])
def test_one_line_in_each_front_ends_words(values, node, cli):
    assert option_problem(values, NODE).startswith(node)
    assert option_problem(values, CLI).startswith(cli)
    assert validate_inputs(values).startswith(node)


def test_rows_map_other_names_for_the_batch_and_live_front_ends():
    assert option_problem({"yaw": 120.0}, NODE, ROWS).startswith("yaw 120.0: out of range; a constant head turn")
    assert option_problem({"head_rotation": -1.0}, NODE, ROWS).startswith("head_rotation -1.0: out of range")
    assert option_problem({"length": 10_000_000}, NODE).startswith("length 10000000: out of range")
    assert option_problem({"yaw": 12.0, "cfg_scale": 4.0, "steps": 50}, NODE, ROWS) is None


def test_core_entry_points_check_their_numbers():
    with pytest.raises(OptionError, match=r"^cfg_scale 1e\+308: out of range") as err:
        SamplingOptions(cfg_scale=1e308)
    assert err.value.for_cli().startswith("--cfg-scale 1e+308: out of range")
    with pytest.raises(OptionError, match=r"^smoothing_alpha 0.0: out of range"):
        SamplingOptions(smoothing_alpha=0.0)
    with pytest.raises(OptionError, match=r"^rate nan: out of range"):
        BlinkOptions(rate=float("nan"))
    with pytest.raises(OptionError, match=r"^head_rotation nan: out of range"):
        scale_parts(motion(), rotation=float("nan"))
    with pytest.raises(OptionError, match=r"^yaw inf: out of range"):
        offset_pose(motion(), yaw=float("inf"))


# ---------------------------------------------------------------------------------------------------------------------
# No motion of NaN, by any path


def test_a_motion_of_nan_cannot_exist():
    m = motion()
    exp = m.exp.clone()
    exp[2, 0, 0] = float("nan")
    with pytest.raises(MotionError, match=r"^the motion holds NaN or Inf \(exp in 1 of 6 frames\) \(made by source "
                                          r"test\); it cannot be rendered"):
        MotionSequence(**fields(m, exp=exp), settings={"source": "test"})
    R = m.R.clone()
    R[:] = float("inf")
    with pytest.raises(MotionError, match=r"R in 6 of 6 frames"):
        MotionSequence(**fields(m, R=R))


def test_a_motion_file_of_nan_is_refused(tmp_path):
    good = motion()
    write_motion_sequence(good, tmp_path / "good.safetensors")
    assert read_motion_sequence(tmp_path / "good.safetensors").n_frames == 6
    tensors = {k: getattr(good, k).contiguous() for k in FRAME_FIELDS}
    tensors["exp"] = torch.full_like(tensors["exp"], float("nan"))
    meta = {"json": '{"format": "joyvasa_motion", "version": 1, "fps": 25, "seed": 0, "settings": '
                    '{"scheduler": "ddpm", "num_steps": 50, "cfg_scale": 1e+308}}'}
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata=meta)
    with pytest.raises(MotionError, match=r"^motion file: .*nan\.safetensors: the motion holds NaN or Inf \(exp in 6 "
                                          r"of 6 frames\) \(made by scheduler ddpm, num_steps 50, cfg_scale 1e\+308"):
        read_motion_sequence(tmp_path / "nan.safetensors")


def test_a_driving_template_of_nan_is_refused(tmp_path):
    raw = template_dict(motion(n=4))
    raw["joyvasa"]["pose_raw"][1, 0] = float("nan")  # the pack's own extra entry, not covered by the frame checks
    (tmp_path / "nan.pkl").write_bytes(pickle.dumps(raw))
    with pytest.raises(CheckpointError, match=r"^driving template .*nan\.pkl: .*holds NaN or Inf"):
        read_driving_template(tmp_path / "nan.pkl")
    raw = template_dict(motion(n=4))
    raw["joyvasa"]["coef"] = raw["joyvasa"]["coef"].reshape(4, -1)
    raw["motion"][2]["exp"][0, 3, 1] = float("inf")
    (tmp_path / "inf.pkl").write_bytes(pickle.dumps(raw))
    with pytest.raises(CheckpointError, match=r"^driving template .*inf\.pkl: motion\[2\]\['exp'\] holds NaN or Inf"):
        read_driving_template(tmp_path / "inf.pkl")


def test_nan_keypoints_are_not_rendered():
    n = 3
    x_d = torch.zeros(n, 21, 3)
    x_d[1, 4, 2] = float("nan")
    keypoints = TargetKeypoints(x_d=x_d, x_s=torch.zeros(1, 21, 3), options=KeypointOptions.web())
    with pytest.raises(MotionError, match=r"^render: the target keypoints hold NaN or Inf \(keypoints in 1 of 3 "
                                          r"frames\)"):
        check_renderable(keypoints)
    frames = render_frames(None, None, keypoints)  # no model is touched: the gate comes first
    with pytest.raises(MotionError, match=r"^render: the target keypoints"):
        next(frames)


def test_a_nan_in_the_sampler_names_the_stage_and_settings(tmp_path):
    from model_folders import write_joyvasa

    from joyvasa_core.loading import load_motion_model
    from joyvasa_core.pipeline import prepare_speech, sample_motion

    write_joyvasa(tmp_path)
    mm = load_motion_model(tmp_path, "cpu")
    with torch.no_grad():
        next(mm.generator.parameters()).fill_(float("nan"))  # a broken checkpoint: one layer of NaN
    features = prepare_speech(torch.sin(torch.arange(8000) / 7.0) * 0.3, mm)
    options = SamplingOptions(cfg_scale=4.0, scheduler="ddim", num_steps=2, seed=7)
    with pytest.raises(MotionError) as err:
        sample_motion(mm, features, options)
    assert str(err.value).startswith("motion sampling: cfg_scale 4 (ddim 2 steps, seed 7) made NaN or Inf (motion in ")
    assert err.value.for_cli().startswith("motion sampling: --cfg-scale 4 (ddim 2 steps, seed 7) made NaN or Inf")


# ---------------------------------------------------------------------------------------------------------------------
# Huge work, estimated first


def test_fit_to_ten_million_frames_is_refused_before_any_is_made():
    m = motion()
    t0 = time.perf_counter()
    with pytest.raises(OptionError, match=r"^fit motion: the length is 10000000 frames \(111\.1 hours at 25 fps\); "
                                          r"the limit is an hour \(90000 frames\)"):
        fit_length(m, 10_000_000)
    assert time.perf_counter() - t0 < 1.0
    assert fit_length(m, 50).n_frames == 50 and trim(m, 1, 3).n_frames == 2


def test_motion_file_size_is_estimated_and_checked(tmp_path):
    m = motion(n=25)
    write_motion_sequence(m, tmp_path / "m.safetensors")
    size = (tmp_path / "m.safetensors").stat().st_size
    assert m.nbytes <= size <= estimate_motion_bytes(25)
    assert estimate_motion_bytes(10_000_000) > 6e9  # the 6.36 GB file of the report
    free = __import__("shutil").disk_usage(tmp_path).free
    with pytest.raises(OptionError, match=r"^filename_prefix .*x\.safetensors: the disk has \d+ MB free and the "
                                          r"motion needs about"):
        check_free_space("filename_prefix", tmp_path / "x.safetensors", free + 2**30, NODE, "the motion")


def test_motion_files_are_written_like_videos(tmp_path):
    write_motion_sequence(motion(), tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == FILE_MODE
    assert FILE_MODE == 0o666 & ~0o022 or os.name != "posix"


# ---------------------------------------------------------------------------------------------------------------------
# Output names and kinds


def _out(path) -> list[Output]:
    return [Output("out", path, VIDEO_EXTS, "video container")]


@pytest.mark.parametrize("stem_bytes, words", [
    (300, "the file name is 304 bytes and the folder takes names of at most 255"),
    (231, "the file name is 235 bytes and the folder takes names of at most 255 (the partial file it is written "
          "under adds 25)"),
])
def test_long_names_are_one_line_with_the_partial_file_counted(tmp_path, stem_bytes, words):
    assert name_limit(tmp_path) == 255
    with pytest.raises(OptionError) as err:
        check_outputs(_out(tmp_path / ("a" * stem_bytes + ".mp4")), {}, False, CLI)
    line = str(err.value)
    assert line.startswith("--out ") and words in line and "..." in line and len(line) < 320, line
    assert list(tmp_path.iterdir()) == []
    ok = "a" * (255 - len(f".{TAG}-4194304") - 1 - len(".mp4")) + ".mp4"  # the longest name whose partial fits
    assert check_outputs(_out(tmp_path / ok), {}, False, CLI)[0]["out"].name == ok


def test_outputs_that_are_not_files_are_refused(tmp_path):
    with pytest.raises(OptionError, match=r"^--out /dev/full: is a device, not a regular file; give a file name such"):
        check_outputs(_out("/dev/full"), {}, True, CLI)
    os.mkfifo(tmp_path / "pipe.mp4")
    with pytest.raises(OptionError, match=r"pipe\.mp4: is a fifo \(named pipe\), not a regular file"):
        check_outputs(_out(tmp_path / "pipe.mp4"), {}, True, CLI)
    os.mkfifo(tmp_path / "bare.mp4")
    with pytest.raises(OptionError, match=r"bare\.mp4: is a fifo \(named pipe\), not a regular file"):
        check_outputs(_out(tmp_path / "bare"), {}, True, CLI)


def test_empty_prefix_gets_the_default_name():
    assert output_prefix("", "JoyVASA/motion") == "JoyVASA/motion"
    assert output_prefix("   ", "JoyVASA/talking") == "JoyVASA/talking"
    assert output_prefix("mine/", "JoyVASA/motion") == "mine/motion"
    assert output_prefix("mine/take", "JoyVASA/motion") == "mine/take"


# ---------------------------------------------------------------------------------------------------------------------
# Boxes


def test_a_box_is_clipped_or_refused():
    assert box_problem((10, 10, 110, 110), 512, 512) == (None, None)
    refusal, note = box_problem((460, 10, 560, 110), 512, 512)
    assert refusal is None
    assert note == "the box was clipped to the 512x512 image: 460,10,52,100 (52% of it was on the image)"
    refusal, note = box_problem((10, 10, 1e9, 1e9), 512, 512)
    assert note is None and refusal.startswith("the box lies mostly outside the 512x512 image (0% of it is on it)")
    assert option_problem({"box": (10, 10, 1e9, 1e9), "image_size": (512, 512)}, CLI).startswith(
        "--box 10,10,1e+09,1e+09: the box lies mostly outside")


# ---------------------------------------------------------------------------------------------------------------------
# Model folders


def test_model_folder_mistakes_are_named(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(DownloadError) as err:
        download_missing(tmp_path / "file", [HUMAN], allow=False)
    assert err.value.for_cli().startswith(f"--models {tmp_path / 'file'}: is a file, not a folder")
    link = tmp_path / "models" / "liveportrait" / "base_models" / "warping_module.pth"
    link.parent.mkdir(parents=True)
    link.symlink_to(link.name)
    with pytest.raises(DownloadError, match=r"warping_module\.pth: is a loop of links \(it points to itself\)"):
        download_missing(tmp_path / "models", [HUMAN], allow=False)
    link.unlink()
    with pytest.raises(DownloadError) as err:
        download_missing(tmp_path / "models", [HUMAN], allow=False)
    assert "drop --no-download" in err.value.for_cli() and "loader" not in err.value.for_cli()
    assert "loader" in str(err.value)


# ---------------------------------------------------------------------------------------------------------------------
# Stop signals during one long native call

LONG_NATIVE_CALL = """
import sys, torch
from joyvasa_core.cli import stop_cleanly_on_signals
from joyvasa_core.partials import atomic_path
torch.set_num_threads(1)
with stop_cleanly_on_signals(grace=1.0), atomic_path(sys.argv[1]) as partial:
    partial.write_bytes(b"half a file")
    print("writing", flush=True)
    a = torch.rand(1024, 1024, dtype=torch.float16) / 1024  # fp16 matmuls on a CPU: one call of many seconds
    torch.linalg.matrix_power(a, 2**16)  # 16 products of about 2 s each here (512 and 2**14 took only 1.3 s)
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_is_answered_inside_a_long_native_call(tmp_path):
    target = tmp_path / "talking.mp4"
    proc = subprocess.Popen([sys.executable, "-c", LONG_NATIVE_CALL, str(target)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout.readline().strip() == "writing"
    assert [p.name for p in tmp_path.iterdir()] == [f".talking.{TAG}-{proc.pid}.mp4"]
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == "stopped by SIGTERM; no video was written."
    assert took < 3.0, took
    assert list(tmp_path.iterdir()) == []
