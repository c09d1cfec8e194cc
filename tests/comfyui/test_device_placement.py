"""Every entry point runs its networks on the execution device: each network-running node inside ComfyUI's real
memory manager (models unloaded before each node), a JoyVASA Live session (models unloaded before it opens and between
its steps), and the command line (tests/test_device_placement_core.py: the batch and live front ends).
``device_probe.py`` runs them in a child process (it imports ComfyUI's ``comfy``) with a forward-pre-hook on every
module; here the records are checked.

On this CPU-only machine the load and offload devices are both the CPU, so "on the execution device" is checked as
ComfyUI itself knows it: the network's ModelPatcher is among the loaded models and its parameters are on the patcher's
load device when the network runs. A node that skips ``on_device`` runs its networks while unloaded: on a GPU that is
the offload device (the CPU) or a device mismatch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import soundfile as sf
from comfyui_harness import COMFYUI_DIR
from fixture_support import fixture_path
from model_folders import write_joyvasa, write_liveportrait

pytestmark = pytest.mark.comfyui
PROBE = Path(__file__).with_name("device_probe.py")
NETWORK_NODES = ("Extract Appearance", "Encode Audio", "Sample Motion Diffusion", "Sample Motion (old name)",
                 "Compute Target Keypoints", "Warp and Render", "Render Video", "Motion From Video", "Live",
                 "Live session")
CLIP_SECONDS = 0.3


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[dict]:
    if os.environ.get("JOYVASA_SKIP_COMFYUI") == "1":
        pytest.skip("JOYVASA_SKIP_COMFYUI=1")
    work = tmp_path_factory.mktemp("device")
    models = work / "models"
    write_liveportrait(models, "official")
    write_joyvasa(models)
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    speech = work / "speech.wav"
    sf.write(str(speech), wave[: int(CLIP_SECONDS * rate)], rate, subtype="PCM_16")
    image = work / "portrait.png"
    cv2.imwrite(str(image), cv2.imread(str(fixture_path("astronaut.png"))))
    env = dict(os.environ, PYTHONPATH=str(COMFYUI_DIR), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(PROBE), str(work), str(models), str(image), str(speech)],
                          cwd=COMFYUI_DIR, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("entry", NETWORK_NODES)
def test_node_runs_its_networks_loaded_on_the_execution_device(records, entry):
    ran = [r for r in records if r["entry"] == entry and r["managed"]]
    assert ran, f"{entry}: no network of the memory manager ran"
    offloaded = sorted({r["module"] for r in ran if not r["loaded"]})
    assert offloaded == [], (f"{entry} ran {offloaded} without loading them through ComfyUI's memory manager "
                             "(nodes.memory.on_device): on a GPU they would run on the offload device")
    assert {(r["param"], r["input"]) for r in ran} == {("cpu", "cpu")}


def test_command_line_runs_every_network_on_the_requested_device(records):
    assert [r["code"] for r in records if r["entry"] == "command line exit"] == [0]
    ran = [r for r in records if r["entry"] == "command line"]
    modules = {r["module"] for r in ran}
    assert {"AppearanceFeatureExtractor", "MotionExtractor", "WarpingNetwork", "SPADEDecoder"} <= modules, modules
    assert {(r["param"], r["input"]) for r in ran} == {("cpu", "cpu")}
