"""The explicit transaction API: each function does one thing, in sync and async code.

Same semantics as django-subatomic: ``transaction()`` always opens a
transaction (and refuses to nest), ``savepoint()`` always makes a savepoint
(and needs a transaction), ``transaction_required()`` only checks (and
``durable``, in _durable.py, guarantees its work is committed when it
returns). Test-case transactions do not count as open (Note [Test-case
transactions] in _state.py), and callbacks registered inside ``transaction()``
run when it exits, in tests as in production (Note [After-commit callbacks in
tests] in _after_commit.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from django.db import connections
from django.db import transaction as django_transaction

from django_aio.conn import async_connections, run_sync

from ._after_commit import check_pending, in_test_block, take_callbacks
from ._async_atomic import AsyncAtomic
from ._block import Block, alias_of
from ._callbacks import run_callbacks
from ._errors import TransactionAlreadyOpen, TransactionRequired
from ._settings import after_commit_settings
from ._state import current_wrapper, wrapper_in_transaction

__all__ = [
    "dbs_with_open_transactions",
    "in_transaction",
    "savepoint",
    "transaction",
    "transaction_if_not_already",
    "transaction_required",
]

F = TypeVar("F", bound=Callable[..., Any])


def in_transaction(*, using: str | None = None) -> bool:
    """Whether the caller has a transaction open on ``using``.

    Sync code asks Django's connection; async code (and code run by
    ``run_sync``) asks its task's connection. A test case's own transaction
    does not count.
    """
    return wrapper_in_transaction(current_wrapper(alias_of(using)))


def dbs_with_open_transactions() -> frozenset[str]:
    """The aliases on which the caller has a transaction open (see ``in_transaction``)."""
    return frozenset(alias for alias in connections if in_transaction(using=alias))


class TransactionBlock(Block):
    """``transaction()``; the base of ``part_of_a_transaction()``."""

    label = "transaction()"
    hint = (
        "Transactions do not nest: use savepoint() for a block that may roll back on its "
        "own, or transaction_required() for code that must run in its caller's transaction."
    )

    def _check_not_open(self, wrapper: Any) -> None:
        if wrapper_in_transaction(wrapper):
            raise TransactionAlreadyOpen([self.using], self.label, self.hint)

    def _entered(self, wrapper: Any) -> bool:
        """Checks once the block is open; whether it sits on a test case's block."""
        check_pending(wrapper, self.using, self.label)
        return in_test_block(wrapper)

    def _committed(self, wrapper: Any) -> list[Any]:
        """The callbacks to run now that the block committed inside a test case's block.

        Note [After-commit callbacks in tests] in _after_commit.py.
        """
        if not after_commit_settings().run_in_tests:
            return []  # left to Django, which never runs them in a test
        return take_callbacks(wrapper)

    def _enter(self) -> Any:
        self._check_not_open(current_wrapper(self.using))
        # Django's durable check ignores test-case blocks too; inside one,
        # this makes a savepoint (Note [After-commit callbacks in tests]).
        atomic = django_transaction.atomic(using=self.using, durable=True)
        atomic.__enter__()
        wrapper = connections[self.using]
        try:
            testcase = self._entered(wrapper)
        except BaseException as exc:
            atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return atomic, wrapper, testcase

    def _exit(self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        atomic, wrapper, testcase = state
        atomic.__exit__(exc_type, exc, tb)
        if exc_type is None and testcase:
            run_callbacks(self._committed(wrapper))

    async def _aenter(self) -> Any:
        self._check_not_open(current_wrapper(self.using))
        block = AsyncAtomic(self.using, savepoint=True, durable=True)
        await block.__aenter__()
        wrapper = async_connections[self.using].django_connection
        try:
            testcase = self._entered(wrapper)
        except BaseException as exc:
            await block.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return block, wrapper, testcase

    async def _aexit(
        self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any
    ) -> None:
        block, wrapper, testcase = state
        await block.__aexit__(exc_type, exc, tb)
        if exc_type is None and testcase:
            callbacks = self._committed(wrapper)
            if callbacks:
                await run_sync(run_callbacks, callbacks)


class _TransactionIfNotAlreadyBlock(TransactionBlock):
    label = "transaction_if_not_already()"

    def _enter(self) -> Any:
        if wrapper_in_transaction(current_wrapper(self.using)):
            return None
        return super()._enter()

    def _exit(self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        if state is not None:
            super()._exit(state, exc_type, exc, tb)

    async def _aenter(self) -> Any:
        if wrapper_in_transaction(current_wrapper(self.using)):
            return None
        return await super()._aenter()

    async def _aexit(
        self, state: Any, exc_type: type[BaseException] | None, exc: Any, tb: Any
    ) -> None:
        if state is not None:
            await super()._aexit(state, exc_type, exc, tb)


class _TransactionRequiredBlock(Block):
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
def transaction(func: None = None, *, using: str | None = None) -> Block: ...
def transaction(func: F | None = None, *, using: str | None = None) -> Block | F:
    """Open a transaction; raise ``TransactionAlreadyOpen`` if one is open already.

    ``with transaction():`` / ``@transaction`` in sync code,
    ``async with transaction():`` / ``@transaction`` on an ``async def`` in
    async code. Commits when the block succeeds, rolls back when it raises.
    Like ``atomic(durable=True)``; in tests, after-commit callbacks
    registered inside it run when it exits, as they would in production.
    """
    block = TransactionBlock(using)
    return block if func is None else block(func)


@overload
def transaction_if_not_already(func: F, *, using: str | None = None) -> F: ...
@overload
def transaction_if_not_already(func: None = None, *, using: str | None = None) -> Block: ...
def transaction_if_not_already(func: F | None = None, *, using: str | None = None) -> Block | F:
    """Open a transaction unless one is open already (then do nothing).

    A smell by design: code should know whether it owns the transaction
    (``transaction()``) or runs in its caller's (``transaction_required()``).
    """
    block = _TransactionIfNotAlreadyBlock(using)
    return block if func is None else block(func)


@overload
def transaction_required(func: F, *, using: str | None = None) -> F: ...
@overload
def transaction_required(func: None = None, *, using: str | None = None) -> Block: ...
def transaction_required(func: F | None = None, *, using: str | None = None) -> Block | F:
    """Raise ``TransactionRequired`` unless a transaction is open; never open one.

    For code that must be atomic with its caller's work but must not decide
    where the transaction starts and ends.
    """
    block = _TransactionRequiredBlock(using)
    return block if func is None else block(func)


def savepoint(*, using: str | None = None) -> Block:
    """Open a savepoint: on error only the block's work is rolled back.

    Needs an open transaction (``TransactionRequired`` otherwise). A context
    manager only, ``with`` or ``async with``; as a decorator it raises
    ``NotADecorator``, since the rollback belongs next to the code that
    handles it.
    """
    return _SavepointBlock(using)
