"""Temporal models in the service: one loaded network per model, one history per WebSocket connection.

A temporal model is loaded once (its ONNX Runtime session or network: the
weights, the arena, the threads) and every stream gets its own
``TemporalUpscaler`` on it, holding only that stream's history. Frames run
in the engine thread like every other engine call (one job each, in the
batcher's queue and under its bound), one after another within a stream,
in the order they arrived. The frame message layout is
``upscaler.client``'s (the one definition both ends use).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, replace

import numpy as np

from server.errors import ApiError
from upscaler.client import FrameMessage, unpack_frame
from upscaler.models import ModelDescriptor
from upscaler.runtime import heap
from upscaler.runtime.base import EngineOptions
from upscaler.runtime.select import create_engine
from upscaler.runtime.stream import TemporalEngine
from upscaler.temporal import TemporalUpscaler, check_temporal_inputs, check_temporal_size

__all__ = [
    "TEMPORAL",
    "ReleaseJob",
    "TemporalJob",
    "TemporalModel",
    "TemporalStream",
    "parse_message",
]

#: First element of a batcher key whose item is one frame of one temporal stream (run alone, in order).
TEMPORAL = "temporal"


class TemporalModel:
    """One temporal model, loaded once; ``open()`` starts a stream on it."""

    def __init__(
        self, model: ModelDescriptor, backend: str, *, threads: int | None, spin: bool, precision: str | None = None
    ) -> None:
        self.model = model
        # Temporal engines run fp32 (and TensorRT fp16): an int8 service precision leaves them their best.
        precision = precision if precision in ("fp32", "fp16") else None
        options = EngineOptions(threads=threads, spin=spin, precision=precision)
        #: Never steps: every stream's engine is a copy of it (see ``open``).
        self.engine: TemporalEngine = create_engine(model, backend, options=options)

    @property
    def scale(self) -> int:
        """Output size / input size."""
        return self.model.scale

    def open(self) -> TemporalUpscaler:
        """A new stream with its own, empty history, on the loaded network (``TemporalEngine.fork``): one copy
        of the weights, one arena and one thread pool for all streams. Forks' steps must not run at the same
        time (a TensorRT context takes one call at a time): the service runs every engine call in its one
        engine thread. ``tests/test_server_temporal_stream.py`` checks that interleaved streams stay apart.
        """
        return TemporalUpscaler(self.model, engine=self.engine.fork())

    def release(self) -> None:
        """Give back what the loaded network keeps beyond the histories (no stream is open): its shared
        scratch and ONNX Runtime's arena, then the heaps' free pages. Engine thread only."""
        self.engine.release()
        heap.trim()

    def warm_up(self) -> None:
        """Two frames on a throw-away stream: the first allocates, the second runs the reprojecting path."""
        stream = self.open()
        frame = np.zeros((64, 64, 3), np.uint8)
        for _ in range(2):
            stream.upscale(frame, (0.0, 0.0), np.zeros((64, 64, 2), np.float32))


@dataclass(eq=False)
class TemporalJob:
    """One frame for the engine thread: the stream it belongs to and its inputs."""

    stream: TemporalUpscaler
    frame: np.ndarray
    jitter: tuple[float, float]
    motion: np.ndarray | None
    reset: bool
    depth: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The frame's shape (what the batcher's observers count pixels by)."""
        return self.frame.shape

    def run(self) -> np.ndarray:
        """The upscaled frame; the stream's history moves on."""
        return self.stream.upscale(self.frame, self.jitter, self.motion, depth=self.depth, reset=self.reset)


@dataclass(eq=False)
class ReleaseJob:
    """``TemporalModel.release`` as an engine-thread job (after every frame queued before it)."""

    target: TemporalModel
    shape: tuple[int, ...] = (0, 0)

    def run(self) -> None:
        self.target.release()


def parse_message(message: bytes | str, scale: int) -> FrameMessage:
    """One frame message (frame, jitter, motion, reset flag, depth): 400 if it is not one, 413 if the engines
    cannot take its size at x``scale`` (``check_temporal_size``), 422 if its values break the conventions
    (jitter out of range, motion not finite or beyond ``MOTION_BOUND``, depth not finite or negative)."""
    if isinstance(message, str):
        raise ApiError(
            400, "a temporal stream takes binary messages (a 24-byte header, RGB, optional motion); got a text message"
        )
    try:
        parsed = unpack_frame(message)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    try:
        check_temporal_size(parsed.frame.shape[1], parsed.frame.shape[0], scale)
    except ValueError as exc:
        raise ApiError(413, str(exc)) from None
    try:
        jitter = check_temporal_inputs(parsed.frame, parsed.jitter, parsed.motion, parsed.depth)
    except (TypeError, ValueError) as exc:
        raise ApiError(422, str(exc)) from None
    return replace(parsed, jitter=jitter)


_ids = itertools.count()


class TemporalStream:
    """One connection's history and the order its frames run in."""

    def __init__(self, service, target: TemporalModel) -> None:
        self.service, self.target = service, target
        self.upscaler = target.open()
        self.key = (TEMPORAL, target.model.name, next(_ids))
        # Frames enter the history in the order they arrived: each waits for the one before it to finish
        # (asyncio's lock is fair, and frame tasks start in the order the reader made them).
        self._turn = asyncio.Lock()

    async def answer(self, message: bytes | str) -> np.ndarray:
        """One message's upscaled frame; ``ApiError`` for a bad message or a failure (the history as it was)."""
        async with self._turn:
            m = parse_message(message, self.target.scale)
            self.service.check_pixels(self.target, m.frame.shape[1], m.frame.shape[0])
            job = TemporalJob(self.upscaler, m.frame, m.jitter, m.motion, m.reset, m.depth)
            return await self.service.guard(
                self.service.step(self.key, job), timeout=self.service.settings.request_timeout_s
            )
