"""The Upscaler facade on the shipped default model through ONNX Runtime."""

import numpy as np
import pytest

from upscaler import Upscaler
from upscaler.io import decode_image, encode_image


@pytest.fixture(scope="module")
def up():
    return Upscaler(backend="onnxruntime", tile=0)


@pytest.fixture(scope="module")
def reference(up, photo):
    return up.upscale(photo)


def grey_levels(a, b) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


def test_output_is_4x_and_better_than_stretching(up, reference, set5):
    from upscaler.degradations import bicubic, quantize_uint8
    from upscaler.metrics import psnr
    from upscaler.resize import imresize

    assert reference.shape == (1024, 1024, 3) and reference.dtype == np.uint8
    hr = set5["bird"]
    lr = bicubic(hr, 4)
    assert psnr(up.upscale(lr), hr, border=4) > psnr(quantize_uint8(imresize(lr, 4)), hr, border=4) + 1.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_whole_frame_output_is_contiguous_and_equals_the_per_pixel_conversion(dtype):
    from upscaler.pipeline import from_float, planes_to_image

    planes = np.random.default_rng(3).uniform(-0.1, 1.1, (3, 9, 11)).astype(np.float32)
    image = planes_to_image(planes, dtype)
    assert image.flags.c_contiguous and image.dtype == dtype and image.shape == (9, 11, 3)
    assert np.array_equal(image, from_float(planes.transpose(1, 2, 0), dtype))


@pytest.mark.parametrize(("tile", "feather"), [(64, 2), (100, 0), (37, 4)])
def test_tiled_equals_untiled_on_a_real_image(set5, tile, feather):
    image = set5["baby"]  # 512x512 photo
    whole = Upscaler(backend="onnxruntime", tile=0).upscale(image)
    tiled = Upscaler(backend="onnxruntime", tile=tile, feather=feather).upscale(image)
    assert grey_levels(whole, tiled) <= 1


def test_rgba_alpha_is_upscaled_separately_and_merged(up, photo, reference):
    ramp = np.tile(np.linspace(0, 255, photo.shape[1]).astype(np.uint8), (photo.shape[0], 1))
    out = up.upscale(np.dstack([photo, ramp]))
    assert out.shape == (1024, 1024, 4)
    assert grey_levels(out[..., :3], reference) == 0  # colour is unaffected by alpha
    assert abs(int(out[:, -1, 3].mean()) - 255) <= 2 and out[:, 0, 3].mean() <= 2
    assert np.all(np.diff(out[512, 16:-16, 3].astype(int)) >= -2)  # the ramp stays a ramp


def test_opaque_alpha_stays_exactly_opaque(up, photo):
    out = up.upscale(np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)]))
    assert np.all(out[..., 3] == 255)


def test_alpha_bicubic_mode(photo):
    alpha = np.zeros(photo.shape[:2], np.uint8)
    alpha[64:192, 64:192] = 255
    out = Upscaler(backend="onnxruntime", alpha="bicubic").upscale(np.dstack([photo, alpha]))
    assert out[512, 512, 3] == 255 and out[10, 10, 3] == 0


@pytest.mark.parametrize("shape", [(256, 256), (256, 256, 1)])
def test_greyscale_keeps_its_layout(up, photo, shape):
    grey = photo[..., 1].reshape(shape)
    out = up.upscale(grey)
    assert out.shape == (1024, 1024, *shape[2:])
    colour = up.upscale(np.repeat(photo[..., 1:2], 3, axis=2)).mean(axis=2)
    # Same network run; only clamping and rounding order differ (per channel vs after the mean).
    diff = np.abs(out.reshape(1024, 1024) - colour)
    assert diff.max() <= 2 and diff.mean() < 0.5


def test_grey_with_alpha(up, photo):
    out = up.upscale(np.dstack([photo[..., 0], np.full(photo.shape[:2], 128, np.uint8)]))
    assert out.shape == (1024, 1024, 2) and np.all(out[..., 1] == 128)


def test_16_bit_stays_16_bit_and_matches_8_bit(up, photo, reference):
    out = up.upscale(photo.astype(np.uint16) * 257)
    assert out.dtype == np.uint16
    assert grey_levels(np.round(out / 257.0), reference) <= 1
    # The extra precision is real: a 16-bit input off the 8-bit grid changes the output.
    shifted = up.upscale(photo.astype(np.uint16) * 257 + 100)
    assert np.abs(shifted.astype(int) - out).mean() > 50


def test_16_bit_png_round_trip(up, photo):
    image16 = decode_image(encode_image(photo.astype(np.uint16) * 257, "png"))
    assert up.upscale(image16).dtype == np.uint16


def test_float_input_gives_float_output(up, photo, reference):
    out = up.upscale(photo.astype(np.float32) / 255)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert np.abs(out * 255 - reference).max() <= 0.51


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 7, 3), (7, 1, 3), (3, 5, 3), (37, 53, 3), (101, 67, 3)])
def test_any_size_from_one_pixel(photo, shape):
    image = photo[: shape[0], : shape[1]]
    for tile in (0, 16):
        out = Upscaler(backend="onnxruntime", tile=tile).upscale(image)
        assert out.shape == (shape[0] * 4, shape[1] * 4, 3)


def test_batch_matches_single_images(up, photo):
    a, b = photo[:64, :80], photo[100:164, 50:130]
    batch = up.upscale_batch([a, b, photo[:30, :30, 0]])
    assert grey_levels(batch[0], up.upscale(a)) <= 1 and grey_levels(batch[1], up.upscale(b)) <= 1
    assert batch[2].shape == (120, 120)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 5), np.uint8), np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 3), np.int32), np.zeros(4)],
    ids=["5-channels", "empty", "int32", "1-d"],
)
def test_bad_arrays_are_refused(up, bad):
    with pytest.raises(ValueError):
        up.upscale(bad)


@pytest.mark.parametrize(
    "kwargs", [dict(tile=-1), dict(feather=-1), dict(batch_size=0), dict(alpha="magic"), dict(backend="cuda-magic")]
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Upscaler(**kwargs)
