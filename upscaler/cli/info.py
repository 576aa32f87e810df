"""``upscaler info``: this machine, the inference libraries found, and which engines can run each model."""

from __future__ import annotations

import argparse
import json

from upscaler.models import get_model, list_models
from upscaler.sysinfo import SIMD_FLAGS, machine_info

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``info`` subcommand."""
    p = sub.add_parser(
        "info",
        help="show which engines this machine can run, and why not",
        description="The machine, the inference libraries found and, for each model, every engine of the auto "
        "chain: available (and in which precision) or the reason it is not.",
    )
    p.add_argument("--model", "-m", nargs="+", help="models to check (default: all built-in models)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "fp16", "int8"],
        help="check this precision (default: auto, each engine's own choice, with the reason)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from upscaler.runtime import probe_engines

    models = [get_model(m) for m in args.model] if args.model else list_models()
    machine = machine_info()
    report = {
        "machine": machine,
        "libraries": machine.pop("libraries"),
        "models": {m.name: [c.__dict__ for c in probe_engines(m, args.precision)] for m in models},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    machine, libs = report["machine"], report["libraries"]
    flags = ", ".join(machine["cpu_flags"]) or "none of " + ", ".join(SIMD_FLAGS)
    cpu = machine["cpu"] + (f", {machine['cpu_id']}" if machine.get("cpu_id") else "")
    print(f"machine: {cpu} ({flags}), {machine['cores']} cores, Python {machine['python']}")
    print(f"NVIDIA driver: {machine['nvidia_driver'] or 'none'}")
    for name in ("onnxruntime", "torch", "tensorrt"):
        print(f"{name}: {libs[name] or 'not installed'}")
    print(f"onnxruntime providers: {', '.join(libs['onnxruntime_providers']) or '-'}")
    for name, choices in report["models"].items():
        print(f"\n{name} (auto tries these in order):")
        for c in choices:
            status = (
                f"available ({c['precision']}: {c['precision_reason']})"
                if c["available"]
                else f"skipped: {c['reason']}"
            )
            print(f"  {c['engine']:<21} {status}")
    return 0
