"""uvicorn's HTTP protocol with a limit on how long a request's headers may take.

uvicorn times out only idle keep-alive connections: a client that opens a
connection and sends its headers a byte at a time (or not at all) holds it
forever. Here each request's headers must be complete within
``header_timeout_s`` of the connection opening or of the request's first
byte; otherwise the client gets a JSON 408 and the connection closes. Bodies
are bounded in the application (``server.bodies``).
"""

from __future__ import annotations

import asyncio
import json

from server.errors import error_body

__all__ = ["header_timeout_protocol"]


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps(error_body(408, f"request headers not complete within {seconds:g} s")).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def header_timeout_protocol(header_timeout_s: float) -> type[asyncio.Protocol] | None:
    """A uvicorn HTTP protocol class enforcing ``header_timeout_s``; None where httptools is missing."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # uvicorn without its [standard] extras: its default protocol, without the limit
        return None

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        """httptools' protocol, closing connections whose request headers are late."""

        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.cycle is not None and not self.cycle.response_complete:
                self._arm()  # late headers of a pipelined request: a 408 now would cut the answer in progress
                return
            if not self.transport.is_closing():
                self.transport.write(_timeout_response(header_timeout_s))
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()  # the first request's headers are due from now

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()  # a keep-alive connection's next request: due from its first byte

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
