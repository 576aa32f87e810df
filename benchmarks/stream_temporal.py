"""What ``WS /v1/stream`` adds to a temporal step, and what an open temporal stream costs in memory.

    python benchmarks/stream_temporal.py --model x4-temporal --size 320x180 \
        --json benchmarks/results/stream-temporal-x4.json

Starts ``upscaler serve`` on loopback (this model only, ONNX Runtime on the
CPU, the service's default threads and no spinning) and, in this process, a
``TemporalUpscaler`` on the same engine with the same threads. One rendered
sequence (a camera panning over the bundled sample, Halton jitter, exact
motion vectors) goes through both, frame by frame, interleaved (the order
alternates each frame, so machine noise hits both alike): the round trip of
``StreamClient.send`` (pack, send, the service's parse, queue and step,
the reply, unpack) against ``TemporalUpscaler.upscale``. Concurrency 1. The
overhead is the median of the per-frame differences; on a loaded machine the
step's own variation (tens of ms) blurs it, so the serving time is also
given exactly: each round trip less the service's engine time for that
frame (``upscaler_compute_seconds_sum`` read around it). A third subject, also
interleaved, is the transport floor: the same message sent to an echo
endpoint on the same stack (uvicorn, websockets, loopback) that answers with
as many bytes as an upscaled frame, no work between.

Memory: the service's resident set (``/proc/<pid>/status``) with no stream
open (after the timing stream has closed: the last stream's close gives the
model's scratch and ONNX Runtime's arena back), with one stream open, then
with ``--streams`` streams open, each having run a few frames (its history
allocated); per stream is the difference between ``--streams`` and one
stream over ``--streams - 1`` (the first also brings the shared scratch and
arena). They close, and the resident set is read again once the release
has run; then as many open again: it must not grow (nothing leaked).

Throughput: the same frames again through the stream one at a time
(``send``), then with ``--ahead`` frames submitted before their replies are
collected (``StreamClient.submit``/``result``: the service works on one
frame while another's reply travels), and in-process one after another, in
alternating rounds; frames per second each, and the median of the rounds'
ratios to in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def _metric(base: str, name: str) -> float:
    for line in _get(base + "/metrics").decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _wait(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _serve(args: argparse.Namespace, port: int, log) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("upscaler")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "upscaler"]
    flags = ["--models", args.model, "--backend", "onnxruntime-cpu", "--threads", str(args.threads)]
    flags += ["--max-streams", str(args.streams + 1), "--no-access-log", "--port", str(port)]
    return subprocess.Popen([*command, "serve", *flags], stdout=log, stderr=subprocess.STDOUT)


def _ready(base: str, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"the service exited with {proc.returncode}")
    try:
        return _get(base + "/readyz") is not None
    except OSError:
        return False


def _echo_app(reply_bytes: int):
    """A WebSocket endpoint that answers every message with ``reply_bytes`` bytes: the transport alone."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    reply = bytes(reply_bytes)

    async def echo(websocket) -> None:
        await websocket.accept()
        while (await websocket.receive())["type"] != "websocket.disconnect":
            await websocket.send_bytes(reply)

    return Starlette(routes=[WebSocketRoute("/echo", echo)])


def _round_trip(websocket, message: bytes) -> bytes | bytearray:
    websocket.send(message)
    return websocket.recv()


def _pipelined_fps(client, frames, ahead: int) -> float:
    """Frames per second through ``client`` with up to ``ahead`` frames submitted before their replies."""
    start = time.perf_counter()
    for f in frames:
        if client.pending == ahead:
            client.result()
        client.submit(f.lr, f.jitter, f.motion)
    while client.pending:
        client.result()
    return len(frames) / (time.perf_counter() - start)


def _ratio(ours: list[float], peer: list[float]) -> float:
    """The median over rounds of ``ours / peer`` (each round's pair measured side by side)."""
    return round(float(np.median(np.array(ours) / np.array(peer))), 3)


def _in_process_fps(local, frames) -> float:
    start = time.perf_counter()
    for f in frames:
        local.upscale(f.lr, f.jitter, f.motion)
    return len(frames) / (time.perf_counter() - start)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _frames(model, w: int, h: int, n: int):
    from upscaler.io import sample_images
    from upscaler.sequences import Camera, SequenceSpec, make_sequence

    scene = sample_images()[0][..., :3]
    scene = cv2.resize(scene, (scene.shape[1] * 4, scene.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    centre = (scene.shape[1] / 2, scene.shape[0] / 2)
    camera = Camera(center=centre, zoom=0.5, velocity=(1.5, 0.5))
    return make_sequence(scene, SequenceSpec(model.scale, (w, h), n, camera), supersamples=1)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="x4-temporal")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--frames", type=int, default=60, help="timed frames (after --warmup)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads, both sides (0: default)")
    parser.add_argument("--streams", type=int, default=4, help="streams open for the memory figure")
    parser.add_argument("--ahead", type=int, default=2, help="frames submitted ahead for the throughput figure")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the throughput figure")
    parser.add_argument("--json")
    parser.add_argument("--echo", nargs=2, type=int, metavar=("PORT", "BYTES"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _serve_echo(port: int, reply: int) -> None:
    """The transport floor's endpoint, in its own process like the service."""
    import uvicorn

    from server.runner import WS_PROTOCOL

    uvicorn.run(_echo_app(reply), host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 25,
                ws=WS_PROTOCOL)  # fmt: skip


def _latency(args, base: str, echo_port: int, local, frames, size) -> tuple[dict, int, bytes]:
    """Per frame, in turns: the stream, in-process, and the two transport floors; the service's own time."""
    from websockets.sync.client import connect

    from upscaler.client import StreamClient, pack_frame
    from upscaler.wsclient import WebSocket

    times: dict[str, list[float]] = {k: [] for k in ("stream", "local", "floor", "floor_lib", "serving", "compute")}
    worst, message = 0, b""
    echo_url = f"ws://127.0.0.1:{echo_port}/echo"
    floor, floor_lib = WebSocket(echo_url), connect(echo_url, compression=None, max_size=None)
    with floor, floor_lib, StreamClient(base, args.model, width=size[0], height=size[1]) as client:
        for i, f in enumerate(frames):
            message = pack_frame(f.lr, f.jitter, f.motion)
            subjects = {
                "stream": lambda f=f: client.send(f.lr, f.jitter, f.motion),
                "local": lambda f=f: local.upscale(f.lr, f.jitter, f.motion),
                "floor": lambda message=message: _round_trip(floor, message),
                "floor_lib": lambda message=message: _round_trip(floor_lib, message),
            }
            names = list(subjects)
            names = names[i % len(names) :] + names[: i % len(names)]  # each subject first in turn
            out = {}
            for name in names:
                computed = _metric(base, "upscaler_compute_seconds_sum") if name == "stream" else 0.0
                start = time.perf_counter()
                out[name] = subjects[name]()
                elapsed = (time.perf_counter() - start) * 1000
                if i >= args.warmup:
                    times[name].append(elapsed)
                if i >= args.warmup and name == "stream":  # the service's own time for this frame
                    computed = (_metric(base, "upscaler_compute_seconds_sum") - computed) * 1000
                    times["serving"].append(elapsed - computed)
                    times["compute"].append(computed)
            worst = max(worst, int(np.abs(out["stream"].astype(int) - out["local"]).max()))
    return times, worst, message


def _throughput(args, base: str, local, timed, size) -> dict[str, list[float]]:
    """Frames sent ahead (submit/result, ``--ahead`` pending) and one at a time, against in-process, in turns."""
    from upscaler.client import StreamClient

    throughput: dict[str, list[float]] = {"one": [], "ahead": [], "local": []}
    with StreamClient(base, args.model, width=size[0], height=size[1]) as client:
        for _ in range(args.rounds):
            throughput["one"].append(_pipelined_fps(client, timed, 1))  # send(): one frame at a time
            throughput["ahead"].append(_pipelined_fps(client, timed, args.ahead))
            local.reset()
            throughput["local"].append(_in_process_fps(local, timed))
    return throughput


def _memory(args, base: str, proc, frames, size) -> dict:
    """The service's RSS: no stream, one, ``--streams`` open, after they close, and a second round of them."""
    from server.measure import settled_rss_mb
    from upscaler.client import StreamClient

    _wait(lambda: _metric(base, "upscaler_temporal_streams_open") == 0, "the timing stream to close")
    rss_idle = settled_rss_mb(proc.pid)
    rss, rss_one = [], []
    for _ in range(2):  # the second round: no growth, no leak
        clients = [StreamClient(base, args.model, width=size[0], height=size[1]) for _ in range(args.streams)]
        for i, client in enumerate(clients):
            for f in frames[:3]:
                client.send(f.lr, f.jitter, f.motion)
            if i == 0:
                rss_one.append(_rss_mb(proc.pid))
        rss.append(_rss_mb(proc.pid))
        for client in clients:
            client.close()
        _wait(lambda: _metric(base, "upscaler_temporal_streams_open") == 0, "the streams to close")
        rss_closed = settled_rss_mb(proc.pid)
    rss_open, rss_reopened = rss
    return {
        "streams": args.streams,
        "rss_no_stream_mb": round(rss_idle, 1),
        "rss_one_stream_mb": round(rss_one[0], 1),  # with the model's shared scratch and arena grown
        "rss_streams_open_mb": round(rss_open, 1),
        "rss_after_close_mb": round(rss_closed, 1),  # after the second round's release
        "rss_streams_reopened_mb": round(rss_reopened, 1),
        "per_stream_mb": round((rss_open - rss_one[0]) / max(1, args.streams - 1), 1),
    }


def _report(args, model, local, size, times, throughput, memory, extra: dict) -> dict:
    from upscaler.sysinfo import machine_info

    stream_ms, local_ms = times["stream"], times["local"]
    differences = np.array(stream_ms) - np.array(local_ms)
    return {
        "command": "python benchmarks/stream_temporal.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        # Other work on the machine while this ran (1-minute load average, before and after): the transport and
        # the thread hand-offs wait for a core when there are more runnable threads than cores.
        "load_average": [round(extra["load_before"], 2), round(os.getloadavg()[0], 2)],
        "model": model.name,
        "engine": local.engine.name,
        "threads": args.threads or "onnxruntime default (one per core)",
        "size": list(size),
        "frames": args.frames,
        "concurrency": 1,
        "stream_median_ms": round(float(np.median(stream_ms)), 2),
        "in_process_median_ms": round(float(np.median(local_ms)), 2),
        "overhead_median_ms": round(float(np.median(differences)), 2),
        "overhead_p90_ms": round(float(np.percentile(differences, 90)), 2),
        "service_step_median_ms": round(float(np.median(times["compute"])), 2),
        "serving_median_ms": round(float(np.median(times["serving"])), 2),
        "serving_p90_ms": round(float(np.percentile(times["serving"], 90)), 2),
        "transport_floor_median_ms": round(float(np.median(times["floor"])), 2),
        "transport_floor_websockets_client_median_ms": round(float(np.median(times["floor_lib"])), 2),
        "pipelined": {
            "ahead": args.ahead,
            "rounds": args.rounds,
            "in_process_fps": [round(v, 2) for v in throughput["local"]],
            "stream_one_at_a_time_fps": [round(v, 2) for v in throughput["one"]],
            "stream_ahead_fps": [round(v, 2) for v in throughput["ahead"]],
            "ratio_one_at_a_time_median": _ratio(throughput["one"], throughput["local"]),
            "ratio_ahead_median": _ratio(throughput["ahead"], throughput["local"]),
        },
        "message_bytes": extra["message_bytes"],
        "reply_bytes": extra["reply_bytes"],
        "max_difference_levels": extra["worst"],
        "memory": memory,
    }


def main() -> None:
    from upscaler.models import get_model
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.select import create_engine
    from upscaler.temporal import TemporalUpscaler

    args = _args()
    if args.echo:
        _serve_echo(*args.echo)
        return
    size = tuple(int(v) for v in args.size.lower().split("x"))
    load_before = os.getloadavg()[0]
    model = get_model(args.model)
    frames = _frames(model, size[0], size[1], args.warmup + args.frames)
    options = EngineOptions(threads=args.threads or None, spin=False)  # the service's engine settings
    local = TemporalUpscaler(model, engine=create_engine(model, "onnxruntime-cpu", options=options))
    port, echo_port = _free_port(), _free_port()
    base = f"http://127.0.0.1:{port}"
    reply_bytes = size[0] * size[1] * 3 * model.scale**2
    echo = subprocess.Popen([sys.executable, __file__, "--echo", str(echo_port), str(reply_bytes)])
    with tempfile.TemporaryFile("w+") as log:
        proc = _serve(args, port, log)
        try:
            _wait(lambda: _ready(base, proc), "the service to be ready")
            _wait(lambda: _listening(echo_port), "the echo endpoint")
            times, worst, message = _latency(args, base, echo_port, local, frames, size)
            throughput = _throughput(args, base, local, frames[args.warmup :], size)
            memory = _memory(args, base, proc, frames, size)
        finally:
            for p in (proc, echo):
                p.terminate()
                p.wait(timeout=60)
    extra = {"load_before": load_before, "message_bytes": len(message), "reply_bytes": reply_bytes, "worst": worst}
    report = _report(args, model, local, size, times, throughput, memory, extra)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
