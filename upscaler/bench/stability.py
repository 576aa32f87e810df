"""Clip mode of ``upscaler bench``: temporal stability on real video, which has no ground truth.

The figure is the **warping error of consecutive outputs under the input's
optical flow** (the ``E_warp`` of Lai et al., "Learning blind video temporal
consistency", ECCV 2018, with the flow taken from the low-resolution input).
Exactly, for one subject (a model, or bicubic) over one clip:

1. The clip's frames ``x_0 .. x_{n-1}`` (decoded, and reduced to the input
   size by area averaging when one is asked for) are upscaled in order as one
   stream (a temporal model keeps its history) to ``y_0 .. y_{n-1}``.
2. For each consecutive pair ``(t-1, t)`` the optical flow of the input is
   estimated on its luma, both ways: backward ``b`` (for each pixel of
   ``x_t``, where the same content was in ``x_{t-1}``: previous = current +
   ``b``, the motion convention of DESIGN.md section 9) and forward ``f``.
   Farneback by default, not the DIS flow that ``x4-temporal`` estimates its
   own motion with, so the metric does not share the model's flow errors.
   One flow per pair, the same for every subject.
3. Reliable pixels: ``x + b(x)`` lies inside ``x_{t-1}`` and the two flows
   agree (forward-backward consistency, Sundaram et al. 2010):
   ``|b(x) + f(x + b(x))|^2 <= alpha (|b(x)|^2 + |f(x + b(x))|^2) + beta``.
   Occluded, disoccluded and mis-tracked pixels fail it; ``border``
   low-resolution pixels at each edge are dropped too.
4. The flow is resized bilinearly to the output size and multiplied by the
   scale; ``y_{t-1}`` is warped to ``t`` with it (bilinear, ``cv2.remap``);
   the pair's error is the mean of ``|y_t - W(y_{t-1})|`` over the reliable
   output pixels (the low-resolution mask, nearest-neighbour upsampled) and
   the three RGB channels, in grey levels (0..255). 0: the output changed
   exactly as the input's motion says; flicker, shimmer and crawling detail
   raise it.
5. Cuts: the same figure on the input itself (scale 1) is the pair's input
   error. A pair whose input error exceeds ``cut_factor`` times the clip's
   median input error and ``cut_floor`` grey levels, or whose reliable
   share is under ``min_reliable``, is skipped for every subject.
6. Per subject: the mean and median over the kept pairs, and ratios of the
   mean to the reference subject's (``x4-fast`` by default) and to bicubic's;
   also the mean over the still reliable pixels (input flow under ``still``
   low-resolution pixels per frame) and over the moving ones, each pair's
   figure restricted to them.
   Bicubic shows how much the input itself changes (sensor noise, compression
   flicker, the flow's own error), magnified as a plain resize magnifies it.

The figure rewards blur as well as stability (a flat grey output scores 0),
so each subject also gets a detail figure: the mean ``|Laplacian|`` of its
output's luma (higher: sharper, or noisier).

The metric is pure numpy and OpenCV (``estimate_flow``, ``consistency_mask``,
``pair_flow``, ``warp_by_flow``, ``warping_error``, ``skipped_pairs``,
``summarise``); ``read_clip``, ``build_clip_subjects`` and ``run_clip`` run it
over a file.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "ALPHA",
    "BETA",
    "BORDER",
    "CUT_FACTOR",
    "CUT_FLOOR",
    "FLOW_METHODS",
    "MIN_RELIABLE",
    "STILL",
    "ClipSubject",
    "PairFlow",
    "bicubic_subject",
    "build_clip_subjects",
    "clip_note",
    "consistency_mask",
    "detail",
    "estimate_flow",
    "format_clip_table",
    "pair_flow",
    "read_clip",
    "run_clip",
    "skipped_pairs",
    "still_mask",
    "summarise",
    "warp_by_flow",
    "warping_error",
]

ALPHA = 0.01  #: forward-backward consistency: tolerance relative to the flows' squared lengths
BETA = 0.5  #: forward-backward consistency: absolute tolerance, squared low-resolution pixels
BORDER = 2  #: low-resolution pixels dropped at each edge (flow is poorest there)
CUT_FACTOR = 4.0  #: a pair is a cut when its input error exceeds this many times the clip's median...
CUT_FLOOR = 10.0  #: ...and this many grey levels
MIN_RELIABLE = 0.2  #: a pair with a smaller share of reliable pixels is skipped (the flow failed)
STILL = 0.25  #: input flow under this many low-resolution pixels per frame counts as still
FLOW_METHODS = ("farneback", "dis")


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def estimate_flow(source: np.ndarray, target: np.ndarray, method: str = "farneback") -> np.ndarray:
    """``H x W x 2`` float32: for each pixel of ``source``, the offset to the same content in ``target``.

    ``source`` and ``target`` are uint8 RGB (or grey) of one size; the flow
    is computed on luma. ``farneback``: ``cv2.calcOpticalFlowFarneback``
    (4 levels, 15 px window, 3 iterations); ``dis``: ``cv2.DISOpticalFlow``,
    medium preset.
    """
    a, b = _grey(source), _grey(target)
    if a.shape != b.shape:
        raise ValueError(f"frames differ in size: {a.shape} and {b.shape}")
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)
    raise ValueError(f"unknown flow method {method!r}; choose from {', '.join(FLOW_METHODS)}")


def _sample_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx + flow[..., 0], gy + flow[..., 1]


def _inside(mx: np.ndarray, my: np.ndarray, w: int, h: int) -> np.ndarray:
    return (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)


def consistency_mask(
    backward: np.ndarray, forward: np.ndarray, *, alpha: float = ALPHA, beta: float = BETA
) -> np.ndarray:
    """Bool ``H x W``: where ``backward`` (current to previous) and ``forward`` (previous to current) agree.

    Pixel ``x`` is reliable when ``x + b(x)`` lies inside the previous frame
    and ``|b + f_w|^2 <= alpha (|b|^2 + |f_w|^2) + beta``, with ``f_w`` the
    forward flow sampled (bilinear) at ``x + b(x)``.
    """
    h, w = backward.shape[:2]
    mx, my = _sample_maps(backward)
    fw = cv2.remap(forward, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gap = ((backward + fw) ** 2).sum(-1)
    bound = alpha * ((backward**2).sum(-1) + (fw**2).sum(-1)) + beta
    return (gap <= bound) & _inside(mx, my, w, h)


@dataclass(frozen=True)
class PairFlow:
    """The input's flow for one pair of consecutive frames, and where it is reliable."""

    flow: np.ndarray  #: ``H x W x 2`` float32, low-resolution pixels: previous position = current + flow
    mask: np.ndarray  #: ``H x W`` bool: reliable pixels (consistent, inside, off the border)

    @property
    def reliable(self) -> float:
        """Share of the frame's pixels that are reliable."""
        return float(self.mask.mean())


def _shave(mask: np.ndarray, border: int) -> np.ndarray:
    if border > 0:
        mask = mask.copy()
        mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = False, False, False, False
    return mask


def pair_flow(
    previous: np.ndarray,
    current: np.ndarray,
    *,
    method: str = "farneback",
    alpha: float = ALPHA,
    beta: float = BETA,
    border: int = BORDER,
) -> PairFlow:
    """The flow of the pair ``(previous, current)`` of input frames (both ways) and its reliable pixels."""
    backward = estimate_flow(current, previous, method)
    forward = estimate_flow(previous, current, method)
    mask = consistency_mask(backward, forward, alpha=alpha, beta=beta)
    return PairFlow(backward, _shave(mask, border))


def warp_by_flow(image: np.ndarray, flow: np.ndarray, scale: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (the previous frame, ``scale`` times ``flow``'s size) warped to the current frame.

    The low-resolution ``flow`` is resized bilinearly to the image's size and
    multiplied by ``scale``; output pixel ``p`` reads ``image`` at ``p +
    flow(p)`` (bilinear, edges replicated). Returns ``(float32 image, bool
    mask)``, the mask False where the position fell outside the image.
    """
    h, w = flow.shape[:2]
    if image.shape[:2] != (h * scale, w * scale):
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}, flow {w}x{h} at scale {scale}")
    if scale != 1:
        flow = cv2.resize(flow, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR) * np.float32(scale)
    mx, my = _sample_maps(flow)
    warped = cv2.remap(image.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(image.shape), _inside(mx, my, w * scale, h * scale)


def _difference(previous: np.ndarray, current: np.ndarray, pair: PairFlow, scale: int) -> tuple[np.ndarray, np.ndarray]:
    if previous.shape != current.shape:
        raise ValueError(f"outputs differ in shape: {previous.shape} and {current.shape}")
    warped, inside = warp_by_flow(previous, pair.flow, scale)
    diff = np.abs(current.astype(np.float32) - warped)
    return (diff.mean(axis=2) if diff.ndim == 3 else diff), inside


def _upsample_mask(mask: np.ndarray, scale: int) -> np.ndarray:
    return mask if scale == 1 else np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)


def _masked_mean(diff: np.ndarray, keep: np.ndarray) -> float:
    return float(diff[keep].mean()) if keep.any() else float("nan")


def warping_error(
    previous: np.ndarray, current: np.ndarray, pair: PairFlow, scale: int = 1, where: np.ndarray | None = None
) -> float:
    """Mean ``|current - W(previous)|`` in grey levels over ``pair``'s reliable pixels (and channels).

    ``previous`` and ``current`` are consecutive outputs (``scale`` times the
    input's size); ``W`` is ``warp_by_flow`` with ``pair.flow``; ``where``
    (low-resolution bool) narrows the pixels further. NaN when no pixel is
    left.
    """
    diff, inside = _difference(previous, current, pair, scale)
    mask = pair.mask if where is None else pair.mask & where
    return _masked_mean(diff, inside & _upsample_mask(mask, scale))


def still_mask(pair: PairFlow, still: float = STILL) -> np.ndarray:
    """Low-resolution bool: where the input's flow is under ``still`` pixels (the rest of the frame moves)."""
    return np.hypot(pair.flow[..., 0], pair.flow[..., 1]) < still


def detail(image: np.ndarray) -> float:
    """Mean ``|Laplacian|`` (3x3) of the image's luma, grey levels: higher is sharper, or noisier."""
    return float(np.abs(cv2.Laplacian(_grey(image).astype(np.float32), cv2.CV_32F)).mean())


def skipped_pairs(
    input_errors: Sequence[float],
    reliable: Sequence[float] | None = None,
    *,
    factor: float = CUT_FACTOR,
    floor: float = CUT_FLOOR,
    min_reliable: float = MIN_RELIABLE,
) -> list[str | None]:
    """For each pair, why it is skipped (``"cut"``, ``"unreliable"``) or ``None`` when it counts.

    A cut: the pair's input warping error above ``factor`` times the median
    over all pairs and above ``floor``. Unreliable: a share of reliable
    pixels under ``min_reliable``, or no figure (NaN).
    """
    finite = [e for e in input_errors if np.isfinite(e)]
    limit = max(factor * statistics.median(finite), floor) if finite else floor
    reliable = reliable if reliable is not None else [1.0] * len(input_errors)
    out: list[str | None] = []
    for error, share in zip(input_errors, reliable, strict=True):
        if not np.isfinite(error) or share < min_reliable:
            out.append("unreliable")
        elif error > limit:
            out.append("cut")
        else:
            out.append(None)
    return out


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def summarise(errors: Sequence[float], skipped: Sequence[str | None]) -> dict:
    """Mean and median (grey levels) over the pairs not skipped, and how many counted."""
    kept = [e for e, why in zip(errors, skipped, strict=True) if why is None and np.isfinite(e)]
    if not kept:
        return {"mean": None, "median": None, "pairs": 0}
    return {"mean": _r(statistics.fmean(kept)), "median": _r(statistics.median(kept)), "pairs": len(kept)}


# --------------------------------------------------------------------------- running it over a clip


@dataclass
class ClipSubject:
    """One stream's upscaler: ``step`` takes each input frame in order and returns its output."""

    name: str
    kind: str  #: ``bicubic``, ``single-frame`` or ``temporal``
    scale: int
    step: Callable[[np.ndarray], np.ndarray]
    engine: str | None = None
    motion: str | None = None  #: how a temporal subject gets its motion (``estimated``: ``motion=None``)
    jitter: str | None = None  #: the jitter a temporal subject is given (``zero``)

    def describe(self) -> dict:
        """What the report says about the subject."""
        return {
            "name": self.name,
            "kind": self.kind,
            "engine": self.engine,
            "motion": self.motion,
            "jitter": self.jitter,
        }


def bicubic_subject(scale: int) -> ClipSubject:
    """OpenCV bicubic (``INTER_CUBIC``) on each frame alone: the reference for how much the input changes."""

    def step(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        return cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)

    return ClipSubject("bicubic", "bicubic", scale, step, engine="opencv")


def build_clip_subjects(
    models: Sequence[str],
    *,
    backend: str = "auto",
    threads: int | None = None,
    precision: str | None = None,
) -> list[ClipSubject]:
    """Each model (names, aliases or paths) in order, then bicubic; all of one scale.

    A temporal model runs as ``TemporalUpscaler`` with ``jitter=(0, 0)`` and
    ``motion=None`` (real video has neither: the upscaler estimates motion);
    a single-frame model as ``Upscaler`` (whole frames, ``precision``).
    """
    from upscaler.bench.sequence import models_of_one_scale
    from upscaler.facade import Upscaler
    from upscaler.temporal.facade import TemporalUpscaler

    descriptors = models_of_one_scale(models, "clip mode")
    subjects = []
    for d in descriptors:
        if d.temporal:
            ts = TemporalUpscaler(d, backend, threads=threads)
            subjects.append(
                ClipSubject(
                    d.name,
                    "temporal",
                    ts.scale,
                    lambda frame, ts=ts: ts.upscale(frame, jitter=(0.0, 0.0), motion=None),
                    engine=f"{ts.engine.name} {ts.engine.precision}",
                    motion="estimated",
                    jitter="zero",
                )
            )
        else:
            up = Upscaler(d, backend, threads=threads, precision=precision, tile=0)
            engine = f"{up.engine.name} {up.engine.precision}"
            subjects.append(ClipSubject(d.name, "single-frame", up.scale, up.upscale, engine=engine))
    subjects.append(bicubic_subject(descriptors[0].scale))
    return subjects


def read_clip(
    path: str | Path, *, frames: int, size: tuple[int, int] | None = None, start: int = 0
) -> Iterator[np.ndarray]:
    """Frames ``start .. start + frames - 1`` of ``path``'s first video stream as ``H x W x 3`` uint8 RGB.

    In the decoder's output (display) order; with ``size`` (``(w, h)``) each
    is reduced to it by area averaging (``cv2.INTER_AREA``). Stops early at
    the end of the stream. ``VideoError`` for a file that is not a video.
    """
    from upscaler.video.probe import VideoError, open_input

    with open_input(Path(path)) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        taken = 0
        for index, frame in enumerate(container.decode(stream)):
            if index < start:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
                rgb = cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_AREA)
            yield rgb
            taken += 1
            if taken >= frames:
                return


def run_clip(
    frames: Iterable[np.ndarray],
    subjects: Sequence[ClipSubject],
    *,
    flow: str = "farneback",
    reference: str | None = None,
    alpha: float = ALPHA,
    beta: float = BETA,
    border: int = BORDER,
    cut_factor: float = CUT_FACTOR,
    cut_floor: float = CUT_FLOOR,
    min_reliable: float = MIN_RELIABLE,
    still: float = STILL,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """Every subject over ``frames`` (one stream each), the warping error per pair and its summary.

    ``reference``: the subject whose mean the others are divided by (default:
    the first single-frame model, else bicubic). Returns a JSON-ready dict:
    ``settings``, ``input`` (the input's own error), ``pairs`` (per pair:
    input error, reliable share, the still share of the reliable pixels, why
    skipped), ``subjects`` (each with
    ``mean``, ``median``, ``still``, ``moving``, ``ratio_to_reference``,
    ``ratio_to_bicubic``, ``detail`` and its per-pair ``errors``).
    """
    if flow not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {flow!r}; choose from {', '.join(FLOW_METHODS)}")
    names = [s.name for s in subjects]
    if len(set(names)) != len(names):
        raise ValueError(f"subject names must differ, got {names}")
    if any(s.scale != subjects[0].scale for s in subjects):
        raise ValueError("subjects of one scale only")
    if reference is None:
        reference = next((s.name for s in subjects if s.kind == "single-frame"), "bicubic")
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not a subject ({', '.join(names)})")
    tally = _ClipTally(subjects, dict(method=flow, alpha=alpha, beta=beta, border=border), still)
    for frame in frames:
        tally.add(frame)
        if on_step:
            on_step(tally.count)
    if tally.count < 2:
        raise ValueError(f"the clip gave {tally.count} frame(s): at least 2 are needed for one pair")
    skipped = skipped_pairs(tally.input_errors, tally.reliable, factor=cut_factor, floor=cut_floor,
                        min_reliable=min_reliable)  # fmt: skip
    h, w = tally.previous_in.shape[:2]
    scale = subjects[0].scale
    settings = {"frames": tally.count, "input": f"{w}x{h}", "output": f"{w * scale}x{h * scale}", "scale": scale,
                "flow": flow, "alpha": alpha, "beta": beta, "border": border, "cut_factor": cut_factor,
                "cut_floor": cut_floor, "min_reliable": min_reliable, "still": still}  # fmt: skip
    pairs = [
        {"frame": i + 1, "input_error": _r(e), "reliable": _r(share), "still": _r(calm), "skipped": why}
        for i, (e, share, calm, why) in enumerate(
            zip(tally.input_errors, tally.reliable, tally.still_shares, skipped, strict=True)
        )
    ]
    return {
        "settings": settings,
        "reference": reference,
        "input": summarise(tally.input_errors, skipped),
        "pairs": pairs,
        "subjects": tally.subjects_report(subjects, skipped, reference),
    }


class _ClipTally:
    """What ``run_clip`` gathers frame by frame: the input's error and reliability per pair, and per subject
    its errors (everywhere, still, moving) and detail."""

    def __init__(self, subjects: Sequence[ClipSubject], flow: dict, still: float) -> None:
        self.subjects, self.flow, self.still, self.count = subjects, flow, still, 0
        self.previous_in: np.ndarray | None = None
        self.previous_out: dict[str, np.ndarray] = {}
        self.input_errors: list[float] = []
        self.reliable: list[float] = []
        self.still_shares: list[float] = []  # of the reliable pixels
        self.errors: dict[str, list[float]] = {s.name: [] for s in subjects}
        self.parts = {s.name: {"still": [], "moving": []} for s in subjects}
        self.details: dict[str, list[float]] = {s.name: [] for s in subjects}

    def add(self, frame: np.ndarray) -> None:
        """Step every subject on ``frame`` and measure the pair it closes."""
        outputs = {s.name: s.step(frame) for s in self.subjects}
        for name, out in outputs.items():
            self.details[name].append(detail(out))
        if self.previous_in is not None:
            self._measure_pair(frame, outputs)
        self.previous_in, self.previous_out = frame, outputs
        self.count += 1

    def _measure_pair(self, frame: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        scale = self.subjects[0].scale
        pair = pair_flow(self.previous_in, frame, **self.flow)
        self.input_errors.append(warping_error(self.previous_in, frame, pair))
        self.reliable.append(pair.reliable)
        calm = still_mask(pair, self.still)
        self.still_shares.append(float((calm & pair.mask).sum() / max(pair.mask.sum(), 1)))
        regions = {"still": pair.mask & calm, "moving": pair.mask & ~calm}
        regions = {region: _upsample_mask(m, scale) for region, m in regions.items()}
        everywhere = _upsample_mask(pair.mask, scale)
        for name, out in outputs.items():
            diff, inside = _difference(self.previous_out[name], out, pair, scale)
            self.errors[name].append(_masked_mean(diff, inside & everywhere))
            for region, keep in regions.items():
                self.parts[name][region].append(_masked_mean(diff, inside & keep))

    def subjects_report(self, subjects: Sequence[ClipSubject], skipped: list, reference: str) -> list[dict]:
        """Per subject: its summary, still and moving means, ratios to the reference and bicubic, detail."""
        summaries = {s.name: summarise(self.errors[s.name], skipped) for s in subjects}

        def ratio(mine: float | None, theirs: float | None) -> float | None:
            return round(mine / theirs, 3) if mine is not None and theirs else None

        ref_mean, bicubic_mean = summaries[reference]["mean"], summaries.get("bicubic", {}).get("mean")
        return [
            {
                **s.describe(),
                **summaries[s.name],
                "still": summarise(self.parts[s.name]["still"], skipped)["mean"],
                "moving": summarise(self.parts[s.name]["moving"], skipped)["mean"],
                "ratio_to_reference": ratio(summaries[s.name]["mean"], ref_mean),
                "ratio_to_bicubic": ratio(summaries[s.name]["mean"], bicubic_mean),
                "detail": _r(statistics.fmean(self.details[s.name])),
                "errors": [_r(e) for e in self.errors[s.name]],
            }
            for s in subjects
        ]


def format_clip_table(report: dict) -> str:
    """A fixed-width table: one row per subject."""
    head = ("subject", "engine", "mean", "median", "still", "moving", f"x {report['reference']}", "x bicubic", "detail")

    def f(value, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    rows = [head]
    for s in report["subjects"]:
        cells = (s["name"], s.get("engine") or "-", f(s["mean"]), f(s["median"]), f(s["still"]), f(s["moving"]))
        rows.append((*cells, f(s["ratio_to_reference"]), f(s["ratio_to_bicubic"]), f(s["detail"], 2)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(v.rjust(w) if i > 1 else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def clip_note(report: dict) -> str:
    """What the figures mean (printed under the table and written to the JSON)."""
    st, counted = report["settings"], report["input"]["pairs"]
    skipped = [p for p in report["pairs"] if p["skipped"]]
    return (
        f"{st['frames']} frames, {st['input']} -> {st['output']} (x{st['scale']}); {counted} consecutive pairs counted"
        f"{f', {len(skipped)} skipped (cuts or failed flow)' if skipped else ''}. Warping error: mean |y_t - W(y_t-1)| "
        f"in grey levels over RGB, W warping the previous output by the input's {st['flow']} flow scaled to the "
        "output, over pixels where forward and backward flow agree (lower is steadier; blur lowers it too: 'detail' "
        f"is the mean |Laplacian| of the output's luma); still / moving: the same over reliable pixels whose input "
        f"flow is under / at least {st['still']} px per frame. Temporal models: jitter (0, 0), motion estimated by the "
        "upscaler (motion=None)."
    )
