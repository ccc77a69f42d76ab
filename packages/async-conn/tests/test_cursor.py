"""async_connections[alias].cursor(): the awaitable cursor API."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, ProgrammingError

from django_aio.conn import AsyncCursor, async_connections

pytestmark = pytest.mark.usefixtures("scratch_table")


async def test_execute_and_fetch() -> None:
    async with async_connections["default"].cursor() as cursor:
        assert isinstance(cursor, AsyncCursor)
        returned = await cursor.execute("SELECT generate_series(1, %s) AS n", [5])
        assert returned is cursor
        assert cursor.rowcount == 5
        assert [column.name for column in cursor.description] == ["n"]
        assert await cursor.fetchone() == (1,)
        assert await cursor.fetchmany(2) == [(2,), (3,)]
        assert await cursor.fetchall() == [(4,), (5,)]
        assert await cursor.fetchone() is None


async def test_executemany_and_async_iteration() -> None:
    async with async_connections["default"].cursor() as cursor:
        await cursor.executemany("INSERT INTO scratch (value) VALUES (%s)", [(1,), (2,), (3,)])
        await cursor.execute("SELECT value FROM scratch ORDER BY value")
        assert [row async for row in cursor] == [(1,), (2,), (3,)]


async def test_stream() -> None:
    async with async_connections["default"].cursor() as cursor:
        rows = [row async for row in cursor.stream("SELECT generate_series(1, 4)")]
    assert rows == [(1,), (2,), (3,), (4,)]


async def test_copy_in_and_out() -> None:
    async with async_connections["default"].cursor() as cursor:
        async with cursor.copy("COPY scratch (value) FROM STDIN") as copy:
            for value in (10, 20, 30):
                await copy.write_row((value,))
        chunks = []
        async with cursor.copy("COPY (SELECT value FROM scratch ORDER BY value) TO STDOUT") as copy:
            async for chunk in copy:
                chunks.append(bytes(chunk))
    assert b"".join(chunks) == b"10\n20\n30\n"


async def test_callproc() -> None:
    async with async_connections["default"].cursor() as cursor:
        await cursor.callproc("abs", [-4])
        assert await cursor.fetchone() == (4,)


async def test_errors_are_django_errors_and_the_block_recovers() -> None:
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("INSERT INTO scratch (value) VALUES (1)")
        with pytest.raises(IntegrityError, match="duplicate key value"):
            await cursor.execute("INSERT INTO scratch (value) VALUES (1)")
        with pytest.raises(ProgrammingError, match='relation "missing" does not exist'):
            await cursor.execute("SELECT * FROM missing")
        # Autocommit: each failure ended its own statement, the cursor goes on.
        await cursor.execute("SELECT count(*) FROM scratch")
        assert await cursor.fetchone() == (1,)


async def test_cursor_is_closed_after_the_block() -> None:
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT 1")
    assert cursor.closed


async def test_execute_wrapper_and_queries() -> None:
    conn = async_connections["default"]
    seen: list[str] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    conn.force_debug_cursor = True
    try:
        with conn.execute_wrapper(wrapper):
            async with conn.cursor() as cursor:
                await cursor.execute("SELECT %s::int", [42])
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT 'after'")
    finally:
        conn.force_debug_cursor = False
    assert seen == ["SELECT %s::int"]
    assert [query["sql"] for query in conn.queries] == ["SELECT 42::int", "SELECT 'after'"]


async def test_queries_are_per_task() -> None:
    import asyncio

    async def run(n: int) -> list[str]:
        conn = async_connections["default"]
        conn.force_debug_cursor = True
        async with conn.cursor() as cursor:
            await cursor.execute(f"SELECT {n}")
        return [query["sql"] for query in conn.queries]

    assert await asyncio.gather(run(1), run(2)) == [["SELECT 1"], ["SELECT 2"]]


async def test_on_commit_outside_a_transaction_runs_at_once() -> None:
    ran: list[str] = []

    async def async_callback() -> None:
        ran.append("async")

    conn = async_connections["default"]
    await conn.on_commit(lambda: ran.append("sync"))
    await conn.on_commit(async_callback)
    assert ran == ["sync", "async"]
    with pytest.raises(TypeError, match=r"^on_commit\(\) needs a callable, got str 'nope'\.$"):
        await conn.on_commit("nope")  # type: ignore[arg-type]
