"""ONNX export with dynamic batch, height and width, and a parity check.

Opset 17: supported by every ONNX Runtime since 1.14 and by TensorRT 8.6+.
The graph is Conv, Relu/PRelu, Pad (edge, constant pads), Add and
DepthToSpace, nothing else: the exporter's pad-size arithmetic is folded
into a constant after export.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from upscaler.models import ModelDescriptor, ModelFile

__all__ = ["FP16_TOLERANCE", "FP32_TOLERANCE", "OPSET", "ParityError", "ParityReport", "check_parity", "export_onnx"]

log = logging.getLogger(__name__)

#: The ONNX opset written by default, and the range the exporter accepts.
OPSET = 17
OPSETS = range(13, 21)
#: Largest |torch - onnxruntime| allowed in FP32, on a [0, 1] scale.
FP32_TOLERANCE = 1e-3
#: The same for FP16 graphs (about one grey level in 8 bits).
FP16_TOLERANCE = 5e-3


class ParityError(RuntimeError):
    """The exported graph does not reproduce PyTorch closely enough."""


def export_onnx(model: ModelDescriptor, out: Path, *, opset: int = OPSET) -> Path:
    """Export ``model``'s safetensors weights to an ONNX graph at ``out`` (written atomically)."""
    if opset not in OPSETS:
        raise ValueError(f"opset must be {OPSETS.start} to {OPSETS.stop - 1}, got {opset}")
    import onnx
    import torch

    from upscaler.runtime.torch_engine import load_network

    net = load_network(model)
    dummy = torch.rand(1, model.channels, 32, 40)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    try:
        graph = _export(net, dummy, tmp, opset)
        _describe(graph, model)
        onnx.save(graph, str(tmp))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote %s (%s ops)", out, sorted({n.op_type for n in graph.graph.node}))
    return out


def _export(net, dummy, tmp: Path, opset: int):
    import onnx
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            (dummy,),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={
                "input": {0: "batch", 2: "height", 3: "width"},
                "output": {0: "batch", 2: "out_height", 3: "out_width"},
            },
            do_constant_folding=True,
        )
    graph = onnx.load(str(tmp))
    _fold_pads(graph, dummy.numpy())
    onnx.checker.check_model(graph)
    return graph


def _constants_to_initializers(graph) -> None:
    """Constant nodes (the fixed base-upsample kernel) become initializers, like every other weight."""
    for node in [n for n in graph.graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"]:
        tensor = node.attribute[0].t
        tensor.name = node.output[0]
        graph.graph.initializer.append(tensor)
        graph.graph.node.remove(node)


def _fold_pads(graph, dummy: np.ndarray) -> None:
    """Replace computed ``pads`` inputs of Pad nodes by constants and drop the arithmetic that made them."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    constants = {i.name for i in graph.graph.initializer}
    targets = [n for n in graph.graph.node if n.op_type == "Pad" and n.input[1] not in constants]
    if not targets:
        return
    probe = onnx.ModelProto()
    probe.CopyFrom(graph)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n.input[1]) for n in targets)
    values = ReferenceEvaluator(probe).run(None, {graph.graph.input[0].name: dummy})
    for node, value in zip(targets, values):
        name = f"{node.name or node.output[0]}_pads"
        graph.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
        node.input[1] = name
    needed = {o.name for o in graph.graph.output}
    kept = []
    for node in reversed(graph.graph.node):  # nodes are topologically sorted: walk back from the outputs
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.graph.node[:]
    graph.graph.node.extend(reversed(kept))
    _constants_to_initializers(graph)
    live = [i for i in graph.graph.initializer if i.name in needed]
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(live)


def _describe(graph, model: ModelDescriptor) -> None:
    import onnx

    graph.doc_string = f"upscaler model {model.name}: x{model.scale} {model.arch}"
    graph.producer_name = "upscaler"
    props = {
        "name": model.name,
        "arch": model.arch,
        "scale": str(model.scale),
        "params": json.dumps(dict(model.params), sort_keys=True),
        "degradation": model.degradation,
        "input": "N x 3 x H x W float32 RGB in [0, 1]",
        "output": "N x 3 x sH x sW float32, unclamped",
    }
    onnx.helper.set_model_props(graph, props)


@dataclass(frozen=True)
class ParityReport:
    """How closely ONNX Runtime reproduces PyTorch."""

    max_abs_error: float  #: largest absolute difference, [0, 1] scale
    psnr: float  #: PSNR between the two outputs (8-bit scale, all channels)
    images: int  #: images compared
    tolerance: float  #: the bound checked

    @property
    def ok(self) -> bool:
        """Within the tolerance."""
        return self.max_abs_error <= self.tolerance


def check_parity(
    model: ModelDescriptor, onnx_path: Path, images: list[np.ndarray], *, tolerance: float = FP32_TOLERANCE
) -> ParityReport:
    """Run PyTorch and ONNX Runtime (CPU) on real images and compare.

    Raises ``ParityError`` above ``tolerance``; returns the report otherwise.
    """
    from upscaler.pipeline import to_float, to_rgb8
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.ort_cpu import OrtCpuEngine
    from upscaler.runtime.torch_engine import TorchEngine

    # This graph and no other: left to choose, the CPU engine runs a model's INT8 graph where it is faster.
    onnx_model = ModelDescriptor(**{**model.__dict__, "onnx": ModelFile(Path(onnx_path)), "graphs": {}})
    ort_engine = OrtCpuEngine(onnx_model, EngineOptions(precision="fp32"))
    torch_engine = TorchEngine(model)
    worst, squared, count = 0.0, 0.0, 0
    for image in images:
        batch = to_float(to_rgb8(image)).transpose(2, 0, 1)[None]
        a, b = ort_engine.run(batch), torch_engine.run(batch)
        if a.shape != b.shape:
            raise ParityError(f"ONNX Runtime output {a.shape} and PyTorch output {b.shape} differ in shape")
        diff = np.abs(a.astype(np.float64) - b)
        worst = max(worst, float(diff.max()))
        squared += float(((diff * 255.0) ** 2).sum())
        count += diff.size
    mse = squared / max(count, 1)
    report = ParityReport(worst, float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse), len(images), tolerance)
    if not report.ok:
        raise ParityError(f"ONNX Runtime differs from PyTorch by up to {worst:.2e} (bound {tolerance:.0e})")
    return report
