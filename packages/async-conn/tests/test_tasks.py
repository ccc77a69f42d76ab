"""Task ownership: scopes, pinned transactions, child tasks and independent connections."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.db import connections, transaction
from django.dispatch import Signal

from django_aio.conn import ConnectionOwnedByAnotherTask, async_connections, run_sync

from .conftest import backend_pid

pytestmark = pytest.mark.usefixtures("scratch_table")


def _insert(value: int) -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("INSERT INTO scratch (value) VALUES (%s)", [value])


def _count() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM scratch")
        (count,) = cursor.fetchone()
    return int(count)


def _message(owner: str, current: str, state: str) -> str:
    return (
        f"task {current!r} cannot use database 'default': it was created while a "
        f"transaction {state} in task {owner!r}, and only that task may use it. "
        f"Await the work in task {owner!r} itself, or run it on a fresh connection "
        f"outside the transaction with "
        f"`async with async_connections.independent_connection(): ...`."
    )


async def test_each_task_has_its_own_connection_object() -> None:
    async def mine() -> object:
        return async_connections["default"]

    parent = async_connections["default"]
    first, second = await asyncio.gather(mine(), mine())
    assert len({id(parent), id(first), id(second)}) == 3
    assert async_connections["default"] is parent


async def test_a_task_created_inside_a_pinned_transaction_is_refused() -> None:
    owner = asyncio.current_task()
    assert owner is not None
    async with async_connections["default"].pinned() as wrapper:
        await run_sync(wrapper.set_autocommit, False)
        await run_sync(_insert, 1)
        child = asyncio.create_task(run_sync(_count), name="child")
        with pytest.raises(ConnectionOwnedByAnotherTask) as caught:
            await child
        await run_sync(wrapper.rollback)
        await run_sync(wrapper.set_autocommit, True)
    assert str(caught.value) == _message(owner.get_name(), "child", "is open")
    assert await run_sync(_count) == 0


async def test_a_slow_sibling_cannot_write_after_the_block_rolled_back() -> None:
    owner = asyncio.current_task()
    assert owner is not None
    go = asyncio.Event()

    async def slow_sibling() -> None:
        await go.wait()
        await run_sync(_insert, 2)

    async with async_connections["default"].pinned() as wrapper:
        await run_sync(wrapper.set_autocommit, False)
        sibling = asyncio.create_task(slow_sibling(), name="sibling")
        await run_sync(_insert, 1)
        await run_sync(wrapper.rollback)
        await run_sync(wrapper.set_autocommit, True)
    go.set()
    with pytest.raises(ConnectionOwnedByAnotherTask) as caught:
        await sibling
    assert str(caught.value) == _message(owner.get_name(), "sibling", "was opened")
    assert await run_sync(_count) == 0


async def test_independent_connection_works_outside_the_transaction() -> None:
    async def child() -> int:
        async with async_connections.independent_connection():
            await run_sync(_insert, 7)  # autocommit on a fresh connection
            return await run_sync(_count)

    async with async_connections["default"].pinned() as wrapper:
        await run_sync(wrapper.set_autocommit, False)
        await run_sync(_insert, 1)
        # The child does not see the uncommitted row, and its own row commits.
        assert await asyncio.create_task(child()) == 1
        await run_sync(wrapper.rollback)
        await run_sync(wrapper.set_autocommit, True)
    assert await run_sync(_count) == 1


async def test_tasks_created_before_the_transaction_are_not_affected() -> None:
    start = asyncio.Event()

    async def worker() -> int:
        await start.wait()
        return await run_sync(_count)

    task = asyncio.create_task(worker())
    async with async_connections["default"].pinned() as wrapper:
        await run_sync(wrapper.set_autocommit, False)
        await run_sync(_insert, 1)
        start.set()
        assert await task == 0  # its own connection: the insert is not committed yet
        await run_sync(wrapper.commit)
        await run_sync(wrapper.set_autocommit, True)


async def test_async_receivers_run_inside_the_senders_transaction() -> None:
    signal = Signal()
    seen: list[int] = []

    async def receiver(sender: object, **kwargs: object) -> None:
        # Runs in a task Django's dispatcher creates; it borrows the sender's
        # transaction connection while the sender waits.
        seen.append(await run_sync(_count))
        await run_sync(_insert, 2)

    signal.connect(receiver, weak=False)

    def send_inside_a_transaction() -> int:
        with transaction.atomic():
            _insert(1)
            signal.send(sender=None)
            count = _count()
            transaction.set_rollback(True)
        return count

    try:
        assert await run_sync(send_inside_a_transaction) == 2
    finally:
        signal.disconnect(receiver)
    assert seen == [1]
    assert await run_sync(_count) == 0  # both writes rolled back together


async def test_a_task_ending_with_a_held_connection_gives_it_back(
    database_options: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 2.0}
    pids: list[int] = []

    async def leaky() -> None:
        pids.append(await backend_pid())
        await async_connections["default"].hold()

    try:
        with caplog.at_level(logging.DEBUG, logger="django_aio.conn"):
            await asyncio.create_task(leaky(), name="leaky")
            # The pool has one connection: without the safety net this would time out.
            assert await run_sync(_count) == 0
            pids.append(await backend_pid())
    finally:
        await async_connections.close_pools()
    assert pids[0] == pids[1]  # returned clean, not closed and replaced
    [record] = [r for r in caplog.records if "leaky" in r.getMessage()]
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == (
        "task 'leaky' ended holding a connection to database 'default'; it was returned to the pool"
    )


async def test_a_task_ending_inside_a_transaction_has_its_connection_closed(
    database_options: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 2.0}
    pids: list[int] = []

    async def leaky() -> None:
        pids.append(await backend_pid())
        lease = await async_connections["default"].hold()
        await run_sync(lease.wrapper.set_autocommit, False)
        await run_sync(_insert, 1)

    try:
        with caplog.at_level(logging.WARNING, logger="django_aio.conn"):
            await asyncio.create_task(leaky(), name="leaky")
            assert await run_sync(_count) == 0  # nothing of it committed
            pids.append(await backend_pid())
    finally:
        await async_connections.close_pools()
    assert pids[0] != pids[1]
    assert [r.getMessage() for r in caplog.records if r.name == "django_aio.conn"] == [
        "task 'leaky' ended while holding a connection to database 'default' in a "
        "transaction or with unfinished work; it was closed instead of returned to the "
        "pool. Leave every cursor or transaction block before the task ends."
    ]


async def test_work_after_an_async_receiver_stays_in_the_pinned_transaction() -> None:
    signal = Signal()

    async def receiver(sender: object, **kwargs: object) -> None:
        await run_sync(_insert, 2)

    signal.connect(receiver, weak=False)
    try:
        async with async_connections["default"].pinned() as wrapper:
            await run_sync(wrapper.set_autocommit, False)
            await run_sync(_insert, 1)
            await run_sync(signal.send, sender=None)
            # A later unit of the owner still runs in the same transaction
            # (Django 6 copies receivers' context variables back to the sender).
            assert await run_sync(_count) == 2
            await run_sync(wrapper.rollback)
            await run_sync(wrapper.set_autocommit, True)
    finally:
        signal.disconnect(receiver)
    assert await run_sync(_count) == 0


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Every error the running loop's exception handler receives during the test."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
    finally:
        loop.set_exception_handler(previous)


async def _settle() -> None:
    # Abandoned async generators are finalized in tasks the loop starts later.
    for _ in range(10):
        gc.collect()
        await asyncio.sleep(0.01)


async def test_a_cursor_block_abandoned_in_a_generator_gives_the_connection_back(
    database_options: dict[str, object],
    caplog: pytest.LogCaptureFixture,
    loop_errors: list[dict[str, Any]],
) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 2.0}

    async def rows() -> AsyncIterator[int]:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT pg_backend_pid() FROM generate_series(1, 3)")
            for (pid,) in await cursor.fetchall():
                yield int(pid)

    async def view() -> int:
        async for pid in rows():
            return pid  # leaves the generator open; the task then ends
        raise AssertionError("no rows")

    try:
        with caplog.at_level(logging.DEBUG, logger="django_aio.conn"):
            first = await asyncio.create_task(view(), name="view")
            await _settle()
            assert await backend_pid() == first  # the one connection came back clean
    finally:
        await async_connections.close_pools()
    assert loop_errors == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_generator_finalized_while_its_task_goes_on_shares_the_connection(
    database_options: dict[str, object], loop_errors: list[dict[str, Any]]
) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 2.0}

    async def rows() -> AsyncIterator[int]:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT generate_series(1, 3)")
            for (n,) in await cursor.fetchall():
                yield int(n)

    try:
        async for _ in rows():
            break
        await _settle()
        await run_sync(_insert, 5)  # the task goes on; nothing was left held
        assert await run_sync(_count) == 1
        assert async_connections["default"].lease is None
    finally:
        await async_connections.close_pools()
    assert loop_errors == []


async def test_a_dropped_pending_task_releases_its_connection(
    database_options: dict[str, object], loop_errors: list[dict[str, Any]]
) -> None:
    database_options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 2.0}
    started = asyncio.Event()

    async def stuck() -> None:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT 1")
            started.set()
            await asyncio.get_running_loop().create_future()  # never resolved

    task = asyncio.create_task(stuck(), name="stuck")
    await started.wait()
    dropped = weakref.ref(task)
    del task
    try:
        for _ in range(5):
            gc.collect()
            await asyncio.sleep(0.01)
        assert dropped() is None  # nothing of django_aio keeps the task alive
        # The pool's only connection was closed and replaced: this would time out.
        assert await run_sync(_count) == 0
    finally:
        await async_connections.close_pools()
    # asyncio itself reports the destroyed pending task; nothing else may.
    assert [c["message"] for c in loop_errors] == ["Task was destroyed but it is pending!"]


async def test_a_finished_task_leaves_no_garbage_cycle() -> None:
    # Under ASGI each request is a task: what it used must be freed by
    # reference counting when it ends, not left to the cyclic collector.
    refs: list[weakref.ref[Any]] = []

    async def request() -> None:
        await run_sync(_count)
        refs.append(weakref.ref(async_connections["default"]))

    gc.collect()
    gc.disable()
    try:
        await asyncio.gather(*(request() for _ in range(10)))
        for _ in range(3):  # the tasks' done callbacks
            await asyncio.sleep(0)
        assert len(refs) == 10
        assert [ref for ref in refs if ref() is not None] == []
    finally:
        gc.enable()
