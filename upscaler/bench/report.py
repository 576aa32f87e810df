"""Benchmark results as rows (with ratios to the first subject), a terminal table, markdown and JSON."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["add_ratios", "emit_json", "format_markdown", "format_table", "machine_line"]


def add_ratios(rows: Sequence[dict]) -> list[dict]:
    """Each row's frames/s as a ratio to the first row of the same input size, output size and batch (the first
    subject of that scale: an x2 row is never compared with an x4 one)."""
    first: dict[tuple, dict] = {}
    out = []
    for row in rows:
        key = (row["input"], row.get("output"), row["batch"])
        base = first.setdefault(key, row)
        row = dict(row)
        for view in ("network", "end_to_end"):
            mine, theirs = row[view]["fps"], base[view]["fps"]
            row[view] = {**row[view], "ratio": round(mine / theirs, 3) if mine and theirs else None}
        out.append(row)
    return out


def _label(row: dict) -> str:
    return row["name"] if row["kind"] == "peer" else f"{row['name']} {row['precision']}"


def _quality(row: dict) -> str:
    q = row.get("quality")
    return f"{q['psnr']:.2f}" if q else "-"


_HEAD = (
    "subject",
    "engine",
    "input",
    "output",
    "batch",
    "net p50",
    "net p99",
    "e2e p50",
    "e2e p99",
    "fps",
    "x first",
    "PSNR",
)


def _cells(row: dict) -> tuple[str, ...]:
    net, e2e = row["network"], row["end_to_end"]
    ratio = e2e.get("ratio")
    return (
        _label(row),
        row["engine"],
        row["input"],
        row.get("output", "-"),
        str(row["batch"]),
        f"{net['p50_ms']:.2f}",
        f"{net['p99_ms']:.2f}",
        f"{e2e['p50_ms']:.2f}",
        f"{e2e['p99_ms']:.2f}",
        f"{e2e['fps']:.1f}",
        f"{ratio:.2f}" if ratio else "-",
        _quality(row),
    )


def format_table(rows: Sequence[dict]) -> str:
    """A fixed-width table: latencies in ms (network-only, end-to-end), end-to-end frames/s and its ratio."""
    table = [_HEAD, *(_cells(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(_HEAD))]
    lines = ["  ".join(v.rjust(w) if i > 4 else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine_line(machine: dict) -> str:
    """One line naming the machine: CPU model and family, cores, SIMD flags (they decide INT8 speed), GPUs."""
    flags = ", ".join(machine.get("cpu_flags") or []) or "none detected"
    cpu = machine.get("cpu", "unknown CPU") + (f" ({machine['cpu_id']})" if machine.get("cpu_id") else "")
    line = f"{cpu}, {machine.get('cores', '?')} cores; CPU flags: {flags}"
    gpus = [g["name"] for g in machine.get("gpus") or []]
    return line + (f"; GPU: {', '.join(gpus)}" if gpus else "")


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_markdown(rows: Sequence[dict], stages: bool = True, machine: dict | None = None, note: str = "") -> str:
    """The same table as markdown, with host memory per case and, when ``stages``, the end-to-end stage medians.

    ``machine`` (``sysinfo.machine_info()``) names the CPU and its flags in
    a header line; ``note`` (what the memory figures mean) follows it.
    """
    head = [*_HEAD, "host peak MB", "case MB"]
    if stages:
        head.append("stages p50 ms (decode / prepare / infer / finish / encode)")
    lines = [f"Measured on {machine_line(machine)}", ""] if machine else []
    if note:
        lines += [note, ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [*_cells(row), _mb(row.get("host_peak_mb")), _mb(row.get("host_case_mb"))]
        if stages:
            st = row.get("stages_p50_ms", {})
            order = ("decode", "prepare", "infer", "finish", "encode")
            cells.append(" / ".join(f"{st[k]:.2f}" if k in st else "-" for k in order))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def emit_json(report: dict, path=None) -> None:
    """Print ``report`` as indented JSON and, given ``path``, also write it there (atomically)."""
    import json

    from upscaler.io import write_atomic

    text = json.dumps(report, indent=2)
    print(text)
    if path:
        write_atomic(path, text + "\n")
