"""The pack's networks in ComfyUI's memory manager (comfy.model_management), like ComfyUI's own models.

A loader builds its networks on ComfyUI's offload device (the CPU unless --highvram/--gpu-only) and registers them
as one module under a ``ModelPatcher``. Every node that runs them first calls :func:`on_device`, which goes through
``load_models_gpu``: that moves them to the device, pushing other models off if memory is short, and records them,
so other models can push these off in turn and the UI's "free model memory" (POST /free with unload_models) moves
them back to the offload device. On a CPU-only ComfyUI the load and offload devices are the same: nothing is
copied. The objects travelling between nodes keep their identity; :func:`on_device` returns a view of them that
names the device they are on for this run.
"""

from __future__ import annotations

import weakref
from dataclasses import replace
from typing import Any, TypeVar

import comfy.model_management
import comfy.model_patcher

from ..joyvasa_core.types import LivePortraitModels, MotionModel

Models = TypeVar("Models", LivePortraitModels, MotionModel)
_PATCHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def offload_device() -> Any:
    """Where registered networks wait while not in use (a torch device)."""
    return comfy.model_management.unet_offload_device()


def register(models: Models, load_device: Any) -> Models:
    """Put ``models`` (built on :func:`offload_device`) under ComfyUI's memory manager, to run on ``load_device``
    (a torch device)."""
    _PATCHERS[models] = comfy.model_patcher.ModelPatcher(models.as_module(), load_device=load_device,
                                                         offload_device=models.device)
    return models


def on_device(models: Models | None) -> Models | None:
    """Load ``models`` onto their device through ComfyUI (a no-op when they are there already) and return them with
    that device; unregistered models come back unchanged."""
    patcher = _PATCHERS.get(models) if models is not None else None
    if patcher is None:
        return models
    # the networks are plain torch modules (no comfy.ops weight casting), so they run only when wholly on the device
    comfy.model_management.load_models_gpu([patcher], force_full_load=True)
    return replace(models, device=patcher.load_device)
