"""Evaluation by the protocol of DESIGN section 4, with bicubic alongside.

HR is modcropped to the scale, LR made by the model's degradation (MATLAB
bicubic for ``bicubic``), the model's 8-bit output compared on Y with
``scale`` pixels shaved. Plain functions returning plain records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from upscaler.degradations import check_compression, compress, degrade, modcrop, quantize_uint8
from upscaler.io import list_images, read_image
from upscaler.metrics import psnr, ssim
from upscaler.pipeline import to_rgb8
from upscaler.resize import imresize

__all__ = ["DatasetScore", "ImageScore", "evaluate_folder", "format_markdown", "format_table", "score_image"]


@dataclass
class ImageScore:
    """Scores of one image."""

    name: str
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float


@dataclass
class DatasetScore:
    """Mean scores over a folder, and the per-image ones."""

    dataset: str
    path: str
    scale: int
    degradation: str
    images: list[ImageScore] = field(default_factory=list)

    def mean(self, key: str) -> float:
        """Mean of one score over the images."""
        return float(np.mean([getattr(s, key) for s in self.images])) if self.images else float("nan")

    def summary(self) -> dict:
        """Means, rounded for tables and JSON."""
        return {
            "dataset": self.dataset,
            "images": len(self.images),
            "psnr": round(self.mean("psnr"), 3),
            "ssim": round(self.mean("ssim"), 4),
            "bicubic_psnr": round(self.mean("bicubic_psnr"), 3),
            "bicubic_ssim": round(self.mean("bicubic_ssim"), 4),
        }

    def to_dict(self) -> dict:
        """Summary plus per-image scores."""
        return {
            **self.summary(),
            "path": self.path,
            "scale": self.scale,
            "degradation": self.degradation,
            "per_image": [asdict(s) for s in self.images],
        }


def score_image(name: str, sr: np.ndarray, lr: np.ndarray, hr: np.ndarray, scale: int) -> ImageScore:
    """``sr`` and bicubic of ``lr`` against ``hr``: PSNR and SSIM on Y, ``scale`` pixels shaved."""
    bic = quantize_uint8(imresize(lr, scale))
    return ImageScore(
        name=name,
        psnr=psnr(sr, hr, border=scale),
        ssim=ssim(sr, hr, border=scale),
        bicubic_psnr=psnr(bic, hr, border=scale),
        bicubic_ssim=ssim(bic, hr, border=scale),
    )


def evaluate_folder(
    folder: Path,
    upscale: Callable[[np.ndarray], np.ndarray],
    scale: int,
    degradation: str = "bicubic",
    *,
    limit: int | None = None,
    on_image: Callable[[str], None] | None = None,
    compression: str | None = None,
) -> DatasetScore:
    """Score ``upscale`` (uint8 RGB LR -> uint8 RGB SR) on every image of ``folder``; ``compression``
    (``jpeg:40``, ``h264:28``: ``degradations.compress``) is applied to each LR image after ``degradation``,
    and bicubic is given the same compressed input."""
    if compression:
        check_compression(compression)  # a bad spec fails before the first image
    label = f"{degradation}+{compression}" if compression else degradation
    result = DatasetScore(folder.name, str(folder), scale, label)
    files: Iterable[Path] = list_images(folder)[:limit] if limit else list_images(folder)
    for path in files:
        hr = modcrop(to_rgb8(read_image(path)), scale)
        if min(hr.shape[:2]) < 2 * scale + 11:  # shaved borders plus one SSIM window
            raise ValueError(f"{path}: {hr.shape[1]}x{hr.shape[0]} is too small to evaluate at x{scale}")
        lr = degrade(hr, scale, degradation)
        if compression:
            lr = compress(lr, compression)
        sr = upscale(lr)
        if sr.shape != hr.shape:
            raise ValueError(f"{path}: output shape {sr.shape} differs from {hr.shape}")
        result.images.append(score_image(path.name, sr, lr, hr, scale))
        if on_image:
            on_image(path.name)
    return result


_COLUMNS = ("dataset", "images", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim")
_FORMATS = {"psnr": "{:.3f}", "ssim": "{:.4f}", "bicubic_psnr": "{:.3f}", "bicubic_ssim": "{:.4f}"}


def _cells(score: DatasetScore) -> list[str]:
    summary = score.summary()
    return [_FORMATS.get(c, "{}").format(summary[c]) for c in _COLUMNS]


_HEADERS = ("dataset", "images", "PSNR (dB)", "SSIM", "bicubic PSNR", "bicubic SSIM")


def format_table(model: str, scores: list[DatasetScore]) -> str:
    """A plain-text table for the terminal."""
    rows = [_cells(s) for s in scores]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]
    line = "  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths))
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    degradation = scores[0].degradation if scores else ""
    return "\n".join(
        [f"model {model}, x{scores[0].scale if scores else '?'}, {degradation} LR, Y channel", line, *body]
    )


def format_markdown(model: str, scores: list[DatasetScore]) -> str:
    """A markdown table."""
    head = "| model | " + " | ".join(_HEADERS) + " |"
    sep = "|" + "---|" * (len(_HEADERS) + 1)
    rows = [f"| {model} | " + " | ".join(_cells(s)) + " |" for s in scores]
    return "\n".join([head, sep, *rows]) + "\n"
