"""A Triton Inference Server model repository for the built-in models.

One folder per model: ``config.pbtxt`` and version ``1`` holding the ONNX
graph (``onnxruntime_onnx``, optionally with TensorRT acceleration inside
Triton) or a TensorRT plan (``tensorrt_plan``). Batch, height and width are
dynamic (``-1``); requests are batched by Triton's dynamic batcher. Input
and output names and types are read from the graph itself, so the config
always matches what it describes.

A plan serves only batches inside its optimisation profile, and Triton
refuses a config whose ``max_batch_size`` exceeds the profile's max batch.
So for plans ``max_batch_size`` defaults to the profile's max batch, a
larger one is an error (raise the profile's batch instead: the profile is
what the engine was built for), the profile's min batch must be 1 (Triton
sends single requests), and ``preferred_batch_size`` stays within it.

Temporal models (``x4-temporal``, ``x2-temporal``) are stateful sequence
models: the whole-step graph with Triton's sequence batcher and *implicit
state* (``history`` in, ``output`` out: Triton feeds each request's output
back as the next request's history, on the device, per sequence), and the
sequence-start control wired to the graph's ``reset`` input. A client sends
``frame``, ``jitter`` and ``motion`` with a sequence (correlation) id; a cut
it knows about starts a new sequence. The first request of a sequence gets
an uninitialised 1 x 1 state, which the graph ignores when ``reset`` is 1
(it starts from the frame upsampled). ``max_batch_size`` is 1 for them:
that placeholder state cannot be batched with the full-size state of
running sequences, so concurrency comes from instances, not batching.

Triton's ONNX Runtime and TensorRT backends are not installed on our
machines: this repository layout and these configs follow Triton's
model-configuration documentation and are checked by tests for structure and
consistency with the graphs, not served. ``export/triton_python.py`` writes
the same models for Triton's Python backend (``--backend python``), which is
served and tested against a real server (``.ci/triton``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from upscaler.io import write_atomic
from upscaler.models import ModelDescriptor
from upscaler.runtime.base import require_graph
from upscaler.runtime.profiles import ShapeProfile

__all__ = [
    "DEFAULT_MAX_BATCH",
    "graph_io",
    "max_batch_size_for",
    "model_config",
    "temporal_model_config",
    "write_repository",
]

#: ``max_batch_size`` of ONNX models (ONNX Runtime takes any batch).
DEFAULT_MAX_BATCH = 8

_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(uint8)": "TYPE_UINT8"}


def graph_io(graph: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The graph's (name, Triton data type) inputs and outputs, in the graph's order."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    inputs = [(i.name, _TYPES[i.type]) for i in session.get_inputs()]
    outputs = [(o.name, _TYPES[o.type]) for o in session.get_outputs()]
    return inputs, outputs


def max_batch_size_for(requested: int | None, profile: ShapeProfile | None) -> int:
    """Triton's ``max_batch_size`` for a model: ``requested``, checked against a plan's ``profile``.

    ``profile`` is None for ONNX models (default ``DEFAULT_MAX_BATCH``); for a
    TensorRT plan the default is the profile's max batch, and a larger
    request, or a profile whose min batch is above 1, is a ``ValueError``.
    """
    if requested is not None and requested < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {requested}")
    if profile is None:
        return DEFAULT_MAX_BATCH if requested is None else requested
    if profile.min[0] != 1:
        raise ValueError(
            f"the TensorRT profile's min batch is {profile.min[0]}, but Triton sends single requests: use a profile "
            f"whose min batch is 1"
        )
    if requested is not None and requested > profile.max[0]:
        raise ValueError(
            f"max batch size {requested} is more than the TensorRT profile's max batch of {profile.max[0]}, which "
            f"Triton refuses: lower --max-batch-size or raise the profile's batch (--profile)"
        )
    return profile.max[0] if requested is None else requested


def model_config(
    model: ModelDescriptor,
    graph: Path,
    *,
    platform: str,
    max_batch_size: int | None,
    gpu: bool,
    instances: int = 1,
    max_queue_delay_us: int = 500,
    tensorrt_precision: str | None = None,
    profile: ShapeProfile | None = None,
) -> str:
    """The ``config.pbtxt`` text for one model; ``profile`` is that of a plan (``platform`` ``tensorrt_plan``)."""
    max_batch_size = max_batch_size_for(max_batch_size, profile)
    inputs, outputs = graph_io(graph)

    def tensors(kind: str, items: list[tuple[str, str]]) -> list[str]:
        lines = [f"{kind} ["]
        for i, (name, dtype) in enumerate(items):
            comma = "," if i < len(items) - 1 else ""
            lines.append(f'  {{ name: "{name}" data_type: {dtype} dims: [ {model.channels}, -1, -1 ] }}{comma}')
        lines.append("]")
        return lines

    preferred = [b for b in (1, 2, 4, 8, 16) if b <= max_batch_size]
    lines = [
        f"# {model.name}: x{model.scale} upscaler ({model.description})",
        f"# input: N x {model.channels} x H x W float in [0, 1] (RGB); output: N x {model.channels} x {model.scale}H x "
        f"{model.scale}W, not clamped",
    ]
    if profile is not None:
        lines.append(
            f"# TensorRT profile (batch x height x width): min {profile.min}, opt {profile.opt}, max {profile.max}"
        )
    lines += [
        f'name: "{model.name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {max_batch_size}",
        *tensors("input", inputs),
        *tensors("output", outputs),
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
        f"  max_queue_delay_microseconds: {max_queue_delay_us}",
        "}",
        f"instance_group [ {{ count: {instances} kind: {'KIND_GPU' if gpu else 'KIND_CPU'} }} ]",
    ]
    if tensorrt_precision:
        lines += [
            "optimization { execution_accelerators {",
            "  gpu_execution_accelerator: [ {",
            '    name: "tensorrt"',
            f'    parameters {{ key: "precision_mode" value: "{tensorrt_precision.upper()}" }}',
            '    parameters { key: "max_workspace_size_bytes" value: "4294967296" }',
            "  } ]",
            "} }",
        ]
    return "\n".join(lines) + "\n"


#: How long Triton keeps an idle temporal sequence (and its state) before freeing its slot.
SEQUENCE_IDLE_US = 5_000_000


def temporal_model_config(
    model: ModelDescriptor,
    graph: Path,
    *,
    platform: str,
    gpu: bool,
    instances: int = 1,
    max_idle_us: int = SEQUENCE_IDLE_US,
    profile: ShapeProfile | None = None,
) -> str:
    """``config.pbtxt`` for a temporal model: a sequence model with implicit state (see the module docstring)."""
    inputs, outputs = graph_io(graph)
    names = [name for name, _ in inputs]
    wanted = sorted(["frame", "history", "jitter", "motion", "reset", *(["depth"] if model.depth else [])])
    if sorted(names) != wanted or [n for n, _ in outputs] != ["output"]:
        raise ValueError(f"{graph}: not a temporal step graph (inputs {names})")
    c = model.state_channels
    dims = {"frame": "3, -1, -1", "jitter": "2", "motion": "2, -1, -1", "depth": "1, -1, -1", "output": f"{c}, -1, -1"}
    declared = [(n, d) for n, d in inputs if n not in ("history", "reset")]
    s = model.scale
    lines = [
        f"# {model.name}: x{s} temporal super-sampling, one stateful sequence per stream ({model.description})",
        "# inputs: frame 3 x H x W float 0..1 RGB; jitter 2 (LR pixels, each from -0.5 up to 0.5); motion 2 x H x W "
        "(LR pixels, previous = current + motion)"
        + ("; depth 1 x H x W (linear, any unit; zeros: none)" if model.depth else ""),
        f"# output: {c} x {s}H x {s}W, 0..1, also kept by Triton as the sequence's history (implicit state)"
        + ("" if c == 3 else "; planes 0-2 are the frame, the rest the model's accumulation state"),
        "# a new sequence (correlation id) starts from the frame alone: start one at every cut",
    ]
    if profile is not None:
        (_, h0, w0), (_, h1, w1), (_, h2, w2) = profile.min, profile.opt, profile.max
        lines.append(f"# TensorRT profile (batch 1): frames from {w0}x{h0} to {w2}x{h2}, tuned for {w1}x{h1}")
    lines += [
        f'name: "{model.name}"',
        f'platform: "{platform}"',
        "max_batch_size: 1",
        "input [",
        *(f'  {{ name: "{n}" data_type: {d} dims: [ {dims[n]} ] }}{"," if i < len(declared) - 1 else ""}'
          for i, (n, d) in enumerate(declared)),
        "]",
        "output [",
        f'  {{ name: "output" data_type: {outputs[0][1]} dims: [ {dims["output"]} ] }}',
        "]",
        "sequence_batching {",
        f"  max_sequence_idle_microseconds: {max_idle_us}",
        "  direct { }",
        "  control_input [",
        '    { name: "reset" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] }',
        "  ]",
        "  state [",
        f'    {{ input_name: "history" output_name: "output" data_type: TYPE_FP32 dims: [ {c}, -1, -1 ] }}',
        "  ]",
        "}",
        f"instance_group [ {{ count: {instances} kind: {'KIND_GPU' if gpu else 'KIND_CPU'} }} ]",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_repository(
    models: Sequence[ModelDescriptor],
    root: Path,
    *,
    precision: str = "fp32",
    max_batch_size: int | None = None,
    gpu: bool = True,
    tensorrt_precision: str | None = None,
    plans: dict[str, Path] | None = None,
    profile: ShapeProfile | None = None,
) -> list[Path]:
    """Write one Triton model folder per model under ``root``; returns the config paths.

    ``plans`` maps model names to TensorRT plan files to serve instead of
    ONNX (``tensorrt_plan``; their I/O is read from the ONNX they came from),
    built with ``profile``, which is then required. ``max_batch_size``
    defaults to 8 for ONNX models and to the profile's max batch for plans
    (see ``max_batch_size_for``); everything is checked before anything is written.
    """
    root = Path(root)
    if plans and profile is None:
        raise ValueError("plans need the profile they were built with")
    for model in models:  # checked first: a bad request writes nothing
        if not model.temporal:
            max_batch_size_for(max_batch_size, profile if (plans or {}).get(model.name) else None)
    written = []
    for model in models:
        graph = require_graph(model, "fp32" if model.temporal else precision)  # temporal models ship FP32
        folder = root / model.name
        version = folder / "1"
        version.mkdir(parents=True, exist_ok=True)
        plan = (plans or {}).get(model.name)
        if plan is not None:
            shutil.copyfile(plan, version / "model.plan")
            platform, accel = "tensorrt_plan", None
        else:
            shutil.copyfile(graph, version / "model.onnx")
            platform, accel = "onnxruntime_onnx", tensorrt_precision
        if model.temporal:
            text = temporal_model_config(
                model, graph, platform=platform, gpu=gpu, profile=profile if plan is not None else None
            )
            written.append(write_atomic(folder / "config.pbtxt", text))
            continue
        text = model_config(
            model,
            graph,
            platform=platform,
            max_batch_size=max_batch_size,
            gpu=gpu,
            tensorrt_precision=accel,
            profile=profile if plan is not None else None,
        )
        written.append(write_atomic(folder / "config.pbtxt", text))
    return written
