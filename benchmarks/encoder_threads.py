"""x264 encoder threads in ``upscaler video``: are the outputs byte-identical run to run, and are they faster?

    python benchmarks/encoder_threads.py --threads 1 2 --rounds 3 --json benchmarks/results/encoder-threads.json

Makes a clip (``--size`` input, 36 frames, a keyframe a second), then runs ``upscaler video`` on it with each
``--encoder-threads`` value, interleaved round by round, 1 s segments (each segment its own encoder, as a
resumed or distributed job encodes them). Records each run's wall time and the output's SHA-256: one hash per
thread count means that count is deterministic, so a resumed job equals an uninterrupted one.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from upscaler.bench.report import emit_json
from upscaler.sysinfo import machine_info


def _clip(path: Path, size: tuple[int, int]) -> None:
    import av
    import numpy as np

    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.options = {"g": "12", "crf": "20"}
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(36):
            rgb = np.stack([(xx * 3 + i * 7) % 256, (yy * 5 + i * 3) % 256, ((xx + yy) * 2 + i * 11) % 256], -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _run(source: Path, out: Path, threads: int) -> tuple[float, str]:
    exe = Path(sys.executable).with_name("upscaler")
    started = time.perf_counter()
    subprocess.run([str(exe), "video", str(source), "-o", str(out), "--encoder-threads", str(threads),
                    "--segment-seconds", "1", "-q", "--overwrite"], check=True)  # fmt: skip
    seconds = time.perf_counter() - started
    return seconds, hashlib.sha256(out.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", default="320x180", help="input size (x4-fast makes 4 times each side)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    runs: dict[int, list[tuple[float, str]]] = {t: [] for t in args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.mp4"
        _clip(source, size)
        for _ in range(args.rounds):
            for t in args.threads:
                runs[t].append(_run(source, Path(tmp) / f"out-{t}.mp4", t))
    base = statistics.median(s for s, _ in runs[args.threads[0]])
    report = {
        "command": "python benchmarks/encoder_threads.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": args.size,
        "frames": 36,
        "statistic": "median wall time of whole 'upscaler video' runs, interleaved rounds",
        "threads": {
            str(t): {
                "seconds": [round(s, 2) for s, _ in r],
                "median_s": round(statistics.median(s for s, _ in r), 2),
                "time_ratio_to_first": round(statistics.median(s for s, _ in r) / base, 3),
                "distinct_outputs": len({h for _, h in r}),
            }
            for t, r in runs.items()
        },
    }
    emit_json(report, args.json)


if __name__ == "__main__":
    main()
