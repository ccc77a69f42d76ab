"""The shape every block of the explicit API shares.

A ``Block`` is a context manager for ``with`` (sync code, and code run by
``run_sync``) and ``async with`` (async code), and a decorator of ``def`` and
``async def`` functions; subclasses say what entering and leaving does.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from django.db import DEFAULT_DB_ALIAS

from ._errors import NotADecorator
from ._state import loop_running, require_sync_caller

__all__ = ["Block", "alias_of"]

F = TypeVar("F", bound=Callable[..., Any])


def alias_of(using: str | None) -> str:
    return DEFAULT_DB_ALIAS if using is None else using


class Block:
    """A context manager for ``with`` and ``async with``, and a decorator of both kinds of function.

    Per-entry state is kept per thread or task, so one instance may be shared.
    """

    label: ClassVar[str]
    decorates: ClassVar[bool] = True

    def __init__(self, using: str | None = None) -> None:
        self.using = alias_of(using)
        self._open: dict[object, list[Any]] = {}

    def __repr__(self) -> str:
        return f"{self.label[:-2]}(using={self.using!r})"

    def _fresh(self) -> Block:
        """A new block with the same arguments, for each call of a decorated function."""
        return type(self)(self.using)

    # -- what subclasses implement -----------------------------------------

    def _enter(self) -> Any:
        raise NotImplementedError

    def _exit(self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        raise NotImplementedError

    async def _aenter(self) -> Any:
        raise NotImplementedError

    async def _aexit(
        self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any
    ) -> None:
        raise NotImplementedError

    # -- plumbing ----------------------------------------------------------

    def _key(self) -> object:
        return asyncio.current_task() if loop_running() else threading.get_ident()

    def _push(self, state: Any) -> None:
        self._open.setdefault(self._key(), []).append(state)

    def _pop(self) -> Any:
        key = self._key()
        stack = self._open[key]
        state = stack.pop()
        if not stack:
            del self._open[key]
        return state

    def __enter__(self) -> None:
        require_sync_caller(self.label)
        self._push(self._enter())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(self._pop(), exc_type, exc, tb)

    async def __aenter__(self) -> None:
        self._push(await self._aenter())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._aexit(self._pop(), exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        if not self.decorates:
            raise NotADecorator(
                self.label[:-2],
                "Open it inside the function, where the code that handles its "
                "rollback lives: `with savepoint(): ...` (`async with` in async code).",
            )
        fresh = self._fresh
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                async with fresh():
                    return await func(*args, **kwargs)

            return async_inner  # type: ignore[return-value]

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)

        return inner  # type: ignore[return-value]
