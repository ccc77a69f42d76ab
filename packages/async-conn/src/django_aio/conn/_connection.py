"""The async connection of one task for one alias.

How it goes back when its task ends: Note [Task end] in _task_end.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.transaction import TransactionManagementError

from ._callbacks import as_sync_callback
from ._cursor import AsyncCursor
from ._greenlet import Shield, drive, start, uncancellable
from ._instrumentation import Instrumentation
from ._introspection import Introspection
from ._loops import pool_for
from ._manual import ManualTransactions
from ._named_cursor import AsyncNamedCursor, named_cursor
from ._providers import providers
from ._scope import Pinned, Scope, act_for, find_borrowable
from ._task_end import TaskEnd
from ._units import Unit, run_sync

if TYPE_CHECKING:
    from ._lease import Lease
    from ._providers import ConnectionProvider

__all__ = ["AsyncConnection"]

T = TypeVar("T")
logger = logging.getLogger("django_aio.conn")


class AsyncConnection(TaskEnd, ManualTransactions, Introspection, Instrumentation):
    """A task's connection to one database alias.

    Outside a transaction it holds no physical connection: each unit of work
    (a ``run_sync`` call, a cursor block) takes one from the pool and gives it
    back. Inside a transaction or cursor block the physical connection is held
    for the whole block. Get it from ``async_connections[alias]``.
    """

    def __init__(self, scope: Scope, alias: str = DEFAULT_DB_ALIAS) -> None:
        self.scope = scope
        self.alias = alias
        self.lease: Lease | None = None
        self._holds = 0
        self._borrowed = False
        # The provider that lent the held lease (Note [Connection providers]).
        self._lender: ConnectionProvider | None = None
        # Identifies one stretch of holding (first hold() to last unhold());
        # see Note [Task end].
        self._tenure: object | None = None
        # Units running on the held lease through run_held() (any task).
        self._active = 0
        self._orphaned = False
        Instrumentation.__init__(self)

    def __repr__(self) -> str:
        state = "held" if self.lease is not None else "idle"
        return f"<AsyncConnection alias={self.alias!r} task={self.scope.name!r} {state}>"

    @property
    def settings_dict(self) -> dict[str, Any]:
        """The alias's entry of ``settings.DATABASES`` (with Django's defaults)."""
        settings_dict: dict[str, Any] = connections.settings[self.alias]
        return settings_dict

    # -- holding a physical connection -------------------------------------

    async def hold(self) -> Lease:
        """Hold a physical connection until the matching ``unhold()``.

        Nested holds share one connection. For layered packages; application
        code uses ``cursor()`` or a transaction block. A block that may be
        left from another task (an async generator) reads ``tenure`` right
        after and passes it to ``unhold()``.
        """
        lease = self.hold_now()
        if lease is not None:
            return lease
        return await self._hold_waiting()

    async def _hold_waiting(self) -> Lease:
        # hold() after hold_now() said it must wait.
        provider = providers.current  # Note [Connection providers]
        lease = None if provider is None else await provider.lend(self)
        if lease is not None:
            self._borrowed = True
            self._lender = provider
        elif (lease := find_borrowable(self)) is not None:
            await lease.lock.acquire()
            self._borrowed = True
        else:
            pool = pool_for(self.alias)
            lease = await (pool.acquire() if provider is None else provider.acquire(self, pool))
            self._from_pool(lease)
        self.lease = lease
        self._tenure = object()
        self._holds += 1
        return lease

    def hold_now(self) -> Lease | None:
        """``hold()`` when it needs no waiting: a connection held already, or an idle one.

        ``None``, having changed nothing, when ``hold()`` must wait (an empty
        pool, a connection lent by another task, a provider's). Saves the
        bridge a coroutine per checkout (Note [Fast path] in _greenlet.py).
        """
        if self.lease is None:
            if providers.current is not None or find_borrowable(self) is not None:
                return None
            lease = pool_for(self.alias).acquire_now()
            if lease is None:
                return None
            self._from_pool(lease)
            self.lease = lease
            self._tenure = object()
        self._holds += 1
        return self.lease

    def _from_pool(self, lease: Lease) -> None:
        self.scope.watch()
        wrapper = lease.wrapper
        wrapper.queries_log = self.queries_log
        wrapper.execute_wrappers = self.execute_wrappers
        wrapper.force_debug_cursor = self._force_debug_cursor

    @property
    def tenure(self) -> object | None:
        """The current stretch of holding, for ``unhold(tenure)`` (Note [Task end])."""
        return self._tenure

    async def unhold(self, tenure: object | None = None) -> None:
        """Release one ``hold()``; the last one returns the connection to the pool.

        With ``tenure`` (read after the matching ``hold()``), a release that
        comes after the connection was already given back because its task
        ended does nothing (Note [Task end]).
        """
        if not self.unhold_now(tenure):
            await self._unhold_waiting()

    async def _unhold_waiting(self) -> None:
        # The last hold, on a connection that must wait to go back: its
        # server-side cursors to close, or a provider's return. Shielded: a
        # second cancellation must not strand the connection; the return
        # often completes without waiting, and only the rest, if any, needs a
        # task of its own (Note [Fast path] in _greenlet.py).
        self._holds = 0
        lease, self.lease, self._tenure = self.lease, None, None
        assert lease is not None
        provider = providers.current  # Note [Connection providers]
        done, rest = start(
            lease.pool.release(lease) if provider is None else provider.release(self, lease)
        )
        if not done:
            await asyncio.shield(rest)

    def unhold_now(self, tenure: object | None = None) -> bool:
        """``unhold()`` when it needs no waiting, which is nearly always.

        ``False``, having changed nothing, when the last hold's connection
        must wait to go back (see ``unhold()``).
        """
        if tenure is not None and tenure is not self._tenure:
            return True
        if self._holds <= 0:
            raise RuntimeError(f"unhold() without hold() on {self!r}")
        lease = self.lease
        assert lease is not None
        last_from_pool = self._holds == 1 and not self._borrowed
        if last_from_pool and (providers.current is not None or not lease.pool.releases_now(lease)):
            return False
        self._holds -= 1
        if self._holds:
            return True
        self.lease = self._tenure = None
        if not self._borrowed:
            lease.pool.release_now(lease)
            return True
        self._borrowed = False
        lender, self._lender = self._lender, None
        if lender is not None:
            lender.give_back(self, lease)
        else:
            lease.lock.release()
        return True

    async def run_held(
        self, tenure: object | None, fn: Callable[..., T], *args: Any, shield: bool = False
    ) -> T:
        """Run sync ``fn`` in the bridge on this connection's held lease, from any task.

        For the exit of blocks that hold the connection (a transaction, a
        named-cursor iteration): they may be left by the loop's finalizer of
        an abandoned async generator, in a task of its own. If ``tenure`` is
        over (the connection was given back when its task ended), ``fn``
        runs with no connection at all: whatever it closes is closed already.
        With ``shield``, a cancellation waits for ``fn`` to finish and is
        raised afterwards (Note [Uncancellable exit] in django_aio.atomic).
        """
        lease = self.lease
        unit: Unit
        if tenure is None or tenure is not self._tenure or lease is None:
            unit = Unit(None)
        else:
            unit = Unit.on(self.scope, lease)
        self._active += 1
        try:
            if not shield:
                return await _drive_and_finish(unit, fn, *args)
            if asyncio.current_task() is self.scope.task:
                return await _drive_shielded(unit, fn, *args)
            # Left from another task (an abandoned async generator finalized
            # by the loop): that task must act for this connection's.
            done, rest = start(_drive_and_finish(unit, fn, *args))
            if done:
                return cast(T, rest)
            # The rest runs in a task of its own so that it can be shielded;
            # it acts for this connection's task (its scope, its pins), as
            # the work it finishes began there.
            task = asyncio.ensure_future(rest)
            act_for(task, self.scope)
            return cast(T, await uncancellable(task))
        finally:
            self._active -= 1
            if self._orphaned and not self._active:
                self._orphaned = False
                self._reclaim_soon()

    async def release_all(self) -> None:
        if self._holds:
            self._holds = 1
            await self.unhold()

    def pinned(self) -> AbstractAsyncContextManager[Any]:
        """Hold the connection for a transaction block and pin it to this task.

        ``async with`` it gives the bridged Django wrapper. Tasks created
        inside the block are refused this alias (see Note [Transactions and
        child tasks]). For django_aio.atomic; application code uses
        ``async_atomic()``.
        """
        return Pinned(self)

    @property
    def borrowed(self) -> bool:
        """Whether the held connection is lent by a blocked owner task.

        See Note [Transactions and child tasks] in ``_scope.py``.
        """
        return self._borrowed

    @property
    def in_atomic_block(self) -> bool:
        """Whether a transaction (``async_atomic`` or bridged ``atomic``) is open."""
        return self.lease is not None and bool(self.lease.wrapper.in_atomic_block)

    @property
    def django_connection(self) -> Any:
        """The Django wrapper of the held connection, or ``None`` when none is held."""
        return None if self.lease is None else self.lease.wrapper

    # -- cursors -----------------------------------------------------------

    @overload
    def cursor(self) -> AbstractAsyncContextManager[AsyncCursor]: ...
    @overload
    def cursor(
        self, name: str, *, scrollable: bool | None = None, withhold: bool | None = None
    ) -> AbstractAsyncContextManager[AsyncNamedCursor]: ...
    def cursor(
        self,
        name: str | None = None,
        *,
        scrollable: bool | None = None,
        withhold: bool | None = None,
    ) -> AbstractAsyncContextManager[AsyncCursor]:
        """``async with connection.cursor() as cursor:``: a cursor on a held connection.

        The connection is held for the block (from the pool, or the one of the
        open transaction) and returned when the block ends. With ``name``, a
        named (server-side) cursor, closed when the block ends; ``scrollable``
        and ``withhold`` as in psycopg, except that ``withhold=None`` follows
        Django (``WITH HOLD`` outside a transaction; see _named_cursor.py).
        """
        if name is not None:
            return named_cursor(self, name, scrollable, withhold)
        return self._cursor()

    @asynccontextmanager
    async def _cursor(self) -> AsyncIterator[AsyncCursor]:
        lease = await self.hold()
        tenure = self._tenure
        try:
            django_cursor = await run_sync(lease.wrapper.cursor)
            cursor = AsyncCursor(lease.wrapper, django_cursor)
            try:
                yield cursor
            finally:
                await cursor.close()
        finally:
            await self.unhold(tenure)

    async def close(self) -> None:
        """Return this task's connection to the pool.

        Outside cursor and transaction blocks nothing is held and this does
        nothing; inside a transaction it raises rather than lose the work.
        """
        if self.lease is None:
            return
        if self.lease.in_transaction():
            raise TransactionManagementError(
                f"can't close database {self.alias!r} while a transaction is open on it; "
                f"leave the async_atomic() block first."
            )
        await self.release_all()

    # -- on_commit ---------------------------------------------------------

    async def on_commit(
        self, func: Callable[[], Awaitable[Any] | Any], robust: bool = False
    ) -> None:
        """Run ``func`` (sync or ``async def``) after the current transaction commits.

        Outside a transaction it runs at once, as Django's ``on_commit`` does.
        Callbacks are dropped if the transaction (or the savepoint they were
        registered in) rolls back.
        """
        if not callable(func):
            raise TypeError(f"on_commit() needs a callable, got {type(func).__name__} {func!r}.")
        callback = as_sync_callback(func)

        def register() -> None:
            connections[self.alias].on_commit(callback, robust=robust)

        await run_sync(register)


# Scope.connection() creates these; _scope.py cannot import this module.
Scope.connection_class = AsyncConnection


async def _drive_and_finish(unit: Unit, fn: Callable[..., T], *args: Any) -> T:
    try:
        return await drive(unit, fn, *args)
    finally:
        # Connections of other aliases the unit took on the way.
        if unit.own and not unit.finish_now():
            await unit.finish()


async def _drive_shielded(unit: Unit, fn: Callable[..., T], *args: Any) -> T:
    # In the calling task, immune to its cancellation, which is raised once
    # the work is over unless the work raised (Note [Inline shield] in
    # _greenlet.py).
    shield = unit.shield = Shield()
    try:
        result = await drive(unit, fn, *args)
    finally:
        if unit.own and not unit.finish_now():
            await shield.protect(unit.finish())
    if shield.cancelled:
        raise asyncio.CancelledError
    return result
