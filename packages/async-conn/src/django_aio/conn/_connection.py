"""The async connection of one task for one alias."""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.transaction import TransactionManagementError

from ._greenlet import await_, start
from ._pool import pool_for
from ._scope import find_borrowable, pop_pin, push_pin
from ._testcase import BoundLease, bound_lease

if TYPE_CHECKING:
    from ._cursor import AsyncCursor
    from ._pool import Lease
    from ._scope import Scope

__all__ = ["AsyncConnection"]

ExecuteWrapper = Callable[..., Any]
logger = logging.getLogger("django_aio.conn")
# Strong references to fire-and-forget tasks (the loop keeps only weak ones).
_background: set[asyncio.Task[None]] = set()


class AsyncConnection:
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
        queries_limit = 9000
        self.queries_log: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=queries_limit
        )
        self.execute_wrappers: list[ExecuteWrapper] = []
        self._force_debug_cursor = False
        self._watching_task = False

    def __repr__(self) -> str:
        state = "held" if self.lease is not None else "idle"
        return f"<AsyncConnection alias={self.alias!r} task={self.scope.task.get_name()!r} {state}>"

    @property
    def settings_dict(self) -> dict[str, Any]:
        """The alias's entry of ``settings.DATABASES`` (with Django's defaults)."""
        settings_dict: dict[str, Any] = connections.settings[self.alias]
        return settings_dict

    # -- holding a physical connection -------------------------------------

    async def hold(self) -> Lease:
        """Hold a physical connection until the matching ``unhold()``.

        Nested holds share one connection. For layered packages; application
        code uses ``cursor()`` or a transaction block.
        """
        if self.lease is None:
            bound = bound_lease(self.alias)  # Note [Test-case binding]
            if bound is not None:
                await bound.borrow()
                self._borrowed = True
                self.lease = bound  # type: ignore[assignment]
                self._holds += 1
                return bound  # type: ignore[return-value]
            lease = find_borrowable(self)
            if lease is not None:
                await lease.lock.acquire()
                self._borrowed = True
            else:
                lease = await pool_for(self.alias).acquire()
                self._watch_task()
                wrapper = lease.wrapper
                wrapper.queries_log = self.queries_log
                wrapper.execute_wrappers = self.execute_wrappers
                wrapper.force_debug_cursor = self._force_debug_cursor
            self.lease = lease
        self._holds += 1
        return self.lease

    async def unhold(self) -> None:
        """Release one ``hold()``; the last one returns the connection to the pool."""
        if self._holds <= 0:
            raise RuntimeError(f"unhold() without hold() on {self!r}")
        self._holds -= 1
        if self._holds:
            return
        lease, self.lease = self.lease, None
        assert lease is not None
        if self._borrowed:
            self._borrowed = False
            if isinstance(lease, BoundLease):
                lease.give_back()
            else:
                lease.lock.release()
            return
        # Shielded: a second cancellation must not strand the connection. The
        # return usually completes without waiting; only the rest, if any,
        # needs a task of its own (Note [Fast path] in _greenlet.py).
        done, rest = start(lease.pool.release(lease))
        if not done:
            await asyncio.shield(rest)

    def _watch_task(self) -> None:
        # The safety net behind "a request's connections are released when it
        # ends": an ASGI request runs in its own task, and a task that ends
        # while still holding a connection (a hold() never undone, a task
        # destroyed mid-block) must not keep it from the pool.
        if not self._watching_task:
            self._watching_task = True
            self.scope.task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        lease = self.lease
        if lease is None or self._borrowed:
            return
        self.lease, self._holds = None, 0
        logger.warning(
            "task %r ended while holding a connection to database %r; it was closed "
            "instead of returned to the pool. Leave every cursor or transaction block "
            "before the task ends.",
            task.get_name(),
            self.alias,
        )
        loop = task.get_loop()
        if not loop.is_closed():
            closing = loop.create_task(lease.pool.release(lease, discard=True))
            _background.add(closing)
            closing.add_done_callback(_background.discard)

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
        pin, token = push_pin(self)
        try:
            yield lease.wrapper
        finally:
            pop_pin(pin, token)
            await self.unhold()

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

    @asynccontextmanager
    async def cursor(self) -> AsyncIterator[AsyncCursor]:
        """``async with connection.cursor() as cursor:``: a cursor on a held connection.

        The connection is held for the block (from the pool, or the one of the
        open transaction) and returned when the block ends.
        """
        from ._cursor import AsyncCursor
        from ._units import run_sync

        lease = await self.hold()
        try:
            django_cursor = await run_sync(lease.wrapper.cursor)
            cursor = AsyncCursor(lease.wrapper, django_cursor)
            try:
                yield cursor
            finally:
                await cursor.close()
        finally:
            await self.unhold()

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
        from ._units import run_sync

        if not callable(func):
            raise TypeError(f"on_commit() needs a callable, got {type(func).__name__} {func!r}.")
        callback = _bridged_callback(func)

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


def _bridged_callback(func: Callable[[], Awaitable[Any] | Any]) -> Callable[[], Any]:
    def run() -> Any:
        # Commit hooks run inside the bridge (the commit is bridged I/O), so
        # an async callback's coroutine can be awaited on the loop from here.
        result = func()
        if inspect.isawaitable(result):
            return await_(result)
        return result

    run.__qualname__ = getattr(func, "__qualname__", run.__qualname__)
    run.__wrapped__ = func  # type: ignore[attr-defined]
    return run
