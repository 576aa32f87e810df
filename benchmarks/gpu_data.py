"""Build the folder a GPU call carries: a training config's images, re-encoded as lossless WebP.

    python benchmarks/gpu_data.py --config training/configs/experiments/x4-quality-gpu.toml --out .gpudata

A call to the GPU machine carries at most 64 MiB (the repository included)
and the machine reaches no network, so the config's ``data.train`` and
``data.val`` folders travel in a folder ``.git/info/exclude`` ignores
(``echo /.gpudata/ >> .git/info/exclude``), named in the call's ``carry``.
PNGs become lossless WebP (about 30% smaller; every file is decoded again and
compared pixel for pixel), other images are copied. Pass it to
``gpu_session.py --data``; the folder names match the config's, so the config
is unchanged.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from training.config import load_config
    from upscaler.io import list_images

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", default=".gpudata")
    ap.add_argument("--data-root", help="the config's data root (default: its data.root)")
    args = ap.parse_args()
    config = load_config(args.config)
    root, out = Path(args.data_root or config.data.root), Path(args.out)
    for folder in [*config.data.train, *config.data.val]:
        target = out / folder
        target.mkdir(parents=True, exist_ok=True)
        for path in list_images(root / folder):
            if path.suffix.lower() != ".png":
                shutil.copyfile(path, target / path.name)
                continue
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            webp = target / (path.stem + ".webp")
            cv2.imwrite(str(webp), image, [cv2.IMWRITE_WEBP_QUALITY, 101])  # above 100: lossless
            if not np.array_equal(cv2.imread(str(webp), cv2.IMREAD_UNCHANGED), image):
                raise SystemExit(f"{path}: the WebP copy differs (an alpha channel or 16 bits?)")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB (a call carries 64 MiB with the repository)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
