"""Shared fixtures: real images (Set5, lossless WebP) and helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from upscaler.io import read_image

# The CPU precision left to the engine is INT8 only where this machine runs it faster (a measurement):
# pin FP32 so no test depends on how fast the machine is. Tests of the choice itself unpin it.
os.environ.setdefault("UPSCALER_CPU_PRECISION", "fp32")

FIXTURES = Path(__file__).parent / "fixtures"
SET5 = FIXTURES / "set5"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def set5_dir() -> Path:
    """The five Set5 HR images (bit-identical to the benchmark's PNGs)."""
    return SET5


@pytest.fixture(scope="session")
def set5() -> dict[str, np.ndarray]:
    """Set5 as RGB uint8 arrays by name."""
    return {p.stem: read_image(p) for p in sorted(SET5.glob("*.webp"))}


@pytest.fixture(scope="session")
def photo(set5) -> np.ndarray:
    """A real photo (Set5 'butterfly', 256x256 RGB)."""
    return set5["butterfly"]


def cli_command() -> list[str]:
    """How to run the installed ``upscaler`` console script (or the module, from a source tree)."""
    exe = Path(sys.executable).with_name("upscaler")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "upscaler"]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run the installed ``upscaler`` console script; returns the CompletedProcess."""
    command = cli_command()
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*command, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


TRAIN_CONFIG = """
name = "tiny"
[model]
arch = "plainsr"
scale = {scale}
params = {params}
init = "{init}"
[data]
root = "{root}"
train = ["{train}"]
val = ["{val}"]
degradation = "{degradation}"
patch = 16
batch = 4
[optim]
lr = 1e-3
warmup_steps = 2
steps = {steps}
[run]
out = "{out}"
log_every = 5
val_every = 10
ckpt_every = {ckpt}
threads = 1
"""


def write_config(tmp_path: Path, name: str = "run", **kw) -> Path:
    """A tiny training config (8 channels, Set5 fixtures) at ``tmp_path/<name>.toml``; ``kw`` fills the template."""
    values = {
        "scale": 2,
        "params": "{ channels = 8, blocks = 1 }",
        "init": "",
        "root": FIXTURES.as_posix(),
        "train": "set5",
        "val": "set5",
        "degradation": "bicubic",
        "steps": 20,
        "ckpt": 5,
        "out": (tmp_path / name).as_posix(),
    }
    values.update(kw)
    path = tmp_path / f"{name}.toml"
    path.write_text(TRAIN_CONFIG.format(**values))
    return path
