"""Slow and vanishing clients, against a real ``upscaler serve``: a client that leaves is counted as 499 (not
500) in one log line; stalled bodies get 408 and the connection closes; so do headers that never finish."""

from __future__ import annotations

import json
import socket

import pytest

from tests.server_helpers import HANG_GUARD_S, metric, read_until_closed, serve, wait_until


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    """Default read timeouts (10 s): a client that leaves does so long before any of them."""
    with serve(tmp_path_factory.mktemp("patient"), "--models", "x4-fast") as running:
        yield running


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    args = ("--models", "x4-fast", "--body-timeout-s", "0.5", "--header-timeout-s", "0.5")
    with serve(tmp_path_factory.mktemp("strict"), *args) as running:
        yield running


def _partial(port: int, declared: int, sent: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S)
    head = f"POST /v1/frames HTTP/1.1\r\nHost: x\r\nX-Width: 4\r\nX-Height: 4\r\nContent-Length: {declared}\r\n\r\n"
    sock.sendall(head.encode() + bytes(sent))
    return sock


def test_clients_that_leave_mid_body_are_499s_not_500s(patient):
    with patient.client() as c:
        for _ in range(20):
            _partial(patient.port, 1000, 100).close()
        wait_until(lambda: metric(c, "upscaler_requests_total", route="/v1/frames", status="499") == 20, "twenty 499s")
        assert metric(c, "upscaler_client_disconnects_total", route="/v1/frames") == 20
        assert metric(c, "upscaler_requests_total", route="/v1/frames", status="500") == 0
        assert c.get("/healthz").status_code == 200
    log = patient.log.read_text()
    assert "Traceback" not in log and "unhandled error" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert sum(entry["status"] == 499 and entry["path"] == "/v1/frames" for entry in lines) == 20


def _response(data: bytes) -> tuple[str, dict[str, str], dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    status, *fields = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    return status, headers, json.loads(body)


def test_a_stalled_body_gets_408_and_the_connection_closes(strict):
    sock = _partial(strict.port, 1_000_000, 100)
    with sock:
        status, headers, body = _response(read_until_closed(sock))  # returns only once the server closes
    assert status.startswith("HTTP/1.1 408") and headers["connection"] == "close"
    assert body["error"]["code"] == "request_timeout" and body["error"]["status"] == 408


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "half-headers"])
def test_headers_that_never_finish_get_408_and_the_connection_closes(strict, sent):
    socks = [socket.create_connection(("127.0.0.1", strict.port), timeout=HANG_GUARD_S) for _ in range(20)]
    for sock in socks:
        sock.sendall(sent)
    for sock in socks:
        with sock:
            status, headers, body = _response(read_until_closed(sock))
        assert status.startswith("HTTP/1.1 408") and headers["connection"] == "close"
        assert body["error"]["status"] == 408


def test_keep_alive_requests_still_work_under_the_header_timeout(strict):
    with strict.client() as c:
        for _ in range(3):
            assert c.get("/healthz").status_code == 200
