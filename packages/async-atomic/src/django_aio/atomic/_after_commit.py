"""After-commit callbacks of the explicit API, and their checks in tests.

Note [After-commit callbacks in tests]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Inside a test case's transaction, ``transaction()`` opens a savepoint rather
than a transaction, and Django keeps its callbacks until the test transaction
commits, which it never does. When such a ``transaction()`` (or
``part_of_a_transaction()``) exits without error we run the callbacks
ourselves, right there, as the commit would have. Two checks keep tests
honest about the rest (each can be turned off, see _settings.py):

- *unhandled*: callbacks already pending when such a block starts were
  registered where no commit will run them (Django's ``on_commit`` inside a
  plain ``atomic()``, or in the test itself); in production they would have
  run before this point, so the block refuses to start, naming them.
- *ambiguous*: ``run_after_commit()`` inside a plain ``atomic()`` directly
  inside the test's transaction registers a callback no commit will run;
  it raises at once rather than silently never running it.

Blocks of ours mark the Django ``Atomic`` they open with ``RUNS_CALLBACKS``,
so the ambiguity check knows them. A test layer that itself runs the
callbacks of the first block above its own (django_aio.testing's rollback
tests do) marks its test ``Atomic`` with ``TEST_RUNS_CALLBACKS``: nothing is
ambiguous there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from django_aio.conn import in_bridge

from ._block import alias_of
from ._callbacks import Callback, as_sync_callback
from ._errors import AmbiguousAfterCommit, TransactionRequired, UnhandledAfterCommitCallbacks
from ._settings import after_commit_settings
from ._state import current_wrapper, loop_running, wrapper_in_transaction

__all__ = [
    "RUNS_CALLBACKS",
    "TEST_RUNS_CALLBACKS",
    "check_pending",
    "run_after_commit",
    "take_callbacks",
]

#: Marks a Django ``Atomic`` opened by transaction() or part_of_a_transaction().
RUNS_CALLBACKS = "_django_aio_runs_callbacks"
#: Marks a test layer's ``Atomic`` whose layer runs the callbacks of the block above it.
TEST_RUNS_CALLBACKS = "_django_aio_test_runs_callbacks"

Entry = tuple[Any, Callable[[], Any], bool]


def in_test_block(wrapper: Any) -> bool:
    """Whether the block just entered on ``wrapper`` sits directly on a test case's block."""
    blocks = wrapper.atomic_blocks
    return len(blocks) > 1 and bool(getattr(blocks[-2], "_from_testcase", False))


def check_pending(wrapper: Any, alias: str, what: str) -> None:
    """Mark the block just entered; in a test, refuse pending callbacks.

    See Note [After-commit callbacks in tests].
    """
    setattr(wrapper.atomic_blocks[-1], RUNS_CALLBACKS, True)
    if not in_test_block(wrapper) or not wrapper.run_on_commit:
        return
    if after_commit_settings().catch_unhandled_in_tests:
        raise UnhandledAfterCommitCallbacks(
            alias, what, [func for _sids, func, _robust in wrapper.run_on_commit]
        )


def take_callbacks(wrapper: Any) -> list[Entry]:
    """Remove and return every callback the connection holds."""
    callbacks: list[Entry] = wrapper.run_on_commit
    wrapper.run_on_commit = []
    return callbacks


def _ambiguous(wrapper: Any) -> bool:
    blocks = wrapper.atomic_blocks
    base = max((i for i, b in enumerate(blocks) if getattr(b, "_from_testcase", False)), default=-1)
    if base < 0 or base + 1 >= len(blocks) or getattr(blocks[base], TEST_RUNS_CALLBACKS, False):
        return False
    return not getattr(blocks[base + 1], RUNS_CALLBACKS, False)


def run_after_commit(callback: Callback, *, using: str | None = None) -> None:
    """Run ``callback`` (sync or ``async def``) after the open transaction commits.

    Raises ``TransactionRequired`` when no transaction is open, instead of
    running the callback at once as Django's ``on_commit`` does: a callback
    that seems deferred but is not hides a missing transaction (with the
    setting ``DJANGO_AIO_AFTER_COMMIT_NEEDS_TRANSACTION = False`` it runs at
    once). Dropped if the transaction (or the savepoint it was registered in)
    rolls back. Called the same way from sync and async code (no ``await``).
    In tests, raises ``AmbiguousAfterCommit`` inside a plain ``atomic()``
    that no commit will end.
    """
    alias = alias_of(using)
    wrapper = current_wrapper(alias)
    if wrapper is None or not wrapper_in_transaction(wrapper):
        if after_commit_settings().needs_transaction:
            raise TransactionRequired(alias, "run_after_commit()")
        _run_now(callback, alias)
        return
    registered = as_sync_callback(callback)
    if _ambiguous(wrapper) and after_commit_settings().ambiguity_error_in_tests:
        raise AmbiguousAfterCommit(alias, callback)
    wrapper.on_commit(registered)


def _run_now(callback: Callback, alias: str) -> None:
    if not (loop_running() and not in_bridge()):
        as_sync_callback(callback)()
        return
    # Async code: a sync callback can run here; an async one cannot be
    # awaited by a function that is not awaited itself.
    as_sync_callback(callback)  # raises TypeError for what is not callable
    if not inspect.iscoroutinefunction(callback):
        result = callback()
        if not inspect.isawaitable(result):
            return
        if inspect.iscoroutine(result):
            result.close()
    name = getattr(callback, "__qualname__", repr(callback))
    raise TypeError(
        f"run_after_commit() cannot run the async callback {name} at once from async "
        f"code: no transaction is open on database {alias!r} (and "
        f"DJANGO_AIO_AFTER_COMMIT_NEEDS_TRANSACTION is False). Use "
        f"`await on_commit(callback)`, which awaits it, or open a transaction."
    )
