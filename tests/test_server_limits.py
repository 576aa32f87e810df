"""The cost of one request is bounded: output-pixel limit, large images in tiles that take turns with other
requests, work of requests that timed out or lost their client dropped, shutdown on time.

Where an order of events matters the engine is held by a ``Gate`` (in-process server); the rest runs against
a real ``upscaler serve``. No outcome depends on how fast the machine is.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from server.settings import Settings
from tests.server_helpers import (
    HANG_GUARD_S,
    abort,
    metric,
    read_head,
    serve,
    serve_in_thread,
    wait_until,
)
from upscaler import Upscaler
from upscaler.io import decode_image, encode_image

LIMIT = Settings().max_pixels  # the default: output pixels
SIDE_X4 = 1024  # the largest square input at x4 within the default limit


def close_to(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def frame_headers(w: int, h: int, **extra: str) -> dict[str, str]:
    return {"X-Width": str(w), "X-Height": str(h), **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``upscaler serve`` with its default limits."""
    with serve(tmp_path_factory.mktemp("limits"), "--models", "x4-fast,x2-fast") as running:
        yield running


# -- the limit counts output pixels ---------------------------------------------------------------------


def test_the_default_limit_is_on_output_pixels_and_is_documented():
    assert LIMIT == 4096 * 4096
    from server.settings import help_of

    assert "output pixels" in help_of("max_pixels") and "scale^2" in help_of("max_pixels")


@pytest.mark.parametrize(("model", "side"), [("x4-fast", 1024), ("x2-fast", 2048)])
def test_the_largest_accepted_input_depends_on_the_scale(server, model, side):
    with server.client() as c:
        # Exactly at the limit: past the pixel check (the 10-byte body is then the wrong size: 400).
        r = c.post(f"/v1/frames?model={model}", content=bytes(10), headers=frame_headers(side, side))
        assert r.status_code == 400 and "frame is" in r.json()["error"]["message"]
        r = c.post(f"/v1/frames?model={model}", content=bytes(10), headers=frame_headers(side + 1, side))
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def _patched_jpeg(w: int, h: int) -> bytes:
    """A real small JPEG whose frame header is patched to declare ``w`` x ``h``."""
    data = bytearray(encode_image(noise(64, 64), "jpeg"))
    at = 2
    while data[at + 1] not in (0xC0, 0xC2):
        at += 2 + struct.unpack_from(">H", data, at + 2)[0]
    struct.pack_into(">HH", data, at + 5, h, w)
    return bytes(data)


def test_bombs_within_the_old_input_limit_are_refused_at_once(server):
    zeros = encode_image(np.zeros((4096, 4096, 3), np.uint8), "png")  # ~50 KB that decode to 48 MB
    assert len(zeros) < 100_000
    with server.client() as c:
        for body in (zeros, _patched_jpeg(4000, 4000)):
            before = metric(c, "upscaler_batch_size_count")
            r = c.post("/v1/upscale", content=body, headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 413 and "output pixels" in r.json()["error"]["message"]
            assert metric(c, "upscaler_batch_size_count") == before  # refused from the header: no engine call


# -- large images take turns ----------------------------------------------------------------------------


def test_a_small_request_is_served_between_the_tiles_of_a_maximal_one(photo):
    big = np.ascontiguousarray(np.resize(photo, (SIDE_X4, SIDE_X4, 3)))
    small = np.ascontiguousarray(photo[:16, :16])
    settings = Settings(models=["x4-fast"], warmup=False)  # default limits: ``big`` is the largest accepted
    with serve_in_thread(settings) as server, ThreadPoolExecutor(2) as pool:
        gate = server.gate()

        def post(frame):
            with server.client() as c:
                h, w = frame.shape[:2]
                return c.post("/v1/frames", content=frame.tobytes(), headers=frame_headers(w, h))

        large = pool.submit(post, big)
        gate.wait_calls(1)  # the first tile of the large image is in the engine
        quick = pool.submit(post, small)
        wait_until(lambda: server.service.batcher.waiting == 1, "the small request to queue")
        gate.allow(1)  # the tile; the small request, older than the next tile, must be next
        gate.wait_calls(2)
        assert gate.pixels[1] == 16 * 16  # the small request's call
        gate.allow(1)
        reply = quick.result(timeout=HANG_GUARD_S)
        assert reply.status_code == 200 and not large.done()  # answered while the large one still runs
        gate.open()
        done = large.result(timeout=HANG_GUARD_S)
    assert done.status_code == 200, done.text
    assert len(gate.calls) >= 5, "the large image ran in one engine call: nothing could run between its parts"
    assert [key[0] for key in gate.keys] == ["tiles", "images", *["tiles"] * (len(gate.keys) - 2)]
    got = np.frombuffer(done.content, np.uint8).reshape(4 * SIDE_X4, 4 * SIDE_X4, 3)
    assert close_to(got, Upscaler("x4-fast", "onnxruntime").upscale(big))


def test_a_small_request_completes_while_the_largest_accepted_one_runs(server):
    """Against the real service: the small answer comes back while the maximal request is still running."""
    big = encode_image(noise(SIDE_X4, SIDE_X4), "png")
    small = encode_image(noise(32, 32, seed=1), "png")
    finished = threading.Event()
    outcome = {}

    def run_big():
        with server.client() as c:
            outcome["big"] = c.post("/v1/upscale", content=big, headers={"Content-Type": "image/png"})
        finished.set()

    def in_engine() -> bool:  # a tile of it has run (or, were it one engine call, that call is running)
        return metric(c, "upscaler_tiles_total") > tiles or metric(c, "upscaler_queued_requests") >= 1

    with server.client() as c:
        tiles = metric(c, "upscaler_tiles_total")
        thread = threading.Thread(target=run_big)
        started = time.perf_counter()
        thread.start()
        wait_until(in_engine, "the maximal request to reach the engine")
        sent = time.perf_counter()
        r = c.post("/v1/upscale", content=small, headers={"Content-Type": "image/png"})
        small_s = time.perf_counter() - sent
        big_done_first = finished.is_set()
        thread.join(HANG_GUARD_S)
        big_s = time.perf_counter() - started
    assert r.status_code == 200 and decode_image(r.content).shape == (128, 128, 3)
    assert not big_done_first, "the small request waited for the whole maximal one"
    # Relative, so the machine's speed cancels out: it waits for at most one tile of the four, not for the rest
    # of the image.
    assert small_s < big_s / 3, f"small request {small_s:.2f} s while the maximal one took {big_s:.2f} s"
    assert outcome["big"].status_code == 200 and decode_image(outcome["big"].content).shape == (4096, 4096, 3)


# -- work nobody waits for is dropped -------------------------------------------------------------------


def test_a_timed_out_large_request_runs_no_further_tiles(photo):
    big = np.ascontiguousarray(np.resize(photo, (700, 700, 3)))  # 2 x 2 tiles
    settings = Settings(models=["x4-fast"], warmup=False, request_timeout_s=0.5)
    with serve_in_thread(settings) as server, server.client() as c:
        gate = server.gate()  # the first tile is held past the deadline, however fast the machine is
        r = c.post("/v1/frames", content=big.tobytes(), headers=frame_headers(700, 700))
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        gate.open()
        wait_until(lambda: server.service.batcher.load == 0, "the engine to go idle")
        assert c.get("/healthz").status_code == 200  # one more round trip: any late submission would be in
        assert server.service.batcher.load == 0
    assert sum(gate.pixels) < 700 * 700  # only the tile that was running when the deadline came
    assert len(gate.calls) == 1 and gate.keys[0][0] == "tiles"


def _send_frame_request(port: int, frame: np.ndarray) -> socket.socket:
    h, w = frame.shape[:2]
    body = frame.tobytes()
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S)
    head = (
        f"POST /v1/frames HTTP/1.1\r\nHost: x\r\nX-Width: {w}\r\nX-Height: {h}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def test_a_client_that_goes_away_leaves_no_work_behind(photo):
    first = np.ascontiguousarray(photo[:20, :20])
    queued = np.ascontiguousarray(photo[:24, :24])
    big = np.ascontiguousarray(np.resize(photo, (700, 700, 3)))
    # No deadline can come during the test: only dropping the work can empty the queue.
    settings = Settings(models=["x4-fast"], warmup=False, max_batch_size=1, request_timeout_s=10 * HANG_GUARD_S)
    with serve_in_thread(settings) as server, server.client() as c:
        gate = server.gate()
        held = _send_frame_request(server_port(server), first)
        gate.wait_calls(1)
        gone = _send_frame_request(server_port(server), queued)
        wait_until(lambda: server.service.batcher.waiting == 1, "the second request to queue")
        abort(gone)
        # Dropped while the engine is still held: it will never run.
        wait_until(lambda: server.service.batcher.waiting == 0, "the abandoned request to leave the queue", 30)
        wait_until(lambda: metric(c, "upscaler_client_disconnects_total", route="/v1/frames") == 1, "a 499", 30)
        gate.allow(1)
        reply = http.client.HTTPResponse(held)
        reply.begin()
        assert reply.status == 200 and len(reply.read()) == 80 * 80 * 3
        held.close()
        # A large image whose client goes away during its first tile: the other tiles are skipped.
        big_client = _send_frame_request(server_port(server), big)
        gate.wait_calls(2)
        abort(big_client)
        wait_until(lambda: metric(c, "upscaler_client_disconnects_total", route="/v1/frames") == 2, "a 499", 30)
        gate.open()
        wait_until(lambda: server.service.batcher.load == 0, "the engine to go idle")
        assert metric(c, "upscaler_requests_total", route="/v1/frames", status="500") == 0
    assert gate.pixels[0] == 20 * 20 and gate.pixels[1] < 700 * 700  # the held request and one tile
    assert len(gate.calls) == 2  # nothing else


def server_port(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


# -- shutdown ------------------------------------------------------------------------------------------


def _stalled(port: int) -> socket.socket:
    """A request in flight whose body never comes: "100 Continue" says the handler is waiting for it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S)
    head = (
        "POST /v1/frames HTTP/1.1\r\nHost: x\r\nX-Width: 4\r\nX-Height: 4\r\nContent-Length: 48\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    sock.sendall(head.encode())
    assert read_head(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"
    return sock


def _reply(sock: socket.socket) -> tuple[int, str, bytes]:
    reply = http.client.HTTPResponse(sock)
    reply.begin()
    return reply.status, reply.getheader("content-type", ""), reply.read()


def _is_shutdown_503(status: int, kind: str, body: bytes) -> bool:
    return status == 503 and kind == "application/json" and json.loads(body)["error"]["code"] == "shutting_down"


def in_flight(c) -> float:
    """Large requests admitted (running or waiting for the large lane), or, where a service queues them for
    the engine instead, requests queued or running there."""
    return max(metric(c, "upscaler_large_requests"), metric(c, "upscaler_queued_requests"))


def test_sigterm_under_load_exits_within_the_timeout_and_answers_503(tmp_path):
    timeout = 2.0
    big = encode_image(noise(SIDE_X4, SIDE_X4), "png")
    args = ("--models", "x4-fast", "--shutdown-timeout-s", str(timeout))
    with serve(tmp_path, *args) as server, server.client() as c, ThreadPoolExecutor(7) as pool:

        def post_big(_):
            with server.client() as mine:
                r = mine.post("/v1/upscale", content=big, headers={"Content-Type": "image/png"})
                return r.status_code, r.headers.get("content-type", ""), r.content

        bigs = [pool.submit(post_big, i) for i in range(7)]  # one runs, six wait for the large lane
        wait_until(lambda: in_flight(c) == 7, "seven maximal requests in flight")
        stalled = [_stalled(server.port) for _ in range(2)]
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=HANG_GUARD_S)
        exited = time.monotonic() - signalled
        replies = [f.result(timeout=HANG_GUARD_S) for f in bigs]
        stalled_replies = [_reply(s) for s in stalled]
    assert exited < timeout + 3, f"exited {exited:.1f} s after SIGTERM (timeout {timeout} s)"
    assert all(_is_shutdown_503(*r) for r in stalled_replies), stalled_replies
    assert all(r[0] == 200 or _is_shutdown_503(*r) for r in replies), [r[:2] for r in replies]
    assert "Traceback" not in server.log.read_text()


def test_a_fractional_shutdown_timeout_is_kept(tmp_path):
    with serve(tmp_path, "--models", "x4-fast", "--shutdown-timeout-s", "0.9") as server:
        sock = _stalled(server.port)
        server.proc.send_signal(signal.SIGTERM)
        status, kind, body = _reply(sock)  # int(0.9) == 0 cancelled it at once: a plain-text 500
        assert _is_shutdown_503(status, kind, body), (status, body)
        assert server.proc.wait(timeout=HANG_GUARD_S) in (0, -signal.SIGTERM)
    assert "shutting down: in-flight requests have 0.72 s to finish" in server.log.read_text()


def test_the_uvicorn_config_keeps_fractions():
    from server.app import create_app
    from server.runner import uvicorn_config

    settings = Settings(shutdown_timeout_s=0.9)
    assert uvicorn_config(settings, create_app(settings)).timeout_graceful_shutdown == 0.9
