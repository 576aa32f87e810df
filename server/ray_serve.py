"""``upscaler serve --ray``: the same FastAPI application as Ray Serve replicas behind Serve's HTTP proxy.

Serve's FastAPI ingress runs ``create_app(settings)`` in each replica (a
builder, so every replica loads its own engines and starts its own
micro-batcher in the app's lifespan): one copy of the routes, auth, limits and
error shapes. What differs from one process:

* Replies cross a process boundary (replica to proxy) pickled, and a
  ``memoryview`` does not pickle: ``_PicklableReplies`` copies such bodies to
  ``bytes`` in the replica (one copy of each reply).
* A WebSocket stream stays on the replica that accepted it (the proxy relays
  one connection to one replica for its life). If that replica dies, Serve's
  proxy just ends the connection; ``ProxyErrors``, installed in every proxy
  through Serve's ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``, closes it
  instead with code 1011 and a reason that says what to do (reconnect; the
  first frame resets). A cluster this command starts gets it; a cluster of
  your own gets it when its nodes were started with that variable set to
  ``PROXY_CALLBACK`` (see the README). It also gives the errors the proxy
  makes itself (a replica lost mid-request: 500; none free: 503) the
  service's JSON shape.
* ``/metrics`` answers for every replica: the replica that takes the request
  asks all of them (Serve's ``broadcast``) and labels each sample with
  ``replica``; Ray's own Serve metrics (per deployment and replica) come from
  Ray's metrics export as usual.
* Every response (and a stream's handshake) says which replica answered
  (``X-Upscaler-Replica``); ``/healthz`` adds the replica's id and process id.
* Limits (``--max-queue``, ``--max-streams``...) hold per replica.
  ``--header-timeout-s`` and the drain on SIGTERM are the proxy's and Serve's
  (``--shutdown-timeout-s`` becomes the replicas' graceful shutdown timeout).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

from server.settings import Settings

__all__ = ["APP_NAME", "DEPLOYMENT", "PROXY_CALLBACK", "Replicas", "application", "proxy_middlewares", "run_on_ray"]

APP_NAME = "upscaler"
DEPLOYMENT = "upscaler"
#: The import path Serve's proxies call for their middlewares (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``).
PROXY_CALLBACK = "server.ray_serve.proxy_middlewares"
LOST_CODE = 1011
LOST_REASON = "the replica serving this stream was lost; reconnect (the first frame starts a new history)"
REPLICA_HEADER = "x-upscaler-replica"


@dataclass(frozen=True)
class Replicas:
    """How many replicas, and what each takes: ``count`` fixed, or autoscaling between ``minimum`` and
    ``maximum`` (both given, ``count`` None); ``cpus`` and ``gpus`` per replica (fractions allowed)."""

    count: int | None = 1
    minimum: int | None = None
    maximum: int | None = None
    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self) -> None:
        autoscale = self.minimum is not None or self.maximum is not None
        if autoscale and (self.count is not None or self.minimum is None or self.maximum is None):
            raise ValueError("give either --replicas N, or both --min-replicas and --max-replicas")
        if not autoscale and (self.count is None or self.count < 1):
            raise ValueError(f"--replicas must be at least 1, got {self.count}")
        if autoscale and not 0 <= self.minimum <= self.maximum >= 1:
            raise ValueError(f"need 0 <= --min-replicas <= --max-replicas, >= 1; got {self.minimum}, {self.maximum}")
        if self.cpus < 0 or self.gpus < 0 or self.cpus + self.gpus == 0:
            raise ValueError("--replica-cpus and --replica-gpus must not be negative, and not both 0")

    def options(self, settings: Settings) -> dict[str, Any]:
        """``serve.deployment`` options."""
        scale: dict[str, Any] = {"num_replicas": self.count}
        if self.count is None:
            scale = {"autoscaling_config": {"min_replicas": self.minimum, "max_replicas": self.maximum,
                                            "target_ongoing_requests": max(1, settings.max_batch_size)}}  # fmt: skip
        return {
            "name": DEPLOYMENT,
            **scale,
            "ray_actor_options": {"num_cpus": self.cpus, "num_gpus": self.gpus},
            # A stream is one ongoing request for its life: the service's own limits decide, not Serve's default 5.
            "max_ongoing_requests": settings.max_queue + settings.max_streams,
            "graceful_shutdown_timeout_s": settings.shutdown_timeout_s,
        }


# --------------------------------------------------------------------------- in each replica


class _PicklableReplies:
    """ASGI middleware: reply bodies and stream messages as ``bytes`` (Serve pickles them to the proxy), and
    ``X-Upscaler-Replica`` on every response and stream handshake."""

    def __init__(self, app, replica: str) -> None:
        self.app, self.header = app, (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope, receive, send) -> None:
        async def relay(message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept"):
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            for key in ("body", "bytes"):
                if isinstance(message.get(key), memoryview):
                    message = {**message, key: bytes(message[key])}
            await send(message)

        await self.app(scope, receive, relay)


#: This replica's ``_Replica`` and service (a replica is one process): what ``metrics_text`` reads on a broadcast.
_THIS: dict[str, Any] = {}


class _Replica:
    """What ``create_app`` is told about the replica it runs in (its ``replica`` argument)."""

    def __init__(self) -> None:
        from ray import serve

        context = serve.get_replica_context()
        self.id, self.app_name = context.replica_id.unique_id, context.app_name

    def identity(self) -> dict:
        return {"id": self.id, "pid": os.getpid()}

    async def metrics(self, service) -> bytes:
        """Every live replica's exposition, each sample labelled with its replica (this one's own if the
        others do not answer within 5 s)."""
        from ray import serve

        handle = serve.get_deployment_handle(DEPLOYMENT, self.app_name)
        try:
            answers = await handle.broadcast("metrics_text").results_async(timeout_s=5.0, return_exceptions=True)
        except TimeoutError:
            answers = []
        texts = [a for a in answers if isinstance(a, tuple)] or [(self.id, service.metrics.render().decode())]
        return merge_expositions(texts)


def merge_expositions(texts: list[tuple[str, str]]) -> bytes:
    """One Prometheus exposition of several, ``(replica, text)``: each sample gains ``replica="<id>"``."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Metric] = {}
    for replica, text in texts:
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for sample in family.samples:
                merged.add_sample(sample.name, {**sample.labels, "replica": replica}, sample.value, sample.timestamp)

    class _Merged:
        def collect(self):
            return list(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    return generate_latest(registry)


def build_replica_app(settings: Settings):
    """The application one replica serves (Serve calls this in the replica): ``create_app`` told it is a
    replica, replies made picklable, the replica named in a header."""
    from server.app import create_app

    replica = _Replica()
    app = create_app(settings, replica=replica)
    _THIS.update(replica=replica, service=app.state.service)
    app.add_middleware(_PicklableReplies, replica=replica.id)
    return app


class UpscalerReplica:
    """The deployment's class; Serve's ingress wraps it with the application ``build_replica_app`` makes."""

    def metrics_text(self) -> tuple[str, str]:
        """This replica's ``(id, exposition)``, for a ``/metrics`` on any replica (a broadcast)."""
        return _THIS["replica"].id, _THIS["service"].metrics.render().decode()


# --------------------------------------------------------------------------- in each proxy


#: What a proxy-made error means (the replica never answered), by status.
_PROXY_ERRORS = {
    500: ("replica_lost", "the replica serving this request was lost before it answered; send it again"),
    503: ("overloaded", "no replica can take the request now; try again shortly"),
    408: ("request_timeout", "no replica answered within Serve's request timeout"),
}


class ProxyErrors:
    """ASGI middleware for Serve's proxy: what the proxy answers itself (no replica answered) in the service's
    shape. An HTTP error without ``X-Upscaler-Replica`` gets the JSON error body; a stream whose replica went
    away is closed with ``LOST_CODE`` and ``LOST_REASON``, where the proxy would drop the connection without a
    close frame."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            await self._stream(scope, receive, send)
        elif scope["type"] == "http":
            await self.app(scope, receive, self._reshaped(send))
        else:
            await self.app(scope, receive, send)

    @staticmethod
    def _reshaped(send):
        held: dict[str, int] = {}

        async def relay(message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400 and not _answered(message):
                held["status"] = message["status"]
                return
            if message["type"] == "http.response.body" and "status" in held:
                if not message.get("more_body"):
                    await _send_error(send, held["status"])
                return
            await send(message)

        return relay

    async def _stream(self, scope, receive, send) -> None:
        seen: set[str] = set()

        async def watch_receive():
            message = await receive()
            seen.add(message["type"])
            return message

        async def watch_send(message) -> None:
            seen.add(message["type"])
            await send(message)

        try:
            await self.app(scope, watch_receive, watch_send)
        finally:
            if "websocket.accept" in seen and not seen & {"websocket.close", "websocket.disconnect"}:
                with contextlib.suppress(Exception):  # the client has gone as well: nothing to tell
                    await send({"type": "websocket.close", "code": LOST_CODE, "reason": LOST_REASON})


def _answered(start: dict) -> bool:
    """Whether a response (its start message) comes from a replica: it carries ``X-Upscaler-Replica``."""
    return any(name.lower() == REPLICA_HEADER.encode() for name, _ in start.get("headers", ()))


async def _send_error(send, status: int) -> None:
    from server.errors import error_body

    code, message = _PROXY_ERRORS.get(status, ("proxy_error", f"Serve's proxy answered {status}"))
    body = json.dumps(error_body(status, message, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def proxy_middlewares() -> list:
    """What Serve's proxies install (``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` = ``PROXY_CALLBACK``)."""
    from starlette.middleware import Middleware

    return [Middleware(ProxyErrors)]


# --------------------------------------------------------------------------- the driver


def application(settings: Settings, replicas: Replicas):
    """The Serve application: ``UpscalerReplica`` behind the ingress ``build_replica_app`` makes."""
    from ray import serve

    def build():
        return build_replica_app(settings)

    deployment = serve.deployment(serve.ingress(build)(UpscalerReplica), **replicas.options(settings))
    return deployment.bind()


def run_on_ray(
    settings: Settings,
    address: str | None,
    replicas: Replicas,
    *,
    proxy_location: str = "EveryNode",
    stop: threading.Event | None = None,
) -> int:
    """Deploy on the cluster at ``address`` (None or "local": start one here) and serve on
    ``settings.host:settings.port`` (on every node, or the head only: ``proxy_location``) until SIGTERM or
    SIGINT (or ``stop``); then take the application down (the cluster stays up if it was not started
    here). The exit status."""
    from upscaler.video.distributed import connect_ray

    os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", PROXY_CALLBACK)  # a Ray started here
    connect_ray(address or "local")
    try:
        from ray import serve
    except ImportError:
        raise RuntimeError("--ray needs Ray Serve: pip install 'upscaler[ray]'") from None
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    serve.start(http_options={"host": settings.host, "port": settings.port}, proxy_location=proxy_location)
    serve.run(application(settings, replicas), name=APP_NAME, route_prefix="/", blocking=False)
    print(f"serving {', '.join(settings.models)} on http://{settings.host}:{settings.port} "
          f"({_describe(replicas)})", flush=True)  # fmt: skip
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.delete(APP_NAME)
    return 0


def _describe(replicas: Replicas) -> str:
    count = f"{replicas.count} replicas" if replicas.count else f"{replicas.minimum}-{replicas.maximum} replicas"
    return f"Ray Serve, {count}, {replicas.cpus:g} CPUs and {replicas.gpus:g} GPUs each"
