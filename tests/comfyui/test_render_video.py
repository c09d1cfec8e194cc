"""Render Video inside a real ComfyUI: a long clip streams into an mp4 with flat server memory, the frame count and
the AAC track follow the speech, preview frames reach the websocket while it renders, and ComfyUI's "free model
memory" (POST /free with unload_models) really unloads the networks, which the next run loads back for the same
frames."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path

import aiohttp
import av
import cv2
import numpy as np
import pytest
from fixture_support import fixture_dir
from model_folders import write_joyvasa, write_liveportrait
from render_prompts import (
    RENDER_ID,
    peak_rss_kb,
    render_prompt,
    reset_peak_rss,
    speech_frames,
    write_photo,
    write_speech,
)

FIXTURES = fixture_dir()
SHORT_S, LONG_S = 0.4, 4.0  # 10 and 100 frames: as a float IMAGE batch the long one would take 1.2 GiB
# The memory baseline: 50 frames, past the render's pipeline depth (a chunk of 8 rendering, one being pasted back,
# QUEUED_CHUNKS waiting and one encoding: 40 frames), so what the long clip adds is what grows with length.
STEADY_S = 2.0
PHOTO_SIDE = 1024
LOADED = re.compile(r"Requested to load (JoyVASA\w+Networks)")

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def inputs(comfyui, tmp_path_factory) -> dict:
    write_liveportrait(comfyui.base / "models", "official")
    write_joyvasa(comfyui.base / "models")
    work = tmp_path_factory.mktemp("render_inputs")
    photo = write_photo(FIXTURES / "astronaut.png", PHOTO_SIDE, work / "portrait_1024.png")
    tall = work / "tall.png"  # taller than wide: the astronaut's middle 300 columns
    cv2.imwrite(str(tall), cv2.imread(str(FIXTURES / "astronaut.png"))[:, 106:406])
    names = {"photo": comfyui.upload(photo), "tall": comfyui.upload(tall)}
    for label, seconds in (("short", SHORT_S), ("steady", STEADY_S), ("long", LONG_S)):
        speech = write_speech(FIXTURES / "speech_en_16k.wav", seconds, work / f"speech_{label}.wav")
        names[label] = comfyui.upload(speech)
    return names


def _ok(entry: dict) -> None:
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert entry["status"]["status_str"] == "success", errors[0]["exception_message"] if errors else entry["status"]


def _video_path(comfyui, entry: dict) -> Path:
    (saved,) = entry["outputs"][RENDER_ID]["images"]
    assert saved["type"] == "output" and saved["filename"].endswith(".mp4")
    return comfyui.output_path(saved)


def _probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio
        info = {"rate": video.average_rate, "size": (video.codec_context.width, video.codec_context.height),
                "codec": video.codec_context.name, "n_audio": len(audio)}
        if audio:
            info["audio_codec"] = audio[0].codec_context.name
            info["audio_seconds"] = float(audio[0].duration * audio[0].time_base)
        info["frames"] = sum(1 for _ in container.decode(video=0))
    return info


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


async def _run_watching(url: str, prompt: dict) -> dict:
    """Queue ``prompt`` on a websocket client; collect the binary preview images sent while the render node runs."""
    client_id = uuid.uuid4().hex
    ws_url = url.replace("http://", "ws://") + f"/ws?clientId={client_id}"
    result: dict = {"previews": [], "progress": []}
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        async with session.post(url + "/prompt", json={"prompt": prompt, "client_id": client_id}) as resp:
            assert resp.status == 200, await resp.text()
            prompt_id = (await resp.json())["prompt_id"]
        running = None
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                event, kind = int.from_bytes(msg.data[:4], "big"), int.from_bytes(msg.data[4:8], "big")
                if event == 1 and running == RENDER_ID:  # PREVIEW_IMAGE, then 1 = JPEG
                    result["previews"].append((time.monotonic(), kind, bytes(msg.data[8:])))
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            data = event.get("data", {})
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if event["type"] == "executing":
                running = data.get("node")
                if running == RENDER_ID:
                    result["started"] = time.monotonic()
            elif event["type"] == "progress" and data.get("node") == RENDER_ID:
                result["progress"].append((data["value"], data["max"]))
            elif event["type"] in ("execution_error", "execution_success", "execution_interrupted"):
                result["prompt_id"] = prompt_id
                return result
    raise AssertionError("the websocket closed before the prompt finished")


def _watch(comfyui, prompt: dict) -> tuple[dict, dict]:
    seen = asyncio.run(asyncio.wait_for(_run_watching(comfyui.url, prompt), timeout=1800))
    entry = comfyui.wait(seen["prompt_id"], timeout=60)
    _ok(entry)
    return seen, entry


def test_long_clip_streams_with_flat_memory_and_live_preview(comfyui, inputs):
    pid = comfyui.process.pid
    # a first run loads the models and warms every node, so both measured runs below do the same work but length
    _ok(comfyui.run(render_prompt(inputs["photo"], inputs["short"], prefix="joyvasa/warmup"), timeout=1800))
    peaks, runs = {}, {}
    for label, seconds in (("steady", STEADY_S), ("long", LONG_S)):
        reset_peak_rss(pid)
        t0 = time.monotonic()
        prompt = render_prompt(inputs["photo"], inputs[label], prefix=f"joyvasa/{label}", seed=1)
        seen, entry = _watch(comfyui, prompt)
        peaks[label] = peak_rss_kb(pid)
        runs[label] = (seen, _video_path(comfyui, entry), time.monotonic() - t0)
        info = _probe(runs[label][1])
        assert info["frames"] == speech_frames(seconds), label
        assert info["rate"] == 25 and info["codec"] == "h264" and info["size"] == (PHOTO_SIDE, PHOTO_SIDE)
        assert info["n_audio"] == 1 and info["audio_codec"] == "aac"
        assert abs(info["audio_seconds"] - seconds) < 0.05, info
        assert seen["progress"][-1] == (speech_frames(seconds), speech_frames(seconds))
    growth = peaks["long"] / peaks["steady"] - 1
    print(f"server peak RSS: {STEADY_S:g} s clip {peaks['steady'] / 1024:.0f} MiB, {LONG_S:g} s clip "
          f"{peaks['long'] / 1024:.0f} MiB ({growth:+.1%}); render of the long clip {runs['long'][2]:.1f} s")
    assert growth < 0.20, f"peak RSS grew {growth:.1%} from the {STEADY_S:g} s clip to the {LONG_S:g} s one"

    seen, path, _ = runs["long"]
    previews = seen["previews"]
    assert len(previews) >= 3, f"{len(previews)} preview images during a {len(seen['progress'])}-chunk render"
    span = previews[-1][0] - seen["started"]
    assert len(previews) <= span / 0.3 + 3, f"{len(previews)} previews in {span:.1f} s: not throttled"
    decoded = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for _, kind, data in previews]
    assert all(kind == 1 for _, kind, _ in previews) and all(img is not None for img in decoded)
    assert {img.shape for img in decoded} == {(512, 512, 3)}  # the 1024 frame, contained in 512
    # The last preview is the video's last frame (JPEG and H.264 apart); the previews are not one still picture.
    last = cv2.resize(_frames(path)[-1], (512, 512), interpolation=cv2.INTER_AREA)[..., ::-1].astype(np.int16)
    assert np.abs(decoded[-1].astype(np.int16) - last).mean() < 6
    assert max(np.abs(d.astype(np.int16) - decoded[0]).max() for d in decoded[1:]) > 16


def _loads(comfyui) -> list[str]:
    return LOADED.findall(comfyui.log())


def test_free_model_memory_unloads_the_networks_and_the_next_run_loads_them_back(comfyui, inputs):
    first = comfyui.run(render_prompt(inputs["photo"], inputs["short"], prefix="joyvasa/free_a", seed=7), 900)
    _ok(first)
    loads = _loads(comfyui)
    assert {"JoyVASALivePortraitNetworks", "JoyVASAMotionNetworks"} <= set(loads), "not in ComfyUI's manager"
    # Kept loaded between runs: a re-render (new file name, everything else cached) loads nothing.
    again = comfyui.run(render_prompt(inputs["photo"], inputs["short"], prefix="joyvasa/free_b", seed=7), 900)
    _ok(again)
    assert _loads(comfyui) == loads
    assert comfyui.request("POST", "/free", {"unload_models": True}) is None
    time.sleep(2.0)  # the prompt worker handles the flag between prompts
    after = comfyui.run(render_prompt(inputs["photo"], inputs["short"], prefix="joyvasa/free_c", seed=7), 900)
    _ok(after)
    reloaded = _loads(comfyui)[len(loads):]
    assert reloaded == ["JoyVASALivePortraitNetworks"], f"after /free the render loaded {reloaded}"
    frames = _frames(_video_path(comfyui, first))
    assert np.array_equal(_frames(_video_path(comfyui, after)), frames)
    assert len(frames) == speech_frames(SHORT_S)


def test_file_name_cannot_leave_the_output_folder(comfyui, inputs):
    entry = comfyui.run(render_prompt(inputs["photo"], inputs["short"], prefix="../../escaped/video", seed=7), 900)
    (error,) = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert error["node_type"] == "JoyVASARenderVideo"
    assert error["exception_message"].startswith("JoyVASA Render Video: filename_prefix '../../escaped/video' points")
    assert not (comfyui.base.parent / "escaped").exists() and not (comfyui.base / "escaped").exists()


@pytest.mark.parametrize(("streaming", "paste_back", "size"), [(True, True, (300, 512)), (False, True, (300, 512)),
                                                              (True, False, (512, 512))],
                         ids=["render_video", "warp_and_render", "crop_only"])
def test_whole_image_crop_renders_at_the_photos_size(comfyui, inputs, streaming, paste_back, size):
    """Crop 'whole' on a photo taller than wide: both render nodes give the photo's size (its picture taken back
    out of the padded square), and paste_back off still gives the 512x512 crop. (The test weights draw noise, so
    only the geometry is checked here; test_crop_whole.py checks the picture.)"""
    prompt = render_prompt(inputs["tall"], inputs["short"], streaming=streaming, prefix=f"joyvasa/tall_{streaming}",
                           seed=3, crop="whole", paste_back=paste_back)
    entry = comfyui.run(prompt, 900)
    _ok(entry)
    files = [f for out in entry["outputs"].values() for f in out.get("images", []) if f["filename"].endswith(".mp4")]
    (path,) = [comfyui.output_path(f) for f in files]
    frames = _frames(path)
    assert frames.shape[0] == speech_frames(SHORT_S) and frames.shape[1:3] == size[::-1]
