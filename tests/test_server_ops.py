"""The service under operations: overload, auth, graceful shutdown, settings, memory on bad input."""

from __future__ import annotations

import http.client
import json
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from server.app import create_app
from server.settings import Settings
from tests.conftest import run_cli
from tests.server_helpers import HANG_GUARD_S, read_head, serve, serve_in_thread, wait_until
from upscaler import Upscaler
from upscaler.io import encode_image

KEY = "test-key-0123456789abcdef"
UNAUTHORIZED = {"code": "unauthorized", "status": 401, "message": "unauthorized"}


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))


def test_overload_gets_503_with_retry_after_and_nothing_hangs(photo):
    frame = np.ascontiguousarray(np.resize(photo, (40, 50, 3)))
    headers = {"X-Width": "50", "X-Height": "40"}
    settings = Settings(models=["x4-fast"], max_queue=2, max_batch_size=1, warmup=False)
    with serve_in_thread(settings) as server, ThreadPoolExecutor(2) as pool:
        gate = server.gate()  # the engine holds its first call: nothing leaves the queue until the gate opens

        def one():
            with server.client() as c:
                return c.post("/v1/frames", content=frame.tobytes(), headers=headers)

        running = pool.submit(one)
        wait_until(gate.entered.is_set, "the first request to reach the engine")
        queued = pool.submit(one)
        wait_until(lambda: server.service.batcher.waiting == 1, "the second request to queue")
        with server.client() as c:  # running + queued = max_queue: every further request is refused at once
            for _ in range(5):
                r = c.post("/v1/frames", content=frame.tobytes(), headers=headers)
                assert r.status_code == 503 and r.headers["retry-after"] == "1"
                assert r.json()["error"]["code"] == "overloaded"
            gate.open()
            assert running.result().status_code == 200 and queued.result().status_code == 200
            assert c.post("/v1/frames", content=frame.tobytes(), headers=headers).status_code == 200  # recovered
        assert gate.calls == [1, 1, 1]


def test_api_keys_guard_everything_but_the_open_endpoints(tmp_path, photo):
    png = encode_image(photo[:8, :8], "png")
    with serve(tmp_path, "--api-keys", KEY, "--no-open-metrics") as server, server.client() as c:
        for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": KEY}):
            r = c.post("/v1/upscale", content=png, headers={"Content-Type": "image/png", **headers})
            assert r.status_code == 401 and r.json() == {"error": UNAUTHORIZED}
            assert r.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": f"Bearer {KEY}"}
        assert c.post("/v1/upscale", content=png, headers={"Content-Type": "image/png", **good}).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        assert c.get("/metrics").status_code == 401 and c.get("/metrics", headers=good).status_code == 200
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{server.ws_url}/v1/stream?width=2&height=2")
        assert refused.value.response.status_code == 401
        with connect(f"{server.ws_url}/v1/stream?width=2&height=2", additional_headers=good) as ws:
            ws.send(bytes(12))
            assert len(ws.recv(timeout=30)) == 12 * 16


def test_graceful_shutdown_finishes_in_flight_requests(tmp_path, photo):
    h, w = 120, 160
    frame = np.ascontiguousarray(np.resize(photo, (h, w, 3)))
    body = frame.tobytes()
    with serve(tmp_path, "--models", "x4-fast") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD_S) as sock:
            head = (
                f"POST /v1/frames HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Width: {w}\r\nX-Height: {h}\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
            )
            sock.sendall(head.encode())
            # "100 Continue" comes once the handler asks for the body: the request is in flight, and its
            # body, hence its end, is in the test's hands.
            assert read_head(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"
            server.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: "Waiting for connections to close" in server.log.read_text(), "the drain to begin")
            with pytest.raises(httpx.TransportError):  # draining: no new connections
                httpx.get(f"{server.url}/healthz", timeout=HANG_GUARD_S)
            sock.sendall(body)
            reply = http.client.HTTPResponse(sock)
            reply.begin()
            content = reply.read()
        assert reply.status == 200 and reply.getheader("x-width") == str(4 * w)
        got = np.frombuffer(content, np.uint8).reshape(4 * h, 4 * w, 3).astype(int)
        assert int(np.abs(got - Upscaler("x4-fast", "onnxruntime").upscale(frame)).max()) <= 1
        # uvicorn re-raises the signal once drained, so the exit status says "terminated by SIGTERM".
        assert server.proc.wait(timeout=HANG_GUARD_S) in (0, -signal.SIGTERM)
        assert "Finished server process" in server.log.read_text()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--max-batch-size", "0"], {}, "max_batch_size"),
        (["--api-keys", "short"], {}, "api_keys"),
        ([], {"UPSCALER_PORT": "eighty"}, "UPSCALER_PORT"),
        ([], {"UPSCALER_WARMUP": "maybe"}, "UPSCALER_WARMUP"),
        (["--models", "x4-fast,nope"], {}, "unknown model"),
        (["--backend", "tensorflow"], {}, "backend"),
        (["--precision", "fp64"], {}, "precision must be one of auto, fp32, fp16, int8, got 'fp64'"),
    ],
)
def test_bad_settings_stop_the_start_with_one_line(args, env, message):
    result = run_cli("serve", "--port", "1", *args, env=env, timeout=60)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_precision_auto_is_taken_as_by_the_other_commands(tmp_path):
    """``upscale``, ``video`` and the README say ``--precision auto``: ``serve`` takes it too (each engine's best)."""
    with serve(tmp_path, "--models", "x4-fast", "--precision", "auto") as server, server.client() as c:
        served = c.get("/v1/models").json()["models"][0]
    assert served["precision"] in ("fp32", "int8")  # the CPU's own choice, as 'upscaler info' says


def test_environment_settings_apply(tmp_path):
    env = {"UPSCALER_MODELS": "x2", "UPSCALER_MAX_BATCH_SIZE": "3"}
    with serve(tmp_path, env=env) as server, server.client() as c:
        assert [m["name"] for m in c.get("/v1/models").json()["models"]] == ["x2-fast"]


def test_bad_input_does_not_grow_memory(tmp_path, photo):
    png = encode_image(photo[:64, :64], "png")
    bad = [b"", png[:300], b"\x89PNG\r\n\x1a\n" + bytes(100), png[:100] + bytes(2000)]
    with serve(tmp_path) as server, server.client() as c:

        def burst(n):
            for i in range(n):
                c.post("/v1/upscale", content=bad[i % len(bad)], headers={"Content-Type": "image/png"})
                c.post("/v1/frames", content=bytes(i % 50), headers={"X-Width": "4", "X-Height": "4"})

        burst(100)  # allocator and caches settle
        before = _rss_kb(server.proc.pid)
        burst(400)
        growth_mb = (_rss_kb(server.proc.pid) - before) / 1024
        assert growth_mb < 10, f"resident memory grew {growth_mb:.1f} MB over 800 bad requests"
        assert c.post("/v1/upscale", content=png, headers={"Content-Type": "image/png"}).status_code == 200


def test_deadline_gives_504(photo, caplog):
    frame = np.ascontiguousarray(np.resize(photo, (30, 40, 3)))
    headers = {"X-Width": "40", "X-Height": "30", "X-Request-ID": "slow-one"}
    caplog.set_level(logging.INFO, logger="upscaler.access")
    settings = Settings(models=["x4-fast"], request_timeout_s=0.05, max_batch_size=1, warmup=False)
    with serve_in_thread(settings) as server, server.client() as c:
        gate = server.gate()  # the engine never answers before the deadline, however fast it is
        r = c.post("/v1/frames", content=frame.tobytes(), headers=headers)
        assert r.status_code == 504
        assert r.json()["error"] == {"code": "timeout", "status": 504, "message": "not answered within 0.05 s"}
        gate.open()
        assert c.get("/healthz").status_code == 200
        assert c.post("/v1/frames", content=frame.tobytes(), headers=headers).status_code == 200
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "upscaler.access"]
    assert [e["status"] for e in lines if e["request_id"] == "slow-one"] == [504, 200]


def test_access_log_lines_are_json(tmp_path, photo):
    png = encode_image(photo[:8, :8], "png")
    with serve(tmp_path, "--models", "x2-fast") as server, server.client() as c:
        headers = {"Content-Type": "image/png", "X-Request-ID": "logged-one"}
        assert c.post("/v1/upscale", content=png, headers=headers).status_code == 200
        assert c.get("/v1/nowhere", headers={"X-Request-ID": "lost-one"}).status_code == 404
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    ok = next(entry for entry in lines if entry["request_id"] == "logged-one")
    assert ok["status"] == 200 and ok["path"] == "/v1/upscale" and ok["method"] == "POST" and ok["ms"] >= 0
    assert next(entry for entry in lines if entry["request_id"] == "lost-one")["status"] == 404


def test_readyz_is_503_until_models_are_loaded_and_warm():
    import asyncio

    app = create_app(Settings())  # lifespan not run: nothing loaded yet

    async def ask():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
            return await c.get("/readyz"), await c.post(
                "/v1/frames", content=bytes(3), headers={"X-Width": "1", "X-Height": "1"}
            )

    ready, frames = asyncio.run(ask())
    assert ready.status_code == 503 and ready.json() == {"ready": False}
    assert frames.status_code == 503 and frames.headers["retry-after"] == "1"


def test_an_unhandled_error_is_a_json_500_and_the_server_lives_on():
    app = create_app(Settings(warmup=False))

    @app.get("/v1/broken")
    async def broken():
        raise RuntimeError("a bug in a handler")

    with serve_in_thread(None, app) as server, server.client() as c:
        failed = c.get("/v1/broken", headers={"X-Request-ID": "bug-1"})
        assert failed.status_code == 500 and failed.headers["x-request-id"] == "bug-1"
        assert failed.json() == {"error": {"code": "internal_error", "status": 500, "message": "internal error"}}
        assert c.get("/healthz").status_code == 200
        assert 'upscaler_requests_total{route="other",status="500"} 1.0' in c.get("/metrics").text


def test_a_port_in_use_is_refused_before_any_model_loads(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--models", "x4-fast,x4-quality,x4-temporal", timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr and "--port" in result.stderr
    assert "serving model" not in result.stderr and "warmed up" not in result.stderr  # nothing loaded first
