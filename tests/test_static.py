"""The checks a maintainer runs before reading a change: the type checker and the linter.

mypy (strict over station/, as configured in pyproject.toml) and ruff (lint and format) run as
subprocesses from the repository root with the versions pinned in the test extra. Without the
tool installed the check is skipped on a workstation, and fails under CI (which installs it).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL = "pip install -e '.[test]'"


def run_tool(module: str, *args: str) -> None:
    """Run `python -m <module> <args>` from the repository root; any finding fails with the tool's report."""
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed (install the test dependencies: {INSTALL})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=600,
    )
    command = " ".join([module, *args])
    assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_mypy_strict_over_station() -> None:
    run_tool("mypy")


def test_ruff_lint() -> None:
    run_tool("ruff", "check", ".")


def test_ruff_format() -> None:
    run_tool("ruff", "format", "--check", ".")
