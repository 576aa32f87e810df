"""PSNR/SSIM on Y: plain functions of arrays, checked on known cases."""

import numpy as np
import pytest

from upscaler.metrics import psnr, rgb_to_y, shave, ssim


def test_y_of_black_and_white():
    assert rgb_to_y(np.zeros((1, 1, 3))) == pytest.approx(16.0)
    assert rgb_to_y(np.full((1, 1, 3), 255.0)) == pytest.approx(235.0, abs=1e-9)
    assert rgb_to_y(np.full((1, 1, 3), 65535.0), max_value=65535) == pytest.approx(235.0, abs=1e-9)


def test_psnr_of_known_error():
    a = np.zeros((8, 8), np.uint8)
    b = np.full((8, 8), 10, np.uint8)
    # MSE 100 on a 255 peak: 10 log10(255^2 / 100)
    assert psnr(a, b, y_channel=False) == pytest.approx(10 * np.log10(255**2 / 100))
    assert psnr(a, a, y_channel=False) == float("inf")


def test_psnr_shaves_the_border():
    a = np.zeros((12, 12, 3), np.uint8)
    b = a.copy()
    b[:2] = 255  # differences only inside the shaved border
    assert psnr(a, b, border=2) == float("inf")
    assert psnr(a, b, border=1) < 30


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_ssim_identity_symmetry_and_order(photo):
    noisy = np.clip(photo.astype(int) + np.random.default_rng(0).normal(0, 10, photo.shape), 0, 255)
    noisier = np.clip(photo.astype(int) + np.random.default_rng(1).normal(0, 30, photo.shape), 0, 255)
    assert ssim(photo, photo) == pytest.approx(1.0)
    assert ssim(photo, noisy) == pytest.approx(ssim(noisy, photo))
    assert 0 < ssim(photo, noisier) < ssim(photo, noisy) < 1


def test_ssim_needs_a_window():
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((10, 10)), np.zeros((10, 10)), y_channel=False)


def test_shave():
    assert shave(np.zeros((10, 12, 3)), 3).shape == (4, 6, 3)
    assert shave(np.zeros((10, 12)), 0).shape == (10, 12)
