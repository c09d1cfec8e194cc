"""Live session speed, side by side in one run: time to the first frame, frames per second sustained, real-time
factor and the share of speech encoding, motion sampling, keypoints and rendering, for a few look-ahead / chunk
settings, on the small networks and on full-width ones.

Weights are the fixture fill rule's random ones (the same cost as the released checkpoints, nothing about how the
motion looks). The speech is the fixture's English speech, pushed in 200 ms pieces as fast as the session takes
them; the frames are pasted back into the 512x512 photo. Prints figures, never asserts them: the machine may be
shared. Say which CPU (printed) and, on a GPU, which card.

    python bench/bench_live.py                       # small networks, three settings, 3 s of speech
    python bench/bench_live.py --widths small,tiny --threads 1   # the live page test's tiny networks beside them
    python bench/bench_live.py --full --seconds 2    # full widths (HuBERT-base, official LivePortrait), slow on CPU
    python bench/bench_live.py --settings 10/10 --page 1,3   # also the live page's path: WebSocket clients, Chromium

The page's path (``--page``) splits a frame's latency behind the chunk of speech that completed it: the server's
part (waiting for the session, the engine, the JPEG) and the rest (the WebSocket there and back, and in Chromium the
decode and draw). On this CPU the small networks render 512x512 frames slower than real time, so frames queue and
the latency grows along the clip; the tiny ones (``--widths tiny``, what the live page test serves) keep up or
nearly; the transport's own share is the figure that carries over to a GPU. ``--threads`` sets torch's threads: on a
shared 2-core machine one thread is often faster for these small networks than two waiting on each other.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests" / "comfyui"))

from aiohttp import web  # noqa: E402
from comfyui_harness import free_port  # noqa: E402
from fixture_support import fixture_path, load_fixture  # noqa: E402
from live_client import RATE, stream_speech  # noqa: E402
from motion_support import template_from  # noqa: E402
from webdriver import Browser, browser_tools, fake_microphone_args  # noqa: E402

from joyvasa_core.images import read_image  # noqa: E402
from joyvasa_core.live import LiveSession  # noqa: E402
from joyvasa_core.live.server import LiveHub, LiveLimits, live_routes  # noqa: E402
from joyvasa_core.live.source import live_source  # noqa: E402
from joyvasa_core.loading import ModelSet, bundled_face_detector, load_models, resolve_dtype  # noqa: E402
from joyvasa_core.motion.streaming import StreamOptions  # noqa: E402
from joyvasa_core.pipeline import animate_options, prepare_face  # noqa: E402
from joyvasa_core.types import LivePortraitModels, MotionModel  # noqa: E402

PIECE_MS = 200
PAGE_CHUNK_MS = 40  # what the page's AudioWorklet sends
# name, chunk, look-ahead; the small networks' windows are 8 frames (P 3), the released ones' 100 (P 10)
SETTINGS = {"small": [("all", None, None), ("4/2", 4, 2), ("2/1", 2, 1)],
            "full": [("all", None, None), ("10/10", 10, 10), ("5/5", 5, 5), ("5/2", 5, 2)]}


def small_models(dtype: str, widths: str = "small") -> ModelSet:
    from model_folders import write_joyvasa, write_liveportrait

    root = Path(tempfile.mkdtemp(prefix="bench_live_"))
    write_liveportrait(root, widths=widths)
    write_joyvasa(root)
    return load_models(root, device="cpu", dtype=dtype)


def full_models(dtype: str) -> ModelSet:
    """Official LivePortrait widths and the shipped JoyVASA config (HuBERT-base), filled by the fixture rule."""
    from bench_motion import build_model
    from bench_render import Setup

    nets = Setup(small=False).nets
    lp = LivePortraitModels(appearance=nets["appearance_feature_extractor"], motion_extractor=nets["motion_extractor"],
                            warping=nets["warping_module"], spade=nets["spade_generator"],
                            stitching=nets["stitching_retargeting_module"], device=torch.device("cpu"),
                            dtype=resolve_dtype(dtype, torch.device("cpu")))
    template = template_from(load_fixture("joyvasa_shipped.safetensors"))
    motion = MotionModel(generator=build_model(), template=template, device=torch.device("cpu"))
    return ModelSet(liveportrait=lp, motion_model=motion, detector=bundled_face_detector("auto"))


def speech(seconds: float) -> np.ndarray:
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="float32")
    assert rate == 16000
    n = int(seconds * rate)
    return np.tile(wave, -(-n // len(wave)))[:n]


def run_setting(models: ModelSet, face, chunk: int | None, lookahead: int | None, wave: np.ndarray) -> dict:
    stream = StreamOptions(lookahead=None) if lookahead is None else StreamOptions(chunk, lookahead)
    options = animate_options(sampling={"seed": 0})
    piece = 16000 * PIECE_MS // 1000
    with LiveSession(models, face, options, stream) as session:
        for lo in range(0, len(wave), piece):
            for _ in session.push(wave[lo : lo + piece], 16000):
                pass
        for _ in session.finish():
            pass
        stats = session.stats
        shares = stats.shares(session.motion.timings)
    return {"ttff": stats.time_to_first_frame, "frames": stats.frames, "fps": stats.frames / stats.busy,
            "rtf": stats.real_time_factor(len(wave) / 16000), "latency": stats.mean_latency,
            "worst": stats.latency_max, "shares": shares}


def serve_in_thread(hub: LiveHub) -> tuple[int, Callable[[], None]]:
    """The live routes on an aiohttp app in a background thread; returns the port and a stop function."""
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.add_routes(live_routes(hub))
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)

    return runner.addresses[0][1], stop


def page_figures(name: str, total_ms: list[float], server_ms: list[float], engine_ms: list[float], frames: int,
                 seconds: float) -> None:
    def med(xs: list[float]) -> float:
        return float(np.median(xs)) if xs else float("nan")

    def p90(xs: list[float]) -> float:
        return float(np.percentile(xs, 90)) if xs else float("nan")

    share = (med(total_ms) - med(server_ms)) / med(total_ms) if total_ms else float("nan")
    print(f"{name:<22} {frames:>4} frames in {seconds:6.1f} s ({frames / seconds:5.1f} fps) | latency median "
          f"{med(total_ms):8.0f} ms p90 {p90(total_ms):8.0f} | server {med(server_ms):8.0f} | engine "
          f"{med(engine_ms):8.0f} | transport {med(total_ms) - med(server_ms):6.0f} ms = {100 * share:4.1f}%")


def run_clients(url: str, wave: np.ndarray, clients: int, chunk_ms: float) -> None:
    """``clients`` viewers at once, from another process: a client sharing this process's interpreter with the
    engine would time its own frames late."""
    t0 = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        streams = pool.submit(_clients, url, wave, clients, chunk_ms).result()
    elapsed = time.perf_counter() - t0
    total = [1000 * x for s in streams for x in s.latencies()]
    server = [h["server_ms"] for s in streams for h in s.headers]  # the same frames as the latencies
    engine = [h["engine_ms"] for s in streams for h in s.headers]
    page_figures(f"client x{clients}", total, server, engine, sum(len(s.headers) for s in streams), elapsed)


def _clients(url: str, wave: np.ndarray, clients: int, chunk_ms: float) -> list:
    async def many():
        return await asyncio.gather(*[stream_speech(url, wave, chunk_ms=chunk_ms) for _ in range(clients)])

    return asyncio.run(many())


def run_page(url: str, speech: Path, seconds: float) -> None:
    with Browser(free_port(), extra_args=fake_microphone_args(speech)) as browser:
        browser.open(url)
        browser.wait_for("return window.joyvasaLive && window.joyvasaLive.status === 'ready'", "the portrait", 60)
        t0 = time.perf_counter()
        browser.click("#start")
        browser.wait_for(f"return window.joyvasaLive.sentSamples >= {int((seconds - 0.1) * RATE)}", "speech", 120)
        browser.click("#stop")
        browser.wait_for("return window.joyvasaLive.done", "the last frame", 1800)
        elapsed = time.perf_counter() - t0
        state = browser.js("const l = window.joyvasaLive; return [l.latencies, l.serverMs, l.frames];")
    latencies, server, frames = state
    page_figures("page (chromium)", latencies, server[: len(latencies)], [], frames, elapsed)


def measure_page_path(models: ModelSet, face, wave: np.ndarray, clients: list[int], browser: bool) -> None:
    """The same face served on the live page (an in-process server, 127.0.0.1): Python clients at once, then the
    page itself in headless Chromium with the speech as its microphone."""
    source = live_source(lambda: models.liveportrait, lambda: models.motion_model, face,
                         animate_options(sampling={"seed": 0}), StreamOptions())
    hub = LiveHub(LiveLimits(max_sessions=max(clients + [1])))
    hub.offer("default", source)
    port, stop = serve_in_thread(hub)
    print(f"page path, {len(wave) / RATE:g} s of speech in {PAGE_CHUNK_MS} ms messages paced like a microphone, "
          "chunk 10 / look-ahead 10; latency = chunk that completed a frame sent -> frame received (client) or drawn "
          "(page); server = that chunk's arrival -> frame encoded; engine = the session's part of it")
    try:
        for n in clients:
            run_clients(f"ws://127.0.0.1:{port}/live/ws", wave, n, PAGE_CHUNK_MS)
        if browser and all(browser_tools()):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "speech.wav"
                sf.write(str(path), wave, RATE, subtype="PCM_16")
                run_page(f"http://127.0.0.1:{port}/live/", path, len(wave) / RATE)
        elif browser:
            print("page (chromium): skipped, chromium/chromedriver not installed")
    finally:
        stop()


def run_networks(name: str, models: ModelSet, args: argparse.Namespace) -> None:
    """The settings' table (and the page's path) for one set of networks."""
    face = prepare_face(read_image(fixture_path("astronaut.png")), models.liveportrait, models.detector,
                        animate_options())
    wave = speech(args.seconds)
    settings = SETTINGS["full" if args.full else "small"]
    wanted = set(args.settings.split(",")) if args.settings else {s[0] for s in settings}
    print(f"{name} networks (dtype {models.liveportrait.dtype}, {models.liveportrait.crop_size}x"
          f"{models.liveportrait.crop_size} crop pasted back)")
    print(f"{'chunk/look':>10} {'first frame':>12} {'frames':>6} {'fps':>6} {'RTF':>6} {'latency':>9} {'worst':>9}  "
          "shares: encode sample compose render other")
    for setting, chunk, lookahead in settings:
        if setting not in wanted:
            continue
        r = run_setting(models, face, chunk, lookahead, wave)
        s = r["shares"]
        print(f"{setting:>10} {r['ttff'] * 1000:>10.0f}ms {r['frames']:>6} {r['fps']:>6.2f} {r['rtf']:>6.2f} "
              f"{r['latency'] * 1000:>7.0f}ms {r['worst'] * 1000:>7.0f}ms  "
              f"{s['encode']:.0%} {s['sample']:.0%} {s['compose']:.0%} {s['render']:.0%} {s['other']:.0%}",
              flush=True)
    if args.page:
        measure_page_path(models, face, speech(args.page_seconds), [int(c) for c in args.page.split(",")],
                          not args.no_browser)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full-width networks (slow on a CPU)")
    ap.add_argument("--widths", default="small", help="without --full: small (the tests' networks), tiny (the live "
                    "page test's) or both, comma-separated, measured one after the other [small]")
    ap.add_argument("--threads", type=int, help="torch threads [torch's default]")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of speech [3]")
    ap.add_argument("--dtype", default="auto", help="image networks' precision [auto]")
    names = {k: ",".join(s[0] for s in v) for k, v in SETTINGS.items()}
    ap.add_argument("--settings", help="chunk/look-ahead settings by name, comma-separated [the networks' own: "
                    f"small {names['small']}; full {names['full']}]")
    ap.add_argument("--page", default="", metavar="CLIENTS", help="also the live page's path over its WebSocket: "
                    "viewers at once, comma-separated (e.g. 1,3), then the page in headless Chromium [off]")
    ap.add_argument("--page-seconds", type=float, default=2.0, help="seconds of speech per viewer with --page [2]")
    ap.add_argument("--no-browser", action="store_true", help="with --page: skip the headless-Chromium page")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; {args.seconds:g} s of speech in {PIECE_MS} ms pieces, dtype {args.dtype}")
    if args.full:
        run_networks("full", full_models(args.dtype), args)
        return
    for widths in args.widths.split(","):
        run_networks(widths, small_models(args.dtype, widths), args)


if __name__ == "__main__":
    main()
