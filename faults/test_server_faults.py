"""Scenario 2: server faults under steady load.

Every pool slot is held inside an ``async_atomic`` block (4 holders, max_size
4) while 8 workers queue for connections. Then one fault: every backend
terminated (``pg_terminate_backend``), a fast shutdown then restart, or a
SIGKILL of the server (postmaster and backends) then restart. The holders then
query inside their blocks; the workers keep querying through the outage.

Pass: every error reaching a caller is Django's ``OperationalError`` or
``InterfaceError`` (``django.db.utils``) and never a ``PoolTimeout`` hiding the
real error; no caller waits more than 2 s for its error after the fault; the
first operation started after the server is back succeeds within 1 s of it
being back; nothing hangs; afterwards every app session is idle; no loop
exception-handler call.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from dataclasses import dataclass

import pytest
from django.db.models import F
from django.db.utils import InterfaceError, OperationalError

from django_aio.atomic import async_atomic
from django_aio.conn import PoolTimeout, async_connections
from faults._support import (
    APP_NAME,
    ErrorCounter,
    LoopErrors,
    duration,
    record,
    seed,
    unraisable,
    use_server,
    wait_until,
)
from faults.app.models import Account
from faults.server import Server

HOLDERS = 4
WORKERS = 8
PROMPT = 2.0  # seconds an error may take to reach its caller
BACK = 1.0  # seconds from the server being back to the first success


@dataclass
class Outcome:
    started: float
    ended: float
    error: BaseException | None


def acceptable(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError | InterfaceError) and not isinstance(exc, PoolTimeout)


async def operation() -> None:
    kind = random.choice(["get", "cursor", "atomic"])
    if kind == "get":
        await Account.objects.aget(pk=random.randint(1, 10))
    elif kind == "cursor":
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT 1")
            await cursor.fetchone()
    else:
        async with async_atomic():
            pk = random.randint(1, 10)
            await Account.objects.filter(pk=pk).aupdate(balance=F("balance") + 0)


async def inject(server: Server, fault: str) -> tuple[float, float]:
    """Apply ``fault``; return when it hit and when the server is back."""
    hit = time.monotonic()
    if fault == "terminate":
        await asyncio.to_thread(server.terminate_backends)
        return hit, time.monotonic()
    if fault == "stop_fast":
        await asyncio.to_thread(server.stop, "fast")
    else:
        await asyncio.to_thread(server.kill)
    await asyncio.sleep(duration(1.5, 6.0))  # down
    back = await asyncio.to_thread(server.start)
    return hit, back


@pytest.mark.parametrize("fault", ["terminate", "stop_fast", "kill"])
async def test_server_fault(server: Server, loop_errors: LoopErrors, fault: str) -> None:
    use_server(server, pool={"min_size": 1, "max_size": HOLDERS, "timeout": 5.0})
    seed(server, accounts=10)
    entered = 0
    all_in = asyncio.Event()
    release = asyncio.Event()
    released_at = 0.0

    async def holder(pk: int) -> Outcome:
        nonlocal entered
        try:
            async with async_atomic():
                await Account.objects.filter(pk=pk).aupdate(balance=F("balance") + 0)
                entered += 1
                if entered == HOLDERS:
                    all_in.set()
                await release.wait()
                await Account.objects.aget(pk=pk)
        except Exception as exc:
            return Outcome(released_at, time.monotonic(), exc)
        return Outcome(released_at, time.monotonic(), None)

    outcomes: list[Outcome] = []
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await operation()
            except Exception as exc:
                outcomes.append(Outcome(started, time.monotonic(), exc))
                await asyncio.sleep(0.01)
            else:
                outcomes.append(Outcome(started, time.monotonic(), None))

    with unraisable() as ignored:
        async with asyncio.timeout(60):  # a hang fails here
            holders = [asyncio.create_task(holder(pk)) for pk in range(1, HOLDERS + 1)]
            await all_in.wait()
            workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
            await asyncio.sleep(0.3)  # the workers queue for the held slots
            injecting = asyncio.create_task(inject(server, fault))
            await asyncio.sleep(0.05)  # the fault is under way
            released_at = time.monotonic()
            release.set()
            held = await asyncio.gather(*holders)
            hit, back = await injecting
            await asyncio.sleep(duration(2.0, 12.0))  # steady load after the fault
            stop.set()
            await asyncio.gather(*workers)
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.05)
    wait_until(lambda: all(s == "idle" for _, s in server.sessions(APP_NAME)), 3.0)

    errors = ErrorCounter()
    for outcome in [*held, *outcomes]:
        if outcome.error is not None:
            errors.add(outcome.error)
    bad = [o.error for o in [*held, *outcomes] if o.error is not None and not acceptable(o.error)]
    slow = [
        round(o.ended - max(o.started, hit), 3)
        for o in [*held, *outcomes]
        if o.error is not None and o.ended - max(o.started, hit) > PROMPT
    ]
    after = [o for o in outcomes if o.started >= back]
    first_ok = min((o.ended for o in after if o.error is None), default=None)
    figures = {
        "fault": fault,
        "ops": len(outcomes),
        "ok": sum(1 for o in outcomes if o.error is None),
        "holder_errors": [f"{type(o.error).__name__}: {o.error}"[:200] for o in held if o.error],
        "holder_error_seconds": [round(o.ended - o.started, 3) for o in held],
        "errors": errors.as_dict(),
        "slowest_error": round(
            max((o.ended - max(o.started, hit) for o in outcomes if o.error), default=0.0), 3
        ),
        "down_seconds": round(back - hit, 3),
        "first_ok_after_back": None if first_ok is None else round(first_ok - back, 3),
        "errors_after_back": sum(1 for o in after if o.error is not None),
        "loop_errors": loop_errors.calls[:10],
        "unraisable": ignored[:10],
        "sessions_left": server.sessions(APP_NAME),
    }
    record("server_faults", figures)
    assert not bad, figures
    assert all(o.error is not None for o in held), "a holder's transaction survived the fault"
    assert not slow, figures
    assert first_ok is not None, figures
    assert first_ok - back <= BACK, figures
    assert all(s == "idle" for _, s in figures["sessions_left"]), figures
    assert not loop_errors.calls, figures
    assert not ignored, figures
