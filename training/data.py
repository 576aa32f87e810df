"""Training data: random high-resolution crops, made deterministic by index.

Sample ``k`` of a run is drawn from a generator seeded with ``(seed, k)``, so
the data order depends only on the seed and the step: a resumed run sees
exactly the batches an uninterrupted one would. The low-resolution half is
made on the training device from a crop with a margin (see ``degrade``), so
the kernel sees real neighbours at the patch border.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from upscaler.io import ImageError, list_images, read_image
from upscaler.pipeline import to_rgb8

__all__ = ["HRCrops", "StepSampler", "augment", "load_images"]

log = logging.getLogger(__name__)


def load_images(folders: Sequence[Path]) -> list[np.ndarray]:
    """Every image of ``folders`` as 8-bit RGB (grey replicated, alpha dropped)."""
    images = []
    for folder in folders:
        for path in list_images(folder):
            try:
                image = read_image(path)
            except ImageError as exc:
                log.warning("skipping %s", exc)
                continue
            images.append(to_rgb8(image))
    return images


def augment(image: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 dihedral transforms (``code`` 0..7): rotations by 90 degrees and a flip."""
    out = np.rot90(image, code % 4)
    return out[:, ::-1] if code >= 4 else out


class HRCrops(Dataset):
    """Square uint8 crops (``C x (crop + 2 margin)`` per side) of high-resolution images.

    Images are picked with probability proportional to their area (so every
    pixel is equally likely), then a position for the ``crop`` window inside
    the image and one of the 8 dihedral transforms. The ``margin`` around the
    window comes from the image, or from its symmetric extension at the
    image border, which is how the resize kernel treats borders in evaluation.
    Images smaller than ``crop`` are left out.
    """

    def __init__(self, images: Sequence[np.ndarray], crop: int, margin: int = 0, seed: int = 0) -> None:
        usable = [im for im in images if min(im.shape[:2]) >= crop]
        if not usable:
            raise ValueError(f"no training image is at least {crop}x{crop} pixels")
        if len(usable) < len(images):
            log.info("%d of %d images are smaller than %d px: not used", len(images) - len(usable), len(images), crop)
        area = np.array([im.shape[0] * im.shape[1] for im in usable], dtype=np.float64)
        pad = ((margin, margin), (margin, margin), (0, 0))
        self.images = [np.pad(im, pad, mode="symmetric") for im in usable]
        self.crop = crop
        self.margin = margin
        self.seed = seed
        self._cumulative = np.cumsum(area / area.sum())

    def __len__(self) -> int:  # sampled by index, without end
        return 2**62

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng((self.seed, index))
        which = min(int(np.searchsorted(self._cumulative, rng.random(), side="right")), len(self.images) - 1)
        image = self.images[which]
        size = self.crop + 2 * self.margin
        y = int(rng.integers(0, image.shape[0] - size + 1))
        x = int(rng.integers(0, image.shape[1] - size + 1))
        patch = augment(image[y : y + size, x : x + size], int(rng.integers(0, 8)))
        return torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))


class StepSampler(Sampler[int]):
    """Sample indices ``start_step * batch ... steps * batch``: resumable by step."""

    def __init__(self, batch: int, start_step: int, steps: int) -> None:
        self.first, self.stop = start_step * batch, steps * batch

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.first, self.stop))

    def __len__(self) -> int:
        return self.stop - self.first
