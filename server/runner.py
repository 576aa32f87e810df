"""Run the service under uvicorn: header timeout, fractional shutdown timeout, a drain that ends on time.

On SIGTERM uvicorn stops accepting connections and waits up to
``shutdown_timeout_s`` for in-flight requests, then cancels what is left
(plain-text 500s) and runs the lifespan's shutdown. The service is told
first (``Service.begin_shutdown``): streams stop reading at once and close
(1012, with a reason) once their frames in flight are answered; just before
the deadline it answers everything still in flight with a JSON 503 and drops
the work, so the process exits within the timeout instead of after the queue
has run.
"""

from __future__ import annotations

import logging
import socket

import uvicorn
from fastapi import FastAPI

from server.protocol import header_timeout_protocol
from server.service import Service
from server.settings import Settings
from server.wsprotocol import StreamProtocol

__all__ = ["WS_PROTOCOL", "DrainingServer", "run", "uvicorn_config"]

#: uvicorn's WebSocket implementation: its sans-I/O websockets protocol, with the streams' shutdown, abort and
#: UTF-8 handling (``server.wsprotocol``). Measured against uvicorn's legacy protocol on loopback, a temporal
#: frame's 0.6 MB up and 2.7 MB down took the same median time within this machine's noise (4.8-5.3 ms each,
#: 300 interleaved round trips).
WS_PROTOCOL = StreamProtocol


class DrainingServer(uvicorn.Server):
    """A uvicorn server that starts the service's shutdown clock when its own shutdown begins."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Tell the service its deadline, then uvicorn's drain."""
        self.service.begin_shutdown(float(self.config.timeout_graceful_shutdown or 0.0))
        await super().shutdown(sockets)


def uvicorn_config(settings: Settings, app: FastAPI) -> uvicorn.Config:
    """The uvicorn configuration for ``settings``."""
    http = header_timeout_protocol(settings.header_timeout_s) or "auto"
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=http,
        ws=WS_PROTOCOL,
        access_log=False,  # the service writes its own structured lines
        # A stream message may be as large as a request body (a temporal frame with motion is 11 bytes a pixel).
        ws_max_size=settings.max_body_bytes,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,  # type: ignore[arg-type]  # a float: 0.9 s is 0.9 s
        log_level="info",
    )


def _log_to_stderr(name: str, level: int) -> None:
    logger = logging.getLogger(name)
    logger.setLevel(level)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


def run(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; the exit status."""
    from server.app import create_app

    _log_to_stderr("upscaler.access", logging.INFO if settings.access_log else logging.WARNING)
    _log_to_stderr("upscaler.server", logging.INFO)  # the models, engines and precisions served; shutdown
    app = create_app(settings)
    DrainingServer(uvicorn_config(settings, app), app.state.service).run()
    return 0
