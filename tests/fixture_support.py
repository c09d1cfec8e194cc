"""Shared test helpers: where fixtures live, how to read their metadata and rebuild their weights.

A plain module (not conftest.py) so tests import it by name without clashing with tests/comfyui/conftest.py.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch
from safetensors import safe_open

REPO = Path(__file__).resolve().parents[1]
BUNDLED_FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(REPO))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def fixture_dir() -> Path:
    """The fixture folder: ``$JOYVASA_FIXTURE_DIR`` when set, else the copies in tests/fixtures."""
    env = os.environ.get("JOYVASA_FIXTURE_DIR")
    return Path(env) if env else BUNDLED_FIXTURES


def fixture_path(name: str) -> Path:
    """Path of one fixture file; a missing file fails the test (parity must run, not skip)."""
    path = fixture_dir() / name
    if not path.exists():
        raise FileNotFoundError(f"fixture {name} not found in {fixture_dir()}")
    return path


def media_dir() -> Path | None:
    """The real test media (JoyVASA's example photos and speech): ``$JOYVASA_MEDIA_DIR``, else ``shared/media`` next
    to the checkout or to the folder holding it; None where neither exists (a clean clone)."""
    env = os.environ.get("JOYVASA_MEDIA_DIR")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "media", REPO.parents[1] / "shared" / "media"]
    return next((p for p in candidates if p.is_dir()), None)


class Fixture:
    """A golden safetensors fixture: tensors by name plus the parsed ``json`` metadata."""

    def __init__(self, name: str) -> None:
        self.path = fixture_path(name)
        with safe_open(str(self.path), "pt") as f:
            self.meta = json.loads(f.metadata()["json"])
            self.tensors = {k: f.get_tensor(k) for k in f.keys()}

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def __contains__(self, key: str) -> bool:
        return key in self.tensors

    def keys(self):
        return self.tensors.keys()


_FIXTURE_CACHE: dict[str, Fixture] = {}


def load_fixture(name: str) -> Fixture:
    """Read a fixture once per session (they are read-only)."""
    key = str(fixture_path(name))
    if key not in _FIXTURE_CACHE:
        _FIXTURE_CACHE[key] = Fixture(name)
    return _FIXTURE_CACHE[key]


def fill_rule():
    """The fixture folder's weight fill rule module (``fill_state_dict``, ``checksum``); never another folder's."""
    return _load_fill_rule(str(fixture_path("fill_rule.py")))


@functools.lru_cache(maxsize=4)
def _load_fill_rule(path: str):
    spec = importlib.util.spec_from_file_location("joyvasa_fill_rule", path)
    module = importlib.util.module_from_spec(spec)
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # leave the fixture folder untouched
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes
    return module


def fill_module(module: torch.nn.Module, seed: int, skip=(), expected: dict | None = None) -> torch.nn.Module:
    """Fill ``module`` with the fixture weights and load them strictly.

    ``expected`` is the fixture's ``state_dict`` metadata (key -> [shape, dtype]); when given, the module's keys and
    shapes must equal it exactly, because the fill value depends on the key name.
    """
    sd = module.state_dict()
    if expected is not None:
        got = {k: list(v.shape) for k, v in sd.items()}
        want = {k: list(v[0]) for k, v in expected.items()}
        assert got == want, _diff_keys(got, want)
    filled = fill_rule().fill_state_dict(sd, seed, skip=tuple(skip))
    module.load_state_dict(filled, strict=True)
    return module.eval()


def _diff_keys(got: dict, want: dict) -> str:
    missing = sorted(set(want) - set(got))[:10]
    extra = sorted(set(got) - set(want))[:10]
    shapes = [(k, got[k], want[k]) for k in sorted(set(got) & set(want)) if got[k] != want[k]][:10]
    return f"state_dict mismatch: missing {missing}, unexpected {extra}, shape {shapes}"


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float = 0.0, name: str = "") -> None:
    """``torch.allclose`` semantics in fp32 with a message that gives the worst deviation."""
    actual = actual.detach().to(torch.float32).cpu()
    expected = expected.detach().to(torch.float32).cpu()
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    worst = float(diff.max()) if diff.numel() else 0.0
    assert bool((diff <= bound).all()), f"{name}: max |diff| {worst:.3g} exceeds atol {atol} rtol {rtol}"


def assert_stats(actual: torch.Tensor, stats: torch.Tensor, rtol: float = 1e-5, name: str = "") -> None:
    """Compare a whole tensor with stored float64 ``[sum, abs-sum, L2]`` as the fixture README prescribes."""
    a = actual.detach().double().cpu()
    got = torch.stack([a.sum(), a.abs().sum(), a.norm()])
    ref = stats.double()
    scale = float(ref[1])
    assert abs(float(got[0] - ref[0])) <= rtol * scale, f"{name}: sum {float(got[0])} vs {float(ref[0])}"
    assert abs(float(got[1] - ref[1])) <= rtol * scale, f"{name}: abs-sum {float(got[1])} vs {float(ref[1])}"
    assert abs(float(got[2] - ref[2])) <= rtol * float(ref[2]), f"{name}: L2 {float(got[2])} vs {float(ref[2])}"
