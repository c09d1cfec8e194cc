"""The shipped workflow in the real ComfyUI web UI (headless Chromium): every node type is known, the frontend saves
it back with the same widgets and links, and the prompt it queues is the one the headless tests run (ui_to_api).

Needs Debian's chromium + chromium-driver and comfyui-frontend-package (scripts/setup_comfyui.sh installs them);
``JOYVASA_COMFYUI_BROWSER=0`` skips it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from comfyui_harness import free_port
from ui_to_api import convert
from webdriver import Browser, require_browser

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "joyvasa_talking_portrait.json"
UI_ONLY_INPUTS = {"audioUI"}  # the frontend's audio player widget on LoadAudio; the server ignores it

pytestmark = pytest.mark.comfyui

LOAD_AND_EXPORT = """
const workflow = JSON.parse(arguments[0]);
await window.app.loadGraphData(workflow);
const types = window.app.graph._nodes.map((n) => n.type);
const unknown = types.filter((t) => !window.LiteGraph.registered_node_types[t]);
const saved = window.app.graph.serialize();
const prompt = await window.app.graphToPrompt();
return JSON.stringify({unknown, types, saved, output: prompt.output});
"""


def test_web_ui_loads_the_shipped_workflow_and_queues_the_same_prompt(comfyui):
    require_browser(comfyui)
    shipped = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    with Browser(free_port()) as browser:
        browser.open(comfyui.url + "/")
        browser.wait_for("return !!(window.app && window.app.graph && window.LiteGraph)", "the ComfyUI web app")
        result = json.loads(browser.js_async(LOAD_AND_EXPORT, json.dumps(shipped)))
        browser.screenshot(comfyui.base / "workflow.png")
    assert result["unknown"] == []
    assert sorted(result["types"]) == sorted(n["type"] for n in shipped["nodes"])
    saved = {n["id"]: n for n in result["saved"]["nodes"]}
    for node in shipped["nodes"]:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]].get("widgets_values") == node["widgets_values"], node["type"]
    assert sorted(map(tuple, result["saved"]["links"])) == sorted(map(tuple, shipped["links"]))
    queued = {k: (node["class_type"], {n: v for n, v in node["inputs"].items() if n not in UI_ONLY_INPUTS})
              for k, node in result["output"].items()}
    ours = {k: (node["class_type"], node["inputs"]) for k, node in convert(shipped, comfyui.object_info()).items()}
    assert queued == ours
