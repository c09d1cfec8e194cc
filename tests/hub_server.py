"""A real HTTP server on 127.0.0.1 that answers file downloads the way the Hugging Face Hub does, for
``huggingface_hub`` pointed at it with ``HF_ENDPOINT``.

``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}`` answer with ``ETag`` (the sha256 of the content, as the hub
gives for LFS files), ``X-Repo-Commit``, ``Content-Length`` and ``Accept-Ranges``; ``Range: bytes=N-`` gets a 206
with ``Content-Range``; unknown files a 404 with ``X-Error-Code: EntryNotFound``. Every request is counted. Test
switches: replace a file's content (a truncated file, an HTML error page), cut the next GET of a file after some
bytes (a dropped connection), stop and restart on the same port (the hub down). One server per test process.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import threading
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from model_folders import write_joyvasa, write_liveportrait

from joyvasa_core.model_catalog import ANIMAL_V10, HUMAN, MANIFEST, MOTION_GENERATOR

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


class LocalHub:
    """The server and its state; ``files`` maps ``"repo_id/path"`` to bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.originals: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self.cut_next_get: dict[str, int] = {}
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                return None

            def setup(self) -> None:
                super().setup()
                with hub.lock:
                    hub.connections.add(self.connection)

            def finish(self) -> None:
                with hub.lock:
                    hub.connections.discard(self.connection)
                super().finish()

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

            def do_GET(self) -> None:
                hub.answer(self, body=True)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """The hub down: the port refuses connections until :meth:`start`, and kept-alive ones are closed."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):  # the client may have closed it already
                    conn.shutdown(socket.SHUT_RDWR)
            self.connections.clear()

    def reset(self) -> None:
        """Every file back to its original content, no pending cut, the request log empty."""
        with self.lock:
            self.files = dict(self.originals)
            self.requests.clear()
            self.cut_next_get.clear()

    def key_of(self, request_path: str) -> str | None:
        parts = unquote(request_path.split("?", 1)[0]).lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return None
        return "/".join(parts[:2] + parts[4:])

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        rng = handler.headers.get("Range")
        with self.lock:
            self.requests.append(Request(handler.command, handler.path, rng, handler.headers.get("Authorization")))
            key = self.key_of(handler.path)
            data = self.files.get(key) if key else None
            cut = self.cut_next_get.pop(key, None) if body and key else None
        if data is None:
            handler.send_response(404)
            handler.send_header("X-Error-Code", "EntryNotFound")
            handler.send_header("X-Repo-Commit", COMMIT)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        start = 0
        if rng and rng.startswith("bytes="):
            start = int(rng[len("bytes="):].split("-", 1)[0] or 0)
        handler.send_response(206 if start else 200)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        payload = data[start:]
        if cut is not None:
            handler.wfile.write(payload[:cut])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        handler.wfile.write(payload)

    def hub_requests(self, method: str | None = None) -> list[Request]:
        """Requests for hub files (anything else on the port, e.g. a stray local probe, is not the client's)."""
        with self.lock:
            return [r for r in self.requests if "/resolve/" in r.path and (method is None or r.method == method)]

    def fetched(self) -> set[str]:
        """``repo_id/path`` of every file sent with GET."""
        return {self.key_of(r.path) for r in self.hub_requests("GET")}


def _small_repo_files(tmp: Path) -> dict[str, bytes]:
    """The small test networks at the manifest's repository paths: community safetensors, the official .pth tree
    and the JoyVASA checkpoint + template."""
    community, official = tmp / "community", tmp / "official"
    write_liveportrait(community, "community")
    write_liveportrait(official, "official")
    write_liveportrait(official, "official", animal=True)
    write_joyvasa(tmp / "joyvasa")
    lp = community / "liveportrait"
    animal = lp / "animal"
    animal.mkdir()
    for f in lp.glob("*.safetensors"):
        shutil.copy(f, animal / f.name)  # the community animal folder holds all five names
    sources = {
        HUMAN: lp, ANIMAL_V10: animal, MOTION_GENERATOR: tmp / "joyvasa" / "joyvasa",
    }
    out: dict[str, bytes] = {}
    for f in MANIFEST:
        feature = f.features[0]
        if feature in sources:
            src = sources[feature] / f.name
        elif f.repo_id.startswith("KwaiVGI") and f.name.endswith(".pth"):
            src = official / ("liveportrait/retargeting_models" if "retargeting" in f.repo_path else f.folder) / f.name
        else:
            continue  # the optional ONNX files are not served
        out[f"{f.repo_id}/{f.repo_path}"] = src.read_bytes()
    return out


def width_configs(models: Path, tmp: Path) -> None:
    """The width configs of the small networks, at the models folder's root (the finders look there too)."""
    write_liveportrait(tmp / "cfg", "community")
    write_joyvasa(tmp / "cfg")
    models.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp / "cfg" / "liveportrait" / "liveportrait_config.json", models / "liveportrait_config.json")
    shutil.copy(tmp / "cfg" / "joyvasa" / "joyvasa_config.json", models / "joyvasa_config.json")


@lru_cache(maxsize=1)
def shared_hub() -> LocalHub:
    """The one local hub of this test process, serving the small networks in the real repository layouts."""
    import tempfile

    hub = LocalHub()
    with tempfile.TemporaryDirectory() as tmp:
        hub.files.update(_small_repo_files(Path(tmp)))
    hub.originals = dict(hub.files)
    return hub
