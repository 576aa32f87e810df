"""``WS /v1/stream``: frames from one client, at most ``max_in_flight`` in progress, answered in order.

Two kinds of stream, by the model asked for. A single-frame model's stream
takes raw frames of the size and format in the query (each frame on its
own). A temporal model's stream takes frame messages (``upscaler.client``:
a header with the size, jitter and flags, the RGB pixels, optional motion
vectors) and owns one history: its frames run one after another, in the
order they came, and each continues from the one before; at most
``max_streams`` temporal streams are open at once (beyond: 503 in the
handshake). Replies are raw pixels either way.

The key is checked before anything else (a 401 in the handshake). Bad
parameters, an unknown model or too many pixels are then answered by one
JSON error message and a close frame (1008) whose reason says why. A frame
that fails is answered in its place by a JSON error message, in the same
shape as HTTP errors, and the stream goes on (a temporal stream's history as
it was). When the client goes away, its frames not yet started leave the
engine queue, every task of the connection is ended before the handler
returns, and a temporal stream's history is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.datastructures import QueryParams
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.errors import ApiError, error_json, error_response
from server.frames import RAW_FORMATS, raw_bytes, raw_frame
from server.service import Service
from server.temporal import TemporalModel, TemporalStream
from server.wsprotocol import ABORT
from upscaler.client import MAGIC
from upscaler.facade import Upscaler
from upscaler.runtime import heap
from upscaler.temporal import check_temporal_size

__all__ = ["StreamParams", "parse_params", "serve_stream"]

log = logging.getLogger("upscaler.server")

_MAX_SIDE = 1 << 16
_CLOSE_REASON_BYTES = 123  # the most a close frame's reason may hold
_TRY_AGAIN_LATER = 1013  # close code: the server cannot take the connection now

#: A stream's answer to one message: the reply's bytes (it raises ``ApiError`` to send that in their place).
Answer = Callable[[bytes | str], Awaitable[bytes | memoryview]]


@dataclass(frozen=True)
class StreamParams:
    """What a stream's query string asks for (for a temporal model, width and height are the first frames'
    size, checked at once; each frame message carries its own)."""

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


def _reason(message: str) -> str:
    return message.encode()[:_CLOSE_REASON_BYTES].decode(errors="ignore")


async def _refuse(websocket: WebSocket, exc: ApiError) -> None:
    """After the handshake: one JSON error message, then a close frame whose reason is the message."""
    await websocket.accept()
    await websocket.send_text(error_json(exc))
    await websocket.close(code=1008, reason=_reason(exc.message))


async def _deny(websocket: WebSocket, exc: ApiError, close_code: int) -> None:
    """In the handshake: the HTTP error response with the JSON error, where the server can send one; else a
    close frame whose reason says why."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(exc.status, exc.message, exc.headers, exc.code))
    else:
        await websocket.close(code=close_code, reason=_reason(exc.message))


async def serve_stream(websocket: WebSocket, service: Service) -> None:
    """Check the key, then the parameters (and, for a temporal model, the open streams), then run the stream
    until either side ends it."""
    if service.needs_key("/v1/stream") and not service.authorised(websocket.headers.get("authorization")):
        await _deny(websocket, ApiError(401, "unauthorized", {"WWW-Authenticate": "Bearer"}), 1008)
        return
    try:
        params = parse_params(websocket.query_params)
        target = service.served(params.model)
        service.check_pixels(target, params.width, params.height)
        if isinstance(target, TemporalModel):
            _check_temporal_query(target, params)
    except ApiError as exc:
        await _refuse(websocket, exc)
        return
    if not isinstance(target, TemporalModel):
        await _run(websocket, service, _raw_answer(service, target, params))
        await asyncio.to_thread(heap.trim)  # its messages (up to --max-body-bytes each) go back to the system
        return
    if not service.open_temporal():
        busy = ApiError(
            503,
            f"all {service.settings.max_streams} temporal streams this service holds (--max-streams) are open; "
            "try again later",
            {"Retry-After": "1"},
        )
        await _deny(websocket, busy, _TRY_AGAIN_LATER)
        return
    try:
        await _run_temporal(websocket, service, target)
    finally:
        service.close_temporal()
    if service.temporal_streams == 0:  # the last one: what the engine kept for streams goes back
        await service.release(target)


def _check_temporal_query(target: TemporalModel, params: StreamParams) -> None:
    if params.format != "rgb24":
        raise ApiError(422, f"format: a temporal stream takes rgb24 frames, got {params.format!r}")
    try:
        check_temporal_size(params.width, params.height, target.scale)
    except ValueError as exc:
        raise ApiError(413, str(exc)) from None


async def _run_temporal(websocket: WebSocket, service: Service, target: TemporalModel) -> None:
    """A temporal stream; its history goes with ``stream`` when this returns (a frame still in the engine
    holds it till done)."""
    stream = TemporalStream(service, target)

    async def answer(message: bytes | str) -> memoryview:
        return raw_bytes(await stream.answer(message), "rgb24")

    await _run(websocket, service, answer)


async def _run(websocket: WebSocket, service: Service, answer: Answer) -> None:
    await websocket.accept()
    service.metrics.streams.inc()
    try:
        await _Stream(websocket, service, answer).run()
    finally:
        service.metrics.streams.dec()


def _raw_answer(service: Service, up: Upscaler, p: StreamParams) -> Answer:
    """A single-frame stream's answer: each message is one raw frame of the query's size and format."""

    async def answer(message: bytes | str) -> memoryview:
        data = message.encode() if isinstance(message, str) else message
        try:
            frame = raw_frame(data, p.width, p.height, p.format)
        except ApiError as exc:
            if data[: len(MAGIC)] == MAGIC:  # a temporal client on a single-frame model: say so
                exc.message += f"; this is a temporal frame message, but {up.model.name} is a single-frame model"
            raise

        async def work() -> memoryview:
            async with service.lane(up, p.width, p.height):
                result, _ = await service.infer(up, frame)
            return raw_bytes(result, p.format)

        return await service.guard(work(), timeout=service.settings.request_timeout_s)

    return answer


class _Stalled(Exception):
    """The client has not taken a reply for ``stream_send_timeout_s``."""


class _Stream:
    """One connection: a reader that starts frames, a writer that answers them in order.

    It ends when the client goes, when a reply waits ``stream_send_timeout_s`` for the client to read (the
    connection is closed with 1008, or dropped if even the close cannot get through: its slot is free either
    way), or at shutdown: then it reads no more, answers the frames in flight and closes with 1012.
    """

    def __init__(self, websocket: WebSocket, service: Service, answer: Answer) -> None:
        self.websocket, self.service, self.answer = websocket, service, answer
        # A slot is taken before a frame starts and given back once it is answered: exactly max_in_flight
        # frames in progress at most, and the reader stops reading while they are.
        self.slots = asyncio.Semaphore(service.settings.max_in_flight)
        self.order: asyncio.Queue[asyncio.Task | None] = asyncio.Queue()  # None: no more frames (draining)
        self.frames: set[asyncio.Task] = set()

    async def run(self) -> None:
        reading = asyncio.create_task(self._read())
        writing = asyncio.create_task(self._write())
        drain = asyncio.create_task(self.service.draining.wait())
        stop = asyncio.create_task(self.service.stopping.wait())
        try:
            await asyncio.wait([reading, writing, drain], return_when=asyncio.FIRST_COMPLETED)
            if drain.done() and not (reading.done() or writing.done()):
                reading.cancel()  # shutdown: no new frames; the ones read are answered, until the deadline
                await asyncio.gather(reading, return_exceptions=True)
                self.order.put_nowait(None)
                await asyncio.wait([writing, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Whichever ended first (client gone, send failed, shutdown), nothing of this connection runs on.
            everything = [reading, writing, drain, stop, *self.frames]
            for task in everything:
                task.cancel()
            await asyncio.gather(*everything, return_exceptions=True)
        await self._end(writing, drain)

    async def _end(self, writing: asyncio.Task, drain: asyncio.Task) -> None:
        failure = writing.exception() if writing.done() and not writing.cancelled() else None
        if isinstance(failure, _Stalled):
            log.info("stream closed: %s", failure)
            if not await self._close(1008, str(failure), timeout=1.0):
                self._abort()  # the close frame cannot get past the unread replies
        elif drain.done() and not drain.cancelled():
            await self._close(1012, "the service is shutting down")
        elif failure is not None:
            log.warning("stream ended: %s", failure)

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                data = message.get("text") or ""
            await self.slots.acquire()
            task = asyncio.create_task(self._one(data))
            self.frames.add(task)
            task.add_done_callback(self.frames.discard)
            self.order.put_nowait(task)

    async def _write(self) -> None:
        timeout = self.service.settings.stream_send_timeout_s
        while (task := await self.order.get()) is not None:
            try:
                outcome = await task
            finally:
                self.slots.release()
            send = self.websocket.send_text(error_json(outcome)) if isinstance(outcome, ApiError) else None
            try:
                await asyncio.wait_for(send or self.websocket.send_bytes(outcome), timeout)
            except TimeoutError:
                raise _Stalled(
                    f"a reply waited {timeout:g} s for the client to read it (--stream-send-timeout-s)"
                ) from None
            except (WebSocketDisconnect, OSError, RuntimeError):
                return  # the client has gone: ``run`` ends the rest
            if send is None:
                self.service.metrics.frames.inc()

    async def _one(self, data: bytes | str) -> bytes | memoryview | ApiError:
        """One frame's answer: its pixels, or the error to send in its place."""
        try:
            return await self.answer(data)
        except ApiError as exc:
            return exc
        except Exception:  # a bug or an engine failure: the client hears of it, the stream goes on
            log.exception("frame failed on /v1/stream")
            return ApiError(500, "internal error")

    async def _close(self, code: int, reason: str, timeout: float | None = None) -> bool:
        """Send the close frame (``reason`` cut to what one holds); False if it could not go within ``timeout``."""
        try:
            await asyncio.wait_for(self.websocket.close(code=code, reason=_reason(reason)), timeout)
        except TimeoutError:
            return False
        except (WebSocketDisconnect, OSError, RuntimeError):  # already closed
            pass
        return True

    def _abort(self) -> None:
        abort = self.websocket.scope.get("extensions", {}).get(ABORT)
        if abort is not None:  # else (another server) uvicorn closes it when the handler returns
            abort["abort"]()
