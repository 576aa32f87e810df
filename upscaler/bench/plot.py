"""The benchmark plot (PNG): latency against output resolution per subject, and speed against quality.

Needs matplotlib (``pip install 'upscaler[bench]'``); imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot", "require_matplotlib"]

_MISSING = "--plot needs matplotlib: pip install 'upscaler[bench]'"


def require_matplotlib() -> None:
    """``RuntimeError`` (one line, saying what to install) unless matplotlib and its non-interactive backend load.

    Called before a benchmark runs, so a missing plotting library never costs the whole sweep.
    """
    try:
        _pyplot()
    except ImportError:
        raise RuntimeError(_MISSING) from None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _series(rows: Sequence[dict]) -> dict[str, list[dict]]:
    series: dict[str, list[dict]] = {}
    smallest = min(r["batch"] for r in rows)
    for row in rows:
        if row["batch"] != smallest:
            continue  # one batch size per line: the smallest (latency view)
        label = row["name"] if row["kind"] == "peer" else f"{row['name']} {row['engine']} {row['precision']}"
        series.setdefault(label, []).append(row)
    return series


def plot(rows: Sequence[dict], path: Path, title: str = "") -> Path:
    """Write the plot; a second panel (frames/s against PSNR) appears when quality was measured."""
    try:
        plt = _pyplot()
    except ImportError:
        raise RuntimeError(_MISSING) from None
    scored = [r for r in rows if r.get("quality")]
    fig, axes = plt.subplots(1, 2 if scored else 1, figsize=(13 if scored else 7, 5), squeeze=False)
    series = _series(rows)
    palette = plt.get_cmap("tab20")
    colors = {label: palette(i % 20) for i, label in enumerate(series)}
    ax = axes[0][0]
    for label, points in series.items():
        points = sorted(points, key=lambda r: r["output_mpix"])
        ax.plot(
            [p["output_mpix"] for p in points],
            [p["network"]["p50_ms"] for p in points],
            marker="o",
            color=colors[label],
            linestyle="--" if points[0]["kind"] == "peer" else "-",
            label=label,
        )
    ax.set_xlabel("output megapixels per frame")
    ax.set_ylabel("network latency p50 (ms, log)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("latency against output resolution (dashed: peers)")
    if scored:
        ax = axes[0][1]
        largest = max(r["output_mpix"] for r in scored)
        for label, points in series.items():
            point = next((p for p in points if p.get("quality") and p["output_mpix"] == largest), None)
            if point is None:
                continue
            marker = "s" if point["kind"] == "peer" else "o"
            ax.scatter(point["network"]["fps"], point["quality"]["psnr"], s=50, marker=marker, color=colors[label],
                       label=label)  # fmt: skip
        dataset = scored[0]["quality"]["dataset"]
        ax.set_xlabel(f"network frames/s at {largest:g} output MP (log)")
        ax.set_xscale("log")
        ax.set_ylabel(f"PSNR Y on {dataset} (dB)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title("speed against quality (squares: peers)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
