"""Collect the repository root as a plain directory, not as a Python package.

The root holds the ComfyUI entry ``__init__.py``, whose relative imports only work inside ComfyUI; pytest would
otherwise import it while collecting. The real ComfyUI tests load the pack the way ComfyUI does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if path == REPO:
        return pytest.Dir.from_parent(parent, path=path)
    return None
