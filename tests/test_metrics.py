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


def test_ssim_matches_the_formula_where_it_has_a_closed_form():
    """Flat images have no variance or covariance in any window: SSIM is the luminance term alone,
    (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01 * 255)^2 (Wang et al. 2004)."""
    c1 = (0.01 * 255) ** 2
    a, b = np.full((32, 40), 100.0), np.full((32, 40), 120.0)
    assert ssim(a, b, y_channel=False) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1), rel=1e-9)
    grey, red = np.full((24, 24, 3), 128, np.uint8), np.zeros((24, 24, 3), np.uint8)
    red[..., 0] = 200
    y_grey = 16 + (65.481 + 128.553 + 24.966) * 128 / 255  # BT.601 Y of each, as rgb_to_y computes it
    y_red = 16 + 65.481 * 200 / 255
    want = (2 * y_grey * y_red + c1) / (y_grey**2 + y_red**2 + c1)
    assert ssim(grey, red) == pytest.approx(want, rel=1e-6)


def test_ssim_needs_a_window():
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((10, 10)), np.zeros((10, 10)), y_channel=False)


def test_shave():
    assert shave(np.zeros((10, 12, 3)), 3).shape == (4, 6, 3)
    assert shave(np.zeros((10, 12)), 0).shape == (10, 12)
