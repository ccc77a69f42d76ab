"""AsyncioTransactionTestCase, and tests that leave connections in use."""

from __future__ import annotations

import asyncio

import pytest
from django.db import transaction
from django.test.testcases import DatabaseOperationForbidden
from testing_testapp.models import Author

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections, run_sync
from django_aio.conn.layers import installed_providers
from django_aio.testing import AsyncioTestCase, AsyncioTransactionTestCase

from .conftest import failure_messages, run_case


async def count_authors() -> int:
    return await run_sync(Author.objects.count)


class CommitsAreReal(AsyncioTransactionTestCase):
    async def test_committed_rows_are_seen_by_other_connections(self) -> None:
        async with async_atomic():
            await run_sync(Author.objects.create, name="committed")
        async with async_connections.independent_connection():
            assert await count_authors() == 1

    async def test_select_for_update_blocks_a_concurrent_transaction(self) -> None:
        await run_sync(Author.objects.create, name="locked")
        order: list[str] = []
        locked = asyncio.Event()

        async def first() -> None:
            async with async_atomic():
                await run_sync(lambda: list(Author.objects.select_for_update()))
                locked.set()
                await asyncio.sleep(0.05)
                order.append("first commits")

        async def second() -> None:
            await locked.wait()
            async with async_atomic():
                await run_sync(lambda: list(Author.objects.select_for_update()))
                order.append("second got the lock")

        await asyncio.gather(first(), second())
        assert order == ["first commits", "second got the lock"]

    async def test_on_commit_runs_after_the_real_commit(self) -> None:
        seen: list[int] = []

        async def callback() -> None:
            async with async_connections.independent_connection():
                seen.append(await count_authors())

        async with async_atomic():
            await run_sync(Author.objects.create, name="x")
            await async_connections["default"].on_commit(callback)
        assert seen == [1]

    async def test_assert_num_queries_counts_this_task(self) -> None:
        async with self.assertNumQueries(1):
            await count_authors()


class TablesAreFlushedBetweenTests(AsyncioTransactionTestCase):
    async def test_one(self) -> None:
        assert await count_authors() == 0
        await run_sync(Author.objects.create, name="one")

    async def test_two(self) -> None:
        assert await count_authors() == 0
        await run_sync(Author.objects.create, name="two")


def test_rollback_case_leaving_a_transaction_open_fails_naming_it() -> None:
    class LeavesAtomicOpen(AsyncioTestCase):
        async def test_leak(self) -> None:
            self.atomic = async_atomic()
            await self.atomic.__aenter__()

    (message,) = failure_messages(run_case(LeavesAtomicOpen))
    assert (
        "ConnectionLeaked: the test left database connections in use:\n"
        "- a transaction open on database 'default' by task 'django_aio test' "
        "(1 atomic block(s) entered and not exited)\n"
        "Exit every async_atomic() and cursor block, and await or cancel the tasks that "
        "use the database, before the test ends."
    ) in message


def test_rollback_case_leaving_a_sync_atomic_open_fails_naming_it() -> None:
    class LeavesSyncAtomicOpen(AsyncioTestCase):
        def test_leak(self) -> None:
            transaction.atomic().__enter__()

    (message,) = failure_messages(run_case(LeavesSyncAtomicOpen))
    assert (
        "- a transaction open on database 'default' (1 atomic block(s) entered and not exited)"
        in message
    )


def test_rollback_case_leaving_a_cursor_open_fails_naming_it() -> None:
    class LeavesCursorOpen(AsyncioTestCase):
        async def test_leak(self) -> None:
            # Kept referenced: a dropped context manager is closed by the
            # garbage collector, which gives the connection back.
            self.cursor = async_connections["default"].cursor()
            await self.cursor.__aenter__()

    (message,) = failure_messages(run_case(LeavesCursorOpen))
    assert (
        "- the test's connection to database 'default' still in use by task 'django_aio test'"
        in message
    )


def test_rollback_case_leaving_an_independent_connection_fails_naming_it() -> None:
    class LeavesIndependentConnection(AsyncioTestCase):
        async def test_leak(self) -> None:
            self.scope = async_connections.independent_connection()
            await self.scope.__aenter__()
            self.cursor = async_connections["default"].cursor()
            await self.cursor.__aenter__()

    (message,) = failure_messages(run_case(LeavesIndependentConnection))
    assert "- a connection checked out to database 'default', by task 'django_aio test' " in (
        message
    )
    assert "test_leaks_and_transaction_case.py:" in message
    assert "in test_leak)" in message


def test_transaction_case_leaving_a_transaction_open_fails_naming_it() -> None:
    class LeavesTransactionOpen(AsyncioTransactionTestCase):
        async def test_leak(self) -> None:
            await run_sync(Author.objects.create, name="before the leak")
            self.atomic = async_atomic()
            await self.atomic.__aenter__()

    (message,) = failure_messages(run_case(LeavesTransactionOpen))
    assert "- a transaction open on database 'default', by task 'django_aio test' (taken at " in (
        message
    )
    assert "in test_leak)" in message


def test_transaction_case_leaving_a_task_holding_a_cursor_fails_naming_it() -> None:
    class LeavesTaskRunning(AsyncioTransactionTestCase):
        async def test_leak(self) -> None:
            started = asyncio.Event()

            async def holder() -> None:
                async with async_connections["default"].cursor():
                    started.set()
                    await asyncio.Event().wait()

            self.task = asyncio.create_task(holder(), name="forgotten holder")
            await started.wait()

    (message,) = failure_messages(run_case(LeavesTaskRunning))
    assert "- a connection checked out to database 'default', by task 'forgotten holder'" in (
        message
    )
    assert "in holder)" in message


class AfterTheLeaksEverythingIsClean(AsyncioTransactionTestCase):
    # Runs after the leaky cases above in file order; their connections were
    # discarded and their tables flushed.
    async def test_nothing_is_left(self) -> None:
        assert await count_authors() == 0
        async with async_atomic():
            assert await count_authors() == 0


def test_tracking_is_installed_for_the_test_only_even_when_it_leaks() -> None:
    seen: list[list[str]] = []

    def installed() -> list[str]:
        return [type(provider).__name__ for provider in installed_providers()]

    class Leaks(AsyncioTestCase):
        async def test_leak(self) -> None:
            seen.append(installed())
            self.atomic = async_atomic()
            await self.atomic.__aenter__()

    class Commits(AsyncioTransactionTestCase):
        async def test_it(self) -> None:
            seen.append(installed())

    assert installed() == []
    (message,) = failure_messages(run_case(Leaks))
    assert "ConnectionLeaked" in message
    assert failure_messages(run_case(Commits)) == []
    assert seen == [["Tracking"], ["Tracking"]]
    assert installed() == []


class OtherAliasesAreRefused(AsyncioTestCase):
    async def test_a_query_on_an_alias_not_in_databases(self) -> None:
        with pytest.raises(DatabaseOperationForbidden) as failure:
            await run_sync(lambda: Author.objects.using("other").count())
        assert str(failure.value) == (
            "Database queries to 'other' are not allowed in this test. Add 'other' to "
            f"{__name__}.OtherAliasesAreRefused.databases to ensure proper test isolation "
            "and silence this failure."
        )


class TwoDatabases(AsyncioTestCase):
    databases = {"default", "other"}

    async def test_both_are_rolled_back(self) -> None:
        await run_sync(lambda: Author.objects.using("other").create(name="other"))
        assert await run_sync(lambda: Author.objects.using("other").count()) == 1
        assert await count_authors() == 0


def test_both_databases_were_rolled_back() -> None:
    # Sync Django, outside any loop: sees only what was committed.
    assert Author.objects.using("other").count() == 0
    assert Author.objects.count() == 0


def test_a_failing_test_is_rolled_back_and_reports_only_its_failure() -> None:
    class Fails(AsyncioTestCase):
        async def test_fails(self) -> None:
            await run_sync(Author.objects.create, name="written before failing")
            raise AssertionError("the test's own failure")

    result = run_case(Fails)
    (message,) = failure_messages(result)
    assert "AssertionError: the test's own failure" in message
    assert "ConnectionLeaked" not in message
    assert Author.objects.count() == 0


def test_lifecycle_order_and_an_error_in_async_setup() -> None:
    calls: list[str] = []

    class Lifecycle(AsyncioTestCase):
        def setUp(self) -> None:
            calls.append("setUp")
            self.addCleanup(calls.append, "sync cleanup")

        async def asyncSetUp(self) -> None:
            calls.append("asyncSetUp")
            self.addAsyncCleanup(self.cleanup, "async cleanup")

        async def cleanup(self, label: str) -> None:
            calls.append(f"{label} sees {await count_authors()} row(s)")

        async def test_it(self) -> None:
            await run_sync(Author.objects.create, name="x")
            calls.append("test")

        async def asyncTearDown(self) -> None:
            calls.append("asyncTearDown")

        def tearDown(self) -> None:
            calls.append("tearDown")

    assert run_case(Lifecycle).wasSuccessful()
    assert calls == [
        "setUp",
        "asyncSetUp",
        "test",
        "asyncTearDown",
        "tearDown",
        "async cleanup sees 1 row(s)",
        "sync cleanup",
    ]

    class BrokenSetUp(AsyncioTestCase):
        async def asyncSetUp(self) -> None:
            await run_sync(Author.objects.create, name="x")
            raise LookupError("asyncSetUp failed")

        async def test_never_runs(self) -> None:
            raise AssertionError("unreachable")

    (message,) = failure_messages(run_case(BrokenSetUp))
    assert "LookupError: asyncSetUp failed" in message
    assert Author.objects.count() == 0


def test_a_cancelled_test_is_an_error_and_the_next_one_runs() -> None:
    class Cancelled(AsyncioTestCase):
        async def test_cancelled(self) -> None:
            await run_sync(Author.objects.create, name="x")
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(1)

        async def test_zz_next(self) -> None:
            assert await count_authors() == 0

    result = run_case(Cancelled)
    assert result.testsRun == 2
    (message,) = failure_messages(result)
    assert "CancelledError" in message
    assert Author.objects.count() == 0
