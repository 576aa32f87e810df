"""What TensorRT engines need that is plain Python: shape profiles, cache keys, the engine cache,
and running inputs that fall outside a profile (split into batches and tiles instead of failing).

Nothing here imports TensorRT, so all of it is tested on machines without it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from upscaler.io import write_atomic

__all__ = [
    "DEFAULT_PROFILE",
    "TEMPORAL_PROFILE",
    "EngineCache",
    "EngineCacheError",
    "ShapeProfile",
    "cache_key",
    "default_cache_dir",
    "parse_profile",
    "read_plan",
    "run_within_profile",
    "spans",
    "temporal_shapes",
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


#: Temporal steps: one stream per call (batch 1), frames up to 1080p (8K out at x4), tuned for 960x540.
TEMPORAL_PROFILE = ShapeProfile(min=(1, 1, 1), opt=(1, 540, 960), max=(1, 1080, 1920))


def temporal_shapes(
    profile: ShapeProfile, scale: int, channels: int = 3, depth: bool = False
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Min, opt and max shape of each input of a temporal step graph for a frame ``profile``.

    ``frame`` (N x 3 x H x W), ``jitter`` (N x 2), ``motion`` (N x 2 x H x W),
    ``history`` (N x ``channels`` x sH x sW), ``reset`` (N x 1), and with
    ``depth`` a ``depth`` input (N x 1 x H x W). The history's
    smallest shape is 1 x 1 whatever the frame: a graph server's first
    request of a sequence holds a placeholder state there (the step ignores
    the history when ``reset`` is 1).
    """

    def inputs(which: str) -> dict[str, tuple[int, ...]]:
        n, h, w = getattr(profile, which)
        history = (n, channels, 1, 1) if which == "min" else (n, channels, h * scale, w * scale)
        shapes = {"frame": (n, 3, h, w), "jitter": (n, 2), "motion": (n, 2, h, w), "history": history, "reset": (n, 1)}
        return {**shapes, "depth": (n, 1, h, w)} if depth else shapes

    lo, mid, hi = inputs("min"), inputs("opt"), inputs("max")
    return {name: (lo[name], mid[name], hi[name]) for name in lo}


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
    from upscaler.runtime.base import user_cache_dir

    return user_cache_dir() / "tensorrt"


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

    def timing_cache_for(self, key: Mapping) -> Path:
        """The TensorRT timing cache for ``key``'s TensorRT version and GPU: layer timings shared by its builds.

        One file per version and device, since TensorRT refuses a cache made
        by another (``ignore_mismatch=False``) and one folder may serve several GPUs.
        """
        device = {k: key[k] for k in ("tensorrt", "gpu", "compute_capability")}
        return self.root / f"timing-{_digest(device)}.cache"

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


def _axis_pieces(length: int, lo: int, hi: int, halo: int, axis: str) -> list[tuple[int, int, int, int, int, int]]:
    """How to cover one axis of ``length`` with runs whose extent lies in ``[lo, hi]``.

    Returns ``(read_start, read_end, pad_before, pad_after, keep_start, keep_end)``:
    read the image over ``[read_start, read_end)``, pad it, run, and keep the
    output of ``[keep_start, keep_end)``. Where the image is at least ``lo``
    long, a read that would be shorter is widened into the image instead of
    padded (more real context, the same result). Where the whole axis is
    shorter than ``lo`` it is padded, twice: once after it (its first half is
    kept) and once before it (its second half is kept); the padding reaches
    no kept pixel when ``length >= 2 * halo``, and shorter axes are refused.
    """
    if length < lo:
        if length < 2 * halo:
            raise ValueError(
                f"the frame's {axis} of {length} px is below the TensorRT profile's minimum ({lo}) and under twice "
                f"the model's receptive field ({2 * halo} px), so no padding keeps its border exact; "
                f"use an engine whose profile minimum is at most {length}"
            )
        pad, split = lo - length, length // 2
        halves = [(0, length, 0, pad, 0, split), (0, length, pad, 0, split, length)]
        return [p for p in halves if p[4] < p[5]]
    pieces = []
    for r0, r1, c0, c1 in spans(length, hi, halo):
        if r1 - r0 < lo:
            r0 = max(0, min(r0, r1 - lo))
            r1 = min(length, max(r1, r0 + lo))
        pieces.append((r0, r1, 0, 0, c0, c1))
    return pieces


def run_within_profile(
    batch: np.ndarray, run: Callable[[np.ndarray], np.ndarray], profile: ShapeProfile, scale: int, halo: int
) -> np.ndarray:
    """``run(batch)`` where ``run`` accepts only shapes inside ``profile``, giving the whole-frame result.

    Larger batches are split; larger frames are tiled with ``halo`` input
    pixels of context (the model's receptive field). Tiles shorter than the
    profile's minimum read more of the image instead of being padded. So
    wherever the frame is at least the profile's minimum, the result equals a
    whole-frame run (to float rounding).

    A frame below the minimum has to be padded, and no padding content (edge,
    reflection, zeros) reproduces the network's own zero padding at the
    border: whatever the padding holds changes the output pixels within
    ``halo`` of it. So such an axis runs twice, padded after it and padded
    before it, and each output pixel is kept from the run whose padding it
    does not see: exact when the axis is at least ``2 * halo`` long. A frame
    shorter than that (and than the minimum) is refused with ``ValueError``:
    its border cannot be reproduced inside the profile. Batches below the
    minimum repeat their last frame (frames never mix).
    """
    if profile.fits(batch.shape):
        return run(batch)
    n, c, h, w = batch.shape
    max_n = profile.max[0]
    min_n, min_h, min_w = profile.min
    rows = _axis_pieces(h, min_h, profile.max[1], halo, "height")
    cols = _axis_pieces(w, min_w, profile.max[2], halo, "width")
    out = np.empty((n, c, h * scale, w * scale), np.float32)
    for b0 in range(0, n, max_n):
        chunk = batch[b0 : b0 + max_n]
        count = len(chunk)
        for y0, y1, top, bottom, ky0, ky1 in rows:
            for x0, x1, left, right, kx0, kx1 in cols:
                piece = chunk[:, :, y0:y1, x0:x1]
                pad = ((0, max(0, min_n - count)), (0, 0), (top, bottom), (left, right))
                if any(any(p) for p in pad):
                    piece = np.pad(piece, pad, mode="edge")
                result = run(np.ascontiguousarray(piece))[:count]
                oy, ox = (top + ky0 - y0) * scale, (left + kx0 - x0) * scale
                out[b0 : b0 + count, :, ky0 * scale : ky1 * scale, kx0 * scale : kx1 * scale] = result[
                    :, :, oy : oy + (ky1 - ky0) * scale, ox : ox + (kx1 - kx0) * scale
                ]
    return out
