"""The service under operations: overload, auth, graceful shutdown, settings, memory on bad input."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import run_cli
from tests.server_helpers import serve
from upscaler.io import encode_image

KEY = "test-key-0123456789abcdef"


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))


def test_overload_gets_503_with_retry_after_and_nothing_hangs(tmp_path, photo):
    frame = np.ascontiguousarray(np.resize(photo, (160, 200, 3)))
    headers = {"X-Width": "200", "X-Height": "160"}
    with serve(tmp_path, "--max-queue", "2", "--max-batch-size", "1", "--max-batch-delay-ms", "0") as server:

        def one(_):
            with server.client() as c:
                return c.post("/v1/frames", content=frame.tobytes(), headers=headers)

        with ThreadPoolExecutor(12) as pool:
            replies = list(pool.map(one, range(24)))
        codes = [r.status_code for r in replies]
        assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) >= 2
        for r in replies:
            if r.status_code == 503:
                assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "overloaded"
        with server.client() as c:  # and it recovers
            assert c.post("/v1/frames", content=frame.tobytes(), headers=headers).status_code == 200


def test_api_keys_guard_everything_but_the_open_endpoints(tmp_path, photo):
    png = encode_image(photo[:8, :8], "png")
    with serve(tmp_path, "--api-keys", KEY, "--no-open-metrics") as server, server.client() as c:
        for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": KEY}):
            r = c.post("/v1/upscale", content=png, headers={"Content-Type": "image/png", **headers})
            assert r.status_code == 401 and r.json() == {"error": {"code": "unauthorized", "message": "unauthorized"}}
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
    frame = np.ascontiguousarray(np.resize(photo, (300, 400, 3)))
    headers = {"X-Width": "400", "X-Height": "300"}
    with serve(tmp_path) as server:
        results = {}

        def slow():
            with server.client() as c:
                results["reply"] = c.post("/v1/frames", content=frame.tobytes(), headers=headers)

        worker = threading.Thread(target=slow)
        worker.start()
        time.sleep(0.15)  # the request is in flight
        server.proc.send_signal(signal.SIGTERM)
        worker.join(timeout=60)
        assert results["reply"].status_code == 200 and len(results["reply"].content) == 1600 * 1200 * 3
        # uvicorn re-raises the signal once drained, so the exit status says "terminated by SIGTERM".
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Finished server process" in server.log.read_text()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/healthz", timeout=2)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--max-batch-size", "0"], {}, "max_batch_size"),
        (["--api-keys", "short"], {}, "api_keys"),
        ([], {"UPSCALER_PORT": "eighty"}, "UPSCALER_PORT"),
        ([], {"UPSCALER_WARMUP": "maybe"}, "UPSCALER_WARMUP"),
        (["--models", "x4-fast,nope"], {}, "unknown model"),
        (["--backend", "tensorflow"], {}, "backend"),
    ],
)
def test_bad_settings_stop_the_start_with_one_line(args, env, message):
    result = run_cli("serve", "--port", "1", *args, env=env, timeout=60)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


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


def test_deadline_gives_504_and_access_log_lines_are_json(tmp_path, photo):
    import json

    frame = np.ascontiguousarray(np.resize(photo, (300, 400, 3)))
    headers = {"X-Width": "400", "X-Height": "300", "X-Request-ID": "slow-one"}
    with serve(tmp_path, "--request-timeout-s", "0.001", "--max-batch-size", "1") as server, server.client() as c:
        r = c.post("/v1/frames", content=frame.tobytes(), headers=headers)
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        assert c.get("/healthz").status_code == 200
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    slow = next(entry for entry in lines if entry["request_id"] == "slow-one")
    assert slow["status"] == 504 and slow["path"] == "/v1/frames" and slow["ms"] >= 0


def test_readyz_is_503_until_models_are_loaded_and_warm():
    import asyncio

    from server.app import create_app
    from server.settings import Settings

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
    import uvicorn

    from server.app import create_app
    from server.settings import Settings
    from tests.server_helpers import free_port

    app = create_app(Settings(warmup=False))

    @app.get("/v1/broken")
    async def broken():
        raise RuntimeError("a bug in a handler")

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.config.port}"
        failed = httpx.get(f"{url}/v1/broken", headers={"X-Request-ID": "bug-1"})
        assert failed.status_code == 500 and failed.headers["x-request-id"] == "bug-1"
        assert failed.json() == {"error": {"code": "internal_error", "message": "internal error"}}
        assert httpx.get(f"{url}/healthz").status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
        assert 'upscaler_requests_total{route="other",status="500"} 1.0' in metrics
    finally:
        server.should_exit = True
        thread.join(timeout=30)
