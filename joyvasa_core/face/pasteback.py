"""Paste a rendered crop back into the full-resolution reference image.

Two paths with the same arithmetic for a face crop:

* ``prepare_paste_back`` + ``paste_back``: one frame with cv2/NumPy, literally the reference's code path.
* ``PasteBack``: many frames at once with torch (CPU or GPU). Everything that depends only on the source (the warped
  mask, the sampling grid, the region the mask touches) is computed once; per frame only the masked region is
  resampled and blended, so hundreds of frames cost one ``grid_sample`` per chunk.

A whole-image crop holds the whole picture, so nothing is blended: ``PictureArea`` takes the picture's area back out
of each rendered square at the photo's size (``M_o2c`` of the crop), leaving the padding behind.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .mask import mask_template


def _to_uint8_truncated(frame: np.ndarray) -> np.ndarray:
    """Generator output in [0, 1] -> uint8 by truncation, as the reference (``clip(x,0,1)*255 -> astype(uint8)``)."""
    if frame.dtype == np.uint8:
        return frame
    return (np.clip(np.asarray(frame, dtype=np.float32), 0, 1) * 255).astype(np.uint8)


def _truncated_255(part: torch.Tensor) -> torch.Tensor:
    """Frames as float 0..255, truncated from [0, 1] like the reference's ``clip(x, 0, 1) * 255 -> astype(uint8)``."""
    if part.dtype == torch.uint8:
        return part.to(torch.float32)
    return part.to(torch.float32).clamp(0, 1).mul_(255).floor_()


def prepare_paste_back(mask_crop: np.ndarray | None, M_c2o: np.ndarray, dsize: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 blend weights in [0, 1]: the crop-space mask warped into the original image once per source.

    ``dsize`` is ``(W, H)`` of the original. ``mask_crop`` defaults to the generated 512 template.
    """
    if mask_crop is None:
        mask_crop = mask_template()
    warped = cv2.warpAffine(
        np.ascontiguousarray(mask_crop), np.asarray(M_c2o, dtype=np.float32)[:2], (int(dsize[0]), int(dsize[1])),
        flags=cv2.INTER_LINEAR,
    )
    if warped.ndim == 2:
        warped = np.repeat(warped[:, :, None], 3, axis=2)
    return warped.astype(np.float32) / 255


def paste_back(frame: np.ndarray, M_c2o: np.ndarray, original: np.ndarray, mask_ori: np.ndarray) -> np.ndarray:
    """One rendered crop (uint8, or float in [0, 1]) blended into ``original`` at its resolution; returns uint8."""
    h, w = original.shape[:2]
    warped = cv2.warpAffine(
        _to_uint8_truncated(frame), np.asarray(M_c2o, dtype=np.float32)[:2], (w, h), flags=cv2.INTER_LINEAR
    )
    result = mask_ori * warped + (1 - mask_ori) * original
    return np.clip(result, 0, 255).astype(np.uint8)


class PasteBack:
    """Batched paste-back for one source: build once, call on (N, h, w, 3) or (N, 3, h, w) frames.

    Matches ``paste_back`` within the fixture tolerance; the remaining difference is cv2's 1/32-pixel fixed-point
    bilinear weights against torch's float weights.
    """

    def __init__(
        self, original: np.ndarray, M_c2o: np.ndarray, crop_size: int = 512, mask_crop: np.ndarray | None = None
    ) -> None:
        original = np.ascontiguousarray(original)
        self.height, self.width = original.shape[:2]
        self.crop_size = int(crop_size)
        self.M_c2o = np.asarray(M_c2o, dtype=np.float32)
        if mask_crop is None:
            mask_crop = mask_template(self.crop_size)
        self.mask_ori = prepare_paste_back(mask_crop, self.M_c2o, (self.width, self.height))
        support = self.mask_ori[:, :, 0] > 0
        rows, cols = np.any(support, axis=1), np.any(support, axis=0)
        if rows.any():
            y0, y1 = np.flatnonzero(rows)[[0, -1]]
            x0, x1 = np.flatnonzero(cols)[[0, -1]]
            self.roi = (int(y0), int(y1) + 1, int(x0), int(x1) + 1)
        else:
            self.roi = (0, 0, 0, 0)
        self._original = torch.from_numpy(original)
        y0, y1, x0, x1 = self.roi
        # cv2.warpAffine samples the source at inverse(M) (dst -> src), computed in double.
        inv = np.linalg.inv(self.M_c2o.astype(np.float64))[:2]
        ys, xs = np.meshgrid(np.arange(y0, y1, dtype=np.float64), np.arange(x0, x1, dtype=np.float64), indexing="ij")
        sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
        sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
        n = float(self.crop_size)
        grid = np.stack([(2 * sx + 1) / n - 1, (2 * sy + 1) / n - 1], axis=-1)[None].astype(np.float32)
        self._grid = torch.from_numpy(grid)
        self._mask_roi = torch.from_numpy(np.ascontiguousarray(self.mask_ori[y0:y1, x0:x1, 0]))[None, None]
        self._cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, ...]] = {}

    def __repr__(self) -> str:
        y0, y1, x0, x1 = self.roi
        return f"PasteBack({self.width}x{self.height}, crop {self.crop_size}, region x[{x0},{x1}) y[{y0},{y1}))"

    def _on(
        self, device: torch.device, out_dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-source tensors on ``device``, made on the first call: the background in the output dtype, the fixed
        blend term, the grid and the mask."""
        key = (str(device), out_dtype)
        if key not in self._cache:
            y0, y1, x0, x1 = self.roi
            orig = self._original.to(device)
            background = orig if out_dtype == torch.uint8 else orig.to(torch.float32) / 255
            orig_roi = orig[y0:y1, x0:x1].permute(2, 0, 1)[None].to(torch.float32)
            mask = self._mask_roi.to(device)
            # (1 - mask) * original is the same for every frame: computed once, as the reference computes it.
            self._cache[key] = (background, (1 - mask) * orig_roi, self._grid.to(device), mask)
        return self._cache[key]

    @torch.no_grad()
    def __call__(
        self, frames: torch.Tensor, layout: str = "nhwc", as_uint8: bool = False, chunk: int | None = None,
        progress=None,
    ) -> torch.Tensor:
        """Paste ``frames`` (float in [0, 1] or uint8, crop_size square) back; returns (N, H, W, 3).

        The result is float32 in [0, 1] (a ComfyUI IMAGE batch) or uint8 with ``as_uint8``; both equal the
        reference's uint8 result.
        """
        if layout not in ("nhwc", "nchw"):
            raise ValueError(f"layout must be 'nhwc' or 'nchw', got {layout!r}")
        x = frames if layout == "nchw" else frames.permute(0, 3, 1, 2)
        n = x.shape[0]
        device = x.device
        out_dtype = torch.uint8 if as_uint8 else torch.float32
        background, base, grid, mask = self._on(device, out_dtype)
        out = torch.empty((n, self.height, self.width, 3), dtype=out_dtype, device=device)
        out.copy_(background.expand_as(out))
        y0, y1, x0, x1 = self.roi
        if n == 0 or y1 <= y0:
            return out
        if chunk is None:
            chunk = max(1, int(2e7 // max(1, 3 * (y1 - y0) * (x1 - x0))))
        for start in range(0, n, chunk):
            if progress is not None:
                progress.check_cancel()
            part = _truncated_255(x[start : start + chunk])
            warped = F.grid_sample(
                part, grid.expand(part.shape[0], -1, -1, -1), mode="bilinear", padding_mode="zeros",
                align_corners=False,
            )
            # cv2.warpAffine rounds to uint8; then blend in float32 and truncate as the reference does.
            blended = warped.round_().clamp_(0, 255).mul_(mask).add_(base).floor_().clamp_(0, 255)
            if not as_uint8:
                blended.div_(255)
            out[start : start + chunk, y0:y1, x0:x1].copy_(blended.permute(0, 2, 3, 1))
            if progress is not None:
                progress.update(min(start + chunk, n), n)
        return out


class PictureArea:
    """The picture's area of whole-image-crop frames, resampled to the photo's size: (N, H, W, 3).

    Output pixel (x, y) reads the rendered square at ``M_o2c @ (x, y, 1)`` (bilinear, edge pixels repeated), so a
    padded crop gives back exactly the photo's area and a squeezed one is stretched back to the photo's shape.
    Called like :class:`PasteBack`.
    """

    def __init__(self, width: int, height: int, M_o2c: np.ndarray, crop_size: int = 512) -> None:
        self.width, self.height, self.crop_size = int(width), int(height), int(crop_size)
        m = np.asarray(M_o2c, dtype=np.float64)[:2]
        ys, xs = np.meshgrid(np.arange(self.height, dtype=np.float64), np.arange(self.width, dtype=np.float64),
                             indexing="ij")
        u = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
        v = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
        n = float(self.crop_size)
        grid = np.stack([(2 * u + 1) / n - 1, (2 * v + 1) / n - 1], axis=-1)[None].astype(np.float32)
        self._grid = torch.from_numpy(grid)  # (1, H, W, 2)

    def __repr__(self) -> str:
        return f"PictureArea({self.width}x{self.height} from the {self.crop_size} crop)"

    @torch.no_grad()
    def __call__(
        self, frames: torch.Tensor, layout: str = "nhwc", as_uint8: bool = False, chunk: int | None = None,
        progress=None,
    ) -> torch.Tensor:
        """``frames`` (float in [0, 1] or uint8, crop_size square) -> (N, H, W, 3) float in [0, 1] or uint8."""
        if layout not in ("nhwc", "nchw"):
            raise ValueError(f"layout must be 'nhwc' or 'nchw', got {layout!r}")
        x = frames if layout == "nchw" else frames.permute(0, 3, 1, 2)
        n = x.shape[0]
        out = torch.empty((n, self.height, self.width, 3), dtype=torch.uint8 if as_uint8 else torch.float32,
                          device=x.device)
        grid = self._grid.to(x.device)
        chunk = chunk or max(1, int(2e7 // max(1, 3 * self.height * self.width)))
        for start in range(0, n, chunk):
            if progress is not None:
                progress.check_cancel()
            part = _truncated_255(x[start : start + chunk])
            picture = F.grid_sample(part, grid.expand(part.shape[0], -1, -1, -1), mode="bilinear",
                                    padding_mode="border", align_corners=False).round_().clamp_(0, 255)
            if not as_uint8:
                picture.div_(255)
            out[start : start + chunk].copy_(picture.permute(0, 2, 3, 1))
            if progress is not None:
                progress.update(min(start + chunk, n), n)
        return out
