"""``upscaler serve --ray``: the service as Ray Serve replicas on a real local cluster (a head node that runs
Serve's controller and proxy, and a worker node that runs the replicas,
their own raylets, on loopback), against the same service in one process.

Replicas: 2, CPU only. The cluster's proxies get ``server.ray_serve.proxy_middlewares`` by environment, as the
README tells a cluster's operator to start it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from server.ray_serve import LOST_CODE, PROXY_CALLBACK
from tests.server_helpers import HANG_GUARD_S, serve, wait_until
from tests.video_helpers import ray_cluster
from upscaler.bench.http import post_frames
from upscaler.client import StreamClient, StreamError
from upscaler.io import encode_image

pytest.importorskip("ray.serve")

KEY = "r" * 24
COMMON = ["--models", "x4-fast,x4-temporal", "--threads", "1", "--api-keys", KEY, "--max-batch-delay-ms", "0"]
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def cluster():
    env = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": PROXY_CALLBACK}
    with ray_cluster(head_cpus=0, workers=1, worker_cpus=2, env=env) as (address, auth):
        yield address, auth


@pytest.fixture(scope="module")
def on_ray(cluster, tmp_path_factory):
    address, auth = cluster
    ray_args = ["--ray", address, "--replicas", "2", "--proxy-location", "HeadOnly"]
    with serve(tmp_path_factory.mktemp("ray"), *COMMON, *ray_args, env=auth, ready_timeout=300) as running:
        wait_until(lambda: len(replica_pids(running.url)) == 2, "both replicas to answer")
        yield running


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("one"), *COMMON) as running:
        yield running


def replica_pids(url: str, tries: int = 24) -> dict[str, int]:
    """Replica id -> process id, from ``/healthz`` asked ``tries`` times (the proxy spreads them)."""
    seen = {}
    for _ in range(tries):
        body = httpx.get(f"{url}/healthz", timeout=30).json()
        seen[body["replica"]["id"]] = body["replica"]["pid"]
    return seen


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(n)]


def test_responses_are_byte_identical_to_one_process(on_ray, single):
    image = encode_image(frames(1)[0], "png")
    raw = frames(1, 1)[0]
    for url in (on_ray.url, single.url):  # both warm, so neither answer depends on order
        httpx.post(f"{url}/v1/upscale", content=image, headers={**AUTH, "Content-Type": "image/png"}, timeout=60)

    def answers(url: str) -> list[bytes]:
        png = httpx.post(f"{url}/v1/upscale", content=image, headers={**AUTH, "Content-Type": "image/png"}, timeout=60)
        sent = {**AUTH, "X-Width": "32", "X-Height": "24", "X-Format": "rgb24"}
        frame = httpx.post(f"{url}/v1/frames?model=x4-fast", content=raw.tobytes(), headers=sent, timeout=60)
        assert png.status_code == frame.status_code == 200, (png.text, frame.text)
        return [png.content, frame.content]

    assert answers(on_ray.url) == answers(single.url)


def test_streams_are_byte_identical_to_one_process(on_ray, single):
    def replies(url: str) -> list[bytes]:
        with StreamClient(url, width=32, height=24, api_key=KEY) as stream:
            return [stream.send(f, jitter=(0.25 * i - 0.4, 0.1)).tobytes() for i, f in enumerate(frames(4))]

    assert replies(on_ray.url) == replies(single.url)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/v1/upscale", {"content": b"png?", "headers": {"Content-Type": "image/png"}}, 401),  # no key
        ("post", "/v1/upscale", {"content": b"not an image", "headers": {**AUTH, "Content-Type": "image/png"}}, 400),
        ("post", "/v1/upscale?model=x9-none", {"content": b"x", "headers": {**AUTH, "Content-Type": "image/png"}}, 404),
        ("get", "/v1/nothing-here", {"headers": AUTH}, 404),
        ("get", "/v1/models", {"headers": AUTH}, 200),
        ("get", "/readyz", {}, 200),
    ],
)
def test_routes_limits_and_errors_answer_as_one_process(on_ray, single, method, path, kwargs, status):
    ours, theirs = (getattr(httpx, method)(f"{s.url}{path}", timeout=60, **kwargs) for s in (on_ray, single))
    assert ours.status_code == theirs.status_code == status, (ours.text, theirs.text)
    assert ours.json() == theirs.json()


def test_a_stream_refused_by_auth_is_refused_the_same_way(on_ray):
    with pytest.raises(StreamError) as refused:
        StreamClient(on_ray.url, width=32, height=24, api_key="wrong" * 5)
    assert refused.value.status == 401 and refused.value.code == "unauthorized"


def test_metrics_answer_for_every_replica(on_ray):
    text = httpx.get(f"{on_ray.url}/metrics", timeout=60).text
    labelled = {line.split('replica="')[1].split('"')[0] for line in text.splitlines() if 'replica="' in line}
    assert labelled == set(replica_pids(on_ray.url))
    assert "upscaler_requests_total{" in text and "process_resident_memory_bytes{" in text


def streams_on_both(url: str) -> dict[str, StreamClient]:
    """One open stream on each replica (opening more until both have one; the spares are closed)."""
    held: dict[str, StreamClient] = {}
    for _ in range(16):
        stream = StreamClient(url, width=32, height=24, api_key=KEY, timeout=60)
        if stream.replica in held:
            stream.close()
        else:
            held[stream.replica] = stream
        if len(held) == 2:
            return held
    raise AssertionError("16 streams all went to one replica")


def test_a_killed_replica_loses_only_its_own_work_and_the_service_recovers(on_ray):
    pids = replica_pids(on_ray.url)
    streams = streams_on_both(on_ray.url)
    (victim, lost), (_, kept) = sorted(streams.items())
    for stream in streams.values():
        stream.send(frames(1)[0])
    load: list = []
    frame = frames(1, 2)[0]

    def run_load() -> None:
        load.append(post_frames(on_ray.url, frame, concurrency=2, requests=120, model="x4-fast", headers=AUTH))

    loader = threading.Thread(target=run_load)
    loader.start()
    time.sleep(0.5)
    os.kill(pids[victim], signal.SIGKILL)
    killed_at = time.monotonic()
    with pytest.raises(StreamError) as closed:  # the stream on the lost replica: a clear close, not a hang
        for f in frames(3):
            lost.send(f)
    assert (closed.value.code, closed.value.status) == ("closed", LOST_CODE)
    assert "reconnect" in closed.value.message
    for f in frames(5, 3):  # the other replica's stream goes on, frame after frame
        assert kept.send(f).shape == (96, 128, 3)
    loader.join(HANG_GUARD_S)
    statuses = load[0].statuses
    assert set(statuses) <= {200, 500}, statuses  # 500: replica_lost, from the proxy (below)
    assert statuses.count(200) >= len(statuses) - 2 * 2, statuses  # at most what was in flight there, twice over
    wait_until(lambda: len(replica_pids(on_ray.url)) == 2 and victim not in replica_pids(on_ray.url),
               "Serve to replace the killed replica")  # fmt: skip
    assert time.monotonic() - killed_at < HANG_GUARD_S
    lost.reconnect()  # a new connection, a new history: the first frame is sent with reset
    assert lost.replica != victim and lost.send(frames(1)[0]).shape == (96, 128, 3)
    for stream in (lost, kept):
        stream.close()


# --------------------------------------------------------------------------- the proxy middleware alone


def _proxy_app(status: int, replica_header: bool):
    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            await receive()  # connect
            await send({"type": "websocket.accept", "headers": []})
            await receive()  # the first frame; then "the replica dies": return without a close
            return
        headers = [(b"content-type", b"text/plain")] + ([(b"x-upscaler-replica", b"r1")] if replica_header else [])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"Internal Server Error"})

    return app


def _drive(app, scope_type: str, incoming: list[dict]) -> list[dict]:
    """Run an ASGI app once: ``incoming`` are what it receives, in order; what it sends comes back."""
    import asyncio

    sent, queue = [], list(incoming)

    async def receive():
        return queue.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": scope_type, "path": "/v1/x", "headers": []}, receive, send))
    return sent


@pytest.mark.parametrize(("status", "code"), [(500, "replica_lost"), (503, "overloaded"), (408, "request_timeout")])
def test_the_proxy_gives_its_own_errors_the_service_shape(status, code):
    from server.ray_serve import ProxyErrors

    request = [{"type": "http.request", "body": b"", "more_body": False}]
    start, body = _drive(ProxyErrors(_proxy_app(status, replica_header=False)), "http", request)
    assert start["status"] == status and (b"content-type", b"application/json") in start["headers"]
    assert json.loads(body["body"]) == {"error": {"code": code, "status": status, "message": body_message(body)}}
    start, body = _drive(ProxyErrors(_proxy_app(status, replica_header=True)), "http", request)
    assert start["status"] == status and body["body"] == b"Internal Server Error"  # a replica's own: untouched


def body_message(body: dict) -> str:
    message = json.loads(body["body"])["error"]["message"]
    assert message and "Internal Server Error" not in message
    return message


def test_the_proxy_closes_a_stream_whose_replica_went_away_with_1011():
    from server.ray_serve import LOST_REASON, ProxyErrors

    incoming = [{"type": "websocket.connect"}, {"type": "websocket.receive", "bytes": b"frame"}]
    accept, close = _drive(ProxyErrors(_proxy_app(200, True)), "websocket", incoming)
    assert accept["type"] == "websocket.accept"
    assert close == {"type": "websocket.close", "code": LOST_CODE, "reason": LOST_REASON}


def test_the_proxy_leaves_a_stream_the_replica_closed_alone():
    from server.ray_serve import ProxyErrors

    async def closes(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept", "headers": []})
        await send({"type": "websocket.close", "code": 1008, "reason": "bad parameters"})

    sent = _drive(ProxyErrors(closes), "websocket", [{"type": "websocket.connect"}])
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"] and sent[1]["code"] == 1008


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--replicas", "2"], "--replicas needs --ray"),
        (["--replica-gpus", "1"], "--replica-gpus needs --ray"),
        (["--ray", "--replicas", "0"], "--replicas must be at least 1"),
        (["--ray", "--min-replicas", "1"], "both --min-replicas and --max-replicas"),
        (["--ray", "--replicas", "2", "--max-replicas", "3"], "either --replicas N, or both"),
        (["--ray", "--min-replicas", "3", "--max-replicas", "2"], "0 <= --min-replicas <= --max-replicas"),
        (["--ray", "--replica-cpus", "0"], "not both 0"),
    ],
)
def test_bad_replica_flags_are_one_line_errors_before_anything_starts(flags, message):
    from tests.conftest import run_cli

    result = run_cli("serve", *flags, timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
