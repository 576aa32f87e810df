"""Image format and size from the header of an encoded file, without decoding it.

Used to refuse oversized images (decompression bombs) before a decoder
allocates anything: a 100-byte PNG can declare 100000x100000 pixels.
Covers the formats ``upscaler.io`` decodes: PNG, JPEG, WebP, BMP, TIFF, PNM.
Other well-known image and document formats (GIF, SVG, PDF, AVIF/HEIC, ...)
are recognised and refused with :class:`UnsupportedFormat`, so a caller can
tell "a format we do not take" from "not an image".
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["ImageInfo", "ProbeError", "UnsupportedFormat", "probe"]

#: Bytes of the file's start that hold the header of every format but TIFF.
HEAD_BYTES = 65536
#: At most this many TIFF directory entries are read (real files have a few dozen).
MAX_TIFF_ENTRIES = 4096


class ProbeError(ValueError):
    """The bytes are not an image of a known format, or its header is cut short."""


class UnsupportedFormat(ProbeError):
    """The bytes are a recognised format that is not decoded here (``format`` names it)."""

    def __init__(self, format: str) -> None:
        super().__init__(f"{format} is not a supported image format")
        self.format = format


@dataclass(frozen=True)
class ImageInfo:
    """What the header declares."""

    format: str  #: png, jpeg, webp, bmp, tiff or pnm
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _u16(data: bytes, at: int, order: str = ">") -> int:
    return struct.unpack_from(order + "H", data, at)[0]


def _u32(data: bytes, at: int, order: str = ">") -> int:
    return struct.unpack_from(order + "I", data, at)[0]


def _png(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ProbeError("PNG without an IHDR chunk first")
    return _u32(data, 16), _u32(data, 20)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_segments(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(marker, payload)`` of each segment of a JPEG's header, in order, up to the start of scan (0xDA, the
    last one yielded) or the end of ``data``; fill bytes and markers without a length are passed over. A byte
    where a marker should be raises ``ProbeError``."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise ProbeError("corrupt JPEG marker")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        length = _u16(data, at + 2)
        yield marker, data[at + 4 : at + 2 + length]
        if marker == 0xDA:
            return
        at += 2 + length


def _jpeg(data: bytes) -> tuple[int, int]:
    for marker, payload in jpeg_segments(data):
        if marker in _SOF:
            if len(payload) < 5:
                break
            return _u16(payload, 3), _u16(payload, 1)
        if marker == 0xDA:  # start of scan before any frame header
            raise ProbeError("JPEG without a frame header")
    raise ProbeError("JPEG header cut short")


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ProbeError("corrupt WebP (VP8) header")
        return _u16(data, 26, "<") & 0x3FFF, _u16(data, 28, "<") & 0x3FFF
    if chunk == b"VP8L":
        bits = _u32(data, 21, "<")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    raise ProbeError(f"unknown WebP chunk {chunk!r}")


def _bmp(data: bytes) -> tuple[int, int]:
    header = _u32(data, 14, "<")
    if header == 12:  # OS/2 BITMAPCOREHEADER
        return _u16(data, 18, "<"), _u16(data, 20, "<")
    w, h = struct.unpack_from("<ii", data, 18)
    return abs(w), abs(h)


def _tiff(data: bytes) -> tuple[int, int]:
    """Width and height from the first image directory, wherever the file puts it.

    Writers such as libtiff (and so OpenCV) put the directory after the pixel
    data, at the end of the file: it is read where the header points, within
    the bytes given, a bounded number of entries, never the pixels.
    """
    order = "<" if data[:2] == b"II" else ">"
    big = _u16(data, 2, order) == 43  # BigTIFF: 8-byte offsets and counts, 20-byte entries
    if big:
        at = struct.unpack_from(order + "Q", data, 8)[0]
        count = struct.unpack_from(order + "Q", data, at)[0]
        first, step, value_at = at + 8, 20, 12
    else:
        at = _u32(data, 4, order)
        count = _u16(data, at, order)
        first, step, value_at = at + 2, 12, 8
    size = {}
    for i in range(min(count, MAX_TIFF_ENTRIES)):
        entry = first + step * i
        tag, kind = _u16(data, entry, order), _u16(data, entry + 2, order)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or (BigTIFF) LONG8, held in the entry
            if kind == 3:
                size[tag] = _u16(data, entry + value_at, order)
            elif kind == 16:
                size[tag] = struct.unpack_from(order + "Q", data, entry + value_at)[0]
            else:
                size[tag] = _u32(data, entry + value_at, order)
        if len(size) == 2:
            return size[256], size[257]
    raise ProbeError("TIFF without width and height")


def _pnm(data: bytes) -> tuple[int, int]:
    tokens: list[bytes] = []
    for line in data[2:].split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            try:
                return int(tokens[0]), int(tokens[1])
            except ValueError:
                break
    raise ProbeError("PNM header without a size")


#: Recognised formats not decoded here: leading bytes (at an offset) and the name.
_UNSUPPORTED = (
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"%PDF-", "pdf"),
    (0, b"8BPS", "psd"),
    (0, b"\x76\x2f\x31\x01", "exr"),
    (0, b"#?RADIANCE", "hdr"),
    (0, b"\xff\x0a", "jxl"),
    (4, b"JXL ", "jxl"),
    (4, b"jP  ", "jpeg2000"),
    (0, b"\xff\x4f\xff\x51", "jpeg2000"),
    (0, b"\x00\x00\x01\x00", "ico"),
)
_FTYP = {b"avif": "avif", b"avis": "avif", b"heic": "heic", b"heix": "heic", b"mif1": "heif", b"msf1": "heif"}
_SVG = re.compile(rb"^(\xef\xbb\xbf)?\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE\s+svg|<svg[\s>])", re.I | re.S)


def _unsupported(head: bytes) -> str | None:
    for at, magic, name in _UNSUPPORTED:
        if head[at : at + len(magic)] == magic:
            return name
    if head[4:8] == b"ftyp" and head[8:12] in _FTYP:
        return _FTYP[head[8:12]]
    if _SVG.match(head[:4096]):
        return "svg"
    return None


def probe(data: bytes) -> ImageInfo:
    """Format, width and height declared by the header of an encoded image.

    Reads the first 64 KB, and for TIFF the image directory where the file
    puts it. ``UnsupportedFormat`` for a recognised format that is not decoded
    here, ``ProbeError`` for anything else that is not a readable header.
    """
    head = bytes(data[:HEAD_BYTES])
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            kind, (w, h) = "png", _png(head)
        elif head.startswith(b"\xff\xd8"):
            kind, (w, h) = "jpeg", _jpeg(head)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            kind, (w, h) = "webp", _webp(head)
        elif head.startswith(b"BM"):
            kind, (w, h) = "bmp", _bmp(head)
        elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            kind, (w, h) = "tiff", _tiff(data)
        elif head[:1] == b"P" and head[1:2] in b"123456" and len(head) > 2:
            kind, (w, h) = "pnm", _pnm(head)
        elif (name := _unsupported(head)) is not None:
            raise UnsupportedFormat(name)
        else:
            raise ProbeError("not a PNG, JPEG, WebP, BMP, TIFF or PNM image")
    except (struct.error, IndexError):
        raise ProbeError("image header cut short") from None
    if w < 1 or h < 1:
        raise ProbeError(f"{kind} header declares {w}x{h} pixels")
    return ImageInfo(kind, w, h)
