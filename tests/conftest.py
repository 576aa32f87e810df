"""Shared fixtures: real images (Set5, lossless WebP) and helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from upscaler.io import read_image

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


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run the installed ``upscaler`` console script; returns the CompletedProcess."""
    exe = Path(sys.executable).with_name("upscaler")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "upscaler"]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*command, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
