"""``AsyncioTestCase`` and ``AsyncioTransactionTestCase``.

Both are Django ``TransactionTestCase`` subclasses (so ``databases``,
``fixtures``, ``available_apps``, ``override_settings``, the test clients and
every ``assert*`` helper behave as in Django), with their own test lifecycle:
each test runs on its own event loop, in one task (Note [One task per test]),
and its database work goes through django_aio's async connections.

Sync ``setUp``/``tearDown``/``test_*`` methods and cleanups run inside
``run_sync()``, so sync ORM code there works, on the same connections as the
async code.
"""

from __future__ import annotations

import inspect
import sys
import unittest
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS
from django.test import TransactionTestCase

from django_aio.conn import run_sync

from ._driver import Driver
from ._internals import prepare_bridged_classes
from ._queries import QueryCounter
from ._session import RollbackDatabase, TransactionalDatabase

__all__ = ["AsyncioTestCase", "AsyncioTransactionTestCase"]


async def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if inspect.iscoroutinefunction(func):
        return await func(*args, **kwargs)
    result = await run_sync(func, *args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


class _AsyncioLifecycle(TransactionTestCase):
    """The lifecycle shared by both classes; see the module docstring."""

    _aio_driver: Driver | None = None
    _aio_db: RollbackDatabase | TransactionalDatabase | None = None
    _aio_ended = True

    async def asyncSetUp(self) -> None:
        """Async per-test setup, run after ``setUp()`` in the test's task."""

    async def asyncTearDown(self) -> None:
        """Async per-test teardown, run before ``tearDown()`` in the test's task."""

    def addAsyncCleanup(
        self, func: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
    ) -> None:
        """Register ``await func(*args, **kwargs)`` to run after ``tearDown()``."""
        self.addCleanup(func, *args, **kwargs)

    # -- Django's hooks ------------------------------------------------------

    @classmethod
    def setUpClass(cls) -> None:
        prepare_bridged_classes()  # before Django patches ensure_connection
        super().setUpClass()

    def _setup_and_call(self, result: Any, debug: bool = False) -> None:
        # Django's version wraps async tests in async_to_sync (a thread with
        # its own loop); here the driver runs them instead.
        test_method = getattr(self, self._testMethodName)
        skipped = getattr(self.__class__, "__unittest_skip__", False) or getattr(
            test_method, "__unittest_skip__", False
        )
        if not skipped:
            try:
                if self.__class__._pre_setup_ran_eagerly:  # type: ignore[attr-defined]
                    self.__class__._pre_setup_ran_eagerly = False  # type: ignore[attr-defined]
                else:
                    self._pre_setup()  # type: ignore[attr-defined]
            except Exception:
                if debug:
                    raise
                result.addError(self, sys.exc_info())
                return
        self._aio_driver = Driver()
        try:
            if debug:
                unittest.TestCase.debug(self)
                self._end_database()
            else:
                unittest.TestCase.__call__(self, result)
        finally:
            self._aio_driver.close()
            self._aio_driver = None
        if not skipped:
            try:
                self._post_teardown()  # type: ignore[attr-defined]
            except Exception:
                if debug:
                    raise
                result.addError(self, sys.exc_info())

    @classmethod
    def _fixture_setup(cls) -> None:
        # Fixtures load when the test's database begins (see _begin_database).
        return None

    def _fixture_teardown(self) -> None:
        return None  # done in the test's task by _end_database

    # -- unittest's hooks (the same ones IsolatedAsyncioTestCase overrides) --

    def _run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        assert self._aio_driver is not None
        return self._aio_driver.call(lambda: _call(func, *args, **kwargs))

    def _callSetUp(self) -> None:
        self._aio_ended = False
        self._run(self._begin_database)
        self._run(self.setUp)
        self._run(self.asyncSetUp)

    def _callTestMethod(self, method: Callable[..., Any]) -> None:
        if self._run(method) is not None:
            import warnings

            warnings.warn(
                f"It is deprecated to return a value that is not None from a test case ({method})",
                DeprecationWarning,
                stacklevel=4,
            )

    def _callTearDown(self) -> None:
        self._run(self.asyncTearDown)
        self._run(self.tearDown)

    def _callCleanup(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        self._run(function, *args, **kwargs)

    def doCleanups(self) -> bool:  # type: ignore[override]
        ok = bool(super().doCleanups())
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            self._end_database()
            return ok
        with outcome.testPartExecutor(self):
            self._end_database()
        return bool(ok and outcome.success)

    # -- the test's database -------------------------------------------------

    def _make_database(self) -> RollbackDatabase | TransactionalDatabase:
        raise NotImplementedError

    async def _begin_database(self) -> None:
        self._aio_db = self._make_database()
        await self._aio_db.begin()

    def _end_database(self) -> None:
        if self._aio_ended:
            return
        self._aio_ended = True
        if self._aio_db is not None:
            db, self._aio_db = self._aio_db, None
            self._run(db.end)

    def _databases_hint(self) -> str:
        test = f"{type(self).__module__}.{type(self).__qualname__}"
        return (
            f"Add {{alias}} to {test}.databases to ensure proper test isolation and "
            f"silence this failure."
        )

    def _databases_list(self) -> list[str]:
        return self._databases_names(include_mirrors=False)  # type: ignore[no-any-return, attr-defined]

    # -- assertions ----------------------------------------------------------

    def assertNumQueries(
        self,
        num: int,
        func: Callable[..., Any] | None = None,
        *args: Any,
        using: str = DEFAULT_DB_ALIAS,
        **kwargs: Any,
    ) -> Any:
        """Fail unless ``num`` queries run on ``using``.

        ``async with self.assertNumQueries(2): ...``, or
        ``await self.assertNumQueries(2, func, *args)`` for a sync or async
        ``func``. In ``AsyncioTestCase`` every task's queries count (they all
        share the test's connection); in ``AsyncioTransactionTestCase`` only
        the calling task's do.
        """
        if self._aio_db is None:
            raise RuntimeError("assertNumQueries() can only be used while a test runs.")
        counter = self._aio_db.assert_num_queries(num, using=using)
        if func is None:
            return counter
        return _counted(counter, func, args, kwargs)


async def _counted(counter: QueryCounter, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    async with counter:
        return await _call(func, *args, **kwargs)


class AsyncioTestCase(_AsyncioLifecycle):
    """Async tests whose database work is rolled back after each test.

    Each test runs on one connection per database, shared by every task of the
    test and by sync code run through ``run_sync()``, inside a transaction
    that is rolled back at the end: as fast as Django's ``TestCase``, and the
    async ORM sees the data of ``setUpTestData``, ``fixtures`` and
    ``asyncSetUp``. ``setUpTestData`` (and ``asyncSetUpTestData``) run
    before each test, inside that transaction.

    ``on_commit`` callbacks run as in production (when the outermost
    ``atomic``/``async_atomic`` block of the code under test exits, or at once
    outside one); see ``captureOnCommitCallbacks``. A test that ends with a
    transaction open or a connection checked out fails, naming it.
    """

    _aio_db: RollbackDatabase | None  # pyright: ignore[reportIncompatibleVariableOverride]

    @classmethod
    def setUpTestData(cls) -> None:
        """Create data for each test (sync, run in ``run_sync``; rolled back after the test)."""

    @classmethod
    async def asyncSetUpTestData(cls) -> None:
        """Async counterpart of ``setUpTestData``, run right after it."""

    def _make_database(self) -> RollbackDatabase:
        if self.reset_sequences:
            raise TypeError("reset_sequences cannot be used on AsyncioTestCase instances")
        return RollbackDatabase(self._databases_list(), hint=self._databases_hint())

    async def _begin_database(self) -> None:
        await super()._begin_database()
        if self.fixtures:
            for alias in self._databases_list():
                await run_sync(
                    call_command, "loaddata", *self.fixtures, verbosity=0, database=alias
                )
        await run_sync(type(self).setUpTestData)
        await type(self).asyncSetUpTestData()

    def captureOnCommitCallbacks(
        self, *, using: str = DEFAULT_DB_ALIAS, execute: bool = False
    ) -> Any:
        """``async with self.captureOnCommitCallbacks() as callbacks:``.

        Callbacks registered in the block are collected in ``callbacks``
        instead of running; with ``execute=True`` they run when the block
        ends, in order (and so do callbacks they register).
        """
        if self._aio_db is None:
            raise RuntimeError("captureOnCommitCallbacks() can only be used while a test runs.")
        return self._aio_db.capture_on_commit_callbacks(using=using, execute=execute)


class AsyncioTransactionTestCase(_AsyncioLifecycle):
    """Async tests whose work really commits; the database is flushed after each test.

    For code that commits, uses ``async_atomic`` durably, ``select_for_update``,
    several connections or real concurrency. As Django's
    ``TransactionTestCase``: ``fixtures`` load before each test, tables are
    flushed after it (``available_apps`` and ``serialized_rollback`` are
    honoured). Every async connection is closed after each test; a test that
    leaves a transaction open or a connection checked out fails, naming it.
    """

    @classmethod
    def _fixture_setup(cls) -> None:
        # Django's own: loads fixtures on the sync connection, which commits.
        TransactionTestCase._fixture_setup.__func__(cls)  # type: ignore[attr-defined]

    def _make_database(self) -> TransactionalDatabase:
        return TransactionalDatabase(
            self._databases_list(), flush=self._flush, hint=self._databases_hint()
        )

    def _flush(self, aliases: list[str]) -> None:
        # Django's flush (honours available_apps and serialized_rollback),
        # run in the bridge after every async connection was checked.
        TransactionTestCase._fixture_teardown(self)  # type: ignore[attr-defined]
