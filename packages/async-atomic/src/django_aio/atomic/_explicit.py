"""The explicit transaction API: each function does one thing, in sync and async code.

Same semantics as django-subatomic: ``transaction()`` always opens a
transaction (and refuses to nest), ``savepoint()`` always makes a savepoint
(and needs a transaction), ``transaction_required()`` only checks, ``durable``
guarantees its work is committed when it returns, and ``run_after_commit()``
never runs a callback at once. Test-case transactions do not count as open
(Note [Test-case transactions] in _state.py), and callbacks registered inside
``transaction()`` run when it exits, in tests as in production
(Note [After-commit callbacks in tests]).

Note [After-commit callbacks in tests]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Inside a test case's transaction, ``transaction()`` opens a savepoint rather
than a transaction, and Django keeps its callbacks until the test transaction
commits, which it never does. When such a ``transaction()`` exits without
error we run the callbacks registered inside it ourselves, right there, as the
commit would have. Callbacks registered before the block (outside any
``transaction()``) are left to Django.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ClassVar, ParamSpec, TypeVar, overload

from django.db import DEFAULT_DB_ALIAS, connections
from django.db import transaction as django_transaction

from django_aio.conn import async_connections, run_sync

from ._async_atomic import AsyncAtomic
from ._callbacks import Callback, as_sync_callback, run_callbacks
from ._errors import DanglingTransaction, NotADecorator, TransactionAlreadyOpen, TransactionRequired
from ._state import (
    current_wrapper,
    loop_running,
    require_sync_caller,
    wrapper_in_transaction,
)

__all__ = [
    "dbs_with_open_transactions",
    "durable",
    "in_transaction",
    "run_after_commit",
    "savepoint",
    "transaction",
    "transaction_if_not_already",
    "transaction_required",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def _alias(using: str | None) -> str:
    return DEFAULT_DB_ALIAS if using is None else using


def in_transaction(*, using: str | None = None) -> bool:
    """Whether the caller has a transaction open on ``using``.

    Sync code asks Django's connection; async code (and code run by
    ``run_sync``) asks its task's connection. A test case's own transaction
    does not count.
    """
    return wrapper_in_transaction(current_wrapper(_alias(using)))


def dbs_with_open_transactions() -> frozenset[str]:
    """The aliases on which the caller has a transaction open (see ``in_transaction``)."""
    return frozenset(alias for alias in connections if in_transaction(using=alias))


class _Block:
    """A context manager for ``with`` and ``async with``, and a decorator of both kinds of function.

    Per-entry state is kept per thread or task, so one instance may be shared.
    """

    label: ClassVar[str]
    decorates: ClassVar[bool] = True

    def __init__(self, using: str | None = None) -> None:
        self.using = _alias(using)
        self._open: dict[object, list[Any]] = {}

    def __repr__(self) -> str:
        return f"{self.label[:-2]}(using={self.using!r})"

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
        using = self.using
        factory = type(self)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                async with factory(using):
                    return await func(*args, **kwargs)

            return async_inner  # type: ignore[return-value]

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with factory(using):
                return func(*args, **kwargs)

        return inner  # type: ignore[return-value]


class _TransactionBlock(_Block):
    label = "transaction()"

    def _check_not_open(self, wrapper: Any) -> None:
        if wrapper_in_transaction(wrapper):
            raise TransactionAlreadyOpen(
                [self.using],
                "transaction()",
                "Transactions do not nest: use savepoint() for a block that may roll "
                "back on its own, or transaction_required() for code that must run in "
                "its caller's transaction.",
            )

    def _enter(self) -> Any:
        self._check_not_open(current_wrapper(self.using))
        # Django's durable check ignores test-case blocks too; inside one,
        # this makes a savepoint (Note [After-commit callbacks in tests]).
        atomic = django_transaction.atomic(using=self.using, durable=True)
        atomic.__enter__()
        wrapper = connections[self.using]
        testcase = len(wrapper.atomic_blocks) > 1 and wrapper.atomic_blocks[-2]._from_testcase  # type: ignore[attr-defined]
        return atomic, wrapper, testcase, len(wrapper.run_on_commit)

    def _exit(self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        atomic, wrapper, testcase, start = state
        atomic.__exit__(exc_type, exc, tb)
        if exc_type is None and testcase:
            run_callbacks(_take_callbacks(wrapper, start))

    async def _aenter(self) -> Any:
        self._check_not_open(current_wrapper(self.using))
        block = AsyncAtomic(self.using, savepoint=True, durable=True)
        await block.__aenter__()
        wrapper = async_connections[self.using].django_connection
        testcase = len(wrapper.atomic_blocks) > 1 and wrapper.atomic_blocks[-2]._from_testcase
        return block, wrapper, testcase, len(wrapper.run_on_commit)

    async def _aexit(
        self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any
    ) -> None:
        block, wrapper, testcase, start = state
        await block.__aexit__(exc_type, exc, tb)
        if exc_type is None and testcase:
            await run_sync(run_callbacks, _take_callbacks(wrapper, start))


def _take_callbacks(wrapper: Any, start: int) -> list[tuple[Any, Callable[[], Any], bool]]:
    """Remove and return the callbacks registered since ``start``.

    See Note [After-commit callbacks in tests].
    """
    callbacks: list[tuple[Any, Callable[[], Any], bool]] = wrapper.run_on_commit[start:]
    wrapper.run_on_commit = wrapper.run_on_commit[:start]
    return callbacks


class _TransactionIfNotAlreadyBlock(_Block):
    label = "transaction_if_not_already()"

    def _enter(self) -> Any:
        if wrapper_in_transaction(current_wrapper(self.using)):
            return None
        inner = _TransactionBlock(self.using)
        return inner, inner._enter()

    def _exit(self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        if state is not None:
            inner, inner_state = state
            inner._exit(inner_state, exc_type, exc, tb)

    async def _aenter(self) -> Any:
        if wrapper_in_transaction(current_wrapper(self.using)):
            return None
        inner = _TransactionBlock(self.using)
        return inner, await inner._aenter()

    async def _aexit(
        self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any
    ) -> None:
        if state is not None:
            inner, inner_state = state
            await inner._aexit(inner_state, exc_type, exc, tb)


class _TransactionRequiredBlock(_Block):
    label = "transaction_required()"

    def _check(self) -> None:
        if not wrapper_in_transaction(current_wrapper(self.using)):
            raise TransactionRequired(self.using, self.label)

    def _enter(self) -> Any:
        self._check()

    def _exit(self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        return None

    async def _aenter(self) -> Any:
        self._check()

    async def _aexit(
        self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any
    ) -> None:
        return None


class _SavepointBlock(_TransactionRequiredBlock):
    label = "savepoint()"
    decorates = False

    def _enter(self) -> Any:
        self._check()
        atomic = django_transaction.atomic(using=self.using, savepoint=True)
        atomic.__enter__()
        return atomic

    def _exit(self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        state.__exit__(exc_type, exc, tb)

    async def _aenter(self) -> Any:
        self._check()
        block = AsyncAtomic(self.using, savepoint=True, durable=False)
        await block.__aenter__()
        return block

    async def _aexit(
        self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any
    ) -> None:
        await state.__aexit__(exc_type, exc, tb)


@overload
def transaction(func: F, *, using: str | None = None) -> F: ...
@overload
def transaction(func: None = None, *, using: str | None = None) -> _Block: ...
def transaction(func: F | None = None, *, using: str | None = None) -> _Block | F:
    """Open a transaction; raise ``TransactionAlreadyOpen`` if one is open already.

    ``with transaction():`` / ``@transaction`` in sync code,
    ``async with transaction():`` / ``@transaction`` on an ``async def`` in
    async code. Commits when the block succeeds, rolls back when it raises.
    Like ``atomic(durable=True)``; in tests, after-commit callbacks
    registered inside it run when it exits, as they would in production.
    """
    block = _TransactionBlock(using)
    return block if func is None else block(func)


@overload
def transaction_if_not_already(func: F, *, using: str | None = None) -> F: ...
@overload
def transaction_if_not_already(func: None = None, *, using: str | None = None) -> _Block: ...
def transaction_if_not_already(func: F | None = None, *, using: str | None = None) -> _Block | F:
    """Open a transaction unless one is open already (then do nothing).

    A smell by design: code should know whether it owns the transaction
    (``transaction()``) or runs in its caller's (``transaction_required()``).
    """
    block = _TransactionIfNotAlreadyBlock(using)
    return block if func is None else block(func)


@overload
def transaction_required(func: F, *, using: str | None = None) -> F: ...
@overload
def transaction_required(func: None = None, *, using: str | None = None) -> _Block: ...
def transaction_required(func: F | None = None, *, using: str | None = None) -> _Block | F:
    """Raise ``TransactionRequired`` unless a transaction is open; never open one.

    For code that must be atomic with its caller's work but must not decide
    where the transaction starts and ends.
    """
    block = _TransactionRequiredBlock(using)
    return block if func is None else block(func)


def savepoint(*, using: str | None = None) -> _Block:
    """Open a savepoint: on error only the block's work is rolled back.

    Needs an open transaction (``TransactionRequired`` otherwise). A context
    manager only, ``with`` or ``async with``; as a decorator it raises
    ``NotADecorator``, since the rollback belongs next to the code that
    handles it.
    """
    return _SavepointBlock(using)


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


def run_after_commit(callback: Callback, *, using: str | None = None) -> None:
    """Run ``callback`` (sync or ``async def``) after the open transaction commits.

    Raises ``TransactionRequired`` when no transaction is open, instead of
    running the callback at once as Django's ``on_commit`` does: a callback
    that seems deferred but is not hides a missing transaction. Dropped if the
    transaction (or the savepoint it was registered in) rolls back. Called
    the same way from sync and async code (no ``await``).
    """
    alias = _alias(using)
    wrapper = current_wrapper(alias)
    if wrapper is None or not wrapper_in_transaction(wrapper):
        raise TransactionRequired(alias, "run_after_commit()")
    wrapper.on_commit(as_sync_callback(callback))
