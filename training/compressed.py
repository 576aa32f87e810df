"""Paired training data for compressed sources: clean photos degraded as real video and JPEGs are.

    python -m training.compressed --data ../shared/data --out runs/data/x4-video --scale 4

writes ``train/lr``, ``train/hr`` (and ``val/...``, from images kept out of
training) for ``degradation = "paired"``. Each pair is a random crop of a
clean photo (the target) and its low-resolution counterpart made by a chain
after Real-ESRGAN's (first order, then the codec). ``--mixture`` picks how
often each step happens (:data:`MIXTURES`); ``broad`` draws

1. blur, 30% of the time: a Gaussian with sigma 0.2-1.2 high-resolution
   pixels, anisotropic a third of those times;
2. downscale by the scale with a kernel drawn per pair: MATLAB-style bicubic
   (the benchmark's, 60%), bilinear or area (20% each);
3. noise, 30% of the time: Gaussian, 1-5 grey levels, the same on the three
   channels (luma noise) 40% of the time;
4. a codec: JPEG at quality 25-85 (35%), H.264 through PyAV (libx264, 4:2:0,
   CRF 20-36) on a three-frame sequence whose first two frames are the
   image shifted by a pixel or two, so the kept third frame is a P-frame with
   motion (35%), or none (30%).

``focused`` (the default) keeps the codec step and makes the first-order
steps rare (blur and noise 10%, sigma to 1.0 and 3 levels, bicubic 80%):
under ``broad`` only one pair in eleven was a clean bicubic one, and a
model learns to soften every input it cannot tell from a blurred or noisy one.
``codec-only`` is ``focused`` with every pair through a codec (JPEG or H.264,
half each): for a model that never sees clean input, since its clean
partner takes that (``upscaler.sources``).

A first mixture (blur and noise half the time, sigma to 1.6 and 8 levels,
10% without a codec) gained 0.8 dB on JPEG-40 Set5 but lost 1.3 dB on clean
input after 3,000 steps: clean pairs keep the model sharp where the source is.

Everything is drawn from a generator seeded by the image's index and the
crop's, so a run makes the same files wherever it runs. The codec step is
also the evaluation harness's ``--degrade`` (``upscaler.degradations``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from upscaler.degradations import compress, modcrop, quantize_uint8
from upscaler.io import list_images, read_image, write_image
from upscaler.pipeline import to_rgb8
from upscaler.resize import imresize

__all__ = ["MIXTURES", "Mixture", "degrade_compressed", "main"]

_FOLDERS = ("train/T91", "train/BSDS200", "train/extra")
_VAL_EVERY = 25  #: every 25th image of the list is kept out of training, for validation


@dataclass(frozen=True)
class Mixture:
    """How often each step of the chain happens, and how strong it gets."""

    blur: float  #: share of pairs blurred
    max_sigma: float  #: the largest blur, high-resolution pixels
    kernels: tuple[float, float, float]  #: shares of bicubic, bilinear and area downscaling
    noise: float  #: share of pairs with noise
    max_noise: float  #: the strongest noise, grey levels
    jpeg: float  #: share of pairs JPEG-compressed (quality 25-85)
    h264: float  #: share of pairs H.264-compressed (CRF 20-36); the rest get no codec


MIXTURES = {
    "broad": Mixture(0.3, 1.2, (0.6, 0.2, 0.2), 0.3, 5.0, 0.35, 0.35),
    "focused": Mixture(0.1, 1.0, (0.8, 0.1, 0.1), 0.1, 3.0, 0.35, 0.35),
    # every pair through a codec: for a model whose clean inputs go to its clean partner (upscaler.sources)
    "codec-only": Mixture(0.1, 1.0, (0.8, 0.1, 0.1), 0.1, 3.0, 0.5, 0.5),
}


def _blur(hr: np.ndarray, rng: np.random.Generator, mix: Mixture) -> np.ndarray:
    if rng.random() >= mix.blur:
        return hr
    sx = rng.uniform(0.2, mix.max_sigma)
    sy = rng.uniform(0.2, mix.max_sigma) if rng.random() < 1 / 3 else sx
    return cv2.GaussianBlur(hr, (0, 0), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)


def _downscale(image: np.ndarray, scale: int, rng: np.random.Generator, mix: Mixture) -> np.ndarray:
    h, w = image.shape[:2]
    kind = rng.choice(["cubic", "linear", "area"], p=list(mix.kernels))
    if kind == "cubic":
        return quantize_uint8(imresize(image, 1.0 / scale))
    flag = cv2.INTER_LINEAR if kind == "linear" else cv2.INTER_AREA
    return cv2.resize(image, (w // scale, h // scale), interpolation=flag)


def _noise(lr: np.ndarray, rng: np.random.Generator, mix: Mixture) -> np.ndarray:
    if rng.random() >= mix.noise:
        return lr
    sigma = rng.uniform(1.0, mix.max_noise)
    shape = lr.shape[:2] + ((1,) if rng.random() < 0.4 else (3,))
    noisy = lr.astype(np.float32) + rng.normal(0.0, sigma, shape).astype(np.float32)
    return quantize_uint8(noisy)


def _codec(lr: np.ndarray, rng: np.random.Generator, mix: Mixture) -> np.ndarray:
    draw = rng.random()
    if draw < mix.jpeg:
        return compress(lr, f"jpeg:{int(rng.integers(25, 86))}")
    if draw < mix.jpeg + mix.h264:
        shifts = [(int(rng.integers(-2, 3)), int(rng.integers(-2, 3))) for _ in range(2)]
        return compress(lr, f"h264:{int(rng.integers(20, 37))}", lead_in=shifts)
    return lr


def degrade_compressed(
    hr: np.ndarray, scale: int, rng: np.random.Generator, mixture: str | Mixture = "focused"
) -> np.ndarray:
    """The low-resolution input for ``hr`` (a crop whose sides are multiples of ``2 * scale``)."""
    mix = MIXTURES[mixture] if isinstance(mixture, str) else mixture
    return _codec(_noise(_downscale(_blur(hr, rng, mix), scale, rng, mix), rng, mix), rng, mix)


def _crops(image: np.ndarray, size: int, count: int, rng: np.random.Generator):
    h, w = image.shape[:2]
    for _ in range(count):
        ch, cw = min(size, h), min(size, w)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        yield image[y : y + ch, x : x + cw]


def _write_pairs(
    files: list[Path], out: Path, scale: int, crops: int, size: int, seed: int, mixture: str | Mixture
) -> int:
    (out / "lr").mkdir(parents=True, exist_ok=True)
    (out / "hr").mkdir(parents=True, exist_ok=True)
    written = 0
    for i, path in enumerate(files):
        rng = np.random.default_rng([seed, i])
        image = to_rgb8(read_image(path))
        for j, crop in enumerate(_crops(image, size, crops, rng)):
            hr = np.ascontiguousarray(modcrop(crop, 2 * scale))
            if min(hr.shape[:2]) < 8 * scale:
                continue
            name = f"{path.parent.name}-{path.stem}-{j}.png"
            write_image(out / "hr" / name, hr)
            write_image(out / "lr" / name, degrade_compressed(hr, scale, rng, mixture))
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.compressed", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="where train/ and val/ pairs go")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--crops", type=int, default=6, help="crops (each degraded its own way) per image")
    parser.add_argument("--size", type=int, default=384, help="crop side, high-resolution pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixture", choices=sorted(MIXTURES), default="focused", help="how often each step happens")
    args = parser.parse_args(argv)
    files = [f for folder in _FOLDERS for f in list_images(args.data / folder, recursive=True)]
    val = files[::_VAL_EVERY]
    train = [f for f in files if f not in set(val)]
    n_train = _write_pairs(train, args.out / "train", args.scale, args.crops, args.size, args.seed, args.mixture)
    n_val = _write_pairs(val, args.out / "val", args.scale, 1, args.size, args.seed + 1, args.mixture)
    print(f"wrote {n_train} training and {n_val} validation pairs under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
