"""The harness itself works end to end on ComfyUI's built-in nodes: upload to input/, a UI-format workflow converted
by ui_to_api (Reroute, bypassed node, Note), run to /history, the output file on disk, and validation errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from comfyui_harness import PromptRejected
from fixture_support import fixture_dir
from ui_to_api import convert

IMAGE = fixture_dir() / "chelsea.png"

pytestmark = pytest.mark.comfyui


def _link(link_id, src, src_slot, dst, dst_slot, kind):
    return [link_id, src, src_slot, dst, dst_slot, kind]


def _workflow(image_name: str) -> dict:
    """LoadImage -> Reroute -> ImageInvert -> ImageInvert (bypassed) -> SaveImage, plus a Note: one real inversion."""
    image_in = [{"name": "image", "type": "IMAGE", "link": None}]
    nodes = [
        {"id": 1, "type": "LoadImage", "mode": 0, "inputs": [], "widgets_values": [image_name, "image"]},
        {"id": 2, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 1}]},
        {"id": 3, "type": "ImageInvert", "mode": 0, "inputs": [dict(image_in[0], link=2)], "widgets_values": []},
        {"id": 4, "type": "ImageInvert", "mode": 4, "inputs": [dict(image_in[0], link=3)], "widgets_values": []},
        {"id": 5, "type": "SaveImage", "mode": 0, "inputs": [dict(image_in[0], name="images", link=4)],
         "widgets_values": ["t/inv"]},
        {"id": 6, "type": "Note", "mode": 0, "inputs": [], "widgets_values": ["not executed"]},
    ]
    links = [_link(1, 1, 0, 2, 0, "IMAGE"), _link(2, 2, 0, 3, 0, "IMAGE"), _link(3, 3, 0, 4, 0, "IMAGE"),
             _link(4, 4, 0, 5, 0, "IMAGE")]  # fmt: skip
    return {"nodes": nodes, "links": links, "version": 0.4}


def test_ui_workflow_converts_like_the_frontend(comfyui):
    prompt = convert(_workflow("x.png"), comfyui.object_info())
    assert {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()} == {
        "1": ("LoadImage", {"image": "x.png"}),
        "3": ("ImageInvert", {"image": ["1", 0]}),
        "5": ("SaveImage", {"filename_prefix": "t/inv", "images": ["3", 0]}),
    }


def test_upload_run_and_read_output(comfyui):
    name = comfyui.upload(IMAGE, subfolder="harness")
    assert name == f"harness/{IMAGE.name}"
    assert (comfyui.base / "input" / "harness" / IMAGE.name).read_bytes() == IMAGE.read_bytes()
    entry = comfyui.run(convert(_workflow(name), comfyui.object_info()), timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = entry["outputs"]["5"]["images"]
    assert len(saved) == 1 and saved[0]["type"] == "output"
    source = cv2.imread(str(IMAGE), cv2.IMREAD_COLOR).astype(np.int16)
    result = cv2.imread(str(comfyui.output_path(saved[0])), cv2.IMREAD_COLOR).astype(np.int16)
    assert result.shape == source.shape
    assert np.abs(result - (255 - source)).max() <= 1  # SaveImage truncates 255 * (1 - x / 255)


def test_invalid_prompt_is_rejected_with_node_errors(comfyui):
    bad = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "no_such_file.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t/bad"}},
    }
    with pytest.raises(PromptRejected) as err:
        comfyui.queue(bad)
    assert err.value.status == 400
    assert err.value.body["error"]["type"] == "prompt_outputs_failed_validation"
    assert "1" in err.value.body["node_errors"]
