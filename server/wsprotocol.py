"""uvicorn's WebSocket protocol with what the streams need and uvicorn does not give.

uvicorn has no public hook for these, so this subclasses its sans-I/O
protocol (``uvicorn.protocols.websockets.websockets_sansio_impl``, tested
with uvicorn 0.55; ``pyproject.toml`` pins the range and
``tests/test_server_hostile_streams.py`` checks each behaviour):

- **Shutdown.** uvicorn closes every WebSocket at once with 1012 and no
  reason when shutdown begins, dropping the frames in flight. Here a stream
  the application runs is left to it: the service (told first, see
  ``server.runner``) stops reading, answers the frames in flight and closes
  with 1012 and a reason, within ``--shutdown-timeout-s``.
- **Abort.** A client that stops reading leaves the server's send blocked and
  a whole reply in the socket's buffer, and a close frame cannot get past
  it. The protocol offers ``scope["extensions"][ABORT]["abort"]()``, which
  drops the connection at once (``transport.abort``).
- **Bad UTF-8.** A text message that is not UTF-8 is a client's mistake:
  logged at INFO without a traceback (uvicorn logs an ERROR with one), and
  the 1007 close says why.
"""

from __future__ import annotations

import logging

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["ABORT", "StreamProtocol"]

log = logging.getLogger("upscaler.server")

#: The ASGI scope extension through which a handler drops its connection.
ABORT = "upscaler.abort"
_BAD_UTF8 = "text messages must be valid UTF-8"


class StreamProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol: streams drain at shutdown, can be aborted, bad UTF-8 is quiet."""

    def shutdown(self) -> None:
        """At server shutdown: leave an open stream to the application, which closes it with a reason."""
        if self.handshake_complete and self.initial_response is None and not (self.close_sent or self.disconnected):
            return
        super().shutdown()

    async def run_asgi(self) -> None:
        self.scope["extensions"][ABORT] = {"abort": self._abort}
        await super().run_asgi()

    def _abort(self) -> None:
        if self.transport is not None:  # even one already closing: with a full buffer it waits for a reader
            self.transport.abort()

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            try:
                b"".join(self.frames).decode()
            except UnicodeDecodeError:
                self.frames = []
                log.info("stream from %s closed: %s (1007)", _client(self.client), _BAD_UTF8)
                self.conn.send_close(1007, _BAD_UTF8)
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()


def _client(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"
