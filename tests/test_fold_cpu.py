"""The accumulating engine's reprojection, a block of sub-pixels at a time (``runtime.fold_cpu``): what OpenCV's
resampling of every sub-pixel and the model's own ``grid_sample`` give, to rounding; still pixels bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from upscaler.archs.temporal import reproject
from upscaler.runtime import fold_cpu
from upscaler.runtime.stream import fold_reproject


def _case(seed: int, h: int, w: int, scale: int, reach: float, still: float = 0.0):
    """An interleaved history (``sH x sW x 4``) and motion up to ``reach`` LR px, a share ``still`` of it zero."""
    rng = np.random.default_rng(seed)
    history = rng.random((h * scale, w * scale, 4), dtype=np.float32)
    motion = (rng.random((2, h, w), dtype=np.float32) - 0.5) * np.float32(2 * reach)
    motion[:, rng.random((h, w)) < still] = 0.0
    return history, motion


def _opencv(history, motion, scale, mode) -> np.ndarray:
    """OpenCV's ``remap`` of every sub-pixel of each plane (what the engine ran before, and runs for other
    models' states)."""
    return fold_reproject(np.ascontiguousarray(history.transpose(2, 0, 1)), motion, scale, mode=mode)


def _blocks(history, motion, scale, mode, threads=2) -> np.ndarray:
    out = np.full((4 * scale * scale, *motion.shape[1:]), np.nan, np.float32)
    assert fold_cpu.fold_reproject_blocks(history, motion, scale, out, mode, threads) is out
    return out


@pytest.mark.parametrize(("mode", "scale"), [("cubic", 4), ("cubic", 2), ("linear", 4)])
@pytest.mark.parametrize("reach", [0.4, 3.0, 40.0])  # within a pixel, across the frame's edges, far beyond them
def test_blocks_resample_as_opencv_does_every_sub_pixel(mode, scale, reach):
    history, motion = _case(3, 9, 13, scale, reach, still=0.3)
    expected = _opencv(history, motion, scale, mode)
    ours = _blocks(history, motion, scale, mode)
    assert np.abs(ours - expected).max() < 2e-5
    still = (motion[0] == 0) & (motion[1] == 0)
    assert still.any() and np.array_equal(ours[:, still], expected[:, still])  # copied: bit for bit


def test_blocks_are_what_the_models_grid_sample_reads():
    history, motion = _case(4, 8, 12, 4, 2.5)
    planes = torch.from_numpy(np.ascontiguousarray(history.transpose(2, 0, 1)))[None]
    warped = reproject(planes, torch.from_numpy(motion)[None], 4, "bicubic")
    expected = torch.nn.functional.pixel_unshuffle(warped, 4)[0].numpy()
    assert np.abs(_blocks(history, motion, 4, "cubic", threads=1) - expected).max() < 1e-4


def test_a_still_frame_is_its_state_folded_and_huge_motion_reads_the_edge():
    history, motion = _case(5, 6, 7, 4, 0.0)
    folded = torch.nn.functional.pixel_unshuffle(torch.from_numpy(history.transpose(2, 0, 1).copy())[None], 4)[0]
    assert np.array_equal(_blocks(history, motion, 4, "cubic"), folded.numpy())
    motion[:] = 1e30  # every tap clamped to the bottom-right corner
    assert np.abs(_blocks(history, motion, 4, "cubic") - history[-1, -1].repeat(16)[:, None, None]).max() < 1e-6


def test_a_state_of_other_channels_or_layout_is_refused():
    history, motion = _case(6, 4, 5, 2, 1.0)
    out = np.empty((16, 4, 5), np.float32)
    with pytest.raises(ValueError, match="4 channels"):
        fold_cpu.fold_reproject_blocks(np.ascontiguousarray(history[..., :3]), motion, 2, out, "cubic", 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        fold_cpu.fold_reproject_blocks(history[:, ::-1], motion, 2, out, "cubic", 1)
