"""Scenario 7: one-off event loops (WSGI apps, scripts, management commands).

150 ``asyncio.run(coro)`` and 150 ``async_to_sync(coro)()`` calls, each doing
one ORM query, with pool ``min_size`` 1 and 4.

Pass: every query answers; after ``gc.collect()`` the app has 0 server
sessions left; no WARNING or above on the ``psycopg.pool``, ``psycopg`` and
``django_aio.conn`` loggers; no loop exception-handler call; no exception
ignored by ``sys.unraisablehook``.
"""

from __future__ import annotations

import asyncio
import gc
import time

import pytest
from asgiref.sync import async_to_sync

from faults._support import (
    APP_NAME,
    LogCapture,
    LoopErrors,
    record,
    seed,
    unraisable,
    use_server,
    wait_until,
)
from faults.app.models import Account
from faults.server import Server

CALLS = 150


@pytest.mark.parametrize("min_size", [1, 4])
def test_one_off_loops(server: Server, min_size: int) -> None:
    use_server(server, pool={"min_size": min_size, "max_size": 4, "timeout": 5.0})
    seed(server, accounts=3)
    loop_errors = LoopErrors()
    peak = 0

    async def one_query() -> int:
        loop_errors.install()
        return await Account.objects.acount()

    started = time.monotonic()
    answers: list[int] = []
    with (
        LogCapture("psycopg.pool", "psycopg", "django_aio.conn").active() as logs,
        unraisable() as ignored,
    ):
        for i in range(CALLS):
            answers.append(asyncio.run(one_query()))
            answers.append(async_to_sync(one_query)())
            if i % 25 == 0:
                peak = max(peak, server.session_count(APP_NAME))
        gc.collect()
        wait_until(lambda: server.session_count(APP_NAME) == 0, 2.0)
        gc.collect()
    elapsed = time.monotonic() - started
    left = server.sessions(APP_NAME)
    figures = {
        "min_size": min_size,
        "calls": len(answers),
        "wrong_answers": sum(1 for a in answers if a != 3),
        "seconds": round(elapsed, 3),
        "sessions_peak": peak,
        "sessions_left": len(left),
        "warnings": logs.messages[:10],
        "warning_count": len(logs.messages),
        "loop_errors": loop_errors.calls[:10],
        "unraisable": ignored[:10],
    }
    record("one_off_loops", figures)
    assert figures["wrong_answers"] == 0
    assert not left, figures
    assert not logs.messages, figures
    assert not loop_errors.calls, figures
    assert not ignored, figures
