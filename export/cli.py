"""``upscaler export``: registered through the ``upscaler.commands`` entry point."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export onnx`` and ``export release``."""
    p = sub.add_parser(
        "export", help="export models to ONNX; release trained weights as built-in models", description="Export models."
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    onnx = kinds.add_parser(
        "onnx",
        help="write an ONNX graph (dynamic batch, height, width) and check parity",
        description="Export a model to ONNX and check it against PyTorch on real images; "
        "exits non-zero if the max abs error exceeds the bound.",
    )
    onnx.add_argument("--model", "-m", default="default", help="built-in model or .safetensors path")
    onnx.add_argument("--output", "-o", required=True, help="the .onnx file to write")
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
    rel.set_defaults(func=_release)


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
    out = Path(args.output)
    if out.is_dir():
        raise ValueError(f"{out}: is a directory, expected an .onnx file")
    images = [read_image(p) for p in args.parity_images] if args.parity_images else sample_images()
    staged = out.with_name(f".{out.name}.unchecked")
    tolerance = args.tolerance if args.tolerance is not None else (FP16_TOLERANCE if args.fp16 else FP32_TOLERANCE)
    try:  # the output is replaced only by a graph that passed its check
        export_onnx(model, staged, opset=args.opset)
        if args.fp16:
            from export.fp16 import to_fp16

            to_fp16(staged, staged)
        report = check_parity(model, staged, images, tolerance=tolerance)
        staged.replace(out)
    finally:
        staged.unlink(missing_ok=True)
    print(
        f"wrote {out}: parity on {report.images} image(s): max abs error {report.max_abs_error:.2e} "
        f"(bound {report.tolerance:.0e}), PSNR {report.psnr:.1f} dB"
    )
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
    )
    print(f"released {model.name}: {json.dumps(model.quality)}")
    return 0
