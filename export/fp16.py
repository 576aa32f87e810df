"""FP16 ONNX graphs: weights and activations in half precision, float32 in and out.

For GPU runtimes (TensorRT, ONNX Runtime CUDA). Every float initializer is
stored as float16; a Cast after the input and before the output keeps the
graph's interface float32, so callers and the ``Engine`` protocol do not
change. Our graphs hold only Conv, Relu/PRelu, Pad, Add and DepthToSpace,
all defined for float16.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["to_fp16"]


def to_fp16(source: Path, out: Path) -> Path:
    """Write the float16 version of the float32 ONNX graph ``source`` to ``out`` (atomically)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    for i, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
            graph.initializer[i].CopyFrom(half)
    (inp,), (outp,) = graph.input, graph.output
    half_in, half_out = f"{inp.name}_fp16", f"{outp.name}_fp16"
    for node in graph.node:
        node.input[:] = [half_in if n == inp.name else n for n in node.input]
        node.output[:] = [half_out if n == outp.name else n for n in node.output]
    graph.node.insert(0, helper.make_node("Cast", [inp.name], [half_in], to=TensorProto.FLOAT16, name="input_to_fp16"))
    graph.node.append(helper.make_node("Cast", [half_out], [outp.name], to=TensorProto.FLOAT, name="output_to_fp32"))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, "precision": "fp16"})
    onnx.checker.check_model(model)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.part")
    try:
        onnx.save(model, str(tmp))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
