"""The code stays ruff-clean, ruff-formatted and mypy --strict clean (the checks run in CI this way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "cmd",
    [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        ("mypy",),  # files and strictness come from pyproject.toml
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_tool_is_clean(cmd: tuple[str, ...]) -> None:
    tool = BIN / cmd[0]
    if not tool.exists():
        pytest.skip(f"{cmd[0]} is not installed in this environment (pip install -e '.[dev]')")
    result = run(str(tool), *cmd[1:])
    assert result.returncode == 0, result.stdout + result.stderr
