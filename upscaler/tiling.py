"""Tiled inference with overlap and feathered blending, in bounded memory.

Pure numpy. An image is cut into a grid of *cores*; each tile reads its core
plus ``context`` pixels of real neighbouring input on every side, so the
network's zero padding never reaches the pixels that are kept. Neighbouring
tiles overlap by ``2 * feather`` pixels around each core boundary and are
cross-faded there with linear ramps whose weights sum to one, which hides any
residual difference. With ``context >= receptive_field + feather`` the tiled
result equals the untiled one up to float rounding.

Rows of tiles are processed top to bottom; only one band of output rows is
held in float32 at a time and finished rows are handed to a ``write``
callback, so peak memory is bounded by the tile size and the image width,
not by the image area.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

__all__ = ["Span", "axis_weights", "plan_axis", "run_tiled"]

#: Runs a batch ``N x C x h x w`` float32 through the network: ``N x C x sh x sw``.
RunFn = Callable[[np.ndarray], np.ndarray]
#: Receives finished output rows: ``write(first_row, rows)`` with rows ``r x W x C``.
WriteFn = Callable[[int, np.ndarray], None]
#: Turns an ``h x w x ...`` crop of the image into the network's ``C x h x w`` float32 input.
PrepareFn = Callable[[np.ndarray], np.ndarray]


def _chw_float(crop: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32)


@dataclass(frozen=True)
class Span:
    """One tile along one axis, in input (low-resolution) pixels."""

    start: int  #: first pixel of the core this tile owns
    stop: int  #: one past the core
    in_start: int  #: first input pixel the tile reads (core minus context, shifted inside)
    in_stop: int  #: one past the last input pixel read
    out_start: int  #: first pixel the tile contributes to (core minus feather)
    out_stop: int  #: one past the last pixel it contributes to


def plan_axis(length: int, tile: int, context: int, feather: int = 0) -> list[Span]:
    """Split ``length`` pixels into cores of at most ``tile`` pixels.

    Every tile reads a window of the same size (``tile + 2 * context``, or the
    whole axis if that is shorter) so tiles can be batched; windows at the
    edges are shifted inwards rather than shrunk. ``feather`` is reduced to
    what the smallest core allows (half its length).
    """
    if length < 1:
        raise ValueError(f"length must be positive, got {length}")
    if tile < 1 or context < 0 or feather < 0:
        raise ValueError("tile must be positive; context and feather non-negative")
    count = -(-length // tile)
    if count == 1:
        return [Span(0, length, 0, length, 0, length)]
    bounds = [(i * length) // count for i in range(count + 1)]
    feather = min(feather, min(b - a for a, b in pairwise(bounds)) // 2, context)
    window = min(length, tile + 2 * context)
    spans = []
    for i in range(count):
        start, stop = bounds[i], bounds[i + 1]
        in_start = min(max(0, start - context), length - window)
        out_start = 0 if i == 0 else start - feather
        out_stop = length if i == count - 1 else stop + feather
        spans.append(Span(start, stop, in_start, in_start + window, out_start, out_stop))
    return spans


def axis_weights(spans: list[Span], index: int, scale: int) -> np.ndarray:
    """Blend weights of ``spans[index]`` over its output range, in output pixels.

    Linear ramps across each interior core boundary; the ramps of the two
    tiles that meet there sum to exactly one.
    """
    span = spans[index]
    pos = (np.arange(span.out_start * scale, span.out_stop * scale) + 0.5) / scale
    weights = np.ones_like(pos)
    if index > 0 and span.start > span.out_start:
        width = 2.0 * (span.start - span.out_start)
        weights *= np.clip((pos - span.out_start) / width, 0.0, 1.0)
    if index < len(spans) - 1 and span.out_stop > span.stop:
        width = 2.0 * (span.out_stop - span.stop)
        weights *= np.clip((span.out_stop - pos) / width, 0.0, 1.0)
    return weights.astype(np.float32)


def run_tiled(
    image: np.ndarray,
    run: RunFn,
    write: WriteFn,
    *,
    scale: int,
    tile: int,
    context: int,
    feather: int = 0,
    batch_size: int = 4,
    prepare: PrepareFn = _chw_float,
) -> None:
    """Upscale ``image`` (``H x W x ...``, any dtype) tile by tile.

    Each tile's crop goes through ``prepare`` (by default: to ``C x h x w``
    float32), so the image is never converted whole. ``run`` is called with
    batches of at most ``batch_size`` tiles of one shape; ``write`` receives
    every output row exactly once, in order.
    """
    height, width = image.shape[:2]
    if tile <= 0 or (height <= tile and width <= tile):
        whole = run(prepare(image)[None])[0]
        write(0, whole.transpose(1, 2, 0))
        return
    rows = plan_axis(height, tile, context, feather)
    cols = plan_axis(width, tile, context, feather)
    col_weights = [axis_weights(cols, j, scale) for j in range(len(cols))]
    carry: np.ndarray | None = None
    for i, row in enumerate(rows):
        band_start = row.out_start * scale
        band: np.ndarray | None = None
        row_weights = axis_weights(rows, i, scale)
        for first in range(0, len(cols), batch_size):
            batch = [
                prepare(image[row.in_start : row.in_stop, c.in_start : c.in_stop]) for c in cols[first:][:batch_size]
            ]
            outputs = run(np.stack(batch))
            if band is None:  # channel count known from the first output
                band = np.zeros(((row.out_stop - row.out_start) * scale, width * scale, outputs.shape[1]), np.float32)
                if carry is not None:
                    band[: carry.shape[0]] = carry
            for j, out in zip(range(first, first + len(outputs)), outputs):
                col = cols[j]
                y0 = (row.out_start - row.in_start) * scale
                x0 = (col.out_start - col.in_start) * scale
                piece = out[:, y0 : y0 + band.shape[0], x0 : x0 + len(col_weights[j])].transpose(1, 2, 0)
                weight = row_weights[:, None, None] * col_weights[j][None, :, None]
                band[:, col.out_start * scale : col.out_stop * scale] += piece * weight
        done = band.shape[0] if i == len(rows) - 1 else (rows[i + 1].out_start * scale) - band_start
        write(band_start, band[:done])
        carry = band[done:].copy()
