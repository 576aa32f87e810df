"""Decoding, encoding and atomic writes."""

import numpy as np
import pytest

from upscaler.io import ImageError, decode_image, encode_image, list_images, read_image, write_image


@pytest.mark.parametrize(
    "image",
    [
        np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3),
        np.arange(5 * 7 * 4, dtype=np.uint8).reshape(5, 7, 4),
        np.arange(5 * 7, dtype=np.uint8).reshape(5, 7),
        (np.arange(5 * 7 * 3, dtype=np.uint16) * 600).reshape(5, 7, 3),
        (np.arange(5 * 7 * 4, dtype=np.uint16) * 400).reshape(5, 7, 4),
    ],
    ids=["rgb8", "rgba8", "grey8", "rgb16", "rgba16"],
)
def test_png_round_trip_keeps_channels_and_depth(image):
    back = decode_image(encode_image(image, "png"))
    assert back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)


def test_channel_order_is_rgb(tmp_path):
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    path = write_image(tmp_path / "red.png", red)
    assert read_image(path)[0, 0].tolist() == [255, 0, 0]


def test_lossy_formats_are_8_bit_and_jpeg_drops_alpha(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
    jpg = decode_image(encode_image(rgba, "jpg", quality=90))
    assert jpg.shape == photo.shape
    webp = decode_image(encode_image(rgba.astype(np.uint16) * 257, "webp"))
    assert webp.dtype == np.uint8 and webp.shape == rgba.shape


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_undecodable_data_is_a_clear_error(data):
    with pytest.raises(ImageError):
        decode_image(data)


def test_truncated_file_is_a_clear_error(tmp_path, photo):
    data = encode_image(photo, "png")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match=r"cut\.png"):
        read_image(path)


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)


def test_write_is_atomic_and_leaves_nothing_on_failure(tmp_path, photo):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous")
    with pytest.raises(ImageError):
        write_image(target, np.zeros((2, 2, 7), np.uint8))  # cannot encode 7 channels
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    with pytest.raises(ImageError, match="is a directory"):
        write_image(tmp_path, photo, fmt="png")
    with pytest.raises(ImageError, match="format"):
        write_image(tmp_path / "out.gif", photo)


def test_written_files_get_the_usual_permissions(tmp_path, photo):
    path = write_image(tmp_path / "p.png", photo)
    assert path.stat().st_mode & 0o444 == 0o444


def test_list_images(tmp_path, photo):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.jpg", "sub/c.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.jpg", "b.png", "c.webp"]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "sub" / "none")


def test_jpeg_exif_orientation_is_applied():
    import struct

    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = 255
    jpg = encode_image(image, "jpg")
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)  # rotate 90 CW
    payload = b"Exif\x00\x00MM\x00\x2a" + struct.pack(">I", 8) + ifd
    rotated = jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpg[2:]
    assert decode_image(jpg).shape == (20, 40, 3)
    upright = decode_image(rotated)
    assert upright.shape == (40, 20, 3) and upright[:20].mean() > 200 and upright[20:].mean() < 50
