"""The ``Upscaler`` facade: what applications call.

It wires the steps together and owns no pixel state between calls: analyse
the input, split colour and alpha, run the engine tile by tile, blend, clamp
and round back to the input's sample type. Each step is a function in
``pipeline`` or ``tiling``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from upscaler import pipeline
from upscaler.models import ModelDescriptor, ModelError, get_model
from upscaler.runtime import Engine, create_engine
from upscaler.tiling import run_tiled

__all__ = ["DEFAULT_TILE", "GPU_TILE", "Upscaler", "default_tile"]

#: Default tile edge in input pixels on the CPU: bounds memory and keeps CPU
#: caches warm; images that fit in one tile run whole.
DEFAULT_TILE = 512
#: ... on a GPU: frames up to 1920 pixels on a side (1080p input) run whole,
#: in one call; tiling them would only add overlap and calls.
GPU_TILE = 1920


def default_tile(engine: Engine) -> int:
    """The tile edge ``Upscaler`` uses on ``engine`` when none is given."""
    return GPU_TILE if str(getattr(engine, "device", "cpu")).startswith("cuda") else DEFAULT_TILE


ALPHA_MODES = ("model", "bicubic")


class Upscaler:
    """Upscale images with one model on one engine.

    ``model``: a built-in name or alias (``upscaler models``) or a
    ``.safetensors`` path; ``backend``: ``auto``, ``onnxruntime`` or ``torch``
    (``auto`` falls back along the chain and logs why); ``tile``: tile edge in
    input pixels (``None`` for the default: ``DEFAULT_TILE`` on the CPU,
    ``GPU_TILE`` on a GPU; ``0`` to never tile); ``feather``:
    half-width of the cross-fade between tiles; ``batch_size``: tiles per
    engine call; ``alpha``: upscale alpha with the ``model`` or ``bicubic``;
    ``spin``: let ONNX Runtime's threads spin between calls (lowest latency
    for a lone caller; turn off when other work shares the cores);
    ``precision``: ``fp32``, ``fp16`` (GPUs) or ``int8`` (the quantised CPU
    graph); ``None`` (or ``auto``) lets each engine pick its best: FP16 on
    GPUs, and on the CPU INT8 only where this CPU runs it faster within the
    PSNR bound (``upscaler.runtime.cpu_precision``).
    """

    def __init__(
        self,
        model: str | Path | ModelDescriptor = "default",
        backend: str = "auto",
        *,
        tile: int | None = None,
        feather: int = 2,
        batch_size: int = 1,
        threads: int | None = None,
        alpha: str = "model",
        engine: Engine | None = None,
        spin: bool = True,
        precision: str | None = None,
    ) -> None:
        if tile is not None and tile < 0:
            raise ValueError(f"tile must be 0 (off) or a positive size, got {tile}")
        if feather < 0:
            raise ValueError(f"feather must be non-negative, got {feather}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if alpha not in ALPHA_MODES:
            raise ValueError(f"alpha must be one of {', '.join(ALPHA_MODES)}, got {alpha!r}")
        self.model: ModelDescriptor = get_model(model)
        if self.model.temporal:
            raise ModelError(
                f"{self.model.name} is a temporal model (it needs jitter, motion and history): use TemporalUpscaler"
            )
        self.engine: Engine = engine or create_engine(
            self.model, backend, threads=threads, spin=spin, precision=precision
        )
        self.tile = default_tile(self.engine) if tile is None else tile
        self.feather = feather
        self.batch_size = batch_size
        self.alpha = alpha

    @property
    def scale(self) -> int:
        """Output size / input size."""
        return self.model.scale

    @property
    def context(self) -> int:
        """Input pixels each tile reads beyond its core: receptive field plus feather."""
        return self.model.receptive_field + self.feather

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The engine on an ``N x 3 x H x W`` float batch (padded to the model's size multiple and cropped back)."""
        padded, h, w = pipeline.pad_batch(batch, self.model.size_multiple)
        out = self.engine.run(padded)
        return out[:, :, : h * self.scale, : w * self.scale]

    @property
    def rgb8(self) -> bool:
        """Whether the engine takes 8-bit frames whole (``infer_rgb8``): conversions where the network runs."""
        return callable(getattr(self.engine, "run_rgb8", None))

    def infer_rgb8(self, frames: np.ndarray) -> np.ndarray:
        """``N x H x W x 3`` uint8 frames -> ``N x sH x sW x 3`` uint8, on an engine that has ``run_rgb8``.

        Equal to ``infer`` on ``pipeline.color_batch`` of the frames, finished
        by ``pipeline.planes_to_image``, without the float planes on the host.
        """
        return self.engine.run_rgb8(frames, self.model.size_multiple)

    def _upscale_planes(self, planes: np.ndarray, prepare, write) -> None:
        run_tiled(
            planes,
            self.infer,
            write,
            scale=self.scale,
            tile=self.tile,
            context=self.context,
            feather=self.feather,
            batch_size=self.batch_size,
            prepare=prepare,
        )

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """Upscale one image; the result has the input's layout and sample type."""
        layout = pipeline.analyse(image)
        if self._whole(layout):  # one engine call, no blending: the real-time path
            return self._upscale_whole([image], [layout])[0]
        out = np.empty(layout.output_shape(self.scale), dtype=layout.dtype)
        view = out.reshape(out.shape[0], out.shape[1], -1)

        def write_color(row: int, rows: np.ndarray) -> None:
            if layout.grey:
                view[row : row + len(rows), :, 0] = pipeline.from_float(rows.mean(axis=2), layout.dtype)
            else:
                view[row : row + len(rows), :, :3] = pipeline.from_float(rows, layout.dtype)

        self._upscale_planes(image, lambda crop: pipeline.color_input(crop, layout), write_color)
        alpha = pipeline.alpha_plane(image, layout)
        if alpha is not None:
            view[:, :, -1] = self._upscale_alpha(alpha, layout)
        return out

    def _upscale_alpha(self, alpha: np.ndarray, layout: pipeline.Layout) -> np.ndarray:
        h, w = layout.height * self.scale, layout.width * self.scale
        first = alpha.flat[0]
        if np.all(alpha == first):  # fully opaque (or uniform): nothing to infer
            return np.full((h, w), first, dtype=layout.dtype)
        if self.alpha == "bicubic":
            planes = pipeline.to_float(alpha)
            return pipeline.from_float(cv2.resize(planes, (w, h), interpolation=cv2.INTER_CUBIC), layout.dtype)
        result = np.empty((h, w), dtype=layout.dtype)

        def write_alpha(row: int, rows: np.ndarray) -> None:
            result[row : row + len(rows)] = pipeline.from_float(rows.mean(axis=2), layout.dtype)

        self._upscale_planes(alpha, pipeline.grey_input, write_alpha)
        return result

    def upscale_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Upscale several images; same-shaped RGB images that fit one tile share engine calls."""
        images = list(images)
        results: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        layouts = [pipeline.analyse(image) for image in images]
        for i, (image, layout) in enumerate(zip(images, layouts)):
            if self._whole(layout):
                groups.setdefault((image.shape, image.dtype.str), []).append(i)
            else:
                results[i] = self.upscale(image)
        for indices in groups.values():
            for first in range(0, len(indices), self.batch_size):
                chunk = indices[first : first + self.batch_size]
                outputs = self._upscale_whole([images[i] for i in chunk], [layouts[i] for i in chunk])
                for i, out in zip(chunk, outputs):
                    results[i] = out
        return results  # type: ignore[return-value]

    def _whole(self, layout: pipeline.Layout) -> bool:
        """Whether an image goes through the engine in one piece: RGB, within one tile."""
        fits = self.tile == 0 or (layout.height <= self.tile and layout.width <= self.tile)
        return fits and not layout.alpha and not layout.grey

    def _upscale_whole(self, images: list[np.ndarray], layouts: list[pipeline.Layout]) -> list[np.ndarray]:
        """Same-shaped RGB images as one batch: one engine call, no tiles."""
        if self.rgb8 and all(image.dtype == np.uint8 for image in images):
            return list(self.infer_rgb8(np.stack(images)))  # whole frames are H x W x 3 (``_whole``)
        outputs = self.infer(pipeline.color_batch(images, layouts))
        return [pipeline.planes_to_image(out, image.dtype) for image, out in zip(images, outputs)]
