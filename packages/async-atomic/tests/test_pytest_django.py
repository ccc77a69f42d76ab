"""The explicit API under pytest-django, run in a separate pytest process.

The child is a plain pytest-django project, as users have one: its own
settings module, pytest-django's own database setup and ``django_db`` marks
(this process's Django is configured by the workspace conftest instead).
Skipped unless pytest-django is installed; run it with
``uv run --with pytest-django pytest packages/async-atomic``.
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
    assert "6 passed" in result.stdout
