"""Pooling: one pool per (alias, loop), cancellation, exhaustion, configuration."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connections
from django.db.utils import ConnectionDoesNotExist

from django_aio.conn import DEFAULT_POOL_OPTIONS, PoolTimeout, async_connections, run_sync

from .conftest import backend_pid


async def test_cancelled_query_is_cancelled_and_the_connection_reused(
    database_options: dict[str, Any],
) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 1}
    try:
        pid = await backend_pid()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                async with async_connections["default"].cursor() as cursor:
                    await cursor.execute("SELECT pg_sleep(30)")
        # Same (only) pooled connection, idle and usable, and the server is
        # not running the sleep any more.
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT pg_backend_pid(), pg_current_xact_id_if_assigned()")
            assert await cursor.fetchone() == (pid, None)
            await cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'"
                " AND state = 'active'"
            )
            assert await cursor.fetchone() == (0,)
    finally:
        await async_connections.close_pools()


async def test_cancelled_unit_inside_a_transaction_rolls_back(
    database_options: dict[str, Any], scratch_table: str
) -> None:
    from django.db import transaction

    database_options["pool"] = {"min_size": 1, "max_size": 1}
    sleeping = asyncio.Event()

    def insert_then_sleep() -> None:
        with transaction.atomic(), connections["default"].cursor() as cursor:
            cursor.execute("INSERT INTO scratch (value) VALUES (1)")
            # The greenlet runs on the loop's thread; the task's next wait is
            # on the query below, so that is where the cancel lands.
            sleeping.set()
            cursor.execute("SELECT pg_sleep(30)")

    try:
        task = asyncio.create_task(run_sync(insert_then_sleep))
        await asyncio.wait_for(sleeping.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        def check() -> tuple[bool, int]:
            wrapper = connections["default"]
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM scratch")
                (count,) = cursor.fetchone()
            return wrapper.in_atomic_block, int(count)

        assert await run_sync(check) == (False, 0)
    finally:
        await async_connections.close_pools()


async def test_200_tasks_over_a_pool_of_10_get_their_own_results(
    database_options: dict[str, Any],
) -> None:
    database_options["pool"] = {"min_size": 2, "max_size": 10}

    async def task(n: int) -> tuple[int, int]:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT %s::int, pg_sleep(0.001)::text", [n])
            first = await cursor.fetchone()
            await cursor.execute("SELECT %s::int * 2", [n])
            second = await cursor.fetchone()
        return first[0], second[0]

    def unit(n: int) -> int:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT %s::int + 1000", [n])
            (value,) = cursor.fetchone()
        return int(value)

    try:
        results = await asyncio.gather(*(task(n) for n in range(200)))
        units = await asyncio.gather(*(run_sync(unit, n) for n in range(200)))
    finally:
        await async_connections.close_pools()
    assert results == [(n, n * 2) for n in range(200)]
    assert units == [n + 1000 for n in range(200)]


# Counts server sessions by backend pid: behind a pooler they are the pooler's.
@pytest.mark.direct_server
async def test_a_pool_of_10_never_holds_more_than_10_sessions(
    database_options: dict[str, Any],
) -> None:
    database_options["pool"] = {"min_size": 2, "max_size": 10, "timeout": 30.0}
    holding: set[int] = set()  # server pids of the sessions held right now
    seen: set[int] = set()
    most = 0
    full = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        nonlocal most
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT pg_backend_pid()")
            (pid,) = await cursor.fetchone()
            assert pid not in holding, "two tasks were given the same session at once"
            holding.add(pid)
            seen.add(pid)
            most = max(most, len(holding))
            if len(holding) == 10:
                full.set()
            await release.wait()
            holding.discard(pid)

    holders = [asyncio.create_task(hold()) for _ in range(25)]
    try:
        await asyncio.wait_for(full.wait(), 10)
        # The other 15 are waiting for the pool. A pool that did not bound
        # itself would have opened sessions for them in this time.
        await asyncio.sleep(0.3)
        assert len(holding) == 10
        assert sum(task.done() for task in holders) == 0
        release.set()
        await asyncio.wait_for(asyncio.gather(*holders), 10)
        assert most == 10
        assert len(seen) <= 10
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [sorted(seen)]
            )
            (alive,) = await cursor.fetchone()
        assert alive == len(seen)
    finally:
        release.set()
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        await async_connections.close_pools()


async def test_pool_exhausted_raises_a_pool_timeout(database_options: dict[str, Any]) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 2, "timeout": 0.3}
    holding = asyncio.Event()
    release = asyncio.Event()
    held = 0

    async def hold() -> None:
        nonlocal held
        async with async_connections["default"].cursor():
            held += 1
            if held == 2:  # both connections are taken
                holding.set()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    try:
        await asyncio.wait_for(holding.wait(), 5)
        with pytest.raises(PoolTimeout) as caught:
            await backend_pid()
        assert isinstance(caught.value, OperationalError)
        message = str(caught.value)
        assert message.startswith("couldn't get a connection for database 'default' after 0.3")
        assert "all 2 connections of its pool are in use" in message
        assert "Raise OPTIONS['pool']['max_size'] or OPTIONS['pool']['timeout']" in message
        assert caught.value.max_size == 2
        assert caught.value.waited >= 0.3
    finally:
        release.set()
        await asyncio.gather(*holders)
        await async_connections.close_pools()


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        (
            "big",
            "DATABASES['default']['OPTIONS']['pool'] must be True or a dict of psycopg_pool "
            "options (e.g. {'min_size': 1, 'max_size': 10, 'timeout': 30.0}), got str 'big'.",
        ),
        (
            {"max_size": "10"},
            "DATABASES['default']['OPTIONS']['pool']['max_size'] must be int, got str '10'.",
        ),
        (
            {"timeout": True},
            "DATABASES['default']['OPTIONS']['pool']['timeout'] must be int or float, "
            "got bool True.",
        ),
        (
            {"maxsize": 3},
            "DATABASES['default']['OPTIONS']['pool'] has an unknown option 'maxsize'; the "
            "options are: max_idle, max_lifetime, max_size, max_waiting, min_size, name, "
            "num_workers, reconnect_timeout, timeout.",
        ),
        (
            {"check": print},
            "DATABASES['default']['OPTIONS']['pool']['check'] is a callback for Django's sync "
            "pool; django_aio's async pool cannot call it. Remove it (set CONN_HEALTH_CHECKS "
            "= True to check connections before use).",
        ),
        (
            {"min_size": 5, "max_size": 2},
            "DATABASES['default']['OPTIONS']['pool'] needs 0 <= min_size <= max_size and "
            "max_size >= 1, got min_size=5 and max_size=2.",
        ),
    ],
)
async def test_bad_pool_options_are_improperly_configured(
    database_options: dict[str, Any], pool: object, message: str
) -> None:
    database_options["pool"] = pool
    with pytest.raises(ImproperlyConfigured) as caught:
        await backend_pid()
    assert str(caught.value) == message


async def test_min_size_alone_raises_max_size(database_options: dict[str, Any]) -> None:
    database_options["pool"] = {"min_size": 12}
    try:
        assert await backend_pid() > 0
    finally:
        await async_connections.close_pools()
    assert DEFAULT_POOL_OPTIONS == {"min_size": 1, "max_size": 10, "timeout": 30.0}


async def test_unknown_alias() -> None:
    with pytest.raises(ConnectionDoesNotExist, match=r"The connection 'nope' doesn't exist\."):
        async_connections["nope"]

    def use_unknown() -> None:
        connections["nope"].cursor()

    with pytest.raises(ConnectionDoesNotExist, match=r"The connection 'nope' doesn't exist\."):
        await run_sync(use_unknown)


async def test_alias_with_another_engine_is_refused() -> None:
    settings_dict = dict(connections.settings["default"])
    settings_dict.update(ENGINE="django.db.backends.postgresql", OPTIONS={})
    connections.settings["stock"] = settings_dict
    try:
        with pytest.raises(ImproperlyConfigured) as caught:
            async with async_connections["stock"].cursor():
                pass
    finally:
        del connections.settings["stock"]
    assert str(caught.value) == (
        "database 'stock' uses ENGINE 'django.db.backends.postgresql'; async connections "
        "need ENGINE 'django_aio.conn.backends.postgresql' (or a subclass of its "
        "DatabaseWrapper)."
    )


async def test_second_alias_has_its_own_pool() -> None:
    async with async_connections["other"].cursor() as cursor:
        await cursor.execute("SELECT current_database()")
        (name,) = await cursor.fetchone()
    assert name.startswith("test_django_aio_other_")


def _server_sessions() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        (count,) = cursor.fetchone()
    return int(count)


def _settles_at(expected: int) -> bool:
    # A server backend leaves pg_stat_activity a moment after its client
    # disconnects: wait for the count to settle rather than read it once.
    for _ in range(100):
        if _server_sessions() == expected:
            return True
        time.sleep(0.05)
    return False


def _stable_sessions() -> int:
    previous = _server_sessions()
    for _ in range(100):
        time.sleep(0.05)
        current = _server_sessions()
        if current == previous:
            return current
        previous = current
    return previous


@pytest.mark.direct_server
def test_two_event_loops_one_after_the_other(database_options: dict[str, Any]) -> None:
    # One connection per pool, so none is still being opened at shutdown.
    database_options["pool"] = {"min_size": 1, "max_size": 1}
    before = _stable_sessions()

    async def main() -> int:
        return await backend_pid()

    first = asyncio.run(main())
    second = asyncio.run(main())
    assert first != second  # each loop has its own pool
    # asyncio.run() cancels the pool closer at shutdown: nothing stays connected.
    assert _settles_at(before), f"{_server_sessions()} sessions, expected {before}"


async def test_async_connections_need_a_task() -> None:
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []

    def callback() -> None:
        try:
            async_connections["default"]
        except RuntimeError as exc:
            errors.append(exc)

    loop.call_soon(callback)
    await asyncio.sleep(0)
    assert [str(e) for e in errors] == [
        "django_aio async connections can only be used inside a running asyncio task; "
        "call them from a coroutine (an async view, asyncio.run(...), ...)."
    ]


def test_loops_in_several_threads_at_once(database_options: dict[str, Any]) -> None:
    # What a WSGI server does with async_to_sync: a short-lived loop per
    # request, in several threads at a time.
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import async_to_sync

    database_options["pool"] = {"min_size": 1, "max_size": 1}
    before = _stable_sessions()

    async def request(n: int) -> int:
        def query() -> int:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT %s::int * 3", [n])
                (value,) = cursor.fetchone()
            return int(value)

        return await run_sync(query)

    with ThreadPoolExecutor(4) as executor:
        results = list(executor.map(async_to_sync(request), range(40)))
    assert results == [n * 3 for n in range(40)]
    assert _settles_at(before), f"{_server_sessions()} sessions, expected {before}"


async def test_a_new_time_zone_setting_gets_connections_set_up_for_it() -> None:
    # A pooled connection is set up for USE_TZ and TIME_ZONE when it opens:
    # after override_settings changes them, the pool starts afresh.
    from django.test import override_settings

    async def zone() -> tuple[int, str]:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT pg_backend_pid(), current_setting('TimeZone')")
            row = await cursor.fetchone()
        return row[0], row[1]

    try:
        with override_settings(USE_TZ=False, TIME_ZONE="Asia/Tokyo"):
            tokyo_pid, tokyo = await zone()
            assert tokyo == "Asia/Tokyo"
            assert await zone() == (tokyo_pid, "Asia/Tokyo")  # the same pool
            with override_settings(TIME_ZONE="America/Chicago"):
                assert (await zone())[1] == "America/Chicago"
        with override_settings(USE_TZ=True, TIME_ZONE="Asia/Tokyo"):
            assert (await zone())[1] == "UTC"
    finally:
        await async_connections.close_pools()
