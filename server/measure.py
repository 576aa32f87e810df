"""Measure what bounds one request's cost, against a real ``upscaler serve`` on loopback.

``python -m server.measure [--model x4-fast] [--trials 5] [--shutdown-timeout-s 5] [--json PATH]`` prints JSON
(and with ``--json`` also writes it to PATH, with the machine, the command line and the time):

- ``small_ms``: a small request's latency (64x64 PNG to ``/v1/upscale``) when idle, and while the largest
  accepted request (a square image of ``--max-pixels`` output pixels) runs, with that request's own latency;
- ``memory_mb``: the service's peak resident memory (``VmHWM``) once ready and after the largest requests;
- ``shutdown``: seconds from SIGTERM to exit with 9 of the largest requests in flight, and their statuses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from server.settings import Settings
from upscaler.io import encode_image
from upscaler.models import get_model
from upscaler.sysinfo import machine_info

__all__ = ["main", "memory_mb", "metric", "serve_process", "settled_rss_mb"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_process(*args: str, log: Path | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """``upscaler serve *args`` on a free loopback port, once ready: (process, base URL); killed at the end.
    Its log (stderr) goes to ``log``, or nowhere."""
    port = _port()
    exe = Path(sys.executable).with_name("upscaler")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "upscaler"]
    with open(log or os.devnull, "w") as sink:
        proc = subprocess.Popen([*command, "serve", "--port", str(port), "--no-access-log", *args], stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"upscaler serve exited with {proc.returncode}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A process's peak (``VmHWM``) or current (``VmRSS``) resident memory, MB."""
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":")) / 1024


def settled_rss_mb(pid: int, timeout: float = 20.0) -> float:
    """A process's resident MB once five readings 50 ms apart agree (what it frees in the background, such as
    the release after a service's last stream, has happened), or after ``timeout`` s."""
    seen = [memory_mb(pid, "VmRSS")]
    deadline = time.monotonic() + timeout
    while (len(seen) < 5 or len(set(seen[-5:])) > 1) and time.monotonic() < deadline:
        time.sleep(0.05)
        seen.append(memory_mb(pid, "VmRSS"))
    return seen[-1]


def metric(client: httpx.Client, name: str) -> float:
    """The value of an unlabelled sample in ``/metrics`` (0 if absent)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _post(url: str, body: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    r = httpx.post(url + "/v1/upscale", content=body, headers={"Content-Type": "image/png"}, timeout=600)
    return r.status_code, time.perf_counter() - started


def _largest(model: str) -> tuple[int, bytes]:
    scale = get_model(model).scale
    side = math.isqrt(Settings().max_pixels // scale**2)
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return side, encode_image(image, "png")


def _latency(model: str, trials: int) -> dict:
    side, big = _largest(model)
    small = encode_image(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8), "png")
    with serve_process("--models", model) as (proc, url), httpx.Client(base_url=url) as c:
        idle = [_post(url, small)[1] for _ in range(10)]
        ready_mb = memory_mb(proc.pid)
        during, bigs = [], []
        for _ in range(trials):
            tiles = metric(c, "upscaler_tiles_total")
            outcome: dict = {}
            thread = threading.Thread(target=lambda out=outcome: out.update(big=_post(url, big)))
            thread.start()
            while metric(c, "upscaler_tiles_total") == tiles:  # until the large one is in the engine
                time.sleep(0.01)
            while "big" not in outcome:  # small requests, one after another, for as long as it runs
                status, seconds = _post(url, small)
                if "big" not in outcome and status == 200:
                    during.append(seconds)
            thread.join()
            bigs.append(outcome["big"][1])
        peak_mb = memory_mb(proc.pid)
    return {
        "model": model,
        "largest_input": f"{side}x{side}",
        "small_ms": {
            "idle_median": round(statistics.median(idle) * 1000, 1),
            "during_largest_median": round(statistics.median(during) * 1000, 1),
            "during_largest_max": round(max(during) * 1000, 1),
            "answered_during_largest": len(during),
        },
        "largest_s": {"median": round(statistics.median(bigs), 2), "max": round(max(bigs), 2)},
        "memory_mb": {"peak_when_ready": round(ready_mb), "peak_after_largest": round(peak_mb)},
    }


def _shutdown(model: str, timeout: float, count: int = 9) -> dict:
    _, big = _largest(model)
    with (
        serve_process("--models", model, "--shutdown-timeout-s", str(timeout)) as (proc, url),
        httpx.Client(base_url=url) as c,
    ):
        results: list[int] = []

        def one() -> None:
            try:
                results.append(_post(url, big)[0])
            except httpx.TransportError:
                results.append(0)

        threads = [threading.Thread(target=one) for _ in range(count)]
        for t in threads:
            t.start()
        while metric(c, "upscaler_large_requests") < count:  # all in flight: one running, the rest in line
            time.sleep(0.01)
        signalled = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        exited = time.perf_counter() - signalled
        for t in threads:
            t.join()
    return {"timeout_s": timeout, "in_flight": count, "exit_s": round(exited, 2), "statuses": dict(Counter(results))}


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print them as JSON."""
    parser = argparse.ArgumentParser(prog="python -m server.measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="x4-fast", help="the model to measure (default: x4-fast)")
    parser.add_argument("--trials", type=int, default=5, help="largest requests for the latency figures")
    parser.add_argument("--shutdown-timeout-s", type=float, default=5.0, help="the shutdown timeout to measure")
    parser.add_argument(
        "--json", metavar="PATH", type=Path, help="also write the figures, the machine and the command line to PATH"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    report = _latency(args.model, args.trials)
    report["shutdown"] = _shutdown(args.model, args.shutdown_timeout_s)
    print(json.dumps(report, indent=2))
    if args.json is not None:
        record = {
            "harness": "python -m server.measure",
            "argv": sys.argv[1:] if argv is None else list(argv),
            "measured": started.isoformat(timespec="seconds"),
            "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
            "machine": machine_info(),
            "load_average": {
                "before": [round(x, 2) for x in load_before],
                "after": [round(x, 2) for x in os.getloadavg()],
            },
            "environment": {k: v for k, v in os.environ.items() if k in ("UPSCALER_CPU_PRECISION", "OMP_NUM_THREADS")},
            **report,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
