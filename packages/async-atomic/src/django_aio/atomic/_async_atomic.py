"""``async_atomic``: Django's ``atomic`` for async code.

Note [One state machine]
~~~~~~~~~~~~~~~~~~~~~~~~
``async_atomic`` does not reimplement transactions. It pins a connection to
the task (``AsyncConnection.pinned()``) and runs Django's own
``transaction.Atomic.__enter__`` / ``__exit__`` on it through ``run_sync``.
Savepoints, ``needs_rollback``, ``on_commit`` lists, durable checks and the
test-case marks are Django's, so ``async_atomic`` and a bridged ``atomic()``
nest freely on the same connection. Nested blocks in one task nest their
pins (each ``pinned()`` is one more hold of the same connection).

Note [Uncancellable exit]
~~~~~~~~~~~~~~~~~~~~~~~~~
The exit (commit or rollback, then the after-commit callbacks) must finish
even if the task is cancelled again meanwhile: anyio-style cancel scopes
cancel on every await, and a rollback interrupted half-way would leave
Django's state and the server disagreeing. So the exit runs shielded on the
connection the block pinned (``AsyncConnection.run_held(..., shield=True)``):
a cancellation that arrives during COMMIT or ROLLBACK waits for it to finish
and is raised afterwards. A cancelled block therefore always rolls back, a
block cancelled during its COMMIT is committed (and the task still sees the
cancellation), and the connection goes back to the pool clean.

The exit names the connection captured on entry, not the current task's: a
block inside an abandoned async generator is left by the loop's finalizer
in a task of its own (Note [Task end] in django_aio.conn).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import Token
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from django.db import DEFAULT_DB_ALIAS
from django.db.transaction import Atomic, TransactionManagementError

from django_aio.conn import AsyncConnection, async_connections, run_sync
from django_aio.conn.layers import lending_var

from ._callbacks import Callback
from ._state import current_wrapper

__all__ = [
    "AsyncAtomic",
    "async_atomic",
    "get_rollback",
    "mark_for_rollback_on_error",
    "on_commit",
    "set_rollback",
]

P = ParamSpec("P")
R = TypeVar("R")


class _Entry:
    __slots__ = ("atomic", "connection", "lending_token", "pinned", "tenure")

    def __init__(
        self,
        connection: AsyncConnection,
        pinned: AbstractAsyncContextManager[Any],
        atomic: Atomic,
        lending_token: Token[Any] | None,
    ) -> None:
        self.connection = connection
        self.tenure = connection.tenure
        self.pinned = pinned
        self.atomic = atomic
        self.lending_token = lending_token


class AsyncAtomic:
    """The object ``async_atomic()`` returns: an async context manager and decorator.

    Reentrant and safe to share between tasks, like Django's ``Atomic``: the
    state of each open block lives on the connection and in a per-task stack.
    """

    def __init__(self, using: str | None, savepoint: bool, durable: bool) -> None:
        self.using = DEFAULT_DB_ALIAS if using is None else using
        self.savepoint = savepoint
        self.durable = durable
        # Weak keys: an open block must not keep its task alive.
        self._open: weakref.WeakKeyDictionary[asyncio.Task[Any], list[_Entry]] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return (
            f"async_atomic(using={self.using!r}, savepoint={self.savepoint}, "
            f"durable={self.durable})"
        )

    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"async_atomic() decorates `async def` functions; {func!r} is not one. "
                f"Use django.db.transaction.atomic() for sync functions."
            )

        @functools.wraps(func)
        async def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            async with self:
                return await func(*args, **kwargs)

        return inner

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = async_connections[self.using]
        pinned = connection.pinned()
        await pinned.__aenter__()
        atomic = Atomic(self.using, self.savepoint, self.durable)
        try:
            await run_sync(atomic.__enter__)
        except BaseException as exc:
            await pinned.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        token = None
        if _borrowed(connection):
            # Tasks created in this block would inherit the owner's lending
            # and wait for the connection this task holds while it waits for
            # them: refuse them instead, as in any block.
            token = lending_var.set(None)
        self._open.setdefault(task, []).append(_Entry(connection, pinned, atomic, token))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry = self._pop_entry(exc_type)
        if entry is None:
            return
        try:
            if entry.lending_token is not None:
                # Fails when left from another task, whose context never had it.
                with contextlib.suppress(ValueError, RuntimeError):
                    lending_var.reset(entry.lending_token)
            if entry.tenure is entry.connection.tenure:
                # Note [Uncancellable exit]
                await entry.connection.run_held(
                    entry.tenure, entry.atomic.__exit__, exc_type, exc, tb, shield=True
                )
            # Else the connection was already given back (closed, as a
            # transaction was open) when its task ended or was destroyed:
            # nothing is left to commit or roll back (Note [Task end] in
            # django_aio.conn).
        finally:
            await entry.pinned.__aexit__(None, None, None)

    def _pop_entry(self, exc_type: type[BaseException] | None) -> _Entry | None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # the garbage collector, in a thread with no loop
            task = None
        stack = self._open.get(task) if task is not None else None
        key = task
        if stack is None:
            # Left from another task: the loop finalizing an abandoned async
            # generator (Note [Uncancellable exit]). A fresh async_atomic()
            # per block has one owner; a shared one is ambiguous.
            owners = list(self._open.items())
            if not owners and exc_type is GeneratorExit:
                # The garbage collector closing the coroutine of a destroyed
                # pending task: django_aio.conn closed its connection already.
                return None
            if len(owners) != 1:
                where = "no task" if task is None else f"task {task.get_name()!r}"
                raise RuntimeError(
                    f"{self!r} was exited in {where}, which did not enter it, and "
                    f"{len(owners)} tasks have it open; use a new async_atomic() for "
                    f"each block."
                )
            key, stack = owners[0]
        entry = stack.pop()
        if not stack and key is not None:
            self._open.pop(key, None)
        return entry


def _borrowed(connection: AsyncConnection) -> bool:
    """Whether ``connection`` runs on a connection lent by its owner task (django_aio.conn)."""
    return connection.borrowed


@overload
def async_atomic(
    using: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def async_atomic(
    using: str | None = None, savepoint: bool = True, durable: bool = False
) -> AsyncAtomic: ...


def async_atomic(
    using: str | Callable[P, Coroutine[Any, Any, R]] | None = None,
    savepoint: bool = True,
    durable: bool = False,
) -> AsyncAtomic | Callable[P, Coroutine[Any, Any, R]]:
    """Django's ``transaction.atomic`` for async code.

    ``async with async_atomic():`` or ``@async_atomic`` / ``@async_atomic(...)``
    on an ``async def``. Commits when the block succeeds and rolls back when it
    raises (cancellation included); nested blocks are savepoints, so an inner
    failure undoes only the inner block. ``savepoint=False`` and
    ``durable=True`` behave as in Django.

    The connection is pinned to the task for the whole block: ORM calls and
    signal receivers in the block run in the transaction, and tasks created
    inside the block (``gather``, ``create_task``) are refused the connection
    with ``ConnectionOwnedByAnotherTask``; give them their own with
    ``async_connections.independent_connection()``.
    """
    if callable(using):
        return AsyncAtomic(DEFAULT_DB_ALIAS, savepoint, durable)(using)
    return AsyncAtomic(using, savepoint, durable)


def _held_wrapper(using: str | None) -> Any:
    alias = DEFAULT_DB_ALIAS if using is None else using
    wrapper = current_wrapper(alias)
    if wrapper is None or not wrapper.in_atomic_block:
        raise TransactionManagementError(
            f"The rollback flag doesn't work outside of an 'atomic' block: no "
            f"async_atomic() block is open on database {alias!r} in this task."
        )
    return wrapper


async def get_rollback(using: str | None = None) -> bool:
    """Whether the innermost open block of this task will roll back (Django's ``get_rollback``)."""
    return bool(_held_wrapper(using).get_rollback())


async def set_rollback(rollback: bool, using: str | None = None) -> None:
    """Mark the innermost open block of this task to roll back (or not) when it exits.

    As Django's ``set_rollback``: only inside an ``async_atomic()`` block.
    """
    _held_wrapper(using).set_rollback(rollback)


@asynccontextmanager
async def mark_for_rollback_on_error(using: str | None = None) -> AsyncIterator[None]:
    """If the block raises inside a transaction, mark the transaction for rollback.

    Django's ``mark_for_rollback_on_error`` for async code: it does not open a
    transaction (one query in autocommit stays one query), but an error inside
    an open ``async_atomic()`` block dooms that block, as the error would if it
    had come from the ORM. Also a decorator of ``async def`` functions.
    """
    try:
        yield
    except Exception as exc:
        alias = DEFAULT_DB_ALIAS if using is None else using
        wrapper = current_wrapper(alias)
        if wrapper is not None and wrapper.in_atomic_block:
            wrapper.needs_rollback = True
            wrapper.rollback_exc = exc
        raise


async def on_commit(func: Callback, using: str | None = None, robust: bool = False) -> None:
    """Run ``func`` (sync or ``async def``) after this task's transaction on ``using`` commits.

    Same as ``await async_connections[using].on_commit(func, robust)``, and as
    Django's ``on_commit``: callbacks run after the outermost block commits,
    in registration order, and are dropped when the transaction, or the
    savepoint they were registered in, rolls back. Outside a transaction
    ``func`` runs at once. With ``robust=True`` an exception from ``func`` is
    logged and the next callback runs.
    """
    if not callable(func):
        # Checked here, not when the commit calls it: by then the data is committed.
        raise TypeError("on_commit()'s callback must be a callable.")
    alias = DEFAULT_DB_ALIAS if using is None else using
    await async_connections[alias].on_commit(func, robust=robust)
