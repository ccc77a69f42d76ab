"""``durable``: a function whose work is committed when it returns."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from django.db import connections

from django_aio.conn import run_sync

from ._errors import DanglingTransaction, TransactionAlreadyOpen
from ._explicit import dbs_with_open_transactions

__all__ = ["durable"]

P = ParamSpec("P")
R = TypeVar("R")


@overload
def durable(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...
@overload
def durable(func: Callable[P, R]) -> Callable[P, R]: ...
def durable(func: Callable[P, Any]) -> Callable[P, Any]:
    """Guarantee that the decorated function's work is committed when it returns.

    Raises ``TransactionAlreadyOpen`` if the function is called inside a
    transaction (its work could still be rolled back by the caller), and
    ``DanglingTransaction`` if it returns (or raises) with a transaction left
    open, after rolling that transaction back. Decorates ``def`` and
    ``async def`` functions. Opens no transaction itself.
    """
    name = getattr(func, "__qualname__", repr(func))

    def check_before() -> None:
        if open_dbs := dbs_with_open_transactions():
            raise TransactionAlreadyOpen(
                open_dbs,
                f"durable function {name}",
                "Its work would be rolled back if the open transaction is; call it "
                "after the transaction, e.g. from run_after_commit().",
            )

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_inner(*args: P.args, **kwargs: P.kwargs) -> Any:
            check_before()
            try:
                return await func(*args, **kwargs)
            finally:
                if open_dbs := dbs_with_open_transactions():
                    for alias in sorted(open_dbs):
                        await run_sync(_roll_back_and_close, alias)
                    raise DanglingTransaction(open_dbs, name)

        return async_inner

    @functools.wraps(func)
    def inner(*args: P.args, **kwargs: P.kwargs) -> Any:
        check_before()
        try:
            return func(*args, **kwargs)
        finally:
            if open_dbs := dbs_with_open_transactions():
                for alias in sorted(open_dbs):
                    _roll_back_and_close(alias)
                raise DanglingTransaction(open_dbs, name)

    return inner


def _roll_back_and_close(alias: str) -> None:
    wrapper = connections[alias]
    if wrapper.in_atomic_block:
        # An atomic block entered and never exited: Django's rollback()
        # refuses to run inside one, so forget the blocks first.
        wrapper.atomic_blocks = []
        wrapper.savepoint_ids = []
        wrapper.in_atomic_block = False
        wrapper.needs_rollback = False
        wrapper.commit_on_exit = True
    wrapper.rollback()
    wrapper.set_autocommit(True)
