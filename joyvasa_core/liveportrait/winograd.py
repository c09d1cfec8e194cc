"""3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3), for G's wide fp32 convolutions on the CPU.

A direct 3x3 convolution spends 9 multiply-adds per input channel and output pixel; F(4x4, 3x3) spends 36 per 4x4
output tile, 2.25 per pixel. Each 6x6 input tile and each 3x3 kernel is moved into a 36-point transform domain, where
the convolution becomes 36 independent (tiles x C_in) @ (C_in x C_out) matrix products, and the 4x4 outputs come back
by a second transform. The matrices are the Cook-Toom ones for the points 0, +-1, +-2 and infinity. The result is the
direct convolution's within about 1e-5 of its magnitude (float32 rounding of the transforms; oneDNN's direct fp32
convolution is within about 2e-6), so the networks stay inside their parity tolerances.

It pays on the CPU in fp32 when the channel counts are wide enough for the products to outweigh the transforms (G's
middle blocks at 64x64: about 2x faster than oneDNN's direct convolution there); reduced precisions use the
hardware's bf16/fp16 convolutions instead, and cuDNN picks Winograd itself on the GPU.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

_TILE = 4  # output pixels per tile side
_SPAN = _TILE + 2  # input pixels per tile side (a 3x3 kernel)
_BAND_ELEMENTS = 1 << 22  # floats per transform-domain buffer (16 MiB)
_MIN_WIDTH = 80  # C_in * C_out / (C_in + C_out) from which the products outweigh the transforms (measured)

_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


def pays(x: torch.Tensor, weight: torch.Tensor, padding: int | tuple) -> bool:
    """Whether ``conv2d(x, weight, padding=1)`` goes faster this way: CPU, fp32, 3x3, stride 1, padding 1, sides a
    multiple of 4 and wide channels."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4 or weight.shape[2:] != (3, 3):
        return False
    if padding not in (1, (1, 1)) or x.shape[2] % _TILE or x.shape[3] % _TILE:
        return False
    cout, cin = weight.shape[:2]
    return cin * cout >= _MIN_WIDTH * (cin + cout)


@lru_cache(maxsize=4)
def _transforms(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three transforms as matrices, fp32 on ``device``: kernel G (x) G (36x9), input B^T (x) B^T (36x36),
    output A^T (x) A^T (16x36)."""
    with torch.inference_mode(False):  # kept across calls: usable by a later caller outside inference mode
        g, bt, at = (torch.tensor(m, dtype=torch.float64) for m in (_G, _BT, _AT))
        return tuple(torch.kron(m, m).to(device, torch.float32) for m in (g, bt, at))


def transformed_weight(weight: torch.Tensor) -> torch.Tensor:
    """(36, C_in, C_out): G w G^T for each kernel of the (C_out, C_in, 3, 3) fp32 ``weight`` (a transposed view).

    Made per call rather than kept: it is 4x the weight's size (0.8 GB for G) and costs about 5% of the product.
    """
    k, c = weight.shape[:2]
    gg = _transforms(weight.device)[0]
    return (gg @ weight.permute(2, 3, 0, 1).reshape(9, k * c)).view(_SPAN * _SPAN, k, c).transpose(1, 2)


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=1)`` for (N, C_in, H, W) fp32 ``x``; the output is channels-last.

    Tiles go through in bands of tile rows, so the transform-domain buffers stay near ``_BAND_ELEMENTS`` floats
    whatever the image size and batch (and in cache).
    """
    n, c, h, w = x.shape
    k = weight.shape[0]
    th, tw = h // _TILE, w // _TILE
    _, bt, at = _transforms(x.device)
    u = transformed_weight(weight)
    points = _SPAN * _SPAN
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))
    tiles = padded.unfold(1, _SPAN, _TILE).unfold(2, _SPAN, _TILE)  # (n, th, tw, c, 6, 6), a view
    out = x.new_empty(n, h, w, k)
    tiled = out.view(n, th, _TILE, tw, _TILE, k)
    rows = max(1, min(th, _BAND_ELEMENTS // (points * tw * max(c, k))))
    for i in range(n):
        for r in range(0, th, rows):
            band = tiles[i, r : r + rows]
            d = band.permute(3, 4, 0, 1, 2).reshape(points, -1)
            m = torch.bmm((bt @ d).view(points, -1, c), u)
            y = (at @ m.view(points, -1)).view(_TILE, _TILE, band.shape[0], tw, k).permute(2, 0, 3, 1, 4)
            dst = tiled[i, r : r + rows]
            if bias is None:
                dst.copy_(y)
            else:
                torch.add(y, bias, out=dst)
    return out.permute(0, 3, 1, 2)
