"""async_atomic() and other tasks: pinning, select_for_update, cancellation."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import pytest
from atomic_testapp.models import Item
from django.db import IntegrityError, connections

from django_aio.atomic import async_atomic, on_commit
from django_aio.conn import ConnectionOwnedByAnotherTask, async_connections, run_sync

from .conftest import Boom, names

pytestmark = pytest.mark.usefixtures("clean_tables")


async def create(name: str) -> Item:
    return await run_sync(Item.objects.create, name=name)


@pytest.fixture
def single_connection_pool() -> Iterator[None]:
    """A pool of exactly one connection for the default alias (restored afterwards)."""
    settings_dict = connections.settings["default"]
    saved = copy.deepcopy(settings_dict["OPTIONS"])
    settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1}
    try:
        yield
    finally:
        settings_dict["OPTIONS"] = saved


async def connection_state() -> tuple[int, Any, str]:
    """(backend pid, current transaction id, server transaction status) of the next unit."""
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT pg_backend_pid(), pg_current_xact_id_if_assigned()")
        pid, xact = await cursor.fetchone()
        status = async_connections["default"].lease.aconnection.info.transaction_status.name  # type: ignore[union-attr]
    return int(pid), xact, status


# -- another task reaching the transaction -----------------------------------


async def test_gathered_task_inside_the_block_is_refused() -> None:
    async def sibling() -> None:
        await create("sibling")

    async with async_atomic():
        await create("owner")
        with pytest.raises(ConnectionOwnedByAnotherTask) as error:
            await asyncio.gather(sibling())
    message = str(error.value)
    assert "cannot use database 'default'" in message
    assert "while a transaction is open in task" in message
    assert "`async with async_connections.independent_connection(): ...`" in message
    assert await names() == ["owner"]


async def test_slow_sibling_cannot_commit_after_the_block_rolled_back() -> None:
    rolled_back = asyncio.Event()

    async def slow_sibling() -> None:
        # Would run its insert only once the block is over: on any connection
        # it could get, the insert would commit although the block's work
        # was rolled back.
        await rolled_back.wait()
        await create("late")

    with pytest.raises(ValueError, match="abort"):
        async with async_atomic():
            await create("in-block")
            task = asyncio.create_task(slow_sibling())
            await asyncio.sleep(0)
            raise ValueError("abort")
    rolled_back.set()
    with pytest.raises(
        ConnectionOwnedByAnotherTask, match="while a transaction was opened in task"
    ):
        await task
    assert await names() == []


async def test_child_task_uses_independent_connection_outside_the_transaction() -> None:
    async def audit() -> None:
        async with async_connections.independent_connection():
            await create("audit")

    with pytest.raises(Boom):
        async with async_atomic():
            await create("in-block")
            await asyncio.create_task(audit())
            raise Boom
    # The audit row was committed on its own connection; the block's was not.
    assert await names() == ["audit"]


async def test_nested_block_in_a_child_task_is_refused() -> None:
    async def child() -> None:
        async with async_atomic():
            pass

    async with async_atomic():
        with pytest.raises(ConnectionOwnedByAnotherTask):
            await asyncio.create_task(child())


async def test_tasks_outside_any_block_run_their_own_transactions_in_parallel() -> None:
    async def one(name: str) -> None:
        async with async_atomic():
            await create(name)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(one(f"t{i}") for i in range(5)))
    assert await names() == [f"t{i}" for i in range(5)]


# -- select_for_update really locks ---------------------------------------------


async def test_select_for_update_blocks_a_second_task_until_the_first_commits() -> None:
    await create("row")
    first_locked = asyncio.Event()
    events: list[str] = []

    async def waiting_backends() -> int:
        async with (
            async_connections.independent_connection(),
            async_connections["default"].cursor() as cursor,
        ):
            await cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            (count,) = await cursor.fetchone()
        return int(count)

    async def first() -> None:
        async with async_atomic():
            row = await run_sync(Item.objects.select_for_update().get, name="row")
            first_locked.set()
            # Wait until the second task's SELECT ... FOR UPDATE is blocked
            # on our row lock in the server.
            for _ in range(500):
                if await waiting_backends():
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the second task never waited for the lock")
            events.append("second is waiting")
            row.quantity = 42
            await run_sync(row.save)
            events.append("first commits")

    async def second() -> int:
        await first_locked.wait()
        async with async_atomic():
            row = await run_sync(Item.objects.select_for_update().get, name="row")
            events.append("second locked")
            return row.quantity

    _, quantity = await asyncio.gather(first(), second())
    assert events == ["second is waiting", "first commits", "second locked"]
    assert quantity == 42  # the second task read the row as committed by the first


# -- cancellation ----------------------------------------------------------


@pytest.mark.usefixtures("single_connection_pool")
async def test_cancelled_block_rolls_back_and_returns_the_connection_clean() -> None:
    pid, _, _ = await connection_state()
    inside = asyncio.Event()

    async def work() -> None:
        async with async_atomic():
            await create("cancelled")
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(work())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The only pooled connection is back, idle, outside any transaction.
    assert await connection_state() == (pid, None, "IDLE")
    assert await names() == []
    await async_connections.close_pools()


@pytest.mark.usefixtures("single_connection_pool")
async def test_timeout_during_a_query_in_a_nested_block_rolls_back_everything() -> None:
    pid, _, _ = await connection_state()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            async with async_atomic():
                await create("outer")
                async with async_atomic():
                    await create("inner")
                    async with async_connections["default"].cursor() as cursor:
                        await cursor.execute("SELECT pg_sleep(30)")
    assert await connection_state() == (pid, None, "IDLE")
    assert await names() == []
    await async_connections.close_pools()


@pytest.mark.usefixtures("single_connection_pool")
async def test_repeated_cancellation_cannot_interrupt_the_exit() -> None:
    pid, _, _ = await connection_state()
    in_callback = asyncio.Event()
    release = asyncio.Event()
    ran: list[str] = []

    async def slow_callback() -> None:
        in_callback.set()
        await release.wait()
        ran.append("callback finished")

    async def work() -> None:
        async with async_atomic():
            await create("committed")
            await on_commit(slow_callback)

    task = asyncio.create_task(work())
    await in_callback.wait()
    # Cancelled again and again while committing (as anyio cancel scopes do):
    # the exit still runs to the end, then the cancellation is delivered.
    for _ in range(3):
        task.cancel()
        await asyncio.sleep(0.01)
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ran == ["callback finished"]
    assert await names() == ["committed"]
    assert await connection_state() == (pid, None, "IDLE")
    await async_connections.close_pools()


async def test_cancellation_during_commit_commits_then_raises() -> None:
    async def sql(statement: str) -> list[Any]:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute(statement)
            return await cursor.fetchall() if cursor.description else []

    # A deferred trigger makes the COMMIT itself take a while on the server.
    await sql("DROP TABLE IF EXISTS slow_commit")
    await sql("CREATE TABLE slow_commit (v int)")
    await sql(
        "CREATE OR REPLACE FUNCTION slow_commit_sleep() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$"
    )
    await sql(
        "CREATE CONSTRAINT TRIGGER slow_commit_sleeps AFTER INSERT ON slow_commit "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit_sleep()"
    )
    try:
        pids: list[int] = []
        body_done = asyncio.Event()

        async def work() -> None:
            async with async_atomic():
                await sql("INSERT INTO slow_commit VALUES (1)")
                pids.extend(row[0] for row in await sql("SELECT pg_backend_pid()"))
                body_done.set()

        task = asyncio.create_task(work())
        await body_done.wait()
        (pid,) = pids
        async with async_connections.independent_connection():
            for _ in range(200):  # until the server runs the COMMIT
                rows = await sql(
                    f"SELECT query FROM pg_stat_activity WHERE pid = {pid} AND state = 'active'"
                )
                if rows == [("COMMIT",)]:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the COMMIT was never seen running")
        task.cancel()
        await asyncio.sleep(0.05)
        task.cancel()
        # The COMMIT is neither interrupted nor cancelled on the server: the
        # block commits, then its task sees the cancellation.
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await sql("SELECT v FROM slow_commit") == [(1,)]
        assert task.cancelling() == 2
        # The connection went back to the pool clean, outside any transaction.
        assert (await connection_state())[1:] == (None, "IDLE")
    finally:
        await sql("DROP TABLE slow_commit")
        await sql("DROP FUNCTION slow_commit_sleep()")
        await async_connections.close_pools()


@pytest.mark.usefixtures("single_connection_pool")
async def test_repeated_cancellation_during_rollback() -> None:
    pid, _, _ = await connection_state()
    inside = asyncio.Event()

    async def work() -> None:
        async with async_atomic():
            await create("doomed")
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(work())
    await inside.wait()
    task.cancel()
    await asyncio.sleep(0)  # the body is cancelled; the rollback starts
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await connection_state() == (pid, None, "IDLE")
    assert await names() == []
    await async_connections.close_pools()


@pytest.mark.usefixtures("single_connection_pool")
async def test_commit_failure_raises_and_returns_the_connection_clean() -> None:
    async def sql(statement: str) -> None:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute(statement)

    await sql("DROP TABLE IF EXISTS deferred_check")
    await sql("CREATE TABLE deferred_check (v int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    try:
        pid, _, _ = await connection_state()
        ran: list[str] = []
        with pytest.raises(IntegrityError, match="duplicate key value"):
            async with async_atomic():
                await sql("INSERT INTO deferred_check VALUES (1), (1)")  # checked at COMMIT
                await on_commit(lambda: ran.append("never"))
        assert ran == []
        assert await connection_state() == (pid, None, "IDLE")
    finally:
        await sql("DROP TABLE deferred_check")
        await async_connections.close_pools()
