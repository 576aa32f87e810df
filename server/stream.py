"""``WS /v1/stream``: raw frames from one client, at most ``max_in_flight`` in progress, answered in order.

The key is checked before anything else (a 401 in the handshake). Bad
parameters, an unknown model or too many pixels are then answered by one
JSON error message and a close frame (1008) whose reason says why. A frame
that fails is answered in its place by a JSON error message, in the same
shape as HTTP errors, and the stream goes on. When the client goes away,
its frames not yet started leave the engine queue and every task of the
connection is ended before the handler returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from starlette.datastructures import QueryParams
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.errors import ApiError, error_json, error_response
from server.frames import RAW_FORMATS, raw_bytes, raw_frame
from server.service import Service
from upscaler.facade import Upscaler

__all__ = ["StreamParams", "parse_params", "serve_stream"]

log = logging.getLogger("upscaler.server")

_MAX_SIDE = 1 << 16
_CLOSE_REASON_BYTES = 123  # the most a close frame's reason may hold


@dataclass(frozen=True)
class StreamParams:
    """What a stream's query string asks for."""

    width: int
    height: int
    format: str = "rgb24"
    model: str | None = None


def _side(query: QueryParams, name: str, problems: list[str]) -> int:
    text = query.get(name)
    if text is None:
        problems.append(f"{name}: required")
    elif not text.isdigit() or not 1 <= int(text) <= _MAX_SIDE:
        problems.append(f"{name}: must be an integer from 1 to {_MAX_SIDE}, got {text!r}")
    else:
        return int(text)
    return 0


def parse_params(query: QueryParams) -> StreamParams:
    """The stream's parameters; 422 naming every bad one."""
    problems: list[str] = []
    width, height = _side(query, "width", problems), _side(query, "height", problems)
    fmt = query.get("format", "rgb24")
    if fmt not in RAW_FORMATS:
        problems.append(f"format: must be one of {', '.join(RAW_FORMATS)}, got {fmt!r}")
    model = query.get("model")
    if model is not None and len(model) > 200:
        problems.append("model: at most 200 characters")
    if problems:
        raise ApiError(422, "; ".join(problems))
    return StreamParams(width, height, fmt, model)


async def _refuse(websocket: WebSocket, exc: ApiError) -> None:
    """After the handshake: one JSON error message, then a close frame whose reason is the message."""
    await websocket.accept()
    await websocket.send_text(error_json(exc))
    reason = exc.message.encode()[:_CLOSE_REASON_BYTES].decode(errors="ignore")
    await websocket.close(code=1008, reason=reason)


async def serve_stream(websocket: WebSocket, service: Service) -> None:
    """Check the key, then the parameters, then run the stream until either side ends it."""
    if service.needs_key("/v1/stream") and not service.authorised(websocket.headers.get("authorization")):
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(error_response(401, "unauthorized", {"WWW-Authenticate": "Bearer"}))
        else:  # no denial responses on this server: refuse in the close frame
            await websocket.close(code=1008, reason="unauthorized")
        return
    try:
        params = parse_params(websocket.query_params)
        up = service.model(params.model)
        service.check_pixels(up, params.width, params.height)
    except ApiError as exc:
        await _refuse(websocket, exc)
        return
    await websocket.accept()
    service.metrics.streams.inc()
    try:
        await _Stream(websocket, service, up, params).run()
    finally:
        service.metrics.streams.dec()


class _Stream:
    """One connection: a reader that starts frames, a writer that answers them in order."""

    def __init__(self, websocket: WebSocket, service: Service, up: Upscaler, params: StreamParams) -> None:
        self.websocket, self.service, self.up, self.params = websocket, service, up, params
        # A slot is taken before a frame starts and given back once it is answered: exactly max_in_flight
        # frames in progress at most, and the reader stops reading while they are.
        self.slots = asyncio.Semaphore(service.settings.max_in_flight)
        self.order: asyncio.Queue[asyncio.Task] = asyncio.Queue()
        self.frames: set[asyncio.Task] = set()

    async def run(self) -> None:
        reading = asyncio.create_task(self._read())
        writing = asyncio.create_task(self._write())
        stop = asyncio.create_task(self.service.stopping.wait())
        try:
            await asyncio.wait([reading, writing, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Whichever ended first (client gone, send failed, shutdown), nothing of this connection runs on.
            everything = [reading, writing, stop, *self.frames]
            for task in everything:
                task.cancel()
            await asyncio.gather(*everything, return_exceptions=True)
        if stop.done() and not stop.cancelled():
            await self._close(1012, "the service is shutting down")
        elif writing.done() and not writing.cancelled() and writing.exception() is not None:
            log.warning("stream ended: %s", writing.exception())

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                data = (message.get("text") or "").encode()
            await self.slots.acquire()
            task = asyncio.create_task(self._one(data))
            self.frames.add(task)
            task.add_done_callback(self.frames.discard)
            self.order.put_nowait(task)

    async def _write(self) -> None:
        while True:
            task = await self.order.get()
            try:
                outcome = await task
            finally:
                self.slots.release()
            try:
                if isinstance(outcome, ApiError):
                    await self.websocket.send_text(error_json(outcome))
                else:
                    await self.websocket.send_bytes(outcome)
                    self.service.metrics.frames.inc()
            except (WebSocketDisconnect, OSError, RuntimeError):
                return  # the client has gone: ``run`` ends the rest

    async def _one(self, data: bytes) -> bytes | memoryview | ApiError:
        """One frame's answer: its pixels, or the error to send in its place."""
        p, service = self.params, self.service
        try:
            frame = raw_frame(data, p.width, p.height, p.format)

            async def work() -> memoryview:
                async with service.lane(self.up, p.width, p.height):
                    result, _ = await service.infer(self.up, frame)
                return raw_bytes(result, p.format)

            return await service.guard(work(), timeout=service.settings.request_timeout_s)
        except ApiError as exc:
            return exc
        except Exception:  # a bug or an engine failure: the client hears of it, the stream goes on
            log.exception("frame failed on /v1/stream")
            return ApiError(500, "internal error")

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):  # already closed
            await self.websocket.close(code=code, reason=reason)
