"""Scenario 5: a pending task holding a connection is dropped and collected.

A task holds a connection (inside a cursor block, or inside ``async_atomic()``
so the server shows it ``idle in transaction``) and awaits a future that never
completes. Every reference to it is dropped and ``gc.collect()`` runs.

Pass: the connection is released: with ``max_size`` 1 the next query gets a
connection within a second (no ``PoolTimeout``), and the server session is
idle or closed (never left ``idle in transaction``). The only loop
exception-handler call allowed is asyncio's own "Task was destroyed but it is
pending!", which is the scenario itself; no exception may be ignored in the
collected coroutine (``sys.unraisablehook``).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

import pytest

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections
from faults._support import APP_NAME, LoopErrors, record, seed, unraisable, use_server
from faults.app.models import Book
from faults.server import Server


async def hold_in_cursor(started: asyncio.Future[int]) -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT pg_backend_pid()")
        row = await cursor.fetchone()
        started.set_result(int(row[0]))
        await never


async def hold_in_atomic(started: asyncio.Future[int]) -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    async with async_atomic():
        await Book.objects.acreate(title="written by a dropped task")
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT pg_backend_pid()")
            row = await cursor.fetchone()
        started.set_result(int(row[0]))
        await never


HOLDERS: dict[str, Callable[[asyncio.Future[int]], Awaitable[None]]] = {
    "cursor": hold_in_cursor,
    "atomic": hold_in_atomic,
}


async def start_and_drop(holder: Callable[[asyncio.Future[int]], Awaitable[None]]) -> int:
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    asyncio.ensure_future(holder(started))  # noqa: RUF006 - the point: no reference kept
    return await started


@pytest.mark.parametrize("kind", list(HOLDERS))
async def test_dropped_pending_task(server: Server, loop_errors: LoopErrors, kind: str) -> None:
    use_server(server, pool={"min_size": 1, "max_size": 1, "timeout": 2.0})
    seed(server)
    pid = await start_and_drop(HOLDERS[kind])
    state_before = dict(server.sessions(APP_NAME)).get(pid)
    with unraisable() as ignored:
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.05)
    started = time.monotonic()
    next_query: str
    try:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT 1")
        next_query = "ok"
    except Exception as exc:
        next_query = f"{type(exc).__name__}: {exc}"
    waited = time.monotonic() - started
    await asyncio.sleep(0.1)
    state_after = dict(server.sessions(APP_NAME)).get(pid, "closed")
    figures = {
        "kind": kind,
        "state_before": state_before,
        "state_after": state_after,
        "next_query": next_query,
        "next_query_waited": round(waited, 3),
        "loop_errors": loop_errors.calls,
        "unraisable": ignored,
        "dropped_rows": server.sql(
            "SELECT count(*) FROM faults_book WHERE title = 'written by a dropped task'"
        )[0][0],
    }
    record("dropped_task", figures)
    assert next_query == "ok", figures
    assert waited < 1.0, figures
    assert state_after in ("idle", "closed"), figures
    assert figures["dropped_rows"] == 0, figures
    assert not ignored, ignored
    assert not loop_errors.without("Task was destroyed but it is pending"), figures
