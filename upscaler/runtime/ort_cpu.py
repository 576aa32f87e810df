"""ONNX Runtime engine on the CPU (the embedded default): FP32, or the INT8 (QDQ) graph."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from upscaler.models import ModelDescriptor
from upscaler.runtime.base import EngineOptions, EngineUnavailable, check_batch, choose_precision, require_graph

__all__ = ["OrtCpuEngine", "cpu_session", "import_onnxruntime"]

log = logging.getLogger(__name__)


def import_onnxruntime():
    """The ``onnxruntime`` module, or ``EngineUnavailable``."""
    try:
        import onnxruntime
    except ImportError:
        raise EngineUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
    return onnxruntime


def cpu_session(path, options: EngineOptions):
    """An ONNX Runtime CPU session for the graph at ``path``: all graph optimisations, ``options``' threads."""
    ort = import_onnxruntime()
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session_options.intra_op_num_threads = options.threads or 0
    session_options.inter_op_num_threads = 1
    session_options.log_severity_level = 3
    if not options.spin:  # let the threads sleep between calls: other work shares the cores
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])


class OrtCpuEngine:
    """Runs a model's ONNX graph with ONNX Runtime's CPU execution provider.

    ``threads`` sets the intra-op thread count (``None``: one per core);
    ``spin=False`` stops its worker threads from spinning between calls (they
    then yield the cores to other work, e.g. a server's event loop);
    ``precision`` ``int8`` runs the statically quantised graph; left to the
    engine (None), it is INT8 only where this CPU runs it faster within the
    PSNR bound (``cpu_precision``), and ``precision_reason`` says why.
    """

    name = "onnxruntime-cpu"
    device = "cpu"

    def __init__(self, model: ModelDescriptor, options: EngineOptions | None = None) -> None:
        options = options or EngineOptions()
        ort = import_onnxruntime()
        if options.precision is None:  # auto: INT8 only where this CPU gains from it within the PSNR bound
            from upscaler.runtime.cpu_precision import choose_cpu_precision

            measured = lambda p: OrtCpuEngine(model, replace(options, precision=p))  # noqa: E731
            choice = choose_cpu_precision(model, options.threads, measured)
            self.precision, self.precision_reason = choice.precision, choice.reason
        else:
            self.precision = choose_precision(self.name, options.precision, ("fp32", "int8"))
            self.precision_reason = "requested"
        path = require_graph(model, self.precision)
        self._session = cpu_session(path, options)
        self._input = self._session.get_inputs()[0].name
        self.scale = model.scale
        self.channels = model.channels
        self.threads = options.threads
        log.debug("onnxruntime %s session for %s %s (%s)", ort.__version__, model.name, self.precision, path)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Upscale one batch (see ``Engine.run``)."""
        return self._session.run(None, {self._input: check_batch(batch, self.channels)})[0]
