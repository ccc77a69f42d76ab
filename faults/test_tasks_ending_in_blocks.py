"""Scenario 4: tasks that end inside a block holding a connection.

Cases: break out of ``async for b in Book.objects.aiterator()`` then return;
raise inside that loop; be cancelled inside it; end with a cursor block, or an
``async_atomic()`` block, open inside an abandoned async generator.

Pass: no loop exception-handler call at all, no exception ignored by
``sys.unraisablehook``, no warning on the
``django_aio.conn`` logger for the plain break, and the pooled connection
comes back: the same server backend is reused, it is idle on the server, and
the app's session count does not grow.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections
from faults._support import APP_NAME, LogCapture, LoopErrors, record, seed, unraisable, use_server
from faults.app.models import Book
from faults.server import Server


async def backend_pid() -> int:
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT pg_backend_pid()")
        row = await cursor.fetchone()
    return int(row[0])


async def break_out() -> None:
    async for book in Book.objects.aiterator(chunk_size=10):
        if book.pk >= 3:
            break


async def raise_inside() -> None:
    async for book in Book.objects.aiterator(chunk_size=10):
        if book.pk >= 3:
            raise ValueError("raised inside the loop")


async def cancelled_inside() -> None:
    async for book in Book.objects.aiterator(chunk_size=10):
        if book.pk >= 3:
            asyncio.current_task().cancel()  # type: ignore[union-attr]
            await asyncio.sleep(1)


async def cursor_generator() -> AsyncIterator[int]:
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT 1")
        yield 1
        await cursor.execute("SELECT 2")  # never reached


async def atomic_generator() -> AsyncIterator[int]:
    async with async_atomic():
        await Book.objects.acreate(title="inside an abandoned transaction")
        yield 1


async def abandon_cursor_generator() -> None:
    generator = cursor_generator()
    await generator.__anext__()  # the task ends with the block open


async def abandon_atomic_generator() -> None:
    generator = atomic_generator()
    await generator.__anext__()


CASES: dict[str, Callable[[], Awaitable[None]]] = {
    "aiterator_break": break_out,
    "aiterator_raise": raise_inside,
    "aiterator_cancelled": cancelled_inside,
    "abandoned_cursor_generator": abandon_cursor_generator,
    "abandoned_atomic_generator": abandon_atomic_generator,
}


@pytest.mark.parametrize("case", list(CASES))
async def test_task_ends_inside_block(server: Server, loop_errors: LoopErrors, case: str) -> None:
    use_server(server, pool={"min_size": 1, "max_size": 4, "timeout": 3.0})
    seed(server, books=50)
    first_pid = await backend_pid()
    with LogCapture("django_aio.conn").active() as logs, unraisable() as ignored:
        task = asyncio.create_task(CASES[case]())
        outcome = "returned"
        try:
            await task
        except asyncio.CancelledError:
            outcome = "cancelled"
        except ValueError:
            outcome = "raised"
        del task
        # Let the loop finalize abandoned generators and run their cleanup.
        for _ in range(5):
            gc.collect()
            await asyncio.sleep(0.05)
        then_pid = await asyncio.wait_for(backend_pid(), 3)
        await asyncio.sleep(0.05)
    sessions = server.sessions(APP_NAME)
    states = dict(sessions)
    figures = {
        "case": case,
        "outcome": outcome,
        "loop_errors": loop_errors.calls,
        "unraisable": ignored,
        "warnings": logs.messages,
        "first_pid": first_pid,
        "then_pid": then_pid,
        "sessions": sessions,
        "abandoned_rows": server.sql(
            "SELECT count(*) FROM faults_book WHERE title LIKE 'inside an abandoned%%'"
        )[0][0],
    }
    record("tasks_ending_in_blocks", figures)
    assert not loop_errors.calls, loop_errors.calls
    assert not ignored, ignored
    if case == "aiterator_break":
        assert not logs.messages, logs.messages
    assert then_pid == first_pid, figures
    assert states.get(first_pid) == "idle", figures
    assert len(sessions) == 1, figures
    assert figures["abandoned_rows"] == 0, "an abandoned transaction was committed"
