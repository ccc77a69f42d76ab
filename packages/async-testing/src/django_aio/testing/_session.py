"""One test's database: rolled back (one shared connection) or committed (flushed after).

Both the unittest classes and the pytest fixtures drive these objects:
``begin()`` before any fixture code, ``end()`` after every cleanup, both
awaited on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from django_aio.conn import async_connections, run_sync

from ._internals import (
    Checkout,
    Tracking,
    Window,
    acquire_lease,
    close_window,
    open_window,
    release_lease,
    run_on_lease,
    window_holders,
)
from ._on_commit import CapturedCallbacks, TestTransaction
from ._queries import CaptureQueriesContext, QueryCounter
from ._task_queries import TaskInstrumentation

__all__ = ["ConnectionLeaked", "RollbackDatabase", "TransactionalDatabase", "resolve_databases"]


class ConnectionLeaked(AssertionError):
    """A test ended with a transaction open or a connection checked out.

    ``problems`` lists one line per leaked transaction or connection; the
    message names the alias, the task and where the connection was taken.
    """

    __module__ = "django_aio.testing"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the test left database connections in use:\n"
            + "\n".join(f"- {p}" for p in problems)
            + "\nExit every async_atomic() and cursor block, and await or cancel the tasks "
            "that use the database, before the test ends."
        )


def resolve_databases(databases: Iterable[str] | str | None) -> list[str]:
    """The aliases a test uses, in settings order (``"__all__"`` for every one)."""
    if databases is None:
        return [DEFAULT_DB_ALIAS]
    if databases == "__all__":
        return list(connections)
    wanted = {databases} if isinstance(databases, str) else set(databases)
    for alias in wanted:
        if alias not in connections.settings:
            raise ValueError(
                f"databases refers to {alias!r}, which is not in settings.DATABASES "
                f"(aliases: {', '.join(connections)})."
            )
    return [alias for alias in connections if alias in wanted]


def _describe(who: Checkout, in_transaction: bool) -> str:
    state = "a transaction open on" if in_transaction else "a connection checked out to"
    return f"{state} database {who.alias!r}, by task {who.task!r} (taken at {who.where})"


def _leaked_checkouts(tracking: Tracking) -> tuple[list[str], list[Any]]:
    problems: list[str] = []
    leases: list[Any] = []
    for who, in_transaction in tracking.ended_holding_tasks():
        problems.append(_describe(who, in_transaction) + "; the task ended holding it")
    for lease, who in tracking.checked_out():
        leases.append(lease)
        problems.append(_describe(who, lease.in_transaction()))
    return problems, leases


async def _discard(tracking: Tracking, leases: Iterable[Any]) -> None:
    # Close the leaked connections (the server rolls their transactions back
    # and drops their locks) but leave returning them to their holders: a
    # task that still holds one gives it back when it ends, and the pool then
    # sees it closed and replaces it.
    for lease in leases:
        tracking.forget(lease)
        with contextlib.suppress(Exception):
            await lease.aconnection.close()


_PYTEST_HINT = (
    "Add {alias} to the test's databases (@pytest.mark.aio_db(databases=[...])) to "
    "ensure proper test isolation and silence this failure."
)


class _Database:
    """What the two kinds share."""

    rollback: bool = False

    def __init__(
        self, databases: Iterable[str] | str | None = None, *, hint: str = _PYTEST_HINT
    ) -> None:
        self.databases = resolve_databases(databases)
        self.hint = hint
        self.tracking: Tracking | None = None

    async def begin(self) -> None:
        """Start tracking the pooled connections of the test's loop (until ``end()``)."""
        self.tracking = Tracking(self.databases, self.hint)
        self.tracking.install()

    def _stop_tracking(self) -> Tracking:
        tracking = self.tracking
        assert tracking is not None, "end() without begin()"
        tracking.uninstall()
        return tracking

    def _check_alias(self, using: str) -> None:
        if using not in self.databases:
            raise ValueError(
                f"database {using!r} is not used by this test (it uses "
                f"{', '.join(map(repr, self.databases))}); add it to the test's databases."
            )

    def assert_num_queries(self, num: int, *, using: str = DEFAULT_DB_ALIAS) -> QueryCounter:
        """``async with db.assert_num_queries(n):`` fails unless ``n`` queries ran in the block."""
        self._check_alias(using)
        return QueryCounter(num, self._log_target(using), using)

    def capture_queries(self, *, using: str = DEFAULT_DB_ALIAS) -> CaptureQueriesContext:
        """``async with db.capture_queries() as ctx:`` logs the block's queries in ``ctx``.

        Which queries, as for ``assert_num_queries``: every task's in a
        rollback test (they share one connection), the calling task's in a
        transactional one.
        """
        self._check_alias(using)
        return CaptureQueriesContext(self._log_target(using))

    def _log_target(self, using: str) -> Any:
        raise NotImplementedError


class RollbackDatabase(_Database):
    """Every task of the test shares one connection per alias, rolled back at the end.

    See Note [One connection per test] and Note [Realistic on_commit].
    """

    rollback = True

    def __init__(
        self, databases: Iterable[str] | str | None = None, *, hint: str = _PYTEST_HINT
    ) -> None:
        super().__init__(databases, hint=hint)
        self.leases: dict[str, Any] = {}
        self.atomics: dict[str, transaction.Atomic] = {}
        self.states: dict[str, TestTransaction] = {}
        self.window: Window | None = None

    async def begin(self) -> None:
        await super().begin()
        try:
            for alias in self.databases:
                lease = self.leases[alias] = await acquire_lease(alias)
                await run_on_lease(lease, self._enter, alias)
        except BaseException:
            try:
                await self._release(discard=True)
            finally:
                self._stop_tracking()
            raise
        self.window = open_window(self.leases)

    def _enter(self, alias: str) -> None:
        atomic = transaction.atomic(using=alias)
        # Lets durable blocks of the code under test open.
        atomic._from_testcase = True  # type: ignore[attr-defined]
        # Our TestTransaction runs the callbacks of the block above this one,
        # so django_aio.atomic has nothing ambiguous to report there.
        atomic._django_aio_test_runs_callbacks = True  # type: ignore[attr-defined]
        atomic.__enter__()
        self.atomics[alias] = atomic
        state = self.states[alias] = TestTransaction(connections[alias])
        state.attach()
        # Inside the test's own statement wrapper (Note [Per-task instrumentation]).
        connections[alias].execute_wrappers.append(TaskInstrumentation(self.leases[alias], state))

    async def end(self) -> None:
        """Check for leaks, roll back, close every connection of the loop."""
        problems: list[str] = []
        for alias, lease in self.leases.items():
            holders = window_holders(lease)
            depth = len(lease.wrapper.atomic_blocks) - self.states[alias].base_depth
            tasks = ", ".join(repr(t.get_name()) for t in holders)
            by = f" by task {tasks}" if tasks else ""
            if depth > 0:
                problems.append(
                    f"a transaction open on database {alias!r}{by} "
                    f"({depth} atomic block(s) entered and not exited)"
                )
            elif holders:
                problems.append(f"the test's connection to database {alias!r} still in use{by}")
        assert self.tracking is not None, "end() without begin()"
        leaked, leases = _leaked_checkouts(self.tracking)
        problems += leaked
        try:
            if self.window is not None:
                close_window(self.window)
                self.window = None
            if problems:
                for state in self.states.values():
                    _detach(state)
                await self._release(discard=True)
            else:
                await self._rollback()
        finally:
            tracking = self._stop_tracking()
            await _discard(tracking, leases)
            await async_connections.close_pools()
        if problems:
            raise ConnectionLeaked(problems)

    async def _rollback(self) -> None:
        error: BaseException | None = None
        for alias in reversed(list(self.leases)):
            lease = self.leases[alias]
            try:
                await run_on_lease(lease, self._exit, alias)
            except BaseException as exc:
                error = error or exc
        await self._release(discard=error is not None)
        if error is not None:
            raise error

    def _exit(self, alias: str) -> None:
        connection = connections[alias]
        try:
            # As Django's TestCase: deferred constraint violations fail the test.
            if (
                connection.features.can_defer_constraint_checks
                and not connection.needs_rollback
                and connection.is_usable()
            ):
                connection.check_constraints()
        finally:
            _detach(self.states[alias])
            transaction.set_rollback(True, using=alias)
            self.atomics[alias].__exit__(None, None, None)

    async def _release(self, *, discard: bool) -> None:
        leases, self.leases = dict(self.leases), {}
        for lease in leases.values():
            await release_lease(lease, discard=discard)

    def _log_target(self, using: str) -> Any:
        return self.leases[using].wrapper

    @asynccontextmanager
    async def capture_on_commit_callbacks(
        self, *, using: str = DEFAULT_DB_ALIAS, execute: bool = False
    ) -> AsyncIterator[list[Callable[[], Any]]]:
        """Capture the ``on_commit`` callbacks that would run during the block.

        Callbacks registered in the block are collected instead of run (those
        of a block that rolls back are dropped, as in production). With
        ``execute=True`` they run when the capture ends, in order, together
        with any callbacks they register.
        """
        self._check_alias(using)
        state = self.states[using]
        capture = state.start_capture()
        try:
            yield capture.callbacks
        finally:
            state.stop_capture(capture)
        if execute:
            await _execute_captured(state, capture)


def _detach(state: TestTransaction) -> None:
    state.detach()
    wrappers = state.connection.execute_wrappers
    wrappers[:] = [w for w in wrappers if not isinstance(w, TaskInstrumentation)]


async def _execute_captured(state: TestTransaction, capture: CapturedCallbacks) -> None:
    from ._on_commit import call_hook

    done = 0
    again = state.start_capture()
    try:
        while done < len(capture.runnable):
            func, robust = capture.runnable[done]
            done += 1
            await run_sync(call_hook, func, robust)
            state.stop_capture(again)
            for func_, robust_ in again.runnable:
                capture.add(func_, robust_)
            again = state.start_capture()
    finally:
        state.stop_capture(again)


class TransactionalDatabase(_Database):
    """Work commits for real; the tables are flushed at the end."""

    def __init__(
        self,
        databases: Iterable[str] | str | None = None,
        *,
        flush: Callable[[list[str]], None] | None = None,
        hint: str = _PYTEST_HINT,
    ) -> None:
        super().__init__(databases, hint=hint)
        self.flush = flush or _flush

    async def end(self) -> None:
        assert self.tracking is not None, "end() without begin()"
        problems, leases = _leaked_checkouts(self.tracking)
        try:
            await _discard(self.tracking, leases)
            # A fresh scope: the test's task may still hold a leaked connection.
            async with async_connections.independent_connection():
                await run_sync(self.flush, self.databases)
        finally:
            self._stop_tracking()
            await async_connections.close_pools()
        if problems:
            raise ConnectionLeaked(problems)

    def _log_target(self, using: str) -> Any:
        return async_connections[using]


def _flush(aliases: list[str]) -> None:
    for alias in aliases:
        if connections[alias].settings_dict["TEST"]["MIRROR"]:
            continue
        call_command("flush", verbosity=0, interactive=False, database=alias, reset_sequences=False)


async def maybe_await(result: Awaitable[Any] | Any) -> Any:
    if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
        return await result
    return result
