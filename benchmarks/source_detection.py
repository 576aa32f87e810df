"""How often the pixels alone tell a compressed source from a clean one (``upscaler.sources.jpeg_grid``).

    python benchmarks/source_detection.py --data ../shared/data/val/Set5 ../shared/data/val/BSD100 \\
        --json benchmarks/results/source-detection.json

Each HR image is reduced by the protocol's bicubic (x2 and x4), then left clean or compressed (``--degrade``
specs: JPEG at several qualities, H.264 keyframes at several CRFs). For every dataset, scale and input the
report gives the share of images whose JPEG grid is above ``JPEG_GRID_THRESHOLD`` (judged compressed when
nothing else is known: a PNG, a raw frame) and the grid's minimum, median and maximum. The threshold was
chosen on training photos (``upscaler.sources``); these sets never tuned it.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from upscaler.bench.report import emit_json
from upscaler.degradations import bicubic, compress, modcrop
from upscaler.io import list_images, read_image
from upscaler.pipeline import to_rgb8
from upscaler.sources import JPEG_GRID_THRESHOLD, jpeg_grid
from upscaler.sysinfo import machine_info

DEGRADE = ["jpeg:30", "jpeg:40", "jpeg:60", "jpeg:80", "jpeg:95", "h264:18", "h264:23", "h264:28", "h264:33"]


def _grids(folder: Path, scale: int, specs: list[str | None]) -> dict[str, list[float]]:
    grids: dict[str, list[float]] = {spec or "clean": [] for spec in specs}
    for path in list_images(folder):
        lr = bicubic(modcrop(to_rgb8(read_image(path)), scale), scale)
        for spec in specs:
            grids[spec or "clean"].append(jpeg_grid(compress(lr, spec) if spec else lr))
    return grids


def _row(dataset: str, scale: int, name: str, grid: list[float]) -> dict:
    values = np.asarray(grid)
    return {
        "dataset": dataset,
        "scale": scale,
        "input": name,
        "images": len(values),
        "judged_compressed": round(float(np.mean(values > JPEG_GRID_THRESHOLD)), 4),
        "grid_min": round(float(values.min()), 4),
        "grid_median": round(float(np.median(values)), 4),
        "grid_max": round(float(values.max()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", type=Path, required=True, help="folders of HR images")
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--degrade", nargs="+", default=DEGRADE, help="compressed inputs measured")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.monotonic()
    rows = []
    for folder in args.data:
        for scale in args.scales:
            for name, grid in _grids(folder, scale, [None, *args.degrade]).items():
                rows.append(_row(folder.name, scale, name, grid))
                print(rows[-1], file=sys.stderr)
    report = {
        "command": "python benchmarks/source_detection.py " + " ".join(sys.argv[1:]),
        "machine": machine_info(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started),
        "threshold": JPEG_GRID_THRESHOLD,
        "statistic": "share of images whose JPEG grid is above the threshold; the grid's min, median and max",
        "rows": rows,
    }
    emit_json(report, args.json)


if __name__ == "__main__":
    main()
