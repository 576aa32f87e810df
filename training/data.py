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

__all__ = ["DeviceCrops", "HRCrops", "PairCrops", "StepSampler", "augment", "load_images", "load_pairs"]

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


def load_pairs(folders: Sequence[Path], scale: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """``(lr, hr, name)`` of every ``lr/`` and ``hr/`` file pair (matched by file stem) in ``folders``.

    Each folder holds an ``lr`` and an ``hr`` subfolder of real frames; the
    high-resolution frame must be ``scale`` times the low-resolution one
    (a remainder under ``scale`` at the bottom/right is cropped).
    """
    pairs = []
    for folder in folders:
        lr_dir, hr_dir = folder / "lr", folder / "hr"
        if not (lr_dir.is_dir() and hr_dir.is_dir()):
            raise ValueError(f"{folder}: a paired folder needs 'lr' and 'hr' subfolders")
        hr_files = {p.stem: p for p in list_images(hr_dir)}
        lr_files = {p.stem: p for p in list_images(lr_dir)}
        unmatched = sorted(set(hr_files) ^ set(lr_files))
        if unmatched:
            raise ValueError(f"{folder}: no partner for {', '.join(unmatched[:5])} (lr/ and hr/ names must match)")
        for stem in sorted(hr_files):
            lr, hr = to_rgb8(read_image(lr_files[stem])), to_rgb8(read_image(hr_files[stem]))
            h, w = lr.shape[0] * scale, lr.shape[1] * scale
            if not (h <= hr.shape[0] < h + scale and w <= hr.shape[1] < w + scale):
                raise ValueError(
                    f"{folder}: {stem} is {lr.shape[1]}x{lr.shape[0]} in lr/ and {hr.shape[1]}x{hr.shape[0]} "
                    f"in hr/, not x{scale}"
                )
            pairs.append((lr, hr[:h, :w], stem))
    return pairs


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


class DeviceCrops:
    """:class:`HRCrops` cut on the training device: the images live there, one call makes a step's batch.

    For GPUs, where loader processes cannot keep up with the network: a
    step's crops are cut and transformed there, and only the positions travel.
    Images, windows and dihedral transforms are drawn as in :class:`HRCrops`,
    from a generator seeded with ``(seed, step, rank)``: a resumed run draws
    what an uninterrupted one would.
    """

    def __init__(
        self, images: Sequence[np.ndarray], crop: int, margin: int = 0, seed: int = 0, device: str = "cpu"
    ) -> None:
        host = HRCrops(images, crop, margin, seed)
        self.images = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).to(device) for im in host.images]
        self.size, self.seed, self._cumulative = crop + 2 * margin, seed, host._cumulative

    def batch(self, step: int, count: int, rank: int = 0) -> torch.Tensor:
        """``count`` uint8 crops (``N x C x S x S``, on the device) for ``step``, grouped by transform."""
        rng = np.random.default_rng((self.seed, step, rank))
        which = np.minimum(np.searchsorted(self._cumulative, rng.random(count), side="right"), len(self.images) - 1)
        where, codes = rng.random((count, 2)), rng.integers(0, 8, count)
        order = np.argsort(codes, kind="stable")  # one transform per group: a few launches, not one per crop
        crops = []
        for i in order:
            image = self.images[which[i]]
            y, x = (int(u * (n - self.size + 1)) for u, n in zip(where[i], image.shape[1:]))
            crops.append(image[:, y : y + self.size, x : x + self.size])
        batch, groups, start = torch.stack(crops), [], 0
        for code, n in zip(*np.unique(codes, return_counts=True)):
            part = torch.rot90(batch[start : start + n], int(code) % 4, dims=(2, 3))
            groups.append(part.flip(3) if code >= 4 else part)
            start += n
        return torch.cat(groups)


class StepSampler(Sampler[int]):
    """Sample indices ``start_step * batch ... steps * batch``: resumable by step.

    Under data parallelism each of ``world`` processes takes its ``rank``-th
    share of every step's ``batch`` indices, so the global batch is the one a
    single process would see.
    """

    def __init__(self, batch: int, start_step: int, steps: int, rank: int = 0, world: int = 1) -> None:
        if batch % world:
            raise ValueError(f"data.batch {batch} does not split evenly over {world} processes")
        self.batch, self.start, self.steps, self.rank, self.world = batch, start_step, steps, rank, world

    def __iter__(self) -> Iterator[int]:
        share = self.batch // self.world
        for step in range(self.start, self.steps):
            first = step * self.batch + self.rank * share
            yield from range(first, first + share)

    def __len__(self) -> int:
        return (self.steps - self.start) * (self.batch // self.world)


class PairCrops(Dataset):
    """Aligned ``(lr, hr)`` uint8 crops of real frame pairs, drawn like :class:`HRCrops`.

    ``patch`` is the low-resolution edge; the high-resolution crop is the
    same window ``scale`` times larger, with the same dihedral transform.
    """

    def __init__(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], patch: int, scale: int, seed: int = 0) -> None:
        usable = [(lr, hr) for lr, hr, *_ in pairs if min(lr.shape[:2]) >= patch]
        if not usable:
            raise ValueError(f"no low-resolution training frame is at least {patch}x{patch} pixels")
        area = np.array([lr.shape[0] * lr.shape[1] for lr, _ in usable], dtype=np.float64)
        self.pairs, self.patch, self.scale, self.seed = usable, patch, scale, seed
        self._cumulative = np.cumsum(area / area.sum())

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))
        which = min(int(np.searchsorted(self._cumulative, rng.random(), side="right")), len(self.pairs) - 1)
        lr, hr = self.pairs[which]
        p, s = self.patch, self.scale
        y = int(rng.integers(0, lr.shape[0] - p + 1))
        x = int(rng.integers(0, lr.shape[1] - p + 1))
        code = int(rng.integers(0, 8))
        crops = augment(lr[y : y + p, x : x + p], code), augment(hr[y * s : (y + p) * s, x * s : (x + p) * s], code)
        return tuple(torch.from_numpy(np.ascontiguousarray(c.transpose(2, 0, 1))) for c in crops)
