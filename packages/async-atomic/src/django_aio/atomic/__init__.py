"""django_aio.atomic: async transactions for Django on PostgreSQL.

- ``async_atomic()``: Django's ``atomic`` for async code, with the connection
  pinned to the task; ``set_rollback``, ``get_rollback``,
  ``mark_for_rollback_on_error`` and ``on_commit`` for it.
- An explicit transaction API (the semantics of django-subatomic) that works
  in sync code (``with`` / decorators of ``def``) and async code
  (``async with`` / decorators of ``async def``): ``transaction``,
  ``transaction_if_not_already``, ``savepoint``, ``transaction_required``,
  ``durable``, ``run_after_commit``, ``in_transaction``,
  ``dbs_with_open_transactions``; its settings (``after_commit_settings``)
  and, for tests, ``part_of_a_transaction``.
"""

from ._after_commit import run_after_commit
from ._async_atomic import (
    AsyncAtomic,
    async_atomic,
    get_rollback,
    mark_for_rollback_on_error,
    on_commit,
    set_rollback,
)
from ._durable import durable
from ._errors import (
    AmbiguousAfterCommit,
    DanglingTransaction,
    NotADecorator,
    NotInATestCase,
    TransactionAlreadyOpen,
    TransactionError,
    TransactionRequired,
    UnhandledAfterCommitCallbacks,
)
from ._explicit import (
    dbs_with_open_transactions,
    in_transaction,
    savepoint,
    transaction,
    transaction_if_not_already,
    transaction_required,
)
from ._settings import AfterCommitSettings, after_commit_settings
from ._test_helpers import part_of_a_transaction

__all__ = [
    "AfterCommitSettings",
    "AmbiguousAfterCommit",
    "AsyncAtomic",
    "DanglingTransaction",
    "NotADecorator",
    "NotInATestCase",
    "TransactionAlreadyOpen",
    "TransactionError",
    "TransactionRequired",
    "UnhandledAfterCommitCallbacks",
    "after_commit_settings",
    "async_atomic",
    "dbs_with_open_transactions",
    "durable",
    "get_rollback",
    "in_transaction",
    "mark_for_rollback_on_error",
    "on_commit",
    "part_of_a_transaction",
    "run_after_commit",
    "savepoint",
    "set_rollback",
    "transaction",
    "transaction_if_not_already",
    "transaction_required",
]
