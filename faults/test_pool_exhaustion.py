"""Scenario 3: pool exhaustion and max_waiting.

max_size 2, timeout 0.5: of 10 tasks holding a cursor, 2 get a connection;
the others get ``PoolTimeout`` (an ``OperationalError``) naming the alias after
about the timeout. With max_waiting 1 a refused caller gets Django's
``OperationalError`` (``TooManyWaiting``), never psycopg_pool's raw
``TooManyRequests``.
"""

from __future__ import annotations

import asyncio
import time

from django.db.utils import OperationalError

from django_aio.conn import PoolTimeout, async_connections
from faults._support import ErrorCounter, LoopErrors, record, use_server
from faults.server import Server

HOLD = 1.5


async def hold_cursor() -> float:
    """Hold a connection for HOLD seconds; returns seconds until the error, or raises."""
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT 1")
        await asyncio.sleep(HOLD)
    return 0.0


async def run(tasks: int) -> tuple[int, ErrorCounter, list[BaseException], float]:
    errors = ErrorCounter()
    started = time.monotonic()

    async def one() -> BaseException | None:
        try:
            await hold_cursor()
        except Exception as exc:
            errors.add(exc)
            return exc
        return None

    results = await asyncio.gather(*(one() for _ in range(tasks)))
    failures = [r for r in results if r is not None]
    return tasks - len(failures), errors, failures, time.monotonic() - started


async def test_pool_timeout(server: Server, loop_errors: LoopErrors) -> None:
    use_server(server, pool={"min_size": 1, "max_size": 2, "timeout": 0.5})
    ok, errors, failures, elapsed = await run(10)
    record(
        "pool_exhaustion_timeout",
        {"ok": ok, "errors": errors.as_dict(), "elapsed": round(elapsed, 3)},
    )
    assert ok == 2, errors.as_dict()
    assert len(failures) == 8
    for exc in failures:
        assert isinstance(exc, PoolTimeout), repr(exc)
        assert isinstance(exc, OperationalError)
        assert "'default'" in str(exc)
        assert str(exc).startswith("couldn't get a connection for database 'default' after 0.5")
        assert 0.4 <= exc.waited < 1.0, exc.waited
    assert not loop_errors.calls


async def test_max_waiting(server: Server, loop_errors: LoopErrors) -> None:
    use_server(server, pool={"min_size": 1, "max_size": 2, "timeout": 5.0, "max_waiting": 1})
    started = time.monotonic()
    ok, errors, failures, elapsed = await run(10)
    record(
        "pool_exhaustion_max_waiting",
        {"ok": ok, "errors": errors.as_dict(), "elapsed": round(elapsed, 3)},
    )
    # 2 hold, 1 waits (and gets a connection after the first HOLD), 7 refused at once.
    assert ok == 3, errors.as_dict()
    assert len(failures) == 7
    for exc in failures:
        assert isinstance(exc, OperationalError), f"{type(exc).__module__}.{type(exc).__name__}"
        assert type(exc).__module__.startswith(("django", "django_aio")), repr(exc)
        assert "'default'" in str(exc)
        assert "max_waiting" in str(exc)
    assert time.monotonic() - started < 2 * HOLD + 1
    assert not loop_errors.calls
