"""PyTorch engines: the ``nn.Module`` from safetensors weights, on the CPU or a CUDA GPU.

On CUDA: FP16 by default (FP32 on request), channels-last memory, and a
CUDA graph per input shape once that shape has repeated, so a stream of
same-sized frames costs one graph launch each instead of one launch per
layer. This is the GPU path that needs no TensorRT.

Both engines also take 8-bit frames whole (``run_rgb8``): the conversions
to and from float run where the network runs, so on a GPU only 8-bit frames
cross the bus (a 4K result is 25 MB, against 100 MB as FP32 planes) and the
host does no per-pixel work. The conversions are those of
``upscaler.pipeline`` (``to_float``, ``from_float``), step for step, so the
result equals the float path's exactly.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from upscaler.archs import build_network
from upscaler.models import ModelDescriptor
from upscaler.runtime.base import EngineOptions, EngineUnavailable, check_batch, choose_precision, require_file

__all__ = ["TorchCudaEngine", "TorchEngine", "import_torch", "load_network", "output_to_rgb8", "rgb8_to_input"]

log = logging.getLogger(__name__)


def import_torch():
    """The ``torch`` module, or ``EngineUnavailable``."""
    try:
        import torch
    except ImportError:
        raise EngineUnavailable("torch is not installed (pip install 'upscaler[torch]')") from None
    return torch


def load_network(model: ModelDescriptor):
    """The model's ``nn.Module`` in eval mode with its shipped weights loaded."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise EngineUnavailable("torch and safetensors are not installed (pip install 'upscaler[torch]')") from None
    path = require_file(model, "weights")
    net = build_network(model.arch, model.scale, model.params)
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def rgb8_to_input(torch, images, dtype, channels_last: bool = True):
    """``N x H x W x C`` uint8 tensor -> the network's ``N x C x H x W`` input in ``dtype``.

    As ``pipeline.to_float``: multiplied by 1/255 in FP32, then cast. The
    NCHW view of NHWC memory is already channels-last, so on the GPU nothing
    is copied for the layout; ``channels_last=False`` gives the contiguous
    NCHW the CPU engine runs (the layout changes which convolution kernels
    run, and so the last bit of their sums).
    """
    x = images.permute(0, 3, 1, 2).to(torch.float32).mul_(1.0 / 255.0).to(dtype)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def output_to_rgb8(torch, planes, height: int, width: int):
    """The network's ``N x C x sH x sW`` output, cropped to ``height x width`` -> ``N x height x width x C`` uint8.

    As ``pipeline.from_float``: in FP32, times 255, clamped to [0, 255], plus
    0.5, truncated (rounding half up).
    """
    y = planes[:, :, :height, :width].to(torch.float32).mul(255.0).clamp_(0.0, 255.0).add_(0.5)
    return y.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _check_rgb8(images: np.ndarray, channels: int) -> np.ndarray:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != channels:
        raise ValueError(f"expected N x H x W x {channels} uint8 frames, got {images.dtype} {images.shape}")
    return np.ascontiguousarray(images)


class TorchEngine:
    """PyTorch inference on the CPU, FP32."""

    name = "torch-cpu"
    device = "cpu"

    def __init__(self, model: ModelDescriptor, options: EngineOptions | None = None) -> None:
        options = options or EngineOptions()
        torch = import_torch()
        self.precision = choose_precision(self.name, options.precision, ("fp32",))
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        self._torch = torch
        self._net = load_network(model)
        self.scale = model.scale
        self.channels = model.channels

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch (see ``Engine.run``)."""
        torch = self._torch
        with torch.inference_mode():
            return self._net(torch.from_numpy(check_batch(batch, self.channels))).numpy()

    def run_rgb8(self, images: np.ndarray, multiple: int = 1) -> np.ndarray:
        """``N x H x W x C`` uint8 frames -> ``N x sH x sW x C`` uint8, converted by PyTorch (see the module).

        Frames are edge-padded to ``multiple`` for the network and cropped back.
        """
        torch = self._torch
        return _rgb8_call(self, images, multiple, lambda t: t, self._net, torch.float32, channels_last=False)


def _rgb8_call(engine, images: np.ndarray, multiple: int, upload, network, dtype, *, channels_last: bool):
    """``run_rgb8`` of either engine: ``upload`` moves the uint8 tensor, ``network`` runs the padded input."""
    torch = engine._torch
    images = _check_rgb8(images, engine.channels)
    h, w = images.shape[1:3]
    with torch.inference_mode():
        x = rgb8_to_input(torch, upload(torch.from_numpy(images)), dtype, channels_last)
        out = network(_pad(torch, x, multiple, channels_last))
        return output_to_rgb8(torch, out, h * engine.scale, w * engine.scale).cpu().numpy()


def _pad(torch, x, multiple: int, channels_last: bool = True):
    """``x`` edge-padded at the bottom and right to a multiple of ``multiple`` (as ``pipeline.pad_batch``)."""
    ph, pw = -x.shape[2] % multiple, -x.shape[3] % multiple
    if ph == 0 and pw == 0:
        return x
    padded = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    return padded.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class TorchCudaEngine:
    """PyTorch inference on a CUDA GPU: FP16 (or FP32), channels-last, CUDA graphs for repeated shapes.

    ``graph_after``: calls of one shape before its CUDA graph is captured
    (0: never capture); ``max_graphs``: shapes kept, least recently used
    dropped first.
    """

    name = "torch-cuda"

    def __init__(
        self,
        model: ModelDescriptor,
        options: EngineOptions | None = None,
        *,
        graph_after: int = 2,
        max_graphs: int = 8,
    ) -> None:
        options = options or EngineOptions()
        torch = import_torch()
        self.precision = choose_precision(self.name, options.precision, ("fp16", "fp32"))
        if not torch.cuda.is_available():
            raise EngineUnavailable(f"PyTorch sees no CUDA device (torch {torch.__version__})")
        if options.device_id >= torch.cuda.device_count():
            raise EngineUnavailable(f"no CUDA device {options.device_id} ({torch.cuda.device_count()} visible)")
        self._torch = torch
        self.device = f"cuda:{options.device_id}"
        self._dtype = torch.float16 if self.precision == "fp16" else torch.float32
        net = load_network(model).to(self.device, dtype=self._dtype)
        self._net = net.to(memory_format=torch.channels_last)
        self.scale = model.scale
        self.channels = model.channels
        self.graph_after, self.max_graphs = graph_after, max_graphs
        self._seen: dict[tuple, int] = {}
        self._graphs: OrderedDict[tuple, tuple] = OrderedDict()  # shape -> (graph, static input, static output)
        self._stream = torch.cuda.Stream(self.device)
        log.info("torch %s on %s (%s)", torch.__version__, torch.cuda.get_device_name(self.device), self.precision)

    def _prepare(self, batch: np.ndarray):
        torch = self._torch
        host = torch.from_numpy(check_batch(batch, self.channels))
        if torch.cuda.is_available():
            host = host.pin_memory()
        x = host.to(self.device, non_blocking=True).to(self._dtype)
        return x.contiguous(memory_format=torch.channels_last)

    def _forward(self, x):
        return self._net(x)

    def _captured(self, x):
        """The output of a CUDA graph for ``x``'s shape, capturing it when the shape has repeated enough."""
        torch = self._torch
        shape = tuple(x.shape)
        if shape in self._graphs:
            self._graphs.move_to_end(shape)
            graph, static_in, static_out = self._graphs[shape]
            static_in.copy_(x)
            graph.replay()
            return static_out
        self._seen[shape] = self._seen.get(shape, 0) + 1
        if not self.graph_after or self._seen[shape] < self.graph_after:
            return None
        static_in = x.clone()
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):  # warm-up on a side stream, as capture requires
            self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        self._graphs[shape] = (graph, static_in, static_out)
        if len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        graph.replay()
        return static_out

    def run_on_device(self, x):
        """The network on a batch already on the device (this engine's dtype, channels-last): a device tensor.

        What ``run`` does between its upload and its download; the output of a
        replayed CUDA graph is that graph's buffer, overwritten by its next replay.
        """
        with self._torch.inference_mode():
            out = self._captured(x)
            return self._forward(x) if out is None else out

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch (see ``Engine.run``); returns FP32 on the host."""
        with self._torch.inference_mode():
            out = self.run_on_device(self._prepare(batch))
            return out.float().contiguous().cpu().numpy()

    def run_rgb8(self, images: np.ndarray, multiple: int = 1) -> np.ndarray:
        """``N x H x W x C`` uint8 frames -> ``N x sH x sW x C`` uint8: 8-bit frames up and down, conversions here.

        Frames are edge-padded to ``multiple`` for the network and cropped back.
        """

        def upload(host):
            return host.pin_memory().to(self.device, non_blocking=True)

        return _rgb8_call(self, images, multiple, upload, self.run_on_device, self._dtype, channels_last=True)

    def synchronize(self) -> None:
        """Wait for the device (for timing)."""
        self._torch.cuda.synchronize(self.device)
