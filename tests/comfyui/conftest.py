"""Boots a REAL ComfyUI 0.3.75 server with this repository installed as a custom node pack.

The tree comes from ``scripts/setup_comfyui.sh`` (``.comfyui/ComfyUI``, outside git). Each test session gets one
server on a free loopback port with a temporary ``--base-directory`` (models/, custom_nodes/, input/, output/, user/),
an in-memory database and an empty web root, so nothing outside the temp dir is touched. The repository is symlinked
into ``custom_nodes`` under the Registry install name (pyproject ``[project].name``), which is what Manager and the
Registry use, so relative imports are exercised exactly as users get them.

Env: ``JOYVASA_SKIP_COMFYUI=1`` skips every ``comfyui``-marked test (with a reason); ``JOYVASA_COMFYUI_DIR`` points
at another ComfyUI tree. Otherwise a missing tree fails the tests: they must run, not skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from comfyui_harness import (
    COMFYUI_DIR,
    PACK_NAME,
    READ_EXPORTS,
    SKIP_REASON,
    ComfyServer,
    StartFailed,
    make_base,
    start_server,
    stop,
)
from hub_server import shared_hub


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("JOYVASA_SKIP_COMFYUI") != "1":
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.get_closest_marker("comfyui"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def comfyui(tmp_path_factory: pytest.TempPathFactory):
    """One real ComfyUI server for the session, with this repository loaded as the ``PACK_NAME`` custom node pack."""
    if os.environ.get("JOYVASA_SKIP_COMFYUI") == "1":
        pytest.skip(SKIP_REASON)
    if not (COMFYUI_DIR / "main.py").is_file():
        pytest.fail(f"no ComfyUI tree at {COMFYUI_DIR}: run `bash scripts/setup_comfyui.sh` (scripts/test.sh does)")
    base = make_base(tmp_path_factory.mktemp("comfyui_base"))
    # The hub is the tests' own server on 127.0.0.1 (tests/hub_server.py): model downloads go there, nowhere else.
    env = dict(os.environ, HF_ENDPOINT=shared_hub().url)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        env.pop(name, None)
    try:
        server = start_server(base, env)
    except StartFailed as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield server
    finally:
        stop(server.process)
        (base / "custom_nodes" / PACK_NAME).unlink(missing_ok=True)  # never let a temp-dir cleanup walk into the repo


@pytest.fixture(scope="session")
def pack_exports(comfyui: ComfyServer) -> dict:
    """What the pack's ``__init__.py`` exports (its V3 entry point's node ids and display names, ``WEB_DIRECTORY``),
    read by importing it in a separate interpreter inside the same ComfyUI tree."""
    proc = subprocess.run(
        [sys.executable, "-c", READ_EXPORTS, str(comfyui.pack_dir)],
        cwd=COMFYUI_DIR, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
    )  # fmt: skip
    assert proc.returncode == 0, f"importing the pack outside the server failed:\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
