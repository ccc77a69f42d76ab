"""A task's execute wrappers and query log work in both test classes, as outside tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from django.db import ProgrammingError, connections
from django.db.models.signals import post_save
from django.test import override_settings
from testing_testapp.models import Author, Book

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections, run_sync
from django_aio.testing import AsyncioTestCase, AsyncioTransactionTestCase, CaptureQueriesContext


def _spy(seen: list[str]) -> Callable[..., Any]:
    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    return wrapper


class _Checks:
    """The same tests for both classes (mixed in below)."""

    async def test_execute_wrapper_sees_the_task_queries(self) -> None:
        conn = async_connections["default"]
        seen: list[str] = []
        with conn.execute_wrapper(_spy(seen)):
            await run_sync(Author.objects.create, name="Le Guin")
            assert await run_sync(Author.objects.count) == 1
        await run_sync(Author.objects.count)  # after the block: not seen
        assert len(seen) == 2
        assert seen[0].startswith('INSERT INTO "testing_testapp_author"')
        assert seen[1].startswith("SELECT COUNT(*)")

    async def test_execute_wrapper_can_block_queries(self) -> None:
        def blocker(*args: Any) -> Any:
            raise RuntimeError("no database access here")

        conn = async_connections["default"]
        with conn.execute_wrapper(blocker), pytest.raises(RuntimeError, match="no database access"):
            await run_sync(Author.objects.count)
        assert await run_sync(Author.objects.count) == 0  # the test's queries still work

    async def test_execute_wrapper_is_per_task(self) -> None:
        seen: list[str] = []
        other: list[str] = []

        async def elsewhere() -> None:
            await run_sync(Author.objects.filter(name="other").exists)
            other.append("done")

        with async_connections["default"].execute_wrapper(_spy(seen)):
            await asyncio.create_task(elsewhere())
            await run_sync(Author.objects.filter(name="mine").exists)
        assert other == ["done"]
        assert len(seen) == 1
        assert "LIMIT 1" in seen[0]

    async def test_async_receivers_in_a_block_use_the_owner_wrappers(self) -> None:
        # In production the block's owner lends its connection, with its
        # execute wrappers, to the receivers it waits on.
        seen: list[str] = []

        async def receiver(sender: Any, instance: Author, **kwargs: Any) -> None:
            await run_sync(Book.objects.filter(title=instance.name).exists)

        post_save.connect(receiver, sender=Author)
        try:
            with async_connections["default"].execute_wrapper(_spy(seen)):
                async with async_atomic():
                    await run_sync(Author.objects.create, name="Le Guin")
                await run_sync(Author.objects.create, name="Tolkien")
        finally:
            post_save.disconnect(receiver, sender=Author)
        seen = [sql for sql in seen if "SAVEPOINT" not in sql]  # the test's own blocks
        inserts = [sql for sql in seen if sql.startswith("INSERT")]
        selects = [sql for sql in seen if sql.startswith("SELECT")]
        assert len(inserts) == 2
        # Outside the block the receiver's task takes a connection of its own.
        assert len(selects) == 1
        assert 'FROM "testing_testapp_book"' in selects[0]

    async def test_force_debug_cursor_logs_the_task_queries(self) -> None:
        conn = async_connections["default"]
        conn.force_debug_cursor = True
        try:
            await run_sync(Author.objects.filter(name="Tolkien").exists)
        finally:
            conn.force_debug_cursor = False
        await run_sync(Author.objects.count)  # not logged any more
        assert len(conn.queries) == 1
        assert "'Tolkien'" in conn.queries[0]["sql"]
        assert float(conn.queries[0]["time"]) >= 0

    @override_settings(DEBUG=True)
    async def test_debug_logs_the_task_queries(self) -> None:
        conn = async_connections["default"]

        async def elsewhere() -> list[dict[str, Any]]:
            await run_sync(Author.objects.exists)
            return async_connections["default"].queries

        child_queries = await asyncio.create_task(elsewhere())
        await run_sync(Author.objects.count)
        assert [q["sql"] for q in conn.queries] == [
            'SELECT COUNT(*) AS "__count" FROM "testing_testapp_author"'
        ]
        assert len(child_queries) == 1
        assert "LIMIT 1" in child_queries[0]["sql"]

    async def test_failed_queries_are_logged_too(self) -> None:
        conn = async_connections["default"]
        conn.force_debug_cursor = True
        try:
            async with conn.cursor() as cursor:
                with pytest.raises(ProgrammingError, match="no_such_table"):
                    await cursor.execute("SELECT * FROM no_such_table")
        finally:
            conn.force_debug_cursor = False
        assert [q["sql"] for q in conn.queries] == ["SELECT * FROM no_such_table"]

    async def test_executemany_is_logged_as_django_logs_it(self) -> None:
        conn = async_connections["default"]
        sql = "INSERT INTO testing_testapp_author (name) VALUES (%s)"
        async with CaptureQueriesContext(conn) as ctx, conn.cursor() as cursor:
            await cursor.executemany(sql, [("a",), ("b",)])
        assert [q["sql"] for q in ctx] == [f"2 times: {sql}"]

    async def test_capture_queries_context(self) -> None:
        conn = async_connections["default"]
        async with CaptureQueriesContext(conn) as ctx:
            await run_sync(Author.objects.create, name="Le Guin")
            assert len(ctx) == 1  # readable while the block runs
            assert await run_sync(Author.objects.filter(name="Le Guin").count) == 1
        await run_sync(Author.objects.count)  # after the block: not captured
        assert len(ctx) == 2
        assert ctx[0]["sql"].startswith('INSERT INTO "testing_testapp_author"')
        assert "'Le Guin'" in ctx.captured_queries[1]["sql"]
        assert [q["sql"] for q in ctx] == [q["sql"] for q in ctx.captured_queries]
        assert conn.force_debug_cursor is False  # restored

    async def test_capture_queries_context_sees_only_the_task(self) -> None:
        async def elsewhere() -> None:
            await run_sync(Author.objects.exists)

        with CaptureQueriesContext(async_connections["default"]) as ctx:  # plain with works
            await asyncio.create_task(elsewhere())
            await run_sync(Author.objects.count)
        assert [q["sql"] for q in ctx] == [
            'SELECT COUNT(*) AS "__count" FROM "testing_testapp_author"'
        ]


class RollbackCaseInstrumentation(_Checks, AsyncioTestCase):
    async def test_the_shared_connection_log_is_untouched(self) -> None:
        # assertNumQueries counts every task on the test's own connection;
        # a task's log is separate from it.
        async with self.assertNumQueries(1):
            await run_sync(Author.objects.count)
        assert len(async_connections["default"].queries) == 0


class TransactionCaseInstrumentation(_Checks, AsyncioTransactionTestCase):
    pass


def test_capture_queries_context_needs_a_connection() -> None:
    with pytest.raises(TypeError) as error:
        CaptureQueriesContext("default")
    assert str(error.value) == (
        "CaptureQueriesContext() needs a connection, e.g. async_connections['default']; "
        "got 'default', which has no 'force_debug_cursor'."
    )


def test_sync_wrapper_is_left_alone() -> None:
    # The dispatcher lives only on the test's pooled connection.
    assert connections["default"].execute_wrappers == []
