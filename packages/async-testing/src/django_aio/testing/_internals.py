"""The few internals of django_aio.conn that test isolation needs, in one place.

django_aio.conn has no API for "every task of this test uses this one
connection" or "which connections are checked out right now"; both are test
concerns, so they live here, built on ``django_aio.conn.layers`` (and the
hook ``AsyncConnection._reclaiming``, which conn keeps for test tooling).
Versions of django-aio-conn and
django-aio-testing move together (see the dependency bounds), and everything
this package touches is below.

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

from django_aio.conn import AsyncConnection as _AsyncConnection
from django_aio.conn import bridgeable_engine, layers

__all__ = [
    "Checkout",
    "SharedLock",
    "Window",
    "acquire_lease",
    "checked_out",
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
    """A lease straight from the pool, held by no task."""
    install_tracking()
    lease = await layers.pool_for(alias).acquire()
    _checkouts.pop(lease, None)  # the test's own connection is not a leak
    return lease


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
    loop: asyncio.AbstractEventLoop


_checkouts: weakref.WeakKeyDictionary[Any, Checkout] = weakref.WeakKeyDictionary()
_ended_holding: list[tuple[Checkout, bool]] = []
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


def install_tracking() -> None:
    """Record who checks each pooled connection out (idempotent)."""
    cls: Any = layers.AliasPool
    if getattr(cls, "_django_aio_tracked", False):
        return
    acquire = cls.acquire
    release = cls.release

    async def tracked_acquire(self: Any) -> Lease:
        allowed = _allowed.get(asyncio.get_running_loop())
        if allowed is not None and self.alias not in allowed[0]:
            from django.test.testcases import DatabaseOperationForbidden  # type: ignore[attr-defined]

            raise DatabaseOperationForbidden(
                f"Database queries to {self.alias!r} are not allowed in this test. "
                + allowed[1].format(alias=repr(self.alias))
            )
        lease = await acquire(self)
        task = asyncio.current_task()
        _checkouts[lease] = Checkout(
            self.alias,
            task.get_name() if task is not None else "?",
            _caller(),
            asyncio.get_running_loop(),
        )
        return lease

    async def tracked_release(self: Any, lease: Lease, *, discard: bool = False) -> bool:
        _checkouts.pop(lease, None)
        returned: bool = await release(self, lease, discard=discard)
        return returned

    cls.acquire = tracked_acquire
    cls.release = tracked_release
    cls._django_aio_tracked = True

    # conn takes back the connection a task left held when it ended (and
    # closes it if a transaction was open); a test must still fail for it,
    # so remember it here. A block an abandoned async generator leaves later
    # gives its connection back itself and is not a leak.
    connection_class: Any = _AsyncConnection
    reclaiming = connection_class._reclaiming

    def tracked_reclaiming(self: Any, lease: Lease) -> None:
        who = _checkouts.get(lease)
        if who is not None:
            _ended_holding.append((who, lease.in_transaction()))
        reclaiming(self, lease)

    connection_class._reclaiming = tracked_reclaiming


# Per loop: the aliases the running test may use, and how to allow another.
_allowed: dict[asyncio.AbstractEventLoop, tuple[frozenset[str], str]] = {}


def restrict(aliases: list[str], hint: str) -> None:
    """Refuse pooled connections to other aliases on this loop until ``unrestrict()``.

    A rollback test's work on another alias would commit for real; Django's
    test cases refuse it in the same words. ``hint`` says how to allow one
    (``{alias}`` is filled in).
    """
    _allowed[asyncio.get_running_loop()] = (frozenset(aliases), hint)


def unrestrict() -> None:
    _allowed.pop(asyncio.get_running_loop(), None)


def checked_out() -> list[tuple[Lease, Checkout]]:
    """Connections of the running loop's pools that are checked out now."""
    loop = asyncio.get_running_loop()
    return [(lease, c) for lease, c in list(_checkouts.items()) if c.loop is loop]


def forget(lease: Lease) -> None:
    _checkouts.pop(lease, None)


def ended_holding() -> list[tuple[Checkout, bool]]:
    """Checkouts of the running loop whose task ended holding them; cleared on read.

    Each comes with whether a transaction was open on it.
    """
    loop = asyncio.get_running_loop()
    mine = [entry for entry in _ended_holding if entry[0].loop is loop]
    _ended_holding[:] = [entry for entry in _ended_holding if entry[0].loop is not loop]
    return mine
