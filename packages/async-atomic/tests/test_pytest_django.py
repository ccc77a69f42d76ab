"""The explicit API under pytest-django, run in a separate pytest process.

pytest-django configures Django and its test databases itself, so it cannot
share this process (whose Django the workspace conftest configures). Skipped
unless pytest-django is installed; run it with
``uv run --with pytest-django pytest -p no:django packages/async-atomic``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).parent / "pytest_django_project"


@pytest.mark.skipif(
    importlib.util.find_spec("pytest_django") is None, reason="pytest-django is not installed"
)
def test_callbacks_run_inside_pytest_django_test_transactions() -> None:
    env = {
        **os.environ,
        "ATOMIC_PD_SUFFIX": str(os.getpid()),
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(PROJECT.parent)]),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PROJECT / "pd_pytest.ini"),
            f"--rootdir={PROJECT}",
            f"--confcutdir={PROJECT}",
            "-q",
            str(PROJECT),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
