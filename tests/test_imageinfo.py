"""Header probing: the declared size of every decodable format, without decoding."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upscaler.imageinfo import ProbeError, probe

SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "bmp": ".bmp", "tiff": ".tiff", "pnm": ".ppm"}


def _encode(image: np.ndarray, suffix: str, params=()) -> bytes:
    ok, buf = cv2.imencode(suffix, image, list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("kind", sorted(SUFFIXES))
@pytest.mark.parametrize(("w", "h"), [(1, 1), (37, 5), (300, 17)])
def test_probe_reads_the_size_of_real_encodings(kind, w, h, photo):
    image = np.ascontiguousarray(np.resize(photo, (h, w, 3)))
    info = probe(_encode(image, SUFFIXES[kind]))
    assert (info.format, info.width, info.height) == (kind, w, h)


def test_probe_reads_lossless_and_grey_variants(photo):
    assert probe(_encode(photo[:20, :30], ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])).width == 30  # VP8L
    assert probe(_encode(photo[:20, :30, 0], ".png")).height == 20
    assert probe(_encode(photo[:9, :7], ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])).width == 7


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_a_bomb_declares_its_size_in_a_few_bytes():
    info = probe(_png_header(100_000, 100_000))
    assert info.pixels == 10**10


@pytest.mark.parametrize("data", [b"", b"hello world", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\0\0\0\0WEBPVP8 "])
def test_garbage_and_truncated_headers_are_refused(data):
    with pytest.raises(ProbeError):
        probe(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_probe_never_raises_anything_but_probe_error(data):
    try:
        info = probe(data)
    except ProbeError:
        return
    assert info.width >= 1 and info.height >= 1


@pytest.mark.parametrize("kind", sorted(SUFFIXES))
def test_truncated_real_headers_are_refused_or_read_right(kind, photo):
    data = _encode(photo[:21, :34], SUFFIXES[kind])
    for cut in range(0, min(len(data), 400), 3):
        try:
            info = probe(data[:cut])
        except ProbeError:
            continue
        assert (info.width, info.height) == (34, 21)
