"""Installed through the real ComfyUI-Manager: its own installer (``cm-cli`` of the PyPI ``comfyui-manager``) installs
this repository from a git URL into a fresh ComfyUI tree, offline; the next start loads every node, and install.py
ran (it creates models/joyvasa).

Offline means: the git URL is this repository's committed HEAD, cloned bare and served by a plain HTTP server on
127.0.0.1 (cm-cli refuses ``file://`` URLs: it wants a host), and ``--mode local`` makes cm-cli use the node list it
ships instead of fetching the online one. Everything else (clone, requirements.txt line by line with uv, install.py
with the pack as working directory) is cm-cli's own code. It installs into the Python that runs it: this venv, which
already satisfies requirements.txt, so nothing is downloaded."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from comfyui_harness import COMFYUI_DIR, StartFailed, start_server, stop

pytestmark = pytest.mark.comfyui
REPO = Path(__file__).resolve().parents[2]
REPO_NAME = "ComfyUI-JoyVASA"
TOP_SKIP = {".git", "models", "custom_nodes", "user", "input", "output", "temp", "web_root"}  # the user's, not code


def _fresh_comfyui(dest: Path) -> Path:
    """A copy of the tested ComfyUI's code with empty custom_nodes/ and models/, as a new install has."""
    def skip(folder: str, names: list[str]) -> list[str]:
        top = Path(folder) == COMFYUI_DIR
        return [n for n in names if n == "__pycache__" or (top and n in TOP_SKIP)]

    shutil.copytree(COMFYUI_DIR, dest, ignore=skip)
    for sub in ("custom_nodes", "models", "user/default", "web_root"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    (dest / "user" / "default" / "comfy.settings.json").write_text('{"Comfy.TutorialCompleted": true}')
    return dest


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's signature
        """No line per request on stderr."""


def _served_repo(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """This repository's HEAD as a bare git repository behind a loopback HTTP server (git's dumb protocol)."""
    bare = root / f"{REPO_NAME}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(REPO), str(bare)], check=True, timeout=120)
    subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True, timeout=60)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/{REPO_NAME}.git"


def test_cm_cli_installs_the_pack_and_comfyui_loads_every_node(tmp_path):
    if os.environ.get("JOYVASA_SKIP_COMFYUI") == "1":
        pytest.skip("JOYVASA_SKIP_COMFYUI=1")
    cm_cli = Path(sys.executable).parent / "cm-cli"
    assert cm_cli.exists(), "comfyui-manager is not installed (requirements-test.txt)"
    comfy = _fresh_comfyui(tmp_path / "ComfyUI")
    git_server, url = _served_repo(tmp_path / "served")
    env = dict(os.environ, COMFYUI_PATH=str(comfy), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        res = subprocess.run([str(cm_cli), "install", url, "--mode", "local", "--exit-on-fail"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=600)
    finally:
        git_server.shutdown()
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "[INSTALLED]" in out, out[-4000:]
    installed = comfy / "custom_nodes" / REPO_NAME
    assert (installed / "__init__.py").is_file() and (installed / "nodes" / "schema.py").is_file()
    assert "install.py" in out and (comfy / "models" / "joyvasa").is_dir(), "install.py did not run"

    try:
        server = start_server(comfy, comfyui_dir=comfy)
    except StartFailed as err:
        pytest.fail(str(err), pytrace=False)
    try:
        info = server.object_info()
        ours = sorted(n for n, spec in info.items() if spec.get("python_module") == f"custom_nodes.{REPO_NAME}")
        assert len(ours) == 23, ours
        assert "JoyVASASampleMotion" in ours and info["JoyVASASampleMotion"]["deprecated"] is True
        log = server.log()
        assert "IMPORT FAILED" not in log and "Traceback" not in log, server.log_tail()
    finally:
        stop(server.process)
