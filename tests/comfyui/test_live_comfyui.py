"""The live page served by the real ComfyUI's own server: a workflow's JoyVASA Live node (small networks, a real
photo) offers its face under /joyvasa/live/, the node's UI output carries the link, a Python client streams real
speech up the WebSocket and gets every frame, and headless Chromium opens the same page and speaks a chosen speech
file through it (the microphone path is tests/test_live_page.py's). The screenshot is kept as
``<pytest tmp>/comfyui_base*/live_page.png``."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
from comfyui_harness import free_port
from fixture_support import fixture_dir
from live_client import RATE, stream_speech
from model_folders import write_joyvasa, write_liveportrait
from render_prompts import render_prompt
from webdriver import Browser, require_browser

REPO = Path(__file__).resolve().parents[2]
FIXTURES = fixture_dir()
LIVE_ID = "13"
CLIP_S = 0.4  # 10 frames: the small networks render about 1.4 s per 512x512 frame here
PAGE_CLIP_S = 0.8

pytestmark = pytest.mark.comfyui


def live_prompt(portrait: str, seed: int = 0) -> dict:
    """The render tests' loaders and Load Reference Face, into JoyVASA Live."""
    prompt = {k: v for k, v in render_prompt(portrait, speech="").items() if k in ("1", "3", "4", "5")}
    prompt[LIVE_ID] = {"class_type": "JoyVASALive",
                       "inputs": {"liveportrait": ["3", 0], "motion_model": ["4", 0], "face": ["5", 0],
                                  "image_index": 0, "seed": seed, "cfg_scale": 4.0, "chunk_frames": 10,
                                  "lookahead_frames": 10, "paste_back": True, "blinks": "on", "blink_rate": 15.0}}
    return prompt


@pytest.fixture(scope="module")
def went_live(comfyui, tmp_path_factory) -> dict:
    write_liveportrait(comfyui.base / "models", "official")
    write_joyvasa(comfyui.base / "models")
    portrait = comfyui.upload(FIXTURES / "astronaut.png", name="live_portrait.png")
    entry = comfyui.run(live_prompt(portrait), timeout=300)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000] + comfyui.log_tail()
    work = tmp_path_factory.mktemp("live_comfyui")
    wave, rate = sf.read(str(FIXTURES / "speech_en_16k.wav"), dtype="float32")
    speech = work / "speech.wav"
    sf.write(str(speech), wave[: int(PAGE_CLIP_S * rate)], rate, subtype="PCM_16")
    return {"ui": entry["outputs"][LIVE_ID], "wave": wave, "speech": speech}


def test_live_node_offers_its_face_on_comfyui_server(comfyui, went_live):
    ui = went_live["ui"]
    link = {"path": f"/joyvasa/live/?source=node-{LIVE_ID}", "source": f"node-{LIVE_ID}"}
    assert ui["joyvasa_live"] == [link] and ui["text"] == [link["path"]]
    status, body = comfyui.get_bytes("/joyvasa/live/status")
    assert status == 200 and json.loads(body)["sources"] == {link["source"]: {"label": "JoyVASA Live", "fps": 25.0}}
    status, page = comfyui.get_bytes(link["path"])
    assert status == 200 and b"<title>JoyVASA Live</title>" in page
    status, portrait = comfyui.get_bytes(f"/joyvasa/live/portrait.jpg?source={link['source']}")
    assert status == 200 and portrait[:3] == b"\xff\xd8\xff"
    status, body = comfyui.get_bytes("/joyvasa/live/portrait.jpg?source=node-999")
    assert status == 404 and b"no source 'node-999'" in body
    url = comfyui.url.replace("http://", "ws://") + f"/joyvasa/live/ws?source={link['source']}"
    stream = asyncio.run(stream_speech(url, went_live["wave"][: int(CLIP_S * RATE)]))
    frames = round(CLIP_S * 25)
    assert stream.errors == [] and stream.done == {"type": "done", "frames": frames}
    assert [h["seq"] for h in stream.headers] == list(range(frames))
    assert comfyui.request("GET", "/system_stats")["system"], "ComfyUI's own API still answers"


def test_live_page_speaks_a_file_in_the_browser_through_comfyui(comfyui, went_live):
    require_browser(comfyui)
    path = went_live["ui"]["joyvasa_live"][0]["path"]
    with Browser(free_port(), extra_args=("--autoplay-policy=no-user-gesture-required",)) as browser:
        browser.open(comfyui.url + path)
        browser.wait_for("return window.joyvasaLive && window.joyvasaLive.status === 'ready'", "the portrait", 30)
        browser.choose_file("#file", went_live["speech"])  # "or speak a file": played at its pace, stops at its end
        browser.wait_for("return window.joyvasaLive.status === 'live: speech.wav'", "the file streaming", 30)
        browser.wait_for("return window.joyvasaLive.done", "the last frame", 240)
        browser.screenshot(comfyui.base / "live_page.png")
        state = browser.js("const l = window.joyvasaLive; return {frames: l.frames, sent: l.sentSamples, "
                           "error: l.error, latency: document.getElementById('latency').textContent};")
    sent_s = state["sent"] / RATE
    assert state["error"] == "" and abs(state["frames"] - sent_s * 25) <= 3, state
    assert state["latency"].endswith(" ms"), state


def test_node_button_opens_the_page_it_was_given(tmp_path):
    """The web extension in Node: after the node runs, a button opens the link (also under a proxy's sub-path)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js not installed: the JS extension check needs `node`")
    served = tmp_path / "extensions" / "joyvasa" / "js"
    served.mkdir(parents=True)
    shutil.copy(REPO / "web" / "js" / "joyvasa_live.js", served)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(
        "export const registered = []; export const app = { registerExtension(e) { registered.push(e); } };")
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "driver.js").write_text("""
import { registered } from "./scripts/app.js";
const opened = [];
globalThis.window = { location: new URL("http://127.0.0.1:8188/comfy/"), open: (u) => opened.push(u) };
const { livePageUrl } = await import("./extensions/joyvasa/js/joyvasa_live.js");
class Node { constructor() { this.widgets = []; }
  addWidget(type, name, value, callback) { const w = { type, name, callback }; this.widgets.push(w); return w; } }
await registered[0].beforeRegisterNodeDef(Node, { name: "JoyVASALive" });
const node = new Node();
node.onExecuted({ joyvasa_live: [{ path: "/joyvasa/live/?source=node-13", source: "node-13" }] });
node.onExecuted({ joyvasa_live: [{ path: "/joyvasa/live/?source=node-13", source: "node-13" }] });
node.widgets[0].callback();
console.log(JSON.stringify({ widgets: node.widgets.map((w) => [w.type, w.name]), opened,
  root: livePageUrl("/joyvasa/live/?source=x", new URL("http://h:1/")) }));
""")
    proc = subprocess.run([node, "driver.js"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["widgets"] == [["button", "open live page"]], "one button, however often the node runs"
    assert out["opened"] == ["http://127.0.0.1:8188/comfy/joyvasa/live/?source=node-13"]
    assert out["root"] == "http://h:1/joyvasa/live/?source=x"
