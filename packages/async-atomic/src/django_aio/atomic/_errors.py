"""Public exceptions of django_aio.atomic.

Each is a ``TransactionManagementError`` (Django's own error for misused
transactions, itself a DB-API ``ProgrammingError``), so code that already
catches Django's error keeps working. They signal programming errors: fix the
call site rather than catch them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.db.transaction import TransactionManagementError

__all__ = [
    "AmbiguousAfterCommit",
    "DanglingTransaction",
    "NotADecorator",
    "NotInATestCase",
    "TransactionAlreadyOpen",
    "TransactionError",
    "TransactionRequired",
    "UnhandledAfterCommitCallbacks",
]


def _names(aliases: Iterable[str]) -> str:
    return ", ".join(repr(alias) for alias in sorted(aliases))


class TransactionError(TransactionManagementError):
    """Base class of the errors raised by django_aio.atomic's explicit API."""


class TransactionRequired(TransactionError):
    """Code that must run inside a transaction was called outside one.

    Raised by ``transaction_required()``, ``savepoint()`` and
    ``run_after_commit()``. A test case's own transaction does not count.
    """

    def __init__(self, alias: str, what: str) -> None:
        self.alias = alias
        super().__init__(
            f"{what} needs an open transaction on database {alias!r}, and there is none. "
            f"Open one in the caller with `transaction()` (`async with transaction():` in "
            f"async code). In tests, the test case's own transaction does not count: "
            f"wrap the call in `transaction()` as production code would. A task created "
            f"inside a transaction block does not share that transaction."
        )


class TransactionAlreadyOpen(TransactionError, RuntimeError):
    """A transaction was open where none may be.

    Raised by ``transaction()`` inside another transaction and by a ``durable``
    function called inside one. Also a ``RuntimeError``, as Django's
    ``atomic(durable=True)`` raises.
    """

    def __init__(self, aliases: Iterable[str], what: str, hint: str) -> None:
        self.aliases = frozenset(aliases)
        super().__init__(
            f"{what} cannot run inside a transaction, but one is open on database(s) "
            f"{_names(self.aliases)}. {hint}"
        )


class DanglingTransaction(TransactionError):
    """A ``durable`` function returned with a transaction still open.

    The transaction has been rolled back and closed before this is raised.
    """

    def __init__(self, aliases: Iterable[str], function: str) -> None:
        self.aliases = frozenset(aliases)
        super().__init__(
            f"durable function {function} returned with a transaction still open on "
            f"database(s) {_names(self.aliases)}; it was rolled back. Close every "
            f"transaction the function opens, e.g. with `transaction()` instead of "
            f"set_autocommit(False)."
        )


class NotADecorator(TransactionError, TypeError):
    """A context manager that deliberately is not a decorator was used as one."""

    def __init__(self, name: str, hint: str) -> None:
        super().__init__(f"{name}() is a context manager, not a decorator. {hint}")


def _callback_name(func: Callable[..., Any]) -> str:
    """The name of the function a user registered, through our wrappers."""
    while (wrapped := getattr(func, "__wrapped__", None)) is not None:
        func = wrapped
    if isinstance(func, functools.partial):
        return f"partial({_callback_name(func.func)}, ...)"
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) else repr(func)


class UnhandledAfterCommitCallbacks(TransactionError):
    """In a test, a transaction was about to start with callbacks pending that nothing will run.

    Raised by ``transaction()``, ``transaction_if_not_already()`` (when it
    opens one) and ``part_of_a_transaction()``. Turned off by the setting
    ``DJANGO_AIO_CATCH_UNHANDLED_AFTER_COMMIT_CALLBACKS_IN_TESTS = False``
    (or django-subatomic's name for it); they then run the pending callbacks
    when they exit.
    """

    def __init__(self, alias: str, what: str, callbacks: Iterable[Callable[..., Any]]) -> None:
        self.alias = alias
        self.callbacks = tuple(callbacks)
        names = ", ".join(_callback_name(func) for func in self.callbacks)
        super().__init__(
            f"{what} found after-commit callbacks pending on database {alias!r} that no "
            f"commit will run in this test: {names}. They were registered outside any "
            f"transaction() (with on_commit() inside a plain atomic() block, which the "
            f"test's own transaction turns into a savepoint, or directly in the test), "
            f"so in production they would have run before this point. Register them "
            f"inside transaction() (or, in a test that calls such code directly, "
            f"part_of_a_transaction()), or set "
            f"DJANGO_AIO_CATCH_UNHANDLED_AFTER_COMMIT_CALLBACKS_IN_TESTS = False to run "
            f"them when {what} exits."
        )


class AmbiguousAfterCommit(TransactionError):
    """In a test, ``run_after_commit()`` ran inside a plain ``atomic()`` no commit will end.

    Turned off by the setting
    ``DJANGO_AIO_AFTER_COMMIT_AMBIGUITY_ERROR_IN_TESTS = False`` (or
    django-subatomic's name for it); the callback is then registered and never
    runs, as Django's ``on_commit`` would leave it.
    """

    def __init__(self, alias: str, callback: Callable[..., Any]) -> None:
        self.alias = alias
        self.callback = callback
        super().__init__(
            f"run_after_commit({_callback_name(callback)}) was called inside a plain "
            f"atomic() block on database {alias!r} that the test's own transaction turns "
            f"into a savepoint: no commit will run the callback in this test, though in "
            f"production it would run when that block commits. Open the block with "
            f"transaction() so the callback runs when it exits, or, in a test that calls "
            f"code needing a transaction directly, wrap the call in "
            f"part_of_a_transaction(). Setting "
            f"DJANGO_AIO_AFTER_COMMIT_AMBIGUITY_ERROR_IN_TESTS = False registers it anyway "
            f"(it will not run)."
        )


class NotInATestCase(TransactionError):
    """``part_of_a_transaction()`` was used outside a test case's own transaction."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        super().__init__(
            f"part_of_a_transaction() is a test helper: it stands in for a transaction "
            f"only inside a test case's own transaction (Django's TestCase, "
            f"pytest-django's django_db, django_aio.testing's AsyncioTestCase or aio_db), "
            f"and there is none on database {alias!r}. Outside tests, and in tests whose "
            f"work commits (TransactionTestCase, AsyncioTransactionTestCase, "
            f"transaction=True), open a real one with transaction()."
        )
