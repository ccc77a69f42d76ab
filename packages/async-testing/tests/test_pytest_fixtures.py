"""The pytest plugin's fixtures and marker, in this suite (pytest-asyncio)."""

from __future__ import annotations

import asyncio

import pytest
from django.test.testcases import DatabaseOperationForbidden
from testing_testapp.models import Author

from django_aio.atomic import async_atomic, on_commit
from django_aio.conn import ConnectionOwnedByAnotherTask, async_connections, run_sync
from django_aio.testing import CaptureQueriesContext, RollbackDatabase, TransactionalDatabase


async def count_authors() -> int:
    return await run_sync(Author.objects.count)


@pytest.fixture
async def tolkien(aio_db: RollbackDatabase) -> Author:
    return await run_sync(Author.objects.create, name="Tolkien")


async def test_fixture_data_is_visible_in_the_test(tolkien: Author) -> None:
    assert await run_sync(lambda: Author.objects.get().name) == "Tolkien"


async def test_and_rolled_back_after_it(aio_db: RollbackDatabase) -> None:
    assert await count_authors() == 0


async def test_children_share_the_test_connection(tolkien: Author) -> None:
    assert await asyncio.gather(count_authors(), count_authors()) == [1, 1]


@pytest.mark.aio_db
async def test_the_marker_gives_a_rollback_database() -> None:
    await run_sync(Author.objects.create, name="marked")
    assert async_connections["default"].lease is None  # borrowed per unit, not held
    assert await count_authors() == 1


@pytest.mark.aio_db(transaction=True)
async def test_the_marker_gives_a_transactional_database() -> None:
    await run_sync(Author.objects.create, name="committed")
    async with async_connections.independent_connection():
        assert await count_authors() == 1  # committed: another connection sees it


async def test_transactional_database_was_flushed(
    aio_transactional_db: TransactionalDatabase,
) -> None:
    assert await count_authors() == 0


async def test_assert_num_queries_counts_every_task(aio_db: RollbackDatabase) -> None:
    async with aio_db.assert_num_queries(2):
        await asyncio.gather(count_authors(), count_authors())


async def test_assert_num_queries_failure_lists_the_queries(aio_db: RollbackDatabase) -> None:
    with pytest.raises(AssertionError) as failure:
        async with aio_db.assert_num_queries(2):
            await count_authors()
    assert str(failure.value).startswith(
        "1 != 2 : 1 queries executed on database 'default', 2 expected\n"
        "Captured queries were:\n"
        '1. SELECT COUNT(*) AS "__count" FROM "testing_testapp_author"'
    )


async def test_assert_num_queries_needs_async_with(aio_db: RollbackDatabase) -> None:
    with (
        pytest.raises(TypeError, match=r"use `async with self\.assertNumQueries"),
        aio_db.assert_num_queries(1),
    ):
        pass


async def test_assert_num_queries_on_an_unused_alias(aio_db: RollbackDatabase) -> None:
    with pytest.raises(ValueError, match="database 'other' is not used by this test"):
        aio_db.assert_num_queries(1, using="other")


async def test_capture_queries_counts_every_task(aio_db: RollbackDatabase) -> None:
    async with aio_db.capture_queries() as ctx:
        await asyncio.gather(count_authors(), count_authors())
    assert len(ctx) == 2
    assert ctx[0]["sql"] == 'SELECT COUNT(*) AS "__count" FROM "testing_testapp_author"'


async def test_capture_queries_of_the_calling_task(
    aio_transactional_db: TransactionalDatabase,
) -> None:
    async with aio_transactional_db.capture_queries() as ctx:
        await count_authors()
    assert [q["sql"] for q in ctx.captured_queries] == [
        'SELECT COUNT(*) AS "__count" FROM "testing_testapp_author"'
    ]


async def test_task_capture_queries_context_in_a_rollback_test(aio_db: RollbackDatabase) -> None:
    seen: list[str] = []

    def spy(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        seen.append(sql)
        return execute(sql, params, many, context)

    conn = async_connections["default"]
    with conn.execute_wrapper(spy):
        async with CaptureQueriesContext(conn) as ctx:
            await count_authors()
    assert len(ctx) == 1
    assert len(seen) == 1


async def test_capture_queries_on_an_unused_alias(aio_db: RollbackDatabase) -> None:
    with pytest.raises(ValueError, match="database 'other' is not used by this test"):
        aio_db.capture_queries(using="other")


async def test_transactional_assert_num_queries(
    aio_transactional_db: TransactionalDatabase,
) -> None:
    async with aio_transactional_db.assert_num_queries(1):
        await count_authors()


async def test_capture_on_commit_callbacks(aio_db: RollbackDatabase) -> None:
    ran: list[str] = []
    async with aio_db.capture_on_commit_callbacks(execute=True) as callbacks:
        async with async_atomic():
            await on_commit(lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]
    assert len(callbacks) == 1


async def test_on_commit_runs_when_the_outermost_block_commits(aio_db: RollbackDatabase) -> None:
    ran: list[str] = []
    async with async_atomic():
        await on_commit(lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]


async def test_async_atomic_in_the_test_pins_its_connection(aio_db: RollbackDatabase) -> None:
    async with async_atomic():
        with pytest.raises(ConnectionOwnedByAnotherTask, match="independent_connection"):
            await asyncio.create_task(count_authors())


async def test_other_aliases_are_refused(aio_db: RollbackDatabase) -> None:
    with pytest.raises(DatabaseOperationForbidden) as failure:
        await run_sync(lambda: Author.objects.using("other").count())
    assert str(failure.value) == (
        "Database queries to 'other' are not allowed in this test. Add 'other' to the "
        "test's databases (@pytest.mark.aio_db(databases=[...])) to ensure proper test "
        "isolation and silence this failure."
    )


@pytest.mark.aio_db(databases="__all__")
async def test_the_marker_chooses_the_databases() -> None:
    await run_sync(lambda: Author.objects.using("other").create(name="other"))
    assert await run_sync(lambda: Author.objects.using("other").count()) == 1
