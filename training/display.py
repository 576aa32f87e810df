"""A temporal model's display filter, fitted in closed form: the least-squares reconstruction of the reference
from the accumulated samples.

An accumulating step's state is a weighted mean of the samples it gathered
(a Gaussian splat, as a plain accumulation's): on a still or slow camera a
blurred, aliased picture of the scene, and it must stay one, because it is
the next frame's history. What is *shown* can be sharper: a linear filter
over each block of the state (the ``s²`` sub-pixels of one low-resolution
pixel in and out, the same weights for every colour; ``AccumSR``'s
``display``), applied to the output only, never fed back. Three filters,
chosen per pixel as the network chooses them (``filter_of``): for frames
without jitter, for pixels that did not move, and for the rest.

The filter is the L2-optimal one for a given network: the shipped model runs
over the standard sequence kinds (``upscaler.bench.rendered``: pans, layers,
cuts, still, slow, fades, moderate speeds) made from *training* images, and
the normal equations of ``reference block = W x state block`` are
summed, per filter, over every frame after the first ``warmup`` and solved. The network's
other weights are kept; the result is written as new weights whose
``display`` starts where the fit ended (a training stage may go on from it).

    python -m training.display --model x4-temporal --refit --data ../shared/data/train/BSDS200 \\
        --out runs/x4-display/model.safetensors

With ``--detail`` the 3x3 fit is shared out: each filter's 1x1 part over every
colour (the same equations restricted to the block's own sub-pixels) and, over
the luma only, the rest (``AccumSR``'s ``detail``): the shown luma is the 3x3
fit's, the chroma the 1x1 fit's, for a third of the 3x3 filters' work. With
``--chroma as-is`` the 1x1 part is identity (the chroma shown as accumulated)
and the luma filter the whole 3x3 fit less it: the same luma, and the CPU
engine's show pass has no 1x1 filter to apply.

No gradient and no torch training loop: on two CPU cores the fit takes minutes
where a training stage takes half an hour.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from upscaler.archs import DISPLAY_FILTERS

__all__ = [
    "FILTERS", "NormalEquations", "as_conv", "blocks", "filter_of", "fit_display", "fold", "main", "split",
    "without_display",
]  # fmt: skip

log = logging.getLogger(__name__)


def fold(image: np.ndarray, scale: int) -> np.ndarray:
    """``3 x s² x h x w``: an ``sH x sW x 3`` picture's ``s x s`` blocks, sub-pixel ``i * s + j`` (row ``i``,
    column ``j``): ``pixel_unshuffle`` per colour."""
    hh, ww = image.shape[:2]
    h, w = hh // scale, ww // scale
    blocks = image[: h * scale, : w * scale].reshape(h, scale, w, scale, 3)
    return np.ascontiguousarray(blocks.transpose(4, 1, 3, 0, 2).reshape(3, scale * scale, h, w))


def blocks(folded: np.ndarray, taps: int = 1) -> np.ndarray:
    """``(3 h w) x taps² s²``: the rows of a least-squares fit, one per colour and low-resolution pixel
    (colour first): the ``s²`` sub-pixels of its ``taps x taps`` neighbourhood of blocks (edges replicated),
    feature ``(dy * taps + dx) * s² + sub-pixel``: the input of a ``taps x taps`` convolution over the folded
    planes of each colour."""
    c, k, h, w = folded.shape
    r = taps // 2
    padded = np.pad(folded, ((0, 0), (0, 0), (r, r), (r, r)), mode="edge")
    near = [padded[:, :, dy : dy + h, dx : dx + w] for dy in range(taps) for dx in range(taps)]
    return np.stack(near, axis=1).reshape(c, taps * taps * k, h * w).transpose(0, 2, 1).reshape(c * h * w, -1)


class NormalEquations:
    """``X^T X`` and ``X^T Y`` of a linear least-squares fit with a bias, summed in float64 batch by batch."""

    def __init__(self, inputs: int, outputs: int) -> None:
        self.xtx = np.zeros((inputs + 1, inputs + 1))
        self.xty = np.zeros((inputs + 1, outputs))
        self.rows = 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        x = np.concatenate([x, np.ones((len(x), 1), x.dtype)], axis=1).astype(np.float64)
        self.xtx += x.T @ x
        self.xty += x.T @ y.astype(np.float64)
        self.rows += len(x)

    def solve(self, ridge: float = 1e-3, inputs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(weights inputs x outputs, bias outputs)``; ``ridge`` (times the mean diagonal) keeps it stable.
        ``inputs`` (indices): the fit from those inputs only (the weights of the others zero)."""
        if self.rows == 0:
            raise ValueError("no rows to fit")
        used = np.arange(len(self.xtx) - 1) if inputs is None else np.asarray(inputs)
        rows = np.append(used, len(self.xtx) - 1)  # and the bias
        xtx = self.xtx[np.ix_(rows, rows)]
        scale = float(np.mean(np.diag(xtx)))
        a = np.linalg.solve(xtx + ridge * scale * np.eye(len(xtx)), self.xty[rows])
        weights = np.zeros((len(self.xtx) - 1, a.shape[1]))
        weights[used] = a[:-1]
        return weights, a[-1]


def as_conv(weights: np.ndarray, bias: np.ndarray, taps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The fit as a ``taps x taps`` convolution's weight (``s² out x s² in x taps x taps``) and bias."""
    k = weights.shape[1]
    kernel = weights.reshape(taps, taps, k, k).transpose(3, 2, 0, 1)
    return np.ascontiguousarray(kernel).astype(np.float32), bias.astype(np.float32)


#: The display filters, in ``AccumSR.display``'s output order, and which rows each is fitted on.
FILTERS = DISPLAY_FILTERS  # the order of AccumSR's filter channels


def filter_of(jitter: tuple[float, float], motion: np.ndarray) -> np.ndarray:
    """``h x w`` index into ``FILTERS`` of each pixel of a frame: ``AccumSR._display``'s gates."""
    if jitter[0] == 0 and jitter[1] == 0:
        return np.full(motion.shape[:2], 2)
    return (np.abs(motion).max(axis=-1) == 0).astype(np.int64)


def fit_display(
    model, folders: list[Path], *, limit: int | None, size: tuple[int, int], frames: int, warmup: int,
    ridge: float, taps: int = 1, keep: tuple[str, ...] = (), detail: bool = False, chroma: str = "fitted",
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:  # fmt: skip
    """Run ``model`` (its state is the samples' mean) over the standard sequences of ``folders`` and fit the
    display filters (``taps x taps`` blocks each; those named in ``keep`` stay identity); returns the
    convolutions' weights and biases by part (``display``: ``3s² x s² x taps x taps``; with ``detail``,
    ``display`` 1x1 and ``detail`` ``taps x taps``, ``split``; ``chroma`` ``as-is``: the 1x1 part identity)
    and what the fit saw."""
    from upscaler.bench.rendered import iter_standard_sequences
    from upscaler.runtime.temporal_ort_cpu import OrtCpuTemporalEngine

    s = model.scale
    engine = OrtCpuTemporalEngine(model)
    equations = [NormalEquations(taps * taps * s * s, s * s) for _ in FILTERS]
    kinds: dict[str, int] = {}
    for folder in folders:
        for sequence in iter_standard_sequences(folder, s, size=size, frames=frames, limit=limit):
            _add_sequence(engine, sequence.frames, equations, s, warmup, taps)
            kinds[sequence.kind] = kinds.get(sequence.kind, 0) + 1
    parts = {"display": [], "detail": []}
    for name, e in zip(FILTERS, equations, strict=True):
        if detail:
            whole, own = (identity(s * s, taps), identity(s * s, 1)) if name in keep else split(e, ridge, s * s, taps)
            own = identity(s * s, 1) if chroma == "as-is" else own
            parts["display"].append(own)
            parts["detail"].append((whole[0] - _centred(own[0], taps), whole[1] - own[1]))
        else:
            parts["display"].append(identity(s * s, taps) if name in keep else as_conv(*e.solve(ridge), taps))
    convs = {part: (np.concatenate([w for w, _ in c]), np.concatenate([b for _, b in c]))
             for part, c in parts.items() if c}  # fmt: skip
    rows = {name: e.rows for name, e in zip(FILTERS, equations, strict=True)}
    fit = {"sequences": kinds, "rows": rows, "ridge": ridge, "warmup": warmup, "taps": taps, "identity": list(keep)}
    return convs, fit | ({"detail": True, "chroma": chroma} if detail else {})


def split(equations: NormalEquations, ridge: float, k: int, taps: int):
    """A ``taps x taps`` filter's fit and its 1x1 part's (from the block's own ``k`` sub-pixels: the same
    equations restricted), each as ``as_conv`` gives it."""
    own = np.arange(k) + (taps * taps // 2) * k  # the centre block's features
    weights, bias = equations.solve(ridge, own)
    return as_conv(*equations.solve(ridge), taps), as_conv(weights[own], bias, 1)


def _centred(weight: np.ndarray, taps: int) -> np.ndarray:
    """A 1x1 convolution's weight as a ``taps x taps`` one's (zeros around the centre)."""
    out = np.zeros((*weight.shape[:2], taps, taps), weight.dtype)
    out[:, :, taps // 2, taps // 2] = weight[:, :, 0, 0]
    return out


def identity(k: int, taps: int) -> tuple[np.ndarray, np.ndarray]:
    """A filter that shows the state as it is (``k`` sub-pixels, ``taps x taps`` blocks)."""
    weight = np.zeros((k, k, taps, taps), np.float32)
    weight[np.arange(k), np.arange(k), taps // 2, taps // 2] = 1.0
    return weight, np.zeros(k, np.float32)


def _add_sequence(engine, frames, equations: list[NormalEquations], scale: int, warmup: int, taps: int) -> None:
    engine.drop_history()
    for t, frame in enumerate(frames):
        x = np.ascontiguousarray(frame.lr.transpose(2, 0, 1)[None], np.float32) / 255
        motion = np.ascontiguousarray(frame.motion.transpose(2, 0, 1)[None])
        depth = frame.depth[None, None] if frame.depth is not None else None
        out = engine.step(x, np.array([frame.jitter], np.float32), motion, reset=t == 0, depth=depth)
        if t < warmup:
            continue
        inputs = blocks(fold(np.ascontiguousarray(out[0].transpose(1, 2, 0)), scale), taps)
        reference = fold(frame.hr.astype(np.float32) / 255, scale).transpose(0, 2, 3, 1).reshape(-1, scale * scale)
        which = np.tile(filter_of(frame.jitter, frame.motion).reshape(-1), 3)  # rows: colour, then pixel
        for k, e in enumerate(equations):
            if (which == k).any():
                e.add(inputs[which == k], reference[which == k])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a temporal model whose state is its output (no display)")
    parser.add_argument("--data", nargs="+", required=True, type=Path, help="folders of training images")
    parser.add_argument("--limit", type=int, help="images per folder (the first, sorted)")
    parser.add_argument("--size", default="96x64", help="sequence LR size (the harness's)")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=8, help="frames of each sequence not fitted on")
    parser.add_argument("--ridge", type=float, default=1e-4)
    parser.add_argument(
        "--taps",
        type=int,
        choices=(1, 3),
        default=1,
        help="the filters' kernel in blocks: 1, the block's own sub-pixels; 3, its 3 x 3 neighbourhood",
    )
    parser.add_argument("--detail", action="store_true",
                        help="with --taps 3: 1x1 filters over every colour and 3x3 ones over the luma added to them "
                        "(AccumSR's detail): the 3x3 filters' luma at a third of their work")  # fmt: skip
    parser.add_argument("--chroma", choices=("fitted", "as-is"), default="fitted",
                        help="with --detail: the 1x1 filters fitted, or identity (the chroma shown as accumulated; "
                        "the luma the same, the CPU's show pass cheaper)")  # fmt: skip
    parser.add_argument("--identity", nargs="+", choices=FILTERS, default=[],
                        help="filters left as identity (the state shown as it is): at x4, unjittered, where the "
                        "fitted filter smooths a video's frames to bicubic's detail for 0.1-0.2 dB")  # fmt: skip
    parser.add_argument("--refit", action="store_true",
                        help="a model with display filters: fit them again from its state")  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, help="the new weights (.safetensors)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.detail and args.taps == 1:
        print("error: --detail splits a 3x3 fit: give --taps 3", file=sys.stderr)
        return 2
    from upscaler.models import ModelError, get_model

    try:
        model = get_model(args.model)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if model.arch != "accum" or (model.params.get("display") and not args.refit):
        hint = " (--refit fits its filters again)" if model.arch == "accum" else ""
        print(f"error: {model.name} is not an accumulating model without a display filter{hint}", file=sys.stderr)
        return 2
    w, h = (int(v) for v in args.size.lower().split("x"))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="display-") as scratch:
        if model.params.get("display"):
            model = without_display(model, Path(scratch))
        convs, seen = fit_display(model, args.data, limit=args.limit, size=(w, h), frames=args.frames,
                                  warmup=args.warmup, ridge=args.ridge, taps=args.taps, keep=tuple(args.identity),
                                  detail=args.detail, chroma=args.chroma)  # fmt: skip
        seen["wall_seconds"] = round(time.perf_counter() - start, 1)
        fit = {**seen, "data": [str(p) for p in args.data], "limit": args.limit}
        write_weights(model, convs, args.out, fit)
    log.info("display filters fitted on %s rows in %.0f s: %s", seen["rows"], seen["wall_seconds"], args.out)
    return 0


def without_display(model, folder: Path):
    """``model`` without its display filters (the state shown as it is): its weights written to ``folder`` with
    their CPU graphs, described. What a new fit starts from (``--refit``)."""
    from safetensors.torch import load_file, save_file

    from export.temporal import export_temporal
    from upscaler.models import get_model
    from upscaler.models.descriptor import read_safetensors_metadata

    source = model.weights.verified()
    state = {k: v for k, v in load_file(str(source)).items() if not k.startswith(("display.", "detail."))}
    metadata = dict(read_safetensors_metadata(source))
    params = {k: v for k, v in json.loads(metadata["params"]).items() if k not in ("display", "detail")}
    training = {k: v for k, v in json.loads(metadata.get("training", "{}")).items() if k != "display_fit"}
    metadata |= {"name": model.name, "params": json.dumps(params), "training": json.dumps(training)}
    path = folder / f"{model.name}.safetensors"
    save_file(state, str(path), metadata=metadata)
    export_temporal(get_model(path), path.with_suffix(".onnx"), path.with_suffix(".folded.onnx"))
    return get_model(path)


def write_weights(model, convs: dict[str, tuple[np.ndarray, np.ndarray]], out: Path, fit: dict) -> None:
    """``model``'s weights plus each part's (``display``, and ``detail`` if fitted) ``weight`` and ``bias``,
    with their kernels in the metadata."""
    import torch
    from safetensors.torch import load_file, save_file

    from upscaler.models.descriptor import read_safetensors_metadata

    state = load_file(str(model.weights.verified()))
    for part, (weight, bias) in convs.items():
        state[f"{part}.weight"], state[f"{part}.bias"] = torch.from_numpy(weight), torch.from_numpy(bias)
    metadata = dict(read_safetensors_metadata(model.weights.verified()))
    kernels = {part: int(weight.shape[-1]) for part, (weight, _) in convs.items()}
    metadata["params"] = json.dumps({**json.loads(metadata["params"]), **kernels})
    training = json.loads(metadata.get("training", "{}"))
    metadata["training"] = json.dumps({**training, "display_fit": fit, "init": model.name})
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata=metadata)


if __name__ == "__main__":
    raise SystemExit(main())
