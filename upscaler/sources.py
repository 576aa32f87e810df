"""Whether a source is compressed, and so which model suits it.

A model trained for compressed sources (``x4-video``) repairs JPEG and
H.264 damage but is softer than its plain sibling on clean input. The
manifest names, for each such model, the model to run on a clean source
(``clean_partners``: ``x4-video`` -> ``x4-fast``). With ``source="auto"`` the
choice follows the evidence, in this order:

1. What the file says. A JPEG, a lossy WebP, AVIF or HEIC image
   (``lossy_image_bytes``), or a video in a lossy codec
   (``lossy_video_codec``), is compressed whatever its pixels look like.
2. Pixels whose history is unknown (PNG, TIFF, raw frames, a lossless
   WebP): ``jpeg_grid`` looks for the 8x8 grid a JPEG leaves. A JPEG zeroes
   high-frequency DCT coefficients in the blocks of its grid; the same
   coefficients of blocks offset by half a block are not zero more often
   than in any picture. The difference of those two shares is about 0 for
   clean pictures (at most 0.041 over 70 training photos reduced 2x and 4x)
   and 0.09-0.72 after JPEG at quality 30-95.

H.264 leaves no such grid in the pixels (its transform codes a prediction's
residual, and its loop filter smooths the block edges), so a PNG holding a
decoded video frame counts as clean. ``source="compressed"`` or ``"clean"``
skips the evidence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "JPEG_GRID_THRESHOLD",
    "SOURCES",
    "PerSource",
    "choose_model",
    "clean_partner",
    "jpeg_grid",
    "lossy_image_bytes",
    "lossy_image_file",
    "lossy_video_codec",
]

SOURCES = ("auto", "compressed", "clean")
#: ``jpeg_grid`` above this: the pixels went through a JPEG (chosen on training photos: clean at most
#: 0.041, JPEG at quality 95 at least 0.086).
JPEG_GRID_THRESHOLD = 0.06
#: Video codecs whose frames are exact (lossless) or visually lossless intermediates: a clean source.
CLEAN_VIDEO_CODECS = frozenset(
    {"rawvideo", "ffv1", "huffyuv", "ffvhuff", "utvideo", "magicyuv", "png", "apng", "qtrle", "tiff", "bmp",
     "r210", "r10k", "v210", "v308", "v408", "v410", "zlib", "prores", "prores_ks", "dnxhd", "cfhd"}
)  # fmt: skip
_BLOCK = 8
_ZERO = 0.5  #: a DCT coefficient (0-255 luma) this small counts as quantised away


def _dct_matrix(n: int) -> np.ndarray:
    k, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


_DCT = _dct_matrix(_BLOCK)
_HIGH = np.add.outer(np.arange(_BLOCK), np.arange(_BLOCK)) >= _BLOCK // 2  #: the high-frequency coefficients


def _luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma on a 0-255 scale (uint8 or uint16 input; grey and alpha handled)."""
    x = image.astype(np.float32) * (255.0 / 65535.0 if image.dtype == np.uint16 else 1.0)
    if x.ndim == 2 or x.shape[2] < 3:
        return x if x.ndim == 2 else x[..., 0]
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def _zero_share(luma: np.ndarray, offset: int) -> float:
    """The share of high-frequency DCT coefficients near zero, in the 8x8 blocks starting at ``offset``."""
    y = luma[offset:, offset:]
    h, w = y.shape[0] // _BLOCK * _BLOCK, y.shape[1] // _BLOCK * _BLOCK
    blocks = y[:h, :w].reshape(h // _BLOCK, _BLOCK, w // _BLOCK, _BLOCK).transpose(0, 2, 1, 3)
    coefficients = _DCT @ blocks @ _DCT.T
    return float(np.mean(np.abs(coefficients[..., _HIGH]) < _ZERO))


def jpeg_grid(image: np.ndarray) -> float:
    """Evidence of a JPEG's 8x8 grid at the image's origin: about 0 for clean pixels, 0.09 or more after a
    JPEG (module docstring); 0 for images too small to tell (under 4 blocks a side)."""
    luma = _luma(image)
    if min(luma.shape[:2]) < 4 * _BLOCK + _BLOCK // 2:
        return 0.0
    return _zero_share(luma, 0) - _zero_share(luma, _BLOCK // 2)


def lossy_image_bytes(head: bytes) -> bool | None:
    """From an encoded image's first bytes: True for JPEG, lossy WebP, AVIF and HEIC; False for PNG, BMP,
    TIFF, GIF and lossless WebP; None when the format is not one of those."""
    if head.startswith(b"\xff\xd8\xff"):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _lossy_webp(head)
    if head[4:8] == b"ftyp":
        return head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1")
    if head.startswith((b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")):
        return False
    return None


def _lossy_webp(head: bytes) -> bool | None:
    """A WebP's chunks: ``VP8 `` is lossy, ``VP8L`` lossless (an extended file says after its header)."""
    at = 12
    while at + 8 <= len(head):
        kind, size = head[at : at + 4], int.from_bytes(head[at + 4 : at + 8], "little")
        if kind == b"VP8 ":
            return True
        if kind == b"VP8L":
            return False
        at += 8 + size + (size & 1)
    return None


def lossy_image_file(path: str | Path) -> bool | None:
    """``lossy_image_bytes`` of a file's first 64 KiB; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return lossy_image_bytes(f.read(65536))
    except OSError:
        return None


def lossy_video_codec(codec: str) -> bool:
    """Whether frames in ``codec`` (FFmpeg's name) are compressed: all but ``CLEAN_VIDEO_CODECS``."""
    return codec.lower() not in CLEAN_VIDEO_CODECS


def clean_partner(model: str) -> str | None:
    """The model the manifest runs in place of ``model`` on a clean source (None: ``model`` runs always)."""
    from upscaler.models import load_partners

    return load_partners().get(model)


def choose_model(
    model: str, source: str = "auto", *, lossy: bool | None = None, image: np.ndarray | None = None
) -> str:
    """The model to run: ``model``, or its clean partner where the source is clean.

    ``source``: ``compressed`` (always ``model``), ``clean`` (the partner), ``auto``: compressed when
    ``lossy`` says so, else when ``image`` shows a JPEG grid; clean otherwise (``lossy`` False or None
    and no grid, or no image to look at).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    partner = clean_partner(model)
    if partner is None or source == "compressed":
        return model
    if source == "clean":
        return partner
    if lossy or (image is not None and jpeg_grid(image) > JPEG_GRID_THRESHOLD):
        return model
    return partner


class PerSource:
    """Runs, per image, the model ``choose_model`` picks for it; ``make(name)`` loads a model's upscaler
    (once; ``first``: ``model``'s, already loaded), ``used`` counts the images each model took."""

    def __init__(self, model: str, source: str, make: Callable[[str], object], first: object = None) -> None:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        self.model, self.source, self._make = model, source, make
        self._loaded: dict[str, object] = {} if first is None else {model: first}
        self.used: Counter[str] = Counter()

    @classmethod
    def of(cls, model: str, source: str = "auto", **options) -> PerSource:
        """A ``PerSource`` whose models run as ``Upscaler(name, **options)``; ``model``'s is loaded now (a bad
        engine fails here, before any image), and is ``first``."""
        from upscaler.facade import Upscaler

        def make(name: str) -> Upscaler:
            return Upscaler(name, **options)

        first = make(model)
        return cls(first.model.name, source, make, first=first)

    @property
    def first(self):
        """The upscaler of the model asked for."""
        return self.get(self.model)

    def get(self, name: str):
        """The upscaler of model ``name``, loaded on first use."""
        if name not in self._loaded:
            self._loaded[name] = self._make(name)
        return self._loaded[name]

    def upscale(self, image: np.ndarray, lossy: bool | None = None) -> np.ndarray:
        """``image`` through the model its source calls for."""
        name = choose_model(self.model, self.source, lossy=lossy, image=image)
        self.used[name] += 1
        return self.get(name).upscale(image)
