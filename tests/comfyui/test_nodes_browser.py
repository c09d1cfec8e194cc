"""The shipped workflows in the real ComfyUI web UI (headless Chromium at 1920x1080): every node type is known, the
frontend saves each back with the same widgets and links, the prompt it queues is the one the headless tests run
(ui_to_api), and the layout reads at 100% from the saved view: scale 1, the first column clear of the side bar,
no node over another, no node smaller than its widgets need, the whole graph on screen (a grouped one: each group,
see browser_layout.group_problems); and again once the photo is loaded and a run's players and preview images are
shown (the sizes a user sees after Run). A screenshot of each is kept
in the test's ComfyUI base folder (``<pytest tmp>/comfyui_base*/workflow_<name>.png``).

Needs Debian's chromium + chromium-driver and comfyui-frontend-package (scripts/setup_comfyui.sh installs them);
``JOYVASA_COMFYUI_BROWSER=0`` skips it.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from browser_layout import COVERED_POINTS, problems_at_saved_view
from comfyui_harness import free_port
from fixture_support import fixture_dir
from ui_driver import PLAYERS_READY, node_js, upload_template_inputs
from ui_to_api import convert
from webdriver import Browser, require_browser

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
UI_ONLY_INPUTS = {"audioUI"}  # the frontend's audio player widget on LoadAudio; the server ignores it
SCREEN = (1920, 1080)
# the workflows tools/make_workflows.py lays out on a grid for this screen (all of them)
LAID_OUT = {"joyvasa_talking_portrait", "joyvasa_talking_portrait_frames", "joyvasa_animal", "joyvasa_two_faces",
            "joyvasa_reuse_motion", "joyvasa_motion_material"}

pytestmark = pytest.mark.comfyui

LOAD_AND_EXPORT = COVERED_POINTS + """
const workflow = JSON.parse(arguments[0]);
await window.app.loadGraphData(workflow);
await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
const canvas = window.app.canvas;
const types = window.app.graph._nodes.map((n) => n.type);
const unknown = types.filter((t) => !window.LiteGraph.registered_node_types[t]);
const nodes = window.app.graph._nodes.map((n) => ({
    id: n.id, type: n.type, bounds: Array.from(n.getBounding()), size: Array.from(n.size),
    needs: Array.from(n.computeSize()),
}));
const bar = document.querySelector(".side-tool-bar-container");
const rect = canvas.canvas.getBoundingClientRect();
const covered = coveredPoints(false);
const view = {scale: canvas.ds.scale, offset: Array.from(canvas.ds.offset), left: rect.left, top: rect.top,
              sidebar: bar ? bar.getBoundingClientRect().right : 0, width: window.innerWidth,
              height: window.innerHeight};
const saved = window.app.graph.serialize();
const prompt = await window.app.graphToPrompt();
const alerts = Array.from(document.querySelectorAll(".p-toast-message")).map((e) => e.innerText);
return JSON.stringify({unknown, types, nodes, view, covered, alerts, saved, output: prompt.output});
"""


@pytest.fixture(scope="module")
def browser(comfyui):
    require_browser(comfyui)
    with Browser(free_port(), window=SCREEN) as b:
        b.open(comfyui.url + "/")
        b.wait_for("return !!(window.app && window.app.graph && window.LiteGraph)", "the ComfyUI web app")
        yield b


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_web_ui_loads_the_workflow_readable_and_queues_the_same_prompt(comfyui, browser, workflow):
    shipped = json.loads(workflow.read_text(encoding="utf-8"))
    result = json.loads(browser.js_async(LOAD_AND_EXPORT, json.dumps(shipped)))
    browser.screenshot(comfyui.base / f"workflow_{workflow.stem}.png")
    assert result["unknown"] == []
    assert result["alerts"] == [], "the frontend complained while loading the workflow"
    assert sorted(result["types"]) == sorted(n["type"] for n in shipped["nodes"])
    saved = {n["id"]: n for n in result["saved"]["nodes"]}
    for node in shipped["nodes"]:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]].get("widgets_values") == node["widgets_values"], node["type"]
    if workflow.stem in LAID_OUT:
        assert sorted(map(tuple, result["saved"]["links"])) == sorted(map(tuple, shipped["links"]))
    queued = {k: (node["class_type"], {n: v for n, v in node["inputs"].items() if n not in UI_ONLY_INPUTS})
              for k, node in result["output"].items()}
    ours = {k: (node["class_type"], node["inputs"]) for k, node in convert(shipped, comfyui.object_info()).items()}
    assert queued == ours

    if workflow.stem not in LAID_OUT or shipped["groups"]:  # a grouped one: group_problems, once loaded
        return
    view, nodes = result["view"], result["nodes"]
    assert view["scale"] == 1, "the saved view must open at 100%"
    for n in nodes:
        assert n["size"][0] >= n["needs"][0] - 1 and n["size"][1] >= n["needs"][1] - 1, f"{n['type']} is cut: {n}"
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            assert not _overlap(a["bounds"], b["bounds"]), f"{a['type']} {a['id']} overlaps {b['type']} {b['id']}"

    def screen(x: float, y: float) -> tuple[float, float]:
        scale, (dx, dy) = view["scale"], view["offset"]
        return (x + dx) * scale + view["left"], (y + dy) * scale + view["top"]

    left, top = screen(min(n["bounds"][0] for n in nodes), min(n["bounds"][1] for n in nodes))
    right, bottom = screen(max(n["bounds"][0] + n["bounds"][2] for n in nodes),
                           max(n["bounds"][1] + n["bounds"][3] for n in nodes))
    assert left > view["sidebar"], f"the first column starts at x={left:.0f}, under the side bar ({view['sidebar']})"
    assert top >= view["top"] and right <= view["width"] and bottom <= view["height"], (left, top, right, bottom, view)
    assert result["covered"] == [], "parts of nodes are hidden under the UI's panels at the saved view"


# laid out for what a user sees once a photo is picked and a run is done: on one screen, or in ComfyUI groups
# (browser_layout.group_problems says the rule)
LOADED = sorted(LAID_OUT)

# The state after a run without running: each node of the pack that streams preview frames while it renders (a
# ProgressBar preview: joyvasa_core.pipeline.render_frames through nodes/progress.py) gets its last one, as ComfyUI
# sends it (JPEG, its longest side PREVIEW_SIZE); each video node a finished run's output (what the "executed"
# message gives it: Render Video's drops its previews for the player), each Preview Image the image its source makes
# (the crop, the Motion Preview plot), Save Motion its saved-file line; the frontend then draws the players and
# images as after a real run. Warp and Render has no output to show: its last preview frame stays.
LIVE_PREVIEW = ["JoyVASAWarpAndRender", "JoyVASARenderVideo"]
PREVIEW_SIZE = 512  # nodes/progress.py's: the preview's longest side, as ComfyUI's server fits it
SHOW_RUN = """
const [video, motion, images, previews, livePreview] = arguments;
const viewUrl = (file) => `/api/view?${new URLSearchParams(file)}`;
for (const node of window.app.graph._nodes) {
    if (livePreview.includes(node.type)) {  // the last frame the render sent: its photo's (paste back) or the crop
        const photo = node.getInputNode(node.findInputSlot("face"))?.getInputNode(0)?.widgets?.[0]?.value;
        const pasteBack = node.widgets.find((w) => w.name === "paste_back")?.value;
        window.app.nodePreviewImages[String(node.id)] = [viewUrl(previews[pasteBack ? photo : "crop"])];
    }
    if (node.type === "JoyVASARenderVideo" || node.type === "SaveVideo") {
        const output = {images: [video], animated: [true]};
        window.app.nodeOutputs[String(node.id)] = output;
        if (node.type === "JoyVASARenderVideo") node.onExecuted(output);  // as the "executed" message does
    }
    if (node.type === "PreviewImage")
        window.app.nodeOutputs[String(node.id)] = {images: [images[node.getInputNode(0).type]]};
    if (node.type === "JoyVASASaveMotion") node.onExecuted({motion: [motion]});
}
window.app.graph.setDirtyCanvas(true, true);
"""


@pytest.fixture(scope="module")
def run_output(comfyui, tmp_path_factory) -> dict:
    """The templates' input files, and a finished run's square mp4 and preview images in output/JoyVASA/."""
    work = tmp_path_factory.mktemp("layout_inputs")
    fixtures = fixture_dir()
    upload_template_inputs(comfyui, work, fixtures / "astronaut.png", fixtures / "speech_en_16k.wav",
                           fixtures / "chelsea.png")
    folder = comfyui.base / "output" / "JoyVASA"
    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(folder / "layout_00001_.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 512
        stream.pix_fmt = "yuv420p"
        for i in range(25):
            frame = np.full((512, 512, 3), 8 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    assert comfyui.upload(folder / "layout_00001_.mp4", name="driving.mp4") == "driving.mp4"  # Load Video's pick
    # the crop (square) and the Motion Preview plot (1024 x 760, six panels and the axis) a run shows
    images = {"JoyVASALoadReferenceFace": ("crop_00001_.png", (512, 512)),
              "JoyVASAMotionPreview": ("plot_00001_.png", (760, 1024))}
    for name, shape in images.values():
        cv2.imwrite(str(folder / name), np.full((*shape, 3), 200, np.uint8))
    # the render nodes' last preview frame: the photo's size pasted back, else the 512 crop
    frames = {name: cv2.imread(str(comfyui.base / "input" / name)).shape[:2]
              for name in ("portrait.png", "portrait_b.png", "animal.png")}
    previews = {}
    for name, shape in {**frames, "crop": (512, 512)}.items():
        previews[name] = {"filename": f"preview_{Path(name).stem}.jpg", "subfolder": "JoyVASA", "type": "output"}
        cv2.imwrite(str(folder / previews[name]["filename"]), np.full((*preview_shape(*shape), 3), 90, np.uint8))
    return {"video": {"filename": "layout_00001_.mp4", "subfolder": "JoyVASA", "type": "output"},
            "images": {source: {"filename": name, "subfolder": "JoyVASA", "type": "output"}
                       for source, (name, _) in images.items()},
            "previews": previews}


def preview_shape(height: int, width: int) -> tuple[int, int]:
    """The (height, width) of a preview frame as ComfyUI sends it: fitted (up or down) into PREVIEW_SIZE square."""
    scale = PREVIEW_SIZE / max(height, width)
    return round(height * scale), round(width * scale)


@pytest.mark.parametrize("name", LOADED)
def test_template_reads_once_the_photo_is_loaded_and_a_run_is_shown(comfyui, browser, run_output, name):
    shipped = (REPO / "workflows" / f"{name}.json").read_text(encoding="utf-8")
    browser.js_async("await window.app.loadGraphData(JSON.parse(arguments[0]));", shipped)
    browser.wait_for(f"const n = {node_js('LoadImage')}; return n.imgs?.[0]?.complete", f"{name}'s photo")
    motion = {"filename": "motion_00001_.safetensors", "subfolder": "JoyVASA", "type": "output"}
    browser.js(SHOW_RUN, run_output["video"], motion, run_output["images"], run_output["previews"], LIVE_PREVIEW)

    def settle() -> None:
        browser.wait_for(PLAYERS_READY, f"{name}'s players")
        browser.js_async("await new Promise((r) => setTimeout(r, 500));")  # the nodes grow on the next frames

    settle()
    browser.screenshot(comfyui.base / f"loaded_{name}.png")
    problems = problems_at_saved_view(browser, settle)
    assert problems == [], "\n".join(problems)
