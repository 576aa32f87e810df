"""Degradations: how a low-resolution image is made from a high-resolution one.

The evaluation protocol (DESIGN section 4) and training share these, so a
model is measured on exactly the process it was trained to invert.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import cv2
import numpy as np

from upscaler.resize import imresize

__all__ = [
    "CODECS",
    "DEGRADATIONS",
    "bicubic",
    "check_compression",
    "compress",
    "compress_sequence",
    "degrade",
    "modcrop",
    "point_sample",
    "protocol_degradation",
    "quantize_uint8",
]


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def quantize_uint8(values: np.ndarray) -> np.ndarray:
    """Round half away from zero and clamp to uint8, as MATLAB does."""
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(hr, 1/scale)`` (antialiased bicubic) of a modcropped uint8 image."""
    if hr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {hr.dtype}")
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise ValueError(f"image size {hr.shape[:2]} is not a multiple of {scale}; modcrop it first")
    return quantize_uint8(imresize(hr, 1.0 / scale))


def point_sample(hr: np.ndarray, scale: int, phase: tuple[int, int] = (0, 0)) -> np.ndarray:
    """What a renderer without anti-aliasing draws: one HR sample per LR pixel.

    ``phase`` is the sub-pixel offset (rows, columns) of the sample inside each
    ``scale x scale`` cell; the evaluation protocol uses phase 0.
    """
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise ValueError(f"image size {hr.shape[:2]} is not a multiple of {scale}; modcrop it first")
    if not all(0 <= p < scale for p in phase):
        raise ValueError(f"phase {phase} must lie in [0, {scale})")
    return np.ascontiguousarray(hr[phase[0] :: scale, phase[1] :: scale])


#: Evaluation degradations by name: ``f(hr_uint8, scale) -> lr_uint8``, deterministic.
#: ``render`` is point sampling at phase 0 (DESIGN section 4).
DEGRADATIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"bicubic": bicubic, "render": point_sample}


def protocol_degradation(kind: str) -> str:
    """How a model trained on ``kind`` is measured: its own degradation where the protocol has it (bicubic,
    render), else bicubic (``video`` and ``paired`` models: clean inputs; ``upscaler eval --degrade`` adds the
    compression)."""
    return kind if kind in DEGRADATIONS else "bicubic"


def degrade(hr: np.ndarray, scale: int, kind: str = "bicubic") -> np.ndarray:
    """Low-resolution image of a modcropped ``hr`` by the named degradation."""
    try:
        fn = DEGRADATIONS[kind]
    except KeyError:
        raise ValueError(f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}") from None
    return fn(hr, scale)


#: Codecs ``compress`` applies, and the range of each one's setting: JPEG quality, H.264 CRF (libx264).
CODECS = {"jpeg": (1, 100), "h264": (0, 51)}


def check_compression(spec: str) -> tuple[str, int]:
    """``("jpeg", 40)`` from ``"jpeg:40"`` (``"h264:28"``: libx264 at CRF 28); ``ValueError`` naming the forms."""
    codec, _, value = spec.partition(":")
    if codec not in CODECS or not value.isdigit() or not CODECS[codec][0] <= int(value) <= CODECS[codec][1]:
        forms = ", ".join(f"{c}:{lo}-{hi}" for c, (lo, hi) in CODECS.items())
        raise ValueError(f"compression must be one of {forms} (e.g. jpeg:40, h264:28), got {spec!r}")
    return codec, int(value)


def compress(image: np.ndarray, spec: str, lead_in: list[tuple[int, int]] | None = None) -> np.ndarray:
    """``image`` (RGB uint8) through a lossy codec and back, as a decoder shows it: ``jpeg:Q`` (OpenCV,
    4:2:0) or ``h264:CRF`` (libx264 through PyAV, 4:2:0, preset medium). For H.264, ``lead_in`` shifts
    ``(dx, dy)`` make frames of the image moved that far, encoded before it, so the image is a P-frame
    predicted across motion, as in real video; without, it is a keyframe."""
    codec, value = check_compression(spec)
    if codec == "jpeg":
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, value])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return _h264(image, value, lead_in or [])


def _h264(image: np.ndarray, crf: int, lead_in: list[tuple[int, int]]) -> np.ndarray:
    h, w = image.shape[:2]
    even = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # 4:2:0 needs even sides
    frames = [np.roll(even, (dy, dx), axis=(0, 1)) for dx, dy in lead_in] + [even]
    return np.ascontiguousarray(_h264_stream(frames, crf, {"bf": "0"})[-1][:h, :w])


def compress_sequence(frames: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """Consecutive RGB uint8 frames (one size, even sides) through libx264 as one stream and back, as a
    decoder shows them: CRF ``crf``, 4:2:0, preset medium with its own B-frames and one keyframe, the way
    real video reaches a player."""
    check_compression(f"h264:{crf}")
    return _h264_stream(frames, crf, {})


def _h264_stream(frames: list[np.ndarray], crf: int, options: dict[str, str]) -> list[np.ndarray]:
    import av

    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"crf": str(crf), "preset": "medium", "threads": "1", **options}
    packets = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    decoded = [f for p in packets for f in decoder.decode(p)] + list(decoder.decode(None))
    return [f.to_ndarray(format="rgb24") for f in sorted(decoded, key=lambda f: f.pts)]
