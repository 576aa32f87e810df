"""Quality on compressed inputs: the evaluation protocol with each LR image also JPEG- or H.264-compressed.

    python benchmarks/compressed_eval.py --models x4-fast x4-quality x4-video \\
        --data ../shared/data/val/Set5 ../shared/data/val/BSD100 --json benchmarks/results/compressed-x4.json

For every model and every input (clean; ``--degrade`` specs, default ``jpeg:40`` and ``h264:28``), PSNR and
SSIM on Y with the scale shaved (DESIGN section 4), bicubic of the same input alongside: what
``upscaler eval --degrade SPEC`` prints, for several models in one file (a model may be a ``.safetensors``
candidate from ``upscaler train``). ONNX Runtime on the CPU for built-in models, PyTorch for candidates; FP32.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from upscaler.bench.report import emit_json
from upscaler.degradations import protocol_degradation
from upscaler.evaluate import evaluate_folder
from upscaler.facade import Upscaler
from upscaler.sysinfo import machine_info


def _scores(model: str, folders: list[Path], specs: list[str | None]) -> list[dict]:
    up = Upscaler(model, "cpu", tile=0, precision="fp32")  # ONNX Runtime; PyTorch for a .safetensors candidate
    rows = []
    for spec in specs:
        for folder in folders:
            kind = protocol_degradation(up.model.degradation)
            score = evaluate_folder(folder, up.upscale, up.scale, kind, compression=spec)
            rows.append({"model": model, "engine": up.engine.name, "input": spec or "clean", **score.summary()})
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["x4-fast", "x4-quality", "x4-video"])
    parser.add_argument("--data", nargs="+", type=Path, required=True, help="folders of HR images")
    parser.add_argument("--degrade", nargs="+", default=["jpeg:40", "h264:28"], help="compressed inputs measured")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    specs: list[str | None] = [None, *args.degrade]
    rows = [row for model in args.models for row in _scores(model, args.data, specs)]
    report = {
        "command": "python benchmarks/compressed_eval.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started),
        "statistic": "mean PSNR (dB) and SSIM on Y over each dataset's images, scale shaved",
        "rows": rows,
    }
    emit_json(report, args.json)


if __name__ == "__main__":
    main()
