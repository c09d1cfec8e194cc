"""The motion-as-material nodes inside a real ComfyUI: the shipped workflow (speech lips + a driving mp4's head, mixed,
edited, blinked, crossfaded into a LivePortrait driving template, previewed, exported and rendered) runs end to end,
its API-format twin is what the UI file converts to, and a hostile .pkl is refused by the node that met it."""

from __future__ import annotations

import json
import math
import os
import pickle
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import soundfile as sf
import torch
from fixture_support import fixture_dir
from model_folders import write_joyvasa, write_liveportrait
from ui_to_api import convert

from joyvasa_core.checkpoints.driving_template import read_driving_template
from joyvasa_core.keypoints import rotation_matrix
from joyvasa_core.motion.preview import AXIS_HEIGHT, PANEL_HEIGHT, PANELS
from joyvasa_core.video import VideoWriter

REPO = Path(__file__).resolve().parents[2]
FIXTURES = fixture_dir()
WORKFLOW = REPO / "workflows" / "joyvasa_motion_material.json"
API_TWIN = REPO / "workflows" / "api" / "joyvasa_motion_material.json"
CLIP_SECONDS = 0.6  # of the fixture speech: 18 frames, enough to mix, blink and crossfade
VIDEO_FRAMES = 3
TEMPLATE_FRAMES = 10
NEW_NODES = ("JoyVASAMotionFromVideo", "JoyVASAMixMotion", "JoyVASAEditMotion", "JoyVASAFitMotion",
             "JoyVASACrossfadeMotion", "JoyVASAAddBlinks", "JoyVASAMotionPreview", "JoyVASAExportDrivingTemplate",
             "JoyVASALoadDrivingTemplate")

pytestmark = pytest.mark.comfyui


def _template(n: int) -> dict:
    """A driving template in LivePortrait's own layout (R, exp, t, scale, kp, x_s per frame, ratio lists)."""
    g = torch.Generator().manual_seed(5)
    angles = torch.randn(n, 3, generator=g) * 5
    R = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]).numpy()
    frames = [{"scale": np.full((1, 1), 1.5, np.float32), "R": R[i : i + 1],
               "exp": (torch.randn(1, 21, 3, generator=g) * 0.02).numpy(), "t": np.zeros((1, 3), np.float32),
               "kp": np.zeros((1, 21, 3), np.float32), "x_s": np.zeros((1, 21, 3), np.float32)} for i in range(n)]
    return {"n_frames": n, "output_fps": 25, "motion": frames,
            "c_eyes_lst": [np.full((1, 2), 0.3, np.float32)] * n, "c_lip_lst": [np.zeros((1, 1), np.float32)] * n}


class _RunsCode:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def installed(comfyui, tmp_path_factory) -> dict:
    t0 = time.monotonic()
    write_liveportrait(comfyui.base / "models", "official")
    write_joyvasa(comfyui.base / "models")
    work = tmp_path_factory.mktemp("motion_inputs")
    wave, rate = sf.read(str(FIXTURES / "speech_en_16k.wav"), dtype="int16")
    speech = work / "speech.wav"
    sf.write(str(speech), wave[: int(CLIP_SECONDS * rate)], rate, subtype="PCM_16")
    face = cv2.cvtColor(cv2.imread(str(FIXTURES / "astronaut.png")), cv2.COLOR_BGR2RGB)
    drive = work / "driving.mp4"  # a real face photo panning, written as a real mp4
    with VideoWriter(drive, fps=25) as writer:
        frames = [cv2.warpAffine(face, np.float32([[1, 0, 4 * i], [0, 1, 3 * i]]), face.shape[1::-1])
                  for i in range(VIDEO_FRAMES)]
        writer.write(torch.from_numpy(np.stack(frames)))
    template = work / "driving_template.pkl"
    template.write_bytes(pickle.dumps(_template(TEMPLATE_FRAMES)))
    marker = work / "pwned"
    hostile_raw = _template(2)
    hostile_raw["motion"][1]["exp"] = _RunsCode(f"touch {marker}")
    hostile = work / "hostile.pkl"
    hostile.write_bytes(pickle.dumps(hostile_raw))
    names = {p.name: comfyui.upload(p) for p in (speech, drive, template, hostile)}
    names["portrait"] = comfyui.upload(FIXTURES / "astronaut.png", name="portrait.png")
    assert names["driving.mp4"] == "driving.mp4" and names["driving_template.pkl"] == "driving_template.pkl"
    print(f"motion inputs installed in {time.monotonic() - t0:.1f} s")
    return {"names": names, "marker": marker,
            "frames": math.floor((sf.info(str(speech)).frames + 1920) / 640)}


def _messages(entry: dict, kind: str) -> list[dict]:
    return [m[1] for m in entry["status"]["messages"] if m[0] == kind]


def _ids(prompt: dict, class_type: str) -> list[str]:
    return [k for k, v in prompt.items() if v["class_type"] == class_type]


def test_api_twin_is_the_ui_workflow(comfyui, installed):
    ui = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    assert convert(ui, comfyui.object_info()) == json.loads(API_TWIN.read_text(encoding="utf-8"))


def test_motion_workflow_runs_every_new_node(comfyui, installed):
    prompt = json.loads(API_TWIN.read_text(encoding="utf-8"))
    for node in NEW_NODES:
        assert len(_ids(prompt, node)) == 1, f"{node} is not in the shipped workflow"
    t0 = time.monotonic()
    entry = comfyui.run(prompt, timeout=900)
    errors = _messages(entry, "execution_error")
    assert entry["status"]["status_str"] == "success", errors[0]["exception_message"] if errors else entry["status"]
    speech_frames = installed["frames"]
    overlap = min(12, TEMPLATE_FRAMES, speech_frames)
    want = speech_frames + TEMPLATE_FRAMES - overlap
    (export_id,) = _ids(prompt, "JoyVASAExportDrivingTemplate")
    (saved,) = entry["outputs"][export_id]["motion"]
    motion = read_driving_template(comfyui.output_path(saved))
    assert motion.n_frames == want and motion.fps == 25
    edits = " ".join(motion.settings["edits"])
    assert "mix(head" in edits and "offset(0,5,0)" in edits and "crossfade" in edits, edits
    assert motion.settings["pose_offset"] == [0.0, 5.0, 0.0]
    preview_ids = [k for k in _ids(prompt, "PreviewImage") if prompt[k]["inputs"]["images"][0] in
                   _ids(prompt, "JoyVASAMotionPreview")]
    (plot,) = entry["outputs"][preview_ids[0]]["images"]
    img = cv2.imread(str(comfyui.output_path(plot)))
    assert img.shape == ((len(PANELS) + 1) * PANEL_HEIGHT + AXIS_HEIGHT, 1024, 3)
    (video_id,) = _ids(prompt, "SaveVideo")
    (video,) = entry["outputs"][video_id]["images"]
    with av.open(str(comfyui.output_path(video))) as container:
        n = sum(1 for _ in container.decode(video=0))
    assert n == want
    print(f"motion workflow: {want} frames in {time.monotonic() - t0:.1f} s")


def test_hostile_template_is_refused_by_the_node(comfyui, installed):
    prompt = {
        "1": {"class_type": "JoyVASALoadDrivingTemplate",
              "inputs": {"template_file": installed["names"]["hostile.pkl"]}},
        "2": {"class_type": "JoyVASAExportDrivingTemplate", "inputs": {"motion": ["1", 0], "filename_prefix": "x"}},
    }
    entry = comfyui.run(prompt, timeout=300)
    assert entry["status"]["status_str"] == "error"
    (error,) = _messages(entry, "execution_error")
    assert error["node_type"] == "JoyVASALoadDrivingTemplate"
    message = error["exception_message"]
    assert message.startswith("JoyVASA Load Driving Template: driving template"), message
    assert "refused to unpickle it" in message and "system" in message, message
    assert not installed["marker"].exists(), "the hostile pickle ran"
