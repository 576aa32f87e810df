"""Large images, tile by tile through the engine queue: they neither hold the engine nor outlive their request.

An image larger than one tile is upscaled by the facade's own tiling (same
blending, alpha and grey handling as ``Upscaler.upscale``) in a worker
thread, but each engine call it makes is submitted to the batcher as a job of
its own. Jobs run oldest first, so a small request that arrives while tile 3
of 16 runs is served before tile 4: one large request delays others by one
tile, not by the whole image. Cancelling the run (deadline, client gone,
shutdown) drops the queued tile and skips every tile not yet run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import itertools
import threading
from collections.abc import Callable

import numpy as np

from server.batcher import Batcher, BatchInfo
from server.pool import TILES
from upscaler.facade import Upscaler

__all__ = ["TILE", "Cancelled", "TiledRun", "needs_tiles"]

#: Tile edge (input pixels) for large images. A quarter of the facade's 512 px tile: each engine call, which
#: nothing can interrupt, is a quarter as long, so a small request waits a quarter as long behind one; and
#: the float band and tile output held at once are a quarter the size (a 1024x1024 image at x4 peaks at
#: about 220 MB instead of 515 MB) for about 5% more computation at the tile borders.
TILE = 256

_runs = itertools.count()


class Cancelled(Exception):
    """The run was cancelled: the tiles not yet run were skipped."""


def needs_tiles(up: Upscaler, width: int, height: int) -> bool:
    """Whether an image of this size is upscaled in tiles (more than one engine call)."""
    return up.tile > 0 and (width > up.tile or height > up.tile)


class TiledRun:
    """One large image: ``run`` it in a worker thread, ``cancel`` it from anywhere.

    ``on_tiles(n)`` is told after each engine call how many tiles it ran.
    """

    def __init__(
        self,
        up: Upscaler,
        batcher: Batcher,
        loop: asyncio.AbstractEventLoop,
        *,
        batch_size: int = 1,
        on_tiles: Callable[[int], None] | None = None,
    ) -> None:
        self.up, self.batcher, self.loop, self.on_tiles = up, batcher, loop, on_tiles
        self.key = (TILES, up.model.name, next(_runs))  # its own group: never batched with another image's tiles
        self.batch_size = batch_size
        self._cancelled = False
        self._current: concurrent.futures.Future | None = None
        self._lock = threading.Lock()
        self._queue_s = self._compute_s = 0.0

    @property
    def info(self) -> BatchInfo:
        """How the run was served: its time waiting for the engine and in it, summed over its tiles."""
        return BatchInfo(1, self._queue_s, self._compute_s)

    def run(self, image: np.ndarray) -> np.ndarray:
        """Upscale ``image`` (in a worker thread, never on the event loop); ``Cancelled`` if cancelled."""
        # The facade's tiling calls ``self.infer`` for every engine call: a shallow copy whose ``infer`` is
        # ``_infer`` keeps every other step (tiling, blending, alpha, rounding) the facade's own.
        routed = copy.copy(self.up)
        routed.infer = self._infer  # type: ignore[method-assign]
        routed.batch_size = self.batch_size
        routed.tile = min(self.up.tile, TILE)
        return routed.upscale(image)

    def cancel(self) -> None:
        """Skip every tile not yet run; the queued one leaves the queue (the running one cannot be stopped)."""
        with self._lock:
            self._cancelled = True
            current = self._current
        if current is not None:
            current.cancel()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._cancelled:
                raise Cancelled
            submitted = self.batcher.submit(self.key, batch, alone=True, admitted=True)
            self._current = asyncio.run_coroutine_threadsafe(submitted, self.loop)
        try:
            output, info = self._current.result()
        except concurrent.futures.CancelledError:
            raise Cancelled from None
        finally:
            with self._lock:
                self._current = None
        self._queue_s += info.queue_s
        self._compute_s += info.compute_s
        if self.on_tiles is not None:
            self.on_tiles(len(batch))
        return output
