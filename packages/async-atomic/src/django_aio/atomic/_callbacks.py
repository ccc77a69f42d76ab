"""Running on_commit callbacks as Django does; the wrapper for async ones lives in conn."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django_aio.conn.layers import Callback, as_sync_callback

__all__ = ["Callback", "as_sync_callback", "run_callback", "run_callbacks"]

#: Django's own: run_and_clear_commit_hooks logs robust callbacks' errors here.
logger = logging.getLogger("django.db.backends.base")


def run_callback(func: Callable[[], Any], robust: bool) -> None:
    """Run one on_commit callback as Django's ``run_and_clear_commit_hooks`` does.

    A robust callback's exception is logged; any other exception propagates.
    """
    if not robust:
        func()
        return
    try:
        func()
    except Exception as exc:
        logger.error(
            "Error calling %s in on_commit() (%s).",
            getattr(func, "__qualname__", repr(func)),
            exc,
            exc_info=True,
        )


def run_callbacks(callbacks: Iterable[tuple[Any, Callable[[], Any], bool]]) -> None:
    """Run Django ``run_on_commit`` entries in order, as ``run_and_clear_commit_hooks`` does.

    A robust callback's exception is logged and the next one runs; any other
    exception propagates and the remaining callbacks are dropped.
    """
    for _sids, func, robust in callbacks:
        run_callback(func, robust)
