"""conn.cursor(name=...): named (server-side) cursors held for the block."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from django.db import InternalError, OperationalError, ProgrammingError

from django_aio.conn import AsyncNamedCursor, async_connections

from .conftest import backend_pid

SERIES = "SELECT generate_series(1, %s) AS n"


async def server_cursors() -> list[tuple[Any, ...]]:
    """The named cursors open on the task's connection (held or next from the pool)."""
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute(
            "SELECT name, is_holdable, is_scrollable FROM pg_cursors ORDER BY name"
        )
        return list(await cursor.fetchall())


async def test_fetch_and_iterate_outside_a_transaction() -> None:
    conn = async_connections["default"]
    async with conn.cursor(name="numbers") as cursor:
        assert isinstance(cursor, AsyncNamedCursor)
        assert conn.lease is not None
        returned = await cursor.execute(SERIES, [10])
        assert returned is cursor
        assert cursor.name == "numbers"
        # Django's rule: outside a transaction the cursor must be WITH HOLD.
        assert cursor.withhold is True
        assert await server_cursors() == [("numbers", True, False)]
        assert await cursor.fetchone() == (1,)
        assert await cursor.fetchmany(3) == [(2,), (3,), (4,)]
        cursor.itersize = 2
        assert cursor.itersize == 2
        assert [n async for (n,) in cursor] == [5, 6, 7, 8, 9, 10]
        pid = await backend_pid()
    assert cursor.closed
    assert conn.lease is None
    assert await backend_pid() == pid  # the same connection, back in the pool
    assert await server_cursors() == []


async def test_scroll_both_ways_when_scrollable() -> None:
    async with async_connections["default"].cursor(name="s", scrollable=True) as cursor:
        assert cursor.scrollable is True
        await cursor.execute(SERIES, [10])
        await cursor.scroll(5, mode="absolute")
        assert await cursor.fetchone() == (6,)
        await cursor.scroll(-3)
        assert await cursor.fetchone() == (4,)
        await cursor.scroll(2, mode="relative")
        assert await cursor.fetchall() == [(7,), (8,), (9,), (10,)]
        assert await server_cursors() == [("s", True, True)]


async def test_scrolling_back_a_forward_only_cursor_is_refused() -> None:
    async with async_connections["default"].cursor(name="f", scrollable=False) as cursor:
        assert cursor.scrollable is False
        await cursor.execute(SERIES, [5])
        await cursor.fetchmany(3)
        with pytest.raises(OperationalError, match="cursor can only scan forward"):
            await cursor.scroll(-2)
        with pytest.raises(ValueError, match="bad mode"):
            await cursor.scroll(1, mode="sideways")  # type: ignore[arg-type]


async def test_in_a_transaction_the_cursor_is_not_held_and_shares_it() -> None:
    conn = async_connections["default"]
    await conn.set_autocommit(False)
    try:
        async with conn.cursor() as plain:
            await plain.execute("CREATE TEMP TABLE t (n int) ON COMMIT DROP")
            await plain.execute("INSERT INTO t SELECT generate_series(1, 3)")
        async with conn.cursor(name="tx") as cursor:
            assert cursor.withhold is False
            await cursor.execute("SELECT n FROM t ORDER BY n")  # sees the uncommitted rows
            assert [n async for (n,) in cursor] == [1, 2, 3]
        assert await server_cursors() == []
    finally:
        await conn.rollback()
        await conn.set_autocommit(True)


async def test_withhold_false_outside_a_transaction_fails_on_the_server() -> None:
    async with async_connections["default"].cursor(name="nohold", withhold=False) as cursor:
        with pytest.raises(InternalError, match="can only be used in transaction blocks"):
            await cursor.execute(SERIES, [3])
    assert await server_cursors() == []


async def test_closed_when_the_block_fails() -> None:
    with pytest.raises(ProgrammingError, match='relation "missing" does not exist'):
        async with async_connections["default"].cursor(name="bad") as cursor:
            await cursor.execute("SELECT * FROM missing")
    assert cursor.closed
    with pytest.raises(ZeroDivisionError):
        async with async_connections["default"].cursor(name="boom") as cursor:
            await cursor.execute(SERIES, [3])
            1 / 0  # noqa: B018
    assert cursor.closed
    assert async_connections["default"].lease is None
    assert await server_cursors() == []


async def test_closed_when_the_task_is_cancelled() -> None:
    opened = asyncio.Event()
    seen: list[AsyncNamedCursor] = []

    async def reader() -> None:
        async with async_connections["default"].cursor(name="cancelled") as cursor:
            await cursor.execute(SERIES, [100])
            seen.append(cursor)
            opened.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(reader())
    await opened.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen[0].closed
    assert await server_cursors() == []


async def test_execute_goes_through_django_wrappers() -> None:
    conn = async_connections["default"]
    seen: list[str] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with conn.execute_wrapper(spy):
        async with conn.cursor(name="w") as cursor:
            await cursor.execute(SERIES, [2])
            assert await cursor.fetchall() == [(1,), (2,)]
    assert seen == [SERIES]


async def test_a_name_is_required() -> None:
    message = "a named cursor needs a non-empty str name, got ''."
    with pytest.raises(ValueError, match=exactly(message)):
        async with async_connections["default"].cursor(name=""):
            pass
    assert async_connections["default"].lease is None


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"


async def test_a_unit_that_leaves_a_named_cursor_open_gives_back_a_clean_connection(
    database_options: dict[str, Any],
) -> None:
    # Django's chunked_cursor() left unfinished in run_sync(): the pool
    # closes the cursor before the connection goes back, and keeps it.
    from django.db import connections

    from django_aio.conn import run_sync

    database_options["pool"] = {"min_size": 1, "max_size": 1}

    def leave_open() -> Any:
        cursor = connections["default"].chunked_cursor()
        cursor.execute(SERIES, [1000])
        return cursor.fetchone()

    try:
        pid = await backend_pid()
        assert await run_sync(leave_open) == (1,)
        assert await server_cursors() == []
        assert await backend_pid() == pid
    finally:
        await async_connections.close_pools()
