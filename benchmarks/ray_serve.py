"""The service on Ray Serve replicas against the same service in one process, side by side in one run.

    python benchmarks/ray_serve.py --json benchmarks/results/ray-serve-x4-fast.json

Starts a local Ray head (``ray start``, this machine's cores), the one-process service (``upscaler serve``,
``--threads`` = cores) and ``upscaler serve --ray`` with 1 replica (all cores) and then 2 replicas (a core
each), one deployment at a time. For each, rounds interleave the same raw-frame load (``POST /v1/frames``,
``upscaler.bench.http.post_frames``) on the one process and on Serve at each concurrency; reported per
concurrency: frames/s (aggregate over all rounds) and median latency of each, and their ratios. Then, with 2
replicas, it kills one replica's process (SIGKILL) ``--kills`` times and times how long until Serve answers
from two live replicas again.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from server.ray_serve import PROXY_CALLBACK
from upscaler.bench.http import HttpLoad, post_frames
from upscaler.bench.report import emit_json
from upscaler.sysinfo import machine_info

BIN = Path(sys.executable).parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _process(args: list[str], env: dict, port: int, log: Path):
    """``upscaler serve ARGS`` on ``port`` until the block ends; waits for ``/readyz``."""
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(BIN / "upscaler"), "serve", "--port", str(port), *args], env=env, stdout=fh,
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not _ready(f"http://127.0.0.1:{port}"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"service on {port} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _replicas(url: str, tries: int = 24) -> dict[str, int]:
    seen = {}
    for _ in range(tries):
        try:
            body = httpx.get(f"{url}/healthz", timeout=5).json()
        except (httpx.TransportError, ValueError):
            continue
        if "replica" in body:
            seen[body["replica"]["id"]] = body["replica"]["pid"]
    return seen


def _side_by_side(urls: dict[str, str], frame: np.ndarray, concurrency: list[int], requests: int, rounds: int):
    """Interleaved rounds of the same load on each service; ``{name: {c: HttpLoad}}``."""
    loads = {name: {c: HttpLoad(c) for c in concurrency} for name in urls}
    for url in urls.values():  # warm-up: every batch size and connection the runs will see
        post_frames(url, frame, concurrency=max(concurrency), requests=8 * max(concurrency), model="x4-fast")
    for _ in range(rounds):
        for c in concurrency:
            for name, url in urls.items():
                loads[name][c].add(post_frames(url, frame, concurrency=c, requests=requests // rounds, model="x4-fast"))
    return loads


def _compare(loads: dict, ours: str, peer: str) -> list[dict]:
    rows = []
    for c, load in loads[ours].items():
        mine, theirs = load.summary(), loads[peer][c].summary()
        rows.append({
            "concurrency": c, ours: mine, peer: theirs,
            "fps_ratio": round(mine["fps"] / theirs["fps"], 3) if theirs["fps"] else None,
            "median_overhead_ms": round(mine["median_ms"] - theirs["median_ms"], 2),
        })  # fmt: skip
    return rows


def _recovery(url: str, kills: int) -> list[float]:
    """Seconds from a replica's SIGKILL until two live replicas (the killed one replaced) answer again."""
    times = []
    for _ in range(kills):
        pids = _replicas(url)
        victim = sorted(pids)[0]
        os.kill(pids[victim], signal.SIGKILL)
        killed = time.monotonic()
        while True:
            now = _replicas(url, tries=8)
            if len(now) == 2 and victim not in now:
                break
            if time.monotonic() - killed > 300:
                raise RuntimeError("Serve did not replace the killed replica within 300 s")
        times.append(round(time.monotonic() - killed, 2))
        time.sleep(2)
    return times


@contextmanager
def _ray_head(cores: int):
    ray = str(BIN / "ray")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": PROXY_CALLBACK}  # fmt: skip
    port = _free_port()
    subprocess.run([ray, "start", "--head", f"--port={port}", f"--num-cpus={cores}", "--include-dashboard=false"],
                   check=True, env=env, capture_output=True)  # fmt: skip
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)


def _layouts(cores: int) -> dict[str, list[str]]:
    half = str(max(1, cores // 2))
    return {"1 replica": ["--replicas", "1", "--replica-cpus", str(cores), "--threads", str(cores)],
            "2 replicas": ["--replicas", "2", "--replica-cpus", str(cores / 2), "--threads", half]}  # fmt: skip


def _measure(args, frame: np.ndarray, report: dict) -> None:
    cores = os.cpu_count() or 1
    common = ["--models", "x4-fast", "--max-batch-delay-ms", "0", "--no-access-log"]
    with _ray_head(cores) as (address, env), _process([*common, "--threads", str(cores)], env, _free_port(),
                                                      args.log_dir / "one.log") as one:  # fmt: skip
        port = _free_port()  # one for both layouts: Serve's proxies keep the port they started on
        for name, flags in _layouts(cores).items():
            ray_flags = ["--ray", address, *flags]
            with _process([*common, *ray_flags], env, port, args.log_dir / "ray.log") as on_ray:
                urls = {"ray": on_ray, "one_process": one}
                loads = _side_by_side(urls, frame, args.concurrency, args.requests, args.rounds)
                entry = {"flags": flags, "rows": _compare(loads, "ray", "one_process")}
                if name == "2 replicas" and args.kills:
                    entry["recovery_s"] = _recovery(on_ray, args.kills)
                    entry["recovery_median_s"] = statistics.median(entry["recovery_s"])
                report["layouts"][name] = entry
                print(name, [(r["concurrency"], r["fps_ratio"], r["median_overhead_ms"]) for r in entry["rows"]],
                      entry.get("recovery_s"), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="320x180", help="frame size in (x4-fast: 4 times each side out)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--requests", type=int, default=240, help="per concurrency per service, over all rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    report = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
              "machine": machine_info(), "size": [w, h], "model": "x4-fast", "layouts": {}}  # fmt: skip
    _measure(args, frame, report)
    if args.json:
        emit_json(report, args.json)


if __name__ == "__main__":
    main()
