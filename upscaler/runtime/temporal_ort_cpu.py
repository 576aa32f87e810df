"""ONNX Runtime on the CPU for temporal models: OpenCV reprojection + the model's folded graph (``stream``).

Accumulating models (``AccumSR``) reproject their state a block of sub-pixels
at a time (``fold_cpu``, not OpenCV) and run their folded graph as the
network's part only; the weighted mean, the state's unfolding and the shown frame are fused
passes (``accum_cpu``) and 3x3 display filters small graphs of their own, each
run only where a pixel shows it (1x1 filters are applied in the pass that
shows the frame: their weights are read from their graphs as the engine loads;
luma detail filters are graphs over the luma, added in that pass).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from upscaler.archs import DISPLAY_FILTERS, NETWORK_OUTPUTS
from upscaler.models import ModelDescriptor, ModelError
from upscaler.runtime.base import EngineOptions, EngineUnavailable
from upscaler.runtime.ort_cpu import cpu_session, import_onnxruntime
from upscaler.runtime.stream import (
    Scratch,
    StreamState,
    depth_input,
    fold_reproject,
    rgb8_inputs,
    rgb8_output,
    start_state,
    trim_heap,
    unfold,
)

__all__ = ["OrtCpuTemporalEngine"]

#: How a temporal model's CPU graphs are made: built-in models ship them.
EXPORT_HINT = "upscaler export release, or export.temporal.export_temporal for weights of your own"


def _session(model: ModelDescriptor, kind: str, options: EngineOptions):
    entry = model.graph(kind)
    if entry is None:
        raise EngineUnavailable(f"model {model.name!r} has no {kind} graph beside its weights ({EXPORT_HINT})")
    try:
        return cpu_session(entry.verified(), options)
    except ModelError as exc:
        raise EngineUnavailable(str(exc)) from None


def _run_into(session, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``session`` on C-contiguous ``feeds``, its outputs written into ``outputs`` (arrays of their shapes)."""
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_cpu_input(name, array)
    for name, array in outputs.items():
        binding.bind_output(name, "cpu", 0, array.dtype, array.shape, array.ctypes.data)
    session.run_with_iobinding(binding)
    return outputs


def _filter_weights(session, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """A 1x1 display filter's ``(matrix, bias)`` (s² x s², s²: sub-pixel out, sub-pixel in) read from its graph:
    it is run on one pixel per sub-pixel lit alone, and one dark."""
    s2 = scale * scale
    probe = np.zeros((3, s2, 1, s2 + 1), np.float32)
    probe[:, np.arange(s2), 0, np.arange(s2)] = 1.0
    out = session.run(None, {"result": probe})[0][0, :, 0]  # s² x (s² + 1)
    bias = out[:, s2].copy()
    return np.ascontiguousarray(out[:, :s2] - bias[:, None]), bias


def _accum_start(frame: np.ndarray, scale: int) -> np.ndarray:
    """An accumulating stream's first state, interleaved (``sH x sW x 4``): the frame upsampled, nothing gathered."""
    up = start_state(frame, scale)
    state = np.zeros((*up.shape[1:], 4), np.float32)
    state[..., :3] = up.transpose(1, 2, 0)
    return state


def _bands(rest: np.ndarray | None) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """The band of rows (``top, bottom``) that shows each filter (0, moving: where ``rest``, H x W, is not set;
    1, still: where it is), from the first row to the last that has such a pixel; None for every row (``rest``
    None: the frame shows one filter, or the band is the whole frame)."""
    if rest is None:
        return None, None
    bands = []
    for shows in (~rest, rest):
        shown = np.flatnonzero(shows.any(axis=1))
        whole = shown[0] == 0 and shown[-1] == rest.shape[0] - 1
        bands.append(None if whole else (int(shown[0]), int(shown[-1]) + 1))
    return bands[0], bands[1]


class OrtCpuTemporalEngine(StreamState):
    """ONNX Runtime on the CPU: OpenCV reprojection + the folded graph."""

    PER_STREAM = ("_history", "_depth_kept", "_shown", "_depth_plane", "_hold")
    name = "onnxruntime-cpu"
    device = "cpu"
    precision = "fp32"

    def __init__(self, model: ModelDescriptor, options: EngineOptions | None = None) -> None:
        options = options or EngineOptions()
        if options.precision not in (None, "fp32"):
            raise EngineUnavailable(f"{self.name} runs temporal models in fp32 only")
        # an accumulating model's threads must not spin while the kernels run between its graphs
        quiet = replace(options, spin=False) if model.arch == "accum" else options
        self._session = _session(model, "folded", quiet)
        inputs = {i.name for i in self._session.get_inputs()}
        self._accum = "colour" in inputs  # the network's part only: the mean and the filters are run here
        if self._accum:
            from upscaler.runtime import fold_cpu, hold
            from upscaler.runtime.accum_cpu import constants, kernel_threads, warm

            self._output_names = [o.name for o in self._session.get_outputs()]
            if self._output_names != list(NETWORK_OUTPUTS):
                outputs = ", ".join(self._output_names)
                raise EngineUnavailable(f"model {model.name!r}: its CPU graph is from an older export (outputs "
                                        f"{outputs}); export it again ({EXPORT_HINT})")  # fmt: skip
            self._weighing = constants(model.params)
            warm()  # the kernels compiled (or loaded from the cache) now, not on the first frame
            fold_cpu.warm()
            hold.warm()
            self._open_filter = lambda kind: _session(model, kind, quiet)
            #: shared by every fork (``release`` renews the sessions in place)
            self._filters = {f: self._open_filter(f"display-{f}") for f in DISPLAY_FILTERS
                             if model.graph(f"display-{f}")}  # fmt: skip
            self._details = {f: self._open_filter(f"detail-{f}") for f in DISPLAY_FILTERS
                             if model.graph(f"detail-{f}")}  # fmt: skip
            self._detail_pad = int(model.params.get("detail", 0)) // 2  # their input's replicated edges
            self._display_reach = int(model.params.get("display", 0)) // 2  # the display graphs' rows each side
            #: 1x1 filters are applied in the show's pass (``accum_cpu.show_filtered``): their weights, not graphs
            self._matrices, self._pairs = None, {}  # shared by every fork, as the sessions are
            if model.params.get("display") == 1:
                self._matrices = {f: _filter_weights(session, model.scale) for f, session in self._filters.items()}
                self._filters = {}
            self._threads = kernel_threads(options.threads)
            self._holds = bool(model.params.get("hold"))  # a still camera's history kept whole (``runtime.hold``)
        self.scale, self._channels, self._mode = model.scale, model.state_channels, model.reproject
        self._depth, self._shown_planes = model.depth, model.display_planes
        self._wants_motion = "motion" in inputs  # a display model's gate (the whole folded step)
        self._history: np.ndarray | None = None  # per stream: 4 bytes per state plane per output pixel
        self._depth_plane: np.ndarray | None = None  # per stream, accumulating models that take depth
        self._shown: np.ndarray | None = None  # per stream, accumulating models: the shown frame
        self._depth_kept: bool | None = None  # per stream: the state's depth plane holds a depth (not zeros)
        self._hold = None  # per stream, accumulating models with ``hold``: a ``runtime.hold.StillHold``
        self._scratch = Scratch()  # shared by every fork: 20 bytes per output pixel of the largest frame
        self._shrink = import_onnxruntime().RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def step_rgb8(self, frame: np.ndarray, jitter, motion: np.ndarray, reset: bool, depth=None) -> np.ndarray:
        """``step`` on an ``H x W x 3`` uint8 frame and ``H x W x 2`` motion: a new ``sH x sW x 3`` uint8 frame
        (``TemporalUpscaler``'s conversions; accumulating models write it as they unfold the shown frame)."""
        batch, jit, mv = rgb8_inputs(frame, jitter, motion)
        if not self._accum:
            return rgb8_output(self.step(batch, jit, mv, reset, depth)[0])
        return self._step(batch, jit, mv, reset, depth, rgb8=True)

    def step(
        self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool, depth: np.ndarray | None = None
    ) -> np.ndarray:
        """The output (``1 x 3 x sH x sW``); a view of the engine's buffers, valid until the next step."""
        return self._step(frame, jitter, motion, reset, depth)

    def _step(self, frame, jitter, motion, reset: bool, depth=None, rgb8: bool = False) -> np.ndarray:
        """``step``; with ``rgb8`` (accumulating models), a new ``sH x sW x 3`` uint8 frame instead."""
        if self._accum:
            return self._accum_step(frame, jitter, motion, reset, depth, rgb8)
        s, kept = self.scale, self._channels - self._shown_planes  # the planes the step reads back
        h, w = frame.shape[2:]
        fresh = reset or self._history is None or self._history.shape[1:] != (h * s, w * s)
        if fresh:
            read, motion = start_state(frame, s, kept), np.zeros_like(motion)
        else:
            read = self._history[self._channels - kept :]
        folded = self._scratch.take("folded", (kept * s * s, h, w))
        moved = kept - 1 if self._depth and not (self._depth_kept and not fresh) else kept  # zeros: not moved
        fold_reproject(read[:moved], motion[0], s, folded[: moved * s * s], self._scratch, self._mode)
        folded[moved * s * s :] = 0.0
        if fresh:  # the old history was read above: its buffer is free
            self._history = np.empty((self._channels, h * s, w * s), np.float32)
        self._depth_kept = depth is not None
        unfold(self._run(frame, jitter, folded[None], fresh, depth=depth, motion=motion)[0], s, self._history)
        return self._history[None, :3]

    def _run(self, frame, jitter, folded, fresh: bool, options=None, depth=None, motion=None, into=None):
        feeds = {"frame": frame, "jitter": jitter, "reset": np.array([[float(fresh)]], np.float32)}
        if self._accum:
            s2 = self.scale * self.scale
            feeds |= {"colour": folded[:, : 3 * s2], "weight": folded[:, 3 * s2 : 4 * s2]}
            if self._depth:  # the depth gap, made in place by ``_step``
                feeds["apart"] = folded[:, 4 * s2 :]
            return self._session.run(None, feeds, options) if into is None else _run_into(self._session, feeds, into)
        feeds["history"] = folded
        if self._depth:
            feeds["depth"] = depth_input(depth, frame)
        if self._wants_motion:
            h, w = frame.shape[2:]
            feeds["motion"] = np.zeros((1, 2, h, w), np.float32) if motion is None else motion
        return self._session.run(None, feeds, options)[0]

    def _accum_step(self, frame, jitter, motion, reset: bool, depth, rgb8: bool) -> np.ndarray:
        """The state reprojected and folded, the network's graph, then the mean and the new state (one pass),
        then the shown frame. The state is the colour and weight interleaved (``sH x sW x 4``: one resampling
        pass for the four) and, for a model that takes depth, the depth plane."""
        from upscaler.runtime import fold_cpu
        from upscaler.runtime.accum_cpu import combine

        s, s2 = self.scale, self.scale * self.scale
        h, w = frame.shape[2:]
        fresh = reset or self._history is None or self._history.shape[:2] != (h * s, w * s)
        if fresh:
            self._history, motion = _accum_start(frame, s), np.zeros_like(motion)
            self._depth_plane = np.zeros((h * s, w * s), np.float32) if self._depth else None
        folded = self._scratch.take("folded", ((5 if self._depth else 4) * s2, h, w))
        fold_cpu.fold_reproject_blocks(self._history, motion[0], s, folded[: 4 * s2], self._mode, self._threads)
        if self._depth:
            self._fold_depth(frame, motion, folded[4 * s2 :], fresh, depth)
        outputs = self._network_outputs(h, w)
        self._run(frame, jitter, folded[None], fresh, into=outputs)  # the depth gap is in ``folded``
        outputs = [x[0] for x in outputs.values()]
        result = self._scratch.take("result", (3 * s2, h, w))
        gathered = self._scratch.take("gathered", (s2, h, w))
        plane = None if depth is None else depth_input(depth, frame)[0, 0]
        hold = self._still_hold(frame[0], jitter[0], motion[0], fresh, outputs) if self._holds else None
        combine(frame[0], folded, outputs, self._weighing, fresh, s, plane, (self._history, self._depth_plane),
                result, gathered, self._threads, hold)  # fmt: skip
        if not self._shown_planes:  # the new colour is shown as it is
            return self._shown_as_is(rgb8)
        return self._show(result, jitter, motion, fresh, rgb8)

    def _still_hold(self, frame, jitter, motion, fresh: bool, outputs) -> np.ndarray | None:
        """This frame's ``StillHold`` plane (H x W, or None), from the state before the step (``self._history``)
        and the network's outputs (the own sample's splat weights: its share of the splat times the gain)."""
        from upscaler.runtime.hold import StillHold, disagreement

        if self._hold is None:
            self._hold = StillHold()
        _, gain, kernels = outputs

        def measure() -> np.ndarray:
            out = self._scratch.take("disagreement", frame.shape[1:])
            return disagreement(self._history, frame, kernels[1, :, 4] * gain, self.scale, motion, out, self._threads)

        return self._hold.step(measure, motion, jitter, fresh)

    def _fold_depth(self, frame, motion, out: np.ndarray, fresh: bool, depth) -> None:
        """``out`` (s² x H x W): the network's ``apart`` input, the depth gap (``accum_cpu.depth_gap``) between this
        frame's depth and the state's reprojected one; zeros where neither is known."""
        from upscaler.runtime.accum_cpu import depth_gap

        kept = self._depth_kept and not fresh  # the state's plane holds a depth (not zeros)
        if kept:
            fold_reproject(self._depth_plane[None], motion[0], self.scale, out, self._scratch, self._mode)
        else:
            out[:] = 0.0
        if depth is not None or kept:
            depth_gap(depth_input(depth, frame)[0, 0], out, self._threads)
        self._depth_kept = depth is not None

    def _shown_as_is(self, rgb8: bool) -> np.ndarray:
        """A model without display filters shows its state's colour: as 8 bits, or as float planes."""
        colour = self._history[..., :3]
        if rgb8:
            return cv2.convertScaleAbs(colour, alpha=255.0)
        out = self._shown_buffer(*(n // self.scale for n in colour.shape[:2]), False)
        out[:] = colour.transpose(2, 0, 1)
        return out[None]

    def _network_outputs(self, h: int, w: int) -> dict[str, np.ndarray]:
        """The folded graph's outputs (``NETWORK_OUTPUTS``: the tail, the splat's gain, the frame's kernels), in
        one scratch buffer the graph writes into: no output is allocated per step (and none is left behind in the
        heap)."""
        s2 = self.scale * self.scale
        shapes = [(1, 6 * s2, h, w), (1, s2), (1, 2, s2, 9)]
        flat = self._scratch.take("network", (sum(int(np.prod(x)) for x in shapes),)).reshape(-1)
        outputs, start = {}, 0
        for name, shape in zip(self._output_names, shapes):
            size = int(np.prod(shape))
            outputs[name], start = flat[start : start + size].reshape(shape), start + size
        return outputs

    def _show(self, result: np.ndarray, jitter: np.ndarray, motion: np.ndarray, fresh: bool, rgb8: bool):
        """The shown frame: each pixel's display filter (``AccumSR._display``'s gates), each filter's graph run
        only if some pixel shows it; a filter without a graph (identity) shows ``result`` as it is."""
        from upscaler.runtime.accum_cpu import show

        s = self.scale
        h, w = motion.shape[2:]
        rest = None  # where a frame shows both filters: where the still one is shown
        if not np.any(jitter):  # every pixel: the unjittered filter
            pick, names = 0, ("unjittered", None)
        else:  # the still filter where nothing was resampled, the moving one elsewhere
            rest = (motion[0, 0] == 0) & (motion[0, 1] == 0)
            pick = 1 if fresh or rest.all() else 0 if not rest.any() else 2
            names = ("moving" if pick != 1 else None, "still" if pick != 0 else None)
            rest = rest if pick == 2 else None
        bands = _bands(rest)  # each filter's graphs run over the rows that show it
        if self._matrices and any(f in self._matrices for f in names):
            return self._show_filtered(result, names, motion, pick, rgb8, bands)
        planes = result.reshape(3, s * s, h, w)
        moving, still = (None if f is None else self._filter(f, planes, result, band)
                         for f, band in zip(names, bands))  # fmt: skip
        details, detailed = self._luma_details(result, names, h, w, bands)
        if not rgb8 and not detailed and all(x is None or x is result for x in (moving, still)):
            return self._shown_as_is(False)
        moving, still = (moving if moving is not None else still), (still if still is not None else moving)
        out = self._shown_buffer(h, w, rgb8)
        show(moving, still, motion[0], pick, s, out, self._threads, details, detailed)
        return out if rgb8 else out[None]

    def _show_filtered(self, result: np.ndarray, names, motion: np.ndarray, pick: int, rgb8: bool, bands):
        """``_show`` with 1x1 filters, in one pass (``accum_cpu.show_filtered``): ``names`` the two filters
        ``pick`` chooses from (None, or a filter without weights: the colour as it is)."""
        from upscaler.runtime.accum_cpu import show_filtered

        h, w = motion.shape[2:]
        if names not in self._pairs:  # a few pairs at most: made once, not per frame
            s2 = self.scale * self.scale
            eye = (np.eye(s2, dtype=np.float32), np.zeros(s2, np.float32))
            pair = [self._matrices.get(f, eye) if f else eye for f in names]
            self._pairs[names] = np.stack([m for m, _ in pair]), np.stack([b for _, b in pair])
        matrices, biases = self._pairs[names]
        details, detailed = self._luma_details(result, names, h, w, bands)
        out = self._shown_buffer(h, w, rgb8)
        show_filtered(result, matrices, biases, motion[0], pick, self.scale, out, self._threads, details, detailed)
        return out if rgb8 else out[None]

    def _luma_details(self, result: np.ndarray, names, h: int, w: int, bands) -> tuple[np.ndarray | None, int]:
        """The luma detail of each of ``names`` that has a graph (2 x s² x H x W, filter ``k``'s in row ``k``),
        and which rows hold one (bit ``k``); ``(None, 0)`` where none has. Each filter's graph runs over its band
        of ``bands`` only (``_bands``; elsewhere its detail is left as it was, and never read)."""
        from upscaler.runtime.accum_cpu import luma

        wanted = [k for k, f in enumerate(names) if f in self._details]
        if not wanted:
            return None, 0
        s2 = self.scale * self.scale
        p = self._detail_pad
        planes = self._scratch.take("luma", (1, s2, h + 2 * p, w + 2 * p))
        details = self._scratch.take("details", (2, s2, h, w))
        luma(result, planes[0], self._threads)
        for k in wanted:
            session, out = self._details[names[k]], details[k : k + 1]
            if bands[k] is None:
                _run_into(session, {"luma": planes}, {"detail": out})
            else:  # the luma's edges are replicated: the band's input is ``p`` rows more each side, all its own
                top, bottom = bands[k]
                inputs = planes[:, :, top : bottom + 2 * p]
                self._run_band(session, ("luma", "detail"), inputs, (1, s2, bottom - top, w), out[:, :, top:bottom])
        return details, sum(1 << k for k in wanted)

    def _run_band(self, session, names: tuple[str, str], inputs: np.ndarray, shape, out: np.ndarray,
                  skip: int = 0) -> None:  # fmt: skip
        """``out`` (a band of rows of a graph's output): ``session`` (its input and output ``names``) run on a
        copy of ``inputs`` (a band of rows of its input; ``shape``: what the graph makes of it), the first
        ``skip`` rows of its output dropped, and any after ``out``'s."""
        band = self._scratch.take(f"{names[0]}-band", inputs.shape)
        band[:] = inputs
        shown = self._scratch.take(f"{names[1]}-band", shape)
        _run_into(session, {names[0]: band}, {names[1]: shown})
        out[:] = shown[:, :, skip : skip + out.shape[2]]

    def _shown_buffer(self, h: int, w: int, rgb8: bool) -> np.ndarray:
        """Where the shown frame goes: a new 8-bit frame each step, or the stream's float planes."""
        s = self.scale
        if rgb8:
            return np.empty((h * s, w * s, 3), np.uint8)
        if self._shown is None or self._shown.shape[1:] != (h * s, w * s):
            self._shown = np.empty((3, h * s, w * s), np.float32)
        return self._shown

    def _filter(self, name: str, planes: np.ndarray, result: np.ndarray, rows=None) -> np.ndarray:
        """Display filter ``name`` over the folded colour (``result``, or ``planes``: the same, one colour per
        batch item), folded like ``result``; ``result`` itself where the model has no graph for it. ``rows``
        (``top, bottom``; None: all): the rows it is run over (elsewhere its output is left as it was, and
        never read), read with the filter's reach more rows each side where the frame has them (the graph
        replicates the band's edges, as the frame's: the rows beyond the band's own are dropped)."""
        session = self._filters.get(name)
        if session is None:
            return result
        out = self._scratch.take(f"display-{name}", result.shape).reshape(planes.shape)
        if rows is None:
            _run_into(session, {"result": planes}, {"shown": out})
        else:
            (top, bottom), reach = rows, self._display_reach
            first, last = max(top - reach, 0), min(bottom + reach, planes.shape[2])
            inputs = planes[:, :, first:last]
            self._run_band(session, ("result", "shown"), inputs, inputs.shape, out[:, :, top:bottom], top - first)
        return out.reshape(result.shape)

    def release(self) -> None:
        """Drop the shared scratch and give ONNX Runtime's arena back (it keeps the peak step's activations,
        about 50 bytes per output pixel, until told): a 16x16 step that shrinks it as it ends."""
        super().release()
        s, n = self.scale, 16
        tiny = np.zeros((1, 3, n, n), np.float32)
        folded = np.zeros((1, (self._channels - self._shown_planes) * s * s, n, n), np.float32)
        self._run(tiny, np.zeros((1, 2), np.float32), folded, True, self._shrink)
        if self._accum:  # the filters' sessions anew: an arena, even shrunk, keeps its first region (a frame's)
            self._filters.update({f: self._open_filter(f"display-{f}") for f in self._filters})
            self._details.update({f: self._open_filter(f"detail-{f}") for f in self._details})
        trim_heap()  # what the step's buffers freed into the C heap goes back too
