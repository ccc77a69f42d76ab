"""Manual transaction control on AsyncConnection: set_autocommit, commit, savepoints."""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.db import ProgrammingError, connections
from django.db.transaction import TransactionManagementError

from django_aio.conn import (
    AsyncConnection,
    ConnectionOwnedByAnotherTask,
    async_connections,
    run_sync,
)

from .conftest import backend_pid

pytestmark = pytest.mark.usefixtures("scratch_table")

NOT_IN_ATOMIC = "The rollback flag doesn't work outside of an 'atomic' block."


async def values(conn: AsyncConnection) -> list[int]:
    async with conn.cursor() as cursor:
        await cursor.execute("SELECT value FROM scratch ORDER BY value")
        return [value for (value,) in await cursor.fetchall()]


async def committed_values() -> list[int]:
    async with async_connections.independent_connection():
        return await values(async_connections["default"])


async def child_values() -> list[int]:
    return await values(async_connections["default"])


async def insert(conn: AsyncConnection, value: int) -> None:
    async with conn.cursor() as cursor:
        await cursor.execute("INSERT INTO scratch (value) VALUES (%s)", [value])


async def test_autocommit_off_holds_one_connection_until_commit_and_back_on() -> None:
    conn = async_connections["default"]
    assert await conn.get_autocommit() is True
    assert conn.lease is None

    await conn.set_autocommit(False)
    assert await conn.get_autocommit() is False
    assert conn.lease is not None
    pid = await backend_pid()
    await insert(conn, 1)
    # run_sync code joins the same transaction, on the same connection.
    await run_sync(
        lambda: connections["default"].cursor().execute("INSERT INTO scratch (value) VALUES (2)")
    )
    assert await backend_pid() == pid
    assert await values(conn) == [1, 2]
    assert await committed_values() == []

    await conn.commit()
    assert await committed_values() == [1, 2]
    assert await conn.get_autocommit() is False  # commit() keeps autocommit off

    await conn.set_autocommit(True)
    assert conn.lease is None
    assert await conn.get_autocommit() is True


async def test_rollback_discards_and_the_transaction_goes_on() -> None:
    conn = async_connections["default"]
    await conn.set_autocommit(False)
    await insert(conn, 1)
    await conn.rollback()
    assert await values(conn) == []
    await insert(conn, 2)
    await conn.commit()
    await conn.set_autocommit(True)
    assert await committed_values() == [2]


async def test_savepoints_in_a_manual_transaction() -> None:
    conn = async_connections["default"]
    await conn.set_autocommit(False)
    await insert(conn, 1)
    sid = await conn.savepoint()
    assert isinstance(sid, str)
    await insert(conn, 2)
    await conn.savepoint_rollback(sid)
    kept = await conn.savepoint()
    await insert(conn, 3)
    await conn.savepoint_commit(kept)
    await conn.commit()
    await conn.set_autocommit(True)
    assert await committed_values() == [1, 3]


async def test_savepoints_outside_a_transaction_do_nothing_as_in_django() -> None:
    conn = async_connections["default"]
    assert await conn.savepoint() is None
    await conn.savepoint_commit(None)
    await conn.savepoint_rollback(None)
    assert conn.lease is None


async def test_turning_autocommit_off_twice_takes_one_hold() -> None:
    conn = async_connections["default"]
    await conn.set_autocommit(False)
    await conn.set_autocommit(False)
    await conn.set_autocommit(True)
    assert conn.lease is None


async def test_autocommit_back_on_with_the_transaction_open_is_refused_and_keeps_it() -> None:
    conn = async_connections["default"]
    await conn.set_autocommit(False)
    await insert(conn, 1)
    # psycopg refuses, as it does under sync Django: commit or roll back first.
    with pytest.raises(ProgrammingError, match="can't change 'autocommit' now"):
        await conn.set_autocommit(True)
    assert conn.lease is not None
    assert await values(conn) == [1]
    await conn.rollback()
    await conn.set_autocommit(True)
    assert conn.lease is None
    assert await committed_values() == []


async def test_rollback_flag_needs_an_atomic_block() -> None:
    conn = async_connections["default"]
    with pytest.raises(TransactionManagementError) as raised:
        conn.get_rollback()
    assert str(raised.value) == NOT_IN_ATOMIC
    with pytest.raises(TransactionManagementError) as raised:
        conn.set_rollback(True)
    assert str(raised.value) == NOT_IN_ATOMIC
    # A manual transaction is no atomic block either (Django says the same).
    await conn.set_autocommit(False)
    try:
        with pytest.raises(TransactionManagementError) as raised:
            conn.get_rollback()
        assert str(raised.value) == NOT_IN_ATOMIC
        assert conn.needs_rollback is False
    finally:
        await conn.set_autocommit(True)
    assert conn.needs_rollback is False


async def test_child_tasks_are_refused_the_manual_transaction() -> None:
    conn = async_connections["default"]
    await conn.set_autocommit(False)
    try:
        with pytest.raises(ConnectionOwnedByAnotherTask, match="transaction is open in task"):
            await asyncio.create_task(child_values())
    finally:
        await conn.rollback()
        await conn.set_autocommit(True)


async def test_task_ending_with_autocommit_off_closes_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def forgets() -> int:
        conn = async_connections["default"]
        await conn.set_autocommit(False)
        await insert(conn, 1)
        return await backend_pid()

    with caplog.at_level(logging.WARNING, logger="django_aio.conn"):
        pid = await asyncio.create_task(forgets(), name="forgetful")
        for _ in range(5):  # the reclaim runs a few loop iterations later
            await asyncio.sleep(0)
    assert "task 'forgetful' ended while holding a connection" in caplog.text
    assert "it was closed instead of returned to the pool" in caplog.text
    assert await committed_values() == []
    assert await backend_pid() != pid  # not the forgetful task's connection
