"""Task ownership: scopes, pinned transactions, child tasks and independent connections."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connections, transaction
from django.dispatch import Signal

from django_aio.conn import ConnectionOwnedByAnotherTask, async_connections, run_sync

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
    import logging

    database_options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 2.0}

    async def leaky() -> None:
        await async_connections["default"].hold()

    try:
        with caplog.at_level(logging.WARNING, logger="django_aio.conn"):
            await asyncio.create_task(leaky(), name="leaky")
            await asyncio.sleep(0.05)
        # The pool has one connection: without the safety net this would time out.
        assert await run_sync(_count) == 0
    finally:
        await async_connections.close_pools()
    assert (
        "task 'leaky' ended while holding a connection to database 'default'; it was "
        "closed instead of returned to the pool." in caplog.text
    )


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
