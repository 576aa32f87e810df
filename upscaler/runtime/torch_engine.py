"""PyTorch engine: runs the ``nn.Module`` from safetensors weights."""

from __future__ import annotations

import logging

import numpy as np

from upscaler.archs import build_network
from upscaler.models import ModelDescriptor
from upscaler.runtime.base import EngineUnavailable, check_batch, require_file

__all__ = ["TorchEngine", "load_network"]

log = logging.getLogger(__name__)


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


class TorchEngine:
    """PyTorch inference on the CPU (``device='cpu'``)."""

    precision = "fp32"

    def __init__(self, model: ModelDescriptor, *, device: str = "cpu", threads: int | None = None) -> None:
        try:
            import torch
        except ImportError:
            raise EngineUnavailable("torch is not installed (pip install 'upscaler[torch]')") from None
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be at least 1, got {threads}")
            torch.set_num_threads(threads)
        self._torch = torch
        self._net = load_network(model).to(device)
        self.name = f"torch-{torch.device(device).type}"
        self.device = device
        self.scale = model.scale
        self.channels = model.channels

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch (see ``Engine.run``)."""
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(check_batch(batch, self.channels)).to(self.device)
            return self._net(x).float().cpu().numpy()
