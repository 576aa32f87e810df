"""The FastAPI application: endpoints, limits, auth, request ids, access logs, metrics.

``create_app(settings)`` builds one service instance. Models load and warm
up in the lifespan (``/readyz`` is 503 until then); inference runs through
the micro-batcher in a worker thread, so the event loop only parses, checks
and answers. Each request's work runs under ``Service.guard``: it ends at its
deadline, when its client goes away, or at the shutdown deadline, and
nothing of it runs on after that.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.batcher import Batcher, BatchInfo
from server.bodies import image_bytes, read_body
from server.docs import FRAME_BODY, IMAGE_BODY, docs_page, document_errors, secure_openapi
from server.envelope import Envelope
from server.errors import ApiError, error_response
from server.frames import RAW_FORMATS, raw_bytes, raw_frame
from server.pool import ModelPool
from server.service import Service
from server.settings import Settings, stream_memory_bound
from server.stream import serve_stream
from server.temporal import TemporalModel
from upscaler.facade import Upscaler
from upscaler.imageinfo import ImageInfo, ProbeError, UnsupportedFormat, probe
from upscaler.io import ImageError, decode_image, encode_image, quiet_codec_logs
from upscaler.outsize import OutputSize, fit, model_for
from upscaler.sources import choose_model, clean_partner, image_evidence

__all__ = ["RAW_FORMATS", "Service", "create_app"]

log = logging.getLogger("upscaler.server")

_INPUT_FORMATS = {"png", "jpeg", "webp", "bmp", "tiff"}
_MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_ACCEPTED = "send PNG, JPEG, WebP, BMP or TIFF"


def _result_headers(up: Upscaler, info: BatchInfo) -> dict[str, str]:
    return {
        "X-Model": up.model.name,
        "X-Engine": up.engine.name,
        "X-Batch-Size": str(info.batch_size),
        "X-Queue-Ms": f"{info.queue_s * 1000:.2f}",  # a large image's: summed over its tiles
        "X-Compute-Ms": f"{info.compute_s * 1000:.2f}",
    }


def _probe(data: bytes) -> ImageInfo:
    """The image's declared format and size: 400 if unreadable, 415 if a format not taken here."""
    try:
        info = probe(data)
    except UnsupportedFormat as exc:
        raise ApiError(415, f"{exc.format} images are not accepted; {_ACCEPTED}") from None
    except ProbeError as exc:
        raise ApiError(400, f"not a decodable image: {exc}") from None
    if info.format not in _INPUT_FORMATS:
        raise ApiError(415, f"{info.format} images are not accepted; {_ACCEPTED}")
    return info


_SIZE_HELP = {
    "outscale": "output this many times the input's size (e.g. 3 or 1.5; at most 16): the served model of the "
    "smallest scale at or above it (an x4 model's x2 sibling, if served, for 2 or less), then an antialiased resample",
    "width": "output width in pixels (alone: keeps the aspect ratio)",
    "height": "output height in pixels (alone: keeps the aspect ratio)",
    "source": "for the video models (x4-video, x2-video, x4-video-quality): compressed runs the model asked for, "
    "clean its partner for clean sources (x4-fast, x2-fast, x4-quality) where served; auto decides by the format "
    "(JPEG, lossy WebP: compressed) and otherwise by a JPEG's 8x8 grid in the pixels (raw frames: the grid alone; "
    "send compressed for decoded video)",
}
_Source = Annotated[Literal["auto", "compressed", "clean"], Query(description=_SIZE_HELP["source"])]


def _output_size(outscale: float | None, width: int | None, height: int | None) -> OutputSize:
    try:
        return OutputSize(outscale, width, height)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


def _sized_model(service: Service, up: Upscaler, size: OutputSize, width: int, height: int) -> Upscaler:
    """The model to run for the size asked (``up``, or its served x2 sibling); 413 past ``max_pixels``."""
    if not size.given:
        service.check_pixels(up, width, height)
        return up
    try:
        factor = size.factor(width, height, up.scale)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    up = service.model(model_for(up.model.name, factor, list(service.pool.served)))
    service.check_pixels(up, width, height, size.of(width, height, up.scale))
    return up


def _for_source(
    service: Service, up: Upscaler, source: str, evidence: tuple[bool | None, int | None], image
) -> Upscaler:
    """``up``, or its clean partner where the source is clean and the partner is served (``upscaler.sources``);
    the partner has ``up``'s scale, so the lane and size checks made for ``up`` hold for it."""
    partner = clean_partner(up.model.name)
    if partner is not None and partner not in service.pool.served and source == "clean":
        raise ApiError(422, f"source=clean runs {partner} in place of {up.model.name}, and this server does not "
                       f"serve it (start it with --models {up.model.name},{partner})")  # fmt: skip
    if partner is None or partner not in service.pool.served:
        return up
    lossy, quality = evidence  # what the encoded file says (``upscaler.sources.image_evidence``)
    return service.model(choose_model(up.model.name, source, lossy=lossy, quality=quality, image=image))


async def _resized(result, size: OutputSize, width: int, height: int, scale: int):
    return await asyncio.to_thread(fit, result, *size.of(width, height, scale)) if size.given else result


def create_app(settings: Settings, *, replica=None) -> FastAPI:
    """A service instance for ``settings``: the routes are added by the ``_add_*`` functions below.

    ``replica``: when this instance is one of several behind a proxy (``server.ray_serve``), what says so: its
    ``identity()`` (a dict ``/healthz`` adds) and ``await metrics(service)`` (the exposition ``/metrics``
    answers, for all replicas); None for one process."""
    quiet_codec_logs()
    service = Service(settings)
    app = FastAPI(
        title="upscaler",
        version=_package_version(),
        description="Real-time neural super-sampling: 4x and 2x frame upscaling.",
        lifespan=_lifespan(service, settings),
        docs_url=None,  # FastAPI's pages load scripts from a CDN: /docs below is self-contained
        redoc_url=None,
    )
    app.state.service = service
    _install_openapi(app, settings)
    _add_error_handlers(app)
    app.add_middleware(Envelope, service=service, routes=lambda: routes, access=settings.access_log)
    _add_ops_routes(app, service, replica)
    _add_models_route(app, service, settings)
    _add_upscale_route(app, service, settings)
    _add_frames_route(app, service, settings)

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket):
        # Parameters are read inside, after the key check: a bad query must not answer before auth does.
        await serve_stream(websocket, service)

    routes = frozenset(route.path for route in app.routes)  # read by the envelope at request time
    return app


def _lifespan(service: Service, settings: Settings):
    """Load the models and start the batcher when the server starts; drop what is queued when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await asyncio.to_thread(
            ModelPool,
            settings.models,
            backend=settings.backend,
            threads=settings.threads,
            max_batch_size=settings.max_batch_size,
            spin=settings.engine_spin,
            precision=settings.engine_precision,
        )
        for line in pool.describe():
            log.info("serving %s", line)
        scales = [m.scale for m in pool.served.values() if isinstance(m, TemporalModel)]
        if scales:
            bound = stream_memory_bound(settings, scales) / 1e9
            log.info("temporal streams take at most %.1f GB (--max-streams, --max-pixels, --max-in-flight)", bound)
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
        # Whatever is still queued now has been answered (503) or has no client: drop it, do not wait for it.
        await service.batcher.close(timeout=0)

    return lifespan


def _install_openapi(app: FastAPI, settings: Settings) -> None:
    """The schema with our error responses and security schemes, built once on first use."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            FastAPI.openapi(app)
            document_errors(app.openapi_schema)
            secure_openapi(
                app.openapi_schema,
                keys=bool(settings.api_keys),
                open_health=settings.open_health,
                open_metrics=settings.open_metrics,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers with the same JSON body (``error_response``)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.headers, exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return error_response(422, "; ".join(parts) or "invalid parameters")


def _add_ops_routes(app: FastAPI, service: Service, replica=None) -> None:
    """``/docs``, ``/healthz``, ``/readyz``, ``/metrics``."""
    identity = {} if replica is None else {"replica": replica.identity()}

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return HTMLResponse(docs_page(app.openapi))

    @app.get("/healthz", summary="The process is alive")
    async def healthz():
        return {"status": "ok", **identity}

    @app.get("/readyz", summary="Models are loaded and warmed up")
    async def readyz():
        ready = service.pool is not None and service.pool.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        text = service.metrics.render() if replica is None else await replica.metrics(service)
        return Response(text, media_type="text/plain; version=0.0.4")


def _add_models_route(app: FastAPI, service: Service, settings: Settings) -> None:
    """``GET /v1/models``."""

    @app.get("/v1/models", summary="The models served")
    async def models():
        if service.pool is None:
            raise ApiError(503, "models are still loading", {"Retry-After": "1"})
        out = []
        for name, up in service.pool.served.items():
            m = up.model
            out.append(
                {
                    "name": name,
                    "default": name == service.pool.default,
                    "aliases": sorted(a for a, t in service.pool.aliases.items() if t == name and a != name),
                    "scale": m.scale,
                    "temporal": m.temporal,  # True: streams only (WS /v1/stream with frame messages)
                    "degradation": m.degradation,
                    "engine": up.engine.name,
                    "precision": getattr(up.engine, "precision", None),
                    "threads": settings.threads or None,  # None: the engine's default (one per core)
                    "description": m.description,
                    "quality": dict(m.quality),
                }
            )
        return {"models": out}


def _add_upscale_route(app: FastAPI, service: Service, settings: Settings) -> None:
    """``POST /v1/upscale``: an encoded image in, an encoded image out."""

    @app.post(
        "/v1/upscale",
        summary="Upscale an encoded image (PNG, JPEG, WebP, BMP, TIFF): the body, or a multipart 'file' part",
        description=f"At most {settings.max_pixels} output pixels (input width x height x scale^2), else 413.",
        response_class=Response,
        responses={200: {"content": {m: {} for m in _MEDIA.values()}}},
        openapi_extra=IMAGE_BODY,
    )
    async def upscale(
        request: Request,
        model: Annotated[str | None, Query(max_length=200, description="model name or alias")] = None,
        format: Annotated[Literal["png", "jpeg", "webp"], Query(description="output format")] = "png",
        quality: Annotated[int | None, Query(ge=1, le=100, description="JPEG/WebP quality")] = None,
        outscale: Annotated[float | None, Query(gt=0, le=16, description=_SIZE_HELP["outscale"])] = None,
        width: Annotated[int | None, Query(ge=1, description=_SIZE_HELP["width"])] = None,
        height: Annotated[int | None, Query(ge=1, description=_SIZE_HELP["height"])] = None,
        source: _Source = "auto",
    ):
        up, size = service.model(model), _output_size(outscale, width, height)
        data = await service.guard(image_bytes(request, settings.max_body_bytes, settings.body_timeout_s))
        if not data:
            raise ApiError(400, "empty body: send an image")
        info = _probe(data)
        up = _sized_model(service, up, size, info.width, info.height)  # from the header: nothing decoded yet

        async def work() -> Response:
            async with service.lane(up, info.width, info.height):
                try:
                    image = await asyncio.to_thread(decode_image, data)
                except ImageError as exc:
                    raise ApiError(400, str(exc)) from None
                _sized_model(service, up, size, image.shape[1], image.shape[0])
                chosen = await asyncio.to_thread(_for_source, service, up, source, image_evidence(data), image)
                result, batch = await service.infer(chosen, image)
                result = await _resized(result, size, image.shape[1], image.shape[0], up.scale)
                encoded = await asyncio.to_thread(encode_image, result, format, quality)
            return Response(encoded, media_type=_MEDIA[format], headers=_result_headers(chosen, batch))

        return await service.guard(work(), receive=request.receive, timeout=settings.request_timeout_s)


def _add_frames_route(app: FastAPI, service: Service, settings: Settings) -> None:
    """``POST /v1/frames``: raw pixels in, raw pixels out."""

    @app.post(
        "/v1/frames",
        summary="Upscale one raw frame (rgb24, bgr24 or rgba32); raw pixels back, no codec",
        description=f"At most {settings.max_pixels} output pixels (width x height x scale^2), else 413.",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
        openapi_extra=FRAME_BODY,
    )
    async def frames(
        request: Request,
        x_width: Annotated[int, Header(ge=1, le=1 << 16, description="frame width in pixels")],
        x_height: Annotated[int, Header(ge=1, le=1 << 16, description="frame height in pixels")],
        x_format: Annotated[Literal["rgb24", "bgr24", "rgba32"], Header(description="pixel format")] = "rgb24",
        model: Annotated[str | None, Query(max_length=200, description="model name or alias")] = None,
        outscale: Annotated[float | None, Query(gt=0, le=16, description=_SIZE_HELP["outscale"])] = None,
        width: Annotated[int | None, Query(ge=1, description=_SIZE_HELP["width"])] = None,
        height: Annotated[int | None, Query(ge=1, description=_SIZE_HELP["height"])] = None,
        source: _Source = "auto",
    ):
        size = _output_size(outscale, width, height)
        up = _sized_model(service, service.model(model), size, x_width, x_height)
        body = await service.guard(read_body(request, settings.max_body_bytes, settings.body_timeout_s))
        frame = raw_frame(body, x_width, x_height, x_format)

        async def work() -> Response:
            async with service.lane(up, x_width, x_height):
                chosen = await asyncio.to_thread(_for_source, service, up, source, (None, None), frame)
                result, batch = await service.infer(chosen, frame)
            result = await _resized(result, size, x_width, x_height, up.scale)
            headers = _result_headers(chosen, batch)
            headers.update({"X-Width": str(result.shape[1]), "X-Height": str(result.shape[0]), "X-Format": x_format})
            return Response(raw_bytes(result, x_format), media_type="application/octet-stream", headers=headers)

        return await service.guard(work(), receive=request.receive, timeout=settings.request_timeout_s)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("upscaler")
    except PackageNotFoundError:
        return "unknown"
