"""Tile planning and blending: pure functions, checked exhaustively and by property."""

import tracemalloc
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upscaler.tiling import axis_weights, plan_axis, run_tiled


@given(length=st.integers(1, 400), tile=st.integers(1, 128), context=st.integers(0, 12), feather=st.integers(0, 6))
@settings(max_examples=300, deadline=None)
def test_plan_covers_reads_enough_and_blends_to_one(length, tile, context, feather):
    spans = plan_axis(length, tile, context, feather)
    # Cores partition the axis and respect the tile size.
    assert spans[0].start == 0 and spans[-1].stop == length
    assert all(a.stop == b.start for a, b in pairwise(spans))
    assert all(0 < s.stop - s.start <= tile for s in spans)
    # Every window has the same size and holds the core plus its context (clipped to the image).
    assert len({s.in_stop - s.in_start for s in spans}) == 1
    for s in spans:
        assert 0 <= s.in_start <= max(0, s.start - context)
        assert min(length, s.stop + context) <= s.in_stop <= length
        assert s.in_start <= s.out_start <= s.start and s.stop <= s.out_stop <= s.in_stop
    # Blend weights over the whole axis sum to exactly one everywhere.
    scale = 2
    total = np.zeros(length * scale)
    for i, s in enumerate(spans):
        total[s.out_start * scale : s.out_stop * scale] += axis_weights(spans, i, scale)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_contributions_stay_inside_the_context():
    # Pixels a tile contributes to must be at least `context - feather` from its window edge.
    spans = plan_axis(1000, 100, context=8, feather=2)
    for s in spans:
        if s.in_start > 0:
            assert s.out_start - s.in_start >= 6
        if s.in_stop < 1000:
            assert s.in_stop - s.out_stop >= 6


@pytest.mark.parametrize("bad", [dict(length=0, tile=4, context=0), dict(length=4, tile=0, context=0)])
def test_plan_rejects_bad_sizes(bad):
    with pytest.raises(ValueError):
        plan_axis(**bad)


def local_filter_x2(batch: np.ndarray) -> np.ndarray:
    """A real local operator with a 2-pixel receptive field (zero padded), then 2x nearest.

    Stands in for a network so the tiler's arithmetic can be checked exactly.
    """
    padded = np.pad(batch, ((0, 0), (0, 0), (2, 2), (2, 2)))
    h, w = batch.shape[2:]
    acc = sum(padded[:, :, dy : dy + h, dx : dx + w] * (1 + dy + 3 * dx) for dy in range(5) for dx in range(5))
    return (acc / 100.0).repeat(2, axis=2).repeat(2, axis=3)


@pytest.mark.parametrize(
    ("shape", "tile", "feather"), [((97, 131, 3), 32, 0), ((97, 131, 3), 32, 3), ((40, 9, 1), 8, 2)]
)
def test_tiled_equals_untiled_for_a_local_operator(shape, tile, feather):
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    whole = local_filter_x2(image.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    out = np.full_like(whole, np.nan)
    written = []

    def write(row, rows):
        written.append((row, len(rows)))
        out[row : row + len(rows)] = rows

    run_tiled(image, local_filter_x2, write, scale=2, tile=tile, context=2 + feather, feather=feather)
    np.testing.assert_allclose(out, whole, atol=1e-5)
    # Rows arrive once each, in order.
    assert [r for r, _ in written] == list(np.cumsum([0] + [n for _, n in written[:-1]]))
    assert sum(n for _, n in written) == shape[0] * 2


def test_batches_never_exceed_batch_size():
    sizes = []

    def run(batch):
        sizes.append(batch.shape[0])
        return local_filter_x2(batch)

    run_tiled(np.zeros((50, 200, 3), np.float32), run, lambda r, x: None, scale=2, tile=16, context=4, batch_size=3)
    assert max(sizes) <= 3 and sum(sizes) == 4 * 13


def _peak_bytes(height: int) -> int:
    image = np.zeros((height, 512, 3), np.uint8)
    out = np.empty((height * 2, 1024, 3), np.uint8)

    def run(batch):
        return batch.repeat(2, axis=2).repeat(2, axis=3)

    def write(row, rows):
        out[row : row + len(rows)] = rows

    def prepare(crop):
        return crop.transpose(2, 0, 1).astype(np.float32)

    tracemalloc.start()
    run_tiled(image, run, write, scale=2, tile=128, context=4, feather=2, prepare=prepare)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_peak_memory_does_not_grow_with_the_image():
    """The tiler holds one band of float rows, whatever the image height."""
    small, large = _peak_bytes(512), _peak_bytes(4096)
    assert large < small * 1.2, f"peak grew from {small / 1e6:.1f} MB to {large / 1e6:.1f} MB"
    whole_float_output = 4096 * 2 * 1024 * 3 * 4  # what an untiled float pipeline would hold
    assert large < whole_float_output / 4
