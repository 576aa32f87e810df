"""Raw frames: pixels in ``rgb24``, ``bgr24`` or ``rgba32``, no codec (``/v1/frames`` and ``/v1/stream``)."""

from __future__ import annotations

import numpy as np

from server.errors import ApiError

__all__ = ["RAW_FORMATS", "raw_bytes", "raw_frame"]

#: Raw frame formats: channels per pixel, and whether the channel order is reversed (BGR).
RAW_FORMATS = {"rgb24": (3, False), "bgr24": (3, True), "rgba32": (4, False)}


def raw_frame(body: bytes, width: int, height: int, fmt: str) -> np.ndarray:
    """The frame in ``body`` as an ``H x W x C`` RGB(A) array (a view, no copy); 400 if its size is wrong."""
    channels, reverse = RAW_FORMATS[fmt]
    expected = width * height * channels
    if len(body) != expected:
        raise ApiError(400, f"a {width}x{height} {fmt} frame is {expected} bytes; got {len(body)}")
    frame = np.frombuffer(body, np.uint8).reshape(height, width, channels)
    return frame[:, :, ::-1] if reverse else frame


def raw_bytes(frame: np.ndarray, fmt: str) -> memoryview:
    """The frame's pixels in ``fmt``, without a copy when they are already in order."""
    _, reverse = RAW_FORMATS[fmt]
    return memoryview(np.ascontiguousarray(frame[:, :, ::-1] if reverse else frame)).cast("B")
