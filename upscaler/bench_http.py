"""Load against a running service: raw frames over HTTP from N concurrent clients (stdlib only).

Each client thread keeps one connection open and posts frames back to back;
the result holds every latency and status code, and the wall time, so
throughput and tail latency come from the same run.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

__all__ = ["HttpLoad", "post_frames", "server_rss_bytes"]


@dataclass
class HttpLoad:
    """One load run."""

    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict:
        ok = [t for t, s in zip(self.latencies_ms, self.statuses) if s == 200]
        codes: dict[str, int] = {}
        for s in self.statuses:
            codes[str(s)] = codes.get(str(s), 0) + 1
        return {
            "concurrency": self.concurrency,
            "requests": len(self.statuses),
            "status": codes,
            "fps": round(len(ok) / self.wall_s, 1) if self.wall_s else 0.0,
            "median_ms": round(float(np.median(ok)), 2) if ok else None,
            "p95_ms": round(float(np.percentile(ok, 95)), 2) if ok else None,
            "server_errors": sum(1 for s in self.statuses if s >= 500 and s != 503),
        }


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=120), parts.path.rstrip("/")


def post_frames(
    url: str, frame: np.ndarray, *, concurrency: int, requests: int, model: str | None = None, headers=None
) -> HttpLoad:
    """POST ``frame`` (HxWx3 uint8 RGB) to ``url``/v1/frames ``requests`` times from ``concurrency`` clients."""
    body = np.ascontiguousarray(frame).tobytes()
    sent = {"X-Width": str(frame.shape[1]), "X-Height": str(frame.shape[0]), "X-Format": "rgb24", **(headers or {})}
    result = HttpLoad(concurrency)
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        conn, base = _connection(url)
        path = f"{base}/v1/frames" + (f"?model={model}" if model else "")
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            start = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=sent)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0  # connection-level failure
                conn.close()
                conn, _ = _connection(url)
            elapsed = (time.perf_counter() - start) * 1000.0
            with lock:
                result.latencies_ms.append(elapsed)
                result.statuses.append(status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.wall_s = time.perf_counter() - started
    return result


def server_rss_bytes(url: str, headers=None) -> int | None:
    """The service's resident memory, from its /metrics (None when not exposed)."""
    conn, base = _connection(url)
    try:
        conn.request("GET", f"{base}/metrics", headers=headers or {})
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return int(float(line.split()[1]))
    return None
