"""First use in a real ComfyUI 0.3.75 with no JoyVASA weights, the hub being the tests' own server on 127.0.0.1:
/object_info answers for every node while model folders are missing or vanish; the shipped workflow with the hub
down stops with an error naming each missing file (not a silent half-run); with the hub up it fetches exactly the
missing files (progress in bytes per file), renders, and a later run sends no request; files removed while the
loader's output is cached are noticed and fetched again."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import aiohttp
import pytest
import soundfile as sf
from comfyui_harness import prompt_events
from fixture_support import fixture_dir
from hub_server import shared_hub, width_configs
from render_prompts import speech_frames
from ui_to_api import combo_options, convert

from joyvasa_core.model_catalog import HUMAN, MOTION_GENERATOR, files_for

REPO = Path(__file__).resolve().parents[2]
FIXTURES = fixture_dir()
WORKFLOW = REPO / "workflows" / "joyvasa_talking_portrait.json"
CLIP_SECONDS = 0.3
LOADERS = ("JoyVASALivePortraitLoader", "JoyVASAMotionModelLoader")

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def fresh(comfyui, tmp_path_factory):
    """The server's models/ emptied for this module (whatever other modules put there is restored after), the
    shipped workflow's inputs uploaded."""
    models = comfyui.base / "models"
    aside = comfyui.base / "models.aside"
    models.rename(aside)
    models.mkdir()
    work = tmp_path_factory.mktemp("download_inputs")
    wave, rate = sf.read(str(FIXTURES / "speech_en_16k.wav"), dtype="int16")
    speech = work / "speech.wav"
    sf.write(str(speech), wave[: int(CLIP_SECONDS * rate)], rate, subtype="PCM_16")
    assert comfyui.upload(FIXTURES / "astronaut.png", name="portrait.png") == "portrait.png"
    assert comfyui.upload(speech) == "speech.wav"
    hub = shared_hub()
    try:
        yield {"models": models, "work": work, "hub": hub,
               "frames": speech_frames(sf.info(str(speech)).duration)}  # in sync: round(seconds x 25)
    finally:
        if hub._server is None:
            hub.start()
        shutil.rmtree(models)
        aside.rename(models)


def node_ids(prompt: dict, class_type: str) -> str:
    (node,) = [k for k, v in prompt.items() if v["class_type"] == class_type]
    return node


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


async def _run_watching(url: str, prompt: dict) -> tuple[str, list[dict]]:
    """Queue ``prompt`` and collect its websocket events until it ends."""
    events: list[dict] = []
    async with aiohttp.ClientSession() as session:
        async for prompt_id, event in prompt_events(session, url, prompt):
            events.append(event)
            if event["type"] in ("execution_error", "execution_success", "execution_interrupted"):
                return prompt_id, events
    raise AssertionError("the websocket closed before the prompt finished")


def run_watching(comfyui, prompt: dict) -> tuple[dict, list[dict]]:
    prompt_id, events = asyncio.run(asyncio.wait_for(_run_watching(comfyui.url, prompt), timeout=900))
    return comfyui.wait(prompt_id, timeout=60), events


def errors_of(entry: dict) -> list[dict]:
    return [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]


def videos(comfyui) -> set[Path]:
    return set((comfyui.base / "output").rglob("*.mp4"))


def test_object_info_answers_while_model_folders_are_missing_or_vanish(comfyui, fresh):
    models = fresh["models"]
    names = [k for k in comfyui.object_info() if k.startswith("JoyVASA")]
    assert len(names) >= 10

    def every_node_answers() -> None:
        for name in names:
            info = comfyui.object_info(name)[name]  # HTTP 200, or urllib raises
            assert info["name"] == name
        loader = comfyui.object_info("JoyVASAMotionModelLoader")["JoyVASAMotionModelLoader"]["input"]["required"]
        assert combo_options(loader["checkpoint"])[0] == "motion_generator_hubert_chinese.pt"  # never an empty list
        assert combo_options(loader["template"])[0] == "motion_template.pkl"
        assert combo_options(loader["download"]) == ["download missing files", "never download"]
        assert loader["download"][1]["default"] == "download missing files"

    every_node_answers()  # the folders never existed
    (models / "joyvasa" / "sub").mkdir(parents=True)
    (models / "joyvasa" / "sub" / "other.pt").write_bytes(b"x")
    listed = comfyui.object_info("JoyVASAMotionModelLoader")["JoyVASAMotionModelLoader"]["input"]["required"]
    assert "sub/other.pt" in combo_options(listed["checkpoint"])
    shutil.rmtree(models / "joyvasa")  # vanishes while ComfyUI's listing cache holds it
    every_node_answers()
    assert comfyui.request("GET", "/object_info")  # the whole list too


def test_no_weights_and_hub_down_stop_with_every_missing_file_named(comfyui, fresh):
    models, hub = fresh["models"], fresh["hub"]
    width_configs(models, fresh["work"])
    before_tree, before_videos = tree(models), videos(comfyui)
    prompt = convert(json.loads(WORKFLOW.read_text(encoding="utf-8")), comfyui.object_info())
    hub.stop()
    try:
        entry = comfyui.run(prompt, timeout=600)
    finally:
        hub.start()
    assert entry["status"]["status_str"] == "error"
    (error,) = errors_of(entry)
    assert error["node_type"] in LOADERS
    feature = HUMAN if error["node_type"] == "JoyVASALivePortraitLoader" else MOTION_GENERATOR
    message = error["exception_message"]
    assert "cannot reach" in message and hub.url in message
    for f in files_for(feature):
        assert f"{models / f.folder}{os.sep}{f.name}" in message and f.url(hub.url) in message
    assert tree(models) == before_tree and videos(comfyui) == before_videos
    hub.reset()  # the hub is up but downloads are turned off
    for loader in LOADERS:
        prompt[node_ids(prompt, loader)]["inputs"]["download"] = "never download"
    (error,) = errors_of(comfyui.run(prompt, timeout=600))
    assert "downloads are turned off" in error["exception_message"] and "' in the loader" in error["exception_message"]
    assert hub.hub_requests() == [] and tree(models) == before_tree


def test_first_run_fetches_the_missing_files_then_renders_and_reruns_send_nothing(comfyui, fresh):
    models, hub = fresh["models"], fresh["hub"]
    hub.reset()
    prompt = convert(json.loads(WORKFLOW.read_text(encoding="utf-8")), comfyui.object_info())
    before = videos(comfyui)
    entry, events = run_watching(comfyui, prompt)
    errors = errors_of(entry)
    assert entry["status"]["status_str"] == "success", errors[0]["exception_message"] if errors else entry["status"]
    job = files_for(HUMAN, MOTION_GENERATOR)
    assert hub.fetched() == {f"{f.repo_id}/{f.repo_path}" for f in job}
    assert {f.target for f in job} <= set(tree(models))
    assert not [p for p in tree(models) if ".joyvasa-download" in p]
    (video,) = videos(comfyui) - before
    import av

    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == fresh["frames"]
    # progress in bytes, one bar per file, on the loader that fetched it
    lp_id = node_ids(prompt, "JoyVASALivePortraitLoader")
    maxima = {e["data"]["max"] for e in events if e["type"] == "progress" and e["data"]["node"] == lp_id}
    assert {(models / f.target).stat().st_size for f in files_for(HUMAN)} <= maxima

    hub.reset()  # loaders re-run (another device value = another cache key) and find every file
    for loader in LOADERS:
        prompt[node_ids(prompt, loader)]["inputs"]["device"] = "cpu"
    entry = comfyui.run(prompt, timeout=900)
    assert entry["status"]["status_str"] == "success"
    assert hub.hub_requests() == []
    fresh["prompt"] = prompt


def test_files_removed_while_the_loader_is_cached_are_noticed(comfyui, fresh):
    """The same prompt again: all cached; after models/liveportrait is deleted, the same prompt again: the loader's
    IS_CHANGED sees the files gone, so it runs and fetches them instead of reusing the cached networks."""
    models, hub, prompt = fresh["models"], fresh["hub"], fresh["prompt"]
    lp_id = node_ids(prompt, "JoyVASALivePortraitLoader")
    hub.reset()
    entry = comfyui.run(prompt, timeout=600)
    cached = [m[1]["nodes"] for m in entry["status"]["messages"] if m[0] == "execution_cached"]
    assert entry["status"]["status_str"] == "success" and lp_id in cached[0]
    shutil.rmtree(models / "liveportrait")
    entry = comfyui.run(prompt, timeout=900)
    errors = errors_of(entry)
    assert entry["status"]["status_str"] == "success", errors[0]["exception_message"] if errors else entry["status"]
    cached = [m[1]["nodes"] for m in entry["status"]["messages"] if m[0] == "execution_cached"]
    assert lp_id not in cached[0]
    assert hub.fetched() == {f"{f.repo_id}/{f.repo_path}" for f in files_for(HUMAN)}
