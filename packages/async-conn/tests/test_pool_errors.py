"""What the pool says and does on bad options, unreachable servers and overload."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connections

from django_aio.conn import TooManyWaiting, async_connections, run_sync

from .conftest import backend_pid, pool_waiters


@pytest.fixture
def settings_dict() -> Iterator[dict[str, Any]]:
    """The live settings of the default alias; restored after the test."""
    live = connections.settings["default"]
    saved = {key: live[key] for key in ("NAME", "USER", "HOST", "PORT")}
    saved_options = dict(live["OPTIONS"])
    try:
        yield live
    finally:
        live.update(saved)
        live["OPTIONS"] = saved_options


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("timeout", 0, "['timeout'] must be a number of seconds above 0, got 0."),
        ("timeout", -1.5, "['timeout'] must be a number of seconds above 0, got -1.5."),
        ("max_idle", 0, "['max_idle'] must be a number of seconds above 0, got 0."),
        ("max_waiting", -1, "['max_waiting'] must be 0 (no limit) or more, got -1."),
        (
            "num_workers",
            0,
            "['num_workers'] must be 1 or more (Django's sync pool needs a worker), got 0.",
        ),
    ],
)
async def test_out_of_range_options_are_improperly_configured(
    database_options: dict[str, Any], option: str, value: object, message: str
) -> None:
    database_options["pool"] = {option: value}
    with pytest.raises(ImproperlyConfigured) as caught:
        await backend_pid()
    assert str(caught.value) == "DATABASES['default']['OPTIONS']['pool']" + message


def test_djangos_sync_pool_gets_the_same_checked_options(
    database_options: dict[str, Any],
) -> None:
    # psycopg_pool's own min_size default (4) would refuse max_size 2.
    database_options["pool"] = {"max_size": 2}
    wrapper = connections.create_connection("default")
    wrapper.close_pool()  # one an earlier test left (Django keeps one per alias)
    try:
        pool = wrapper.pool
        assert (pool.min_size, pool.max_size) == (1, 2)
        assert wrapper.settings_dict["OPTIONS"]["pool"] == {"max_size": 2}  # untouched
    finally:
        wrapper.close_pool()  # Django keeps one sync pool per alias
    database_options["pool"] = {"timeout": 0}
    with pytest.raises(ImproperlyConfigured, match=r"must be a number of seconds above 0"):
        connections.create_connection("default").pool  # noqa: B018


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"HOST": "127.0.0.1", "PORT": "<closed>"}, "Connection refused"),
        # Behind PgBouncer these are PgBouncer's own errors, after its retries.
        pytest.param(
            {"NAME": "django_aio_no_such_db"},
            'database "django_aio_no_such_db" does not exist',
            marks=pytest.mark.direct_server,
        ),
        pytest.param(
            {"USER": "django_aio_no_such_role"},
            'role "django_aio_no_such_role" does not exist',
            marks=pytest.mark.direct_server,
        ),
    ],
)
async def test_connection_errors_reach_the_caller_at_once_as_themselves(
    settings_dict: dict[str, Any], change: dict[str, str], cause: str
) -> None:
    if change.get("PORT") == "<closed>":
        change = {**change, "PORT": str(_closed_port())}
    settings_dict.update(change)
    settings_dict["OPTIONS"] = {**settings_dict["OPTIONS"], "pool": {"timeout": 30.0}}
    for _ in range(2):  # the second request fails as promptly as the first
        started = time.monotonic()
        with pytest.raises(OperationalError) as caught:
            await backend_pid()
        assert time.monotonic() - started < 5  # not the pool's 30 s timeout
        message = str(caught.value)
        assert message.startswith("couldn't connect to database 'default': connection failed:")
        assert cause in message
    await async_connections.close_pools()


async def test_max_waiting_refuses_with_a_django_error(database_options: dict[str, Any]) -> None:
    database_options["pool"] = {"max_size": 1, "max_waiting": 1, "timeout": 5.0}
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with async_connections["default"].cursor():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(backend_pid())
    await pool_waiters(1)
    try:
        with pytest.raises(TooManyWaiting) as caught:
            await backend_pid()
        assert isinstance(caught.value, OperationalError)
        assert str(caught.value) == (
            "couldn't get a connection for database 'default': 1 task(s) already wait for "
            "one of its 1 connections, which is OPTIONS['pool']['max_waiting']. Raise "
            "max_waiting or max_size, or shed load before it reaches the database."
        )
    finally:
        release.set()
        await holder
        assert await waiter > 0  # the queued one still got the connection
        await async_connections.close_pools()


async def test_a_cancelled_waiter_passes_the_connection_on(
    database_options: dict[str, Any],
) -> None:
    database_options["pool"] = {"max_size": 1, "timeout": 5.0}
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> int:
        pid = await backend_pid()
        async with async_connections["default"].cursor():
            holding.set()
            await release.wait()
        return pid

    holder = asyncio.create_task(hold())
    await holding.wait()
    cancelled = asyncio.create_task(backend_pid())
    second = asyncio.create_task(backend_pid())
    await pool_waiters(2)
    release.set()
    cancelled.cancel()  # after the connection may have been handed to it
    try:
        pid = await holder
        assert await asyncio.wait_for(second, 5) == pid
        with pytest.raises(asyncio.CancelledError):
            await cancelled
    finally:
        await async_connections.close_pools()


async def test_back_to_back_work_reuses_the_last_returned_connection(
    database_options: dict[str, Any],
) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 4}
    try:
        # Open four connections at once, then work one unit at a time.
        pids = await asyncio.gather(*(run_sync(_pid_after, 0.05) for _ in range(4)))
        assert len(set(pids)) == 4
        sequential = [await backend_pid() for _ in range(10)]
        assert len(set(sequential)) == 1  # last in, first out
    finally:
        await async_connections.close_pools()


def _pid_after(seconds: float) -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid() FROM pg_sleep(%s)", [seconds])
        (pid,) = cursor.fetchone()
    return int(pid)


async def test_a_server_that_never_answers_fails_within_the_pool_timeout(
    settings_dict: dict[str, Any],
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings_dict.update(HOST="127.0.0.1", PORT=str(silent.getsockname()[1]))
        settings_dict["OPTIONS"] = {**settings_dict["OPTIONS"], "pool": {"timeout": 1.0}}
        started = time.monotonic()
        with pytest.raises(OperationalError) as caught:
            await backend_pid()
        waited = time.monotonic() - started
        await async_connections.close_pools()
    assert waited < 5  # libpq's shortest connect timeout is 2 s
    assert str(caught.value).startswith("couldn't connect to database 'default': ")
    assert "timeout expired" in str(caught.value)


def test_djangos_sync_pool_keeps_its_callbacks(database_options: dict[str, Any]) -> None:
    # Callbacks only the sync pool can call reach it untouched (the async pool
    # refuses them, see test_pool.py).
    def reset(connection: object) -> None:
        pass

    database_options["pool"] = {"reset": reset}
    wrapper = connections.create_connection("default")
    wrapper.close_pool()
    try:
        assert wrapper.pool._reset is reset
    finally:
        wrapper.close_pool()
