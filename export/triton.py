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

Triton is not installed on our machines: the repository layout and configs
follow Triton's model-configuration documentation and are checked by tests
for structure and consistency with the graphs, not served.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from upscaler.io import write_atomic
from upscaler.models import ModelDescriptor
from upscaler.runtime.base import require_graph
from upscaler.runtime.profiles import ShapeProfile

__all__ = ["DEFAULT_MAX_BATCH", "max_batch_size_for", "model_config", "write_repository"]

#: ``max_batch_size`` of ONNX models (ONNX Runtime takes any batch).
DEFAULT_MAX_BATCH = 8

_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(uint8)": "TYPE_UINT8"}


def _io(graph: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
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
    inputs, outputs = _io(graph)

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
        max_batch_size_for(max_batch_size, profile if (plans or {}).get(model.name) else None)
    written = []
    for model in models:
        graph = require_graph(model, precision)
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
