"""The drop-in ORM, transactions and cancellation on uvloop's event loop.

Each test runs its own uvloop loop (``asyncio.Runner``), so pools, the bridge
and the per-loop bookkeeping all live on a loop that is not asyncio's; the
data is committed and emptied afterwards by the package's fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from orm_testapp.models import Author, Book

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections

if sys.platform == "win32":  # uvloop does not exist there
    pytest.skip("uvloop is not available on Windows", allow_module_level=True)

import uvloop  # a dev dependency everywhere else

T = TypeVar("T")


def on_uvloop(main: Callable[[], Awaitable[T]]) -> T:
    async def checked() -> T:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        return await main()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(checked())


def test_queries_relations_and_concurrency() -> None:
    async def main() -> Any:
        ann = await Author.objects.acreate(name="Ann", age=40)
        await Book.objects.acreate(title="A1", author=ann, pages=120)
        found = await asyncio.gather(*(Author.objects.aget(pk=ann.pk) for _ in range(24)))
        books = [b.title async for b in Book.objects.select_related("author")]
        first = await Book.objects.select_related("author").afirst()
        assert first is not None
        return [a.name for a in found][:2], books, first.author.name

    assert on_uvloop(main) == (["Ann", "Ann"], ["A1"], "Ann")


def test_transactions_commit_and_roll_back() -> None:
    async def main() -> list[str]:
        async with async_atomic():
            await Author.objects.acreate(name="Kept")
        with contextlib.suppress(ZeroDivisionError):
            async with async_atomic():
                await Author.objects.acreate(name="Dropped")
                1 / 0  # noqa: B018
        return [a.name async for a in Author.objects.all()]

    assert on_uvloop(main) == ["Kept"]


def test_a_cancelled_query_leaves_a_clean_pool() -> None:
    async def main() -> list[int]:
        await Author.objects.acreate(name="Ann")
        started = asyncio.Event()

        async def slow() -> None:
            async with async_atomic():
                started.set()
                await Author.objects.extra(where=["pg_sleep(30) IS NOT NULL"]).acount()

        task = asyncio.create_task(slow())
        await started.wait()
        # The task is inside the query once the server shows it running.
        while not await _server_runs("pg_sleep(30)"):  # noqa: ASYNC110  (polls the server)
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert async_connections["default"].lease is None
        return await asyncio.gather(*(Author.objects.acount() for _ in range(4)))

    assert on_uvloop(main) == [1, 1, 1, 1]


async def _server_runs(fragment: str) -> bool:
    from django.db import connection

    from django_aio.conn import run_sync

    def look() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND query LIKE %s AND pid <> pg_backend_pid()",
                [f"%{fragment}%"],
            )
            return bool(cursor.fetchone()[0])

    return await run_sync(look)


def test_a_cancellation_during_commit_commits_then_raises() -> None:
    async def sql(statement: str) -> list[Any]:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute(statement)
            return await cursor.fetchall() if cursor.description else []

    async def main() -> list[Any]:
        # A deferred trigger makes the COMMIT itself take a while on the server.
        await sql("CREATE TABLE uvloop_slow_commit (v int)")
        await sql(
            "CREATE FUNCTION uvloop_slow_commit_sleep() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$"
        )
        await sql(
            "CREATE CONSTRAINT TRIGGER uvloop_slow_commit_sleeps AFTER INSERT ON "
            "uvloop_slow_commit DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            "EXECUTE FUNCTION uvloop_slow_commit_sleep()"
        )
        try:

            async def work() -> None:
                async with async_atomic():
                    await sql("INSERT INTO uvloop_slow_commit VALUES (1)")

            task = asyncio.create_task(work())
            while not await _server_runs("COMMIT"):  # noqa: ASYNC110  (polls the server)
                await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert task.cancelling() == 2
            return await sql("SELECT v FROM uvloop_slow_commit")
        finally:
            await sql("DROP TABLE uvloop_slow_commit")
            await sql("DROP FUNCTION uvloop_slow_commit_sleep()")

    # The COMMIT was neither interrupted nor cancelled on the server.
    assert on_uvloop(main) == [(1,)]
