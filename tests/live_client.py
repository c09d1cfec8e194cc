"""A Python client of the live page's wire protocol (``joyvasa_core/live/wire.py``) for the tests and the bench: it
streams speech up the WebSocket the way the page does (16 kHz float32 chunks, paced like a microphone or as fast as
the socket takes them) and records every frame that comes back with when it arrived."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np

RATE = 16000


def decode_frame(message: bytes) -> tuple[dict, bytes]:
    """A frame message's JSON header and its JPEG bytes."""
    (size,) = struct.unpack_from(">I", message)
    return json.loads(message[4 : 4 + size]), message[4 + size :]


@dataclass
class Stream:
    """What one connection sent and got back; times are ``time.perf_counter()`` seconds."""

    fps: float = 25.0
    sent: list[tuple[int, float]] = field(default_factory=list)  # (samples sent so far, when)
    headers: list[dict] = field(default_factory=list)
    jpegs: list[bytes] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    texts: list[dict] = field(default_factory=list)
    close_code: int | None = None

    @property
    def errors(self) -> list[str]:
        return [t["message"] for t in self.texts if t["type"] == "error"]

    @property
    def done(self) -> dict | None:
        return next((t for t in self.texts if t["type"] == "done"), None)

    def latencies(self) -> list[float]:
        """Seconds from the chunk that completed each frame's speech (the header's ``upto``) leaving the client to
        the frame arriving, as the page measures it."""
        out = []
        ends = [n for n, _ in self.sent]
        for header, arrived in zip(self.headers, self.arrived, strict=True):
            i = int(np.searchsorted(ends, header["upto"]))
            if i < len(self.sent):
                out.append(arrived - self.sent[i][1])
        return out


async def stream_speech(url: str, samples: np.ndarray, chunk_ms: float = 40.0, realtime: bool = True,
                        hang_up_after_frames: int | None = None, timeout: float = 300.0) -> Stream:
    """Streams ``samples`` (16 kHz mono float32) to the live WebSocket at ``url``, then sends stop and waits for
    done; with ``hang_up_after_frames`` it sends no stop and just closes the socket once that many frames came."""
    result = Stream()
    chunk = int(RATE * chunk_ms / 1000)
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        reader = asyncio.ensure_future(_read(ws, result))
        if not await _wait_for(lambda: result.texts, reader) or result.texts[0]["type"] != "ready":
            await reader
            return result
        result.fps = result.texts[0]["fps"]
        await ws.send_str(json.dumps({"type": "start", "sample_rate": RATE, "format": "f32le"}))
        start = time.perf_counter()
        for i in range(0, len(samples), chunk):
            if realtime:
                await asyncio.sleep(max(0.0, start + i / RATE - time.perf_counter()))
            piece = np.ascontiguousarray(samples[i : i + chunk], dtype="<f4")
            await ws.send_bytes(piece.tobytes())
            result.sent.append((i + len(piece), time.perf_counter()))
        if hang_up_after_frames is not None:
            await asyncio.wait_for(_wait_for(lambda: len(result.headers) >= hang_up_after_frames, reader), timeout)
            await ws.close()
        else:
            await ws.send_str(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, timeout)
    return result


async def _wait_for(condition, reader: asyncio.Future) -> bool:
    while not condition():
        if reader.done():
            return False
        await asyncio.sleep(0.01)
    return True


async def _read(ws: aiohttp.ClientWebSocketResponse, result: Stream) -> None:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.BINARY:
            header, jpeg = decode_frame(msg.data)
            result.arrived.append(time.perf_counter())
            result.headers.append(header)
            result.jpegs.append(jpeg)
        elif msg.type == aiohttp.WSMsgType.TEXT:
            result.texts.append(json.loads(msg.data))
            if result.texts[-1]["type"] == "done":
                await ws.close()
    result.close_code = ws.close_code
