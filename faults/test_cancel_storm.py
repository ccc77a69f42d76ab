"""Scenario 1: a storm of cancellations over reads, writes, aiterator() and transactions.

About 200 workers each start one operation at a time as a task and cancel
many at random points: ``asyncio.wait_for`` with tiny timeouts,
``task.cancel()`` after a short delay, two cancels in a row, a cancel before
the task first runs, and a cancel landing while ``async_atomic`` commits. The
ledger's transfers move money between two accounts inside ``async_atomic``.

Pass: no loop exception-handler call and no exception ignored by
``sys.unraisablehook``; no error other than the cancellations (and the
transfers that raise on purpose); afterwards every app session on the server
is idle (none ``active``, none ``idle in transaction``) and there are no more
than ``max_size``; the ledger's total is intact and each balance matches the
transfers table; every acknowledged transfer (its block exited normally) is
in the table; no transfer whose block body raised is.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.db.models import F

from django_aio.atomic import async_atomic
from django_aio.conn import async_connections
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
from faults.app.models import Account, Book, Transfer
from faults.server import Server

WORKERS = 200
ACCOUNTS = 20
BALANCE = 1000
MAX_SIZE = 10


class Deliberate(Exception):
    """Raised inside a transfer's block on purpose: it must roll back."""


@dataclass
class Ledger:
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    acknowledged: set[int] = field(default_factory=set)  # the block exited normally
    body_raised: set[int] = field(default_factory=set)  # the body did not finish
    unknown: set[int] = field(default_factory=set)  # the body finished, the exit raised

    async def transfer(self, mode: str = "") -> None:
        tid = next(self.ids)
        source, target = random.sample(range(1, ACCOUNTS + 1), 2)
        amount = random.randint(1, 50)
        body_done = False
        try:
            async with async_atomic():
                # Rows locked in id order: no deadlock between two transfers.
                for pk, delta in sorted([(source, -amount), (target, amount)]):
                    await Account.objects.filter(pk=pk).aupdate(balance=F("balance") + delta)
                await Transfer.objects.acreate(id=tid, source=source, target=target, amount=amount)
                if mode == "fail":
                    raise Deliberate(tid)
                if mode == "commit_cancel":
                    task = asyncio.current_task()
                    assert task is not None
                    asyncio.get_running_loop().call_soon(task.cancel)  # lands in COMMIT
                body_done = True
        except BaseException:
            (self.unknown if body_done else self.body_raised).add(tid)
            raise
        self.acknowledged.add(tid)


async def read() -> None:
    await Account.objects.aget(pk=random.randint(1, ACCOUNTS))


async def slow_read() -> None:
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT pg_sleep(%s)", [random.uniform(0.001, 0.02)])
        await cursor.fetchone()


async def write() -> None:
    await Book.objects.acreate(title="storm")


async def iterate_and_break() -> None:
    stop = random.randint(1, 60)
    async for book in Book.objects.aiterator(chunk_size=20):
        if book.pk >= stop:
            break


async def run_one(op: Callable[[], Awaitable[None]], how: str) -> None:
    """Run ``op`` as a task and cancel it the ``how`` way."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(op())
    delay = random.uniform(0, 0.02)
    if how == "wait_for":
        await asyncio.wait_for(task, delay)
        return
    if how == "cancel":
        loop.call_later(delay, task.cancel)
    elif how == "double_cancel":
        loop.call_later(delay, task.cancel)
        loop.call_later(delay + random.uniform(0, 0.005), task.cancel)
    elif how == "cancel_at_once":
        task.cancel()
    await task


async def test_cancel_storm(server: Server, loop_errors: LoopErrors) -> None:
    use_server(server, pool={"min_size": 2, "max_size": MAX_SIZE, "timeout": 20.0})
    seed(server, accounts=ACCOUNTS, balance=BALANCE, books=100)
    ledger = Ledger()
    ops: dict[str, Callable[[], Awaitable[None]]] = {
        "read": read,
        "slow_read": slow_read,
        "write": write,
        "aiterator_break": iterate_and_break,
        "transfer": ledger.transfer,
        "transfer_fail": lambda: ledger.transfer("fail"),
        "transfer_commit_cancel": lambda: ledger.transfer("commit_cancel"),
    }
    hows = ["none", "none", "wait_for", "cancel", "double_cancel", "cancel_at_once"]
    done: dict[str, int] = dict.fromkeys(["ok", "cancelled", "deliberate"], 0)
    errors = ErrorCounter()
    end = time.monotonic() + duration(8)

    async def worker() -> None:
        while time.monotonic() < end:
            name = random.choice(list(ops))
            try:
                await run_one(ops[name], random.choice(hows))
                done["ok"] += 1
            except (asyncio.CancelledError, TimeoutError):
                done["cancelled"] += 1
            except Deliberate:
                done["deliberate"] += 1
            except Exception as exc:
                errors.add(exc)

    started = time.monotonic()
    with unraisable() as ignored:
        async with asyncio.timeout(duration(8) + 60):  # a hang fails here
            await asyncio.gather(*(worker() for _ in range(WORKERS)))
        storm = time.monotonic() - started
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.1)

    def settled() -> bool:
        states = [state for _, state in server.sessions(APP_NAME)]
        return all(state == "idle" for state in states)

    wait_until(settled, 3.0)
    sessions = server.sessions(APP_NAME)
    balances = dict(server.sql("SELECT id, balance FROM faults_account"))
    committed = {
        tid: (source, target, amount)
        for tid, source, target, amount in server.sql("SELECT * FROM faults_transfer")
    }
    expected = dict.fromkeys(range(1, ACCOUNTS + 1), BALANCE)
    for source, target, amount in committed.values():
        expected[source] -= amount
        expected[target] += amount
    figures = {
        "seconds": round(storm, 2),
        "ops": sum(done.values()) + sum(errors.counts.values()),
        **done,
        "errors": errors.as_dict(),
        "loop_errors": loop_errors.calls[:10],
        "loop_error_count": len(loop_errors.calls),
        "unraisable": ignored[:10],
        "transfers": {
            "acknowledged": len(ledger.acknowledged),
            "body_raised": len(ledger.body_raised),
            "unknown_outcome": len(ledger.unknown),
            "unknown_committed": len(ledger.unknown & committed.keys()),
            "committed": len(committed),
        },
        "ledger_total": sum(balances.values()),
        "sessions_left": len(sessions),
        "sessions_not_idle": [s for s in sessions if s[1] != "idle"],
    }
    record("cancel_storm", figures)
    assert not loop_errors.calls, figures
    assert not ignored, figures
    assert not errors.counts, figures
    assert not figures["sessions_not_idle"], figures
    assert len(sessions) <= MAX_SIZE, figures
    assert figures["ledger_total"] == ACCOUNTS * BALANCE, figures
    assert balances == expected, "balances do not match the committed transfers"
    assert ledger.acknowledged <= committed.keys(), "an acknowledged commit is missing"
    assert not ledger.body_raised & committed.keys(), "a transfer whose block raised committed"
