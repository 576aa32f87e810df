"""The temporal stream under hostile clients, measured against real ``upscaler serve`` processes on loopback.

``python -m server.measure_streams [--sizes 256 512 1024] [--streams 4] [--json PATH]`` prints JSON (and with
``--json`` writes it, with the machine, the command line and the time). Each part runs its own service:

- ``hostage``: clients that send frames and never read the replies (default ``--stream-send-timeout-s``):
  seconds from their last byte taken to their slot being free, and whether a new stream then opens;
- ``sizes`` and ``motion``: the answer to frames the engines cannot take (status, and whether the next good
  frame continues from the history as if nothing came between);
- ``bad_utf8``: the close a text message that is not UTF-8 gets, and whether the log holds a traceback;
- ``sigterm``: frames in flight when SIGTERM comes: how many are answered, the close, seconds to exit;
- ``memory``: per frame size (x4-temporal), resident memory ready, at the peak of one and of ``--streams``
  streams, after they close, against ``stream_memory_bound``; and garbage messages of 30 MB.

``RawStream`` is the hostile client (the tests use it too).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from server.measure import memory_mb, metric, serve_process, settled_rss_mb
from server.settings import Settings, stream_memory_bound
from upscaler.bench.report import emit_json
from upscaler.client import StreamClient, StreamError, pack_frame, stream_url
from upscaler.models import get_model
from upscaler.sysinfo import machine_info

__all__ = ["RawStream", "main"]

OPEN = "upscaler_temporal_streams_open"
HANG_GUARD_S = 120.0
MODEL = "x4-temporal"  #: the model measured (``--model``)


class RawStream:
    """A WebSocket client on a plain socket (websockets' sans-I/O protocol): it reads only when told to, as a
    hostile client does, and sends what it is given, valid or not. ``rcvbuf`` shrinks the socket's receive
    buffer, so a client that does not read stalls the server's sends after little data."""

    def __init__(self, url: str, *, rcvbuf: int | None = None) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        uri = parse_uri(url)
        self.proto = ClientProtocol(uri, max_size=None)
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((uri.host, uri.port))
        self.proto.send_request(self.proto.connect())
        self._flush()
        self.events: list[Any] = []
        while self.proto.handshake_exc is None and not self._response():
            self._feed(self.sock.recv(65536))
        if self.proto.handshake_exc is not None:
            raise self.proto.handshake_exc

    def _response(self) -> bool:
        from websockets.http11 import Response

        found = [e for e in self.events if isinstance(e, Response)]
        self.events = [e for e in self.events if not isinstance(e, Response)]
        return bool(found)

    def _feed(self, data: bytes) -> None:
        if data:
            self.proto.receive_data(data)
        else:
            self.proto.receive_eof()
        self.events += self.proto.events_received()
        self._flush()  # pongs and close replies

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.sock.sendall(chunk)

    def send_binary(self, data: bytes, timeout: float | None = None) -> bool:
        """Send one binary message; False if the server stopped taking bytes for ``timeout`` s (it is not
        reading) or dropped the connection, with what was not sent dropped."""
        self.proto.send_binary(data)
        self.sock.settimeout(timeout)
        try:
            self._flush()
        except OSError:  # a timeout, or the server has dropped the connection
            return False
        finally:
            self.sock.settimeout(None)
        return True

    def send_text_bytes(self, data: bytes) -> None:
        """A text message whose payload is ``data`` as given (not checked for UTF-8)."""
        self.proto.send_text(data)
        self._flush()

    def read_until_closed(self, timeout: float = HANG_GUARD_S) -> tuple[list[Any], int | None, str | None]:
        """Every frame received until the connection ends: (data frames, close code, close reason); a connection
        dropped without a close frame gives code None."""
        from websockets.frames import Opcode

        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(1 << 20)
                self._feed(data)
                if not data:
                    break
        except (ConnectionResetError, BrokenPipeError):  # dropped; or our close reply met a closed socket
            pass
        frames = [e for e in self.events if e.opcode in (Opcode.TEXT, Opcode.BINARY)]
        closing = self.proto.close_rcvd  # None: no close frame came before the connection ended
        return frames, (closing.code if closing else None), (closing.reason if closing else None)

    def close(self) -> None:
        self.sock.close()


def _until(condition, timeout: float = HANG_GUARD_S) -> float:
    """Seconds until ``condition()`` holds (polled); ``inf`` if it does not within ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            return float("inf")
        time.sleep(0.01)
    return time.monotonic() - start


def _frames(n: int, w: int, h: int, seed: int = 0) -> list[tuple[np.ndarray, tuple[float, float], np.ndarray]]:
    """``n`` random frames with jitter and gentle motion (content does not change what is measured here)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out.append((frame, (0.25 * (i % 2) - 0.125, 0.125), np.full((h, w, 2), 0.3, np.float32)))
    return out


def _serve_temporal(*args: str, log: Path | None = None):
    return serve_process("--models", MODEL, "--backend", "onnxruntime-cpu", *args, log=log)


def _flood(client: RawStream, message: bytes) -> tuple[int, float]:
    """Send ``message`` until the server stops taking bytes (3 s); (messages sent, when the last went)."""
    sent, last = 0, time.monotonic()
    while client.send_binary(message, timeout=3):
        sent, last = sent + 1, time.monotonic()
    return sent, last


def _hostage(streams: int) -> dict:
    """``streams`` clients that send (together) until the server stops taking their bytes, never reading:
    seconds from the last frame each got through to every slot being free."""
    message = pack_frame(*_frames(1, 64, 48)[0])
    with _serve_temporal("--max-streams", str(streams)) as (_, url), httpx.Client(base_url=url) as c:
        target = stream_url(url, model=MODEL, width=64, height=48)
        clients = [RawStream(target, rcvbuf=4096) for _ in range(streams)]
        floods: list[tuple[int, float]] = [(0, 0.0)] * streams

        def flood(i: int) -> None:
            floods[i] = _flood(clients[i], message)

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(streams)]  # all at once
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        held = metric(c, OPEN)
        _until(lambda: metric(c, OPEN) == 0, 120)
        freed = time.monotonic()
        try:
            with StreamClient(url, MODEL, width=64, height=48) as fresh:
                fresh.send(*_frames(1, 64, 48)[0])
            reopened = True
        except StreamError:
            reopened = False
        for r in clients:
            r.close()
    return {
        "clients": streams,
        "frames_sent_each": [n for n, _ in floods],
        "slots_held_when_they_stopped": held,
        "stream_send_timeout_s": Settings().stream_send_timeout_s,
        "seconds_from_last_frame_to_slot_free": [round(freed - last, 2) for _, last in floods],
        "new_stream_served_after": reopened,
    }


def _answer(ws, message: bytes) -> Any:
    ws.send(message)
    return ws.recv(timeout=HANG_GUARD_S)


def _status(reply: Any) -> int:
    return 200 if isinstance(reply, bytes) else json.loads(reply)["error"]["status"]


def _refused(cases: dict[str, bytes], good: list[bytes]) -> dict:
    """Each case sent between two good frames of one stream: its status, and whether the second good frame's
    reply equals what a stream that never saw the case makes of it."""
    from websockets.sync.client import connect

    out = {}
    with _serve_temporal("--max-pixels", str(1 << 24)) as (_, url):
        target = stream_url(url, model=MODEL, width=48, height=32)
        with connect(target, max_size=None) as clean:
            expected = [_answer(clean, m) for m in good]
        for name, message in cases.items():
            with connect(target, max_size=None) as ws:
                first, reply, second = _answer(ws, good[0]), _answer(ws, message), _answer(ws, good[1])
            kept = first == expected[0] and second == expected[1]
            # An accepted frame of another size starts a new history, as documented: only refusals keep it.
            out[name] = {"status": _status(reply), "history_kept": kept if _status(reply) != 200 else None}
    return out


def _sizes_and_motion() -> dict:
    good = [pack_frame(*f) for f in _frames(2, 48, 32)]
    sizes = {f"{w}x{h}": pack_frame(np.zeros((h, w, 3), np.uint8), (0.0, 0.0)) for w, h in
             ((4, 2048), (1, 2048), (8192, 1), (65536, 1))}  # fmt: skip
    frame, jitter, motion = _frames(1, 48, 32, seed=1)[0]
    wild = {}
    for value in (1e30, 3e38):
        m = motion.copy()
        m[3, 4, 0] = value
        wild[f"motion {value:g}"] = pack_frame(frame, jitter, m)
    return {"sizes": _refused(sizes, good), "motion": _refused(wild, good)}


def _bad_utf8() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.log"
        with _serve_temporal(log=log) as (_, url):
            client = RawStream(stream_url(url, model=MODEL, width=48, height=32))
            client.send_text_bytes(b"\xff\xfe\xfd")
            _, code, reason = client.read_until_closed()
            client.close()
        text = log.read_text()
    return {"close_code": code, "close_reason": reason, "log_has_traceback": "Traceback" in text,
            "log_has_error": "ERROR" in text}  # fmt: skip


def _sigterm(frames: int = 3, size: tuple[int, int] = (192, 128)) -> dict:
    """``frames`` frames sent, then SIGTERM at once (the service's default --shutdown-timeout-s)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    messages = [pack_frame(*f) for f in _frames(frames, *size)]
    with _serve_temporal() as (proc, url), connect(stream_url(url, model=MODEL, width=size[0], height=size[1]),
                                                    max_size=None) as ws:  # fmt: skip
        for m in messages:
            ws.send(m)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        answered, code, reason = 0, None, None
        try:
            while True:
                answered += isinstance(ws.recv(timeout=HANG_GUARD_S), bytes)
        except ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None)
        closed_s = time.monotonic() - start
        proc.wait(HANG_GUARD_S)
        exit_s = time.monotonic() - start
    return {"frames_in_flight": frames, "frame_size": f"{size[0]}x{size[1]}", "answered": answered,
            "close_code": code, "close_reason": reason, "seconds_to_close": round(closed_s, 2),
            "seconds_to_exit": round(exit_s, 2)}  # fmt: skip


def _run_streams(url: str, count: int, side: int, frames: int = 3) -> None:
    def one(seed: int) -> None:
        with StreamClient(url, MODEL, width=side, height=side) as stream:
            for f in _frames(frames, side, side, seed):
                stream.send(*f)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _released(proc, c: httpx.Client) -> float:
    """Resident MB once every stream has closed and the release has run (or after 20 s)."""
    _until(lambda: metric(c, OPEN) == 0, 20)
    return settled_rss_mb(proc.pid)


def _memory(side: int, streams: int) -> dict:
    scale = get_model(MODEL).scale
    settings = Settings(max_pixels=(side * scale) ** 2, max_streams=streams)
    args = ("--max-pixels", str(settings.max_pixels), "--max-streams", str(streams))
    with _serve_temporal(*args) as (proc, url), httpx.Client(base_url=url) as c:
        ready = memory_mb(proc.pid, "VmRSS")
        _run_streams(url, 1, side)
        one = memory_mb(proc.pid)
        after_one = _released(proc, c)
        _run_streams(url, streams, side)
        many = memory_mb(proc.pid)
        after = _released(proc, c)
    bound = stream_memory_bound(settings, [scale]) / (1 << 20)
    return {"model": MODEL, "input": f"{side}x{side}", "output_pixels": settings.max_pixels, "streams": streams,
            "ready_mb": round(ready), "peak_one_stream_mb": round(one), "after_one_closed_mb": round(after_one),
            f"peak_{streams}_streams_mb": round(many), "after_all_closed_mb": round(after),
            "bound_beyond_ready_mb": round(bound), "within_bound": many - ready <= bound,
            "back_within_20_percent": after <= 1.2 * ready}  # fmt: skip


def _garbage(connections: int, each: int, size_mb: int = 30) -> dict:
    from websockets.sync.client import connect

    junk = b"\x00" * (size_mb << 20)
    with _serve_temporal() as (proc, url), httpx.Client(base_url=url) as c:
        ready = memory_mb(proc.pid, "VmRSS")
        target = stream_url(url, model=MODEL, width=8, height=8)

        def send(_: int) -> None:
            with connect(target, max_size=None) as ws:
                for _ in range(each):
                    _answer(ws, junk)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = memory_mb(proc.pid)
        after = _released(proc, c)
    return {"connections": connections, "messages_each": each, "message_mb": size_mb, "ready_mb": round(ready),
            "peak_mb": round(peak), "after_mb": round(after)}  # fmt: skip


_PARTS = {
    "hostage": lambda a: {"hostage": _hostage(a.streams)},
    "refusals": lambda a: _sizes_and_motion(),
    "bad_utf8": lambda a: {"bad_utf8": _bad_utf8()},
    "sigterm": lambda a: {"sigterm": _sigterm()},
    "memory": lambda a: {"memory": [_memory(side, a.streams) for side in a.sizes]},
    "garbage": lambda a: {"garbage": [_garbage(1, 3), _garbage(4, 3)]},
}


def main(argv: list[str] | None = None) -> int:
    global MODEL
    parser = argparse.ArgumentParser(prog="python -m server.measure_streams", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=MODEL, help="the temporal model (default: x4-temporal)")
    parser.add_argument("--parts", nargs="+", choices=list(_PARTS), default=list(_PARTS), help="what to measure")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="square input sides")
    parser.add_argument("--streams", type=int, default=4, help="streams at once for the memory and hostage parts")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    MODEL = args.model
    started = time.monotonic()
    figures: dict[str, Any] = {}
    for part in args.parts:
        figures.update(_PARTS[part](args))
    command = " ".join(["python -m server.measure_streams", *(argv or sys.argv[1:])])
    out = {"machine": machine_info(), "command": command, "model": MODEL,
           "when": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": round(time.monotonic() - started),
           **figures}  # fmt: skip
    emit_json(out, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
