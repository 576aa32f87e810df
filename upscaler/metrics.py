"""Image quality metrics of the evaluation protocol (DESIGN section 4).

Plain functions of arrays: RGB images in, numbers out. PSNR and SSIM are
computed on BT.601 luma (the ``Y`` of MATLAB's ``rgb2ycbcr``) with ``shave``
pixels removed from each border, as in the published super-resolution tables.
"""

from __future__ import annotations

import numpy as np

__all__ = ["psnr", "rgb_to_y", "shave", "ssim"]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(image: np.ndarray, max_value: float = 255.0) -> np.ndarray:
    """BT.601 luma in [16, 235] (float64) of an RGB image scaled to ``max_value``.

    A single-channel image is taken as already being luma.
    """
    data = np.asarray(image, dtype=np.float64) * (255.0 / max_value)
    if data.ndim == 2 or data.shape[2] == 1:
        return data.reshape(data.shape[:2])
    return 16.0 + data[..., :3] @ _Y_WEIGHTS


def shave(image: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels from each side."""
    if border <= 0:
        return image
    return image[border:-border, border:-border, ...]


def _prepare(a: np.ndarray, b: np.ndarray, border: int, y_channel: bool, max_value: float):
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if y_channel:
        a, b = rgb_to_y(a, max_value), rgb_to_y(b, max_value)
    else:
        a = np.asarray(a, dtype=np.float64) * (255.0 / max_value)
        b = np.asarray(b, dtype=np.float64) * (255.0 / max_value)
    return shave(a, border), shave(b, border)


def psnr(a: np.ndarray, b: np.ndarray, *, border: int = 0, y_channel: bool = True, max_value: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB on a 0..255 scale (``inf`` when equal)."""
    a, b = _prepare(a, b, border, y_channel, max_value)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(ax**2) / (2.0 * sigma**2))
    g /= g.sum()
    return g


def _filter_valid(image: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Separable 'valid' correlation: output shrinks by len(g) - 1 on each axis.
    k = len(g)
    h, w = image.shape
    rows = sum(g[i] * image[i : h - k + 1 + i, :] for i in range(k))
    return sum(g[i] * rows[:, i : w - k + 1 + i] for i in range(k))


def ssim(a: np.ndarray, b: np.ndarray, *, border: int = 0, y_channel: bool = True, max_value: float = 255.0) -> float:
    """Structural similarity (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5.

    Computed on one channel (Y by default) or averaged over the channels.
    """
    a, b = _prepare(a, b, border, y_channel, max_value)
    if a.ndim == 3:
        return float(np.mean([ssim(a[..., c], b[..., c]) for c in range(a.shape[2])]))
    if min(a.shape) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after shaving, got {a.shape}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))
