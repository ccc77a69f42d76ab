"""Realistic on_commit in AsyncioTestCase, and captureOnCommitCallbacks."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from testing_testapp.models import Author

from django_aio.atomic import async_atomic, on_commit
from django_aio.conn import async_connections, run_sync
from django_aio.testing import AsyncioTestCase


class OnCommitRunsAsInProduction(AsyncioTestCase):
    async def test_outside_any_block_it_runs_at_once(self) -> None:
        ran: list[str] = []
        await on_commit(lambda: ran.append("now"))
        assert ran == ["now"]

    async def test_in_an_async_atomic_block_it_runs_when_the_block_commits(self) -> None:
        ran: list[str] = []
        async with async_atomic():
            await on_commit(lambda: ran.append("first"))
            async with async_atomic():
                await on_commit(lambda: ran.append("second"))
            assert ran == []
        assert ran == ["first", "second"]

    async def test_async_callbacks_are_awaited(self) -> None:
        ran: list[str] = []

        async def callback() -> None:
            ran.append(str(await run_sync(Author.objects.count)))

        async with async_atomic():
            await run_sync(Author.objects.create, name="x")
            await on_commit(callback)
        assert ran == ["1"]

    async def test_a_block_that_rolls_back_drops_its_callbacks(self) -> None:
        ran: list[str] = []
        async with async_atomic():
            await on_commit(lambda: ran.append("kept"))
            try:
                async with async_atomic():
                    await on_commit(lambda: ran.append("dropped inner"))
                    raise ValueError
            except ValueError:
                pass
        try:
            async with async_atomic():
                await on_commit(lambda: ran.append("dropped outer"))
                raise ValueError
        except ValueError:
            pass
        assert ran == ["kept"]

    def test_sync_atomic_and_on_commit_in_the_bridge(self) -> None:
        ran: list[str] = []
        with transaction.atomic():
            transaction.on_commit(lambda: ran.append("sync"))
            assert ran == []
        assert ran == ["sync"]

    async def test_robust_callbacks_log_and_continue(self) -> None:
        ran: list[str] = []

        def broken() -> None:
            raise LookupError("callback failed")

        with self.assertLogs("django.db.backends.base", logging.ERROR) as logs:
            async with async_atomic():
                await on_commit(broken, robust=True)
                await on_commit(lambda: ran.append("after"))
        assert ran == ["after"]
        assert "Error calling" in logs.output[0]
        assert "broken in on_commit() (callback failed)" in logs.output[0]

    async def test_a_failing_callback_raises_from_the_block(self) -> None:
        def broken() -> None:
            raise LookupError("callback failed")

        with self.assertRaisesMessage(LookupError, "callback failed"):
            async with async_atomic():
                await on_commit(broken)

    async def test_a_callback_failing_on_the_database_raises_and_the_test_goes_on(self) -> None:
        await run_sync(Author.objects.create, name="taken")

        def duplicate() -> None:
            Author.objects.create(name="taken")

        with self.assertRaisesMessage(IntegrityError, "duplicate key value violates unique"):
            async with async_atomic():
                await run_sync(Author.objects.create, name="committed")
                await on_commit(duplicate)
        # As after a real commit: the block's work stays, later queries work.
        names = await run_sync(lambda: sorted(Author.objects.values_list("name", flat=True)))
        assert names == ["committed", "taken"]

    def test_a_block_without_savepoint_runs_its_callbacks_when_it_commits(self) -> None:
        ran: list[str] = []
        with transaction.atomic(savepoint=False):
            Author.objects.create(name="x")
            transaction.on_commit(lambda: ran.append("after"))
            assert ran == []
        assert ran == ["after"]

    def test_callbacks_of_a_block_exited_by_an_error_do_not_run(self) -> None:
        ran: list[str] = []
        with (
            self.assertRaisesMessage(ValueError, "boom"),
            transaction.atomic(savepoint=False),
        ):
            transaction.on_commit(lambda: ran.append("dropped"))
            raise ValueError("boom")
        transaction.on_commit(lambda: ran.append("at once"))
        assert ran == ["at once"]


class CaptureOnCommitCallbacks(AsyncioTestCase):
    async def test_captured_callbacks_do_not_run(self) -> None:
        ran: list[str] = []

        def callback() -> None:
            ran.append("ran")

        async with self.captureOnCommitCallbacks() as callbacks:
            async with async_atomic():
                await on_commit(callback)
            await on_commit(callback)
        assert callbacks == [callback, callback]
        assert ran == []

    async def test_execute_runs_them_in_order_with_those_they_register(self) -> None:
        ran: list[str] = []

        async def second() -> None:
            ran.append("second")

        def first() -> None:
            ran.append("first")
            transaction.on_commit(lambda: ran.append("third"))

        async with self.captureOnCommitCallbacks(execute=True) as callbacks:
            await on_commit(first)
            await on_commit(second)
        assert ran == ["first", "second", "third"]
        assert len(callbacks) == 3
        assert callbacks[1] is second

    async def test_callbacks_of_a_rolled_back_block_are_not_captured(self) -> None:
        async with self.captureOnCommitCallbacks() as callbacks:
            try:
                async with async_atomic():
                    await on_commit(print)
                    raise ValueError
            except ValueError:
                pass
        assert callbacks == []

    async def test_pending_callbacks_of_an_open_block_are_captured(self) -> None:
        ran: list[str] = []
        async with async_atomic():
            async with self.captureOnCommitCallbacks() as callbacks:
                await on_commit(lambda: ran.append("x"))
            assert len(callbacks) == 1
        assert ran == []

    async def test_unknown_alias(self) -> None:
        with self.assertRaisesMessage(ValueError, "database 'other' is not used by this test"):
            async with self.captureOnCommitCallbacks(using="other"):
                pass


class AssertNumQueries(AsyncioTestCase):
    async def test_counts_queries_of_the_block(self) -> None:
        async with self.assertNumQueries(2):
            await run_sync(Author.objects.create, name="a")
            await run_sync(Author.objects.count)

    async def test_callable_form_with_sync_and_async_functions(self) -> None:
        await self.assertNumQueries(1, Author.objects.count)

        async def count() -> int:
            return await run_sync(Author.objects.count)

        await self.assertNumQueries(1, count)

    async def test_cursor_queries_count(self) -> None:
        async with self.assertNumQueries(1), async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT 1")

    async def test_failure_names_the_numbers_and_the_queries(self) -> None:
        with self.assertRaisesMessage(
            AssertionError,
            "0 != 1 : 0 queries executed on database 'default', 1 expected\n"
            "Captured queries were:\n",
        ):
            async with self.assertNumQueries(1):
                pass

    def test_plain_with_is_refused(self) -> None:
        with (
            self.assertRaisesMessage(TypeError, "use `async with self.assertNumQueries(...)`"),
            self.assertNumQueries(1),
        ):
            pass
