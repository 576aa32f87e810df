"""Start and stop services on loopback for the service tests: real ``upscaler serve`` processes, or the
application under uvicorn in a thread of the test process, where a test can hold the engine (``Gate``) to
put requests in flight or in the queue deterministically, whatever the machine's speed."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import cli_command

#: How long a wait on a condition may take before the test fails: a guard against hangs, never a pace.
HANG_GUARD_S = 120.0


def wait_until(condition: Callable[[], object], what: str, timeout: float = HANG_GUARD_S) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it has not within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.005)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """A service process and its base URL."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kw)

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextmanager
def serve(tmp: Path, *args: str, env: dict | None = None, ready_timeout: float = 120):
    """Run ``upscaler serve`` with ``args`` until the block ends (then SIGTERM), yielding a RunningServer."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [*cli_command(), "serve", "--port", str(port), *args], stdout=fh, stderr=subprocess.STDOUT, env=full_env
        )
    server = RunningServer(proc, port, log)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in {ready_timeout} s:\n{log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Gate:
    """A batch function that holds every engine call until ``open()`` (or ``allow(n)``): requests stay running
    or queued.

    ``calls`` records each call's batch size, ``keys`` its batcher key and ``pixels`` how many input pixels it
    was given; ``entered`` is set once the first call is inside.
    """

    def __init__(self, run_batch: Callable[[Hashable, Sequence[Any]], Sequence[Any]]) -> None:
        self.run_batch = run_batch
        self.entered = threading.Event()
        self._open = threading.Event()
        self._cond = threading.Condition()
        self._permits = 0
        self.calls: list[int] = []
        self.keys: list[Hashable] = []
        self.pixels: list[int] = []

    def __call__(self, key: Hashable, items: Sequence[Any]) -> Sequence[Any]:
        self.calls.append(len(items))
        self.keys.append(key)
        self.pixels.append(sum(_pixels(item) for item in items))
        self.entered.set()
        with self._cond:
            held = self._cond.wait_for(lambda: self._open.is_set() or self._permits > 0, HANG_GUARD_S)
            if not held:
                raise TimeoutError("the test never opened the gate")
            if not self._open.is_set():
                self._permits -= 1
        return self.run_batch(key, items)

    def open(self) -> None:
        """Let the held call and every later one through."""
        with self._cond:
            self._open.set()
            self._cond.notify_all()

    def allow(self, n: int = 1) -> None:
        """Let ``n`` more calls through (held ones first), the rest stay held."""
        with self._cond:
            self._permits += n
            self._cond.notify_all()

    def wait_calls(self, n: int) -> None:
        """Wait until the ``n``-th engine call has come to the gate (held there unless let through)."""
        wait_until(lambda: len(self.calls) >= n, f"engine call {n} to reach the gate")


def _pixels(item: Any) -> int:
    """Input pixels in one batcher item: an ``H x W (x C)`` image or an ``N x C x H x W`` tile batch."""
    shape = getattr(item, "shape", ())
    if len(shape) == 4:
        return shape[0] * shape[2] * shape[3]
    return shape[0] * shape[1] if len(shape) >= 2 else 0


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """The value of one sample in ``/metrics`` (0 if absent), e.g. ``metric(c, "upscaler_requests_total",
    route="/v1/upscale", status="499")``."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{want}}}" if labels else name
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(head + " "):
            return float(line.split()[-1])
    return 0.0


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_head(sock: socket.socket) -> bytes:
    """Bytes up to and including the first blank line (one response head), however TCP splits them."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)  # byte by byte: nothing of the next response is taken from the socket
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def abort(sock: socket.socket) -> None:
    """Close ``sock`` with a reset, as a client that crashes or is killed does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class InProcessServer:
    """The application under uvicorn in a thread of this process, its base URL and its ``Service``."""

    def __init__(self, url: str, service: Any) -> None:
        self.url, self.service = url, service

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=HANG_GUARD_S, **kw)

    def gate(self) -> Gate:
        """Put a ``Gate`` in front of the engine (the batcher looks its batch function up for every batch)."""
        gate = Gate(self.service.batcher.run_batch)
        self.service.batcher.run_batch = gate
        return gate


@contextmanager
def serve_in_thread(settings: Any, app: Any = None) -> Iterator[InProcessServer]:
    """Serve ``create_app(settings)`` (or ``app``) on a free loopback port until the block ends."""
    import uvicorn

    from server.app import create_app

    app = app or create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)  # not the main thread: no signal handlers
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), "the in-process server to start")
        assert server.started, "the in-process server did not start"
        yield InProcessServer(f"http://127.0.0.1:{server.config.port}", app.state.service)
    finally:
        server.should_exit = True
        thread.join(timeout=HANG_GUARD_S)
