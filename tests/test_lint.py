"""ruff (configured in pyproject.toml) is part of the suite, so CI enforces it."""

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(args):
    result = subprocess.run([sys.executable, "-m", "ruff", *args, str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
