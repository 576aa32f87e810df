"""ONNX Runtime engine on the CPU (the embedded default)."""

from __future__ import annotations

import logging

import numpy as np

from upscaler.models import ModelDescriptor
from upscaler.runtime.base import EngineUnavailable, check_batch, require_file

__all__ = ["OrtCpuEngine"]

log = logging.getLogger(__name__)


class OrtCpuEngine:
    """Runs a model's ONNX graph with ONNX Runtime's CPU execution provider.

    ``threads`` sets the intra-op thread count (``None``: one per core);
    ``spin=False`` stops its worker threads from spinning between calls (they
    then yield the cores to other work, e.g. a server's event loop).
    """

    device = "cpu"
    precision = "fp32"

    def __init__(self, model: ModelDescriptor, *, threads: int | None = None, spin: bool = True) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise EngineUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
        path = require_file(model, "onnx", "export one with 'upscaler export onnx'")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.name = "onnxruntime-cpu"
        self.scale = model.scale
        self.channels = model.channels
        self.threads = threads
        log.debug("onnxruntime %s session for %s (%s)", ort.__version__, model.name, path)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch (see ``Engine.run``)."""
        return self._session.run(None, {self._input: check_batch(batch, self.channels)})[0]
