"""What TensorRT engines need that is plain Python: shape profiles, cache keys, the engine cache,
and running inputs that fall outside a profile (split into batches and tiles instead of failing).

Nothing here imports TensorRT, so all of it is tested on machines without it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from upscaler.io import write_atomic

__all__ = [
    "DEFAULT_PROFILE",
    "EngineCache",
    "EngineCacheError",
    "ShapeProfile",
    "cache_key",
    "default_cache_dir",
    "parse_profile",
    "read_plan",
    "run_within_profile",
    "spans",
]

Shape = tuple[int, int, int]  # batch, height, width (channels are the model's)


class EngineCacheError(RuntimeError):
    """A cached engine file is missing, unreadable or does not belong to this model and machine."""


@dataclass(frozen=True)
class ShapeProfile:
    """A TensorRT optimisation profile: smallest, typical and largest input (batch, height, width)."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        for lo, mid, hi, axis in zip(self.min, self.opt, self.max, ("batch", "height", "width")):
            if not 1 <= lo <= mid <= hi:
                raise ValueError(f"profile {axis} must satisfy 1 <= min <= opt <= max, got {lo}, {mid}, {hi}")

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Whether an ``N x C x H x W`` batch can run on the profile as it is."""
        n, _, h, w = shape
        return all(lo <= v <= hi for v, lo, hi in zip((n, h, w), self.min, self.max))

    def shape_text(self, which: str, channels: int = 3) -> str:
        """``1x3x540x960`` for ``which`` in min/opt/max (the form trtexec and ONNX Runtime take)."""
        n, h, w = getattr(self, which)
        return f"{n}x{channels}x{h}x{w}"

    def full(self, which: str, channels: int = 3) -> tuple[int, int, int, int]:
        """``(N, C, H, W)`` of ``which``."""
        n, h, w = getattr(self, which)
        return n, channels, h, w

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}


#: Frames from 1x1 to 1080p, batches up to 4, tuned for 960x540 (the 4K-output case).
DEFAULT_PROFILE = ShapeProfile(min=(1, 1, 1), opt=(1, 540, 960), max=(4, 1080, 1920))


def _shape(text: str) -> Shape:
    try:
        n, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"a profile shape looks like 1x540x960 (batch x height x width), got {text!r}") from None
    return n, h, w


def parse_profile(text: str) -> ShapeProfile:
    """``"1x1x1:1x540x960:4x1080x1920"`` (min:opt:max, each batch x height x width) -> ``ShapeProfile``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"a profile is MIN:OPT:MAX, e.g. 1x1x1:1x540x960:4x1080x1920; got {text!r}")
    return ShapeProfile(*(_shape(p) for p in parts))


def default_cache_dir() -> Path:
    """``$UPSCALER_CACHE_DIR/tensorrt``, else ``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/upscaler/tensorrt``."""
    if os.environ.get("UPSCALER_CACHE_DIR"):
        return Path(os.environ["UPSCALER_CACHE_DIR"]) / "tensorrt"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "upscaler" / "tensorrt"


def cache_key(
    *,
    onnx_sha256: str,
    tensorrt: str,
    gpu: str,
    compute_capability: str,
    precision: str,
    profile: ShapeProfile,
) -> dict:
    """Everything an engine depends on: a plan is reused only when all of it is equal."""
    return {
        "onnx_sha256": onnx_sha256,
        "tensorrt": tensorrt,
        "gpu": gpu,
        "compute_capability": compute_capability,
        "precision": precision,
        "profile": profile.to_dict(),
    }


def _digest(key: Mapping) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


class EngineCache:
    """Serialised engines on disk: ``<model>-<precision>-<digest>.plan`` with a ``.json`` of its key.

    A plan is returned only if its key file matches the key asked for in
    every field, so an engine built for another GPU, compute capability,
    TensorRT version, precision, profile or graph is never loaded: the
    caller rebuilds it. Writes are atomic (temporary file, then rename).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, model: str, key: Mapping) -> Path:
        return self.root / f"{model}-{key['precision']}-{_digest(key)}.plan"

    @property
    def timing_cache(self) -> Path:
        """Shared TensorRT timing cache: layer timings reused across builds on this machine."""
        return self.root / "timing.cache"

    def load(self, model: str, key: Mapping) -> bytes | None:
        """The plan for ``key``, or None when there is none or it was built for something else."""
        plan = self.path(model, key)
        meta = plan.with_suffix(".json")
        if not plan.is_file() or not meta.is_file():
            return None
        try:
            stored = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None  # unreadable key file: rebuild rather than trust the plan
        if stored != json.loads(json.dumps(key)):
            return None
        data = plan.read_bytes()
        if not data:
            return None
        return data

    def store(self, model: str, key: Mapping, plan: bytes) -> Path:
        """Write a plan and its key; returns the plan's path."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(model, key)
        write_atomic(path, plan)
        write_atomic(path.with_suffix(".json"), json.dumps(key, indent=2))  # last: a key file means a whole plan
        return path

    def evict(self, model: str, key: Mapping) -> None:
        """Remove a plan that failed to load."""
        path = self.path(model, key)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)


def read_plan(path: Path) -> bytes:
    """A plan file given by the user: its bytes, or ``EngineCacheError`` saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise EngineCacheError(f"TensorRT engine file not found: {path}")
    data = path.read_bytes()
    if len(data) < 64:
        raise EngineCacheError(f"{path}: {len(data)} bytes is not a TensorRT engine (truncated or broken)")
    return data


def spans(length: int, limit: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Cut ``length`` into reads of at most ``limit``: ``(read_start, read_end, core_start, core_end)``.

    Each read extends ``halo`` beyond its core on both sides where the image
    goes on, so every output pixel of a core sees all the input it depends
    on and the pieces join exactly.
    """
    if length <= limit:
        return [(0, length, 0, length)]
    core = limit - 2 * halo
    if core < 1:
        raise ValueError(f"a profile limit of {limit} leaves no room inside a context of {halo} on each side")
    out = []
    for start in range(0, length, core):
        end = min(start + core, length)
        out.append((max(0, start - halo), min(length, end + halo), start, end))
    return out


def run_within_profile(
    batch: np.ndarray, run: Callable[[np.ndarray], np.ndarray], profile: ShapeProfile, scale: int, halo: int
) -> np.ndarray:
    """``run(batch)`` where ``run`` accepts only shapes inside ``profile``.

    Larger batches are split; larger frames are tiled with ``halo`` input
    pixels of context (the model's receptive field), so the result equals a
    whole-frame run; pieces below the profile's minimum are edge-padded and
    their output cropped.
    """
    if profile.fits(batch.shape):
        return run(batch)
    n, c, h, w = batch.shape
    max_n, max_h, max_w = profile.max
    min_n, min_h, min_w = profile.min
    out = np.empty((n, c, h * scale, w * scale), np.float32)
    for b0 in range(0, n, max_n):
        chunk = batch[b0 : b0 + max_n]
        for y0, y1, cy0, cy1 in spans(h, max_h, halo):
            for x0, x1, cx0, cx1 in spans(w, max_w, halo):
                piece = chunk[:, :, y0:y1, x0:x1]
                pad = (
                    (0, max(0, min_n - len(piece))),
                    (0, 0),
                    (0, max(0, min_h - (y1 - y0))),
                    (0, max(0, min_w - (x1 - x0))),
                )
                if any(p[1] for p in pad):
                    piece = np.pad(piece, pad, mode="edge")
                result = run(np.ascontiguousarray(piece))[: len(chunk)]
                oy, ox = (cy0 - y0) * scale, (cx0 - x0) * scale
                out[b0 : b0 + len(chunk), :, cy0 * scale : cy1 * scale, cx0 * scale : cx1 * scale] = result[
                    :, :, oy : oy + (cy1 - cy0) * scale, ox : ox + (cx1 - cx0) * scale
                ]
    return out
