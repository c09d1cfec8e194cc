"""A real ComfyUI server process and a standard-library HTTP client for it (used by conftest.py's fixtures)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import tomllib

# Loopback only: never route through an http_proxy from the environment.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
REPO = Path(__file__).resolve().parents[2]
COMFYUI_DIR = Path(os.environ.get("JOYVASA_COMFYUI_DIR", REPO / ".comfyui" / "ComfyUI"))
PACK_NAME = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
SKIP_REASON = "JOYVASA_SKIP_COMFYUI=1: real-ComfyUI tests disabled (run `bash scripts/setup_comfyui.sh` and unset it)"
# Another web UI than the installed comfyui-frontend-package: its ``static`` folder, served with --front-end-root
# (scripts/setup_comfyui.sh installs the newest tested one under .comfyui/frontends/; scripts/test.sh sets this for
# the second pass of the browser checks).
FRONTEND_ROOT_ENV = "JOYVASA_COMFYUI_FRONTEND_ROOT"
START_TIMEOUT_S = 240.0
HTTP_TIMEOUT_S = 60.0


class PromptRejected(AssertionError):
    """``POST /prompt`` answered 4xx: the server's validation refused the prompt (body has ``node_errors``)."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"HTTP {status}: {json.dumps(body)[:2000]}")
        self.status, self.body = status, body


class ComfyServer:
    """A running ComfyUI process plus a small standard-library HTTP client for it."""

    def __init__(self, url: str, base: Path, log_path: Path, process: subprocess.Popen) -> None:
        self.url, self.base, self.log_path, self.process = url, base, log_path, process
        self.pack_name = PACK_NAME
        self.pack_dir = base / "custom_nodes" / PACK_NAME
        self.startup_s = 0.0
        self.frontend = False  # True when the real web UI is served (else an empty web root)

    def request(self, method: str, path: str, body: dict | None = None) -> object:
        """JSON in, JSON out; HTTP errors propagate as ``urllib.error.HTTPError``."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with LOOPBACK.open(req, timeout=HTTP_TIMEOUT_S) as resp:
            return json.loads(resp.read() or b"null")

    def ready(self) -> bool:
        """True once the server answers HTTP (it only listens after every node module, ours included, loaded)."""
        try:
            self.request("GET", "/system_stats")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    def get_bytes(self, path: str) -> tuple[int, bytes]:
        """Raw GET (status, body), for static files such as the web extension."""
        try:
            with LOOPBACK.open(self.url + path, timeout=HTTP_TIMEOUT_S) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def object_info(self, node_class: str | None = None) -> dict:
        """``/object_info`` (all node types) or ``/object_info/<class>`` (one)."""
        if node_class is None:
            return self.request("GET", "/object_info")
        return self.request("GET", "/object_info/" + urllib.parse.quote(node_class))

    def queue(self, prompt: dict, extra_data: dict | None = None) -> str:
        """POST an API-format prompt; returns its id, raises ``PromptRejected`` when validation refuses it."""
        body = {"prompt": prompt, "client_id": "pytest-" + uuid.uuid4().hex}
        if extra_data:
            body["extra_data"] = extra_data
        try:
            return self.request("POST", "/prompt", body)["prompt_id"]
        except urllib.error.HTTPError as err:
            raise PromptRejected(err.code, json.loads(err.read() or b"{}")) from None

    def wait(self, prompt_id: str, timeout: float = 600.0) -> dict:
        """Block until the prompt is finished (success or error); returns its ``/history`` entry."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            history = self.request("GET", "/history/" + prompt_id)
            entry = history.get(prompt_id) if history else None
            if entry and entry.get("status", {}).get("completed") is not None:
                return entry
            if self.process.poll() is not None:
                raise RuntimeError("ComfyUI died while running a prompt:\n" + self.log_tail())
            time.sleep(0.1)
        raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s:\n{self.log_tail()}")

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        """Queue a prompt and wait for it; returns the ``/history`` entry (check ``entry['status']['status_str']``)."""
        return self.wait(self.queue(prompt), timeout)

    def upload(self, path: Path, subfolder: str = "", name: str | None = None) -> str:
        """Upload a file to ``input/`` (``POST /upload/image``, which takes audio and video too); returns the name
        to put in a Load* node's widget."""
        boundary = "joyvasa" + uuid.uuid4().hex
        fields = {"type": "input", "subfolder": subfolder, "overwrite": "true"}
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            for key, value in fields.items()
        ]
        filename = name or path.name
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + path.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        req = urllib.request.Request(
            self.url + "/upload/image",
            data=b"".join(parts),
            method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with LOOPBACK.open(req, timeout=HTTP_TIMEOUT_S) as resp:
            info = json.loads(resp.read())
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    def output_path(self, file_entry: dict) -> Path:
        """Where a ``{"filename", "subfolder", "type"}`` entry of a history output lives on disk."""
        return self.base / file_entry.get("type", "output") / file_entry.get("subfolder", "") / file_entry["filename"]

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, chars: int = 6000) -> str:
        return self.log()[-chars:]


# Imports the pack the way ComfyUI's nodes.load_custom_node does (module named after its path, package search path =
# the pack dir), inside the real ComfyUI tree, asks its V3 entry point for the nodes and prints what it exports. Run
# in a subprocess so the test process never gets ComfyUI's top-level modules (nodes, utils, server) on its path.
READ_EXPORTS = """
import asyncio, importlib.util, json, os, sys
sys.path.insert(0, os.getcwd())
from comfy.cli_args import args
args.cpu = True
import utils.extra_config  # binds the `utils` package before comfy/utils.py can shadow it
from comfy_api.latest import io
pack = sys.argv[1]
name = pack.replace(".", "_x_")
init = os.path.join(pack, "__init__.py")
spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[pack])
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
nodes = asyncio.run(asyncio.run(module.comfy_entrypoint()).get_node_list())
schemas = [n.GET_SCHEMA() for n in nodes]
print(json.dumps({
    "v1_mappings": hasattr(module, "NODE_CLASS_MAPPINGS"),
    "all_v3": all(issubclass(n, io.ComfyNode) for n in nodes),
    "node_ids": sorted(s.node_id for s in schemas),
    "display_names": {s.node_id: s.display_name for s in schemas},
    "hidden": sorted(s.node_id for s in schemas if s.is_deprecated),
    "WEB_DIRECTORY": getattr(module, "WEB_DIRECTORY", None),
}))
"""


async def prompt_events(session, url: str, prompt: dict):
    """Queue ``prompt`` on the server at ``url`` over an aiohttp ``session`` and yield ``(prompt_id, event)`` for
    each websocket event of that prompt, until the websocket closes (the caller stops iterating when done)."""
    import aiohttp

    client_id = uuid.uuid4().hex
    async with session.ws_connect(url.replace("http://", "ws://") + f"/ws?clientId={client_id}") as ws:
        async with session.post(url + "/prompt", json={"prompt": prompt, "client_id": client_id}) as resp:
            assert resp.status == 200, await resp.text()
            prompt_id = (await resp.json())["prompt_id"]
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            if event.get("data", {}).get("prompt_id") in (None, prompt_id):
                yield prompt_id, event


def frontend_installed() -> bool:
    """Whether the real web UI (``comfyui-frontend-package``, installed with the browser check) is importable, or
    another one is named by ``JOYVASA_COMFYUI_FRONTEND_ROOT``."""
    return bool(frontend_root()) or importlib.util.find_spec("comfyui_frontend_package") is not None


def frontend_root() -> str:
    """The web UI folder named by ``JOYVASA_COMFYUI_FRONTEND_ROOT`` ("" = the installed package's); a name that is
    not a built web UI fails loudly rather than testing the default one."""
    root = os.environ.get(FRONTEND_ROOT_ENV, "")
    if root and not (Path(root) / "index.html").is_file():
        raise StartFailed(f"{FRONTEND_ROOT_ENV}={root}: no index.html there; run `bash scripts/setup_comfyui.sh`, "
                          "which installs the newest tested web UI under .comfyui/frontends/")
    return root


def frontend_version() -> str:
    """The version of the web UI the server is started with: the one ``JOYVASA_COMFYUI_FRONTEND_ROOT`` names (its
    ``pip --target`` folder holds the package's dist-info) or the installed package's."""
    root = frontend_root()
    if not root:
        return importlib.metadata.version("comfyui-frontend-package")
    found = sorted(Path(root).parents[1].glob("comfyui_frontend_package-*.dist-info"))
    return found[0].name.removeprefix("comfyui_frontend_package-").removesuffix(".dist-info") if found else "unknown"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)




class StartFailed(RuntimeError):
    """The server exited or did not answer in time; the message holds the log tail."""


def make_base(base: Path) -> Path:
    """A ``--base-directory`` tree with this repository linked into ``custom_nodes`` under ``PACK_NAME``."""
    for sub in ("custom_nodes", "input", "output", "models", "user/default", "web_root"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    # the browser check must not meet the first-run template dialog
    (base / "user" / "default" / "comfy.settings.json").write_text('{"Comfy.TutorialCompleted": true}')
    link = base / "custom_nodes" / PACK_NAME
    if not link.is_symlink():
        link.symlink_to(REPO, target_is_directory=True)
    return base


def start_server(base: Path, env: dict[str, str] | None = None, comfyui_dir: Path = COMFYUI_DIR) -> ComfyServer:
    """Start the ComfyUI of ``comfyui_dir`` on a free loopback port with ``base`` (see :func:`make_base`) and wait
    until it answers; ``env`` replaces the environment (default: this one, offline for the Hugging Face libraries)."""
    port = free_port()
    log_path = base / "server.log"
    cmd = [
        sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--disable-auto-launch", "--disable-api-nodes", "--database-url", "sqlite:///:memory:",
        "--base-directory", str(base),
    ]  # fmt: skip
    frontend = frontend_installed()
    if frontend_root():
        cmd += ["--front-end-root", frontend_root()]
    elif not frontend:  # ComfyUI exits at start-up without a frontend unless it gets a web root to serve
        cmd += ["--front-end-root", str(base / "web_root")]
    env = dict(env if env is not None else dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
               PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=comfyui_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = ComfyServer(f"http://127.0.0.1:{port}", base, log_path, process)
    server.frontend = frontend
    t0 = time.monotonic()
    while not server.ready():
        if process.poll() is not None or time.monotonic() - t0 > START_TIMEOUT_S:
            stop(process)
            raise StartFailed(f"ComfyUI did not start (exit code {process.returncode}, {time.monotonic() - t0:.0f} "
                              f"s). Server log tail:\n{server.log_tail()}")
        time.sleep(0.2)
    server.startup_s = time.monotonic() - t0
    return server
