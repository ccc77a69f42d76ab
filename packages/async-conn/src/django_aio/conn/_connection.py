"""The async connection of one task for one alias.

How it goes back when its task ends: Note [Task end] in _task_end.py.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.transaction import TransactionManagementError

from ._callbacks import as_sync_callback
from ._cursor import AsyncCursor
from ._greenlet import Shield, drive, start, uncancellable
from ._introspection import Introspection
from ._loops import pool_for
from ._manual import ManualTransactions
from ._named_cursor import AsyncNamedCursor, named_cursor
from ._providers import providers
from ._scope import Scope, act_for, find_borrowable, pop_pin, push_pin
from ._task_end import TaskEnd
from ._units import Unit, run_sync

if TYPE_CHECKING:
    from ._lease import Lease
    from ._providers import ConnectionProvider

__all__ = ["AsyncConnection"]

T = TypeVar("T")
ExecuteWrapper = Callable[..., Any]
logger = logging.getLogger("django_aio.conn")


class AsyncConnection(TaskEnd, ManualTransactions, Introspection):
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
        queries_limit = 9000
        self.queries_log: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=queries_limit
        )
        self.execute_wrappers: list[ExecuteWrapper] = []
        self._force_debug_cursor = False

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
        if self.lease is None:
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
                self.scope.watch()
                wrapper = lease.wrapper
                wrapper.queries_log = self.queries_log
                wrapper.execute_wrappers = self.execute_wrappers
                wrapper.force_debug_cursor = self._force_debug_cursor
            self.lease = lease
            self._tenure = object()
        self._holds += 1
        return self.lease

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
        if tenure is not None and tenure is not self._tenure:
            return
        if self._holds <= 0:
            raise RuntimeError(f"unhold() without hold() on {self!r}")
        self._holds -= 1
        if self._holds:
            return
        lease, self.lease, self._tenure = self.lease, None, None
        assert lease is not None
        if self._borrowed:
            self._borrowed = False
            lender, self._lender = self._lender, None
            if lender is not None:
                lender.give_back(self, lease)
            else:
                lease.lock.release()
            return
        # Shielded: a second cancellation must not strand the connection. The
        # return usually completes without waiting; only the rest, if any,
        # needs a task of its own (Note [Fast path] in _greenlet.py).
        provider = providers.current  # Note [Connection providers]
        done, rest = start(
            lease.pool.release(lease) if provider is None else provider.release(self, lease)
        )
        if not done:
            await asyncio.shield(rest)

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

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[Any]:
        """Hold the connection for a transaction block and pin it to this task.

        Yields the bridged Django wrapper. Tasks created inside the block are
        refused this alias (see Note [Transactions and child tasks]). For
        django_aio.atomic; application code uses ``async_atomic()``.
        """
        lease = await self.hold()
        tenure = self._tenure
        pin, token = push_pin(self)
        try:
            yield lease.wrapper
        finally:
            pop_pin(pin, token)
            await self.unhold(tenure)

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

    # -- instrumentation (as on Django's connection) -----------------------

    @property
    def queries(self) -> list[dict[str, Any]]:
        """Queries run by this task on this alias (with ``DEBUG`` or ``force_debug_cursor``)."""
        if len(self.queries_log) == self.queries_log.maxlen:
            warnings.warn(
                f"Limit for query logging exceeded, only the last "
                f"{self.queries_log.maxlen} queries will be returned.",
                stacklevel=2,
            )
        return list(self.queries_log)

    @property
    def force_debug_cursor(self) -> bool:
        """Log queries even without ``DEBUG`` (as ``CaptureQueriesContext`` does)."""
        return self._force_debug_cursor

    @force_debug_cursor.setter
    def force_debug_cursor(self, value: bool) -> None:
        self._force_debug_cursor = value
        if self.lease is not None and not self._borrowed:
            self.lease.wrapper.force_debug_cursor = value

    @contextmanager
    def execute_wrapper(self, wrapper: ExecuteWrapper) -> Iterator[None]:
        """Install a Django execute wrapper for this task's queries on this alias."""
        self.execute_wrappers.append(wrapper)
        try:
            yield
        finally:
            self.execute_wrappers.pop()


# Scope.connection() creates these; _scope.py cannot import this module.
Scope.connection_class = AsyncConnection


async def _drive_and_finish(unit: Unit, fn: Callable[..., T], *args: Any) -> T:
    try:
        return await drive(unit, fn, *args)
    finally:
        if unit.own:  # connections of other aliases the unit took on the way
            await unit.finish()


async def _drive_shielded(unit: Unit, fn: Callable[..., T], *args: Any) -> T:
    # In the calling task, immune to its cancellation, which is raised once
    # the work is over unless the work raised (Note [Inline shield] in
    # _greenlet.py).
    shield = unit.shield = Shield()
    try:
        result = await drive(unit, fn, *args)
    finally:
        if unit.own:
            await shield.protect(unit.finish())
    if shield.cancelled:
        raise asyncio.CancelledError
    return result
