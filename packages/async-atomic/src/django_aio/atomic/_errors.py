"""Public exceptions of django_aio.atomic.

Each is a ``TransactionManagementError`` (Django's own error for misused
transactions, itself a DB-API ``ProgrammingError``), so code that already
catches Django's error keeps working. They signal programming errors: fix the
call site rather than catch them.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.transaction import TransactionManagementError

__all__ = [
    "DanglingTransaction",
    "NotADecorator",
    "TransactionAlreadyOpen",
    "TransactionError",
    "TransactionRequired",
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
