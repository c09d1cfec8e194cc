"""Doing in the real web UI what a user does: open a shipped template from Templates, pick a value in a node's
widget, click Run and wait for the run, see what Render Video plays. Shared by the browser tests and
tools/make_template_media.py."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

RUN_TIMEOUT_S = 900.0

# Sets a widget as a user's pick does (the value, then the widget's callback); a combo only to a listed value.
PICK = """
const node = window.app.graph._nodes.find((n) => n.type === arguments[0]);
const widget = node.widgets.find((w) => w.name === arguments[1]);
if (widget.options.values && !widget.options.values.includes(arguments[2])) return widget.options.values;
widget.value = arguments[2];
widget.callback?.(arguments[2]);
window.app.graph.setDirtyCanvas(true, true);
return true;
"""
OPEN_TEMPLATE = """
const card = Array.from(document.querySelectorAll("[role=dialog] h3")).find((e) => e.innerText === arguments[0]);
card.closest(".cursor-pointer").click();
"""
# Page code: the nodes in view (the frontend loads a node's player or image only once the node is in view).
IN_VIEW = """
const [x, y, w, h] = window.app.canvas.visible_area;
const seen = window.app.graph._nodes.filter((n) => {
    const [nx, ny, nw, nh] = n.getBounding();
    return nx < x + w && x < nx + nw && ny < y + h && y < ny + nh;
});
"""
VIDEO_NODES = '["JoyVASARenderVideo", "SaveVideo", "LoadVideo"]'
# the players and images of the nodes in view loaded
PLAYERS_READY = IN_VIEW + f"""
const nodes = seen.filter((n) => {VIDEO_NODES}.includes(n.type));
const previews = seen.filter((n) => n.type === "PreviewImage");
return nodes.every((n) => n.videoContainer?.querySelector("video")?.readyState >= 2) &&
    previews.every((n) => n.imgs?.[0]?.complete && n.imgs[0].naturalWidth > 0);
"""
# the ids of the video nodes in view
VIDEOS_IN_VIEW = IN_VIEW + f"return seen.filter((n) => {VIDEO_NODES}.includes(n.type)).map((n) => String(n.id));"


def node_js(node_type: str) -> str:
    """A page expression: the open graph's first node of ``node_type``."""
    return f"window.app.graph._nodes.find((n) => n.type === '{node_type}')"


def open_app(browser, url: str) -> None:
    browser.open(url + "/")
    browser.wait_for("return !!(window.app && window.app.graph && window.LiteGraph)", "the ComfyUI web app")


def open_template(browser, name: str) -> None:
    """Templates in the side bar, then the template's card, as a user does; waits until its graph is open."""
    browser.js("document.querySelector('.templates-tab-button').click()")
    browser.wait_for(f"return Array.from(document.querySelectorAll('[role=dialog] h3'))"
                     f".some((e) => e.innerText === '{name}')", f"{name} in Templates")
    browser.js(OPEN_TEMPLATE, name)
    browser.wait_for("return !document.querySelector('[role=dialog]') && "
                     "window.app.graph._nodes.some((n) => n.type.startsWith('JoyVASA'))", f"{name} on the canvas")


def pick(browser, node_type: str, widget: str, value) -> None:
    """Picks ``value`` in the first ``node_type`` node's ``widget``; a combo must list it."""
    answer = browser.js(PICK, node_type, widget, value)
    assert answer is True, f"{node_type}.{widget} does not offer {value!r}: {answer}"


def click_run(comfyui, browser, timeout: float = RUN_TIMEOUT_S) -> dict:
    """Clicks Run; returns the new /history entry once the run finished successfully."""
    before = set(comfyui.request("GET", "/history"))
    browser.js("Array.from(document.querySelectorAll('button')).find((e) => e.innerText.trim() === 'Run').click()")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        new = set(comfyui.request("GET", "/history")) - before
        if new:
            (prompt_id,) = new
            entry = comfyui.wait(prompt_id, timeout)
            assert entry["status"]["status_str"] == "success", entry["status"]["messages"][-1:]
            return entry
        time.sleep(0.25)
    raise TimeoutError(f"the Run click queued nothing:\n{comfyui.log_tail()}")


def videos(entry: dict) -> dict[str, dict]:
    """The mp4 each node of a /history entry wrote: {node id: {filename, subfolder, type}}."""
    return {node: out["images"][0] for node, out in entry["outputs"].items()
            if out.get("images") and out["images"][0]["filename"].endswith(".mp4")}


def plays(browser, node_id: str, filename: str, timeout: float = 30.0) -> str:
    """Waits until node ``node_id``'s player has loaded ``filename``; returns the player's source URL."""
    return browser.wait_for(f"const node = window.app.graph.getNodeById({node_id});"
                            "const video = node?.videoContainer?.querySelector('video');"
                            f"return video && video.readyState >= 2 && video.src.includes('filename={filename}&') "
                            "? video.src : null;", f"node {node_id} playing {filename}", timeout=timeout)


def upload_template_inputs(server, work: Path, photo: Path, speech: Path, animal: Path) -> None:
    """Uploads the file names the shipped templates hold: portrait.png (``photo``), portrait_b.png (``photo``
    mirrored, 1/13 narrower: another framing), animal.png and speech.wav."""
    image = cv2.imread(str(photo))
    cv2.imwrite(str(work / "portrait_b.png"), cv2.flip(image, 1)[:, image.shape[1] * 40 // 512 :])
    for path, name in ((photo, "portrait.png"), (work / "portrait_b.png", "portrait_b.png"), (animal, "animal.png"),
                       (speech, "speech.wav")):
        assert server.upload(path, name=name) == name
