"""After-commit callbacks that may be sync functions or ``async def`` ones."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync

from django_aio.conn import await_, in_bridge

__all__ = ["Callback", "as_sync_callback", "run_callbacks"]

#: What Django's on_commit logs robust callbacks' errors to.
logger = logging.getLogger("django.db.backends")

Callback = Callable[[], Awaitable[Any] | Any]


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def as_sync_callback(func: Callback) -> Callable[[], Any]:
    """``func`` as a sync callable for Django's ``on_commit`` list.

    Commit hooks run where the commit runs: in the bridge an async callback's
    coroutine is awaited on the task's loop; in plain sync code through
    asgiref's ``async_to_sync``.
    """
    if not callable(func):
        raise TypeError(f"after-commit callbacks must be callable, got {func!r}.")

    def run() -> Any:
        result = func()
        if inspect.isawaitable(result):
            if in_bridge():
                return await_(result)
            return async_to_sync(_await)(result)
        return result

    run.__qualname__ = getattr(func, "__qualname__", repr(func))
    run.__wrapped__ = func  # type: ignore[attr-defined]
    return run


def run_callbacks(callbacks: Iterable[tuple[Any, Callable[[], Any], bool]]) -> None:
    """Run Django ``run_on_commit`` entries in order, as ``run_and_clear_commit_hooks`` does.

    A robust callback's exception is logged and the next one runs; any other
    exception propagates and the remaining callbacks are dropped.
    """
    for _sids, func, robust in callbacks:
        if not robust:
            func()
            continue
        try:
            func()
        except Exception as exc:
            logger.error(
                "Error calling %s in on_commit() (%s).",
                getattr(func, "__qualname__", repr(func)),
                exc,
                exc_info=True,
            )
