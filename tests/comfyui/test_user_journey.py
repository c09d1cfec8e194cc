"""A new user's first runs, in the real web UI (headless Chromium at 1920x1080) against the real ComfyUI: open the
main template from Templates, pick the example photo and speech with the loaders' combos, Run. Render Video must
then play the file that run wrote; a second run with nothing changed must be served from ComfyUI's cache for every
node of the pack (the player the frontend added must not change the prompt); a new seed must re-render and the
player must show the new file. The layout is measured as the user sees it: after the photo is picked and after the
runs (images and player at their real size). One browser session for the whole journey (three runs, ~2-3 min on
two shared cores).

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
from ui_driver import click_run, node_js, open_app, open_template, pick, plays, videos
from webdriver import Browser, require_browser

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "joyvasa_core" / "examples"
TEMPLATE = "joyvasa_talking_portrait"
PHOTO, SPEECH = "example_portrait.png", "example_speech.wav"  # names the template does not hold: the user picks
SPEECH_S = 0.8
SCREEN = (1920, 1080)

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def inputs(comfyui, tmp_path_factory) -> None:
    write_liveportrait(comfyui.base / "models", "official")
    write_joyvasa(comfyui.base / "models")
    speech = write_speech(EXAMPLES / "speech.wav", SPEECH_S, tmp_path_factory.mktemp("journey") / SPEECH)
    assert comfyui.upload(EXAMPLES / "portrait.png", name=PHOTO) == PHOTO
    assert comfyui.upload(speech, name=SPEECH) == SPEECH


def _cached(entry: dict) -> set[str]:
    return {n for kind, data in entry["status"]["messages"] if kind == "execution_cached" for n in data["nodes"]}


def test_main_template_plays_each_run_caches_an_unchanged_one_and_reads_at_every_step(comfyui, inputs):
    require_browser(comfyui)
    t0 = time.monotonic()
    with Browser(free_port(), window=SCREEN) as browser:
        open_app(browser, comfyui.url)
        open_template(browser, TEMPLATE)
        nodes = measure(browser)["nodes"]
        pack = {str(n["id"]) for n in nodes if n["type"].startswith("JoyVASA")}
        (render_id,) = [str(n["id"]) for n in nodes if n["type"] == "JoyVASARenderVideo"]

        pick(browser, "LoadImage", "image", PHOTO)
        pick(browser, "LoadAudio", "audio", SPEECH)
        browser.wait_for(f"const n = {node_js('LoadImage')}; return n.imgs?.[0]?.src.includes('{PHOTO}') && "
                         "n.imgs[0].complete", "the picked photo in Load Image")
        time.sleep(0.5)  # the node grows to the photo on the next frames
        browser.screenshot(comfyui.base / f"journey_{TEMPLATE}_picked.png")
        assert layout_problems(measure(browser)) == [], "after the photo is picked"

        entry = click_run(comfyui, browser)
        first = videos(entry)[render_id]["filename"]
        plays(browser, render_id, first)
        (motion,) = [f for out in entry["outputs"].values() for f in out.get("motion", [])]
        assert motion["subfolder"] == "JoyVASA", "one output folder for everything the pack writes"
        saved = browser.wait_for(f"return {node_js('JoyVASASaveMotion')}.widgets.find((w) => w.name === 'saved_file')"
                                 "?.value", "Save Motion's line naming its file")
        assert saved == motion["filename"]

        again = click_run(comfyui, browser)
        assert pack <= _cached(again), f"not served from the cache: {sorted(pack - _cached(again))}"
        assert videos(again)[render_id]["filename"] == first
        plays(browser, render_id, first)

        seed = browser.js(f"return {node_js('JoyVASASampleMotionDiffusion')}.widgets.find((w) => w.name === 'seed')"
                          ".value")
        pick(browser, "JoyVASASampleMotionDiffusion", "seed", seed + 1)
        changed = click_run(comfyui, browser)
        assert render_id not in _cached(changed), "a new seed must re-render"
        second = videos(changed)[render_id]["filename"]
        assert second != first
        src = plays(browser, render_id, second)
        assert comfyui.get_bytes(src.removeprefix(comfyui.url))[0] == 200

        time.sleep(0.5)
        browser.screenshot(comfyui.base / f"journey_{TEMPLATE}_run.png")
        assert layout_problems(measure(browser)) == [], "after a run"
    print(f"user journey: {time.monotonic() - t0:.1f} s")
