"""``WS /v1/stream``: an exact bound on frames in progress, nothing left running or pending when a client goes
away, engine failures answered as JSON errors, the key checked before the parameters."""

from __future__ import annotations

import gc
import json
import logging

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from server.settings import Settings
from tests.server_helpers import HANG_GUARD_S, abort, metric, serve, serve_in_thread, wait_until
from upscaler import Upscaler

KEY = "stream-key-0123456789abcdef"


def _ws_url(server, w: int, h: int, **query: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"{server.url.replace('http://', 'ws://')}/v1/stream?width={w}&height={h}{extra}"


def _frames(photo: np.ndarray, n: int, h: int = 12, w: int = 16) -> list[np.ndarray]:
    return [np.ascontiguousarray(photo[i : i + h, i : i + w]) for i in range(n)]


def test_exactly_max_in_flight_frames_are_in_progress(photo):
    settings = Settings(models=["x4-fast"], warmup=False, max_in_flight=2, max_batch_size=1)
    frames = _frames(photo, 6)
    with serve_in_thread(settings) as server, server.client() as c:
        gate = server.gate()
        batcher = server.service.batcher
        with connect(_ws_url(server, 16, 12)) as ws:
            for f in frames:
                ws.send(f.tobytes())
            gate.wait_calls(1)
            wait_until(lambda: batcher.load >= 2, "two frames in progress")
            for _ in range(5):  # round trips through the server's event loop: a third frame would be in by now
                assert c.get("/healthz").status_code == 200
            assert batcher.load == 2, f"{batcher.load} frames in progress, max_in_flight is 2"
            gate.open()
            replies = [ws.recv(timeout=HANG_GUARD_S) for _ in frames]
    up = Upscaler("x4-fast", "onnxruntime")
    for f, r in zip(frames, replies):
        out = np.frombuffer(r, np.uint8).reshape(48, 64, 3).astype(int)
        assert int(np.abs(out - up.upscale(f)).max()) <= 1


def test_a_client_that_aborts_leaves_nothing_running_or_pending(photo, caplog):
    # No deadline can come during the test: only dropping the frames can empty the queue.
    timeout = 10 * HANG_GUARD_S
    settings = Settings(models=["x4-fast"], warmup=False, max_in_flight=3, max_batch_size=1, request_timeout_s=timeout)
    caplog.set_level(logging.ERROR, logger="asyncio")
    with serve_in_thread(settings) as server, server.client() as c:
        gate = server.gate()
        batcher = server.service.batcher
        with connect(_ws_url(server, 16, 12)) as ws:
            for f in _frames(photo, 3):
                ws.send(f.tobytes())
            gate.wait_calls(1)
            wait_until(lambda: batcher.waiting == 2, "one frame running, two queued")
            abort(ws.socket)
        # Dropped while the engine still holds the first frame: they will never run.
        wait_until(lambda: batcher.waiting == 0, "the aborted client's queued frames to leave the queue", 30)
        wait_until(lambda: metric(c, "upscaler_streams_open") == 0, "the connection's tasks to end", 30)
        gate.open()
        wait_until(lambda: batcher.load == 0, "the engine to go idle")
        assert c.get("/healthz").status_code == 200
    gc.collect()
    assert len(gate.calls) == 1
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


def test_after_many_aborted_clients_the_service_answers_at_once(tmp_path, photo):
    """Against the real service: 16 clients send frames and vanish; the next request is served, not refused,
    and no task of theirs is left pending."""
    frame = np.ascontiguousarray(np.resize(photo, (128, 128, 3)))
    args = ("--models", "x4-fast", "--max-queue", "8")
    with serve(tmp_path, *args) as server, server.client() as c:
        for _ in range(16):
            with connect(_ws_url(server, 128, 128)) as ws:
                for _ in range(4):
                    ws.send(frame.tobytes())
                abort(ws.socket)
        wait_until(lambda: metric(c, "upscaler_streams_open") == 0, "the aborted streams to end")
        r = c.post("/v1/frames", content=frame.tobytes(), headers={"X-Width": "128", "X-Height": "128"})
        assert r.status_code == 200, r.text
    log = server.log.read_text()
    assert "destroyed but it is pending" not in log and "Traceback" not in log


def test_an_engine_failure_is_answered_in_place_and_the_stream_goes_on(photo):
    settings = Settings(models=["x4-fast"], warmup=False)
    frame = _frames(photo, 1)[0]
    with serve_in_thread(settings) as server:
        batcher = server.service.batcher
        real = batcher.run_batch
        failures = [RuntimeError("engine exploded")]

        def flaky(key, items):
            if failures:
                raise failures.pop()
            return real(key, items)

        batcher.run_batch = flaky
        with connect(_ws_url(server, 16, 12)) as ws:
            ws.send(frame.tobytes())
            error = json.loads(ws.recv(timeout=HANG_GUARD_S))
            ws.send(frame.tobytes())
            assert len(ws.recv(timeout=HANG_GUARD_S)) == 48 * 64 * 3
    assert error == {"error": {"code": "internal_error", "status": 500, "message": "internal error"}}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("keyed"), "--models", "x4-fast", "--api-keys", KEY) as running:
        yield running


def test_the_key_is_checked_before_the_parameters(keyed):
    with pytest.raises(InvalidStatus) as refused:
        connect(_ws_url(keyed, 0, 2))
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["code"] == "unauthorized"


def test_bad_parameters_get_a_json_error_and_a_close_reason(keyed):
    good = {"Authorization": f"Bearer {KEY}"}
    with connect(_ws_url(keyed, 0, 2, format="yuv"), additional_headers=good) as ws:
        error = json.loads(ws.recv(timeout=HANG_GUARD_S))["error"]
        with pytest.raises(ConnectionClosed) as closed:  # then the server closes, saying why
            ws.recv(timeout=HANG_GUARD_S)
    close = closed.value.rcvd
    assert (error["code"], error["status"]) == ("invalid_parameters", 422)
    assert "width" in error["message"] and "format" in error["message"]
    assert close.code == 1008 and "width" in close.reason


def test_http_and_stream_errors_have_one_shape(keyed):
    good = {"Authorization": f"Bearer {KEY}"}
    with keyed.client() as c:
        http_error = c.post("/v1/frames", content=b"short", headers={"X-Width": "2", "X-Height": "2", **good})
    with connect(_ws_url(keyed, 2, 2), additional_headers=good) as ws:
        ws.send(b"short")
        ws_error = json.loads(ws.recv(timeout=HANG_GUARD_S))
    assert http_error.status_code == 400 and http_error.json() == ws_error
    assert ws_error["error"]["code"] == "bad_request" and ws_error["error"]["status"] == 400
