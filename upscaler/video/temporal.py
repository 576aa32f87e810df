"""Temporal models in the video pipeline: one stream per segment, its history reset at the start and at cuts.

A segment is the unit of resumption and of scale-out, so it is also the
unit of history (DESIGN.md section 9): every segment starts from a fresh
history, whichever process or Ray worker runs it, and within it the history
is also reset where ``upscaler.temporal.cuts`` finds a scene cut. Segment
starts come from the keyframes and ``--segment-seconds``, cuts from the
decoded frames of the segment: both depend on the input only, so a resumed
or distributed run makes exactly the frames of an uninterrupted one.

Decoded video is not jittered and carries no motion vectors: each frame goes
in with zero jitter and ``motion=None`` (the upscaler estimates motion with
optical flow), one at a time and in order, since each builds on the one
before (DIS flow, the ``FLOW`` preset, recorded with the job: a job is not
resumed with another). The models take 8-bit frames: deeper sources are reduced to 8 bits
on the way in and widened again on the way out (the output keeps its pixel
format, with 8 bits of precision).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from upscaler.temporal.cuts import CutDetector, CutSettings
from upscaler.temporal.flow import DEFAULT_FLOW

__all__ = ["FLOW", "SegmentStream", "frame_size_check", "load_temporal", "temporal_identity"]

#: The optical flow preset for decoded frames (recorded with each job: part of its identity).
FLOW = DEFAULT_FLOW


def load_temporal(model, backend: str = "auto", *, threads: int | None = None, spin: bool = False):
    """A ``TemporalUpscaler`` for the video pipeline: with ``spin=False`` ONNX Runtime's idle threads sleep, so
    the decoder and encoder threads get the cores between frames (as for single-frame models)."""
    from upscaler.temporal import TemporalUpscaler

    return TemporalUpscaler(model, backend, threads=threads, spin=spin, flow=FLOW)


def frame_size_check(scale: int):
    """For ``prepare_job``: a video whose frames a temporal model cannot take (``check_temporal_size``, the
    service's limit too) is refused with ``VideoError`` before any work folder or output is made."""
    from upscaler.temporal import check_temporal_size
    from upscaler.video.probe import VideoError

    def check(source, info) -> None:
        try:
            check_temporal_size(info.width, info.height, scale)
        except ValueError as exc:
            raise VideoError(f"{source}: {exc}") from None

    return check


def temporal_identity() -> dict:
    """What a temporal job's frames depend on besides the model and engine (recorded in ``job.json``)."""
    return {"motion": "estimated", "flow": f"dis-{FLOW}", "jitter": [0.0, 0.0], "cuts": CutSettings().record()}


class SegmentStream:
    """The frames of one segment through a ``TemporalUpscaler``, driven as ``upscale_segment`` drives an
    ``Upscaler`` (``scale``, ``upscale_batch``): the history is reset on creation and at every cut."""

    def __init__(self, upscaler) -> None:
        upscaler.reset()
        self._upscaler = upscaler
        self._cuts = CutDetector()
        self.scale: int = upscaler.scale  #: output size / input size
        self.frames = 0  #: frames upscaled in this segment
        self.cuts: list[int] = []  #: the frames (indices in the segment) where a cut reset the history

    def upscale_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The frames upscaled one after the other, in order (a batch of a stream is never run at once)."""
        return [self._upscale(image) for image in images]

    def _upscale(self, image: np.ndarray) -> np.ndarray:
        deep = image.dtype == np.uint16
        frame = _to_8bit(image) if deep else image
        cut = self._cuts.is_cut(frame)
        if cut:
            self.cuts.append(self.frames)
        out = self._upscaler.upscale(frame, jitter=(0.0, 0.0), motion=None, reset=cut)
        self.frames += 1
        return out.astype(np.uint16) * np.uint16(257) if deep else out


def _to_8bit(image: np.ndarray) -> np.ndarray:
    """uint16 to uint8, rounded (65535 -> 255)."""
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
