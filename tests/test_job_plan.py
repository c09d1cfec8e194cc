"""The job plan: every decision of a command-line (or manifest-row) job made and checked without a model."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from joyvasa_core.cli import build_parser
from joyvasa_core.errors import JoyVASAError, OptionError
from joyvasa_core.examples import EXAMPLE_AUDIO, EXAMPLE_IMAGE
from joyvasa_core.job import OPTION_DEFAULTS, check_job, plan_job
from joyvasa_core.keypoints import KeypointOptions
from joyvasa_core.motion.sampler import SamplingOptions
from joyvasa_core.pipeline import speech_window_plan


def _plan(**values):
    return plan_job({"out": "talking.mp4", **values}, draw_seed=lambda: 1234)


def test_defaults_animate_the_example_on_the_web_preset():
    plan = _plan()
    assert plan.image == str(EXAMPLE_IMAGE) and plan.audio == str(EXAMPLE_AUDIO)
    assert plan.seed == 1234 and plan.blinks.seed == 1234 and plan.options.sampling.seed == 1234
    assert plan.options.sampling.cfg_scale == SamplingOptions.web().cfg_scale == 4.0
    assert plan.options.keypoints == KeypointOptions.web()
    assert plan.sources.expression == "speech" and plan.sources.samples_speech
    assert plan.pastes_back and plan.options.reference.crop == "face"
    assert plan.models.motion_model and plan.models.face_detector
    assert plan.models.features == ["human", "motion_generator"]
    assert plan.blinks.mode == "off" and plan.crf == 18


def test_a_parsed_command_line_and_a_row_of_option_names_plan_the_same_job():
    argv = ["--out", "a.mp4", "--preset", "cli", "--cfg-scale", "3.5", "--seed", "9", "--batch-size", "2",
            "--box", "10,20,100,120", "--blinks", "on"]
    parsed = plan_job(vars(build_parser().parse_args(argv)))
    row = plan_job({"out": "a.mp4", "preset": "cli", "--cfg-scale": 3.5, "seed": 9, "batch-size": 2,
                    "box": (10.0, 20.0, 100.0, 120.0), "blinks": "on", "models": parsed.models.root})
    assert replace(parsed, options=None) == replace(row, options=None)
    assert parsed.options.sampling == row.options.sampling and parsed.options.keypoints == row.options.keypoints
    assert parsed.options.reference.box == row.options.reference.box
    assert row.options.sampling.cfg_scale == 3.5 and row.options.batch_size == 2
    assert row.options.reference.crop == "box" and row.options.reference.box == (10.0, 20.0, 110.0, 140.0)
    assert row.video_batch_size == 8, "a driving video's motion extractor runs at least 8 frames a pass"
    assert _plan(batch_size=16).video_batch_size == 16


def test_parser_defaults_are_the_option_table():
    parsed = vars(build_parser().parse_args(["--out", "a.mp4"]))
    assert {k: parsed[k] for k in OPTION_DEFAULTS if k not in ("models", "out")} == {
        k: v for k, v in OPTION_DEFAULTS.items() if k not in ("models", "out")}


def test_cli_preset_and_animal_mode():
    cli = _plan(preset="cli")
    assert cli.options.sampling.cfg_scale == SamplingOptions.cli().cfg_scale == 2.8
    assert cli.options.reference.crop == "whole" and cli.pastes_back, "the whole picture's area, at its size"
    assert not _plan(preset="cli", no_pasteback=True).pastes_back
    squeeze = _plan(preset="cli", no_crop="squeeze")
    assert squeeze.options.reference.crop == "squeeze" and squeeze.pastes_back and not squeeze.models.face_detector
    assert not cli.models.face_detector, "no crop and no lip normalisation: nothing for a detector to do"
    animal = _plan(animal=True)
    assert animal.options.sampling == SamplingOptions.animal(seed=1234)
    assert animal.options.keypoints == KeypointOptions.animal() and animal.pastes_back, "animals at the photo's size"
    assert not _plan(animal=True, box=(10.0, 20.0, 100.0, 120.0)).pastes_back, "a box crop without stitching"
    assert animal.models.features == ["animal", "motion_generator"]
    assert _plan(no_stitching=True).pastes_back is False
    assert _plan(detector="official").models.features == ["human", "motion_generator", "official_detector"]


def test_motion_sources_decide_the_models():
    reuse = _plan(image="p.png", motion="m.safetensors")
    assert reuse.audio is None and reuse.sources.expression == "motion" and not reuse.models.motion_model
    video = _plan(image="p.png", motion_from_video="d.mp4", preset="cli")
    assert video.sources.expression == "video" and not video.models.motion_model
    assert video.models.face_detector, "a driving video's frames are cropped by a detector"
    mixed = _plan(image="p.png", audio="s.wav", motion_from_video="d.mp4", head_from="video")
    assert mixed.sources.head == "video" and mixed.models.motion_model


def test_bad_options_fail_before_anything_is_read():
    with pytest.raises(OptionError, match="--cfg-scale -1"):
        _plan(cfg_scale=-1.0)
    with pytest.raises(JoyVASAError, match="--colour: not an option"):
        _plan(colour="red")
    with pytest.raises(JoyVASAError, match="--out missing"):
        plan_job({})
    with pytest.raises(OptionError, match="--head-from video: needs --motion-from-video"):
        _plan(head_from="video")


def test_the_frame_count_comes_from_the_window_plan():
    for n in (1, 639, 16_000, 123_457):
        assert speech_window_plan(n).n_frames == math.floor((n + 1920) / 640)


def test_check_job_reads_the_files_without_models(tmp_path):
    plan = _plan(out=str(tmp_path / "talking"), motion_preview=str(tmp_path / "plot.png"))
    inputs = check_job(plan)
    assert inputs.image.shape[2] in (3, 4) and inputs.speech is not None
    assert inputs.outputs["out"] == tmp_path / "talking.mp4"
    assert any("no extension" in n for n in inputs.notes)
    assert inputs.n_frames == speech_window_plan(inputs.speech.shape[-1]).n_frames
    (tmp_path / "talking.mp4").write_bytes(b"x")
    with pytest.raises(OptionError, match="already exists"):
        check_job(_plan(out=str(tmp_path / "talking.mp4")))
