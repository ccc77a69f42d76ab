"""``part_of_a_transaction()``: a test's stand-in for the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from ._after_commit import take_callbacks
from ._errors import NotInATestCase
from ._explicit import TransactionBlock

__all__ = ["part_of_a_transaction"]

F = TypeVar("F", bound=Callable[..., Any])


class _PartOfATransactionBlock(TransactionBlock):
    label = "part_of_a_transaction()"
    hint = (
        "It stands in for the transaction of the code under test; inside a "
        "transaction, call that code directly."
    )

    def __init__(self, using: str | None = None, run_callbacks: bool = True) -> None:
        super().__init__(using)
        self.run_callbacks = run_callbacks

    def __repr__(self) -> str:
        return f"part_of_a_transaction(using={self.using!r}, run_callbacks={self.run_callbacks!r})"

    def _fresh(self) -> _PartOfATransactionBlock:
        return type(self)(self.using, self.run_callbacks)

    def _entered(self, wrapper: Any) -> bool:
        # Checked once open: an async caller may not hold its connection
        # before (Django's TestCase lends its own when a block starts).
        if not super()._entered(wrapper):
            raise NotInATestCase(self.using)
        return True

    def _committed(self, wrapper: Any) -> list[Any]:
        if not self.run_callbacks:
            take_callbacks(wrapper)  # dropped, as a rollback would
            return []
        return super()._committed(wrapper)


@overload
def part_of_a_transaction(
    func: F, *, using: str | None = None, run_callbacks: bool = True
) -> F: ...
@overload
def part_of_a_transaction(
    func: None = None, *, using: str | None = None, run_callbacks: bool = True
) -> TransactionBlock: ...
def part_of_a_transaction(
    func: F | None = None, *, using: str | None = None, run_callbacks: bool = True
) -> TransactionBlock | F:
    """In a test, stand in for the transaction that code under test expects its caller to own.

    ``with part_of_a_transaction():`` (``async with`` in async code, or as a
    decorator): inside it ``transaction_required()``, ``savepoint()`` and
    ``run_after_commit()`` find a transaction open, and when it exits
    without error the callbacks registered inside it run, as the caller's
    commit would run them (``run_callbacks=False`` drops them instead, as
    django-subatomic's helper does). Its work stays in the test's
    transaction and is rolled back with it.

    Only inside a test case's own transaction (Django's ``TestCase``,
    pytest-django's ``django_db``, ``AsyncioTestCase``, ``aio_db``): elsewhere
    it raises ``NotInATestCase``, after rolling back what it opened. Raises
    ``TransactionAlreadyOpen`` inside a transaction, and
    ``UnhandledAfterCommitCallbacks`` as ``transaction()`` does.
    """
    block = _PartOfATransactionBlock(using, run_callbacks)
    return block if func is None else block(func)
