"""``upscaler export``: registered through the ``upscaler.commands`` entry point."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export onnx``, ``int8``, ``tensorrt``, ``triton`` and ``release``."""
    p = sub.add_parser(
        "export", help="export models to ONNX; release trained weights as built-in models", description="Export models."
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    _add_onnx(kinds)
    _add_int8(kinds)
    _add_tensorrt(kinds)
    _add_triton(kinds)
    _add_release(kinds)


def _add_onnx(kinds: argparse._SubParsersAction) -> None:
    """``export onnx``."""
    onnx = kinds.add_parser(
        "onnx",
        help="write an ONNX graph (dynamic batch, height, width) and check parity",
        description="Export a model to ONNX and check it against PyTorch on real images; "
        "exits non-zero if the max abs error exceeds the bound.",
    )
    onnx.add_argument("--model", "-m", default="default", help="built-in model or .safetensors path")
    target = onnx.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", "-o", help="the .onnx file to write")
    target.add_argument(
        "--release", action="store_true", help="with --fp16: ship it as the built-in model's FP16 graph (developers)"
    )
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset, 13 to 20 (default: 17)")
    onnx.add_argument("--fp16", action="store_true", help="half-precision weights and activations (for GPUs)")
    onnx.add_argument("--tolerance", type=float, help="max abs error allowed (default: 1e-3 in FP32, 5e-3 in FP16)")
    onnx.add_argument(
        "--parity-images",
        nargs="+",
        metavar="IMAGE",
        help="real images for the parity check (default: the bundled samples)",
    )
    onnx.set_defaults(func=_onnx)


def _add_int8(kinds: argparse._SubParsersAction) -> None:
    """``export int8``."""
    int8 = kinds.add_parser(
        "int8",
        help="quantise a model to INT8 (QDQ), calibrated on real images",
        description="Static INT8 quantisation (per-channel weights, QDQ) with calibration crops made from real "
        "images; reports the speed-up and PSNR cost against FP32 measured side by side on ONNX Runtime's CPU "
        "engine, and refuses the graph if it loses more than --max-cost dB on any --eval folder. "
        "--scheme cpu (default) makes the shipped 'int8' graph: int8 activations with zero points, exact on every "
        "x86-64 CPU; --scheme symmetric makes the 'int8-symmetric' graph TensorRT builds INT8 engines from "
        "(every zero point 0).",
    )
    int8.add_argument("--model", "-m", default="default", help="built-in model or .safetensors path")
    int8.add_argument("--calibration", required=True, metavar="DIR", help="images to calibrate on (HR; degraded here)")
    int8.add_argument("--crops", type=_positive, default=64, help="calibration crops (default: 64)")
    int8.add_argument("--crop-size", type=_positive, default=48, help="LR crop edge in pixels (default: 48)")
    int8.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"])
    int8.add_argument(
        "--scheme",
        default="cpu",
        choices=["cpu", "symmetric"],
        help="cpu: the CPU graph (default); symmetric: zero points 0, for TensorRT",
    )
    int8.add_argument("--eval", nargs="*", default=[], metavar="DIR", help="folders to measure the PSNR cost on")
    int8.add_argument("--max-cost", type=float, default=0.15, help="PSNR loss allowed, dB (default: 0.15)")
    int8.add_argument("--size", default="320x180", help="frame for the speed comparison (default: 320x180)")
    int8.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    place = int8.add_mutually_exclusive_group(required=True)
    place.add_argument("--output", "-o", help="the .onnx file to write")
    place.add_argument("--release", action="store_true", help="ship it as the built-in model's INT8 graph")
    int8.set_defaults(func=_int8)


def _add_tensorrt(kinds: argparse._SubParsersAction) -> None:
    """``export tensorrt``."""
    trt = kinds.add_parser(
        "tensorrt",
        help="build (or reuse from the cache) a TensorRT engine for this GPU",
        description="Build a TensorRT engine from the model's ONNX graph: FP16 (or FP32, or INT8 from the "
        "'int8-symmetric' QDQ graph), one optimisation profile, a timing cache; engines are cached by ONNX hash, "
        "TensorRT version, GPU, compute capability, precision and profile, and rebuilt when any of them changes. "
        "Needs TensorRT.",
    )
    trt.add_argument("--model", "-m", default="default", help="built-in model or .safetensors path")
    trt.add_argument("--precision", default="fp16", choices=["fp16", "fp32", "int8"])
    trt.add_argument(
        "--profile", default=None, help="MIN:OPT:MAX shapes, each BxHxW (default: 1x1x1:1x540x960:4x1080x1920)"
    )
    trt.add_argument("--cache-dir", help="engine and timing cache folder (default: ~/.cache/upscaler/tensorrt)")
    trt.add_argument("--device", type=int, default=0, help="CUDA device (default: 0)")
    trt.add_argument("--output", "-o", help="also copy the engine (.plan) here")
    trt.set_defaults(func=_tensorrt)


def _add_triton(kinds: argparse._SubParsersAction) -> None:
    """``export triton``."""
    tri = kinds.add_parser(
        "triton",
        help="write a Triton Inference Server model repository",
        description="One folder per model with config.pbtxt (dynamic batch, height and width; dynamic batching) "
        "and the ONNX graph, or a TensorRT plan built here with --plan. A plan serves only its profile's batches: "
        "with --plan, max_batch_size is the profile's max batch unless --max-batch-size asks for less (more is an "
        "error; raise the profile's batch instead). Temporal models are written as stateful sequence models "
        "(implicit state: Triton keeps each sequence's history), FP32, max_batch_size 1. --backend python writes "
        "the same models for Triton's Python backend instead (CPU instances; a model.py runs the graph with ONNX "
        "Runtime and keeps temporal histories itself).",
    )
    tri.add_argument("--dir", required=True, help="repository folder to write")
    tri.add_argument("--model", "-m", nargs="+", default=None, help="models (default: every built-in model)")
    tri.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"], help="which ONNX graph to ship")
    tri.add_argument(
        "--max-batch-size",
        type=_positive,
        default=None,
        help="Triton max_batch_size (default: 8; with --plan, the profile's max batch, which it may not exceed)",
    )
    tri.add_argument("--cpu", action="store_true", help="instances on the CPU (KIND_CPU) instead of the GPU")
    tri.add_argument(
        "--tensorrt", choices=["fp16", "fp32"], help="let Triton's ONNX Runtime backend use TensorRT at this precision"
    )
    tri.add_argument("--plan", action="store_true", help="build TensorRT plans here and ship those (needs TensorRT)")
    tri.add_argument("--profile", default=None, help="MIN:OPT:MAX for --plan (default: 1x1x1:1x540x960:4x1080x1920)")
    tri.add_argument(
        "--backend",
        default="onnxruntime",
        choices=["onnxruntime", "python"],
        help="Triton backend: onnxruntime (default) or python (model.py runs ONNX Runtime on CPU instances; temporal "
        "models keep their histories in model.py)",
    )
    tri.add_argument(
        "--threads", type=_positive, default=None, help="with --backend python: ONNX Runtime threads per instance (1)"
    )
    tri.set_defaults(func=_triton)


def _add_release(kinds: argparse._SubParsersAction) -> None:
    """``export release``."""
    rel = kinds.add_parser(
        "release",
        help="install trained weights as a built-in model (developers)",
        description="Copy weights into the package, export ONNX, check parity, evaluate "
        "and record it all in the manifest.",
    )
    rel.add_argument("--weights", required=True, help="model.safetensors written by 'upscaler train'")
    rel.add_argument("--name", required=True, help="built-in model name, e.g. x4-fast")
    rel.add_argument("--description", required=True, help="one line for 'upscaler models'")
    rel.add_argument("--eval", nargs="*", default=[], metavar="DIR", help="folders to measure quality on")
    rel.add_argument("--default", action="store_true", help="make it the default model")
    rel.add_argument(
        "--alias",
        nargs="+",
        default=[],
        metavar="NAME",
        help="aliases that name it from now on (e.g. video: the model 'upscaler video' runs unless told)",
    )
    rel.add_argument(
        "--degradation",
        help="what the model was trained for, recorded in the manifest (e.g. video: compressed sources, when it "
        "was trained on paired folders); quality is measured by the benchmark protocol either way",
    )
    rel.set_defaults(func=_release)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _staging(args: argparse.Namespace, model) -> tuple[Path, Path | None]:
    """Where to build the graph (beside its destination) and the destination (None: release)."""
    from upscaler.models import WEIGHTS_DIR

    if args.release:
        return WEIGHTS_DIR / f".{model.name}.staged.onnx", None
    out = Path(args.output)
    if out.is_dir():
        raise ValueError(f"{out}: is a directory, expected an .onnx file")
    if not out.resolve().parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: no such folder")
    return out.with_name(f".{out.name}.unchecked"), out


def _require_export_extra():
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"export needs the 'export' extra: pip install 'upscaler[export]' ({exc})") from None


def _onnx(args: argparse.Namespace) -> int:
    _require_export_extra()
    from export.onnx_export import FP16_TOLERANCE, FP32_TOLERANCE, check_parity, export_onnx
    from upscaler.io import read_image, sample_images
    from upscaler.models import get_model

    model = get_model(args.model)
    if args.release and not args.fp16:
        raise ValueError("--release ships FP16 graphs; FP32 graphs ship with 'upscaler export release'")
    staged, out = _staging(args, model)
    images = [read_image(p) for p in args.parity_images] if args.parity_images else sample_images()
    tolerance = args.tolerance if args.tolerance is not None else (FP16_TOLERANCE if args.fp16 else FP32_TOLERANCE)
    try:  # the output is replaced only by a graph that passed its check
        export_onnx(model, staged, opset=args.opset)
        if args.fp16:
            from export.fp16 import to_fp16

            to_fp16(staged, staged)
        report = check_parity(model, staged, images, tolerance=tolerance)
        if out is None:
            from export.release import add_graph

            parity = {"images": report.images, "max_abs_error": float(f"{report.max_abs_error:.3g}"),
                      "psnr": round(report.psnr, 1), "bound": report.tolerance}  # fmt: skip
            out = add_graph(model.name, "fp16", staged, {"parity": parity})
        else:
            staged.replace(out)
    finally:
        staged.unlink(missing_ok=True)
    print(
        f"wrote {out}: parity on {report.images} image(s): max abs error {report.max_abs_error:.2e} "
        f"(bound {report.tolerance:.0e}), PSNR {report.psnr:.1f} dB"
    )
    return 0


def _int8(args: argparse.Namespace) -> int:
    _require_export_extra()
    from export.int8 import SCHEMES, calibration_batches, int8_report, quantize_int8
    from upscaler.bench import parse_size
    from upscaler.models import get_model
    from upscaler.runtime.base import require_graph

    model = get_model(args.model)
    size = parse_size(args.size)
    missing = [d for d in [args.calibration, *args.eval] if not Path(d).is_dir()]
    if missing:
        raise FileNotFoundError(f"folder(s) not found: {', '.join(missing)}")
    staged, out = _staging(args, model)
    try:  # the destination changes only for a graph within its PSNR bound
        batches = calibration_batches(Path(args.calibration), model, crops=args.crops, size=args.crop_size)
        quantize_int8(require_graph(model, "fp32"), staged, batches, method=args.method, scheme=args.scheme)
        report = int8_report(model, staged, [Path(d) for d in args.eval], size=size)
        report.update({"calibration": {"folder": Path(args.calibration).name, "crops": args.crops,
                                       "crop_size": args.crop_size, "method": args.method},
                       "scheme": args.scheme})  # fmt: skip
        for dataset, q in report["quality"].items():
            print(f"{dataset}: FP32 {q['psnr_fp32']:.3f} dB, INT8 {q['psnr_int8']:.3f} dB (cost {q['psnr_cost']:.3f})")
        print(
            f"network at {size[0]}x{size[1]}: FP32 {report['network_ms']['fp32']:.2f} ms, "
            f"INT8 {report['network_ms']['int8']:.2f} ms ({report['speedup']:.2f}x)"
        )
        worst = max((q["psnr_cost"] for q in report["quality"].values()), default=0.0)
        if worst > args.max_cost:
            raise ValueError(f"INT8 loses {worst:.3f} dB, more than --max-cost {args.max_cost}; nothing written")
        if args.json:
            from upscaler.io import write_atomic

            write_atomic(args.json, json.dumps(report, indent=2) + "\n")
        if out is None:
            from export.release import add_graph

            out = add_graph(model.name, SCHEMES[args.scheme], staged, report)
        else:
            staged.replace(out)
    finally:
        staged.unlink(missing_ok=True)
    print(f"wrote {out}")
    return 0


def _plan(model, precision: str, profile, cache_dir: Path | None, device: int = 0) -> tuple[dict, Path]:
    """Build (or find in the cache) a TensorRT engine: its cache key and plan path."""
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.profiles import default_cache_dir
    from upscaler.runtime.tensorrt import TensorRTEngine

    cache_dir = cache_dir or default_cache_dir()
    options = EngineOptions(precision=precision, device_id=device, cache_dir=cache_dir)
    if model.temporal:  # one stream per step: the profile's sizes at batch 1
        from upscaler.runtime.profiles import ShapeProfile
        from upscaler.runtime.temporal_tensorrt import TensorRTTemporalEngine

        single = ShapeProfile(*((1, h, w) for _, h, w in (profile.min, profile.opt, profile.max)))
        engine = TensorRTTemporalEngine(model, options, profile=single)
    else:
        engine = TensorRTEngine(model, options, profile=profile)
    return engine.key, engine.plan_path


def _profile(text: str | None):
    from upscaler.runtime.profiles import DEFAULT_PROFILE, parse_profile

    return parse_profile(text) if text else DEFAULT_PROFILE


def _tensorrt(args: argparse.Namespace) -> int:
    from upscaler.io import write_atomic
    from upscaler.models import get_model

    model = get_model(args.model)
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    key, plan = _plan(model, args.precision, _profile(args.profile), cache_dir, args.device)
    print(f"TensorRT engine for {model.name} ({key['precision']}, {key['gpu']}): {plan}")
    if args.output:
        write_atomic(args.output, plan.read_bytes())
        print(f"copied to {args.output}")
    return 0


def _triton(args: argparse.Namespace) -> int:
    from export.triton import max_batch_size_for, write_repository
    from upscaler.models import get_model, list_models

    models = [get_model(m) for m in args.model] if args.model else list_models()
    models = list({m.name: m for m in models}.values())
    if args.backend == "python":
        return _triton_python(args, models)
    if args.threads is not None:
        raise ValueError("--threads sets the Python backend's ONNX Runtime threads: use it with --backend python")
    profile = _profile(args.profile)
    plans = None
    if args.plan:
        if args.cpu:
            raise ValueError("--plan ships TensorRT plans, which run on GPUs only: drop --cpu")
        max_batch_size_for(args.max_batch_size, profile)  # before minutes of building
        plans = {m.name: _plan(m, args.tensorrt or "fp16", profile, None)[1] for m in models}
    configs = write_repository(
        models,
        Path(args.dir),
        precision=args.precision,
        max_batch_size=args.max_batch_size,
        gpu=not args.cpu,
        tensorrt_precision=None if args.plan else args.tensorrt,
        plans=plans,
        profile=profile,
    )
    for config in configs:
        print(f"wrote {config.parent}")
    return 0


def _triton_python(args: argparse.Namespace, models: list) -> int:
    """``export triton --backend python``: ONNX graphs served by a model.py of Triton's Python backend."""
    from export.triton_python import write_python_repository

    refused = [flag for flag, given in [("--plan", args.plan), ("--tensorrt", args.tensorrt),
                                        ("--profile", args.profile)] if given]  # fmt: skip
    if refused:
        raise ValueError(
            f"--backend python runs the ONNX graph with ONNX Runtime on the CPU: drop {', '.join(refused)} "
            "(TensorRT options are for the onnxruntime backend and plans)"
        )
    configs = write_python_repository(
        models, Path(args.dir), precision=args.precision, max_batch_size=args.max_batch_size, threads=args.threads or 1
    )
    for config in configs:
        print(f"wrote {config.parent}")
    return 0


def _release(args: argparse.Namespace) -> int:
    _require_export_extra()
    from export.release import release

    model = release(
        Path(args.weights),
        args.name,
        description=args.description,
        eval_dirs=[Path(d) for d in args.eval],
        make_default=args.default,
        degradation=args.degradation,
        aliases=tuple(args.alias),
    )
    print(f"released {model.name}: {json.dumps(model.quality)}")
    return 0
