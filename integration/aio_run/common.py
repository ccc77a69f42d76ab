"""What every part of run.py shares: paths, exit statuses, errors, notes."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # integration/
# DJANGO_AIO_IT_CACHE moves the cache (e.g. out of a fresh CI clone).
CACHE = Path(os.environ.get("DJANGO_AIO_IT_CACHE") or HERE / ".cache")
WORK = HERE / ".work"

EXIT_OK, EXIT_FAILED, EXIT_BROKEN = 0, 1, 2


class Broken(Exception):
    """The run could not produce a result (exit status 2)."""


def note(message: str) -> None:
    print(f"[integration] {message}", flush=True)
