"""INT8: static quantisation (QDQ) of the FP32 graph, calibrated on real images.

Weights are quantised per output channel (int8, symmetric), activations per
tensor with ranges from calibration crops: low-resolution crops made from
the given images by the model's own degradation, so the ranges are those the
network sees in use. Two schemes (``SCHEMES``):

- ``cpu`` (the shipped ``int8`` graph, for ONNX Runtime on the CPU): int8
  activations with a zero point (S8S8, ONNX Runtime's recommended default).
  Not U8S8: on x86 CPUs without VNNI, ONNX Runtime computes U8S8 with
  ``vpmaddubsw``, which saturates pairs of products at 16 bits (0.28 dB lost
  on Set5 on an AVX2-only EPYC against 0.02 dB with VNNI). S8S8 is exact on
  both, so one graph serves every x86-64 CPU.
- ``symmetric`` (the ``int8-symmetric`` graph, for TensorRT): every zero
  point is 0, the only form TensorRT's ONNX parser accepts.

In both, the final ``DepthToSpace`` gets a quantise/dequantise pair of its own
(``quantize_shuffle``), so ONNX Runtime runs it on 8 bits and keeps the
residual ``Add`` quantised: 1.17x -> 1.38x FP32 for x4-fast on an AVX2 EPYC.

``int8_report`` measures what it costs and gains, side by side with FP32 in
one process: network latency (interleaved rounds) and PSNR on evaluation
folders.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from upscaler.degradations import degrade, modcrop, protocol_degradation
from upscaler.io import list_images, read_image
from upscaler.models import ModelDescriptor, ModelFile
from upscaler.pipeline import to_float, to_rgb8

__all__ = [
    "METHODS",
    "SCHEMES",
    "calibration_batches",
    "int8_report",
    "quantize_int8",
    "quantize_shuffle",
    "with_graph",
]

METHODS = ("minmax", "entropy", "percentile")
#: Quantisation schemes and the manifest graph each one ships as.
SCHEMES = {"cpu": "int8", "symmetric": "int8-symmetric"}


def calibration_batches(
    folder: Path, model: ModelDescriptor, *, crops: int = 64, size: int = 48, seed: int = 0
) -> list[np.ndarray]:
    """``crops`` low-resolution ``1 x 3 x size x size`` crops, one per image (cycling), from ``folder``; an image
    smaller than that is padded with its edge pixels."""
    files = list_images(Path(folder))
    if not files:
        raise FileNotFoundError(f"{folder}: no images to calibrate on")
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(crops):
        hr = modcrop(to_rgb8(read_image(files[i % len(files)])), model.scale)
        lr = degrade(hr, model.scale, protocol_degradation(model.degradation))
        h, w = lr.shape[:2]
        y, x = rng.integers(0, max(1, h - size + 1)), rng.integers(0, max(1, w - size + 1))
        crop = lr[y : y + size, x : x + size]
        if crop.shape[:2] != (size, size):  # one shape for all: the histogram calibrators stack them
            crop = np.pad(crop, ((0, size - crop.shape[0]), (0, size - crop.shape[1]), (0, 0)), mode="edge")
        batches.append(np.ascontiguousarray(to_float(crop).transpose(2, 0, 1)[None]))
    return batches


def quantize_int8(
    source: Path, out: Path, batches: list[np.ndarray], *, method: str = "minmax", scheme: str = "cpu"
) -> Path:
    """Write the QDQ INT8 version of the FP32 graph ``source`` to ``out`` (atomically), in ``scheme``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    calibrate = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self):
            batch = next(self._items, None)
            return None if batch is None else {"input": batch}

    out = Path(out)
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=out.parent) as work:
        prepared, staged = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        quant_pre_process(str(source), str(prepared))
        quantize_static(
            str(prepared),
            str(staged),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calibrate[method],
            extra_options={"ActivationSymmetric": scheme == "symmetric", "WeightSymmetric": True},
        )
        graph = onnx.load(str(staged))
        quantize_shuffle(graph)
        onnx.checker.check_model(graph)
        onnx.save(graph, str(staged))
        staged.replace(out)
    return out


def quantize_shuffle(graph) -> int:
    """Give each ``DequantizeLinear -> DepthToSpace`` a ``QuantizeLinear -> DequantizeLinear`` pair after it.

    The pair has the same (per-tensor) scale and zero point, so the values
    are unchanged: a permutation of quantised values re-quantises to itself.
    It lets ONNX Runtime see the shuffle as an 8-bit operator: it keeps the
    residual ``Add`` as one ``QLinearAdd`` and moves a quarter of the bytes
    through the (slow) ``DepthToSpace``. Returns how many were rewritten.
    """
    from onnx import helper

    nodes = list(graph.graph.node)
    producer = {out: node for node in nodes for out in node.output}
    scalars = {i.name for i in graph.graph.initializer if len(i.dims) == 0}
    rewritten = 0
    for shuffle in [n for n in nodes if n.op_type == "DepthToSpace"]:
        dq = producer.get(shuffle.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or not all(name in scalars for name in dq.input[1:]):
            continue
        result, float_out, quantised = shuffle.output[0], f"{shuffle.output[0]}_float", f"{shuffle.output[0]}_int8"
        shuffle.output[0] = float_out
        pair = [
            helper.make_node("QuantizeLinear", [float_out, *dq.input[1:]], [quantised], name=f"{shuffle.name}_q"),
            helper.make_node("DequantizeLinear", [quantised, *dq.input[1:]], [result], name=f"{shuffle.name}_dq"),
        ]
        at = nodes.index(shuffle) + 1
        nodes[at:at] = pair
        rewritten += 1
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    return rewritten


def with_graph(model: ModelDescriptor, precision: str, path: Path) -> ModelDescriptor:
    """``model`` with ``path`` as its ``precision`` graph (unverified: for checks before release)."""
    return replace(model, graphs={**model.graphs, precision: ModelFile(Path(path).resolve())})


def int8_report(
    model: ModelDescriptor,
    int8_path: Path,
    eval_dirs: list[Path],
    *,
    size: tuple[int, int] = (320, 180),
    rounds: int = 5,
    runs: int = 10,
    threads: int | None = None,
) -> dict:
    """Speed-up (network, side by side) and PSNR of the INT8 graph against FP32."""
    from upscaler.bench import timed
    from upscaler.evaluate import evaluate_folder
    from upscaler.facade import Upscaler
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.ort_cpu import OrtCpuEngine

    candidate = with_graph(model, "int8", int8_path)
    engines = {
        p: OrtCpuEngine(candidate, EngineOptions(threads=threads, spin=False, precision=p)) for p in ("fp32", "int8")
    }
    w, h = size
    batch = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    times: dict[str, list[float]] = {p: [] for p in engines}
    for engine in engines.values():
        timed(lambda engine=engine: engine.run(batch), 3)
    for _ in range(rounds):
        for p, engine in engines.items():
            times[p] += timed(lambda engine=engine: engine.run(batch), runs)
    medians = {p: float(np.median(t)) for p, t in times.items()}
    from upscaler.sysinfo import cpu_flags, cpu_id, cpu_name

    report: dict = {
        "machine": {"cpu": cpu_name(), "cpu_id": cpu_id(), "cpu_flags": list(cpu_flags()), "threads": threads},
        "size": [w, h],
        "network_ms": {p: round(m, 2) for p, m in medians.items()},
        "speedup": round(medians["fp32"] / medians["int8"], 2),
        "quality": {},
    }
    for folder in eval_dirs:
        scores = {}
        for p, engine in engines.items():
            up = Upscaler(candidate, engine=engine, tile=0)
            scores[p] = evaluate_folder(
                Path(folder), up.upscale, model.scale, protocol_degradation(model.degradation)
            ).summary()
        report["quality"][scores["int8"]["dataset"]] = {
            "images": scores["int8"]["images"],
            "psnr_fp32": scores["fp32"]["psnr"],
            "psnr_int8": scores["int8"]["psnr"],
            "psnr_cost": round(scores["fp32"]["psnr"] - scores["int8"]["psnr"], 3),
        }
    return report
