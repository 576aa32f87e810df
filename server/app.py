"""The FastAPI application: endpoints, limits, auth, request ids, access logs, metrics.

``create_app(settings)`` builds one service instance. Models load and warm
up in the lifespan (``/readyz`` is 503 until then); inference runs through
the micro-batcher in a worker thread, so the event loop only parses, checks
and answers.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import numpy as np
from fastapi import FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.batcher import Batcher, DeadlineExceeded, QueueFull
from server.envelope import Envelope
from server.errors import ApiError, error_response
from server.metrics import Metrics
from server.pool import ModelPool
from server.settings import Settings
from upscaler.imageinfo import ProbeError, probe
from upscaler.io import ImageError, decode_image, encode_image, quiet_codec_logs
from upscaler.models import ModelError

__all__ = ["RAW_FORMATS", "create_app"]

#: Raw frame formats: channels per pixel, and whether the channel order is reversed (BGR).
RAW_FORMATS = {"rgb24": (3, False), "bgr24": (3, True), "rgba32": (4, False)}
_INPUT_FORMATS = {"png", "jpeg", "webp", "bmp", "tiff"}
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/webp", "image/bmp", "image/tiff", "image/x-ms-bmp"}
_MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_OPEN_HEALTH = {"/healthz", "/readyz"}
_OPEN_ALWAYS = {"/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"}


class Service:
    """What the handlers share: settings, models, batcher, metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.pool: ModelPool | None = None
        self.batcher: Batcher | None = None

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
        if path in _OPEN_ALWAYS:
            return False
        if path in _OPEN_HEALTH:
            return not self.settings.open_health
        if path == "/metrics":
            return not self.settings.open_metrics
        return True

    async def infer(self, model: str | None, image: np.ndarray):
        """Upscale one image through the batcher: ``(result, upscaler, info)``; ApiError on failure."""
        if self.pool is None or not self.pool.ready:
            raise ApiError(503, "models are still loading", {"Retry-After": "1"})
        try:
            up = self.pool.resolve(model)
        except ModelError as exc:
            raise ApiError(404, str(exc)) from None
        key = (up.model.name, image.shape, image.dtype.str)
        self.metrics.queued.set(self.batcher.load + 1)
        try:
            result, info = await self.batcher.submit(key, image, timeout=self.settings.request_timeout_s)
        except QueueFull as exc:
            raise ApiError(503, f"overloaded: {exc}", {"Retry-After": "1"}) from None
        except DeadlineExceeded as exc:
            raise ApiError(504, str(exc)) from None
        finally:
            self.metrics.queued.set(self.batcher.load)
        self.metrics.queue.observe(info.queue_s)
        return result, up, info

    def check_pixels(self, width: int, height: int) -> None:
        if width * height > self.settings.max_pixels:
            raise ApiError(413, f"{width}x{height} is {width * height} pixels; the limit is {self.settings.max_pixels}")


def _result_headers(up, info) -> dict[str, str]:
    return {
        "X-Model": up.model.name,
        "X-Engine": up.engine.name,
        "X-Batch-Size": str(info.batch_size),
        "X-Queue-Ms": f"{info.queue_s * 1000:.2f}",
        "X-Compute-Ms": f"{info.compute_s * 1000:.2f}",
    }


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_bytes(request: Request, limit: int) -> bytes:
    """The encoded image: the raw body, or the multipart ``file`` field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _read_body(request, limit)
    if kind == "multipart/form-data":
        request._body = body  # Starlette parses the form from the body already read
        try:
            form = await request.form(max_files=1, max_fields=8)
        except Exception as exc:  # malformed multipart of any kind
            raise ApiError(400, f"malformed multipart body: {exc}") from None
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(422, "multipart body needs a 'file' part holding the image")
            return await upload.read()
        finally:
            await form.close()  # spooled temporary files go now, not at garbage collection
    if kind and kind not in _IMAGE_TYPES and kind != "application/octet-stream":
        raise ApiError(415, f"unsupported content type {kind!r}; send an image (PNG, JPEG, WebP, BMP, TIFF)")
    return body


def create_app(settings: Settings) -> FastAPI:
    """A service instance for ``settings``."""
    quiet_codec_logs()
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await asyncio.to_thread(
            ModelPool,
            settings.models,
            backend=settings.backend,
            threads=settings.threads,
            max_batch_size=settings.max_batch_size,
            spin=settings.engine_spin,
            precision=settings.precision or None,
        )
        service.pool = pool
        service.batcher = Batcher(
            pool.run_batch,
            max_batch_size=settings.max_batch_size,
            max_delay_s=settings.max_batch_delay_ms / 1000.0,
            max_queue=settings.max_queue,
            on_batch=service.metrics.observe_batch,
        )
        service.batcher.start()
        if settings.warmup:
            await asyncio.to_thread(pool.warm_up)
        else:
            pool.ready = True
        yield
        await service.batcher.close()

    app = FastAPI(
        title="upscaler",
        version=_package_version(),
        description="Real-time neural super-sampling: 4x and 2x frame upscaling.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return error_response(422, "; ".join(parts) or "invalid parameters")

    app.add_middleware(Envelope, service=service, routes=lambda: routes, access=settings.access_log)

    @app.get("/healthz", summary="The process is alive")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Models are loaded and warmed up")
    async def readyz():
        ready = service.pool is not None and service.pool.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", summary="The models served")
    async def models():
        if service.pool is None:
            raise ApiError(503, "models are still loading", {"Retry-After": "1"})
        out = []
        for name, up in service.pool.upscalers.items():
            m = up.model
            out.append(
                {
                    "name": name,
                    "default": name == service.pool.default,
                    "aliases": sorted(a for a, t in service.pool.aliases.items() if t == name and a != name),
                    "scale": m.scale,
                    "degradation": m.degradation,
                    "engine": up.engine.name,
                    "description": m.description,
                    "quality": dict(m.quality),
                }
            )
        return {"models": out}

    @app.post(
        "/v1/upscale",
        summary="Upscale an encoded image (PNG, JPEG, WebP, BMP, TIFF): the body, or a multipart 'file' part",
        response_class=Response,
        responses={200: {"content": {m: {} for m in _MEDIA.values()}}},
    )
    async def upscale(
        request: Request,
        model: Annotated[str | None, Query(max_length=200, description="model name or alias")] = None,
        format: Annotated[Literal["png", "jpeg", "webp"], Query(description="output format")] = "png",
        quality: Annotated[int | None, Query(ge=1, le=100, description="JPEG/WebP quality")] = None,
    ):
        data = await _image_bytes(request, settings.max_body_bytes)
        if not data:
            raise ApiError(400, "empty body: send an image")
        try:
            info = probe(data)
        except ProbeError as exc:
            raise ApiError(400, f"not a decodable image: {exc}") from None
        if info.format not in _INPUT_FORMATS:
            raise ApiError(415, f"{info.format} images are not accepted; send PNG, JPEG, WebP, BMP or TIFF")
        service.check_pixels(info.width, info.height)
        try:
            image = await asyncio.to_thread(decode_image, data)
        except ImageError as exc:
            raise ApiError(400, str(exc)) from None
        service.check_pixels(image.shape[1], image.shape[0])
        result, up, batch = await service.infer(model, image)
        encoded = await asyncio.to_thread(encode_image, result, format, quality)
        return Response(encoded, media_type=_MEDIA[format], headers=_result_headers(up, batch))

    @app.post(
        "/v1/frames",
        summary="Upscale one raw frame (rgb24, bgr24 or rgba32); raw pixels back, no codec",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def frames(
        request: Request,
        x_width: Annotated[int, Header(ge=1, le=1 << 16, description="frame width in pixels")],
        x_height: Annotated[int, Header(ge=1, le=1 << 16, description="frame height in pixels")],
        x_format: Annotated[Literal["rgb24", "bgr24", "rgba32"], Header(description="pixel format")] = "rgb24",
        model: Annotated[str | None, Query(max_length=200)] = None,
    ):
        service.check_pixels(x_width, x_height)
        body = await _read_body(request, settings.max_body_bytes)
        frame = _raw_frame(body, x_width, x_height, x_format)
        result, up, batch = await service.infer(model, frame)
        headers = _result_headers(up, batch)
        headers.update({"X-Width": str(result.shape[1]), "X-Height": str(result.shape[0]), "X-Format": x_format})
        return Response(_raw_bytes(result, x_format), media_type="application/octet-stream", headers=headers)

    @app.websocket("/v1/stream")
    async def stream(
        websocket: WebSocket,
        width: Annotated[int, Query(ge=1, le=1 << 16)],
        height: Annotated[int, Query(ge=1, le=1 << 16)],
        format: Annotated[Literal["rgb24", "bgr24", "rgba32"], Query()] = "rgb24",
        model: Annotated[str | None, Query(max_length=200)] = None,
    ):
        if service.needs_key("/v1/stream") and not service.authorised(websocket.headers.get("authorization")):
            denial = error_response(401, "unauthorized", {"WWW-Authenticate": "Bearer"})
            if "websocket.http.response" in websocket.scope.get("extensions", {}):
                await websocket.send_denial_response(denial)  # a real 401 in the handshake
            else:
                await websocket.close(code=1008, reason="unauthorized")
            return
        await websocket.accept()
        try:
            service.check_pixels(width, height)
            if service.pool:
                service.pool.resolve(model)
        except (ApiError, ModelError) as exc:
            await _ws_error(websocket, 413 if isinstance(exc, ApiError) else 404, str(exc))
            await websocket.close(code=1008)
            return
        await _serve_stream(websocket, service, width, height, format, model)

    routes = frozenset(route.path for route in app.routes)  # read by the envelope at request time
    return app


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("upscaler")
    except PackageNotFoundError:
        return "unknown"


def _raw_frame(body: bytes, width: int, height: int, fmt: str) -> np.ndarray:
    channels, reverse = RAW_FORMATS[fmt]
    expected = width * height * channels
    if len(body) != expected:
        raise ApiError(400, f"a {width}x{height} {fmt} frame is {expected} bytes; got {len(body)}")
    frame = np.frombuffer(body, np.uint8).reshape(height, width, channels)
    return frame[:, :, ::-1] if reverse else frame


def _raw_bytes(frame: np.ndarray, fmt: str) -> memoryview:
    """The frame's pixels in ``fmt``, without a copy when they are already in order."""
    _, reverse = RAW_FORMATS[fmt]
    return memoryview(np.ascontiguousarray(frame[:, :, ::-1] if reverse else frame)).cast("B")


async def _ws_error(websocket: WebSocket, status: int, message: str) -> None:
    await websocket.send_text(json.dumps({"error": {"code": status, "message": message}}))


async def _serve_stream(websocket: WebSocket, service: Service, width: int, height: int, fmt: str, model) -> None:
    """Read frames, run up to ``max_in_flight`` at once, answer strictly in order."""
    pending: asyncio.Queue = asyncio.Queue(maxsize=service.settings.max_in_flight)

    async def one(data: bytes):
        try:
            frame = _raw_frame(data, width, height, fmt)
            result, _, _ = await service.infer(model, frame)
            return _raw_bytes(result, fmt)
        except ApiError as exc:
            return exc

    async def reader():
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    data = (message.get("text") or "").encode()
                await pending.put(asyncio.create_task(one(data)))  # blocks while max_in_flight are pending
        finally:
            await pending.put(None)

    async def writer():
        while (task := await pending.get()) is not None:
            outcome = await task
            if isinstance(outcome, ApiError):
                await _ws_error(websocket, outcome.status, outcome.message)
            else:
                await websocket.send_bytes(outcome)
                service.metrics.frames.inc()

    reading = asyncio.create_task(reader())
    try:
        await writer()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reading.cancel()
