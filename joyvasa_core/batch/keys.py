"""Content keys: what makes two rows' work the same, whatever their files are called.

A speech's motion depends on its samples and the sampling settings; a portrait's face and appearance on the image's
bytes and the crop options. Rows with equal keys share that work (sampled, detected and extracted once).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
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


def samples_digest(samples: Any) -> str:
    """The digest of decoded audio samples (any array or tensor): the same speech in a .wav or a .flac matches."""
    arr = np.ascontiguousarray(np.asarray(samples.detach().cpu() if hasattr(samples, "detach") else samples),
                               dtype=np.float32)
    return _digest(arr.tobytes())


def speech_key(samples: str, sampling: Mapping[str, Any]) -> str:
    """The key of a sampled motion: the speech's samples digest and every sampling setting."""
    return _digest(samples.encode(), _settings(sampling))


def portrait_key(image: bytes, crop: Mapping[str, Any]) -> str:
    """The key of a detected face and its appearance: the image file's bytes and the crop options."""
    return _digest(hashlib.sha256(image).digest(), _settings(crop))


def seed_from(samples: str) -> int:
    """The seed of a row that gives none: from its speech, so rows sharing a speech share one motion and a rerun
    repeats it."""
    return int(samples[:15], 16)
