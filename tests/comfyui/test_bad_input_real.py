"""Bad input, round three, through a real ComfyUI server: prompts POSTed straight to /prompt (past the UI's own
min/max), one server session for every case. A number out of the core's table is refused under its own widget; a
motion of NaN is refused by the node that meets it; long and empty filename prefixes, boxes off the photo; and the
output folder is checked before and after each case."""

from __future__ import annotations

import json
import math
import pickle
import time
from pathlib import Path

import pytest
import soundfile as sf
import torch
from comfyui_harness import PromptRejected
from fixture_support import fixture_dir
from model_folders import write_joyvasa, write_liveportrait
from render_prompts import RENDER_ID, render_prompt
from safetensors.torch import save_file

from joyvasa_core.checkpoints.driving_template import template_dict
from joyvasa_core.checkpoints.motion_sequence import write_motion_sequence
from joyvasa_core.motion.edit import motion_from_pose
from joyvasa_core.motion.sequence import FRAME_FIELDS
from joyvasa_core.partials import FILE_MODE
from joyvasa_core.validate import MAX_FRAMES, RANGES

FIXTURES = fixture_dir()
LONG = "x" * 5000
NEAR_LIMIT = "y" * 228  # + "_00001_.safetensors" fits 255, the partial file's name does not

pytestmark = pytest.mark.comfyui


def _motion(n: int = 8):
    g = torch.Generator().manual_seed(2)
    angles = torch.randn(n, 3, generator=g)
    return motion_from_pose(exp=torch.randn(n, 21, 3, generator=g) * 0.01, scale=torch.ones(n, 1),
                            t=torch.zeros(n, 3), pitch=angles[:, :1], yaw=angles[:, 1:2], roll=angles[:, 2:])


@pytest.fixture(scope="module")
def inputs(comfyui, tmp_path_factory) -> dict:
    write_liveportrait(comfyui.base / "models", "official")
    write_joyvasa(comfyui.base / "models")
    work = tmp_path_factory.mktemp("bad_inputs")
    good = _motion()
    write_motion_sequence(good, work / "good_motion.safetensors")
    nan = {k: getattr(good, k).contiguous() for k in FRAME_FIELDS}
    nan["R"] = torch.full_like(nan["R"], float("nan"))
    meta = {"format": "joyvasa_motion", "settings": {"scheduler": "ddpm", "num_steps": 50, "cfg_scale": 1e308}}
    save_file(nan, str(work / "nan_motion.safetensors"), metadata={"json": json.dumps(meta)})
    raw = template_dict(good)
    raw["motion"][2]["exp"][0, 0, 0] = float("nan")
    (work / "nan_template.pkl").write_bytes(pickle.dumps(raw))
    wave, rate = sf.read(str(FIXTURES / "speech_en_16k.wav"), dtype="int16")
    sf.write(str(work / "speech.wav"), wave[: int(0.4 * rate)], rate, subtype="PCM_16")
    names = {p.name: comfyui.upload(p) for p in sorted(work.iterdir())}
    names["portrait"] = comfyui.upload(FIXTURES / "astronaut.png", name="portrait.png")
    return names


def _outputs(comfyui) -> dict[str, int]:
    root = comfyui.base / "output"
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _rejected(comfyui, prompt: dict, node: str) -> list[dict]:
    with pytest.raises(PromptRejected) as err:
        comfyui.queue(prompt)
    return err.value.body["node_errors"][node]["errors"]


def _failed(comfyui, prompt: dict) -> dict:
    entry = comfyui.run(prompt, timeout=300)
    assert entry["status"]["status_str"] == "error"
    (error,) = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    return error


def _save_motion(source: dict, prefix: str, node: str = "JoyVASASaveMotion") -> dict:
    return {"1": source, "2": {"class_type": node, "inputs": {"motion": ["1", 0], "filename_prefix": prefix}}}


def _load(name: str) -> dict:
    return {"class_type": "JoyVASALoadMotion", "inputs": {"motion_file": name}}


def test_widget_bounds_are_the_cores_table(comfyui, inputs):
    sample = comfyui.object_info("JoyVASASampleMotionDiffusion")["JoyVASASampleMotionDiffusion"]["input"]["required"]
    assert sample["cfg_scale"][1]["max"] == RANGES["cfg_scale"].hi == 20.0
    assert sample["steps"][1]["max"] == RANGES["steps"].hi
    fit = comfyui.object_info("JoyVASAFitMotion")["JoyVASAFitMotion"]["input"]["required"]
    assert fit["length"][1]["max"] == MAX_FRAMES
    edit = comfyui.object_info("JoyVASAEditMotion")["JoyVASAEditMotion"]["input"]["required"]
    assert (edit["yaw"][1]["min"], edit["yaw"][1]["max"]) == (-90.0, 90.0)


@pytest.mark.parametrize("widget, value, words", [
    ("cfg_scale", 1e308, "cfg_scale 1e+308: out of range"),
    ("cfg_scale", math.nan, "cfg_scale nan: out of range"),
    ("steps", 5000, "5000 bigger than max of 1000"),
])
def test_a_bad_sample_motion_number_is_refused_under_its_own_widget(comfyui, inputs, widget, value, words):
    before = _outputs(comfyui)
    prompt = render_prompt(inputs["portrait"], inputs["speech.wav"])
    prompt["8"]["inputs"][widget] = value
    errors = _rejected(comfyui, prompt, "8")
    assert [e["extra_info"]["input_name"] for e in errors] == [widget], errors
    text = errors[0]["details"] + " " + errors[0]["message"]
    assert words in text, errors
    assert _outputs(comfyui) == before


def test_fit_motion_length_past_an_hour_is_refused(comfyui, inputs):
    prompt = _save_motion(_load(inputs["good_motion.safetensors"]), "joyvasa/fit")
    prompt["3"] = {"class_type": "JoyVASAFitMotion",
                   "inputs": {"motion": ["1", 0], "start": 0, "stop": 0, "length": 10_000_000, "mode": "loop"}}
    prompt["2"]["inputs"]["motion"] = ["3", 0]
    before = _outputs(comfyui)
    errors = _rejected(comfyui, prompt, "3")
    assert [(e["type"], e["extra_info"]["input_name"]) for e in errors] == [("value_bigger_than_max", "length")]
    assert _outputs(comfyui) == before


def test_nan_never_leaves_a_node(comfyui, inputs):
    before = _outputs(comfyui)
    error = _failed(comfyui, _save_motion(_load(inputs["nan_motion.safetensors"]), "joyvasa/nan"))
    assert error["node_type"] == "JoyVASALoadMotion"
    assert error["exception_message"].startswith("JoyVASA Load Motion: motion file: ")
    assert "the motion holds NaN or Inf (R in 8 of 8 frames)" in error["exception_message"]
    assert "cfg_scale 1e+308" in error["exception_message"]
    template = {"class_type": "JoyVASALoadDrivingTemplate", "inputs": {"template_file": inputs["nan_template.pkl"]}}
    error = _failed(comfyui, _save_motion(template, "joyvasa/nan"))
    assert error["exception_message"].startswith("JoyVASA Load Driving Template: driving template ")
    assert "holds NaN or Inf" in error["exception_message"]
    prompt = _save_motion(_load(inputs["good_motion.safetensors"]), "joyvasa/nan")
    prompt["3"] = {"class_type": "JoyVASAEditMotion",
                   "inputs": {"motion": ["1", 0], "head_rotation": 1.0, "translation": 1.0, "scale": 1.0,
                              "expression": 1.0, "lips": 1.0, "pitch": 0.0, "yaw": math.nan, "roll": 0.0}}
    prompt["2"]["inputs"]["motion"] = ["3", 0]
    error = _failed(comfyui, prompt)  # ComfyUI's own min/max lets NaN through; the core refuses it
    assert error["node_type"] == "JoyVASAEditMotion"
    assert error["exception_message"].startswith("JoyVASA Edit Motion: yaw nan: out of range")
    assert _outputs(comfyui) == before


@pytest.mark.parametrize("node, display", [("JoyVASASaveMotion", "JoyVASA Save Motion"),
                                           ("JoyVASAExportDrivingTemplate", "JoyVASA Export Driving Template")])
def test_long_prefixes_are_one_short_line_naming_the_node(comfyui, inputs, node, display):
    before = _outputs(comfyui)
    for prefix, words in ((LONG, "bytes and the folder takes names of at most 255"), (NEAR_LIMIT, "partial file")):
        error = _failed(comfyui, _save_motion(_load(inputs["good_motion.safetensors"]), prefix, node))
        message = error["exception_message"]
        assert error["node_type"] == node
        assert message.startswith(f"{display}: filename_prefix "), message
        assert words in message and len(message) < 400, message
    assert _outputs(comfyui) == before


def test_a_file_error_names_the_node_and_shortens_the_path(comfyui, inputs):
    blocker = comfyui.base / "output" / ("b" * 200)
    blocker.write_bytes(b"a file where the prefix wants a folder")
    try:
        before = _outputs(comfyui)
        error = _failed(comfyui, _save_motion(_load(inputs["good_motion.safetensors"]), "b" * 200 + "/motion"))
        message = error["exception_message"]
        assert message.startswith("JoyVASA Save Motion: cannot write or read "), message
        assert "..." in message and "b" * 200 not in message, message
        assert _outputs(comfyui) == before
    finally:
        blocker.unlink()


def test_an_empty_prefix_gets_the_default_name(comfyui, inputs):
    before = _outputs(comfyui)
    entry = comfyui.run(_save_motion(_load(inputs["good_motion.safetensors"]), ""), timeout=300)
    assert entry["status"]["status_str"] == "success", entry["status"]
    (saved,) = entry["outputs"]["2"]["motion"]
    assert saved["subfolder"] == "JoyVASA" and saved["filename"].startswith("motion_"), saved
    path = comfyui.output_path(saved)
    assert path.stat().st_mode & 0o777 == FILE_MODE
    after = _outputs(comfyui)
    assert set(after) - set(before) == {str(path.relative_to(comfyui.base / "output"))}
    assert not [name for name in after if Path(name).name.startswith(".")]


def test_render_video_prefix_and_a_box_off_the_photo(comfyui, inputs):
    before = _outputs(comfyui)
    t0 = time.monotonic()
    prompt = render_prompt(inputs["portrait"], inputs["speech.wav"], prefix=LONG, batch_size=4)
    error = _failed(comfyui, prompt)
    assert error["node_type"] == "JoyVASARenderVideo" and error["node_id"] == RENDER_ID
    assert error["exception_message"].startswith("JoyVASA Render Video: filename_prefix ")
    assert len(error["exception_message"]) < 400
    prompt = render_prompt(inputs["portrait"], inputs["speech.wav"], batch_size=4)
    prompt["5"]["inputs"].update(crop="box", box_x=10, box_y=10, box_w=16384, box_h=16384)
    error = _failed(comfyui, prompt)
    assert error["node_type"] == "JoyVASALoadReferenceFace"
    assert "the box lies mostly outside the" in error["exception_message"], error["exception_message"]
    assert _outputs(comfyui) == before
    print(f"render cases: {time.monotonic() - t0:.1f} s")
