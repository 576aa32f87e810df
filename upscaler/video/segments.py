"""Cutting a video into keyframe-aligned segments: the unit of resumption and of scale-out.

A segment is the frames whose timestamps lie in ``[start, end)``, starting
at a keyframe. Processing always goes segment by segment, so a resumed or
distributed run does exactly what an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Segment", "plan_segments", "trim_segments"]


@dataclass(frozen=True)
class Segment:
    """Frames with ``start <= pts < end`` (``end`` None: to the end); decoding begins at ``seek``."""

    index: int
    start: int
    end: int | None
    seek: int  #: the keyframe before ``start`` (open GOPs: leading frames need the previous one)

    @property
    def name(self) -> str:
        return f"seg-{self.index:05d}"


def plan_segments(keys: Sequence[int], time_base: Fraction, target_s: float) -> list[Segment]:
    """Group keyframe intervals into segments of at least ``target_s`` seconds (the last may be shorter).

    With no keyframe information the whole video is one segment.
    """
    if target_s <= 0:
        raise ValueError(f"segment length must be positive, got {target_s}")
    keys = sorted(set(keys))
    if not keys:
        return [Segment(0, -(2**62), None, -(2**62))]
    starts = [keys[0]]
    for key in keys[1:]:
        if (key - starts[-1]) * time_base >= target_s:
            starts.append(key)
    segments = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else None
        previous = max((k for k in keys if k < start), default=start)
        first = -(2**62) if i == 0 else start  # the first segment takes any frame before the first keyframe too
        segments.append(Segment(i, first, end, previous if i else start))
    return segments


def trim_segments(segments: Sequence[Segment], start: int, end: int | None) -> list[Segment]:
    """The segments cut to the frames with ``start <= pts < end`` (``end`` None: to the end), those left
    empty dropped; each keeps its index and keyframe, so it decodes as before and skips what is cut."""
    out = []
    for seg in segments:
        first = max(seg.start, start)
        last = seg.end if end is None else (end if seg.end is None else min(seg.end, end))
        if last is None or first < last:
            out.append(Segment(seg.index, first, last, seg.seek))
    return out
