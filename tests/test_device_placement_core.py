"""Every front end outside ComfyUI runs every network on the execution device it chose: the batch command (its local
worker), a motion handed pickled to a second worker (what the Ray driver does between actors), the live session
driven from a file, and the live page's server sessions (opened and pushed on its worker threads). A forward-pre-hook
on every module records the device of each network's parameters and of its first input; each entry point runs with
``--device auto``, so the device it must use is ``hardware.auto_device()``: CUDA on a GPU machine, where this same
test checks the GPU paths. On this CPU-only machine every device is the CPU, so here the test proves that each entry
runs the networks it exists to run through the hook (a check that saw nothing cannot pass) and that a motion leaves
its worker on the CPU; tests/comfyui/test_device_placement.py, where ComfyUI's memory manager offloads the models,
catches on the CPU a network run offloaded (the nodes, the command line, the Live node's sessions)."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import pytest
import soundfile as sf
import torch
from aiohttp import web
from fixture_support import fixture_path
from live_client import stream_speech
from model_folders import write_joyvasa, write_liveportrait

from joyvasa_core import cli
from joyvasa_core.batch import command
from joyvasa_core.hardware import auto_device
from joyvasa_core.live.server import LiveHub, live_routes
from joyvasa_core.live.source import live_source
from joyvasa_core.loading import load_models
from joyvasa_core.motion.streaming import StreamOptions
from joyvasa_core.pipeline import animate_options, prepare_face

CLIP_SECONDS = 0.4
RENDERER = {"AppearanceFeatureExtractor", "MotionExtractor", "WarpingNetwork", "SPADEDecoder"}
SAMPLER = {"HubertEncoder", "DecoderLayer"}  # the speech encoder and the denoiser's layers


class Recorder:
    """Where each network ran (its parameters' device and its first input's), per entry point."""

    def __init__(self) -> None:
        self.entry = ""
        self.records: list[dict] = []

    def hook(self, module: torch.nn.Module, args: tuple) -> None:
        params = list(module.parameters(recurse=False)) or list(module.parameters())[:1]
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if self.entry and params and x is not None:
            self.records.append({"entry": self.entry, "module": type(module).__name__, "param": str(params[0].device),
                                 "input": str(x.device)})

    @contextmanager
    def running(self, entry: str) -> Iterator[None]:
        self.entry = entry
        try:
            yield
        finally:
            self.entry = ""


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    handle = torch.nn.modules.module.register_module_forward_pre_hook(rec.hook)  # every thread, every module
    try:
        yield rec
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("device_core")
    write_liveportrait(work / "models", "official")
    write_joyvasa(work / "models")
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    sf.write(str(work / "speech.wav"), wave[: int(CLIP_SECONDS * rate)], rate, subtype="PCM_16")
    photo = cv2.imread(str(fixture_path("astronaut.png")))
    cv2.imwrite(str(work / "face1.png"), photo)
    cv2.imwrite(str(work / "face2.png"), cv2.flip(photo, 1))
    return work


def check(records: list[dict], entry: str, expected: set[str]) -> None:
    """``entry`` ran at least the ``expected`` networks, every network with its parameters and input on the device
    ``--device auto`` chose."""
    ran = [r for r in records if r["entry"] == entry]
    assert expected <= {r["module"] for r in ran}, f"{entry} ran {sorted({r['module'] for r in ran})}"
    device = str(auto_device())
    wrong = sorted({(r["module"], r["param"], r["input"]) for r in ran if (r["param"], r["input"]) != (device,) * 2})
    assert wrong == [], f"{entry}: (network, parameters, input) not on the chosen {device}: {wrong}"


def test_batch_runs_every_row_on_the_chosen_device(recorder, folder):
    row = {"image": "face1.png", "audio": "speech.wav", "out": "one.mp4", "seed": 1, "sampler": "ddim", "steps": 2}
    manifest = folder / "rows.jsonl"
    manifest.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with recorder.running("batch"):
        code = command.main([str(manifest), "--out-dir", str(folder / "batch"), "--models", str(folder / "models"),
                             "--no-download", "--device", "auto", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in (folder / "batch").glob("*.mp4")) == ["one.mp4"]
    check(recorder.records, "batch", RENDERER | SAMPLER)


def test_a_motion_handed_to_another_worker_renders_on_the_chosen_device(recorder, folder):
    """The Ray path without Ray's transport: the first worker's sampled motion travels pickled (as the driver hands
    it to the next actor) and a second worker renders a row of the same speech with it."""
    from joyvasa_core.batch.worker import Worker

    row = {"image": str(folder / "face1.png"), "audio": str(folder / "speech.wav"), "models": str(folder / "models"),
           "download": False, "device": "auto", "seed": 1, "sampler": "ddim", "steps": 2, "quiet": True}
    with recorder.running("first worker"):
        first, key, motion = Worker("first").run(1, {**row, "out": str(folder / "first.mp4")})
    assert first.ok and motion is not None, first.error
    travels = {name: str(v.device) for name, v in vars(motion).items() if isinstance(v, torch.Tensor)}
    assert set(travels.values()) == {"cpu"}, (
        f"a motion leaves its worker on the CPU (the Ray driver may have no GPU): {travels}")
    second = Worker("second")
    second.motions.put(key, pickle.loads(pickle.dumps(motion)))
    with recorder.running("second worker"):
        result, _, _ = second.run(2, {**row, "image": str(folder / "face2.png"), "out": str(folder / "second.mp4")})
    assert (result.ok, result.motion) == (True, "reused"), result.error
    check(recorder.records, "first worker", RENDERER | SAMPLER)
    check(recorder.records, "second worker", RENDERER)


def test_live_from_a_file_runs_on_the_chosen_device(recorder, folder):
    with recorder.running("live file"):
        code = cli.main(["live", "--image", str(folder / "face1.png"), "--audio", str(folder / "speech.wav"),
                         "--out", str(folder / "live.mp4"), "--models", str(folder / "models"), "--no-download",
                         "--device", "auto", "--seed", "1", "--sampler", "ddim", "--steps", "2", "--quiet",
                         "--lookahead", "5", "--step-frames", "5"])
    assert code == 0
    check(recorder.records, "live file", RENDERER | SAMPLER)


@contextmanager
def live_server(hub: LiveHub) -> Iterator[str]:
    """The live page's routes on a real aiohttp server on 127.0.0.1, its loop on a thread; yields the base URL."""
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.add_routes(live_routes(hub))
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}/live/ws?source=face"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def test_live_page_sessions_run_on_the_chosen_device(recorder, folder):
    """As ``python -m joyvasa_core live --image`` serves: models loaded for ``auto``, the face prepared once, a
    session per viewer opened and pushed on the server's worker threads."""
    wave, _ = sf.read(str(folder / "speech.wav"), dtype="float32")
    image = cv2.cvtColor(cv2.imread(str(folder / "face1.png")), cv2.COLOR_BGR2RGB)
    options = animate_options(sampling={"seed": 1, "scheduler": "ddim", "num_steps": 2})
    with recorder.running("live page"):
        models = load_models(folder / "models", device="auto")
        face = prepare_face(image, models.liveportrait, models.detector, options)
        hub = LiveHub()
        hub.offer("face", live_source(lambda: models.liveportrait, lambda: models.motion_model, face, options,
                                      StreamOptions(chunk_frames=5, lookahead=5)))
        with live_server(hub) as url:
            stream = asyncio.run(stream_speech(url, wave, chunk_ms=100, realtime=False, timeout=120))
    assert stream.errors == [] and stream.done is not None and len(stream.jpegs) >= 5, stream.texts
    check(recorder.records, "live page", RENDERER | SAMPLER)
