"""Load against a running service: raw frames over HTTP from N concurrent clients (stdlib only).

Each client thread keeps one connection open and posts frames back to back;
the result holds every latency and status code, and the wall time, so
throughput and tail latency come from the same run.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

__all__ = ["HttpLoad", "compare", "post_frames", "server_rss_bytes"]


@dataclass
class HttpLoad:
    """One load run."""

    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    wall_s: float = 0.0

    def add(self, other: HttpLoad) -> None:
        """Fold another run at the same concurrency into this one."""
        self.latencies_ms += other.latencies_ms
        self.statuses += other.statuses
        self.wall_s += other.wall_s

    def ok_fps(self) -> float:
        """Answered (200) frames per second."""
        return sum(1 for s in self.statuses if s == 200) / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict:
        ok = [t for t, s in zip(self.latencies_ms, self.statuses) if s == 200]
        codes: dict[str, int] = {}
        for s in self.statuses:
            codes[str(s)] = codes.get(str(s), 0) + 1
        return {
            "concurrency": self.concurrency,
            "requests": len(self.statuses),
            "status": codes,
            "fps": round(self.ok_fps(), 1),
            "median_ms": round(float(np.median(ok)), 2) if ok else None,
            "p95_ms": round(float(np.percentile(ok, 95)), 2) if ok else None,
            "p99_ms": round(float(np.percentile(ok, 99)), 2) if ok else None,
            "max_ms": round(float(max(ok)), 2) if ok else None,
            "errors": sum(1 for s in self.statuses if s != 200),
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


def _get(url: str, path: str, headers=None) -> bytes:
    """The body of ``GET path`` on the service at ``url``."""
    conn, base = _connection(url)
    try:
        conn.request("GET", f"{base}{path}", headers=headers or {})
        return conn.getresponse().read()
    finally:
        conn.close()


def server_rss_bytes(url: str, headers=None) -> int | None:
    """The service's resident memory, from its /metrics (None when not exposed)."""
    for line in _get(url, "/metrics", headers).decode().splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return int(float(line.split()[1]))
    return None


def service_threads(url: str, model: str, headers=None) -> int | None:
    """The inference threads the service runs ``model`` with (``/v1/models``; None: not said, or the engine's
    default of one per core)."""
    try:
        served = json.loads(_get(url, "/v1/models", headers))["models"]
    except (ValueError, KeyError, TypeError):
        return None
    match = [m for m in served if m.get("name") == model or model in m.get("aliases", [])] or served[:1]
    return match[0].get("threads") if match else None


def baseline_warnings(rows: list[dict], threads: dict) -> list[str]:
    """Why the in-process baseline may be wrong: the service faster than its own engine by more than noise."""
    fast = [r for r in rows if r.get("throughput_ratio", 0) > 1.1]
    if not fast:
        return []
    worst = max(fast, key=lambda r: r["throughput_ratio"])
    return [
        f"the service ran {worst['throughput_ratio']:.2f}x the in-process engine's frames/s at {worst['concurrency']} "
        f"client(s): a service cannot beat its own engine, so the baseline was slowed (other load on the machine, "
        f"or threads: service {threads['service'] or 'default'}, in-process {threads['in_process'] or 'default'}); "
        "read the ratios with care, or rerun on a quiet machine"
    ]


def compare(
    url: str,
    model: str,
    size: tuple[int, int],
    *,
    concurrency: Sequence[int],
    requests: int,
    rounds: int,
    runs: int,
    backend: str = "onnxruntime",
    threads: int | None = None,
    headers: dict | None = None,
    baseline: bool = True,
) -> dict:
    """The service, and (``baseline``) the same model called in-process, interleaved round by round.

    Each round times ``runs`` in-process ``Upscaler.upscale`` calls, then
    sends its share of ``requests`` frames at each concurrency; ratios and
    latency overheads are taken within a round and their median reported
    (drift on a noisy machine cancels out), beside the aggregate ratio (all
    frames served over all the time they took, against the in-process
    median): where the two disagree, quote both.
    """
    from upscaler.bench import timed
    from upscaler.facade import Upscaler

    w, h = size
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    try:
        server_rss_bytes(url, headers)
    except OSError as exc:
        raise ConnectionError(f"{url}: no service answers there ({exc})") from None
    most = max(concurrency)  # warm-up: every batch size the runs will see
    post_frames(url, frame, concurrency=most, requests=4 * most, model=model, headers=headers)
    rss_before = server_rss_bytes(url, headers)  # after warm-up: growth from here is what a leak would show
    served_threads = service_threads(url, model, headers)
    threads = threads or served_threads  # both sides the same, unless told otherwise
    up = Upscaler(model, backend, tile=0, threads=threads) if baseline else None
    if up is not None:
        timed(lambda: up.upscale(frame), 3)
    shares = [requests // rounds + (1 if i < requests % rounds else 0) for i in range(rounds)]
    sent = _Rounds(concurrency)
    for share in (n for n in shares if n):
        sent.direct(timed(lambda: up.upscale(frame), runs) if up is not None else [])
        for c in concurrency:
            sent.served(c, post_frames(url, frame, concurrency=c, requests=share, model=model, headers=headers))
    rss_after = server_rss_bytes(url, headers)
    rows = sent.rows(baseline=up is not None)
    threads_used = {"service": served_threads, "in_process": threads}
    return {
        "url": url,
        "model": model,
        "size": [w, h],
        "rounds": rounds,
        "threads": threads_used,  #: None: the engine's default (one per core)
        "warnings": baseline_warnings(rows, threads_used) if up is not None else [],
        "direct": sent.direct_summary(up) if up is not None else None,
        "http": rows,
        "service_rss_mb": [round(v / 2**20, 1) if v else None for v in (rss_before, rss_after)],
    }


class _Rounds:
    """``compare``'s tallies: in-process call times, and per concurrency the loads and per-round figures."""

    def __init__(self, concurrency: Sequence[int]) -> None:
        self.times: list[float] = []
        self.last_ms: float | None = None
        self.loads = {c: HttpLoad(c) for c in concurrency}
        self.ratios: dict[int, list[float]] = {c: [] for c in concurrency}
        self.overheads: dict[int, list[float]] = {c: [] for c in concurrency}

    def direct(self, times: list[float]) -> None:
        """This round's in-process call times (ms)."""
        self.times += times
        self.last_ms = float(np.median(times)) if times else None

    def served(self, c: int, load) -> None:
        """This round's load at concurrency ``c``, against this round's in-process median."""
        self.loads[c].add(load)
        if self.last_ms is not None:
            self.ratios[c].append(load.ok_fps() * self.last_ms / 1000.0)
            ok = [t for t, s in zip(load.latencies_ms, load.statuses) if s == 200]
            self.overheads[c].append(float(np.median(ok)) - self.last_ms if ok else float("nan"))

    def rows(self, baseline: bool) -> list[dict]:
        """One row per concurrency: the load's summary and, with a baseline, both throughput ratios."""
        out = []
        for c, load in self.loads.items():
            row = load.summary()
            if baseline:
                direct_fps = 1000.0 / float(np.median(self.times))
                row["throughput_ratio"] = round(float(np.median(self.ratios[c])), 3)  # median of per-round ratios
                row["aggregate_throughput_ratio"] = round(load.ok_fps() / direct_fps, 3)  # all rounds together
                row["median_overhead_ms"] = round(float(np.median(self.overheads[c])), 2)
                row["rounds"] = {"throughput_ratio": [round(r, 3) for r in self.ratios[c]]}
            out.append(row)
        return out

    def direct_summary(self, up) -> dict:
        """The in-process side: model, engine, median call time and the rate it makes."""
        direct_ms = float(np.median(self.times))
        return {"model": up.model.name, "engine": up.engine.name, "median_ms": round(direct_ms, 2),
                "fps": round(1000.0 / direct_ms, 1), "calls": len(self.times)}  # fmt: skip
