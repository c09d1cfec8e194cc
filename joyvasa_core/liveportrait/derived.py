"""Inference-time tensors derived from a network's weights (cast, re-laid-out, batch norm folded), made once.

A per-frame forward should not re-cast or re-arrange 100 M weights every call. Each derived tensor is cached on its
module under a key (its name, the compute dtype, the memory format) with a stamp of the weights it was made from
(storage pointer and in-place version counter), so loading a state dict, moving or casting the module, or editing a
weight in place makes the next call rebuild it. Nothing here is in the state dict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def _version(t: torch.Tensor) -> int:
    # Inference tensors (weights loaded under inference mode, as ComfyUI does) keep no version counter.
    return -1 if t.is_inference() else t._version


def _stamp(sources: Sequence[torch.Tensor | None]) -> tuple:
    return tuple(None if t is None else (t.data_ptr(), _version(t), t.dtype, t.device) for t in sources)


def derived(owner: nn.Module, key: tuple, sources: Sequence[torch.Tensor | None],
            make: Callable[[], torch.Tensor | tuple]) -> torch.Tensor | tuple:
    """``make()`` cached on ``owner`` under ``key`` until any of ``sources`` changes."""
    cache = owner.__dict__.setdefault("_derived_cache", {})
    stamp = _stamp(sources)
    hit = cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    # Made outside inference mode: the cached tensors stay usable by a later no_grad (non-inference) caller.
    with torch.inference_mode(False), torch.no_grad():
        value = make()
    cache[key] = (stamp, value)
    return value


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The precision a forward should run in: autocast's when it is on for ``x``'s device, else ``x``'s own."""
    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return x.dtype if x.is_floating_point() else torch.float32


def memory_format_for(dims: int) -> torch.memory_format:
    """Channels-last (2-D) / channels-last-3d for the convolutions: oneDNN and cuDNN run them faster that way."""
    return torch.channels_last if dims == 2 else torch.channels_last_3d


def conv_params(
    owner: nn.Module, conv: nn.Module, dtype: torch.dtype, fmt: torch.memory_format, norm: nn.Module | None = None,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias) of ``conv`` in ``dtype`` and ``fmt``, with an eval-mode batch ``norm`` after it folded in.

    Folding is done in float64: ``w * g / sqrt(var + eps)`` and ``(b - mean) * g / sqrt(var + eps) + beta``.
    ``weight`` replaces ``conv.weight`` (a spectral-norm conv's folded weight).
    """
    w = conv.weight if weight is None else weight
    srcs = [w, conv.bias]
    if norm is not None:
        srcs += [norm.weight, norm.bias, norm.running_mean, norm.running_var]

    if norm is None and w.dtype == dtype and w.is_contiguous(memory_format=fmt):
        return w, conv.bias  # nothing to derive: no copy of the weights

    def make() -> tuple[torch.Tensor, torch.Tensor | None]:
        if norm is None and conv.bias is None:
            return w.to(dtype).contiguous(memory_format=fmt), None
        w64 = w.double()
        b64 = conv.bias.double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64,
                                                                            device=w.device)
        if norm is not None:
            scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
            w64 = w64 * scale.view(-1, *([1] * (w.dim() - 1)))
            b64 = (b64 - norm.running_mean.double()) * scale + norm.bias.double()
        return w64.to(dtype).contiguous(memory_format=fmt), b64.to(dtype)

    return derived(owner, ("conv", id(conv), dtype, fmt), srcs, make)
