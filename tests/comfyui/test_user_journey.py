"""A new user's first runs, in the real web UI (headless Chromium at 1920x1080) against the real ComfyUI: open the
main template from Templates, pick the example photo and speech with the loaders' combos, Run. Render Video must
then play the file that run wrote; a second run with nothing changed must be served from ComfyUI's cache for every
node of the pack (the player the frontend added must not change the prompt); a new seed must re-render and the
player must show the new file. The layout is measured as the user sees it: after the photo is picked and after the
runs (images and player at their real size). One browser session for the whole journey (three runs, ~1-2 min).

Needs Debian's chromium + chromium-driver and comfyui-frontend-package; ``JOYVASA_COMFYUI_BROWSER=0`` skips it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from browser_layout import layout_problems, measure
from comfyui_harness import free_port
from model_folders import write_joyvasa, write_liveportrait
from render_prompts import write_speech
from webdriver import Browser, require_browser

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "joyvasa_core" / "examples"
TEMPLATE = "joyvasa_talking_portrait"
PHOTO, SPEECH = "example_portrait.png", "example_speech.wav"  # names the template does not hold: the user picks
SPEECH_S = 0.8
SCREEN = (1920, 1080)
RUN_TIMEOUT_S = 600.0

pytestmark = pytest.mark.comfyui



def node_js(node_type: str) -> str:
    """A page expression: the open graph's first node of ``node_type``."""
    return f"window.app.graph._nodes.find((n) => n.type === '{node_type}')"


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


@pytest.fixture(scope="module")
def inputs(comfyui, tmp_path_factory) -> None:
    write_liveportrait(comfyui.base / "models", "official")
    write_joyvasa(comfyui.base / "models")
    speech = write_speech(EXAMPLES / "speech.wav", SPEECH_S, tmp_path_factory.mktemp("journey") / SPEECH)
    assert comfyui.upload(EXAMPLES / "portrait.png", name=PHOTO) == PHOTO
    assert comfyui.upload(speech, name=SPEECH) == SPEECH


def _history_ids(comfyui) -> set[str]:
    return set(comfyui.request("GET", "/history"))


def _run(comfyui, browser) -> dict:
    """Click Run as a user does; returns the new /history entry once the run finished successfully."""
    before = _history_ids(comfyui)
    browser.js("Array.from(document.querySelectorAll('button')).find((e) => e.innerText.trim() === 'Run').click()")
    end = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < end:
        new = _history_ids(comfyui) - before
        if new:
            (prompt_id,) = new
            entry = comfyui.wait(prompt_id, RUN_TIMEOUT_S)
            assert entry["status"]["status_str"] == "success", entry["status"]["messages"][-1:]
            return entry
        time.sleep(0.25)
    raise TimeoutError(f"the Run click queued nothing:\n{comfyui.log_tail()}")


def _video_file(entry: dict, render_id: str) -> str:
    (video,) = entry["outputs"][render_id]["images"]
    assert video["filename"].endswith(".mp4") and entry["outputs"][render_id]["animated"] == [True]
    return video["filename"]


def _cached(entry: dict) -> set[str]:
    return {n for kind, data in entry["status"]["messages"] if kind == "execution_cached" for n in data["nodes"]}


def _plays(browser, filename: str) -> str:
    """Waits until Render Video's player has loaded ``filename``; returns the player's source URL."""
    return browser.wait_for(f"const video = {node_js('JoyVASARenderVideo')}?.videoContainer?.querySelector('video');"
                            f"return video && video.readyState >= 2 && video.src.includes('filename={filename}&') "
                            "? video.src : null;", f"the player of {filename}", timeout=30)


def test_main_template_plays_each_run_caches_an_unchanged_one_and_reads_at_every_step(comfyui, inputs):
    require_browser(comfyui)
    t0 = time.monotonic()
    with Browser(free_port(), window=SCREEN) as browser:
        browser.open(comfyui.url + "/")
        browser.wait_for("return !!(window.app && window.app.graph && window.LiteGraph)", "the ComfyUI web app")
        browser.js("document.querySelector('.templates-tab-button').click()")
        browser.wait_for(f"return Array.from(document.querySelectorAll('[role=dialog] h3'))"
                         f".some((e) => e.innerText === '{TEMPLATE}')", "the pack's templates in Templates")
        browser.js(OPEN_TEMPLATE, TEMPLATE)
        browser.wait_for("return !document.querySelector('[role=dialog]') && window.app.graph._nodes"
                         ".some((n) => n.type === 'JoyVASARenderVideo')", "the template on the canvas")
        pack = {str(n["id"]) for n in measure(browser)["nodes"] if n["type"].startswith("JoyVASA")}
        (render_id,) = [str(n["id"]) for n in measure(browser)["nodes"] if n["type"] == "JoyVASARenderVideo"]

        assert browser.js(PICK, "LoadImage", "image", PHOTO) is True
        assert browser.js(PICK, "LoadAudio", "audio", SPEECH) is True
        browser.wait_for(f"const n = {node_js('LoadImage')}; return n.imgs?.[0]?.src.includes('{PHOTO}') && "
                         "n.imgs[0].complete", "the picked photo in Load Image")
        time.sleep(0.5)  # the node grows to the photo on the next frames
        browser.screenshot(comfyui.base / f"journey_{TEMPLATE}_picked.png")
        assert layout_problems(measure(browser)) == [], "after the photo is picked"

        first = _video_file(_run(comfyui, browser), render_id)
        _plays(browser, first)

        again = _run(comfyui, browser)
        assert pack <= _cached(again), f"not served from the cache: {sorted(pack - _cached(again))}"
        assert _video_file(again, render_id) == first
        _plays(browser, first)

        seed = browser.js(f"return {node_js('JoyVASASampleMotionDiffusion')}.widgets.find((w) => w.name === 'seed')"
                          ".value")
        assert browser.js(PICK, "JoyVASASampleMotionDiffusion", "seed", seed + 1) is True
        changed = _run(comfyui, browser)
        assert render_id not in _cached(changed), "a new seed must re-render"
        second = _video_file(changed, render_id)
        assert second != first
        src = _plays(browser, second)
        assert comfyui.get_bytes(src.removeprefix(comfyui.url))[0] == 200

        time.sleep(0.5)
        browser.screenshot(comfyui.base / f"journey_{TEMPLATE}_run.png")
        assert layout_problems(measure(browser)) == [], "after a run"
    print(f"user journey: {time.monotonic() - t0:.1f} s")
