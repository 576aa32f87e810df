"""Header probing: the declared size of every decodable format, without decoding."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upscaler.imageinfo import ProbeError, UnsupportedFormat, probe

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


# -- TIFF directories anywhere, unsupported formats -----------------------------------------------------


def test_a_tiff_whose_directory_is_past_64_kb_is_read_where_it_is():
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    data = _encode(image, ".tiff")  # libtiff writes the image directory after the pixel data
    assert struct.unpack_from("<I", data, 4)[0] > 65536
    info = probe(data)
    assert (info.format, info.width, info.height) == ("tiff", 400, 300)
    assert probe(memoryview(data)).width == 400  # the service passes what it read, not always bytes


def _bigtiff(w: int, h: int, order: str = "<") -> bytes:
    """A BigTIFF header and a directory holding ImageWidth (LONG8) and ImageLength (SHORT), at offset 16."""
    mark = b"II" if order == "<" else b"MM"
    head = mark + struct.pack(order + "HHHQ", 43, 8, 0, 16)
    entries = struct.pack(order + "HHQQ", 256, 16, 1, w) + struct.pack(order + "HHQH6x", 257, 3, 1, h)
    return head + struct.pack(order + "Q", 2) + entries + struct.pack(order + "Q", 0)


@pytest.mark.parametrize("order", ["<", ">"])
def test_bigtiff(order):
    info = probe(_bigtiff(70000, 513, order))
    assert (info.format, info.width, info.height) == ("tiff", 70000, 513)


@pytest.mark.parametrize(
    "data",
    [
        b"II*\x00" + struct.pack("<I", 10**9),  # a directory past the end
        b"II*\x00" + struct.pack("<IH", 8, 65535) + bytes(24),  # more entries than there are bytes
        b"MM\x00+" + struct.pack(">HHQ", 8, 0, 16) + struct.pack(">Q", 2**63),  # BigTIFF, absurd count
    ],
    ids=["offset-past-end", "count-past-end", "bigtiff-absurd-count"],
)
def test_broken_tiff_directories_are_refused(data):
    with pytest.raises(ProbeError):
        probe(data)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"GIF89a\x02\x00\x02\x00\x80\x00\x00", "gif"),
        (b"GIF87a\x10\x00\x10\x00", "gif"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "pdf"),
        (b'<?xml version="1.0"?>\n<!-- drawn -->\n<svg xmlns="http://www.w3.org/2000/svg"/>', "svg"),
        (b"\xef\xbb\xbf  <svg width='1' height='1'></svg>", "svg"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "avif"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "heic"),
    ],
)
def test_known_formats_not_decoded_here_are_named(data, name):
    with pytest.raises(UnsupportedFormat) as raised:
        probe(data)
    assert raised.value.format == name and isinstance(raised.value, ProbeError)


def test_xml_that_is_not_svg_is_not_an_image():
    with pytest.raises(ProbeError) as raised:
        probe(b'<?xml version="1.0"?><html></html>')
    assert not isinstance(raised.value, UnsupportedFormat)
