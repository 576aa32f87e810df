"""A side-by-side strip of x4-fast and x4-temporal on consecutive frames of a real clip: the flicker made visible.

    python benchmarks/stability_strip.py ../shared/data/video/concourse_720p50_audio.avi docs/images/stability-strip.png

The clip's frames are area-reduced to ``--size`` (320x180) and upscaled 4x by
each model (x4-temporal with ``jitter=(0, 0)`` and ``motion=None``, after
``--warmup`` frames of history). For ``--columns`` consecutive frames the
same crops are shown (by default one on a walker, one on the still floor),
each row pair being a model's output and, under it, what
``upscaler bench --clip`` measures for that pair: ``|y_t - W(y_t-1)|``, the
output against the previous output warped by the input's (Farneback) flow,
amplified ``--gain`` times, with pixels where the flow is unreliable in blue.
The number in each difference tile is that crop's mean in grey levels.
Crops are magnified ``--zoom`` times (nearest neighbour) so single pixels show.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from upscaler.bench.stability import pair_flow, read_clip, warp_by_flow
from upscaler.facade import Upscaler
from upscaler.temporal.facade import TemporalUpscaler

LABEL_W = 150
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45, colour=(255, 255, 255)) -> None:
    cv2.putText(image, text, org, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, FONT, scale, colour, 1, cv2.LINE_AA)


def difference_tile(diff: np.ndarray, reliable: np.ndarray, gain: float) -> tuple[np.ndarray, float]:
    """``diff`` (grey levels, H x W) as an amplified grey image, unreliable pixels blue; and its reliable mean."""
    grey = np.clip(diff * gain, 0, 255).astype(np.uint8)
    tile = np.repeat(grey[..., None], 3, axis=2)
    tile[~reliable] = (40, 60, 140)
    mean = float(diff[reliable].mean()) if reliable.any() else float("nan")
    return tile, mean


def _crop(text: str) -> tuple[int, int, int]:
    x, y, side = (int(v) for v in text.split(","))
    return x, y, side


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("clip")
    p.add_argument("output")
    p.add_argument("--size", default="320x180", help="input size the frames are area-reduced to (default: 320x180)")
    p.add_argument("--start", type=int, default=40, help="first frame shown (default: 40)")
    p.add_argument("--warmup", type=int, default=16, help="frames upscaled before it (default: 16)")
    p.add_argument("--columns", type=int, default=4, help="consecutive frames shown (default: 4)")
    p.add_argument(
        "--crop",
        type=_crop,
        action="append",
        help="output-pixel crop x,y,side; repeat for more (default: 752,488,96 a walker and 560,300,96 the floor)",
    )
    p.add_argument("--zoom", type=int, default=2, help="nearest-neighbour magnification (default: 2)")
    p.add_argument("--gain", type=float, default=8.0, help="difference amplification (default: 8)")
    p.add_argument("--backend", default="onnxruntime-cpu")
    args = p.parse_args(argv)
    crops = args.crop or [(752, 488, 96), (560, 300, 96)]

    w, h = (int(v) for v in args.size.split("x"))
    first = max(args.start - args.warmup, 0)
    frames = list(read_clip(args.clip, frames=args.start + args.columns - first, size=(w, h), start=first))
    fast = Upscaler("x4-fast", args.backend, precision="fp32", tile=0)
    temporal = TemporalUpscaler("x4-temporal", args.backend)
    scale = fast.scale
    names = ("x4-fast", "x4-temporal")
    # tiles[crop][row] -> list over columns; rows: each model's output, then its |change|
    tiles = [{row: [] for name in names for row in (name, f"{name} diff")} for _ in crops]
    means = [{name: [] for name in names} for _ in crops]
    previous_in, previous = None, {}
    for index, lr in enumerate(frames):
        outputs = {"x4-fast": fast.upscale(lr), "x4-temporal": temporal.upscale(lr, jitter=(0.0, 0.0), motion=None)}
        if first + index >= args.start and previous_in is not None:
            pair = pair_flow(previous_in, lr)
            reliable = np.repeat(np.repeat(pair.mask, scale, axis=0), scale, axis=1)
            for name, out in outputs.items():
                warped, inside = warp_by_flow(previous[name], pair.flow, scale)
                diff = np.abs(out.astype(np.float32) - warped).mean(axis=2)
                for k, (cx, cy, side) in enumerate(crops):
                    crop = np.s_[cy : cy + side, cx : cx + side]
                    tile, mean = difference_tile(diff[crop], (reliable & inside)[crop], args.gain)
                    tiles[k][name].append(out[crop])
                    tiles[k][f"{name} diff"].append(tile)
                    means[k][name].append(mean)
        previous_in, previous = lr, outputs

    sheet = _sheet(args, crops, tiles, means, names)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # nearly grey footage: a 256-colour palette keeps it exact to the eye at a third of the bytes
    Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, optimize=True
    )
    for k, (cx, cy, side) in enumerate(crops):
        summary = ", ".join(f"{name} {np.mean(v):.2f}" for name, v in means[k].items())
        print(f"crop ({cx},{cy}) {side}px: mean |change| {summary}")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


def _sheet(args, crops, tiles, means, names) -> np.ndarray:
    """The contact sheet: per crop, each model's output and its |change| per column, a caption below."""
    gap, head = 4, 24
    cell = max(side for _, _, side in crops) * args.zoom
    rows = [(k, row) for k in range(len(crops)) for row in tiles[k]]
    width = LABEL_W + args.columns * (cell + gap)
    height = head + len(rows) * (cell + gap) + (len(crops) - 1) * 10 + 34
    sheet = np.full((height, width, 3), 255, np.uint8)
    for c in range(args.columns):
        _text(sheet, f"frame {args.start + c}", (LABEL_W + c * (cell + gap) + 4, 17), 0.45, (60, 60, 60))
    y = head
    for r, (k, row) in enumerate(rows):
        if r and k != rows[r - 1][0]:
            y += 10
        cx, cy, _ = crops[k]
        label = f"|change| x{args.gain:g}" if row.endswith("diff") else row
        cv2.putText(sheet, label, (8, y + cell // 2 + 5), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        if not row.endswith("diff") and row == names[0]:
            cv2.putText(sheet, f"crop ({cx},{cy})", (8, y + 16), FONT, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
        for c, tile in enumerate(tiles[k][row]):
            x = LABEL_W + c * (cell + gap)
            sheet[y : y + cell, x : x + cell] = cv2.resize(tile, (cell, cell), interpolation=cv2.INTER_NEAREST)
            if row.endswith("diff"):
                _text(sheet, f"{means[k][row[:-5]][c]:.2f}", (x + 4, y + cell - 6))
        y += cell + gap
    caption = (
        f"{args.size} input, x4, crops of output pixels shown x{args.zoom}. |change|: output minus the previous "
        "output warped by the input's flow (blue: flow unreliable); numbers: the crop's mean, grey levels"
    )
    words, lines = caption.split(), [""]
    for word in words:  # wrap to the sheet's width
        if cv2.getTextSize(f"{lines[-1]} {word}", FONT, 0.38, 1)[0][0] > width - 16:
            lines.append("")
        lines[-1] = f"{lines[-1]} {word}".strip()
    for i, line in enumerate(lines[-2:]):
        cv2.putText(sheet, line, (8, height - 18 + 12 * i), FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


if __name__ == "__main__":
    main()
