"""Image decoding and encoding: bytes or files <-> numpy arrays.

Arrays are ``HxW`` (grey), ``HxWx3`` (RGB) or ``HxWx4`` (RGBA), ``uint8`` or
``uint16``. Files are written atomically: a temporary file beside the target
is renamed into place only once it is complete, so a failure never leaves a
half-written output behind.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "OUTPUT_FORMATS",
    "SAMPLES_DIR",
    "ImageError",
    "decode_image",
    "encode_image",
    "format_from_path",
    "list_images",
    "quiet_codec_logs",
    "read_image",
    "sample_images",
    "write_atomic",
    "write_image",
]

log = logging.getLogger(__name__)

#: Output formats by name, with their file extension.
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp"}
_DEFAULT_QUALITY = {"jpg": 95, "jpeg": 95, "webp": 95}
#: The real images bundled with the package (README sample, parity checks).
SAMPLES_DIR = Path(__file__).with_name("samples")
#: File extensions taken as images when a folder is given.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"})


class ImageError(ValueError):
    """An image could not be decoded, encoded or written."""


def quiet_codec_logs() -> None:
    """Silence OpenCV's own warnings about bad files: callers get an ``ImageError`` instead.

    For applications (the CLI, the service); a library import does not change
    OpenCV's global log level.
    """
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def decode_image(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Decode an encoded image (PNG, JPEG, WebP, BMP, TIFF, ...) to RGB(A) or grey."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageError("empty image data")
    is_jpeg = buf.size >= 2 and buf[0] == 0xFF and buf[1] == 0xD8
    # JPEG has no alpha: decode it with EXIF orientation applied. Anything
    # else keeps every channel and its bit depth.
    flags = (cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH) if is_jpeg else cv2.IMREAD_UNCHANGED
    try:
        image = cv2.imdecode(buf, flags)
    except cv2.error as exc:  # raised for some truncated or hostile files
        raise ImageError(f"cannot decode image: {exc.err or exc}") from None
    if image is None or image.size == 0:
        raise ImageError("not a decodable image (unknown format, truncated or corrupt)")
    return _to_rgb(image)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype not in (np.uint8, np.uint16):
        if image.dtype.kind == "f":
            image = np.clip(image, 0.0, 1.0)
            image = np.round(image * 65535).astype(np.uint16)
        else:
            raise ImageError(f"unsupported sample type {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return image
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    raise ImageError(f"unsupported channel count {image.shape[2]}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file; errors name the file and the reason in one line."""
    return read_image_bytes(path)[0]


def read_image_bytes(path: str | os.PathLike) -> tuple[np.ndarray, bytes]:
    """``read_image`` and the file's bytes, read once (for what its header says: ``upscaler.sources``)."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return decode_image(data), data
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # once, at import: os.umask is process-wide and not thread-safe


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by extension), sorted; ``FileNotFoundError`` if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: holds no images")
    return files


def sample_images() -> list[np.ndarray]:
    """The bundled sample images, decoded."""
    return [read_image(p) for p in list_images(SAMPLES_DIR)]


def format_from_path(path: str | os.PathLike) -> str:
    """Output format name from a file extension (``.jpeg`` -> ``jpg``)."""
    ext = Path(path).suffix.lower().lstrip(".")
    fmt = "jpg" if ext == "jpeg" else ext
    if fmt not in OUTPUT_FORMATS:
        raise ImageError(f"{path}: cannot write format {ext!r}; use one of png, jpg, webp")
    return fmt


def encode_image(image: np.ndarray, fmt: str = "png", quality: int | None = None) -> bytes:
    """Encode an RGB(A)/grey array. JPEG and WebP are 8-bit; JPEG drops alpha."""
    fmt = fmt.lower()
    if fmt not in OUTPUT_FORMATS:
        raise ImageError(f"unknown output format {fmt!r}; use one of png, jpg, webp")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
        raise ImageError(f"cannot encode an array of shape {image.shape}; expected HxW or HxWx1..4")
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"cannot encode samples of type {image.dtype}; expected uint8 or uint16")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 2:  # grey + alpha: no codec stores it here
        grey = image[:, :, 0]
        image = np.dstack([grey, grey, grey, image[:, :, 1]])
    if fmt != "png" and image.dtype == np.uint16:
        log.warning("%s stores 8 bits per sample; reducing 16-bit output to 8-bit", fmt)
        image = np.round(image / 257.0).astype(np.uint8)
    if fmt in ("jpg", "jpeg") and image.ndim == 3 and image.shape[2] == 4:
        log.warning("JPEG has no alpha channel; dropping it")
        image = image[:, :, :3]
    if image.ndim == 3:
        code = cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        image = cv2.cvtColor(image, code)
    params: list[int] = []
    q = quality if quality is not None else _DEFAULT_QUALITY.get(fmt)
    if fmt in ("jpg", "jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(q)]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(q)]
    try:
        ok, buf = cv2.imencode(OUTPUT_FORMATS[fmt], image, params)
    except cv2.error as exc:
        raise ImageError(f"cannot encode image as {fmt}: {exc.err or exc}") from None
    if not ok:
        raise ImageError(f"cannot encode image as {fmt}")
    return buf.tobytes()


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file beside it (usual permissions), then a rename.

    A reader sees the old file or the whole new one, never part; ``OSError`` on failure, nothing left behind.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_image(path: str | os.PathLike, image: np.ndarray, fmt: str | None = None, quality: int | None = None) -> Path:
    """Encode and write atomically (temporary file, then rename into place)."""
    path = Path(path)
    data = encode_image(image, fmt or format_from_path(path), quality)
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, expected an output file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, data)
    except OSError as exc:
        raise ImageError(f"{path}: cannot write ({exc.strerror or exc})") from None
