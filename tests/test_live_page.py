"""The live page end to end: ``python -m joyvasa_core live --image I`` (no ``--audio``) serving on 127.0.0.1 with the
tiny networks (``model_folders.TINY_LIVEPORTRAIT``: a frame in tens of milliseconds on one core, so frames are
shown while the speaker speaks) and a real photo, reached by headless Chromium whose microphone is a real speech WAV,
and by several Python clients at once over the same WebSocket (``tests/live_client.py``).

The page's screenshot is kept as ``<pytest tmp>/live_page*/live_page.png``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest
import soundfile as sf
from fixture_support import REPO, fixture_path
from live_client import RATE, stream_speech
from model_folders import write_joyvasa, write_liveportrait

from joyvasa_core import cli
from joyvasa_core.live.server import exposure_warning

sys.path.insert(0, str(REPO / "tests" / "comfyui"))
from comfyui_harness import free_port  # noqa: E402
from webdriver import Browser, browser_tools, fake_microphone_args  # noqa: E402

# Of the fixture speech: the browser's microphone plays 3 s (75 frames; the first comes after one motion window, 320 ms
# of speech, so most of them must be shown while it plays), each Python client sends 0.4 s (10 frames).
CLIP_S = 3.0
CLIENT_S = 0.4
FPS = 25
# The fake microphone may start playing a few ms before the page's capture is connected, so the speech is taken to
# end this much before the page has sent the whole clip.
START_MARGIN_S = 0.2
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
FRAME_SUM = """const c = document.getElementById("face");
const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
let s = 0; for (let i = 0; i < d.length; i += 97) s += d[i];
const l = window.joyvasaLive;
return [s, l.frames, l.sentSamples, l.done, document.getElementById("fps").textContent,
        document.getElementById("latency").textContent, performance.now()];"""


class LiveServer:
    """The live command as a user starts it, on a free port; ``rss`` is its resident memory in bytes."""

    def __init__(self, root: Path, models: Path, image: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "live_server.log"
        # fp32 and one thread: the tiny networks' small ops gain nothing from bf16 on a CPU without AMX (the casts
        # cost more) and lose more to two threads waiting on each other than they gain, and the browser needs the
        # other core (bench/bench_live.py --widths tiny --threads 1 --dtype fp32 / auto).
        cmd = [sys.executable, "-m", "joyvasa_core", "live", "--image", str(image), "--models", str(models),
               "--no-download", "--device", "cpu", "--dtype", "fp32", "--seed", "0", "--port", str(self.port),
               "--max-sessions", "5"]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 120
        while not self.status():
            if self.process.poll() is not None or time.monotonic() > end:
                self.stop()
                pytest.fail(f"live server did not start:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.2)

    def status(self) -> dict | None:
        import json

        try:
            with LOOPBACK.open(self.url + "/live/status", timeout=5) as reply:
                return json.loads(reply.read())
        except OSError:
            return None

    @property
    def rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live_page")
    models = root / "models"
    write_liveportrait(models, "official", widths="tiny")
    write_joyvasa(models)
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="float32")
    assert rate == RATE
    speech = root / "speech.wav"
    sf.write(str(speech), wave[: int(CLIP_S * rate)], rate, subtype="PCM_16")
    server = LiveServer(root, models, fixture_path("astronaut.png"))
    try:
        yield {"root": root, "server": server, "speech": speech, "wave": wave[: int(CLIP_S * rate)]}
    finally:
        code = server.stop()
        assert code == 0, f"the live server must stop cleanly on Ctrl-C (exit {code}):\n{server.log.read_text()}"


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/live/ws"


def wait_sessions(server: LiveServer, count: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while server.status()["sessions"] != count:
        assert time.monotonic() < end, f"sessions stayed at {server.status()['sessions']}, expected {count}"
        time.sleep(0.1)


PAGE_TIMES = """const l = window.joyvasaLive;
const end = l.sends.find((s) => s[0] >= arguments[0]);
return {frames: l.frames, sent: l.sentSamples, latencies: l.latencies, error: l.error, outOfOrder: l.outOfOrder,
        started: l.sends.length ? l.sends[0][1] : null, speechEnd: end ? end[1] : null, drawn: l.drawnAt,
        shown: {latency: document.getElementById("latency").textContent,
                fps: document.getElementById("fps").textContent}};"""


def stream_the_microphone(browser: Browser) -> list:
    """Start, poll the face and the figures as the user sees them (stamped with the page's clock) until the page has
    sent the clip, stop, and poll on until the last frame is shown."""
    browser.click("#start")
    samples, end, stopped = [], time.monotonic() + 120, False
    while time.monotonic() < end:
        samples.append(browser.js(FRAME_SUM))
        if samples[-1][3]:
            break
        if not stopped and samples[-1][2] >= CLIP_S * RATE:
            browser.click("#stop")  # the speech is over: flush the look-ahead
            stopped = True
        time.sleep(0.05)
    assert stopped and samples[-1][3], f"no end of stream: {samples[-3:]}"
    return samples


def test_page_shows_the_face_talking_while_the_speech_plays(live):
    tools = browser_tools()
    if not all(tools):
        pytest.fail("the live page test needs Debian's chromium and chromium-driver (scripts/setup_comfyui.sh)")
    server = live["server"]
    with Browser(free_port(), extra_args=fake_microphone_args(live["speech"])) as browser:
        browser.open(server.url + "/live/")
        browser.wait_for("return window.joyvasaLive && window.joyvasaLive.status === 'ready'", "the portrait", 30)
        portrait = browser.js(FRAME_SUM)[0]
        samples = stream_the_microphone(browser)
        browser.screenshot(live["root"] / "live_page.png")
        state = browser.js(PAGE_TIMES, int((CLIP_S - START_MARGIN_S) * RATE))
    assert state["error"] == "" and state["outOfOrder"] == 0, state
    sent_s = state["sent"] / RATE
    assert sent_s >= CLIP_S
    assert abs(state["frames"] - sent_s * FPS) <= 3, f"{state['frames']} frames for {sent_s:.2f} s of audio sent"
    speech_end, drawn = state["speechEnd"], state["drawn"]
    timeline = f"speech sent from {state['started']:.0f} to {speech_end:.0f} ms, frames drawn at {drawn[:3]} ... " \
               f"{drawn[-3:]}, polls (sum, frames, page ms): {[(x[0], x[1], round(x[6])) for x in samples]}"
    assert len(drawn) == state["frames"] and drawn[0] < speech_end, "first frame before the speech ended: " + timeline
    during = [x for x in samples if x[1] > 0 and x[6] < speech_end]
    # Half a second of video, with room for a loaded machine (at load average 7 here, 32 of 76 frames were in time).
    assert sum(t < speech_end for t in drawn) >= FPS // 2, "frames shown while the speech played: " + timeline
    assert len({x[0] for x in during}) >= 3 and all(x[0] != portrait for x in during), \
        "the face changed on screen while the speech played: " + timeline
    fps = [int(x[4]) for x in during if x[4].isdigit()]
    assert fps and all(0 < f <= 2 * FPS for f in fps), f"fps figures (frames drawn in the last second): {fps}"
    latency = [float(x[5].removesuffix(" ms")) for x in during if x[5].endswith(" ms")]
    assert latency and all(0 < ms < 5000 for ms in latency), f"latency figures while speaking: {latency}"
    assert len(state["latencies"]) >= 0.8 * state["frames"]
    assert all(x > 0 for x in state["latencies"]), "a frame never comes before the chunk that completed it"
    shot = cv2.imread(str(live["root"] / "live_page.png"))
    assert shot is not None and shot.shape[0] > 300


def test_three_clients_at_once_each_get_the_whole_stream(live):
    server = live["server"]
    speech = live["wave"][: int(CLIENT_S * RATE)]

    async def three():
        return await asyncio.gather(*[stream_speech(ws_url(server), speech) for _ in range(3)])

    streams = asyncio.run(three())
    expected = round(CLIENT_S * FPS)
    for stream in streams:
        assert stream.errors == [] and stream.close_code == 1000, (stream.errors, stream.close_code)
        seqs = [h["seq"] for h in stream.headers]
        assert seqs == list(range(expected)), f"frames 0..{expected - 1} in order, none missing or repeated: {seqs}"
        assert stream.done == {"type": "done", "frames": expected}
        first = cv2.imdecode(np.frombuffer(stream.jpegs[0], np.uint8), cv2.IMREAD_COLOR)
        assert first is not None and first.shape == (512, 512, 3)
        assert all(h["upto"] <= len(speech) for h in stream.headers)
    same_seed = [[h["seq"] for h in s.headers] for s in streams]
    assert same_seed[0] == same_seed[1] == same_seed[2]
    wait_sessions(server, 0)


def test_disconnect_mid_stream_frees_the_session(live):
    server = live["server"]
    hang_up = functools.partial(stream_speech, ws_url(server), live["wave"], realtime=False, hang_up_after_frames=1)
    asyncio.run(hang_up())  # a session's one-time allocations (thread pools, allocator arenas) happen before
    wait_sessions(server, 0)
    before = server.rss

    async def hang_ups():
        return await asyncio.gather(*[hang_up() for _ in range(3)])

    for _ in range(2):
        streams = asyncio.run(hang_ups())
        assert all(s.headers and s.done is None for s in streams), "each client left mid-stream, after a frame"
        wait_sessions(server, 0)
    after = server.rss
    assert after <= 1.2 * before, f"server RSS {after / 2**20:.0f} MiB after 6 dropped sessions, " \
        f"{before / 2**20:.0f} MiB before"


def test_refused_message_shows_on_the_page_while_others_go_on(live):
    server = live["server"]

    async def good_and_bad():
        bad = np.full(640, np.nan, np.float32)
        return await asyncio.gather(stream_speech(ws_url(server), live["wave"][: int(CLIENT_S * RATE)]),
                                    stream_speech(ws_url(server), bad))

    good, bad = asyncio.run(good_and_bad())
    assert bad.errors == ["live: float32 samples must be finite and about -1..1: this message is not audio"]
    assert bad.close_code == 1003
    assert good.errors == [] and good.done == {"type": "done", "frames": round(CLIENT_S * FPS)}
    with Browser(free_port(), extra_args=fake_microphone_args(live["speech"])) as browser:
        browser.open(server.url + "/live/")
        browser.wait_for("return window.joyvasaLive && window.joyvasaLive.status === 'ready'", "the portrait", 30)
        browser.click("#start")
        browser.wait_for("return window.joyvasaLive.sentSamples > 0", "the microphone streaming", 30)
        browser.js("window.joyvasaLive.socket.send(new ArrayBuffer(500000));")
        message = browser.wait_for("""const m = document.getElementById("message");
            return !m.hidden && m.textContent;""", "the refusal on the page", 30)
        assert message == ("live: an audio message of 500,000 bytes is over the limit of 192,000 bytes; send "
                           "chunks of at most 3000 ms")
        browser.wait_for("return document.getElementById('status').textContent === 'closed'", "closed", 30)
        assert browser.js("return document.getElementById('start').disabled") is False, "Start again is offered"
    wait_sessions(server, 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--out", "x.mp4"], "error: --out x.mp4: without --audio, live serves its page and writes no video; drop --out, "
                          "or give --audio to drive the session from a file."),
     (["--max-sessions", "0"], "error: --max-sessions 0: out of range; viewers served at once, each with its own "
                               "session and worker thread. Use 1 to 64."),
     (["--port", "70000"], "error: --port 70000: out of range; a TCP port. Use 1 to 65535."),
     (["--blinks", "if_none"], "error: --blinks if_none: live cannot look for blinks in a motion that is still being "
                               "made; use off or on."),
     (["--blink-rate", "-1"], "error: --blink-rate -1.0: out of range; blinks per minute (people blink 15-20 times a "
                              "minute). Use 0.0 to 120.0.")],
)
def test_page_options_are_refused_in_one_line(extra, message, capsys, tmp_path):
    code = cli.main(["live", "--image", str(fixture_path("astronaut.png")), "--models", str(tmp_path), *extra])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]
    assert list(tmp_path.iterdir()) == [] and not (REPO / "x.mp4").exists()


def test_only_loopback_is_served_without_a_warning():
    assert [exposure_warning(h) for h in ("127.0.0.1", "localhost", "::1")] == [None, None, None]
    assert exposure_warning("0.0.0.0").startswith("warning: --host 0.0.0.0 serves the live page")
