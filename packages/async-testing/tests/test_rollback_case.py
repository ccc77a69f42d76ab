"""AsyncioTestCase: one rolled-back connection shared by async and sync code."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from django.db import DataError, IntegrityError, connections, transaction
from django.db.transaction import TransactionManagementError
from testing_testapp.models import Author, Book

from django_aio.atomic import async_atomic
from django_aio.conn import ConnectionOwnedByAnotherTask, async_connections, run_sync
from django_aio.testing import AsyncioTestCase

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


async def count_authors() -> int:
    return await run_sync(Author.objects.count)


class SetUpDataIsVisible(AsyncioTestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        cls.tolkien = Author.objects.create(name="Tolkien")

    @classmethod
    async def asyncSetUpTestData(cls) -> None:
        await run_sync(Book.objects.create, title="The Hobbit", author=cls.tolkien)

    async def asyncSetUp(self) -> None:
        await run_sync(Author.objects.create, name="Le Guin")
        marker.set("from asyncSetUp")

    async def test_async_code_sees_the_data(self) -> None:
        names = await run_sync(lambda: sorted(Author.objects.values_list("name", flat=True)))
        assert names == ["Le Guin", "Tolkien"]
        assert await run_sync(Book.objects.get) == await run_sync(Book.objects.get)

    async def test_context_from_async_setup_reaches_the_test(self) -> None:
        assert marker.get() == "from asyncSetUp"

    def test_sync_test_methods_run_in_the_bridge(self) -> None:
        assert Author.objects.count() == 2
        assert Book.objects.get().author.name == "Tolkien"

    async def test_gathered_tasks_share_the_test_connection(self) -> None:
        counts = await asyncio.gather(*(count_authors() for _ in range(5)))
        assert counts == [2] * 5

    async def test_cursor_blocks_see_the_data(self) -> None:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT count(*) FROM testing_testapp_author")
            assert await cursor.fetchone() == (2,)

    async def test_independent_connection_does_not_see_uncommitted_data(self) -> None:
        async with async_connections.independent_connection():
            assert await count_authors() == 0


class EachTestIsRolledBack(AsyncioTestCase):
    # Two tests that each add a row and see only their own: the first one's
    # row must be gone when the second runs, whichever order they run in.
    async def _add_and_count(self, name: str) -> None:
        await run_sync(Author.objects.create, name=name)
        assert await count_authors() == 1

    async def test_one(self) -> None:
        await self._add_and_count("one")

    async def test_two(self) -> None:
        await self._add_and_count("two")


class NothingLeaksIntoTheDatabase(AsyncioTestCase):
    def test_rows_from_the_other_classes_are_gone(self) -> None:
        assert Author.objects.count() == 0


class TransactionsInsideTheTest(AsyncioTestCase):
    async def test_a_failed_atomic_block_rolls_back_only_itself(self) -> None:
        def work() -> None:
            Author.objects.create(name="kept")
            try:
                with transaction.atomic():
                    Author.objects.create(name="dropped")
                    raise ValueError("boom")
            except ValueError:
                pass

        await run_sync(work)
        names = await run_sync(lambda: list(Author.objects.values_list("name", flat=True)))
        assert names == ["kept"]

    async def test_a_failed_block_without_savepoint_leaves_the_test_usable(self) -> None:
        # In production this block is the whole transaction: its failure rolls
        # it back and later queries work.
        def work() -> None:
            try:
                with transaction.atomic(savepoint=False):
                    Author.objects.create(name="dropped")
                    raise ValueError("boom")
            except ValueError:
                pass

        await run_sync(work)
        assert await count_authors() == 0

    async def test_durable_blocks_open_at_the_top_level(self) -> None:
        def work() -> None:
            with transaction.atomic(durable=True):
                Author.objects.create(name="durable")

        await run_sync(work)
        assert await count_authors() == 1

    async def test_durable_block_nested_in_another_is_refused(self) -> None:
        def work() -> None:
            with transaction.atomic(), transaction.atomic(durable=True):
                pass

        with self.assertRaisesMessage(RuntimeError, "A durable atomic block cannot be nested"):
            await run_sync(work)

    async def test_tasks_created_inside_a_transaction_of_the_test_are_refused(self) -> None:
        conn = async_connections["default"]
        async with conn.pinned():
            await run_sync(lambda: transaction.atomic().__enter__())
            try:
                with self.assertRaisesMessage(
                    ConnectionOwnedByAnotherTask, "independent_connection"
                ):
                    await asyncio.create_task(count_authors())
            finally:
                await run_sync(
                    lambda: transaction.Atomic(
                        using="default", savepoint=True, durable=False
                    ).__exit__(None, None, None)
                )

    def test_the_test_transaction_is_on_the_shared_connection(self) -> None:
        assert connections["default"].in_atomic_block


class DropInAsyncMethods(AsyncioTestCase):
    # django_aio.orm (in INSTALLED_APPS) routes Django's own a* methods through
    # the bridge: they run on the test's connection too.
    @classmethod
    def setUpTestData(cls) -> None:
        Author.objects.create(name="Tolkien")

    async def test_acreate_and_acount_see_the_test_data(self) -> None:
        await Author.objects.acreate(name="Le Guin")
        assert await Author.objects.acount() == 2
        assert [a.name async for a in Author.objects.order_by("name")] == ["Le Guin", "Tolkien"]


class ConcurrentTransactionsOnTheSharedConnection(AsyncioTestCase):
    async def test_blocks_of_gathered_tasks_take_turns(self) -> None:
        # One connection cannot run two transactions at once: the second
        # task's block waits for the first one's to end instead of mixing
        # their savepoints.
        events: list[str] = []

        async def work(name: str) -> None:
            async with async_atomic():
                events.append(f"{name} in")
                await run_sync(Author.objects.create, name=name)
                await asyncio.sleep(0.01)
                events.append(f"{name} out")

        await asyncio.gather(work("a"), work("b"))
        assert events in (
            ["a in", "a out", "b in", "b out"],
            ["b in", "b out", "a in", "a out"],
        )
        assert await count_authors() == 2


class StatementsOutsideBlocksBehaveAsInAutocommit(AsyncioTestCase):
    async def test_a_failed_statement_does_not_break_the_test(self) -> None:
        await Author.objects.acreate(name="unique")
        with pytest.raises(IntegrityError, match="duplicate key value"):
            await Author.objects.acreate(name="unique")
        assert await Author.objects.acount() == 1

    async def test_select_for_update_outside_a_block_fails_as_in_production(self) -> None:
        with pytest.raises(
            TransactionManagementError,
            match="select_for_update cannot be used outside of a transaction",
        ):
            await run_sync(lambda: list(Author.objects.select_for_update()))
        async with async_atomic():
            assert await run_sync(lambda: list(Author.objects.select_for_update())) == []

    def test_get_autocommit_is_true_outside_blocks_only(self) -> None:
        assert transaction.get_autocommit()
        with transaction.atomic():
            assert not transaction.get_autocommit()
        assert transaction.get_autocommit()

    def test_closing_the_connection_outside_blocks_keeps_the_test_data(self) -> None:
        Author.objects.create(name="kept")
        connections["default"].close()
        assert Author.objects.count() == 1

    def test_closing_it_inside_a_block_rolls_that_block_back(self) -> None:
        Author.objects.create(name="kept")
        with transaction.atomic():
            Author.objects.create(name="lost")
            connections["default"].close()
        assert list(Author.objects.values_list("name", flat=True)) == ["kept"]

    async def test_a_failed_cursor_statement_does_not_break_the_test(self) -> None:
        async with async_connections["default"].cursor() as cursor:
            with pytest.raises(DataError, match="division by zero"):
                await cursor.execute("SELECT 1 / 0")
            await cursor.execute("SELECT 1")
            assert await cursor.fetchone() == (1,)
