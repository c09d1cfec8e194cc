"""The live page's server: the browser streams speech up a WebSocket and the talking face comes back a JPEG per frame.

``live_routes(hub, prefix)`` gives aiohttp route definitions that any app can add: the command line's own app
(``serve``, prefix ``""``) and ComfyUI's server (prefix ``/joyvasa``). Under ``{prefix}/live/``:

- ``/`` the page, ``/{asset}`` its script, worklet and style (``page/``);
- ``/portrait.jpg?source=NAME`` the portrait shown before the face starts talking;
- ``/status`` the sources offered and the sessions open (JSON);
- ``/ws?source=NAME`` the WebSocket (wire format: ``wire.py``).

Each connection opens its own session from the source's factory and closes it when the socket ends, however it
ends. Pushing speech and encoding frames run on a worker thread, so the event loop (and ComfyUI's server on it)
keeps answering everyone else while a session computes. A message that is too large or not audio gets an error
message and that connection is closed; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from ..errors import JoyVASAError
from .wire import StreamFormat, WireError, control, decode_pcm, encode_frame, parse_control, stream_format

log = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).with_name("page")
PAGE_ASSETS = {"live.js": "text/javascript", "capture.js": "text/javascript", "live.css": "text/css"}
DEFAULT_SOURCE = "default"
# Speech may trail the clock this long before the session fills silence: a browser's audio stalls for a few hundred
# ms on a loaded machine or network, and filled silence would push the late speech back for good.
KEEP_ALIVE_GRACE_S = 0.5


class LiveFrame(Protocol):
    """A finished frame as the engine hands it out (``joyvasa_core.live.LiveFrame``)."""

    index: int
    image: np.ndarray
    speech_time: float  # when the push that completed its speech came (``time.perf_counter`` seconds)
    time: float  # when it was finished


class LiveSession(Protocol):
    """What the server needs of the engine's live session (``joyvasa_core.live.LiveSession``)."""

    def push(self, samples: np.ndarray, sample_rate: int) -> Iterable[LiveFrame]: ...

    def keep_alive(self, grace: float) -> Iterable[LiveFrame]: ...

    def finish(self) -> Iterable[LiveFrame]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LiveLimits:
    """What one server accepts: message size (1 s of 48 kHz float32 by default), sessions at once, JPEG quality."""

    max_message_bytes: int = 48000 * 4
    max_sessions: int = 4
    jpeg_quality: int = 85


@dataclass(frozen=True)
class LiveSource:
    """A face a viewer can talk through: ``open_session`` makes one session per connection (models and the
    prepared face are shared, the session's state is its own); ``portrait_jpeg`` is shown before it starts."""

    open_session: Callable[[], LiveSession]
    portrait_jpeg: bytes
    fps: float = 25.0
    label: str = ""


@dataclass
class LiveHub:
    """The sources a server offers, by name, and the sessions open on it."""

    limits: LiveLimits = field(default_factory=LiveLimits)
    sources: dict[str, LiveSource] = field(default_factory=dict)
    sessions: int = 0
    connections: set[_Connection] = field(default_factory=set)

    def offer(self, name: str, source: LiveSource) -> None:
        """Offer (or replace) a source; connections already open keep the session they have."""
        self.sources[name] = source

    async def close_all(self) -> None:
        """Tell every viewer the server is going away and end their sessions (an app's ``on_shutdown``): a session
        stops after the frame it is making, instead of the server waiting for whole streams."""
        for connection in list(self.connections):
            connection.closed.set()
            connection.wake.set()
            await connection.ws.close(code=WSCloseCode.GOING_AWAY, message=b"live: the server is shutting down")


def live_routes(hub: LiveHub, prefix: str = "") -> list[web.RouteDef]:
    """The page, its assets, the portrait, the status and the WebSocket under ``{prefix}/live/``."""
    base = prefix.rstrip("/") + "/live"

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(base + "/" + (f"?{request.query_string}" if request.query_string else ""))

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PAGE_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in PAGE_ASSETS:
            raise web.HTTPNotFound(text=f"live: no page file {name!r}")
        return web.FileResponse(PAGE_DIR / name, headers={"Content-Type": PAGE_ASSETS[name],
                                                           "Cache-Control": "no-cache"})

    async def portrait(request: web.Request) -> web.StreamResponse:
        source = _source(hub, request)
        return web.Response(body=source.portrait_jpeg, content_type="image/jpeg")

    async def status(request: web.Request) -> web.StreamResponse:
        sources = {name: {"label": s.label, "fps": s.fps} for name, s in hub.sources.items()}
        return web.json_response({"sources": sources, "sessions": hub.sessions,
                                  "max_sessions": hub.limits.max_sessions})

    async def socket(request: web.Request) -> web.StreamResponse:
        return await _Connection(hub, request).run()

    return [web.get(base, redirect), web.get(base + "/", page), web.get(base + "/ws", socket),
            web.get(base + "/status", status), web.get(base + "/portrait.jpg", portrait),
            web.get(base + "/{name}", asset)]


def _source(hub: LiveHub, request: web.Request) -> LiveSource:
    name = request.query.get("source", DEFAULT_SOURCE)
    source = hub.sources.get(name)
    if source is None:
        offered = ", ".join(sorted(hub.sources)) or "none yet (run a workflow with a JoyVASA Live node)"
        raise web.HTTPNotFound(text=f"live: no source {name!r}; offered: {offered}")
    return source


class _Close:
    """An outbox item: close the socket with this code, after everything queued before it is sent."""

    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason


class _Connection:
    """One viewer: its socket, its session, the audio waiting to be pushed and the messages waiting to be sent (one
    ordered outbox, so an error always reaches the page before the close)."""

    def __init__(self, hub: LiveHub, request: web.Request) -> None:
        self.hub, self.request = hub, request
        self.loop = asyncio.get_running_loop()
        self.ws = web.WebSocketResponse(max_msg_size=4 * hub.limits.max_message_bytes, heartbeat=20.0)
        self.format: StreamFormat | None = None
        self.pending: list[np.ndarray] = []
        self.wake = asyncio.Event()
        self.outbox: asyncio.Queue[str | bytes | _Close | None] = asyncio.Queue()
        self.stopping = False
        self.closed = threading.Event()  # read by the worker thread between frames
        self.received = 0  # samples of the viewer's audio received
        self.arrived = 0.0  # when the newest audio came
        self.pushes: deque[tuple[float, int, float]] = deque()  # (push time, samples received, newest arrival)
        self.sent_frames = 0

    async def run(self) -> web.WebSocketResponse:
        source = _source(self.hub, self.request)
        await self.ws.prepare(self.request)
        sender = asyncio.ensure_future(self._send())
        self.hub.connections.add(self)
        try:
            if self.hub.sessions >= self.hub.limits.max_sessions:
                self._refuse(f"live: {self.hub.sessions} sessions are open, the server's limit; try again when one "
                             "ends (or start the server with a larger --max-sessions)", WSCloseCode.TRY_AGAIN_LATER)
                return self.ws
            self.hub.sessions += 1
            try:
                await self._serve(source)
            finally:
                self.hub.sessions -= 1
        finally:
            self.hub.connections.discard(self)
            self.outbox.put_nowait(None)
            await sender
        return self.ws

    async def _serve(self, source: LiveSource) -> None:
        try:
            session = await asyncio.to_thread(source.open_session)
        except Exception as err:  # this viewer gets the reason; the server goes on
            if not isinstance(err, JoyVASAError):
                log.exception("live: a session did not open")
            self._refuse(f"live: the session did not open: {err}", WSCloseCode.INTERNAL_ERROR)
            return
        worker = asyncio.ensure_future(self._work(session, source.fps))
        del session  # the worker owns it and closes it
        self.outbox.put_nowait(control("ready", fps=source.fps, max_bytes=self.hub.limits.max_message_bytes))
        try:
            await self._receive()
        finally:
            self.closed.set()
            self.wake.set()
            await asyncio.shield(worker)

    async def _receive(self) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.ERROR:
                log.info("live: connection error: %s", self.ws.exception())
                return
            try:
                if msg.type == WSMsgType.TEXT:
                    self._on_control(parse_control(msg.data))
                elif msg.type == WSMsgType.BINARY:
                    self._on_audio(decode_pcm(msg.data, self.format, self.hub.limits.max_message_bytes))
            except WireError as err:
                self._refuse(str(err), WSCloseCode.UNSUPPORTED_DATA)
                return

    def _on_control(self, message: dict) -> None:
        if message["type"] == "start":
            if self.format is not None:
                raise WireError("live: start was sent twice; open a new connection for a new stream")
            self.format = stream_format(message)
        else:
            self.stopping = True
            self.wake.set()

    def _on_audio(self, samples: np.ndarray) -> None:
        if self.stopping:
            raise WireError("live: audio after stop; open a new connection for a new stream")
        self.pending.append(samples)
        self.received += len(samples)
        self.arrived = time.perf_counter()
        self.wake.set()

    async def _work(self, session: LiveSession, fps: float) -> None:
        """Pushes what has arrived (all of it at once when the engine fell behind), keeps the face alive while no
        speech comes, and flushes on stop."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), 1 / fps if self.pushes else None)
                self.wake.clear()
                if self.closed.is_set():
                    return
                if self.pending:
                    samples, self.pending = np.concatenate(self.pending), []
                    self.pushes.append((time.perf_counter(), self.received, self.arrived))
                    await asyncio.to_thread(self._emit, functools.partial(session.push, samples,
                                                                          self.format.sample_rate), fps)
                    self.wake.set()  # look again: a stop may have come with this audio
                elif self.stopping:
                    await asyncio.to_thread(self._emit, session.finish, fps)
                    self.outbox.put_nowait(control("done", frames=self.sent_frames))
                    return
                elif self.pushes:  # the speech stalled: the face goes on with the model's silence motion
                    await asyncio.to_thread(self._emit, functools.partial(session.keep_alive, KEEP_ALIVE_GRACE_S),
                                            fps)
        except Exception as err:  # the engine failed: tell this viewer, keep serving the others
            if not isinstance(err, JoyVASAError):
                log.exception("live: session failed")
            self._refuse(f"live: the session stopped: {err}", WSCloseCode.INTERNAL_ERROR)
        finally:
            await asyncio.to_thread(session.close)

    def _emit(self, frames: Callable[[], Iterable[LiveFrame]], fps: float) -> None:
        """Worker thread: runs the engine call, encodes each frame as it comes and hands it to the event loop."""
        produced = frames()
        try:
            for frame in produced:
                if self.closed.is_set():
                    break
                upto, arrived = self._completing_push(frame.speech_time)
                message = encode_frame(frame.index, fps, frame.image, self.hub.limits.jpeg_quality, upto,
                                       frame.time - frame.speech_time, arrived)
                self.sent_frames += 1
                self.loop.call_soon_threadsafe(self.outbox.put_nowait, message)
        finally:
            close = getattr(produced, "close", None)
            if close is not None:
                close()

    def _completing_push(self, speech_time: float) -> tuple[int, float]:
        """The viewer's samples received up to the push that completed a frame's speech (the page times the frame's
        latency from when it sent the last of them) and when they arrived; frames come in order, so older pushes are
        dropped as they go by."""
        while len(self.pushes) > 1 and self.pushes[1][0] <= speech_time:
            self.pushes.popleft()
        return self.pushes[0][1], self.pushes[0][2]

    async def _send(self) -> None:
        while (message := await self.outbox.get()) is not None:
            if self.ws.closed:
                continue
            try:
                if isinstance(message, _Close):
                    await self.ws.close(code=message.code, message=message.reason.encode()[:120])
                elif isinstance(message, bytes):
                    await self.ws.send_bytes(message)
                else:
                    await self.ws.send_str(message)
            except ConnectionError:
                self.closed.set()

    def _refuse(self, message: str, code: int) -> None:
        log.info("%s", message)
        self.outbox.put_nowait(control("error", message=message))
        self.outbox.put_nowait(_Close(code, message))


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def exposure_warning(host: str) -> str | None:
    """The warning printed when the page is served beyond this machine, or None on loopback."""
    if host in LOOPBACK_HOSTS:
        return None
    return (f"warning: --host {host} serves the live page, the portrait and a session per visitor to every machine "
            "that can reach this one; browsers only open the microphone on https or localhost pages")


def live_app(hub: LiveHub) -> web.Application:
    """The command line's own app: the live routes, and ``/`` sending the browser to the page."""

    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/live/")

    async def shutdown(app: web.Application) -> None:
        await hub.close_all()

    app = web.Application()
    app.add_routes([web.get("/", home), *live_routes(hub)])
    app.on_shutdown.append(shutdown)
    return app


def serve(hub: LiveHub, host: str = "127.0.0.1", port: int = 8765, announce: Callable[[str], None] = print) -> None:
    """Serves the page until Ctrl-C or SIGTERM (raised as KeyboardInterrupt by the caller's handler); ``announce``
    gets the page's address once the socket listens."""
    warning = exposure_warning(host)
    if warning:
        announce(warning)
    asyncio.run(_serve(live_app(hub), host, port, announce))


async def _serve(app: web.Application, host: str, port: int, announce: Callable[[str], None]) -> None:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        announce(f"live page: http://{shown}:{bound}/live/ (Ctrl-C stops)")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
