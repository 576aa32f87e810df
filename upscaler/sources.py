"""Whether a source is compressed, and so which model suits it.

A model trained for compressed sources (``x4-video``) repairs JPEG and
H.264 damage but is softer than its plain sibling on clean input. The
manifest names, for each such model, the model to run on a clean source
(``clean_partners``: ``x4-video`` -> ``x4-fast``, ``x4-video-quality`` ->
``x4-quality``). With ``source="auto"`` the
choice follows the evidence, in this order:

1. What the file says. A JPEG, a lossy WebP, AVIF or HEIC image
   (``lossy_image_bytes``), or a video in a lossy codec
   (``lossy_video_codec``), is compressed whatever its pixels look like;
   but a JPEG whose quantisation tables say quality ``LIGHT_JPEG_QUALITY``
   or more (``jpeg_quality``; a camera's or a phone's, often) counts as
   clean: the video model gains nothing there and softens detail.
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

import numpy as np

from upscaler.imageinfo import ProbeError, jpeg_segments

__all__ = [
    "JPEG_GRID_THRESHOLD",
    "LIGHT_JPEG_QUALITY",
    "SOURCES",
    "PerSource",
    "choose_model",
    "clean_partner",
    "image_evidence",
    "jpeg_grid",
    "jpeg_quality",
    "jpeg_spec_quality",
    "lossy_image_bytes",
    "lossy_video_codec",
    "spec_evidence",
]

SOURCES = ("auto", "compressed", "clean")
#: ``jpeg_grid`` above this: the pixels went through a JPEG (chosen on training photos: clean at most
#: 0.041, JPEG at quality 95 at least 0.086).
JPEG_GRID_THRESHOLD = 0.06
#: A JPEG of this quality or more (``jpeg_quality``) counts as clean. Chosen on the 16 tuning crops of
#: ``training.compressed``, where the video models' lead over the fast ones crosses zero between 90 and 95:
#: x4-video +0.22 dB at quality 85, +0.02 at 90, -0.23 at 95; x2-video +0.56, +0.30, -0.16.
LIGHT_JPEG_QUALITY = 93
#: How much of an encoded file ``image_evidence`` reads: enough for a JPEG's tables behind large EXIF/XMP.
EVIDENCE_BYTES = 65536
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


#: libjpeg's luminance table at quality 50 (JPEG Annex K), in the zigzag order a file stores it.
_STD_LUMA_ZIGZAG = (
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58, 51,
    61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87, 95, 98, 103, 104, 103, 62, 77,
    113, 121, 112, 100, 120, 92, 101, 103, 99,
)  # fmt: skip


def jpeg_quality(head: bytes) -> int | None:
    """The quality (libjpeg's 1-100 scale) a JPEG's luminance quantisation table says, read from the file's
    first bytes: the table's sum against the standard table's gives libjpeg's scaling, which gives the quality
    (exact for libjpeg's own tables, an estimate for an encoder's own); None for another format, or when no
    table comes before the image data."""
    if not head.startswith(b"\xff\xd8"):
        return None
    try:
        for marker, payload in jpeg_segments(head):
            table = _luma_table(payload) if marker == 0xDB else None
            if table is not None:
                scale = 100.0 * sum(table) / sum(_STD_LUMA_ZIGZAG)
                quality = 5000.0 / scale if scale > 100 else (200.0 - scale) / 2
                return int(min(100, max(1, round(quality))))
    except ProbeError:  # a byte where a marker should be: no table to read
        pass
    return None


def _luma_table(segment: bytes) -> tuple[int, ...] | None:
    """Table 0 of a DQT segment's tables (8- or 16-bit entries), or None when it holds another."""
    at = 0
    while at < len(segment):
        precision, index = segment[at] >> 4, segment[at] & 15
        width = 2 if precision else 1
        entries = segment[at + 1 : at + 1 + 64 * width]
        if len(entries) < 64 * width:
            return None
        if index == 0:
            return tuple(int.from_bytes(entries[i : i + width], "big") for i in range(0, 64 * width, width))
        at += 1 + 64 * width
    return None


def image_evidence(data: bytes) -> tuple[bool | None, int | None]:
    """What an encoded image's header says: ``(lossy_image_bytes, jpeg_quality)``, for ``choose_model``.
    Only the first ``EVIDENCE_BYTES`` are read, so a whole file's bytes may be passed."""
    head = data[:EVIDENCE_BYTES]
    return lossy_image_bytes(head), jpeg_quality(head)


def jpeg_spec_quality(spec: str | None) -> int | None:
    """The quality of a ``--degrade`` spec's JPEG (``jpeg:95`` -> 95), as the file's tables would say it; None
    for no spec or another codec."""
    from upscaler.degradations import check_compression

    if not spec:
        return None
    codec, value = check_compression(spec)
    return value if codec == "jpeg" else None


def spec_evidence(spec: str | None) -> tuple[bool | None, int | None]:
    """What the file a ``--degrade`` spec made would say, for ``choose_model``: a codec's output is known as
    such (``True``, with a JPEG's quality); no spec, ``(None, None)``: the pixels tell."""
    return (True if spec else None), jpeg_spec_quality(spec)


def lossy_video_codec(codec: str) -> bool:
    """Whether frames in ``codec`` (FFmpeg's name) are compressed: all but ``CLEAN_VIDEO_CODECS``."""
    return codec.lower() not in CLEAN_VIDEO_CODECS


def clean_partner(model: str) -> str | None:
    """The model the manifest runs in place of ``model`` on a clean source (None: ``model`` runs always)."""
    from upscaler.models import load_partners

    return load_partners().get(model)


def choose_model(
    model: str,
    source: str = "auto",
    *,
    lossy: bool | None = None,
    quality: int | None = None,
    image: np.ndarray | None = None,
) -> str:
    """The model to run: ``model``, or its clean partner where the source is clean.

    ``source``: ``compressed`` (always ``model``), ``clean`` (the partner), ``auto``: compressed when
    ``lossy`` says so (unless the file's JPEG ``quality`` is ``LIGHT_JPEG_QUALITY`` or more: clean), else
    when ``image`` shows a JPEG grid; clean otherwise (``lossy`` False or None and no grid, or no image to
    look at).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    partner = clean_partner(model)
    if partner is None or source == "compressed":
        return model
    if source == "clean":
        return partner
    if lossy and quality is not None and quality >= LIGHT_JPEG_QUALITY:
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

    def upscale(self, image: np.ndarray, lossy: bool | None = None, quality: int | None = None) -> np.ndarray:
        """``image`` through the model its source calls for (``lossy``, ``quality``: as ``choose_model``)."""
        name = choose_model(self.model, self.source, lossy=lossy, quality=quality, image=image)
        self.used[name] += 1
        return self.get(name).upscale(image)
