"""A bridged Django wrapper looks and copies like the ENGINE's own one."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from django.db import connection, connections

from django_aio.conn import async_connections, run_sync
from django_aio.conn.backends.postgresql.base import DatabaseWrapper


async def test_repr_reads_as_the_engines_wrapper() -> None:
    # Django's tests (and logs) show repr(connection); inside run_sync it is
    # the bridged wrapper, which must read the same.
    inside = await run_sync(lambda: repr(connections["default"]))
    assert inside == "<DatabaseWrapper vendor='postgresql' alias='default'>"


# Tells the two connections apart by backend pid: behind a transaction pooler
# two client connections may share one server session.
@pytest.mark.direct_server
async def test_copy_inside_the_bridge_is_a_separate_async_connection() -> None:
    started = asyncio.Event()
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        await started.wait()
        while True:
            ticks += 1
            await asyncio.sleep(0)

    def copy_and_use() -> Any:
        copied = connection.copy()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                bridged_pid = cursor.fetchone()[0]
            with copied.cursor() as cursor:
                started.set()
                cursor.execute("SELECT pg_backend_pid(), pg_sleep(0.05)")
                copied_pid = cursor.fetchone()[0]
                seen = ticks  # other tasks ran while it waited: async I/O
            return copied, bridged_pid, copied_pid, seen
        finally:
            copied.close()

    ticker = asyncio.create_task(ticking())
    try:
        copied, bridged_pid, copied_pid, seen = await run_sync(copy_and_use)
    finally:
        ticker.cancel()
    assert isinstance(copied, DatabaseWrapper)
    assert repr(copied) == "<DatabaseWrapper vendor='postgresql' alias='default'>"
    assert copied_pid != bridged_pid
    assert seen > 0
    assert copied.connection is None


def test_copy_outside_the_bridge_is_djangos() -> None:
    copied = connection.copy()
    try:
        assert type(copied) is DatabaseWrapper
    finally:
        copied.close()


def _initialized() -> list[str]:
    return [conn.alias for conn in connections.all(initialized_only=True)]


def _used_then_initialized(alias: str) -> list[str]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
    return _initialized()


async def test_initialized_only_lists_what_the_unit_holds() -> None:
    # Django asks this with hasattr() on the thread-local; a lookup there
    # would take a connection of every alias.
    assert await run_sync(_initialized) == []
    assert await run_sync(_used_then_initialized, "other") == ["other"]
    every = await run_sync(lambda: [conn.alias for conn in connections.all()])
    assert every == ["default", "other"]


async def test_initialized_only_includes_what_the_task_holds() -> None:
    async with async_connections["default"].cursor():
        assert await run_sync(_initialized) == ["default"]
        assert await run_sync(_used_then_initialized, "other") == ["default", "other"]


# The maintenance database is a server's, not a pooler's.
@pytest.mark.direct_server
async def test_nodb_cursor_inside_the_bridge_reaches_the_maintenance_database() -> None:
    # Django's database creation code; the connection it opens is async too:
    # other tasks run while it waits for the server.
    started = asyncio.Event()
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        await started.wait()
        while True:
            ticks += 1
            await asyncio.sleep(0)

    def nodb() -> tuple[str, Any, int, bool]:
        with connection._nodb_cursor() as cursor:
            started.set()
            cursor.execute("SELECT current_database(), pg_sleep(0.05)")
            name = cursor.fetchone()[0]
            seen = ticks
            db = cursor.db
        return name, db.settings_dict["NAME"], seen, db.connection is None

    ticker = asyncio.create_task(ticking())
    try:
        name, setting, seen, closed = await run_sync(nodb)
    finally:
        ticker.cancel()
    assert (name, setting, closed) == ("postgres", None, True)
    assert seen > 0


# Terminates its own server session by backend pid.
@pytest.mark.direct_server
async def test_a_failed_health_check_inside_a_unit_reconnects() -> None:
    # The pool checks a connection when it hands it out; inside a unit, as in
    # Django, the first query after close_if_unusable_or_obsolete() (a request
    # boundary) checks it again and replaces it if the check fails.
    settings_dict = connections.settings["default"]
    saved = {key: settings_dict[key] for key in ("CONN_HEALTH_CHECKS", "CONN_MAX_AGE")}
    settings_dict.update(CONN_HEALTH_CHECKS=True, CONN_MAX_AGE=None)

    def pid() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return int(cursor.fetchone()[0])

    def work() -> tuple[int, int]:
        connection.close()  # the next connect reads the settings above
        first = pid()
        connection.close_if_unusable_or_obsolete()
        other = connection.copy()
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [first])
        finally:
            other.close()
        return first, pid()

    try:
        first, second = await run_sync(work)
    finally:
        settings_dict.update(saved)
        await async_connections.close_pools()
    assert second != first


async def test_the_serialized_test_database_is_kept_for_the_alias() -> None:
    # Django's test runner stores it on the test thread's connection; test
    # cases with serialized_rollback read it from connections[alias], which
    # in the bridge is a pooled wrapper.
    def serialized() -> object:
        return getattr(connections["default"], "_test_serialized_contents", None)

    thread_connection = connections["default"]
    saved = getattr(thread_connection, "_test_serialized_contents", None)
    try:
        thread_connection._test_serialized_contents = "[]"
        assert await run_sync(serialized) == "[]"
        # Code run in another context makes a wrapper of its own in this thread.
        contextvars.Context().run(lambda: connections["default"])
        # A task with a context of its own (a test driver's, a server's) too.
        fresh = asyncio.get_running_loop().create_task(
            run_sync(serialized), context=contextvars.Context()
        )
        assert await fresh == "[]"
        del thread_connection._test_serialized_contents
        assert await run_sync(serialized) is None
    finally:
        if saved is not None:
            thread_connection._test_serialized_contents = saved
