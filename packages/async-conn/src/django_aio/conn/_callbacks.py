"""After-commit callbacks that may be sync functions or ``async def`` ones.

The one wrapper that lets Django's sync ``on_commit`` list hold an async
callback: ``AsyncConnection.on_commit`` here and django_aio.atomic's
``on_commit`` both use it (atomic through ``django_aio.conn.layers``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync

from ._greenlet import await_, in_bridge

__all__ = ["Callback", "as_sync_callback"]

Callback = Callable[[], Awaitable[Any] | Any]


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def as_sync_callback(func: Callback) -> Callable[[], Any]:
    """``func`` as a sync callable for Django's ``on_commit`` list.

    Commit hooks run where the commit runs: in the bridge an async callback's
    coroutine is awaited on the task's loop; in plain sync code through
    asgiref's ``async_to_sync``. The wrapper keeps ``func`` as ``__wrapped__``
    and its ``__qualname__`` (what Django names in a robust callback's error).
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
