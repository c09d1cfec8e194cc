"""The live page's server in this process, on a real aiohttp app under ComfyUI's prefix, with the engine's real
sessions on the small networks: a viewer that hangs up mid-stream has its session closed and garbage-collected, a
viewer past the server's limit is told why, and the event loop keeps answering while sessions compute."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import weakref

import aiohttp
import cv2
import numpy as np
import pytest
import soundfile as sf
from aiohttp import web
from fixture_support import fixture_path
from live_client import RATE, stream_speech
from model_folders import write_joyvasa, write_liveportrait

from joyvasa_core.live.server import LiveHub, LiveLimits, LiveSource, live_routes
from joyvasa_core.live.source import live_source
from joyvasa_core.loading import load_models
from joyvasa_core.motion.streaming import StreamOptions
from joyvasa_core.pipeline import animate_options, prepare_face

PREFIX = "/joyvasa"


class Tracked:
    """The real source, with every session it opens remembered weakly and its close counted."""

    def __init__(self, source: LiveSource) -> None:
        self.source, self.sessions, self.closed = source, [], 0

    def open_session(self):
        session = self.source.open_session()
        self.sessions.append(weakref.ref(session))
        close = session.close

        def counted_close() -> None:
            self.closed += 1
            close()

        session.close = counted_close
        return session


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("live_server") / "models"
    write_liveportrait(models_dir, "official")
    write_joyvasa(models_dir)
    models = load_models(models_dir, device="cpu")
    options = animate_options(sampling={"seed": 0})
    image = cv2.cvtColor(cv2.imread(str(fixture_path("astronaut.png"))), cv2.COLOR_BGR2RGB)
    face = prepare_face(image, models.liveportrait, models.detector, options)
    real = live_source(lambda: models.liveportrait, lambda: models.motion_model, face, options, StreamOptions())
    tracked = Tracked(real)
    hub = LiveHub(LiveLimits(max_sessions=2))
    hub.offer("face", LiveSource(tracked.open_session, real.portrait_jpeg, real.fps))
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.add_routes(live_routes(hub, PREFIX))
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="float32")
    assert rate == RATE
    try:
        yield {"hub": hub, "tracked": tracked, "url": f"ws://127.0.0.1:{port}{PREFIX}/live/ws?source=face",
               "http": f"http://127.0.0.1:{port}{PREFIX}/live", "wave": wave}
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_hang_up_mid_stream_closes_and_frees_the_session(app_server):
    tracked, hub = app_server["tracked"], app_server["hub"]
    before = len(tracked.sessions)

    async def hang_up_while_answered():
        streaming = asyncio.ensure_future(stream_speech(app_server["url"], app_server["wave"], realtime=False,
                                                        hang_up_after_frames=2))
        pings = []
        async with aiohttp.ClientSession() as http:
            while not streaming.done():
                t0 = time.perf_counter()
                async with http.get(app_server["http"] + "/status") as reply:
                    assert reply.status == 200
                pings.append(time.perf_counter() - t0)
                await asyncio.sleep(0.1)
        return await streaming, pings

    stream, pings = asyncio.run(hang_up_while_answered())
    assert len(stream.headers) >= 2 and stream.done is None
    assert [h["seq"] for h in stream.headers[:2]] == [0, 1]
    assert len(pings) >= 5, "the server answered other requests while the session computed"
    wait_until(lambda: hub.sessions == 0, "the session count back to 0")
    wait_until(lambda: tracked.closed == before + 1, "close() on the dropped session")
    gc.collect()
    assert all(ref() is None for ref in tracked.sessions), "nothing holds a dropped session"


def test_a_viewer_past_the_limit_is_told_why(app_server):
    hub = app_server["hub"]
    speech = app_server["wave"][: int(0.2 * RATE)]

    async def three():
        first = [asyncio.ensure_future(stream_speech(app_server["url"], speech)) for _ in range(2)]
        await asyncio.sleep(0)
        while hub.sessions < 2:
            await asyncio.sleep(0.01)
        third = await stream_speech(app_server["url"], speech)
        return await asyncio.gather(*first), third

    (a, b), third = asyncio.run(three())
    assert a.done == b.done == {"type": "done", "frames": 5}
    assert third.errors == ["live: 2 sessions are open, the server's limit; try again when one ends (or start the "
                            "server with a larger --max-sessions)"]
    assert third.close_code == 1013
    wait_until(lambda: hub.sessions == 0, "the session count back to 0")


def test_page_assets_portrait_and_status_under_the_prefix(app_server):
    base = app_server["http"]

    async def fetch_all():
        got = {}
        async with aiohttp.ClientSession() as http:
            for path in ("/", "/live.js", "/capture.js", "/live.css", "/secrets.txt", "/portrait.jpg?source=face",
                         "/portrait.jpg?source=nobody", "/status"):
                async with http.get(base + path, allow_redirects=False) as reply:
                    got[path] = (reply.status, reply.headers.get("Content-Type", ""), await reply.read())
            async with http.get(base + "?source=face", allow_redirects=False) as reply:
                got["no slash"] = (reply.status, reply.headers.get("Location"), b"")
        return got

    got = asyncio.run(fetch_all())
    assert got["/"][0] == 200 and b'<script type="module" src="live.js">' in got["/"][2]
    assert got["/live.js"][:2] == (200, "text/javascript") and got["/capture.js"][:2] == (200, "text/javascript")
    assert got["/live.css"][:2] == (200, "text/css")
    assert got["/secrets.txt"][0] == 404
    status, kind, body = got["/portrait.jpg?source=face"]
    assert (status, kind) == (200, "image/jpeg")
    portrait = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert portrait.shape == cv2.imread(str(fixture_path("astronaut.png"))).shape, "the photo it pastes back into"
    assert got["/portrait.jpg?source=nobody"][0] == 404
    assert got["/portrait.jpg?source=nobody"][2] == b"live: no source 'nobody'; offered: face"
    assert json.loads(got["/status"][2]) == {"sources": {"face": {"label": "", "fps": 25.0}}, "sessions": 0,
                                             "max_sessions": 2}
    assert got["no slash"][:2] == (302, PREFIX + "/live/?source=face")
