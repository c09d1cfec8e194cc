"""Writers of the released file layouts, for building test files: the official LivePortrait ``.pth`` (stitching as
the nested DDP dict) and the JoyVASA motion template pickle. The package only reads these layouts."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import pickle
from collections.abc import Mapping
from typing import Any

import torch

from joyvasa_core.checkpoints.containers import require_tensor_dict
from joyvasa_core.checkpoints.identify import unwrap
from joyvasa_core.checkpoints.joyvasa import validate_motion_template
from joyvasa_core.checkpoints.liveportrait import normalize_stitching_state_dict
from joyvasa_core.liveportrait.slots import STITCHING

REPO = pathlib.Path(__file__).resolve().parents[1]


def to_official_layout(flat: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Community flat stitching keys -> official nested dict: split at the first dot, drop ``_module`` from the
    group, re-prefix the inner key with ``module.``."""
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        head, _, tail = key.partition(".")
        nested.setdefault(head.removesuffix("_module"), {})["module." + tail] = value
    return nested


def save_official_checkpoint(state_dict: Mapping[str, Any], path: str | os.PathLike, slot: str) -> None:
    """Write weights as the official release does: ``torch.save`` of the flat state dict, or for the stitching
    module the nested ``{group: {"module.mlp.N.*"}}`` dict."""
    sd: Any = unwrap(state_dict)
    if slot == STITCHING:
        sd = to_official_layout(normalize_stitching_state_dict(sd))
        sd = {g: {k: v.detach().cpu().clone() for k, v in inner.items()} for g, inner in sd.items()}
    else:
        sd = {k: v.detach().cpu().clone() for k, v in require_tensor_dict(sd, path).items()}
    torch.save(sd, str(path))


def write_motion_template(stats: Mapping[str, Any], path: str | os.PathLike, protocol: int = 4) -> pathlib.Path:
    """Write a template pickle in the released layout (dict of float32 numpy arrays)."""
    arrays = validate_motion_template(stats, str(path))
    p = pathlib.Path(path)
    with open(p, "wb") as fh:
        pickle.dump(arrays, fh, protocol=protocol)
    return p



def _tool(name: str) -> Any:
    """A module of ``tools/`` (the converter writes community files; the tests write theirs with it)."""
    spec = importlib.util.spec_from_file_location(f"joyvasa_tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


save_community_safetensors = _tool("convert_liveportrait").save_community_safetensors
