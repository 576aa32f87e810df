"""Temporal super-sampling over ``WS /v1/stream``: the frame message layout and a Python client.

    with StreamClient("http://127.0.0.1:8000", model="x4-temporal", width=320, height=180) as stream:
        hr = stream.send(frame, jitter=(jx, jy), motion=mv, reset=False)  # 1280 x 720 x 3 uint8

One binary message per frame, all little-endian: a 24-byte header, the
frame's RGB bytes (row-major, ``H x W x 3`` uint8), then, if the ``MOTION``
flag is set, its motion vectors (``H x W x 2`` float32, x then y for each
pixel, row-major), then, if the ``DEPTH`` flag is set, its depth (``H x W``
float32, linear, larger is farther). Conventions as ``TemporalUpscaler``'s
(DESIGN.md section 9).

=======  ========  =====================================================
offset   type      meaning
=======  ========  =====================================================
0        4 bytes   magic ``b"UPTF"``
4        uint8     version, 1
5        uint8     flags: bit 0 ``RESET`` (drop the history: a cut),
                   bit 1 ``MOTION`` (motion vectors follow the pixels),
                   bit 2 ``DEPTH`` (a depth plane follows them);
                   the other bits must be 0
6        uint16    reserved, 0
8        uint32    width ``W`` (low-resolution pixels)
12       uint32    height ``H``
16       float32   jitter ``jx`` in [-0.5, 0.5) low-resolution pixels
20       float32   jitter ``jy``
24       W*H*3     RGB, uint8
24+W*H*3 W*H*2*4   motion, float32 (only with ``MOTION``)
then     W*H*4     depth, float32 (only with ``DEPTH``)
=======  ========  =====================================================

The reply is the upscaled frame's raw RGB (``sH x sW x 3`` uint8, no
header), or, in its place, a JSON error text
``{"error": {"code", "status", "message"}}``; replies come in the order the
frames were sent. This module is the one definition of the layout: the
service parses with :func:`unpack_frame`.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np

from upscaler.wsclient import ConnectionClosed, HandshakeRefused, ProtocolError, WebSocket

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEPTH",
    "HEADER",
    "MAGIC",
    "MOTION",
    "RESET",
    "VERSION",
    "FrameMessage",
    "StreamClient",
    "StreamError",
    "pack_frame",
    "stream_url",
    "unpack_frame",
]

MAGIC = b"UPTF"  #: first four bytes of every temporal frame message
VERSION = 1  #: the layout version this module writes and reads
RESET = 0x01  #: flag: drop the history before this frame
MOTION = 0x02  #: flag: motion vectors follow the pixels
DEPTH = 0x04  #: flag: a depth plane follows the pixels (and the motion)
HEADER = struct.Struct("<4sBBHIIff")  #: magic, version, flags, reserved, width, height, jx, jy (24 bytes)
_MAX_SIDE = 1 << 16


@dataclass(frozen=True)
class FrameMessage:
    """One temporal frame as it travels: what ``TemporalUpscaler.upscale`` takes."""

    frame: np.ndarray  #: ``H x W x 3`` uint8 RGB (read-only view of the message)
    jitter: tuple[float, float]  #: (jx, jy), low-resolution pixels
    motion: np.ndarray | None  #: ``H x W x 2`` float32 (previous = current + motion), or None: estimate it
    reset: bool  #: drop the history first
    depth: np.ndarray | None = None  #: ``H x W`` float32 linear depth, or None


def pack_frame(
    frame: np.ndarray,
    jitter=(0.0, 0.0),
    motion: np.ndarray | None = None,
    reset: bool = False,
    depth: np.ndarray | None = None,
) -> bytes:
    """The message for one frame. Checks shapes and types only; the service checks values (jitter range,
    finite motion, depth finite and not negative) and answers a bad one with a JSON error."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be H x W x 3 uint8 RGB, got shape {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    if not (1 <= w <= _MAX_SIDE and 1 <= h <= _MAX_SIDE):
        raise ValueError(f"frame sides must be 1 to {_MAX_SIDE} pixels, got {w}x{h}")
    jx, jy = (float(v) for v in jitter)
    flags = (RESET if reset else 0) | (MOTION if motion is not None else 0) | (DEPTH if depth is not None else 0)
    parts = [HEADER.pack(MAGIC, VERSION, flags, 0, w, h, jx, jy), np.ascontiguousarray(frame).tobytes()]
    if motion is not None:
        motion = np.asarray(motion)
        if motion.shape != (h, w, 2):
            raise ValueError(f"motion must be {h} x {w} x 2 for this {h} x {w} frame, got {motion.shape}")
        parts.append(np.ascontiguousarray(motion, dtype="<f4").tobytes())
    if depth is not None:
        depth = np.asarray(depth)
        if depth.shape not in ((h, w), (h, w, 1)):
            raise ValueError(f"depth must be {h} x {w} for this {h} x {w} frame, got {depth.shape}")
        parts.append(np.ascontiguousarray(depth, dtype="<f4").tobytes())
    return b"".join(parts)


def unpack_frame(data: bytes) -> FrameMessage:
    """The frame in one message (views of ``data``, no copy of the pixels); ``ValueError`` naming what is
    wrong with its layout. Values (jitter range, finite motion) are left to ``check_temporal_inputs``."""
    if len(data) < HEADER.size:
        raise ValueError(
            f"truncated header: a frame message starts with a {HEADER.size}-byte header, got {len(data)} bytes"
        )
    magic, version, flags, reserved, w, h, jx, jy = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"bad magic {magic!r}: a frame message starts with {MAGIC!r}")
    if version != VERSION:
        raise ValueError(f"layout version {version} is not supported; version {VERSION} is")
    if flags & ~(RESET | MOTION | DEPTH) or reserved:
        raise ValueError(
            f"unknown flags 0x{flags:02x} or reserved 0x{reserved:04x}: only RESET (1), MOTION (2) and DEPTH (4)"
        )
    if not (1 <= w <= _MAX_SIDE and 1 <= h <= _MAX_SIDE):
        raise ValueError(f"width and height must be 1 to {_MAX_SIDE}, got {w}x{h}")
    pixels = w * h * 3
    plane = w * h * 2 * 4 if flags & MOTION else 0
    deep = w * h * 4 if flags & DEPTH else 0
    expected = HEADER.size + pixels + plane + deep
    if len(data) != expected:
        with_motion = f" + {plane} (motion)" if plane else " (no motion)"
        with_depth = f" + {deep} (depth)" if deep else ""
        raise ValueError(
            f"a {w}x{h} frame message is {HEADER.size} (header) + {pixels} (RGB){with_motion}{with_depth} = "
            f"{expected} bytes, got {len(data)}"
        )
    frame = np.frombuffer(data, np.uint8, pixels, HEADER.size).reshape(h, w, 3)
    motion = None
    if plane:  # a native float32 copy: the plane need not be aligned in the message, nor the machine little-endian
        motion = np.frombuffer(data, "<f4", w * h * 2, HEADER.size + pixels).reshape(h, w, 2).astype(np.float32)
    depth = None
    if deep:
        depth = np.frombuffer(data, "<f4", w * h, HEADER.size + pixels + plane).reshape(h, w).astype(np.float32)
    return FrameMessage(frame, (jx, jy), motion, bool(flags & RESET), depth)


class StreamError(Exception):
    """The service answered with an error (``code``, HTTP ``status``, ``message``: its JSON error), refused
    the connection, or closed it (``code`` ``"closed"``, ``status`` the WebSocket close code)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code, self.status, self.message = code, status, message


def _error(text: str | bytes, fallback_status: int) -> StreamError:
    """The error in a JSON error text (the service's shape), or the text itself if it is not one."""
    try:
        body = json.loads(text)["error"]
        return StreamError(str(body["code"]), int(body["status"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        raw = text.decode(errors="replace") if isinstance(text, bytes) else text
        return StreamError("error", fallback_status, raw[:500])


def stream_url(url: str, **query) -> str:
    """``ws(s)://host[:port]/v1/stream?query`` from a service URL (``http``, ``https``, ``ws`` or ``wss``, with
    or without the ``/v1/stream`` path)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"url must be http(s):// or ws(s)://, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/stream"):
        path += "/v1/stream"
    given = {k: v for k, v in query.items() if v is not None}
    return urlunsplit((scheme, parts.netloc, path, urlencode(given), ""))


class StreamClient:
    """One temporal stream: the service keeps its history for as long as the connection is open.

    ``url``: the service (``http://host:port``); ``model``: a temporal model it serves (None: its default);
    ``width``, ``height``: the frames' size (checked against the service's pixel limit at once; a frame of
    another size may still be sent, and starts a new history); ``api_key``: its bearer key, if it has keys;
    ``timeout``: seconds to wait for the connection and for each reply (a reply that does not come in time
    closes the stream); ``ssl_context``: for ``https://`` services with their own certificates;
    ``max_pending``: the most frames ``submit`` lets wait for their replies (at most the service's
    ``--max-in-flight``, 4 unless it was changed).
    The transport is ``upscaler.wsclient`` (a reply is read straight into one buffer). One thread per client.
    """

    def __init__(
        self,
        url: str,
        model: str | None = "x4-temporal",
        *,
        width: int,
        height: int,
        api_key: str | None = None,
        timeout: float | None = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        max_pending: int = 4,
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"width and height must be at least 1, got {width}x{height}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.url = stream_url(url, model=model, width=width, height=height)
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: deque[tuple[int, int]] = deque()  # (h, w) of each frame submitted, oldest first
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._ssl_context = ssl_context
        self._reset_next = False
        self._ws = self._connect()

    def _connect(self) -> WebSocket:
        try:
            return WebSocket(self.url, self._headers, timeout=self.timeout, ssl_context=self._ssl_context)
        except HandshakeRefused as exc:
            raise _error(exc.body, exc.status) from None
        except TimeoutError:
            msg = f"the service did not answer the handshake within {self.timeout} s"
            raise StreamError("timeout", 0, msg) from None

    def reconnect(self) -> None:
        """Open a new connection in place of this one (after a ``StreamError`` with code ``"closed"``: the
        service restarted, or, on Ray Serve, the replica holding the stream was lost: close code 1011). The
        history stayed with the old connection, so the next frame sent is flagged ``reset`` whatever the
        caller passes; replies still pending on the old connection are dropped."""
        with contextlib.suppress(Exception):
            self._ws.close(timeout=0.5)
        self._pending.clear()
        self._ws = self._connect()
        self._reset_next = True

    @property
    def replica(self) -> str | None:
        """Which replica holds this stream (``X-Upscaler-Replica`` of the handshake; None for one process)."""
        return self._ws.response_headers.get("x-upscaler-replica")

    def send(
        self,
        frame: np.ndarray,
        jitter=(0.0, 0.0),
        motion: np.ndarray | None = None,
        reset: bool = False,
        depth: np.ndarray | None = None,
    ) -> np.ndarray:
        """Send one frame and wait for its reply: the ``sH x sW x 3`` uint8 frame (a view of the reply's
        buffer, which is the caller's to keep or draw on). ``submit`` and ``result`` split it in two.

        Raises ``StreamError`` if the service answers with an error (the stream stays usable: the next
        frame continues from the same history), has closed the connection, or sent no reply within
        ``timeout`` (code ``"timeout"``: the stream is then closed, as a late reply would be taken for the
        next frame's); ``ValueError`` for a frame or motion of the wrong shape or type, before anything is sent.
        """
        if self._pending:
            raise RuntimeError(f"{len(self._pending)} submitted frames are still to be collected with result()")
        self.submit(frame, jitter, motion, reset, depth)
        return self.result()

    def submit(
        self,
        frame: np.ndarray,
        jitter=(0.0, 0.0),
        motion: np.ndarray | None = None,
        reset: bool = False,
        depth: np.ndarray | None = None,
    ) -> None:
        """Send one frame without waiting for its reply (``result`` collects replies in the order sent): the
        service works on the next frame while this one's reply travels, so a renderer that keeps one or two
        frames ahead gets about the in-process frame rate. At most ``max_pending`` frames may be waiting
        (``RuntimeError`` beyond: more than the service reads ahead would stall both ends)."""
        if len(self._pending) >= self.max_pending:
            raise RuntimeError(f"{self.max_pending} frames are pending (max_pending); collect one with result()")
        frame = np.asarray(frame)
        message = pack_frame(frame, jitter, motion, reset or self._reset_next, depth)
        self._reset_next = False
        try:
            with contextlib.suppress(OSError):  # the service has gone: what it said before that is for result()
                self._ws.send(message)
        except ConnectionClosed as exc:  # closed here already (by the service's close, or a late reply)
            raise StreamError("closed", exc.code, exc.reason) from None
        self._pending.append(frame.shape[:2])

    def result(self) -> np.ndarray:
        """The reply to the oldest frame submitted and not yet collected; raises as ``send`` does."""
        if not self._pending:
            raise RuntimeError("no submitted frame is waiting for its reply")
        h, w = self._pending.popleft()
        try:
            reply = self._ws.recv(timeout=self.timeout)
        except ConnectionClosed as exc:
            raise StreamError("closed", exc.code, exc.reason) from None
        except TimeoutError:
            self.close()
            raise StreamError("timeout", 0, f"no reply within {self.timeout} s; the stream is closed") from None
        except ProtocolError as exc:
            raise StreamError("protocol_error", 0, str(exc)) from None
        except OSError as exc:
            raise StreamError("closed", 1006, str(exc)) from None
        if isinstance(reply, str):
            raise _error(reply, 0)
        scale = math.isqrt(len(reply) // (w * h * 3))
        if len(reply) != w * h * 3 * scale * scale or scale < 1:
            raise StreamError("bad_reply", 0, f"a reply of {len(reply)} bytes is no upscaled {w}x{h} RGB frame")
        return np.frombuffer(reply, np.uint8).reshape(h * scale, w * scale, 3)

    @property
    def pending(self) -> int:
        """Frames submitted whose replies ``result`` has not returned yet."""
        return len(self._pending)

    def close(self) -> None:
        """End the stream: the service frees its history."""
        self._ws.close()

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
