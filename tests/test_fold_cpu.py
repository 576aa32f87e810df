"""The accumulating engine's reprojection with still rows copied (``runtime.fold_cpu``): the planes OpenCV's
resampling of every pixel makes, bit for bit, whatever moves."""

from __future__ import annotations

import numpy as np
import pytest

from upscaler.runtime import fold_cpu, stream
from upscaler.runtime.stream import Scratch, fold_reproject_interleaved


def _motion(rng, h: int, w: int, still: str) -> np.ndarray:
    """Motion of ``h x w`` pixels, fractional, with ``still`` (a layout of exact zeros) still."""
    motion = (rng.random((2, h, w), dtype=np.float32) - 0.5) * 3
    if still == "all":
        motion[:] = 0.0
    elif still == "top rows":
        motion[:, : h // 2] = 0.0
    elif still == "rows between":
        motion[:, 1:-1:2] = 0.0
    elif still == "all but a pixel":
        motion[:] = 0.0
        motion[0, h // 2, w // 3] = 0.25
    elif still == "one axis":  # rows where only one component is zero still move
        motion[0, : h // 2] = 0.0
    return motion


@pytest.mark.parametrize("still", ["all", "top rows", "rows between", "all but a pixel", "one axis", "none"])
@pytest.mark.parametrize(("mode", "scale"), [("cubic", 4), ("linear", 2)])
def test_still_rows_copied_give_the_resampled_planes_bit_for_bit(still, mode, scale):
    rng = np.random.default_rng(7)
    h, w = 9, 13
    history = rng.random((h * scale, w * scale, 4), dtype=np.float32)
    motion = _motion(rng, h, w, still)
    expected = fold_reproject_interleaved(history, motion, scale, np.empty((4 * scale**2, h, w), np.float32), Scratch(),
                                          mode)  # fmt: skip
    out = np.full_like(expected, np.nan)
    assert fold_cpu.fold_reproject_still(history, motion, scale, out, Scratch(), mode, 2) is out
    assert np.array_equal(out, expected)


def test_the_moving_rows_are_resampled_in_blocks_within_the_scratch_bound(monkeypatch):
    """Maps of the moving rows only, resampled in blocks of ``WARP_BLOCK_BYTES`` (here 3 map rows), each unpacked
    into its rows: the same planes."""
    monkeypatch.setattr(stream, "WARP_BLOCK_BYTES", 3 * 13 * 4 * 4)
    rng = np.random.default_rng(8)
    history = rng.random((36, 52, 4), dtype=np.float32)
    motion = _motion(rng, 9, 13, "rows between")
    expected = fold_reproject_interleaved(history, motion, 4, np.empty((64, 9, 13), np.float32), Scratch(), "cubic")
    out, scratch = np.full_like(expected, np.nan), Scratch()
    fold_cpu.fold_reproject_still(history, motion, 4, out, scratch, "cubic", 1)
    assert np.array_equal(out, expected)
    assert scratch.take("warped", (1,)).base.size == 3 * 13 * 4
