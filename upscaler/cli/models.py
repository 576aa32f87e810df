"""``upscaler models``: the built-in models, for people or (``--json``) machines."""

from __future__ import annotations

import argparse
import json

from upscaler.models import WEIGHTS_DIR, default_model, list_models, load_manifest, load_partners

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommand."""
    p = sub.add_parser("models", help="list the built-in models", description="List the built-in models.")
    p.add_argument("--json", action="store_true", help="print JSON (one object per model)")
    p.add_argument("--markdown", action="store_true", help="print the measured-quality table as markdown")
    p.add_argument(
        "--verbose", dest="details", action="store_true", help="also show files and which engines can run each model"
    )
    p.set_defaults(func=_run)


def _quality(record: dict) -> str:
    parts = [f"{name} {q['psnr']:.2f}" for name, q in record.get("quality", {}).items() if "psnr" in q]
    return ", ".join(parts) or "-"


def quality_markdown(records: list[dict]) -> str:
    """Measured quality of every model as a markdown table (PSNR / SSIM on Y, bicubic alongside)."""
    datasets = list(dict.fromkeys(name for r in records for name in r.get("quality", {})))
    head = ["model", "scale", "LR", "params", "kMAC/px", *(f"{d} PSNR / SSIM" for d in datasets)]
    head += [f"bicubic {d}" for d in datasets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        q = r.get("quality", {})
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        cells = [r["name"], f"x{r['scale']}", r["degradation"], params, f"{r['macs_per_pixel'] / 1000:.1f}"]
        cells += [f"{q[d]['psnr']:.2f} / {q[d]['ssim']:.4f}" if d in q else "-" for d in datasets]
        cells += [f"{q[d]['bicubic_psnr']:.2f} / {q[d]['bicubic_ssim']:.4f}" if d in q else "-" for d in datasets]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def temporal_markdown(records: list[dict]) -> str:
    """Measured quality of the temporal models on rendered sequences (``upscaler.bench.rendered``)."""
    datasets = list(dict.fromkeys(name for r in records for name in r.get("quality", {})))
    head = ["model", "scale", "params", "kMAC/px"]
    for d in datasets:
        head += [f"{d} PSNR / SSIM", f"{d} moving layer", f"{d} after cut", f"{d} warping error",
                 f"{d} bicubic", f"{d} accumulation", f"{d} slow (accumulation)",
                 f"{d} still (accumulation)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def num(value, digits=2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for r in records:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        cells = [r["name"], f"x{r['scale']}", params, f"{r['macs_per_pixel'] / 1000:.1f}"]
        for d in datasets:
            q = r.get("quality", {}).get(d, {})
            cells += [f"{num(q.get('psnr'))} / {num(q.get('ssim'), 4)}", num(q.get("layer_psnr")),
                      num(q.get("after_cut_psnr")), num(q.get("warping_error")), num(q.get("bicubic_psnr")),
                      num(q.get("accumulation_psnr")),
                      f"{num(q.get('slow_psnr'))} ({num(q.get('accumulation_slow_psnr'))})",
                      f"{num(q.get('still_psnr'))} ({num(q.get('accumulation_still_psnr'))})"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    models = list_models()
    default = default_model().name
    aliases = load_manifest()[1]
    video = aliases.get("video")
    records = []
    for m in models:
        record = m.to_dict(relative_to=WEIGHTS_DIR)
        record["default"] = m.name == default
        record["temporal"] = m.temporal
        record["clean_partner"] = load_partners().get(m.name)  # run in its place on a clean source
        record["aliases"] = [alias for alias, target in aliases.items() if target == m.name]
        if args.details:
            from upscaler.runtime import probe_engines

            record["engines"] = [c.__dict__ for c in probe_engines(m)]
        records.append(record)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if args.markdown:
        print(quality_markdown([r for r in records if not r["temporal"]]))
        temporal = [r for r in records if r["temporal"]]
        if temporal:
            print("\n" + temporal_markdown(temporal))
        return 0
    rows = [("name", "scale", "arch", "degradation", "PSNR Y (dB)", "description")]
    for r in records:
        params = ",".join(f"{k}={v}" for k, v in r["params"].items())
        name = r["name"] + (" *" if r["default"] else "") + (" v" if r["name"] == video else "")
        rows.append((name, f"x{r['scale']}", f"{r['arch']}({params})", r["degradation"], _quality(r), r["description"]))
    temporal = [r for r in records if r["temporal"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1])
    print("* default (upscale, serve, eval, bench)" + (f"; v default of 'upscaler video': {video}" if video else ""))
    print("aliases: " + ", ".join(f"{alias} -> {target}" for alias, target in aliases.items()))
    for model, partner in load_partners().items():
        print(f"{model} on a clean source (a lossless file or codec, no JPEG grid in the pixels) runs {partner} "
              "(--source compressed: always itself)")  # fmt: skip
    for r in temporal:
        print(f"{r['name']} (TemporalUpscaler) inputs: {r['inputs']}")
    if args.details:
        for r in records:
            print(
                f"\n{r['name']}: receptive field {r['receptive_field']} px, "
                f"{r['macs_per_pixel'] / 1000:.1f} kMAC per input pixel, precisions {', '.join(r['precisions'])}"
            )
            files = {"weights": r["weights"], "onnx": r["onnx"]}
            files.update({f"onnx {precision}": entry for precision, entry in r.get("graphs", {}).items()})
            for kind, entry in files.items():
                if entry:
                    print(f"  {kind}: {WEIGHTS_DIR / entry['path']} (sha256 {entry['sha256'][:12]}...)")
            for e in r["engines"]:
                status = "available" if e["available"] else f"unavailable: {e['reason']}"
                print(f"  engine {e['engine']}: {status}")
    return 0
