"""What test isolation builds on django_aio.conn's layers, in one place.

django_aio.conn has no API for "every task of this test uses this one
connection" or "which connections are checked out right now"; both are test
concerns, so they live here, built on ``django_aio.conn.layers``: its lending
windows, and its connection-provider hook, which this package installs for
the duration of each test (``Tracking``) and never patches conn's classes.
Versions of django-aio-conn and django-aio-testing move together (see the
dependency bounds), and everything this package touches is below.

Note [One connection per test]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
A rollback test keeps all its data in one uncommitted transaction, so every
task of the test must run its queries on that one connection: the test's own
task, the tasks it gathers, async fixtures. We take a lease from the pool
ourselves (no task holds it) and open a *lending window* over it, the same
mechanism conn uses to let children borrow a transaction while its owner
waits on ``async_to_sync`` (Note [Transactions and child tasks] in conn's
_scope.py). Every task whose context carries the window borrows the lease, one
hold at a time.

The window's owner is a sentinel, never a real task, so an ``async_atomic()``
block that a test task opens still pins the connection to that task: tasks
created inside the block are refused, exactly as in production.

Borrowers serialize on the lease's lock. conn's own lending lets a blocked
*owner's* children in, but in a test the blocked task is itself a borrower
(it holds the lock while Django waits on an async signal receiver), so the
lease gets a ``SharedLock`` that also admits the children of the current
holder while that holder lends to them.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import types
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.db import connections
from django.db.utils import load_backend

from django_aio.conn import bridgeable_engine, layers

__all__ = [
    "Checkout",
    "SharedLock",
    "Tracking",
    "Window",
    "acquire_lease",
    "close_window",
    "open_window",
    "prepare_bridged_classes",
    "release_lease",
    "run_on_lease",
    "task_connection",
]

T = TypeVar("T")
Lease = Any  # django_aio.conn.layers.Lease (its attributes are used untyped here)


def prepare_bridged_classes() -> None:
    """Build conn's bridged wrapper classes up front (they are cached).

    conn builds them from Django's unpatched methods whenever they are first
    needed, so this only moves the work out of the first test.
    """
    for alias in connections:
        engine = connections.settings[alias]["ENGINE"]
        if bridgeable_engine(engine):
            layers.bridged_class(load_backend(engine).DatabaseWrapper)


class SharedLock:
    """A lease lock that also admits the children of a lending holder.

    See Note [One connection per test]. Holders form a stack: a task may
    enter while the lock is held only if the top holder lends to it.
    """

    def __init__(self) -> None:
        self.holders: list[asyncio.Task[Any]] = []
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def locked(self) -> bool:
        return bool(self.holders)

    def _may_enter(self) -> bool:
        if not self.holders:
            return True
        lending = layers.lending_var.get()
        return lending is not None and lending.active and lending.task is self.holders[-1]

    async def acquire(self) -> bool:
        task = asyncio.current_task()
        assert task is not None
        while not self._may_enter():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.holders.append(task)
        return True

    def release(self) -> None:
        # Holds nest, so the innermost holder releases first. (conn releases
        # from a shielded helper task, so current_task() would not match.)
        if not self.holders:
            raise RuntimeError("release of an unlocked SharedLock")
        self.holders.pop()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


class _WindowOwner:
    """Stands in for the owner task of the test's lending window."""

    def get_name(self) -> str:
        return "django_aio test"


@dataclass
class Window:
    leases: dict[str, Lease]
    lending: Any
    token: Any


def open_window(leases: dict[str, Lease]) -> Window:
    """Let every task of the current context borrow ``leases`` (Note [One connection per test])."""
    for lease in leases.values():
        lease.lock = SharedLock()
    lending = layers.Lending(cast(Any, _WindowOwner()), dict(leases))
    token = layers.lending_var.set(lending)
    return Window(leases, lending, token)


def close_window(window: Window) -> None:
    window.lending.active = False
    if layers.lending_var.get() is window.lending:
        try:
            layers.lending_var.reset(window.token)
        except ValueError:  # set in another context (a fixture's setup task)
            layers.lending_var.set(None)
    for lease in window.leases.values():
        if not lease.lock.locked():
            # Otherwise a leaked holder still has to release it.
            lease.lock = asyncio.Lock()


def task_connection(task: asyncio.Task[Any], alias: str) -> Any | None:
    """``task``'s ``AsyncConnection`` for ``alias`` if it made one (none is created)."""
    scope = layers.task_scope(task)
    return None if scope is None else scope.connections.get(alias)


def window_holders(lease: Lease) -> list[asyncio.Task[Any]]:
    lock = lease.lock
    return list(lock.holders) if isinstance(lock, SharedLock) else []


async def acquire_lease(alias: str) -> Lease:
    """A lease straight from the pool, held by no task (and tracked by none)."""
    return await layers.pool_for(alias).acquire()


async def release_lease(lease: Lease, *, discard: bool = False) -> None:
    await asyncio.shield(lease.pool.release(lease, discard=discard))


async def run_on_lease(lease: Lease, fn: Callable[..., T], *args: Any) -> T:
    """Run sync ``fn`` in the bridge on ``lease``, bypassing every task's holds and locks."""
    return await layers.drive(layers.Unit.fixed(lease), fn, *args)


# -- which connections are checked out ------------------------------------


@dataclass(frozen=True)
class Checkout:
    """Who took a pooled connection, for leak messages."""

    alias: str
    task: str
    where: str


_SKIP = (
    os.sep + os.path.join("django_aio", ""),
    os.sep + os.path.join("asyncio", ""),
    os.sep + os.path.join("django", ""),
    os.sep + os.path.join("asgiref", ""),
    os.sep + "contextlib.py",
    os.sep + os.path.join("_pytest", ""),
    os.sep + os.path.join("pytest_asyncio", ""),
    os.sep + os.path.join("anyio", ""),
)


def _caller() -> str:
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not any(part in filename for part in _SKIP):
            return f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return "unknown code"


class Tracking(layers.ConnectionProvider):
    """One test's view of the pooled connections of its event loop.

    Installed for the duration of the test (``install()``/``uninstall()``),
    it records who takes each pooled connection and which ones a task left
    held when it ended, and refuses connections to aliases the test did not
    ask for: a rollback test's work there would commit for real (Django's
    test cases refuse it in the same words). ``hint`` says how to allow one
    (``{alias}`` is filled in). Work on other event loops (``async_to_sync``
    in a thread) passes through untouched.
    """

    def __init__(self, aliases: list[str], hint: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.allowed = frozenset(aliases)
        self.hint = hint
        self._checkouts: weakref.WeakKeyDictionary[Any, Checkout] = weakref.WeakKeyDictionary()
        self._ended: list[tuple[Checkout, bool]] = []

    def install(self) -> None:
        layers.install_provider(self)

    def uninstall(self) -> None:
        if self in layers.installed_providers():
            layers.uninstall_provider(self)

    def _ours(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    async def acquire(self, connection: Any, pool: Any) -> Lease:
        if not self._ours():
            return await super().acquire(connection, pool)
        if pool.alias not in self.allowed:
            from django.test.testcases import DatabaseOperationForbidden  # type: ignore[attr-defined]

            raise DatabaseOperationForbidden(
                f"Database queries to {pool.alias!r} are not allowed in this test. "
                + self.hint.format(alias=repr(pool.alias))
            )
        lease = await super().acquire(connection, pool)
        task = asyncio.current_task()
        self._checkouts[lease] = Checkout(
            pool.alias, task.get_name() if task is not None else "?", _caller()
        )
        return lease

    async def release(self, connection: Any, lease: Lease, *, discard: bool = False) -> bool:
        self._checkouts.pop(lease, None)
        return await super().release(connection, lease, discard=discard)

    def ended_holding(self, connection: Any, lease: Lease) -> None:
        # conn takes back the connection a task left held when it ended (and
        # closes it if a transaction was open); the test must still fail for
        # it, so remember it here. A block an abandoned async generator leaves
        # later gives its connection back itself and is not a leak.
        who = self._checkouts.get(lease)
        if who is not None:
            self._ended.append((who, lease.in_transaction()))
        super().ended_holding(connection, lease)

    def checked_out(self) -> list[tuple[Lease, Checkout]]:
        """The pooled connections taken during the test and not given back."""
        return list(self._checkouts.items())

    def forget(self, lease: Lease) -> None:
        self._checkouts.pop(lease, None)

    def ended_holding_tasks(self) -> list[tuple[Checkout, bool]]:
        """Checkouts whose task ended holding them, each with whether a
        transaction was open on it; cleared on read."""
        ended, self._ended = self._ended, []
        return ended
