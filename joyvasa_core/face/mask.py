"""The feathered paste-back mask, generated instead of read from LivePortrait's ``mask_template.png``.

LivePortrait's mask is 255 inside the square ``[16, 496]^2`` of a 512 crop, then ``round(255 - 16 d)`` clipped to
[0, 255], ``d`` the Euclidean distance in pixels to that square. This matches the PNG except for 212 pixels that
differ by one grey level, which is invisible after paste-back and saves shipping and decoding a file.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def _mask(size: int, margin: int, falloff: float) -> np.ndarray:
    # Keep the template's geometry when another crop size is asked for: the margin and fall-off scale with size.
    k = size / 512.0
    lo, hi = margin * k, (512 - margin) * k
    coords = np.arange(size, dtype=np.float64)
    dist_1d = np.maximum(np.maximum(lo - coords, coords - hi), 0.0)
    dist = np.hypot(dist_1d[:, None], dist_1d[None, :])
    grey = np.clip(np.floor(255.0 - (falloff / k) * dist + 0.5), 0, 255).astype(np.uint8)
    out = np.repeat(grey[:, :, None], 3, axis=2)
    out.setflags(write=False)
    return out


def mask_template(size: int = 512, margin: int = 16, falloff: float = 16.0) -> np.ndarray:
    """(size, size, 3) uint8 read-only mask: white centre, linear fall-off to black over the last ``margin`` pixels."""
    return _mask(int(size), int(margin), float(falloff))
