"""Engines that run one temporal step and keep the history where they run.

A temporal engine takes the frame (``1 x 3 x H x W`` float32 in [0, 1]), its
jitter (``1 x 2``), motion (``1 x 2 x H x W``) and a reset flag, and returns
the high-resolution frame (``1 x 3 x sH x sW``), which it keeps as the next
history. On a reset (or the first frame) the history is the frame
upsampled (bilinear), as in training.

- ``onnxruntime-cpu``: reprojects the history with OpenCV (``cv2.remap``,
  bilinear, straight into the folded layout: one low-resolution map per
  sub-pixel), runs the model's *folded* graph (the step between
  reprojection and PixelShuffle) and unfolds its output with ``cv2.merge``.
  ONNX Runtime's CPU ``GridSample`` costs more than the whole network at
  720p output (measured: 51 ms against cv2's few) and its ``DepthToSpace``
  7-11 ms against ``cv2.merge``'s 0.65 ms, so on the CPU both stay outside
  the graph.
- ``torch-cpu`` / ``torch-cuda``: the whole step (``TemporalSR.forward``);
  the history stays a tensor on the device.
- ``tensorrt``: the whole-step graph as a TensorRT engine (``temporal.tensorrt``),
  the history in a device buffer between frames. Not executed here.
- ``onnxruntime-cuda``: the whole-step graph with IO binding; the history
  stays an ``OrtValue`` on the GPU between frames. Not executed here (no GPU).
"""

from __future__ import annotations

import copy
import logging
from typing import Protocol

import cv2
import numpy as np

from upscaler.models import ModelDescriptor, ModelError
from upscaler.runtime.base import EngineOptions, EngineUnavailable, require_file
from upscaler.runtime.ort_cpu import cpu_session, import_onnxruntime
from upscaler.sysinfo import nvidia_driver

__all__ = [
    "TEMPORAL_BACKENDS",
    "StreamState",
    "TemporalEngine",
    "create_temporal_engine",
    "fold_reproject",
    "probe_temporal_engines",
    "unfold",
]

log = logging.getLogger(__name__)


class TemporalEngine(Protocol):
    """One temporal step per call; owns the history."""

    name: str  #: engine kind
    device: str  #: where it runs
    precision: str  #: fp32
    scale: int  #: output size / input size

    def step(self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool) -> np.ndarray:
        """The high-resolution frame; it becomes the history."""
        ...

    def drop_history(self) -> None:
        """Forget the history (the next step starts from the frame alone)."""
        ...

    def fork(self) -> TemporalEngine:
        """A new stream on the same loaded network (session, weights, threads): only the history is its own.

        Forks must not step at the same time (a server runs them on one thread)."""
        ...

    def release(self) -> None:
        """Give back the memory kept between steps beyond the histories (scratch, arenas): no stream steps now."""
        ...


#: OpenCV's ``remap`` indexes with 16-bit shorts: its source and destination sides, and its maps' rows and
#: columns, must each stay below 32767 (``CV_Assert(... < SHRT_MAX)``).
REMAP_SIDE = 32766


class Scratch:
    """Buffers one step writes and the next overwrites (the folded history, the reprojection maps), shared by
    every fork of an engine: forks never step at the same time, so one set serves them all, grown to the
    largest frame seen and dropped by ``release``. Only the history is a stream's own."""

    def __init__(self) -> None:
        self._flat: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A C-contiguous float32 buffer of ``shape`` (a view of the named buffer, grown if too small)."""
        size = int(np.prod(shape))
        flat = self._flat.get(name)
        if flat is None or flat.size < size:
            flat = self._flat[name] = np.empty(size, np.float32)
        return flat[:size].reshape(shape)

    def clear(self) -> None:
        """Drop every buffer (the next step allocates again)."""
        self._flat.clear()


class StreamState:
    """``drop_history`` and ``fork`` for engines whose per-stream state is the attributes in ``PER_STREAM``
    (everything else, the session or network, is shared by forks); the first is the history."""

    PER_STREAM: tuple[str, ...] = ("_history",)

    def drop_history(self) -> None:
        self._history = None

    def release(self) -> None:
        """Give back what the engine keeps between steps beyond the histories (no stream needs it now)."""
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            scratch.clear()

    def fork(self):
        """A new stream on this engine's loaded network (see ``TemporalEngine.fork``)."""
        twin = copy.copy(self)
        for name in self.PER_STREAM:
            setattr(twin, name, None)
        return twin


def _maps(motion: np.ndarray, scale: int, scratch: Scratch) -> tuple[np.ndarray, np.ndarray]:
    """``(s²H x W)`` x and y maps: sub-pixel ``(i, j)`` of low-resolution pixel ``(x, y)`` reads the history at
    ``(s x + j, s y + i) + s * motion``, the ``s²`` sub-pixels' grids stacked (rows ``(i, j, y)``)."""
    s = scale
    h, w = motion.shape[1:]
    sub = np.arange(s, dtype=np.float32)
    rows_x = np.arange(w, dtype=np.float32) * s + sub[:, None]  # (j, x): s x + j, exact
    rows_y = np.arange(h, dtype=np.float32) * s + sub[:, None]  # (i, y): s y + i, exact
    map_x, map_y = scratch.take("map_x", (s, s, h, w)), scratch.take("map_y", (s, s, h, w))
    np.add(rows_x[None, :, None, :], (motion[0] * np.float32(s))[None, None], out=map_x)
    np.add(rows_y[:, None, :, None], (motion[1] * np.float32(s))[None, None], out=map_y)
    return map_x.reshape(s * s * h, w), map_y.reshape(s * s * h, w)


def fold_reproject(
    history: np.ndarray, motion: np.ndarray, scale: int, out: np.ndarray | None = None, scratch: Scratch | None = None
) -> np.ndarray:
    """``3s² x H x W``: the history (``3 x sH x sW`` planes) reprojected by ``motion`` (``2 x H x W``), folded.

    Sub-pixel ``(i, j)`` of low-resolution pixel ``p`` reads the history at
    ``s * p + (j, i) + s * motion(p)`` (bilinear, edges clamped): what
    ``TemporalSR.forward`` does with ``grid_sample`` before
    ``pixel_unshuffle``. ``cv2.remap`` writes the folded layout directly (the
    map stacks the ``s²`` sub-pixels' ``H x W`` grids), so no full-resolution
    warped frame or transpose is ever made; it runs in blocks of at most
    ``REMAP_SIDE`` map rows, so a tall frame (``s² H`` rows) is no limit: only
    the history's sides (the output's) must stay within ``REMAP_SIDE``.
    """
    h, w = motion.shape[1:]
    s = scale
    if max(history.shape[1:]) > REMAP_SIDE or w > REMAP_SIDE:
        raise ValueError(f"a {history.shape[2]}x{history.shape[1]} history is over OpenCV's {REMAP_SIDE} px side")
    if out is None:
        out = np.empty((3 * s * s, h, w), np.float32)
    map_x, map_y = _maps(motion, s, scratch or Scratch())
    planes = out.reshape(3, s * s * h, w)
    for c in range(3):
        for r0 in range(0, s * s * h, REMAP_SIDE):
            r1 = min(s * s * h, r0 + REMAP_SIDE)
            cv2.remap(history[c], map_x[r0:r1], map_y[r0:r1], cv2.INTER_LINEAR, dst=planes[c, r0:r1],
                      borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return out


def unfold(folded: np.ndarray, scale: int, out: np.ndarray | None = None) -> np.ndarray:
    """``3 x sH x sW`` planes from a folded ``3s² x H x W`` output (PixelShuffle), with OpenCV.

    Row ``i`` of every ``s x s`` block of colour ``c`` is the ``s`` planes
    ``(c, i, 0..s-1)`` interleaved: one ``cv2.merge`` each, written in place
    (a fraction of ONNX Runtime's ``DepthToSpace``: 0.65 ms against 7-11 ms
    at 1280x720 on a 2-core AVX2 EPYC).
    """
    s = scale
    _, h, w = folded.shape
    if out is None:
        out = np.empty((3, h * s, w * s), np.float32)
    planes = folded.reshape(3, s, s, h, w)
    rows = out.reshape(3, h, s, w * s)
    for c in range(3):
        for i in range(s):
            cv2.merge([planes[c, i, j] for j in range(s)], dst=rows[c, :, i].reshape(h, w, s))
    return out


def _upsample(frame: np.ndarray, scale: int) -> np.ndarray:
    """``3 x sH x sW`` bilinear upsample of a ``1 x 3 x H x W`` frame (half-pixel centres, as PyTorch's)."""
    h, w = frame.shape[2:]
    return np.stack([cv2.resize(p, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR) for p in frame[0]])


class OrtCpuTemporalEngine(StreamState):
    """ONNX Runtime on the CPU: OpenCV reprojection + the folded graph."""

    name = "onnxruntime-cpu"
    device = "cpu"
    precision = "fp32"

    def __init__(self, model: ModelDescriptor, options: EngineOptions | None = None) -> None:
        options = options or EngineOptions()
        if options.precision not in (None, "fp32"):
            raise EngineUnavailable(f"{self.name} runs temporal models in fp32 only")
        entry = model.graph("folded")
        if entry is None:
            raise EngineUnavailable(f"model {model.name!r} has no folded graph (upscaler export temporal)")
        try:
            path = entry.verified()
        except ModelError as exc:
            raise EngineUnavailable(str(exc)) from None
        self._session = cpu_session(path, options)
        self.scale = model.scale
        self._history: np.ndarray | None = None  # per stream: 12 bytes per output pixel
        self._scratch = Scratch()  # shared by every fork: 20 bytes per output pixel of the largest frame
        self._shrink = import_onnxruntime().RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def step(self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool) -> np.ndarray:
        """The output (``1 x 3 x sH x sW``); it is the engine's history buffer, valid until the next step."""
        s = self.scale
        h, w = frame.shape[2:]
        fresh = reset or self._history is None or self._history.shape[1:] != (h * s, w * s)
        if fresh:
            history, motion = _upsample(frame, s), np.zeros_like(motion)
        else:
            history = self._history
        folded = fold_reproject(history, motion[0], s, self._scratch.take("folded", (3 * s * s, h, w)), self._scratch)
        out = self._run(frame, jitter, folded[None], fresh)
        if self._history is None or self._history.shape[1:] != (h * s, w * s):
            self._history = np.empty((3, h * s, w * s), np.float32)
        unfold(out[0], s, self._history)  # the old history was read above: its buffer is free
        return self._history[None]

    def _run(self, frame: np.ndarray, jitter: np.ndarray, folded: np.ndarray, fresh: bool, options=None):
        feeds = {"frame": frame, "jitter": jitter, "history": folded, "reset": np.array([[float(fresh)]], np.float32)}
        return self._session.run(None, feeds, options)[0]

    def release(self) -> None:
        """Drop the shared scratch and give ONNX Runtime's arena back (it keeps the peak step's activations,
        about 50 bytes per output pixel, until told): a 16x16 step that shrinks it as it ends."""
        super().release()
        s, n = self.scale, 16
        tiny = np.zeros((1, 3, n, n), np.float32)
        self._run(tiny, np.zeros((1, 2), np.float32), np.zeros((1, 3 * s * s, n, n), np.float32), True, self._shrink)


class TorchTemporalEngine(StreamState):
    """PyTorch (CPU or CUDA): the whole step, history kept on the device; FP16 on CUDA on request."""

    def __init__(self, model: ModelDescriptor, options: EngineOptions | None = None, *, cuda: bool = False) -> None:
        options = options or EngineOptions()
        if options.precision not in (None, "fp32") and not (cuda and options.precision == "fp16"):
            raise EngineUnavailable(f"the PyTorch temporal engine runs fp32 (fp16 on CUDA), not {options.precision}")
        self.precision = options.precision or "fp32"
        try:
            import torch
        except ImportError:
            raise EngineUnavailable("torch is not installed (pip install 'upscaler[torch]')") from None
        from upscaler.runtime.torch_engine import load_network, rgb8_to_input

        if cuda and not torch.cuda.is_available():
            raise EngineUnavailable("no CUDA device visible to PyTorch")
        self.name = "torch-cuda" if cuda else "torch-cpu"
        self.device = f"cuda:{options.device_id}" if cuda else "cpu"
        if options.threads and not cuda:
            torch.set_num_threads(options.threads)
        require_file(model, "weights")
        self._torch, self._rgb8_to_input = torch, rgb8_to_input
        self._dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self._net = load_network(model).to(self.device, dtype=self._dtype).eval()
        self.scale = model.scale
        self._history = None

    def step(self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(frame).to(self.device, self._dtype)
            m = torch.from_numpy(motion).to(self.device, self._dtype)
            return self._step(x, jitter, m, lambda: frame, reset).float().cpu().numpy()

    def step_rgb8(self, frame: np.ndarray, jitter: tuple[float, float], motion: np.ndarray, reset: bool) -> np.ndarray:
        """``step`` on an ``H x W x 3`` uint8 frame and ``H x W x 2`` motion: ``sH x sW x 3`` uint8.

        Only 8-bit frames cross the bus; the conversions run on the device, as
        ``TemporalUpscaler`` does them on the host (times 1/255 in FP32; the
        output times 255, rounded to nearest), and the history stays there.
        """
        torch = self._torch
        with torch.inference_mode():
            pixels = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
            x = self._rgb8_to_input(torch, pixels[None], torch.float32, channels_last=False)
            m = torch.from_numpy(np.ascontiguousarray(motion)).to(self.device).permute(2, 0, 1)[None]
            jit = np.array([jitter], np.float32)
            host_frame = lambda: x.cpu().numpy()  # noqa: E731  (a fresh history starts on the host, as step's)
            out = self._step(x.to(self._dtype), jit, m.to(self._dtype).contiguous(), host_frame, reset)
            rgb = out[0].to(torch.float32).mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
            return rgb.permute(1, 2, 0).contiguous().cpu().numpy()

    def _step(self, x, jitter: np.ndarray, m, host_frame, reset: bool):
        """The network's step on device tensors; ``host_frame()``: the frame as ``1 x 3 x H x W`` float32 numpy."""
        torch = self._torch
        s = self.scale
        h, w = x.shape[2:]
        fresh = reset or self._history is None or tuple(self._history.shape[2:]) != (h * s, w * s)
        if fresh:
            history = torch.from_numpy(_upsample(host_frame(), s)[None]).to(self.device, self._dtype)
            m = torch.zeros_like(m)
        else:
            history = self._history
        r = torch.full((1, 1), 1.0 if fresh else 0.0, device=self.device, dtype=self._dtype)
        out = self._net(x, torch.from_numpy(jitter).to(self.device, self._dtype), m, history, r)
        self._history = out
        return out


class OrtCudaTemporalEngine(StreamState):
    """ONNX Runtime's CUDA provider on the whole-step graph; the history stays on the GPU.

    Not executed on any machine of ours (no GPU was lent).
    """

    name = "onnxruntime-cuda"
    precision = "fp32"

    def __init__(self, model: ModelDescriptor, options: EngineOptions | None = None) -> None:
        from upscaler.runtime.ort_gpu import require_provider

        options = options or EngineOptions()
        if nvidia_driver() is None:
            raise EngineUnavailable("no NVIDIA GPU driver on this machine")
        if options.precision not in (None, "fp32"):
            raise EngineUnavailable(f"{self.name} runs temporal models in fp32 only")
        ort = import_onnxruntime()
        require_provider(ort, "CUDAExecutionProvider")
        path = require_file(model, "onnx")
        providers = [("CUDAExecutionProvider", {"device_id": str(options.device_id)})]
        self._ort, self._device_id = ort, options.device_id
        self._session = ort.InferenceSession(str(path), providers=providers)
        self.device, self.scale = f"cuda:{options.device_id}", model.scale
        self._history = None

    def step(self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool) -> np.ndarray:
        s = self.scale
        h, w = frame.shape[2:]
        fresh = reset or self._history is None or tuple(self._history.shape()[2:]) != (h * s, w * s)
        binding = self._session.io_binding()
        binding.bind_cpu_input("frame", frame)
        binding.bind_cpu_input("jitter", jitter)
        binding.bind_cpu_input("motion", np.zeros_like(motion) if fresh else motion)
        binding.bind_cpu_input("reset", np.array([[1.0 if fresh else 0.0]], np.float32))
        if fresh:
            binding.bind_cpu_input("history", _upsample(frame, s)[None])
        else:
            binding.bind_ortvalue_input("history", self._history)
        binding.bind_output("output", "cuda", self._device_id)
        self._session.run_with_iobinding(binding)
        self._history = binding.get_outputs()[0]
        return self._history.numpy()


def _ort_cpu(model, options):
    return OrtCpuTemporalEngine(model, options)


def _torch_cpu(model, options):
    return TorchTemporalEngine(model, options)


def _torch_cuda(model, options):
    if nvidia_driver() is None:
        raise EngineUnavailable("no NVIDIA GPU driver on this machine")
    return TorchTemporalEngine(model, options, cuda=True)


def _ort_cuda(model, options):
    return OrtCudaTemporalEngine(model, options)


def _tensorrt(model, options):
    from upscaler.temporal.tensorrt import TensorRTTemporalEngine

    return TensorRTTemporalEngine(model, options)


_ENGINES = {
    "tensorrt": _tensorrt,
    "onnxruntime-cuda": _ort_cuda,
    "torch-cuda": _torch_cuda,
    "onnxruntime-cpu": _ort_cpu,
    "torch-cpu": _torch_cpu,
}

#: Backend names a temporal model accepts, and the engines each tries in order.
TEMPORAL_BACKENDS: dict[str, tuple[str, ...]] = {
    "auto": tuple(_ENGINES),
    "gpu": ("tensorrt", "onnxruntime-cuda", "torch-cuda"),
    "cpu": ("onnxruntime-cpu", "torch-cpu"),
    "onnxruntime": ("onnxruntime-cuda", "onnxruntime-cpu"),
    "torch": ("torch-cuda", "torch-cpu"),
    **{name: (name,) for name in _ENGINES},
}


def create_temporal_engine(model: ModelDescriptor, backend: str = "auto", options: EngineOptions | None = None):
    """The first engine of ``backend``'s chain that runs ``model``; logs why each skipped one did not."""
    if backend not in TEMPORAL_BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r} for a temporal model; choose from {', '.join(TEMPORAL_BACKENDS)}"
        )
    options = options or EngineOptions()
    reasons = []
    for name in TEMPORAL_BACKENDS[backend]:
        try:
            engine = _ENGINES[name](model, options)
        except EngineUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            log.info("engine %s skipped: %s", name, exc)
            continue
        except Exception as exc:  # a driver or library failure: the next engine may still run
            reasons.append(f"{name}: failed to start ({type(exc).__name__}: {exc})")
            log.warning("engine %s skipped: %s", name, reasons[-1])
            continue
        log.info("engine %s selected for temporal model %s", name, model.name)
        return engine
    raise EngineUnavailable(f"no engine can run temporal model {model.name!r} (" + "; ".join(reasons) + ")")


def probe_temporal_engines(model: ModelDescriptor) -> list:
    """Which temporal engines load ``model`` here, and why the others do not (``EngineChoice`` records)."""
    from upscaler.runtime.select import EngineChoice

    choices = []
    for name, factory in _ENGINES.items():
        try:
            engine = factory(model, EngineOptions())
        except EngineUnavailable as exc:
            choices.append(EngineChoice(name, False, str(exc)))
        except Exception as exc:  # reported, never raised from a probe
            choices.append(EngineChoice(name, False, f"failed to start ({type(exc).__name__}: {exc})"))
        else:
            choices.append(EngineChoice(name, True, precision=engine.precision, precision_reason="temporal: fp32"))
    return choices
