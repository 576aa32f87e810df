"""What wraps every HTTP request: auth, request id, metrics, access log, last-resort 500.

A client that disconnects before its answer is no error of the service: it
is recorded as status 499 (and in ``upscaler_client_disconnects``), logged as
one access-log line, and nothing is sent.

A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it
adds no task and no stream between the handler and the socket, so a 2.7 MB
frame goes out as the handler produced it. Websockets pass straight through
(the stream endpoint checks its own key).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import CLIENT_GONE, ClientGone, error_response

__all__ = ["Envelope"]

access_log = logging.getLogger("upscaler.access")
log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Envelope:
    """ASGI middleware around the application.

    ``service`` decides which paths need a key and checks it, and holds the
    metrics; ``routes()`` gives the known paths (others pool under
    ``other`` in metric labels, so a scan cannot grow them without bound).
    """

    def __init__(self, app: ASGIApp, *, service, routes: Callable[[], Collection[str]], access: bool) -> None:
        self.app, self.service, self.routes, self.access = app, service, routes, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        path = scope["path"]
        status = 0

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        if self.service.needs_key(path) and not self.service.authorised(headers.get("authorization")):
            await error_response(401, "unauthorized", {"WWW-Authenticate": "Bearer"})(scope, receive, tagged_send)
        else:
            try:
                await self.app(scope, receive, tagged_send)
            except (ClientGone, ClientDisconnect):  # nobody to answer: its work was dropped
                status = CLIENT_GONE
            except asyncio.CancelledError:
                # The server cancels what outlives its shutdown timeout; the service answers everything before
                # that, so this is a last resort: a JSON 503 rather than the server's plain-text 500, and the
                # task ends quietly (nothing awaits it but the server's shutdown).
                if not status:
                    await error_response(503, "the service is shutting down", code="shutting_down")(
                        scope, receive, tagged_send
                    )
            except Exception:  # never let one request take the server down
                log.exception("unhandled error on %s", path)
                if not status:  # nothing sent yet: the client still gets a JSON answer
                    await error_response(500, "internal error")(scope, receive, tagged_send)
        self._record(scope, path, status or 500, request_id, time.perf_counter() - started)

    def _record(self, scope: Scope, path: str, status: int, request_id: str, elapsed: float) -> None:
        known = path if path in self.routes() else "other"
        metrics = self.service.metrics
        metrics.requests.labels(known, str(status)).inc()
        if status == CLIENT_GONE:
            metrics.disconnects.labels(known).inc()
        metrics.latency.labels(known).observe(elapsed)
        if self.access:
            client = scope.get("client")
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": path,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                        "client": client[0] if client else None,
                    }
                )
            )
