"""Content keys: what makes two rows' work the same, whatever their files are called.

A speech's motion depends on its decoded samples and the sampling settings; a portrait's face and appearance on its
decoded pixels, the crop options and the networks that read it. Rows with equal keys share that work (sampled,
detected and extracted once).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _settings(settings: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(settings), sort_keys=True, default=repr).encode()


def array_digest(values: Any) -> str:
    """The digest of decoded samples or pixels (an array or tensor) with their shape and type: the same speech in a
    .wav or a .flac, the same photo as .png or .bmp, match."""
    arr = np.ascontiguousarray(np.asarray(values.detach().cpu() if hasattr(values, "detach") else values))
    return _digest(str(arr.shape).encode(), arr.dtype.str.encode(), arr.tobytes())


def speech_key(samples: str, sampling: Mapping[str, Any]) -> str:
    """The key of a sampled motion: the speech's ``array_digest`` and every sampling setting."""
    return _digest(samples.encode(), _settings(sampling))


def portrait_key(pixels: str, crop: Mapping[str, Any]) -> str:
    """The key of a prepared face: the image's ``array_digest``, the crop options and the networks' settings."""
    return _digest(pixels.encode(), _settings(crop))


def file_seed(path: str | Path) -> int:
    """The seed of a row that gives none: from its speech file's bytes, so rows sharing a speech share one motion
    (sampled once) and a rerun repeats it."""
    return int(hashlib.sha256(Path(path).read_bytes()).hexdigest()[:15], 16)
