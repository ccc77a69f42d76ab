"""sync_to_async() under bridged async_to_sync(): back in the bridge, as asgiref would
run it in the thread of the sync code above (Note [Thread-sensitive sync_to_async])."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections, transaction

from django_aio.conn import in_bridge, run_sync

pytestmark = pytest.mark.usefixtures("scratch_table")


def _count_scratch() -> tuple[bool, int]:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM scratch")
        (count,) = cursor.fetchone()
    return in_bridge(), int(count)


def _insert_then_wait(coroutine_function: object) -> object:
    # Sync code in a transaction that waits for async code through async_to_sync.
    with transaction.atomic():
        with connections["default"].cursor() as cursor:
            cursor.execute("INSERT INTO scratch (value) VALUES (1)")
        result = async_to_sync(coroutine_function)()  # type: ignore[arg-type]
        transaction.set_rollback(True)
    return result


async def test_sync_to_async_under_async_to_sync_sees_the_waiting_transaction() -> None:
    async def middle() -> tuple[bool, int]:
        return await sync_to_async(_count_scratch)()

    assert await run_sync(_insert_then_wait, middle) == (True, 1)
    # The transaction of the sync code above was rolled back, with the row.
    assert await run_sync(_count_scratch) == (True, 0)


async def test_tasks_created_there_borrow_the_waiting_transaction() -> None:
    async def middle() -> list[tuple[bool, int]]:
        calls = [sync_to_async(_count_scratch)() for _ in range(3)]
        return list(await asyncio.gather(*calls))

    assert await run_sync(_insert_then_wait, middle) == [(True, 1)] * 3


async def test_thread_sensitive_false_keeps_asgiref_threads() -> None:
    loop_thread = threading.get_ident()

    def where() -> tuple[bool, bool]:
        return in_bridge(), threading.get_ident() == loop_thread

    async def middle() -> tuple[bool, bool]:
        return await sync_to_async(where, thread_sensitive=False)()

    assert await run_sync(async_to_sync(middle)) == (False, False)


async def test_sync_to_async_outside_the_bridge_keeps_asgiref_threads() -> None:
    loop_thread = threading.get_ident()

    def where() -> tuple[bool, bool]:
        return in_bridge(), threading.get_ident() == loop_thread

    assert await sync_to_async(where)() == (False, False)
    # Nor does it leak out of a bridged async_to_sync that has returned.
    await run_sync(async_to_sync(asyncio.sleep), 0)
    assert await sync_to_async(where)() == (False, False)
