"""Ready for the Comfy Registry: comfy-cli's own `comfy node validate` passes on this repository, the icon the
pyproject names is the shipped image, and the CHANGELOG's newest entry is the pyproject's version."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_comfy_node_validate_passes():
    comfy = shutil.which("comfy", path=str(Path(sys.executable).parent))
    assert comfy, "comfy-cli is not installed (requirements-test.txt)"
    env = dict(os.environ, DO_NOT_TRACK="1")
    res = subprocess.run([comfy, "--skip-prompt", "--no-enable-telemetry", "node", "validate"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "All validation checks passed" in out, out


def test_icon_is_the_shipped_portrait_and_versions_agree():
    comfy = PYPROJECT["tool"]["comfy"]
    repo_url = PYPROJECT["project"]["urls"]["Repository"].replace("https://github.com/", "")
    assert comfy["Icon"] == f"https://raw.githubusercontent.com/{repo_url}/main/docs/icon.png"
    icon = cv2.imread(str(REPO / "docs" / "icon.png"))
    assert icon is not None and icon.shape == (400, 400, 3) and float(icon.std()) > 20  # a picture, square
    first = re.search(r"^## (\S+)", (REPO / "CHANGELOG.md").read_text(encoding="utf-8"), re.MULTILINE)
    assert first and first.group(1) == PYPROJECT["project"]["version"]
    assert comfy["requires-comfyui"] == ">=0.3.75"
