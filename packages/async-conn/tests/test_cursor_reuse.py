"""A closed cursor is parked and reused for the connection's next one (Note [Cursor reuse]).

A reused cursor must be what a new cursor would be: the same psycopg state,
the connection's adapters as they are now, and the closed one unusable.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from django.db import InterfaceError, connections
from psycopg.adapt import Loader
from psycopg.rows import dict_row

from django_aio.conn import async_connections, run_sync
from django_aio.conn._cursor_reuse import REUSABLE

# Slots a cursor fills with objects of its own: compared by what they hold.
_OWN = {"_adapters", "_conn", "_pgconn", "__weakref__"}


@pytest.fixture(autouse=True)
async def fresh_pools() -> Any:
    yield
    await async_connections.close_pools()


def _aconnection() -> Any:
    return connections["default"].connection.aconnection


def _state(acursor: Any) -> dict[str, Any]:
    slots = {
        slot
        for klass in type(acursor).__mro__
        for slot in getattr(klass, "__slots__", ())
        if slot not in _OWN
    }
    return {slot: getattr(acursor, slot, "<unset>") for slot in sorted(slots)}


def _psycopg_cursor(django_cursor: Any) -> Any:
    # Not ``.acursor``: a psycopg cursor handed out is never reused.
    return django_cursor.cursor._acursor


class _Upper(Loader):
    def load(self, data: Any) -> Any:
        return bytes(data).decode().upper()


async def test_the_next_cursor_is_the_closed_one_renewed() -> None:
    def body() -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
        connection = connections["default"]
        with connection.cursor() as cursor:
            first = _psycopg_cursor(cursor)
            first.arraysize = 7
            cursor.execute("SELECT 1, 'one'")
            assert cursor.fetchall() == [(1, "one")]
        with connection.cursor() as cursor:
            second = _psycopg_cursor(cursor)
            reused = _state(second)
        fresh = _state(_aconnection().cursor())
        return first, second, reused, fresh

    first, second, reused, fresh = await run_sync(body)
    assert second is first
    assert reused == fresh


async def test_a_closed_cursor_stays_closed() -> None:
    def body() -> None:
        cursor = connections["default"].cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        assert cursor.closed
        with pytest.raises(InterfaceError, match="the cursor is closed"):
            cursor.execute("SELECT 2")
        with pytest.raises(InterfaceError, match="the cursor is closed"):
            cursor.fetchone()
        with connections["default"].cursor() as other:  # takes the parked one
            other.execute("SELECT 3")
            assert other.fetchone() == (3,)
        assert cursor.closed
        cursor.close()  # again: nothing happens

    await run_sync(body)


async def test_a_loader_registered_on_the_connection_reaches_the_next_cursor() -> None:
    def body() -> list[Any]:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 'a'::text")
            parked = _psycopg_cursor(cursor)
        _aconnection().adapters.register_loader("text", _Upper)
        with connections["default"].cursor() as cursor:
            assert _psycopg_cursor(cursor) is not parked
            cursor.execute("SELECT 'a'::text")
            return cursor.fetchall()

    try:
        assert await run_sync(body) == [("A",)]
    finally:
        await async_connections.close_pools()  # the connection keeps the loader


async def test_a_loader_registered_on_a_cursor_stays_with_it() -> None:
    def body() -> list[Any]:
        with connections["default"].cursor() as cursor:
            _psycopg_cursor(cursor).adapters.register_loader("text", _Upper)
            cursor.execute("SELECT 'a'::text")
            assert cursor.fetchall() == [("A",)]
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 'a'::text")
            return cursor.fetchall()

    assert await run_sync(body) == [("a",)]


async def test_a_row_factory_set_on_a_cursor_stays_with_it() -> None:
    def body() -> list[Any]:
        with connections["default"].cursor() as cursor:
            _psycopg_cursor(cursor).row_factory = dict_row
            cursor.execute("SELECT 1 AS n")
            assert cursor.fetchall() == [{"n": 1}]
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1 AS n")
            return cursor.fetchall()

    assert await run_sync(body) == [(1,)]


async def test_a_cursor_closed_mid_stream_is_not_reused() -> None:
    def body() -> list[Any]:
        cursor = connections["default"].cursor()
        rows = cursor.cursor.stream("SELECT generate_series(1, 3)")
        assert next(rows) == (1,)
        streaming = _psycopg_cursor(cursor)
        cursor.close()
        rows.close()  # ends the stream on the connection
        with connections["default"].cursor() as other:
            assert _psycopg_cursor(other) is not streaming
            other.execute("SELECT 4")
            return other.fetchall()

    assert await run_sync(body) == [(4,)]


async def test_two_open_cursors_are_two() -> None:
    def body() -> list[Any]:
        connection = connections["default"]
        with connection.cursor() as warm:
            warm.execute("SELECT 0")
        with connection.cursor() as one, connection.cursor() as two:
            assert _psycopg_cursor(one) is not _psycopg_cursor(two)
            one.execute("SELECT 1")
            two.execute("SELECT 2")
            return [one.fetchone(), two.fetchone()]

    assert await run_sync(body) == [(1,), (2,)]


async def test_an_async_cursor_closed_cannot_read_the_next_statement() -> None:
    # The async cursor API holds the psycopg cursor: it is closed, not reused.
    kept: dict[str, Any] = {}

    async def first() -> None:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT 1")
            kept["cursor"] = cursor

    await asyncio.create_task(first())

    async def second() -> list[Any]:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT 'private'")
            with pytest.raises(Exception, match="the cursor is closed"):
                await kept["cursor"].fetchall()
            rows: list[Any] = await cursor.fetchall()
            return rows

    assert await asyncio.create_task(second()) == [("private",)]


async def test_a_method_taken_before_close_fails_after() -> None:
    def body() -> None:
        cursor = connections["default"].cursor()
        cursor.execute("SELECT generate_series(1, 3)")
        fetch = cursor.cursor.fetchall  # the facade's own: fine after close
        scroll = cursor.cursor.scroll  # psycopg's, bound to its cursor
        cursor.close()
        with connections["default"].cursor() as other:
            other.execute("SELECT 4")
            with pytest.raises(psycopg.InterfaceError, match="the cursor is closed"):
                scroll(0, mode="absolute")
            with pytest.raises(psycopg.InterfaceError, match="the cursor is closed"):
                fetch()
            assert other.fetchall() == [(4,)]

    await run_sync(body)


async def test_the_connection_s_row_factory_and_cursor_class_apply_to_the_next_cursor() -> None:
    def body() -> tuple[Any, list[Any]]:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 0")
        aconnection = _aconnection()
        factory, rows = aconnection.cursor_factory, aconnection.row_factory
        aconnection.cursor_factory = psycopg.AsyncCursor
        aconnection.row_factory = dict_row
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT 1 AS n")
                return type(_psycopg_cursor(cursor)), cursor.fetchall()
        finally:
            aconnection.cursor_factory, aconnection.row_factory = factory, rows

    assert await run_sync(body) == (psycopg.AsyncCursor, [{"n": 1}])


async def test_the_last_query_is_kept_after_close() -> None:
    def body() -> tuple[Any, Any]:
        connection = connections["default"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::int", [42])
            during = connection.ops.last_executed_query(cursor, "SELECT %s::int", [42])
        after = connection.ops.last_executed_query(cursor, "SELECT %s::int", [42])
        return during, after

    during, after = await run_sync(body)
    assert during == after
    assert "42" in during


async def test_a_cursor_given_attributes_is_not_reused() -> None:
    def body() -> dict[str, Any]:
        with connections["default"].cursor() as cursor:
            _psycopg_cursor(cursor).tag = "mine"
        with connections["default"].cursor() as cursor:
            return vars(_psycopg_cursor(cursor))

    assert await run_sync(body) == {}


def test_the_locked_psycopg_is_one_reuse_was_checked_on() -> None:
    # Another psycopg parks nothing (Note [Cursor reuse]); upgrading it means
    # checking renew() against its cursors, then adding it to _CHECKED.
    assert REUSABLE, psycopg.__version__
