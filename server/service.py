"""What the handlers share: settings, models, batcher, metrics, and the bounds on one request's cost.

Every piece of work a request starts runs under :meth:`Service.guard`, which
ends it at the first of: its deadline (504), its client going away (nothing
sent, recorded as 499), or the shutdown deadline (503). Ending it cancels
it, and cancelling takes its queued engine jobs out of the queue and skips
the tiles of a large image not yet run, so no work outlives its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

import numpy as np
from starlette.types import Receive

from server.batcher import Batcher, BatchInfo, DeadlineExceeded, QueueFull
from server.errors import ApiError, ClientGone
from server.metrics import Metrics
from server.pool import IMAGES, ModelPool, Served
from server.settings import Settings
from server.temporal import TEMPORAL, ReleaseJob, TemporalJob, TemporalModel
from server.tiles import Cancelled, TiledRun, needs_tiles
from upscaler.facade import Upscaler
from upscaler.models import ModelError

__all__ = ["Service"]

log = logging.getLogger("upscaler.server")

T = TypeVar("T")

_OPEN_HEALTH = {"/healthz", "/readyz"}
_OPEN_ALWAYS = {"/docs", "/openapi.json"}


def shutting_down() -> ApiError:
    """The answer to a request the shutdown deadline cut short."""
    return ApiError(503, "the service is shutting down", {"Retry-After": "1"}, code="shutting_down")


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (call only after the request body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        await asyncio.sleep(0)  # a server that answers at once with empty bodies must not spin the loop


class Service:
    """The state every handler shares."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.pool: ModelPool | None = None
        self.batcher: Batcher | None = None
        self.draining = asyncio.Event()  #: set when shutdown begins: streams take no new frames
        self.stopping = asyncio.Event()  #: set at the shutdown deadline: everything still running gets 503
        self._lanes = asyncio.Semaphore(settings.large_lanes)
        self._large = 0  # large requests running or waiting for a lane
        self.temporal_streams = 0  #: temporal streams open (each holds a history): at most ``max_streams``

    # -- access --------------------------------------------------------------

    def authorised(self, header: str | None) -> bool:
        """Constant-time check of ``Authorization: Bearer <key>`` against every configured key."""
        if not self.settings.api_keys:
            return True
        scheme, _, token = (header or "").partition(" ")
        token = token.strip().encode()
        ok = False
        for key in self.settings.api_keys:  # no early exit: timing does not tell which key matched
            ok |= hmac.compare_digest(token, key.encode())
        return ok and scheme.lower() == "bearer"

    def needs_key(self, path: str) -> bool:
        """Whether ``path`` needs a key (when keys are configured)."""
        if path in _OPEN_ALWAYS:
            return False
        if path in _OPEN_HEALTH:
            return not self.settings.open_health
        if path == "/metrics":
            return not self.settings.open_metrics
        return True

    # -- admission -----------------------------------------------------------

    def served(self, name: str | None) -> Served:
        """The served model a client named, single-frame or temporal: 503 while loading, 404 if not served."""
        if self.pool is None or not self.pool.ready or self.batcher is None:
            raise ApiError(503, "models are still loading", {"Retry-After": "1"})
        try:
            return self.pool.resolve(name)
        except ModelError as exc:
            raise ApiError(404, str(exc)) from None

    def model(self, name: str | None) -> Upscaler:
        """The single-frame model a client named: 503 while loading, 404 if not served, 422 if temporal."""
        served = self.served(name)
        if isinstance(served, TemporalModel):
            others = ", ".join(self.pool.upscalers) or "none"
            raise ApiError(
                422,
                f"{served.model.name} is a temporal model: it upscales streams of jittered frames over "
                f"WS /v1/stream (each frame with its jitter and motion), not single images; single-frame "
                f"models served: {others}",
            )
        return served

    def open_temporal(self) -> bool:
        """Count one more temporal stream, unless ``max_streams`` are open (then False)."""
        if self.temporal_streams >= self.settings.max_streams:
            return False
        self.temporal_streams += 1
        self.metrics.temporal_streams.set(self.temporal_streams)
        return True

    def close_temporal(self) -> None:
        """A temporal stream has ended and its history is dropped."""
        self.temporal_streams -= 1
        self.metrics.temporal_streams.set(self.temporal_streams)

    async def release(self, target: TemporalModel) -> None:
        """In the engine thread, after the frames before it: give back what ``target`` kept for streams that
        have all closed (its scratch, ONNX Runtime's arena, the free heap pages)."""
        key = (TEMPORAL, target.model.name, "release")
        with contextlib.suppress(QueueFull):  # shutting down: the process is about to give everything back
            await self.batcher.submit(key, ReleaseJob(target), alone=True, admitted=True)

    def check_pixels(self, up: Served, width: int, height: int, resized: tuple[int, int] | None = None) -> None:
        """413 unless the output (input pixels times scale squared, and the ``resized`` size asked for, if
        any) is within ``max_pixels``."""
        out_w, out_h = width * up.scale, height * up.scale
        if resized is not None and resized[0] * resized[1] > out_w * out_h:
            out_w, out_h = resized
        out = out_w * out_h
        if out > self.settings.max_pixels:
            raise ApiError(
                413,
                f"{width}x{height} at x{up.scale} makes {out_w}x{out_h} = {out} output pixels; the limit is "
                f"{self.settings.max_pixels}",
            )

    @asynccontextmanager
    async def lane(self, up: Upscaler, width: int, height: int) -> AsyncIterator[None]:
        """Hold a lane for a large (tiled) image, waiting in line for one; small ones pass at once.

        Bounds how many large outputs are in memory and how many tile streams share the engine.
        """
        if not needs_tiles(up, width, height):
            yield
            return
        if self._large >= self.settings.max_queue:
            raise ApiError(503, f"overloaded: {self._large} large images in line", {"Retry-After": "1"})
        self._large += 1
        self.metrics.large.set(self._large)
        try:
            async with self._lanes:
                yield
        finally:
            self._large -= 1
            self.metrics.large.set(self._large)

    # -- work ----------------------------------------------------------------

    async def guard(self, work: Awaitable[T], *, receive: Receive | None = None, timeout: float | None = None) -> T:
        """Await ``work`` unless the shutdown deadline (503), ``timeout`` (504) or, with ``receive``, the
        client going away (``ClientGone``) comes first; then ``work`` is cancelled and nothing of it runs on."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        gone = asyncio.ensure_future(_disconnected(receive)) if receive is not None else None
        watched = [task, stop, *([gone] if gone else [])]
        try:
            done, _ = await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for other in watched:
                other.cancel()  # a no-op on what is done; ends the watchers and, if it is not done, the work
            await asyncio.gather(*watched, return_exceptions=True)  # the work unwinds before we answer
        if task in done:
            return task.result()
        if stop in done:
            raise shutting_down()
        if gone is not None and gone in done:
            raise ClientGone
        raise ApiError(504, f"not answered within {timeout:g} s")

    async def infer(self, up: Upscaler, image: np.ndarray) -> tuple[np.ndarray, BatchInfo]:
        """Upscale one image: whole, batched with others of its shape; or, if large, tile by tile."""
        if needs_tiles(up, image.shape[1], image.shape[0]):
            return await self._tiled(up, image)
        key = (IMAGES, up.model.name, image.shape, image.dtype.str)
        self.metrics.queued.set(self.batcher.load + 1)
        try:
            result, info = await self.batcher.submit(key, image)
        except QueueFull as exc:
            raise ApiError(503, f"overloaded: {exc}", {"Retry-After": "1"}) from None
        except DeadlineExceeded as exc:  # not given a timeout here (``guard`` keeps the deadline); kept for safety
            raise ApiError(504, str(exc)) from None
        finally:
            self.metrics.queued.set(self.batcher.load)
        self.metrics.queue.observe(info.queue_s)
        return result, info

    async def step(self, key: tuple, job: TemporalJob) -> np.ndarray:
        """One frame of a temporal stream through the engine thread, in a call of its own (its inputs were
        checked before: whatever the engine raises is the service's failure, not the client's)."""
        self.metrics.queued.set(self.batcher.load + 1)
        try:
            result, info = await self.batcher.submit(key, job, alone=True)
        except QueueFull as exc:
            raise ApiError(503, f"overloaded: {exc}", {"Retry-After": "1"}) from None
        finally:
            self.metrics.queued.set(self.batcher.load)
        self.metrics.queue.observe(info.queue_s)
        return result

    async def _tiled(self, up: Upscaler, image: np.ndarray) -> tuple[np.ndarray, BatchInfo]:
        run = TiledRun(
            up,
            self.batcher,
            asyncio.get_running_loop(),
            batch_size=self.settings.max_batch_size,
            on_tiles=self.metrics.tiles.inc,
        )
        try:
            return await asyncio.to_thread(run.run, image), run.info
        except QueueFull as exc:
            raise ApiError(503, f"overloaded: {exc}", {"Retry-After": "1"}) from None
        except Cancelled:  # cancelled from elsewhere (shutdown closed the queue)
            raise shutting_down() from None
        finally:
            run.cancel()  # a no-op once finished; else (this await cancelled) its remaining tiles are skipped

    # -- shutdown ------------------------------------------------------------

    def begin_shutdown(self, timeout: float) -> float:
        """SIGTERM came: at ``timeout`` s less a margin for the answers, whatever still runs gets 503.

        Returns the seconds until then.
        """
        self.draining.set()
        margin = min(1.0, 0.2 * timeout)  # time to send the 503s and close before the server's own cut-off
        delay = max(0.0, timeout - margin)
        asyncio.get_running_loop().call_later(delay, self.stopping.set)
        log.info("shutting down: in-flight requests have %.2f s to finish", delay)
        return delay
