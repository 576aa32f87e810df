"""Degradations on the training device, batched (torch).

Each turns a batch of uint8 high-resolution crops *with a margin* of
``MARGIN`` low-resolution pixels per side into ``(lr, hr)`` float pairs in
[0, 1], the margin cut away so every input pixel was made from real
neighbours. The resize kernels are those of ``upscaler.resize``, applied as
two matrix products so the GPU (or the CPU's BLAS) does the work.

- ``bicubic``: MATLAB's antialiased bicubic, the benchmark protocol.
- ``render``: point sampling, as a renderer without anti-aliasing draws:
  one high-resolution sample per low-resolution pixel, at a sub-pixel phase
  drawn per crop from ``0..jitter`` (rows and columns independently).
- ``video``: a resampling kernel drawn per crop (bicubic, bilinear or area),
  mild Gaussian noise, and JPEG-style 8x8 DCT quantisation at a random quality.

Random choices come from a ``torch.Generator`` the caller seeds, so a resumed
run draws what an uninterrupted one would.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from upscaler.resize import resize_matrix

__all__ = ["MARGIN", "TRAIN_DEGRADATIONS", "bicubic_down", "jpeg_like", "make_pair"]

#: Low-resolution pixels cut from each side of a degraded crop: the widest
#: kernel (antialiased bicubic) reaches 2 low-resolution pixels.
MARGIN = 2

#: Degradations ``make_pair`` knows; ``paired`` means the data brings its own low-resolution frames;
#: ``sequence`` trains temporal models on rendered sequences (``training.temporal``).
TRAIN_DEGRADATIONS = ("bicubic", "render", "video", "paired", "sequence")

_KERNELS = ("cubic", "linear", "box")


@lru_cache(maxsize=64)
def _matrix(length: int, scale: int, kernel: str, device: str, dtype: torch.dtype) -> torch.Tensor:
    matrix = resize_matrix(length, length // scale, 1.0 / scale, kernel=kernel)
    return torch.from_numpy(matrix.copy()).to(device=device, dtype=dtype)


def bicubic_down(hr: torch.Tensor, scale: int, kernel: str = "cubic") -> torch.Tensor:
    """MATLAB-style antialiased downscale of ``N x C x H x W`` (any value range)."""
    h, w = hr.shape[-2:]
    rows = _matrix(h, scale, kernel, str(hr.device), hr.dtype)
    cols = _matrix(w, scale, kernel, str(hr.device), hr.dtype)
    return rows @ hr @ cols.T


def _quantize(lr: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.floor(lr + 0.5), 0, 255)


def _point_sample(hr: torch.Tensor, scale: int, jitter: int, gen: torch.Generator | None) -> torch.Tensor:
    n, c, h, w = hr.shape
    cells = hr.reshape(n, c, h // scale, scale, w // scale, scale)
    if jitter <= 0:
        return cells[:, :, :, 0, :, 0]
    py = torch.randint(0, jitter + 1, (n,), generator=gen).to(hr.device)
    px = torch.randint(0, jitter + 1, (n,), generator=gen).to(hr.device)
    # Advanced indices on dims 0, 3 and 5 go first: N x C x h x w.
    return cells[torch.arange(n, device=hr.device), :, :, py, :, px]


@lru_cache(maxsize=8)
def _dct_matrix(device: str, dtype: torch.dtype) -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.to(device=device, dtype=dtype)


_LUMA_Q = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]
_CHROMA_Q = [[17, 18, 24, 47, 99, 99, 99, 99], [18, 21, 26, 66, 99, 99, 99, 99], [24, 26, 56, 99, 99, 99, 99, 99]]
_CHROMA_Q += [[47, 66, 99, 99, 99, 99, 99, 99]] + [[99] * 8] * 4


def jpeg_like(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG's lossy step on ``N x 3 x H x W`` RGB in [0, 255]: 8x8 DCT on YCbCr, quantised at ``quality`` (1..100).

    No chroma subsampling and no entropy coding (lossless, so it changes
    nothing): the blocking and ringing a real encoder leaves, on the device.
    """
    n, _, h, w = x.shape
    ph, pw = -h % 8, -w % 8
    x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    ycc = torch.stack([y - 128, (b - y) * 0.564, (r - y) * 0.713], 1)
    blocks = ycc.reshape(n, 3, (h + ph) // 8, 8, (w + pw) // 8, 8).permute(0, 1, 2, 4, 3, 5)
    d = _dct_matrix(str(x.device), x.dtype)
    coeffs = d @ blocks @ d.T
    q = quality.to(x.dtype).clamp(1, 100)
    factor = torch.where(q < 50, 50 / q, 2 - q / 50)[:, None, None, None, None, None]
    tables = torch.tensor([_LUMA_Q, _CHROMA_Q, _CHROMA_Q], dtype=x.dtype, device=x.device)[None, :, None, None]
    steps = torch.clamp(torch.floor(tables * factor + 0.5), min=1)
    coeffs = torch.round(coeffs / steps) * steps
    ycc = (d.T @ coeffs @ d).permute(0, 1, 2, 4, 3, 5).reshape(n, 3, h + ph, w + pw)
    y, cb, cr = ycc[:, 0] + 128, ycc[:, 1] / 0.564, ycc[:, 2] / 0.713
    r, b = y + cr, y + cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack([r, g, b], 1)[..., :h, :w]


def _video(hr: torch.Tensor, scale: int, gen: torch.Generator | None) -> torch.Tensor:
    n = hr.shape[0]
    kernels = torch.randint(0, len(_KERNELS), (n,), generator=gen)
    sigma = torch.rand(n, generator=gen) * 4.0  # up to 4/255 Gaussian noise
    quality = torch.randint(40, 96, (n,), generator=gen)
    noise = torch.randn(hr.shape[0], hr.shape[1], hr.shape[2] // scale, hr.shape[3] // scale, generator=gen)
    lr = torch.empty(n, hr.shape[1], hr.shape[2] // scale, hr.shape[3] // scale, device=hr.device, dtype=hr.dtype)
    for k, kernel in enumerate(_KERNELS):
        chosen = (kernels == k).nonzero().flatten().to(hr.device)
        if len(chosen):
            lr[chosen] = bicubic_down(hr[chosen], scale, kernel)
    lr = lr + noise.to(hr.device) * sigma.to(hr.device)[:, None, None, None]
    lr = jpeg_like(_quantize(lr), quality.to(hr.device))
    return lr


def make_pair(
    hr_crops: torch.Tensor,
    scale: int,
    degradation: str = "bicubic",
    *,
    jitter: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lr, hr)`` float tensors in [0, 1] from uint8 crops that include the margin.

    The low-resolution side is quantised to 8 bits, as the evaluation
    protocol's inputs are.
    """
    hr = hr_crops.float()
    if degradation == "bicubic":
        lr = bicubic_down(hr, scale)
    elif degradation == "render":
        lr = _point_sample(hr, scale, jitter, generator)
    elif degradation == "video":
        lr = _video(hr, scale, generator)
    else:
        raise ValueError(f"unknown degradation {degradation!r}; make_pair knows bicubic, render and video")
    lr = _quantize(lr) / 255.0
    m = MARGIN
    return lr[..., m:-m, m:-m].contiguous(), hr[..., m * scale : -m * scale, m * scale : -m * scale] / 255.0
