"""Reading weight files safely, whatever their extension says.

The format is decided by the first bytes, not the file name: users rename files, download HTML error pages or Git
LFS pointers instead of weights, and save safetensors as ``.pth``. Pickled files are opened with
``torch.load(weights_only=True)``: tensors, containers and a short list of data-only classes are rebuilt, anything
else is refused before it can run. Every failure is a :class:`CheckpointError` that names the file and says what to do.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import pickle
import re
import struct
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ..errors import CheckpointError

SAFETENSORS = "safetensors"
TORCH_ZIP = "torch-zip"
TORCH_LEGACY = "torch-legacy"
PICKLE = "pickle"
GGUF = "gguf"
HTML = "html"
LFS_POINTER = "git-lfs-pointer"
EMPTY = "empty"
UNKNOWN = "unknown"

# Legacy (pre-1.6) torch.save files start with a pickled magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

# Data-only classes found in real checkpoints (JoyVASA stores its training args as an argparse.Namespace holding
# PosixPath values). Paths are rebuilt as pure paths so a file saved on Linux also opens on Windows.
HARMLESS_GLOBALS: tuple[Any, ...] = (
    argparse.Namespace,
    (pathlib.PurePosixPath, "pathlib.PosixPath"),
    (pathlib.PureWindowsPath, "pathlib.WindowsPath"),
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
)


def sniff_format(path: str | os.PathLike) -> str:
    """The container format from the magic bytes: one of the module-level format names."""
    p = pathlib.Path(path)
    with open(p, "rb") as fh:
        head = fh.read(64)
    size = p.stat().st_size
    if not head:
        return EMPTY
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return TORCH_ZIP
    if head.startswith(_LEGACY_MAGIC):
        return TORCH_LEGACY
    if head.startswith(b"GGUF"):
        return GGUF
    if head.startswith(b"version https://git-lfs"):
        return LFS_POINTER
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"{\"error", b"<head")):
        return HTML
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 0 < header_len <= 100_000_000:
            return SAFETENSORS
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return PICKLE
    # A header length that points past the end, with a JSON start, is still a (truncated) safetensors file.
    if size >= 9 and head[8:9] == b"{":
        return SAFETENSORS
    return UNKNOWN


def _fail(path: pathlib.Path, what: str, fix: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: {what}. {fix}")


_REDOWNLOAD = "Download the file again (compare its size with the one on the model page) and retry."


def _read_safetensors(path: pathlib.Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8:
        raise _fail(path, f"the file is only {size} bytes, too short for a safetensors header", _REDOWNLOAD)
    (header_len,) = struct.unpack("<Q", head)
    if 8 + header_len > size:
        raise _fail(path, f"the safetensors header says {header_len} bytes but the file has {size}: it is "
                          "truncated (an interrupted download or copy)", _REDOWNLOAD)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _fail(path, f"the safetensors file cannot be read ({exc}); it is truncated or corrupt",
                    _REDOWNLOAD) from exc


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
_PLAIN_PICKLE_FIX = "Use the released .pth or .safetensors weight file."


def _short_reason(exc: BaseException) -> str:
    """The informative sentence of torch's long messages (the rest explains corruption in general)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip() or "unsupported pickle content"
    return text.split("\n")[0].split(". ")[0].strip().rstrip(".")


def _read_pickle(path: pathlib.Path, fmt: str, allowed_globals: Iterable[Any]) -> Any:
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            if fmt == TORCH_ZIP and path.suffix.lower() != ".safetensors":
                return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            # torch.load hands a *name* ending in .safetensors to safetensors: give it the open file instead.
            with open(path, "rb") as fh:
                return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        names = sorted(set(_GLOBAL_RE.findall(str(exc))))
        if names:
            raise _fail(
                path,
                f"refused to unpickle it: besides tensors it holds {', '.join(names)}, and unpickling arbitrary "
                "objects can run code, so only tensors and plain containers are loaded",
                "Use the released weight file (a plain state dict or .safetensors); if you made this file, save "
                "model.state_dict() instead of the model object.",
            ) from exc
        if fmt == PICKLE:
            raise _fail(path, "this is a plain Python pickle, not a PyTorch weight file, and it holds content "
                              f"that is not loaded for safety ({_short_reason(exc)})", _PLAIN_PICKLE_FIX) from exc
        raise _fail(path, f"the pickle data is corrupt ({_short_reason(exc)})", _REDOWNLOAD) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, struct.error) as exc:
        if fmt == PICKLE:
            raise _fail(path, "this is a plain Python pickle, not a PyTorch weight file", _PLAIN_PICKLE_FIX) from exc
        raise _fail(path, f"the PyTorch file cannot be read ({_short_reason(exc)}); it is truncated or corrupt",
                    _REDOWNLOAD) from exc


def read_checkpoint(
    path: str | os.PathLike, allowed_globals: Iterable[Any] = HARMLESS_GLOBALS
) -> Any:
    """Load a weight file to CPU: safetensors -> dict of tensors; ``.pt/.pth/.bin`` -> what was saved, rebuilt with
    the weights-only unpickler (zip files memory-mapped). ``allowed_globals`` extends the unpickler's allow-list.
    """
    p = pathlib.Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p}: no such file. Check the path, or download the weights into it.")
    if p.is_dir():
        raise CheckpointError(f"checkpoint {p}: this is a folder, expected a weight file inside it.")
    fmt = sniff_format(p)
    if fmt == SAFETENSORS:
        return _read_safetensors(p)
    if fmt in (TORCH_ZIP, TORCH_LEGACY, PICKLE):
        return _read_pickle(p, fmt, allowed_globals)
    if fmt == EMPTY:
        raise _fail(p, "the file is empty (0 bytes)", _REDOWNLOAD)
    if fmt == LFS_POINTER:
        raise _fail(p, "this is a Git LFS pointer (a small text file), not the weights",
                    "Run `git lfs pull` in the cloned repository, or download the file itself from the model page.")
    if fmt == HTML:
        raise _fail(p, "this is a web page or an error response, not a weight file",
                    "Download the file with the model page's download link (a 'resolve' URL), not the page URL.")
    if fmt == GGUF:
        raise _fail(p, "this is a GGUF file, a format these networks are not distributed in",
                    "Use the .pth or .safetensors release of the weights.")
    raise _fail(p, f"unrecognised file format (first bytes {_first_bytes(p)!r})",
                "Expected a .safetensors or PyTorch .pth/.pt file; check that it is the right file and complete.")


def _first_bytes(path: pathlib.Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(8)


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (empty when it has none)."""
    p = pathlib.Path(path)
    if sniff_format(p) != SAFETENSORS:
        return {}
    with open(p, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return {}
    return dict(header.get("__metadata__", {}) or {})


def require_tensor_dict(obj: Any, path: str | os.PathLike, what: str = "a state dict") -> dict[str, torch.Tensor]:
    """Check that ``obj`` is a flat ``{str: Tensor}`` dict, with an error naming the first offending entries."""
    p = pathlib.Path(path)
    if not isinstance(obj, Mapping):
        raise _fail(p, f"expected {what} (a dict of tensors), found a {type(obj).__name__}",
                    "Use the released weight file; a file that stores a whole model object is not supported.")
    bad = [(k, type(v).__name__) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        shown = ", ".join(f"{k!s} ({t})" for k, t in bad[:5])
        raise _fail(p, f"expected {what} of tensors, but {len(bad)} entries are not tensors: {shown}",
                    "Check that this is a weight file of the right kind.")
    return dict(obj)
