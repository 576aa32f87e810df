"""Training logs a person can plot: CSV files, and TensorBoard when it is installed."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

__all__ = ["RunLog"]

log = logging.getLogger(__name__)


class RunLog:
    """Appends rows to ``train.csv``/``val.csv`` in ``out`` and mirrors them to TensorBoard (``out/tb``)."""

    def __init__(self, out: Path, tensorboard: bool = True) -> None:
        self.out = out
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: CSV is always written
                log.info("tensorboard is not installed; logging to CSV only")
            else:
                self._writer = SummaryWriter(str(out / "tb"))

    def _append(self, name: str, header: list[str], row: list) -> None:
        path = self.out / name
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(header)
            writer.writerow(row)

    def train(self, step: int, elapsed: float, lr: float, loss: float, samples_per_s: float) -> None:
        """One training-log row."""
        row = [step, round(elapsed, 1), f"{lr:.3e}", f"{loss:.5f}", f"{samples_per_s:.1f}"]
        self._append("train.csv", ["step", "elapsed_s", "lr", "loss", "samples_per_s"], row)
        if self._writer:
            self._writer.add_scalar("train/loss", loss, step)
            self._writer.add_scalar("train/lr", lr, step)
            self._writer.add_scalar("train/samples_per_s", samples_per_s, step)

    def val(self, step: int, elapsed: float, dataset: str, psnr: float, ssim: float) -> None:
        """One validation row per dataset."""
        row = [step, round(elapsed, 1), dataset, f"{psnr:.4f}", f"{ssim:.5f}"]
        self._append("val.csv", ["step", "elapsed_s", "dataset", "psnr", "ssim"], row)
        if self._writer:
            self._writer.add_scalar(f"val/{dataset}/psnr", psnr, step)
            self._writer.add_scalar(f"val/{dataset}/ssim", ssim, step)
            self._writer.flush()

    def trim(self, step: int) -> None:
        """Drop CSV rows written after ``step`` (a crash between checkpoints), so none repeat."""
        for name in ("train.csv", "val.csv"):
            path = self.out / name
            if not path.exists():
                continue
            header, *rows = path.read_text().splitlines()
            kept = [r for r in rows if r and int(r.split(",", 1)[0]) <= step]
            if len(kept) < len(rows):
                path.write_text("\n".join([header, *kept]) + "\n")

    def close(self) -> None:
        if self._writer:
            self._writer.close()
