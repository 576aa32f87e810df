"""PyTorch (CPU or CUDA) for temporal models: the whole step, the state kept on the device."""

from __future__ import annotations

import numpy as np

from upscaler.models import ModelDescriptor
from upscaler.runtime.base import EngineOptions, EngineUnavailable, require_file
from upscaler.runtime.stream import StreamState, depth_input, start_state

__all__ = ["TorchTemporalEngine"]


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
        self.scale, self._channels, self._depth = model.scale, model.state_channels, model.depth
        self._shown_planes = model.display_planes
        self._holds = bool(model.params.get("hold"))  # a still camera's history kept whole (``runtime.hold``)
        self._history = None
        self._hold = None  # per stream, models with ``hold``: a ``runtime.hold.StillHold``

    PER_STREAM = ("_history", "_hold")

    def step(
        self, frame: np.ndarray, jitter: np.ndarray, motion: np.ndarray, reset: bool, depth: np.ndarray | None = None
    ) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(frame).to(self.device, self._dtype)
            m = torch.from_numpy(motion).to(self.device, self._dtype)
            return self._step(x, jitter, m, lambda: frame, reset, depth).float().cpu().numpy()

    def step_rgb8(
        self,
        frame: np.ndarray,
        jitter: tuple[float, float],
        motion: np.ndarray,
        reset: bool,
        depth: np.ndarray | None = None,
    ) -> np.ndarray:
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
            out = self._step(x.to(self._dtype), jit, m.to(self._dtype).contiguous(), host_frame, reset, depth)
            rgb = out[0].to(torch.float32).mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
            return rgb.permute(1, 2, 0).contiguous().cpu().numpy()

    def _step(self, x, jitter: np.ndarray, m, host_frame, reset: bool, depth: np.ndarray | None = None):
        """The network's step on device tensors; ``host_frame()``: the frame as ``1 x 3 x H x W`` float32 numpy;
        ``depth`` (``1 x 1 x H x W`` or ``H x W``) for models that take it."""
        torch = self._torch
        s = self.scale
        h, w = x.shape[2:]
        fresh = reset or self._history is None or tuple(self._history.shape[2:]) != (h * s, w * s)
        if fresh:
            state = start_state(host_frame(), s, self._channels)
            history = torch.from_numpy(state[None]).to(self.device, self._dtype)
            m = torch.zeros_like(m)
        else:
            history = self._history
        r = torch.full((1, 1), 1.0 if fresh else 0.0, device=self.device, dtype=self._dtype)
        jit = torch.from_numpy(jitter).to(self.device, self._dtype)
        extra = ()
        if self._depth or self._holds:
            extra = (torch.from_numpy(depth_input(depth, x)).to(self.device, self._dtype) if self._depth else None,)
        if self._holds:
            extra = (*extra, self._still_hold(x, jit, m, history, fresh))
        self._history = self._net(x, jit, m, history, r, *extra)
        return self._history[:, :3]

    def _still_hold(self, x, jitter, m, history, fresh: bool):
        """This frame's ``StillHold`` plane (1 x 1 x H x W on the device, or None), as the CPU engine makes it:
        the frame's luma against what the state before the step predicts at its samples."""
        torch = self._torch
        from upscaler.archs import LUMA
        from upscaler.archs.accum import jitter_coefficients
        from upscaler.runtime.hold import StillHold

        if self._hold is None:
            self._hold = StillHold()

        def measure() -> np.ndarray:
            luma = x.new_tensor(LUMA).reshape(1, 3, 1, 1)
            d, s = self._shown_planes, self.scale
            folded = torch.nn.functional.pixel_unshuffle((history[:, d : d + 3] * luma).sum(1, keepdim=True), s)
            own = jitter_coefficients(jitter, s, self._net.sigma)[1][:, :, 4]
            predicted = (folded * (own / own.sum()).reshape(1, -1, 1, 1)).sum(1)
            still = (m.abs().amax(dim=1) == 0).to(x.dtype)
            return (((x * luma).sum(1) - predicted) * still)[0].float().cpu().numpy()

        held = self._hold.step(measure, m[0].float().cpu().numpy(), jitter[0].tolist(), fresh)
        return None if held is None else torch.from_numpy(held)[None, None].to(self.device, self._dtype)
