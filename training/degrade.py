"""Degradations on the training device, batched (torch).

The same MATLAB-style kernels as ``upscaler.resize``, applied as two matrix
products per batch so a GPU (or the CPU's BLAS) does the work instead of the
data loader.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from upscaler.resize import resize_matrix

__all__ = ["MARGIN", "bicubic_down", "make_pair"]

#: Low-resolution pixels cut from each side of a degraded crop: the
#: antialiased kernel reaches 2 low-resolution pixels, so inside this margin
#: every input pixel was made from real neighbours.
MARGIN = 2


@lru_cache(maxsize=32)
def _matrix(length: int, scale: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(resize_matrix(length, length // scale, 1.0 / scale).copy()).to(device=device, dtype=dtype)


def bicubic_down(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB-style antialiased bicubic downscale of ``N x C x H x W`` (any value range)."""
    h, w = hr.shape[-2:]
    rows = _matrix(h, scale, str(hr.device), hr.dtype)
    cols = _matrix(w, scale, str(hr.device), hr.dtype)
    return rows @ hr @ cols.T


def make_pair(hr_crops: torch.Tensor, scale: int, degradation: str = "bicubic") -> tuple[torch.Tensor, torch.Tensor]:
    """``(lr, hr)`` float tensors in [0, 1] from uint8 crops that include the margin.

    The low-resolution side is quantised to 8 bits, as the evaluation
    protocol's inputs are.
    """
    if degradation != "bicubic":
        raise ValueError(f"unknown degradation {degradation!r}; this version trains 'bicubic'")
    hr = hr_crops.float()
    lr = torch.clamp(torch.floor(bicubic_down(hr, scale) + 0.5), 0, 255) / 255.0
    m = MARGIN
    return lr[..., m:-m, m:-m].contiguous(), hr[..., m * scale : -m * scale, m * scale : -m * scale] / 255.0
