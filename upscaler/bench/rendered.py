"""Evaluation of temporal super-sampling on standard rendered sequences (DESIGN.md section 9).

``standard_sequences`` turns a folder of photos into fixed, named sequences
(``upscaler.sequences``): for every image a camera pan at a sub-pixel speed;
for every third image also the same pan with a sprite layer moving across
it (occlusion and disocclusion); for every fourth image also a shot that
cuts, without any reset signal, to another image's shot; for every second
image (odd ones) a static shot, jittered (a game's still camera: ``still``)
or not (a video's: ``still-unjittered``), where history must neither drift
nor sharpen itself frame after frame. Subjects (bicubic,
a single-frame model, plain accumulation, a temporal model with exact or
estimated motion) step through each sequence frame by frame, and
``evaluate_sequences`` reports per subject:

- PSNR-Y / SSIM-Y per frame (``scale`` pixels shaved, DESIGN.md section 4);
- the steady state: the mean over frames ``>= warmup`` per kind (``all``:
  pan and layer sequences only);
- the moving layer: PSNR-Y over the ``dynamic`` mask only (where the layer is
  or was a frame ago: the history is wrong there), layer sequences, frames
  ``>= warmup``;
- after a cut: the mean PSNR of the first three frames of the new shot;
- temporal stability: the warping error, the mean over frames ``>= 1`` and
  over static in-frame pixels of ``|(out_t - R(out_{t-1})) - (gt_t - R(gt_{t-1}))|``
  in grey levels (0..255, RGB), ``R`` reprojecting by the exact motion
  (bilinear, as ``archs.temporal.reproject``); 0 when the output changes
  from frame to frame exactly as the reference does, large when it flickers;
- the median wall time of one ``step`` (``time.perf_counter``).

Pure numpy and OpenCV: torch is imported only by the subjects that run a
model on a PyTorch engine.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from upscaler.io import list_images, read_image
from upscaler.metrics import psnr, rgb_to_y, ssim
from upscaler.pipeline import to_rgb8
from upscaler.sequences import Camera, Layer, SequenceFrame, SequenceSpec, make_sequence
from upscaler.temporal.accumulate import reprojection_maps

__all__ = [
    "AFTER_CUT",
    "CUT_AT",
    "KINDS",
    "AccumulationSubject",
    "BicubicSubject",
    "NamedSequence",
    "SequenceSubject",
    "SingleFrameSubject",
    "TemporalSubject",
    "cut_frame",
    "describe_subject",
    "evaluate_sequence",
    "evaluate_sequences",
    "iter_standard_sequences",
    "masked_psnr",
    "relative_warping_error",
    "release_quality",
    "reproject_hr",
    "standard_sequences",
]

#: Sequence kinds, in report order.
KINDS = ("pan", "layer", "cut", "still", "still-unjittered", "slow", "fade", "moderate")
#: Kinds whose steady state is measured; the overall steady figure (``all``) averages the first two only.
STEADY_KINDS = ("pan", "layer", "still", "still-unjittered", "slow", "moderate")
#: Kinds whose flat regions are checked for a fixed pattern by pixel phase (a still or slow camera shows it).
GRID_KINDS = ("still", "slow")
#: Frames the fade sequences take to fade in from black (their camera is still).
FADE_FRAMES = 6
#: Grey levels (Y) within which an output's mean level counts as the source's (fades).
LEVEL_TOLERANCE = 1.0
#: A pixel is flat when the reference's Y varies by less than this (grey levels, std over 5 x 5).
FLAT_STD = 1.5
#: Kinds with a moving layer (their ``dynamic_psnr`` is measured over it).
LAYER_KINDS = ("layer", "slow", "moderate")
#: The slow shots' bound on camera and layer speed, high-resolution pixels per frame per axis.
SLOW_SPEED = 0.3
#: The moderate shots' bound (the "all speeds" a game camera mostly moves at), the same way.
MODERATE_SPEED = 1.2
#: The first frame of the new shot in cut sequences (earlier in sequences too short for it: ``frames // 2``).
CUT_AT = 16
#: Frames of the new shot the after-cut figure averages (cut, cut + 1, cut + 2).
AFTER_CUT = 3
_SEED = 9_2024


@dataclass
class NamedSequence:
    """One standard sequence: ``kind`` is ``pan``, ``layer`` or ``cut``."""

    name: str
    kind: str
    frames: list[SequenceFrame]

    @property
    def cut_at(self) -> int | None:
        """The first frame of the new shot (cut sequences), else None."""
        return next((t for t, f in enumerate(self.frames) if f.cut), None)


# --------------------------------------------------------------------------- sequences


def cut_frame(frames: int) -> int:
    """Where cut sequences of ``frames`` frames cut: ``CUT_AT``, or half-way when that leaves too few frames."""
    return CUT_AT if frames >= CUT_AT + AFTER_CUT else max(1, frames // 2)


def _pan(rng: np.random.Generator, shape: tuple[int, int], scale: int, frames: int) -> Camera:
    """A pan across the middle of a scene of ``shape`` (h, w): 0.2 to 1.5 LR pixels per frame, any direction."""
    angle = float(rng.uniform(0, 2 * math.pi))
    speed = float(rng.uniform(0.2, 1.5)) * scale  # HR pixels per frame
    vx, vy = speed * math.cos(angle), speed * math.sin(angle)
    h, w = shape
    # centred on the image over the whole sequence, so as little as possible of it is the reflected border
    return Camera(center=(w / 2 - vx * frames / 2, h / 2 - vy * frames / 2), zoom=1.0, velocity=(vx, vy))


def _layer(rng: np.random.Generator, texture: np.ndarray, size: tuple[int, int], scale: int, frames: int) -> Layer:
    """A sprite 35 % x 40 % of the screen crossing half of it over the sequence (stays on screen)."""
    w, h = size[0] * scale, size[1] * scale
    lw, lh = 0.35 * w, 0.4 * h
    sx, sy = (1.0 if rng.random() < 0.5 else -1.0), (1.0 if rng.random() < 0.5 else -1.0)
    vx, vy = sx * 0.5 * w / max(frames, 1), sy * 0.3 * h / max(frames, 1)
    ox = 0.05 * w if sx > 0 else 0.95 * w - lw
    oy = 0.1 * h if sy > 0 else 0.9 * h - lh
    return Layer(texture=texture.astype(np.float32) / 255.0, origin=(ox, oy), size=(lw, lh), velocity=(vx, vy))


def _slow(rng: np.random.Generator, scene: np.ndarray, texture: np.ndarray, size: tuple[int, int], scale: int,
          frames: int, bound: float = SLOW_SPEED) -> SequenceSpec:  # fmt: skip
    """A slow shot: a camera pan and a sprite layer, each at most ``bound`` HR pixels per frame per axis."""
    h, w = scene.shape[:2]
    vx, vy = (float(v) for v in rng.uniform(-bound, bound, 2))
    camera = Camera(center=(w / 2 - vx * frames / 2, h / 2 - vy * frames / 2), velocity=(vx, vy))
    layer = _layer(rng, texture, size, scale, frames)
    lx, ly = (float(v) for v in rng.uniform(-bound, bound, 2))
    return SequenceSpec(scale=scale, size=size, frames=frames, camera=camera, layer=replace(layer, velocity=(lx, ly)))


def iter_standard_sequences(
    folder: str | Path,
    scale: int,
    *,
    size: tuple[int, int] = (96, 64),
    frames: int = 32,
    limit: int | None = None,
    kinds: Sequence[str] | None = None,
) -> Iterator[NamedSequence]:
    """``standard_sequences`` one at a time (each rendered when asked for: a long folder never sits in memory).
    ``kinds``: only these, each made of every image (``_image_shots``), not of the images the standard set
    gives it to: a larger sample of one kind (a folder's still shots, say)."""
    if scale < 1:
        raise ValueError(f"scale must be positive, got {scale}")
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"sequence size must be positive, got {size[0]}x{size[1]}")
    if frames < 2:
        raise ValueError(f"a sequence needs at least 2 frames, got {frames}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown or (kinds is not None and not kinds):
        known = ", ".join(KINDS)
        raise ValueError(f"unknown sequence kind {', '.join(unknown) or '(none given)'}; choose from {known}")
    folder = Path(folder)
    files = list_images(folder)[:limit]
    n = len(files)
    load = lambda k: to_rgb8(read_image(files[k % n]))  # noqa: E731
    for i, path in enumerate(files):
        for name, kind, spec, scenes in _image_shots(i, files, load, scale, size, frames, every=kinds is not None):
            if kinds is None or kind in kinds:
                yield NamedSequence(
                    f"{folder.name}/{path.stem}-{name}", kind, make_sequence(scenes[0], spec, *scenes[1:])
                )


def _image_shots(i: int, files: Sequence[Path], load, scale: int, size: tuple[int, int], frames: int, *,
                 every: bool = False) -> list[tuple]:  # fmt: skip
    """Image ``i``'s shots, not rendered: ``(name suffix, kind, spec, scenes)`` (every random draw happens here,
    in a fixed order). ``every``: every kind of this image, not only those the standard set gives to its index."""
    n, path = len(files), files[i]
    scene = load(i)
    h, w = scene.shape[:2]
    rng = np.random.default_rng([_SEED, zlib.crc32(path.name.encode())])
    camera = _pan(rng, scene.shape[:2], scale, frames)
    spec = SequenceSpec(scale=scale, size=size, frames=frames, camera=camera)
    shots: list[tuple] = [("pan", "pan", spec, (scene,))]
    texture = np.ascontiguousarray(load(i + 1) if n > 1 else scene[::-1, ::-1])
    if every or i % 3 == 0:
        shots.append(("layer", "layer", replace(spec, layer=_layer(rng, texture, size, scale, frames)), (scene,)))
    if every or i % 4 == 0:
        j = (i + 2) % n if n > 2 else (i + 1) % n  # another image; with one image, itself upside down
        other = load(j) if n > 1 else np.ascontiguousarray(scene[::-1, ::-1])
        other_name = files[j].stem if n > 1 else f"{path.stem}-flipped"
        cut = replace(spec, cut_at=cut_frame(frames), cut_camera=_pan(rng, other.shape[:2], scale, frames))
        shots.append((f"cut-{other_name}", "cut", cut, (scene, other)))
    still = SequenceSpec(scale=scale, size=size, frames=frames, camera=Camera(center=(w / 2, h / 2)))
    if every or i % 4 == 1:  # a static shot: jittered (a game's still camera) or not (a video's still camera)
        shots.append(("still", "still", still, (scene,)))
    if every or i % 4 == 3:
        shots.append(("still-unjittered", "still-unjittered", replace(still, jitter=((0.0, 0.0),)), (scene,)))
    # drawn after the others: they stay as they were
    shots.append(("slow", "slow", _slow(rng, scene, texture, size, scale, frames), (scene,)))
    if every or i % 4 == 2:  # a fade in from black on a still, jittered camera
        shots.append(("fade", "fade", replace(still, fade=min(FADE_FRAMES, frames - 1)), (scene,)))
    shots.append(("moderate", "moderate", _slow(rng, scene, texture, size, scale, frames, MODERATE_SPEED), (scene,)))
    return shots


def standard_sequences(
    folder: str | Path, scale: int, *, size: tuple[int, int] = (96, 64), frames: int = 32, limit: int | None = None
) -> list[NamedSequence]:
    """Deterministic named sequences from the images of ``folder`` (sorted; the first ``limit``).

    ``size`` is the low-resolution width and height. Per image (index ``i``):
    ``<folder>/<stem>-pan``, a camera pan at 0.2 to 1.5 LR pixels per frame
    in a direction drawn from a seed fixed by the image's file name; when
    ``i % 3 == 0`` also ``-layer``, the same pan with a sprite (textured with
    the next image) moving across it; when ``i % 4 == 0`` also
    ``-cut-<other>``: ``CUT_AT`` frames of this shot, then another image's
    shot (the image two on, or the next one), flagged in the frames (``frame.cut``) but never signalled to the
    subjects.
    """
    return list(iter_standard_sequences(folder, scale, size=size, frames=frames, limit=limit))


# --------------------------------------------------------------------------- subjects


@runtime_checkable
class SequenceSubject(Protocol):
    """Something that upscales a stream frame by frame."""

    name: str
    uses_motion: bool  #: reads ``frame.motion`` (exact motion vectors)
    uses_jitter: bool  #: reads ``frame.jitter``

    def reset(self) -> None:
        """A new stream starts (the start of a sequence; never at an unsignalled cut)."""
        ...

    def step(self, frame: SequenceFrame) -> np.ndarray:
        """The high-resolution uint8 frame for ``frame.lr``."""
        ...


class BicubicSubject:
    """OpenCV bicubic (``INTER_CUBIC``) on each frame alone."""

    kind = "bicubic"
    uses_motion = uses_jitter = False
    engine = "opencv"

    def __init__(self, scale: int) -> None:
        self.scale, self.name = scale, "bicubic"

    def reset(self) -> None:
        pass

    def step(self, frame: SequenceFrame) -> np.ndarray:
        h, w = frame.lr.shape[:2]
        return cv2.resize(frame.lr, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)


class SingleFrameSubject:
    """A single-frame model (``Upscaler``) on each frame alone."""

    kind = "single-frame"
    uses_motion = uses_jitter = False

    def __init__(self, model, backend: str = "auto", *, threads: int | None = None, precision: str | None = None):
        from upscaler.facade import Upscaler

        self.up = Upscaler(model, backend, threads=threads, precision=precision, tile=0)
        self.name, self.scale = self.up.model.name, self.up.scale
        self.engine = f"{self.up.engine.name} {self.up.engine.precision}"

    def reset(self) -> None:
        pass

    def step(self, frame: SequenceFrame) -> np.ndarray:
        return self.up.upscale(frame.lr)


class AccumulationSubject:
    """``PlainAccumulator``: exact motion, known jitter, no network."""

    kind = "accumulation"
    uses_motion = uses_jitter = True
    engine = "numpy"

    def __init__(self, scale: int) -> None:
        from upscaler.temporal.accumulate import PlainAccumulator

        self.acc, self.scale, self.name = PlainAccumulator(scale), scale, "accumulation"

    def reset(self) -> None:
        self.acc.reset()

    def step(self, frame: SequenceFrame) -> np.ndarray:
        return self.acc.step(frame.lr, frame.jitter, frame.motion)


class TemporalSubject:
    """A temporal model (``TemporalUpscaler``) with the exact motion, or (``flow=True``) with ``motion=None``."""

    kind = "temporal"
    uses_jitter = True

    def __init__(
        self,
        model,
        backend: str = "auto",
        *,
        threads: int | None = None,
        flow: bool = False,
        depth: bool = False,
        upscaler=None,
    ) -> None:
        from upscaler.temporal.facade import TemporalUpscaler

        self.up = upscaler or TemporalUpscaler(model, backend, threads=threads)
        self.flow, self.depth = flow, depth
        self.uses_motion = not flow
        self.name = self.up.model.name + (" (flow)" if flow else "") + (" (depth)" if depth else "")
        self.scale = self.up.scale
        self.engine = f"{self.up.engine.name} {self.up.engine.precision}"

    def reset(self) -> None:
        self.up.reset()

    def step(self, frame: SequenceFrame) -> np.ndarray:
        depth = frame.depth if self.depth else None
        return self.up.upscale(frame.lr, jitter=frame.jitter, motion=None if self.flow else frame.motion, depth=depth)


def describe_subject(subject: SequenceSubject) -> dict:
    """What a report says about a subject."""
    motion = "exact" if subject.uses_motion else ("estimated" if getattr(subject, "flow", False) else None)
    return {
        "name": subject.name,
        "kind": getattr(subject, "kind", type(subject).__name__),
        "engine": getattr(subject, "engine", None),
        "motion": motion,
        "jitter": bool(subject.uses_jitter),
    }


# --------------------------------------------------------------------------- figures


def reproject_hr(image: np.ndarray, motion: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The previous HR ``image`` where this frame's surfaces were, and where that is inside the previous frame.

    HR pixel ``(x, y)`` reads ``image`` at ``(x, y) + scale * motion(x // scale, y // scale)``
    (pixel indices, bilinear, edges clamped): ``archs.temporal.reproject``
    (``grid_sample``, ``align_corners=False``, border padding) in OpenCV.
    Returns ``(float32 image, bool mask)``; the mask is False where the
    position fell outside the previous frame (clamped, not seen).
    """
    hh, wh = image.shape[:2]
    mx, my = reprojection_maps(motion, scale)
    out = cv2.remap(image.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (mx >= 0) & (mx <= wh - 1) & (my >= 0) & (my <= hh - 1)
    return out.reshape(image.shape), inside


def relative_warping_error(
    out_prev: np.ndarray,
    out: np.ndarray,
    gt_prev: np.ndarray,
    gt: np.ndarray,
    motion: np.ndarray,
    scale: int,
    *,
    exclude: np.ndarray | None = None,
    border: int | None = None,
) -> float:
    """Mean ``|(out - R(out_prev)) - (gt - R(gt_prev))|`` in grey levels over static, in-frame pixels.

    ``R`` is ``reproject_hr`` with ``motion`` (LR pixels, previous = current
    + motion); ``exclude`` (HR bool) drops pixels (the moving layer, whose
    motion is not the camera's); ``border`` HR pixels (default ``scale``)
    are shaved. NaN when no pixel is left.
    """
    border = scale if border is None else border
    warped_out, inside = reproject_hr(out_prev, motion, scale)
    warped_gt, _ = reproject_hr(gt_prev, motion, scale)
    change = (out.astype(np.float32) - warped_out) - (gt.astype(np.float32) - warped_gt)
    keep = inside if exclude is None else inside & ~exclude
    if border > 0:
        keep = keep.copy()
        keep[:border], keep[-border:], keep[:, :border], keep[:, -border:] = False, False, False, False
    if not keep.any():
        return float("nan")
    return float(np.abs(change[keep]).mean())


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray, *, border: int = 0) -> float:
    """PSNR-Y (dB, 0..255) over the pixels of ``mask`` only, ``border`` pixels shaved; NaN for an empty mask."""
    if a.shape != b.shape or mask.shape != a.shape[:2]:
        raise ValueError(f"shapes differ: {a.shape}, {b.shape}, mask {mask.shape}")
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if border > 0:
        inner = (slice(border, -border), slice(border, -border))
        ya, yb, mask = ya[inner], yb[inner], mask[inner]
    if not mask.any():
        return float("nan")
    mse = float(np.mean((ya[mask] - yb[mask]) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def flat_mask(reference: np.ndarray, scale: int) -> np.ndarray:
    """Pixels of ``reference`` (RGB uint8) whose Y varies by less than ``FLAT_STD`` over 5 x 5 (sky, walls),
    ``scale`` pixels at each edge left out (a whole number of blocks: the phases stay aligned)."""
    y = rgb_to_y(reference).astype(np.float32)
    mean, square = cv2.blur(y, (5, 5)), cv2.blur(y * y, (5, 5))
    flat = np.sqrt(np.maximum(square - mean * mean, 0.0)) < FLAT_STD
    flat[:scale], flat[-scale:], flat[:, :scale], flat[:, -scale:] = False, False, False, False
    return flat


class PhasePattern:
    """The mean Y per pixel phase (``y % scale``, ``x % scale``) over flat pixels, less the overall mean,
    gathered over frames: a fixed grid an upscaler prints on flat regions shows as a spread by phase."""

    def __init__(self, scale: int) -> None:
        self.scale = scale
        self.sums, self.counts = np.zeros((scale, scale)), np.zeros((scale, scale))

    def add(self, image: np.ndarray, mask: np.ndarray) -> None:
        """Gather the flat pixels ``mask`` of ``image`` (RGB uint8)."""
        y, s = rgb_to_y(image).astype(np.float64), self.scale
        for i in range(s):
            for j in range(s):
                m = mask[i::s, j::s]
                self.sums[i, j] += y[i::s, j::s][m].sum()
                self.counts[i, j] += m.sum()

    def pattern(self) -> np.ndarray | None:
        """``scale x scale`` mean by phase less their mean (grey levels); None before any flat pixel."""
        if (self.counts == 0).any():
            return None
        means = self.sums / self.counts
        return means - means.mean()


def _grid_figures(ours: PhasePattern, truth: PhasePattern) -> dict:
    """How far the output's pattern by phase is from the reference's (the largest gap), and each one's spread."""
    a, b = ours.pattern(), truth.pattern()
    if a is None or b is None:
        return {"grid_error": None, "grid_pp": None, "reference_grid_pp": None}
    return {"grid_error": _r(float(np.abs(a - b).max()), 3), "grid_pp": _r(float(np.ptp(a)), 3),
            "reference_grid_pp": _r(float(np.ptp(b)), 3)}  # fmt: skip


def fade_lag(outputs_y: Sequence[float], truths_y: Sequence[float], start: int) -> int:
    """Frames from ``start`` (a fade's last frame) until the output's mean level stays within
    ``LEVEL_TOLERANCE`` of the reference's; the frames left when it never does."""
    gaps = [abs(o - t) for o, t in zip(outputs_y[start:], truths_y[start:])]
    late = [k for k, g in enumerate(gaps) if g > LEVEL_TOLERANCE]
    return 0 if not late else late[-1] + 1


def _mean(values: Iterable[float]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(kept)) if kept else None


def _r(value: float | None, digits: int) -> float | None:
    """Rounded for JSON: None for a missing figure, and for an infinite PSNR (identical images)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def evaluate_sequence(subject: SequenceSubject, sequence: NamedSequence, *, warmup: int = 8) -> dict:
    """One subject over one sequence, from a fresh stream: per-frame and summary figures (see the module doc)."""
    frames = sequence.frames
    scale = frames[0].hr.shape[0] // frames[0].lr.shape[0]
    cut = sequence.cut_at
    subject.reset()
    psnrs, ssims, times, dynamic, warps, uncovered, levels = [], [], [], [], [], [], []
    ours, truth = PhasePattern(scale), PhasePattern(scale)
    out_prev = gt_prev = None
    for t, frame in enumerate(frames):
        start = time.perf_counter()
        out = subject.step(frame)
        times.append((time.perf_counter() - start) * 1000.0)
        if out.shape != frame.hr.shape or out.dtype != np.uint8:
            raise ValueError(f"{subject.name} returned {out.shape} {out.dtype} for a {frame.hr.shape} uint8 frame")
        psnrs.append(psnr(out, frame.hr, border=scale))
        ssims.append(ssim(out, frame.hr, border=scale))
        if sequence.kind in LAYER_KINDS and t >= warmup:
            dynamic.append(masked_psnr(out, frame.hr, frame.dynamic, border=scale))
        if sequence.kind in LAYER_KINDS and frame.disoccluded is not None and frame.disoccluded.any():
            uncovered.append(masked_psnr(out, frame.hr, frame.disoccluded, border=scale))
        if sequence.kind in GRID_KINDS and t >= warmup:
            mask = flat_mask(frame.hr, scale)
            ours.add(out, mask)
            truth.add(frame.hr, mask)
        if sequence.kind == "fade":
            levels.append((float(rgb_to_y(out).mean()), float(rgb_to_y(frame.hr).mean())))
        if t >= 1 and not frame.cut:
            warps.append(
                relative_warping_error(out_prev, out, gt_prev, frame.hr, frame.motion, scale, exclude=frame.dynamic)
            )
        out_prev, gt_prev = out, frame.hr
    record: dict = {"name": sequence.name, "kind": sequence.kind, "frames": len(frames)}
    if sequence.kind in STEADY_KINDS:
        record["steady_psnr"] = _r(_mean(psnrs[warmup:]), 3)
        record["steady_ssim"] = _r(_mean(ssims[warmup:]), 4)
    if sequence.kind in LAYER_KINDS:
        record["dynamic_psnr"] = _r(_mean(dynamic), 3)
        record["disoccluded_psnr"] = _r(_mean(v for v in uncovered if math.isfinite(v)), 3)
    if sequence.kind in GRID_KINDS:
        record.update(_grid_figures(ours, truth))
    if sequence.kind == "fade":
        end = min(FADE_FRAMES, len(frames) - 1)
        record["fade_lag"] = fade_lag([o for o, _ in levels], [t for _, t in levels], end)
        record["fade_gap"] = _r(_mean(abs(o - t) for o, t in levels[end : end + 3]), 3)
    if cut is not None:
        record["cut_at"] = cut
        record["after_cut_psnr"] = _r(_mean(psnrs[cut : cut + AFTER_CUT]), 3)
        record["before_cut_psnr"] = _r(_mean(psnrs[max(0, cut - AFTER_CUT) : cut]), 3)
    record["warping_error"] = _r(_mean(warps), 3)
    record["median_ms"] = _r(float(np.median(times)), 3)
    record["psnr"] = [_r(v, 3) for v in psnrs]
    record["ssim"] = [_r(v, 4) for v in ssims]
    record["ms"] = [_r(v, 3) for v in times]
    return record


_SUMMARY_KEYS = {
    "pan": ("steady_psnr", "steady_ssim", "warping_error"),
    "layer": ("steady_psnr", "steady_ssim", "dynamic_psnr", "disoccluded_psnr", "warping_error"),
    "cut": ("after_cut_psnr", "before_cut_psnr", "warping_error"),
    "still": ("steady_psnr", "steady_ssim", "grid_error", "grid_pp", "reference_grid_pp", "warping_error"),
    "still-unjittered": ("steady_psnr", "steady_ssim", "warping_error"),
    "slow": (
        "steady_psnr",
        "steady_ssim",
        "dynamic_psnr",
        "disoccluded_psnr",
        "grid_error",
        "grid_pp",
        "reference_grid_pp",
        "warping_error",
    ),
    "fade": ("fade_lag", "fade_gap", "warping_error"),
    "moderate": ("steady_psnr", "steady_ssim", "dynamic_psnr", "disoccluded_psnr", "warping_error"),
}


def _summary(records: list[dict]) -> dict:
    """Per kind: the mean of each figure over the sequences of that kind, and the median frame time; then all."""
    out: dict = {}
    for kind in KINDS:
        mine = [r for r in records if r["kind"] == kind]
        if not mine:
            continue
        entry = {"sequences": len(mine)}
        for key in _SUMMARY_KEYS[kind]:
            entry[key] = _r(_mean(r.get(key) for r in mine), 4 if key.endswith("ssim") else 3)
        entry["median_ms"] = _r(float(np.median([v for r in mine for v in r["ms"]])), 3)
        out[kind] = entry
    steady = [r for r in records if r["kind"] in ("pan", "layer")]
    out["all"] = {
        "sequences": len(records),
        "steady_psnr": _r(_mean(r.get("steady_psnr") for r in steady), 3),
        "steady_ssim": _r(_mean(r.get("steady_ssim") for r in steady), 4),
        "warping_error": _r(_mean(r.get("warping_error") for r in records), 3),
        "median_ms": _r(float(np.median([v for r in records for v in r["ms"]])), 3) if records else None,
    }
    return out


def evaluate_sequences(
    subjects: Sequence[SequenceSubject],
    sequences: Iterable[NamedSequence],
    *,
    warmup: int = 8,
    on_step: Callable[[SequenceSubject, NamedSequence], None] | None = None,
) -> dict:
    """Every subject over every sequence (sequence by sequence, subjects interleaved); a plain dict for JSON.

    ``{"warmup", "sequences": [{name, kind, frames, cut_at}], "subjects": [{name, kind, engine, motion, jitter,
    "summary": {pan|layer|cut|all: figures}, "sequences": [per-sequence records]}]}``; figures are None
    where they do not apply (no frame at or past ``warmup``, no moving layer on screen).
    """
    if warmup < 0:
        raise ValueError(f"warmup must not be negative, got {warmup}")
    if not subjects:
        raise ValueError("no subjects to evaluate")
    names = [s.name for s in subjects]
    if len(set(names)) != len(names):
        raise ValueError(f"subject names must differ, got {names}")
    records: dict[str, list[dict]] = {s.name: [] for s in subjects}
    seen = []
    for sequence in sequences:
        seen.append({"name": sequence.name, "kind": sequence.kind, "frames": len(sequence.frames),
                     "cut_at": sequence.cut_at})  # fmt: skip
        for subject in subjects:
            records[subject.name].append(evaluate_sequence(subject, sequence, warmup=warmup))
            if on_step is not None:
                on_step(subject, sequence)
    return {
        "warmup": warmup,
        "after_cut_frames": AFTER_CUT,
        "sequences": seen,
        "subjects": [
            {**describe_subject(s), "summary": _summary(records[s.name]), "sequences": records[s.name]}
            for s in subjects
        ],
    }


def release_quality(
    model, folders: Sequence[str | Path], *, size: tuple[int, int] = (96, 64), frames: int = 32,
    limit: int | None = 12,
) -> dict:  # fmt: skip
    """What a temporal model's manifest entry records, per folder: its figures beside bicubic and accumulation.

    The model runs with the exact motion on ``standard_sequences`` (the first
    ``limit`` images of each folder): steady-state PSNR/SSIM, the moving
    layer's PSNR, frames 1-3 after an unsignalled cut, the warping error.
    """
    subjects = [
        TemporalSubject(model, "onnxruntime-cpu"),
        BicubicSubject(model.scale),
        AccumulationSubject(model.scale),
    ]
    out = {}
    for folder in folders:
        report = evaluate_sequences(subjects, iter_standard_sequences(folder, model.scale, size=size, frames=frames,
                                                                      limit=limit))  # fmt: skip
        ours, bicubic, accumulation = (s["summary"] for s in report["subjects"])
        out[Path(folder).name] = {
            "sequences": ours["all"]["sequences"],
            "size": list(size),
            "frames": frames,
            "psnr": ours["all"]["steady_psnr"],
            "ssim": ours["all"]["steady_ssim"],
            "layer_psnr": ours.get("layer", {}).get("dynamic_psnr"),
            "after_cut_psnr": ours.get("cut", {}).get("after_cut_psnr"),
            "still_psnr": ours.get("still", {}).get("steady_psnr"),
            "still_unjittered_psnr": ours.get("still-unjittered", {}).get("steady_psnr"),
            "slow_psnr": ours.get("slow", {}).get("steady_psnr"),
            "accumulation_slow_psnr": accumulation.get("slow", {}).get("steady_psnr"),
            "accumulation_still_psnr": accumulation.get("still", {}).get("steady_psnr"),
            "disoccluded_psnr": ours.get("layer", {}).get("disoccluded_psnr"),
            "grid_error": ours.get("still", {}).get("grid_error"),
            "fade_lag": ours.get("fade", {}).get("fade_lag"),
            "bicubic_still_psnr": bicubic.get("still", {}).get("steady_psnr"),
            "bicubic_still_unjittered_psnr": bicubic.get("still-unjittered", {}).get("steady_psnr"),
            "warping_error": ours["all"]["warping_error"],
            "bicubic_psnr": bicubic["all"]["steady_psnr"],
            "bicubic_after_cut_psnr": bicubic.get("cut", {}).get("after_cut_psnr"),
            "accumulation_psnr": accumulation["all"]["steady_psnr"],
            "accumulation_after_cut_psnr": accumulation.get("cut", {}).get("after_cut_psnr"),
            "degradation": "sequence",
            "engine": "onnxruntime-cpu",
        }
    return out
