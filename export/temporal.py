"""Temporal models to ONNX: the whole per-frame step, and its folded (after-reprojection) part for the CPU.

- ``<name>.onnx``: ``frame`` (N x 3 x H x W), ``jitter`` (N x 2), ``motion``
  (N x 2 x H x W), ``history`` (N x C x sH x sW), ``reset`` (N x 1) ->
  ``output`` (N x C x sH x sW; C = 3, the output, or 4 for models that carry their accumulated weight
  after it): reprojection (``GridSample``), network and
  blend in one graph, dynamic batch (batch 1 for the accumulating models), height and width; what GPU engines
  (ONNX Runtime CUDA/TensorRT, TensorRT) run, the history kept on the device.
- ``<name>.folded.onnx``: ``frame``, ``jitter``, ``history`` (N x Cs² x H x W,
  already reprojected and folded), ``reset`` -> ``output`` (N x Cs² x H x W,
  folded): what ONNX Runtime's CPU engine runs between reprojecting and
  unfolding with OpenCV. For accumulating models (``AccumSR``) it is the
  network's convolutions only, ``AccumSR.network``: ``frame``, ``jitter``,
  the reprojected ``colour`` (1 x 3s² x H x W) and ``weight`` (1 x s² x H x W),
  ``reset`` and, for models that take depth, ``apart`` (1 x s² x H x W: the
  depth gap between this frame and the reprojected history, ``AccumSR.depth_gap``,
  which the engine computes) -> ``NETWORK_OUTPUTS``: the ``tail`` (1 x 6s² x H x W: the
  logits of the history, the splat and the base, then the correction), the
  frame's ``splat_gain`` (1 x s²) and its ``kernels`` (1 x 2 x s² x 9); the
  engine makes the weights and the mean from them in one pass
  (``upscaler.runtime.accum_cpu``).
- ``<name>.display-<filter>.onnx`` (accumulating models with display filters,
  one per filter that is not identity): ``result`` (3 x s² x H x W, the new
  colour folded, one colour per batch item) -> ``shown``, the same shape.
- ``<name>.detail-<filter>.onnx`` (models with luma detail filters, one per
  filter that adds something): ``luma`` (1 x s² x H + 2p x W + 2p, the new
  colour's luma folded, ``LUMA``, its edges replicated ``p`` wide: half the
  kernel) -> ``detail`` (1 x s² x H x W), added to every colour of that
  filter's output.

``check_temporal_parity`` runs both graphs beside PyTorch over a rendered
sequence (history carried from frame to frame) and reports the largest
difference.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.onnx_export import OPSET, ParityError
from upscaler.archs import DISPLAY_FILTERS, NETWORK_OUTPUTS
from upscaler.models import ModelDescriptor
from upscaler.models.descriptor import display_graph_path, temporal_cpu_graphs

__all__ = ["TemporalParity", "check_temporal_parity", "export_temporal"]

#: Largest |ONNX - PyTorch| allowed over a sequence (the CPU path reprojects with OpenCV's fixed-point weights).
TEMPORAL_TOLERANCE = {"full": 1e-3, "folded": 2e-2}


def _dynamic(names: dict[str, str]) -> dict[str, dict[int, str]]:
    spatial = {"frame": ("h", "w"), "motion": ("h", "w"), "depth": ("h", "w"), "history": names,
               "output": ("oh", "ow")}  # fmt: skip
    axes = {}
    for name, (a, b) in {k: v if isinstance(v, tuple) else (v["h"], v["w"]) for k, v in spatial.items()}.items():
        axes[name] = {0: "batch", 2: a, 3: b}
    axes["jitter"] = {0: "batch"}
    axes["reset"] = {0: "batch"}
    return axes


def export_temporal(model: ModelDescriptor, full: Path, folded: Path, *, opset: int = OPSET) -> tuple[Path, Path]:
    """Write the whole-step graph to ``full`` and the folded one to ``folded`` (atomically)."""
    import torch

    from upscaler.runtime.torch_engine import load_network

    net = load_network(model)
    s = model.scale
    h, w = 24, 32
    frame, jitter, reset = torch.rand(1, 3, h, w), torch.rand(1, 2) - 0.5, torch.zeros(1, 1)
    c = model.state_channels
    motion, history = torch.randn(1, 2, h, w) * 0.5, torch.rand(1, c, h * s, w * s)

    class Folded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, *args):
            return self.net.blend_folded(*args)

    extra, names = (), ["frame", "jitter", "motion", "history", "reset"]
    if model.depth:  # a model that takes the caller's depth: one more input, LR like the frame
        extra, names = (torch.rand(1, 1, h, w) + 0.5,), [*names, "depth"]
    folded_history = torch.rand(1, (c - model.display_planes) * s * s, h, w)
    folded_args, folded_names = (frame, jitter, folded_history, reset, *extra), [n for n in names if n != "motion"]
    if model.display_planes:  # its shown-colour filters read the motion (zero: a still camera); depth is an input
        folded_args, folded_names = (*folded_args, motion), [*folded_names, "motion"]
    jobs = [(net, (frame, jitter, motion, history, reset, *extra), names, full, {"h": "sh", "w": "sw"})]
    if hasattr(net, "coefficients"):  # an accumulating model: the network and the filters, the mean outside
        _export_accum(net, model, Path(folded), (frame, jitter, reset, *extra), opset)
    else:
        jobs.append((Folded(), folded_args, folded_names, folded, {"h": "h", "w": "w"}))
    for module, args, names, out, history_axes in jobs:
        axes = {k: v for k, v in _dynamic(history_axes).items() if k in [*names, "output"]}
        if module is not net:  # the folded graph's output is folded too: low-resolution axes
            axes["output"] = {0: "batch", 2: "h", 3: "w"}
        if model.depth:  # AccumSR mixes each frame with its own kernels (a group per colour): one frame a call
            axes = {k: {a: n for a, n in v.items() if a != 0} for k, v in axes.items()}
        _write_graph(module, args, names, ["output"], axes, Path(out), model, opset)
    return Path(full), Path(folded)


def _export_accum(net, model: ModelDescriptor, folded: Path, example: tuple, opset: int) -> None:
    """An accumulating model's CPU graphs: ``coefficients`` to ``folded``, each display filter that is not
    identity beside it (stale filter graphs of an earlier export there are removed)."""
    import torch
    import torch.nn.functional as F

    frame, jitter, reset, *extra = example
    s2 = net.scale * net.scale
    h, w = frame.shape[2:]

    class Network(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, frame, jitter, colour, weight, reset, apart=None):
            if apart is None:  # a model without depth: no gap anywhere
                apart = torch.zeros_like(weight)
            tail = self.net.network(frame, jitter, colour, weight, apart, reset)
            return tail, self.net.splat_gain(jitter), self.net.mix_kernels(jitter)

    class Filter(torch.nn.Module):
        def __init__(self, weight, bias, padded: bool = True) -> None:
            super().__init__()
            self.conv, self.padded = torch.nn.Conv2d(s2, s2, weight.shape[-1]), padded
            self.conv.weight.data.copy_(weight)
            self.conv.bias.data.copy_(bias)

        def forward(self, result):
            r = self.conv.kernel_size[0] // 2 if self.padded else 0
            return self.conv(F.pad(result, (r, r, r, r), mode="replicate") if r else result)

    names = ["frame", "jitter", "colour", "weight", "reset"]
    args = [frame, jitter, torch.rand(1, 3 * s2, h, w), torch.rand(1, s2, h, w), reset]
    if extra:
        names, args = [*names, "apart"], [*args, torch.rand(1, s2, h, w)]
    spatial = {2: "h", 3: "w"}
    axes = {n: spatial for n in [*names, "tail"] if n not in ("jitter", "reset")}
    _write_graph(Network(), tuple(args), names, list(NETWORK_OUTPUTS), axes, folded, model, opset)
    edge = int(model.params.get("detail", 0)) // 2  # the luma comes with its edges replicated: no Pad operator
    parts = {"display": (net.display_filters() if model.display_planes else {}, (3, s2, h, w), "result", "shown"),
             "detail": (net.detail_filters(), (1, s2, h + 2 * edge, w + 2 * edge), "luma", "detail")}  # fmt: skip
    for part, (filters, shape, source, shown) in parts.items():
        for name in DISPLAY_FILTERS:
            path = display_graph_path(folded, name, part)
            path.unlink(missing_ok=True)
            if name in filters:
                axes = {source: spatial if part == "display" else {2: "ph", 3: "pw"}, shown: spatial}
                _write_graph(Filter(*filters[name], padded=part == "display"), (torch.rand(*shape),), [source], [shown],
                             axes, path, model, opset)  # fmt: skip


def _write_graph(module, args, names, outputs, axes, out: Path, model: ModelDescriptor, opset: int) -> None:
    """``module`` exported to ``out`` (written aside, checked and described, then moved into place)."""
    import torch

    tmp = out.with_name(f".{out.name}.part")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=opset, input_names=names,
                              output_names=outputs, dynamic_axes=axes, do_constant_folding=True)  # fmt: skip
        _describe(tmp, model)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def _describe(path: Path, model: ModelDescriptor) -> None:
    import json

    import onnx

    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    graph.producer_name = "upscaler"
    graph.doc_string = f"upscaler temporal model {model.name}: x{model.scale} step (reproject, network, blend)"
    props = {"name": model.name, "arch": model.arch, "scale": str(model.scale),
             "params": json.dumps(dict(model.params), sort_keys=True),
             "conventions": "jitter in LR pixels, sample at (x+0.5+jx, y+0.5+jy); motion LR pixels, "
                            "previous = current + motion; reset 1 = history is the frame upsampled"}  # fmt: skip
    onnx.helper.set_model_props(graph, props)
    onnx.save(graph, str(path))


@dataclass(frozen=True)
class TemporalParity:
    """Largest difference to PyTorch over a sequence, per graph."""

    full: float
    folded: float
    frames: int


def check_temporal_parity(model: ModelDescriptor, full: Path, folded: Path, frames: list) -> TemporalParity:
    """Run PyTorch, the full graph (ORT) and the folded graph (ORT + OpenCV reprojection) over ``frames``.

    ``frames`` are ``upscaler.sequences.SequenceFrame``; each path carries
    its own history. ``ParityError`` beyond ``TEMPORAL_TOLERANCE``.
    """
    from dataclasses import replace

    import onnxruntime as ort

    from upscaler.models import ModelFile
    from upscaler.runtime.stream import depth_input, start_state
    from upscaler.runtime.temporal_ort_cpu import OrtCpuTemporalEngine
    from upscaler.runtime.temporal_torch import TorchTemporalEngine

    graphs = {kind: ModelFile(p) for kind, p in temporal_cpu_graphs(folded).items()}  # the new ones, not shipped
    candidate = replace(model, onnx=ModelFile(Path(full)), graphs=graphs)
    torch_engine, cpu_engine = TorchTemporalEngine(candidate), OrtCpuTemporalEngine(candidate)
    session = ort.InferenceSession(str(full), providers=["CPUExecutionProvider"])
    worst = {"full": 0.0, "folded": 0.0}
    history = None
    for t, f in enumerate(frames):
        x = np.ascontiguousarray(f.lr.transpose(2, 0, 1)[None], np.float32) / 255
        jitter = np.array([f.jitter], np.float32)
        motion = np.ascontiguousarray(f.motion.transpose(2, 0, 1)[None])
        depth = None if f.depth is None or not model.depth else f.depth[None, None]
        reference = torch_engine.step(x, jitter, motion, reset=t == 0, depth=depth)
        if t == 0:
            history, step_motion = start_state(x, model.scale, model.state_channels)[None], np.zeros_like(motion)
        else:
            step_motion = motion
        feeds = {"frame": x, "jitter": jitter, "motion": step_motion, "history": history,
                 "reset": np.array([[1.0 if t == 0 else 0.0]], np.float32)}  # fmt: skip
        if model.depth:
            feeds["depth"] = depth_input(depth, x)
        history = session.run(None, feeds)[0]
        worst["full"] = max(worst["full"], float(np.abs(history[:, :3] - reference).max()))
        folded_out = cpu_engine.step(x, jitter, motion, reset=t == 0, depth=depth)
        worst["folded"] = max(worst["folded"], float(np.abs(folded_out - reference).max()))
        history = torch_engine._history.numpy()  # each graph is judged on one step from the same state
    report = TemporalParity(worst["full"], worst["folded"], len(frames))
    for kind, bound in TEMPORAL_TOLERANCE.items():
        if getattr(report, kind) > bound:
            raise ParityError(f"the {kind} temporal graph differs from PyTorch by up to {getattr(report, kind):.2e}")
    return report
