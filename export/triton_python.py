"""A Triton model repository served by Triton's *Python* backend (ONNX Runtime inside ``model.py``).

``upscaler export triton --backend python`` writes, per model, ``config.pbtxt``
(``backend: "python"``, CPU instances), ``1/model.onnx`` (the same graph as the
ONNX Runtime backend gets) and ``1/model.py``: a ``TritonPythonModel`` that opens
an ONNX Runtime session on the graph beside it (CPU; intra-op threads from the
config's ``intra_op_threads`` parameter, default 1) and answers each request.
This is the form a Triton build without the ONNX Runtime backend can serve, such
as the server bundled in the ``nvidia-pytriton`` wheel, which ships only the
Python backend.

Single-frame models are declared as for the ONNX Runtime backend (same input and
output names, types and dims, ``max_batch_size`` 8 by default, dynamic
batching); ``model.py`` runs requests of the same frame size as one batch.

Temporal models keep their state in ``model.py``, because the Python backend does
not support Triton's implicit state: the sequence batcher (``oldest`` strategy, so
one instance serves up to ``MAX_CANDIDATE_SEQUENCES`` streams at a time, one
request at a time) sends the control inputs ``START`` (fp32 0/1, fed to the
graph's ``reset``), ``END`` (fp32 0/1: the sequence's history is freed after that
step) and ``CORRID`` (the correlation id, uint64). ``model.py`` keeps each
sequence's last ``output`` as its next ``history``, keyed by correlation id; the
first request of a sequence gets a 1 x 1 placeholder state, which the graph
ignores when ``reset`` is 1, as with the ONNX Runtime backend's implicit state. A
START on an id in use starts afresh; a request that is neither a START nor part
of a sequence ``model.py`` knows is an error. Triton drops a sequence left idle
for ``max_sequence_idle_microseconds``; ``model.py`` is never told, so it drops a
history left unused for twice that time plus a second (a step may wait in
Triton's queue), and abandoned streams do not keep memory for long. Clients
send ``frame``, ``jitter``, ``motion`` (and ``depth`` where the model has it)
with a sequence id and the start/end flags, exactly as for the other backend.

To serve it with the pytriton wheel's server (see ``.ci/triton``): copy
``pytriton/tritonserver/python_backend_stubs/3.X/triton_python_backend_stub``
(the interpreter's version) into ``pytriton/tritonserver/backends/python/``
(same depth, so its relative RPATH still finds ``nvidia_pytriton.libs``); start
``tritonserver --model-repository D --backend-directory .../backends`` with
``LD_LIBRARY_PATH`` starting with the interpreter's ``LIBDIR`` (else the stub may
load another libpython 3.X) and then ``nvidia_pytriton.libs``, and ``PATH``
starting with the virtual environment's ``bin`` (the stub takes ``numpy`` and
``onnxruntime`` from there). ``model.py`` moves tensors in and out of the stub by
DLPack only: that stub's ``as_numpy()`` and ``pb_utils.Tensor(name, array)`` misread
numpy 2 arrays (empty outputs, wrong inputs), as its pybind11 predates numpy 2.

What has run: ``tests/test_triton_server.py`` (``.ci/triton``) serves x4-fast and
x4-temporal from this export with the real Triton 2.51.0 of ``nvidia-pytriton``
0.7.0, CPU only, one instance and one thread each, and compares the answers with
ONNX Runtime run directly (single requests, batches, concurrent requests that
Triton's dynamic batcher joins, sequences interleaved and restarted). Checked once
by hand with that server, not by the tests: x2-temporal's first design (no
depth, 3 state planes; today's x2-temporal has x4-temporal's inputs and five
state planes, the form the tests serve), x4-fast's INT8 graph and ``--threads 2``. Never run: GPU instances (this
backend's instances are always ``KIND_CPU`` and its session uses the CPU
provider), several instances per model, the other single-frame models and the
FP16 graphs in Triton, and Triton's ONNX Runtime backend (not in that server)
for the default export.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from export.triton import SEQUENCE_IDLE_US, graph_io, max_batch_size_for
from upscaler.io import write_atomic
from upscaler.models import ModelDescriptor
from upscaler.runtime.base import require_graph

__all__ = [
    "MAX_CANDIDATE_SEQUENCES",
    "MODEL_PY",
    "python_model_config",
    "python_temporal_model_config",
    "write_python_repository",
]

#: Temporal streams one instance serves at a time (Triton's ``oldest`` strategy); more wait for a free one.
MAX_CANDIDATE_SEQUENCES = 16

#: The ``1/model.py`` written beside each graph.
MODEL_PY = '''\
"""Triton Python-backend model written by ``upscaler export triton --backend python``.

Runs ``model.onnx`` (beside this file) with ONNX Runtime on the CPU. Temporal
models: the history of each sequence (its last output) is kept here, by
correlation id, since the Python backend has no implicit state.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

#: Graph inputs that the model fills in itself (temporal models).
OWN_INPUTS = ("history", "reset")


def _error(message):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(message)))


# Tensors cross the stub by DLPack, not by as_numpy() and pb_utils.Tensor(name, array): stubs whose pybind11
# predates numpy 2 misread numpy 2 arrays (Triton 2.51's returns empty outputs and wrong inputs).
def _input(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else np.from_dlpack(tensor)


def _output(name, array):
    return pb_utils.Tensor.from_dlpack(name, np.ascontiguousarray(array))


def _quiet_capsule_names(hook):
    """``sys.unraisablehook`` without the error numpy reports for each output tensor.

    The stub marks the DLPack capsules it takes as "used_dlpack" instead of DLPack's "used_dltensor", so numpy's
    capsule destructor complains (and rightly leaves the tensor alone: the stub frees it later, once).
    """

    def filtered(unraisable):
        if "PyCapsule_GetPointer called with incorrect name" not in str(unraisable.exc_value):
            hook(unraisable)

    return filtered


class TritonPythonModel:
    def initialize(self, args):
        sys.unraisablehook = _quiet_capsule_names(sys.unraisablehook)
        config = json.loads(args["model_config"])
        parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(parameters.get("intra_op_threads") or 1)
        options.inter_op_num_threads = 1
        graph = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        sequence = config.get("sequence_batching")
        self.temporal = sequence is not None
        self.histories = {}  # correlation id -> (last output, time.monotonic() of that step)
        if self.temporal:
            self.channels = int(config["output"][0]["dims"][0])
            idle_us = int(sequence.get("max_sequence_idle_microseconds") or 1_000_000)
            # Triton has dropped the sequence long before (twice the margin: steps can wait in Triton's queue)
            self.keep_s = 2 * idle_us / 1e6 + 1.0

    def execute(self, requests):
        if self.temporal:
            return [self._step(request) for request in requests]
        return self._frames(requests)

    def finalize(self):
        self.histories.clear()

    def _frames(self, requests):
        """Requests of the same frame size run as one batch."""
        name = self.inputs[0]
        responses = [None] * len(requests)
        groups = {}
        for i, request in enumerate(requests):
            x = _input(request, name)
            if x is None:
                responses[i] = _error(f"missing input {name!r}")
                continue
            groups.setdefault((x.dtype.str, x.shape[1:]), []).append((i, x))
        for items in groups.values():
            batch = np.concatenate([x for _, x in items]) if len(items) > 1 else items[0][1]
            try:
                y = self.session.run([self.output], {name: batch})[0]
            except Exception as exc:
                for i, _ in items:
                    responses[i] = _error(exc)
                continue
            first = 0
            for i, x in items:
                part = y[first : first + len(x)]
                responses[i] = pb_utils.InferenceResponse(output_tensors=[_output(self.output, part)])
                first += len(x)
        return responses

    def _step(self, request):
        """One frame of one sequence: its history in, its new history out."""
        start, end, corrid = (_input(request, name) for name in ("START", "END", "CORRID"))
        if start is None or end is None or corrid is None:
            return _error("not part of a sequence: send a sequence id with the start and end flags")
        key, starts, ends = int(corrid.ravel()[0]), bool(start.ravel()[0]), bool(end.ravel()[0])
        now = time.monotonic()
        for stale in [k for k, (_, used) in self.histories.items() if now - used > self.keep_s]:
            del self.histories[stale]
        if starts:
            self.histories.pop(key, None)  # a reused id starts afresh
        elif key not in self.histories:
            return _error(f"sequence {key} has no history here: start it again (sequence start flag)")
        feeds = {name: _input(request, name) for name in self.inputs if name not in OWN_INPUTS}
        missing = [name for name, value in feeds.items() if value is None]
        if missing:
            return _error(f"missing input(s) {', '.join(missing)}")
        feeds["reset"] = np.asarray(start, np.float32).reshape(1, 1)
        if starts:  # the graph ignores the history when reset is 1
            feeds["history"] = np.zeros((1, self.channels, 1, 1), np.float32)
        else:
            feeds["history"] = self.histories[key][0]
        try:
            out = self.session.run([self.output], feeds)[0]
        except Exception as exc:  # the sequence keeps its history: the client may send the frame again
            return _error(exc)
        if ends:
            self.histories.pop(key, None)
        else:
            self.histories[key] = (out, now)
        return pb_utils.InferenceResponse(output_tensors=[_output(self.output, out)])
'''


def _tensor_lines(kind: str, items: list[tuple[str, str, str]]) -> list[str]:
    """``input [ ... ]`` or ``output [ ... ]`` for (name, data type, dims) items."""
    lines = [f"{kind} ["]
    for i, (name, dtype, dims) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f'  {{ name: "{name}" data_type: {dtype} dims: [ {dims} ] }}{comma}')
    return [*lines, "]"]


def _tail(instances: int, threads: int) -> list[str]:
    return [
        f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]",
        f'parameters {{ key: "intra_op_threads" value: {{ string_value: "{threads}" }} }}',
    ]


def _check_counts(instances: int, threads: int) -> None:
    if instances < 1 or threads < 1:
        raise ValueError(f"instances and threads must be at least 1, got {instances} and {threads}")


def python_model_config(
    model: ModelDescriptor,
    graph: Path,
    *,
    max_batch_size: int | None = None,
    instances: int = 1,
    threads: int = 1,
    max_queue_delay_us: int = 500,
) -> str:
    """``config.pbtxt`` of a single-frame model for the Python backend: as for ONNX Runtime, on CPU instances."""
    _check_counts(instances, threads)
    max_batch_size = max_batch_size_for(max_batch_size, None)
    inputs, outputs = graph_io(graph)
    dims = f"{model.channels}, -1, -1"
    preferred = [b for b in (1, 2, 4, 8, 16) if b <= max_batch_size]
    lines = [
        f"# {model.name}: x{model.scale} upscaler ({model.description})",
        f"# input: N x {model.channels} x H x W float in [0, 1] (RGB); output: N x {model.channels} x {model.scale}H x "
        f"{model.scale}W, not clamped",
        "# served by model.py (ONNX Runtime on the CPU) in Triton's Python backend",
        f'name: "{model.name}"',
        'backend: "python"',
        f"max_batch_size: {max_batch_size}",
        *_tensor_lines("input", [(n, d, dims) for n, d in inputs]),
        *_tensor_lines("output", [(n, d, dims) for n, d in outputs]),
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
        f"  max_queue_delay_microseconds: {max_queue_delay_us}",
        "}",
        *_tail(instances, threads),
    ]
    return "\n".join(lines) + "\n"


def python_temporal_model_config(
    model: ModelDescriptor,
    graph: Path,
    *,
    instances: int = 1,
    threads: int = 1,
    max_idle_us: int = SEQUENCE_IDLE_US,
    max_sequences: int = MAX_CANDIDATE_SEQUENCES,
) -> str:
    """``config.pbtxt`` of a temporal model for the Python backend: ``model.py`` keeps the histories."""
    _check_counts(instances, threads)
    inputs, outputs = graph_io(graph)
    names = [name for name, _ in inputs]
    wanted = sorted(["frame", "history", "jitter", "motion", "reset", *(["depth"] if model.depth else [])])
    if sorted(names) != wanted or [n for n, _ in outputs] != ["output"]:
        raise ValueError(f"{graph}: not a temporal step graph (inputs {names})")
    c, s = model.state_channels, model.scale
    dims = {"frame": "3, -1, -1", "jitter": "2", "motion": "2, -1, -1", "depth": "1, -1, -1"}
    declared = [(n, d, dims[n]) for n, d in inputs if n not in ("history", "reset")]
    flag = "control [ { kind: CONTROL_SEQUENCE_%s fp32_false_true: [ 0, 1 ] } ]"
    lines = [
        f"# {model.name}: x{s} temporal super-sampling, one sequence per stream ({model.description})",
        "# inputs: frame 3 x H x W float 0..1 RGB; jitter 2 (LR pixels, each from -0.5 up to 0.5); motion 2 x H x W "
        "(LR pixels, previous = current + motion)"
        + ("; depth 1 x H x W (linear, any unit; zeros: none)" if model.depth else ""),
        f"# output: {c} x {s}H x {s}W, 0..1, kept by model.py as the sequence's history (by correlation id)"
        + ("" if c == 3 else "; planes 0-2 are the frame, the rest the model's accumulation state"),
        "# a new sequence (correlation id) starts from the frame alone: start one at every cut",
        f'name: "{model.name}"',
        'backend: "python"',
        "max_batch_size: 1",
        *_tensor_lines("input", declared),
        *_tensor_lines("output", [("output", outputs[0][1], f"{c}, -1, -1")]),
        "sequence_batching {",
        f"  max_sequence_idle_microseconds: {max_idle_us}",
        f"  oldest {{ max_candidate_sequences: {max_sequences} }}",
        "  control_input [",
        f'    {{ name: "START" {flag % "START"} }},',
        f'    {{ name: "END" {flag % "END"} }},',
        '    { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }',
        "  ]",
        "}",
        *_tail(instances, threads),
    ]
    return "\n".join(lines) + "\n"


def write_python_repository(
    models: Sequence[ModelDescriptor],
    root: Path,
    *,
    precision: str = "fp32",
    max_batch_size: int | None = None,
    instances: int = 1,
    threads: int = 1,
) -> list[Path]:
    """One Python-backend model folder per model under ``root``; returns the config paths.

    Every config is made (and so every graph checked) before anything is
    written. Temporal models ship their FP32 graph whatever ``precision`` says.
    """
    root = Path(root)
    planned = []
    for model in models:
        graph = require_graph(model, "fp32" if model.temporal else precision)
        if model.temporal:
            text = python_temporal_model_config(model, graph, instances=instances, threads=threads)
        else:
            text = python_model_config(
                model, graph, max_batch_size=max_batch_size, instances=instances, threads=threads
            )
        planned.append((model, graph, text))
    written = []
    for model, graph, text in planned:
        folder = root / model.name
        version = folder / "1"
        version.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(graph, version / "model.onnx")
        write_atomic(version / "model.py", MODEL_PY)
        written.append(write_atomic(folder / "config.pbtxt", text))
    return written
