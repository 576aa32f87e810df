"""A blocking WebSocket client (RFC 6455) for one request and one reply at a time: ``StreamClient``'s transport.

    with WebSocket("ws://127.0.0.1:8000/v1/stream?width=320&height=180") as ws:
        ws.send(message)
        reply = ws.recv(timeout=60)  # bytearray (binary) or str (text)

Why not the ``websockets`` library's client: a temporal stream's reply is a
whole upscaled frame (2.8 MB for 320x180 at x4), and that client parses it
in 64 KB pieces, copying each into a growing buffer and out again, on a
reader thread: 4.78 ms per round trip on loopback against 2.32 ms here
(medians, ``benchmarks/results/stream-temporal-x4.json``), where each reply is
read from the socket straight into one buffer of its size
(``benchmarks/stream_temporal.py`` measures both, side by side). The
service side stays uvicorn's.

What it does: the opening handshake (its ``Sec-WebSocket-Accept`` checked; no
extensions, so no compression); ``ws://`` and ``wss://`` (TLS, the system's
trust store unless an ``ssl.SSLContext`` is given); masked frames out;
messages in, fragmented or not; pings answered; the closing handshake. A
refused handshake raises ``HandshakeRefused`` with the HTTP status and body;
a close from the other side ``ConnectionClosed`` with its code and reason,
after the messages that came before it have been read. Not thread-safe: one
thread per connection.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import struct
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

if TYPE_CHECKING:  # ssl loads only for wss:// (20 ms at import otherwise)
    import ssl

__all__ = ["ConnectionClosed", "HandshakeRefused", "ProtocolError", "WebSocket"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_HEAD = 64 * 1024  # the most a handshake response's status line and headers may take
_MAX_REFUSAL = 1 << 20  # the most of a refusal's body that is read
_NO_STATUS, _ABNORMAL = 1005, 1006  # close codes: none given; the connection dropped without a close frame


class HandshakeRefused(Exception):
    """The server answered the opening handshake with an HTTP response other than 101."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(f"the server refused the WebSocket handshake with HTTP {status}")
        self.status, self.body, self.headers = status, body, headers


class ProtocolError(Exception):
    """The server broke the protocol (a bad handshake response, a masked or malformed frame)."""


class ConnectionClosed(Exception):
    """The connection is closed: by a close frame (``code``, ``reason``) or dropped (code 1006)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code, self.reason = code, reason


def _address(url: str) -> tuple[bool, str, int, str, str]:
    """(tls, host, port, Host header, request target) of a ``ws(s)://`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"a WebSocket URL is ws://host[:port]/path or wss://..., got {url!r}")
    tls = parts.scheme == "wss"
    default = 443 if tls else 80
    port = parts.port or default
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    header = host if port == default else f"{host}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return tls, parts.hostname, port, header, target


def _accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def _masked(opcode: int, payload: bytes | bytearray | memoryview) -> memoryview:
    """One whole client frame: FIN, the opcode, the length, a fresh mask and the masked payload."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    # The payload starts at byte 16, padded to whole 32-bit words (the XOR runs on aligned words); the header
    # and the mask sit just before it, and the frame is the slice from the header to the payload's end.
    start = 16 - len(head) - 4
    frame = np.empty(16 + n + (-n % 4), np.uint8)
    frame[start:16] = np.frombuffer(head + mask, np.uint8)
    frame[16 : 16 + n] = np.frombuffer(payload, np.uint8)
    frame[16:].view(np.uint32)[...] ^= np.frombuffer(mask, np.uint32)[0]
    return memoryview(frame)[start : 16 + n]


class WebSocket:
    """One client connection. ``headers``: extra request headers (e.g. ``Authorization``); ``timeout``: seconds
    for connecting and the handshake (None: no limit); ``max_size``: the largest message accepted (bytes)."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        timeout: float | None = 60.0,
        max_size: int = 1 << 31,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        tls, host, port, host_header, target = _address(url)
        self.max_size = max_size
        self._pending = bytearray()  # bytes read from the socket that belong to frames not yet parsed
        self._closing = False  # a close frame has been sent
        self.response_headers: dict[str, str] = {}  # set by the handshake
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                if ssl_context is None:
                    import ssl

                    ssl_context = ssl.create_default_context()
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
            self._sock = sock
            self._handshake(host_header, target, headers or {})
        except BaseException:
            sock.close()
            raise

    # -- the opening handshake --------------------------------------------------------------------------------

    def _handshake(self, host: str, target: str, headers: dict[str, str]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", "User-Agent: upscaler"]  # fmt: skip
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status, response = self._response_head()
        if status != 101:
            raise HandshakeRefused(status, self._refusal_body(response), response)
        upgraded = response.get("upgrade", "").lower() == "websocket"
        if not upgraded or "upgrade" not in response.get("connection", "").lower():
            raise ProtocolError("the server answered 101 without upgrading to WebSocket")
        if response.get("sec-websocket-accept") != _accept(key):
            raise ProtocolError("the server's Sec-WebSocket-Accept does not match the key sent")
        if extensions := response.get("sec-websocket-extensions"):
            raise ProtocolError(f"the server chose extensions, none were offered: {extensions}")
        self.response_headers = response  #: the handshake response's headers (names lower-cased)

    def _response_head(self) -> tuple[int, dict[str, str]]:
        """The response's status and headers (names lower-cased); what follows them stays in ``_pending``."""
        while (end := self._pending.find(b"\r\n\r\n")) < 0:
            if len(self._pending) > _MAX_HEAD:
                raise ProtocolError(f"the handshake response's headers exceed {_MAX_HEAD} bytes")
            self._fill()
        head = self._pending[:end].decode("latin-1").split("\r\n")
        del self._pending[: end + 4]
        status_line = head[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise ProtocolError(f"not an HTTP response: {head[0][:100]!r}")
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return int(status_line[1]), fields

    def _refusal_body(self, headers: dict[str, str]) -> bytes:
        """A refusal's body: its Content-Length's worth, or what comes until the server closes (at most 1 MB)."""
        length = headers.get("content-length", "")
        want = min(int(length), _MAX_REFUSAL) if length.isdigit() else _MAX_REFUSAL
        try:
            while len(self._pending) < want and self._fill():
                pass
        except (OSError, ConnectionClosed):
            pass  # the body so far is what there is
        return bytes(self._pending[:want])

    # -- reading ----------------------------------------------------------------------------------------------

    def _fill(self) -> int:
        """Read what the socket has into ``_pending``; ``ConnectionClosed`` (1006) at the end of the stream."""
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise ConnectionClosed(_ABNORMAL, "the connection dropped without a close frame")
        self._pending += chunk
        return len(chunk)

    def _read_into(self, view: memoryview) -> None:
        """Fill ``view`` exactly: from ``_pending`` first, then straight from the socket (no further copy)."""
        have = min(len(self._pending), len(view))
        view[:have] = self._pending[:have]
        del self._pending[:have]
        while have < len(view):
            got = self._sock.recv_into(view[have:])
            if not got:
                raise ConnectionClosed(_ABNORMAL, "the connection dropped without a close frame")
            have += got

    def _read(self, n: int) -> bytearray:
        out = bytearray(n)
        self._read_into(memoryview(out))
        return out

    def _frame(self) -> tuple[bool, int, bytearray]:
        """The next frame's FIN bit, opcode and payload."""
        first, second = self._read(2)
        if first & 0x70:
            raise self._fail(1002, "a frame with reserved bits set (no extension was agreed)")
        if second & 0x80:
            raise self._fail(1002, "a masked frame from the server")
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8))
        if n > self.max_size:
            raise self._fail(1009, f"a {n}-byte frame exceeds the {self.max_size}-byte limit")
        return bool(first & 0x80), first & 0x0F, self._read(n)

    def recv(self, timeout: float | None = None) -> bytearray | str:
        """The next message: ``bytearray`` for binary, ``str`` for text. ``TimeoutError`` if none came within
        ``timeout`` seconds (None: wait), and the connection is closed (a message cut short by the timeout, or
        one that comes late, could not be told from the next); ``ConnectionClosed`` once the other side has
        closed."""
        if self._sock.fileno() < 0:
            raise ConnectionClosed(_ABNORMAL, "the connection is closed")
        self._sock.settimeout(timeout)
        try:
            return self._message()
        except TimeoutError:
            self._shut(struct.pack("!H", 1001))  # going away
            raise

    def _message(self) -> bytearray | str:
        parts: list[bytearray] = []
        kind = None
        while True:
            fin, opcode, payload = self._frame()
            if opcode >= _CLOSE:
                self._control(fin, opcode, payload)
                continue
            if (opcode == _CONT) != (kind is not None):
                raise self._fail(1002, "a continuation frame out of place")
            kind = kind if opcode == _CONT else opcode
            if kind not in (_TEXT, _BINARY):
                raise self._fail(1002, f"unknown opcode {opcode}")
            parts.append(payload)
            if sum(map(len, parts)) > self.max_size:
                raise self._fail(1009, f"a message exceeds the {self.max_size}-byte limit")
            if fin:
                break
        data = parts[0] if len(parts) == 1 else bytearray().join(parts)
        if kind == _BINARY:
            return data
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise self._fail(1007, "a text message that is not UTF-8") from None

    def _control(self, fin: bool, opcode: int, payload: bytearray) -> None:
        if not fin or len(payload) > 125:
            raise self._fail(1002, "a fragmented or oversized control frame")
        if opcode == _PING:
            self._send(_PONG, payload)
        elif opcode == _CLOSE:
            code, reason = _NO_STATUS, ""
            if len(payload) >= 2:
                (code,) = struct.unpack("!H", payload[:2])
                reason = payload[2:].decode(errors="replace")
            self._finish(code)
            raise ConnectionClosed(code, reason)
        elif opcode != _PONG:
            raise self._fail(1002, f"unknown control opcode {opcode}")

    # -- writing and closing ----------------------------------------------------------------------------------

    def _send(self, opcode: int, payload: bytes | bytearray | memoryview) -> None:
        self._sock.sendall(_masked(opcode, payload))

    def send(self, message: bytes | bytearray | memoryview | str) -> None:
        """Send one message: binary for bytes, text for ``str``."""
        if self._closing:
            raise ConnectionClosed(_ABNORMAL, "the connection is closing")
        if isinstance(message, str):
            self._send(_TEXT, message.encode())
        else:
            self._send(_BINARY, message)

    def _shut(self, payload: bytes) -> None:
        """Send a close frame with ``payload`` (unless one was sent), then close the socket."""
        if not self._closing:
            self._closing = True
            with contextlib.suppress(OSError):
                self._send(_CLOSE, payload)
        self._drain()
        self._sock.close()

    def _drain(self, linger: float = 1.0) -> None:
        """End our side and read what the server still sends until it closes (at most ``linger`` seconds):
        closing a socket with unread bytes sends a TCP reset, which can destroy our close frame before the
        server reads it (it would see 1006 instead of our code)."""
        deadline = time.monotonic() + linger
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                self._sock.settimeout(left)
                if not self._sock.recv(1 << 16):
                    break

    def _finish(self, code: int) -> None:
        """Answer the other side's close (echoing its code, as RFC 6455 asks), then end the connection."""
        self._shut(struct.pack("!H", code) if code not in (_NO_STATUS, _ABNORMAL) else b"")

    def _fail(self, code: int, why: str) -> ProtocolError:
        """Close with ``code`` (1002 protocol error, 1007 bad text, 1009 too big) and the error to raise."""
        self._shut(struct.pack("!H", code) + why.encode()[:123])
        return ProtocolError(why)

    def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """The closing handshake: a close frame, then the server's (or ``timeout`` seconds), then the socket."""
        if self._sock.fileno() < 0:
            return
        try:
            if not self._closing:
                self._closing = True
                self._send(_CLOSE, struct.pack("!H", code) + reason.encode()[:123])
            self._sock.settimeout(timeout)
            while self._frame()[1] != _CLOSE:  # messages still coming are dropped until the server's close
                pass
        except (OSError, ConnectionClosed, ProtocolError):
            pass
        finally:
            self._sock.close()

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
