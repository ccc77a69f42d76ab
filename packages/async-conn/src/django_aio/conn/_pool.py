"""The pool of ready connections of one database alias on one event loop.

Note [Leases] is in _lease.py.

Note [Clean returns]
~~~~~~~~~~~~~~~~~~~~
A lease goes back to the pool only when it is provably clean: no atomic block,
autocommit on, the server idle outside any transaction, no broken socket. Named
cursors left open are closed first. Anything else closes the connection and
frees its slot: a dirty connection never reaches another task.

Note [Inline connections]
~~~~~~~~~~~~~~~~~~~~~~~~~
The pool opens a connection in the task that needs one, when no idle one is
left and a slot is free; there is no background worker. So an error from the
server (refused, authentication failed, no such database, shutting down)
reaches that caller at once as Django's ``OperationalError``, never as a pool
timeout; nothing is left half-open when a short-lived loop (``asyncio.run()``,
``async_to_sync``) ends; and a waiting task is woken as soon as a slot frees,
to use it or to connect in it. Idle connections are handed out last-in
first-out, so back-to-back work reuses one warm server process.
``min_size`` connections are kept when idle instead of being closed after
``max_idle``; they are not opened ahead of use.

Note [Dead connections]
~~~~~~~~~~~~~~~~~~~~~~~
When the server goes away inside a transaction, Django's ``Atomic.__exit__``
closes the connection and may reconnect (``set_autocommit(True)``). The lease
then opens its replacement in its own slot: it never waits for a second one
while holding the first, which would stall every task when a failover hits
all slots at once. After a connection came back broken, idle connections
older than that are checked before they are handed out. Every idle
connection is also polled (one system call) as it leaves the pool: one the
server has already said goodbye on is dropped, so the first request after a
server restart or shutdown gets a fresh connection (or the real "connection
refused") rather than a stale one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from typing import Any, cast

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import utils
from django.db.utils import load_backend

from ._bridgeable import bridgeable_engine
from ._errors import PoolClosed, PoolTimeout, TooManyWaiting
from ._greenlet import drive
from ._lease import Lease, close_now, still_open
from ._pool_options import pool_options
from ._socket_wait import WaitingConnection
from ._sync_facade import SyncConnection
from ._units import Unit
from ._wrapper import bridged_class

__all__ = ["AliasPool", "Lease"]

logger = logging.getLogger("django_aio.conn")


class _Expired:
    """What the timer sends a waiter whose time is up: how many others still wait."""

    __slots__ = ("others",)

    def __init__(self, others: int) -> None:
        self.others = others


def _as_django_error(exc: psycopg.Error, prefix: str) -> utils.Error:
    for name in ("OperationalError", "InterfaceError", "ProgrammingError", "InternalError"):
        if isinstance(exc, getattr(psycopg, name)):
            django_class: type[utils.Error] = getattr(utils, name)
            return django_class(f"{prefix}{exc}")
    return utils.DatabaseError(f"{prefix}{exc}")


class AliasPool:
    """The leases of one database alias on one event loop (Note [Inline connections])."""

    def __init__(self, alias: str, settings_dict: dict[str, Any]) -> None:
        self.alias = alias
        self.settings_dict = settings_dict
        backend = load_backend(settings_dict["ENGINE"])  # Django's error for a bad ENGINE
        wrapper_class = backend.DatabaseWrapper
        if not bridgeable_engine(settings_dict["ENGINE"]):
            raise ImproperlyConfigured(
                f"database {alias!r} uses ENGINE {settings_dict['ENGINE']!r}; async "
                f"connections need ENGINE 'django_aio.conn.backends.postgresql' (or a "
                f"subclass of its DatabaseWrapper)."
            )
        options = pool_options(alias, settings_dict)
        self.name: str = options.get("name") or f"django_aio:{alias}"
        self.min_size: int = options["min_size"]
        self.max_size: int = options["max_size"]
        self.timeout = float(options["timeout"])
        self.max_waiting: int = options["max_waiting"]
        self.max_lifetime = float(options["max_lifetime"])
        self.max_idle = float(options["max_idle"])
        self.check = bool(settings_dict.get("CONN_HEALTH_CHECKS"))
        self.bridged_class = bridged_class(wrapper_class)
        template = wrapper_class(settings_dict, alias)
        kwargs = template.get_connection_params()
        kwargs["autocommit"] = True
        server_side = settings_dict.get("OPTIONS", {}).get("server_side_binding") is True
        kwargs["cursor_factory"] = psycopg.AsyncCursor if server_side else psycopg.AsyncClientCursor
        # Never wait longer for a server that accepts and does not answer than
        # for a free connection (libpq counts whole seconds).
        wanted = math.ceil(self.timeout)
        configured = kwargs.get("connect_timeout")
        if configured is not None and str(configured).strip():
            wanted = min(wanted, int(configured)) if int(configured) > 0 else wanted
        kwargs["connect_timeout"] = max(wanted, 1)
        self.connect_kwargs = kwargs
        self._idle: list[Lease] = []  # a stack: the last returned goes out first
        self._size = 0  # connections open or being opened
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._suspect_before = 0.0  # idle since before this: check before use
        self.closed = False

    def __repr__(self) -> str:
        return (
            f"<AliasPool {self.name!r} size={self._size}/{self.max_size} "
            f"idle={len(self._idle)} waiting={len(self._waiters)}>"
        )

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return self._size

    @property
    def idle(self) -> int:
        """Connections waiting in the pool."""
        return len(self._idle)

    # -- checking out ------------------------------------------------------

    def acquire_now(self) -> Lease | None:
        """An idle lease ready for use without waiting, or ``None`` (``acquire()`` waits)."""
        idle = self._idle
        while idle and not self.closed:
            lease = idle[-1]
            if lease.expires <= time.monotonic() or not still_open(lease.aconnection):
                idle.pop()
                self._drop(lease)
            elif self.check or lease.idle_since <= self._suspect_before:
                return None  # to check on the server first
            else:
                return idle.pop()
        return None

    async def acquire(self) -> Lease:
        """A ready lease (Note [Leases] in _lease.py), opened if none is idle and a slot is free."""
        started = deadline = 0.0
        while True:
            if self.closed:
                raise PoolClosed(self.alias)
            lease = self.acquire_now()
            if lease is not None:
                return lease
            if self._idle:  # one to check on the server first
                lease = self._idle.pop()
                if await self._healthy(lease):
                    return lease
                continue
            if self._size < self.max_size:
                return await self._open()
            if not deadline:
                started = time.monotonic()
                deadline = started + self.timeout
            handed = await self._wait(started, deadline)
            if handed is not None:
                return handed

    async def _healthy(self, lease: Lease) -> bool:
        try:
            await lease.aconnection.execute("")
        except psycopg.Error:
            logger.debug("closing a broken idle connection of %r", self.name)
            self._drop(lease)
            return False
        except BaseException:  # cancelled mid-check: the slot must not be lost
            self._drop(lease)
            raise
        return True

    async def _wait(self, started: float, deadline: float) -> Lease | None:
        """Wait for a lease handed over, or ``None``: a slot freed, try again."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out(started)
        if self.max_waiting and len(self._waiters) >= self.max_waiting:
            raise TooManyWaiting(self.alias, self.max_size, len(self._waiters))
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(remaining, self._expire, waiter)
        try:
            handed = await waiter
        except BaseException:
            # Cancelled: pass on what was meant for us, if anything was.
            if waiter.done() and not waiter.cancelled():
                result = waiter.result()
                if isinstance(result, Lease):
                    self._give_back(result)
                elif result is None:
                    self._wake_one()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()
        if isinstance(handed, _Expired):
            raise self._timed_out(started, handed.others)
        return cast(Lease | None, handed)

    def _expire(self, waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            waiter.set_result(_Expired(self._waiting()))

    def _waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    def _timed_out(self, started: float, others: int | None = None) -> PoolTimeout:
        if others is None:
            others = self._waiting()
        return PoolTimeout(self.alias, self.max_size, time.monotonic() - started, others)

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        """A new psycopg connection (no slot accounting); server errors become Django's."""
        try:
            return await WaitingConnection.connect(**self.connect_kwargs)
        except psycopg.Error as exc:
            # psycopg's traceback holds the half-open libpq connection: drop it
            # so that keeping the error does not keep a server session.
            raise _as_django_error(exc, f"couldn't connect to database {self.alias!r}: ") from (
                exc.with_traceback(None)
            )

    async def _open(self) -> Lease:
        self._size += 1
        lease: Lease | None = None
        try:
            lease = Lease(self, await self.connect())
            lease.wrapper = wrapper = self.bridged_class(self.settings_dict, self.alias)
            wrapper.django_aio_lease = lease
            await drive(Unit.fixed(lease), wrapper.connect)
        except BaseException:
            self._size -= 1
            if lease is not None:
                close_now(lease.aconnection)
            self._wake_one()  # a waiter may succeed where we failed
            raise
        logger.debug("opened a connection for %r (%d/%d)", self.name, self._size, self.max_size)
        return lease

    # -- giving back -------------------------------------------------------

    async def release(self, lease: Lease, *, discard: bool = False) -> bool:
        """Return ``lease`` to the pool if clean, else close it (Note [Clean returns]).

        Returns whether it went back to the pool.
        """
        facade: SyncConnection | None = lease.wrapper.connection
        if facade is not None and facade.server_cursors:
            try:
                for cursor in list(facade.server_cursors):
                    facade.forget(cursor)
                    await cursor.acursor.close()
            except Exception:
                logger.exception("closing a connection of %r that could not be cleaned", self.alias)
                discard = True
        return self.release_now(lease, discard=discard)

    def releases_now(self, lease: Lease) -> bool:
        """Whether ``release_now()`` can take ``lease``: no server-side cursor is open on it."""
        facade: SyncConnection | None = lease.wrapper.connection
        return facade is None or not facade.server_cursors

    def release_now(self, lease: Lease, *, discard: bool = False) -> bool:
        """``release()`` of a lease with no server-side cursor open (closed, if there is one)."""
        aconnection = lease.aconnection
        wrapper = lease.wrapper
        try:
            facade: SyncConnection | None = wrapper.connection
            dirty = (
                discard
                or facade is None
                or bool(facade.server_cursors)
                or aconnection.closed
                or aconnection.broken
                or wrapper.needs_rollback
                or lease.in_transaction()
            )
        except Exception:
            logger.exception("closing a connection of %r that could not be cleaned", self.alias)
            dirty = True
        # Per-task state borrowed by the wrapper while leased (see _connection.py).
        if wrapper.queries_log:
            wrapper.queries_log = collections.deque(maxlen=wrapper.queries_limit)
        wrapper.execute_wrappers = []
        wrapper.force_debug_cursor = False
        wrapper.errors_occurred = False
        if dirty:
            if aconnection.closed or aconnection.broken:
                # Killed by the server: its idle siblings may be dead too.
                self._suspect_before = time.monotonic()
            self._drop(lease)
            return False
        if lease.expires <= time.monotonic():
            self._drop(lease)
            return False
        self._give_back(lease)
        return True

    def _give_back(self, lease: Lease) -> None:
        if self.closed:
            self._drop(lease)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(lease)
                return
        now = time.monotonic()
        lease.idle_since = now
        self._idle.append(lease)
        # Idle the longest sit at the bottom: close those past max_idle.
        idle = self._idle
        while idle and self._size > self.min_size and idle[0].idle_since + self.max_idle < now:
            self._drop(idle.pop(0))

    def _drop(self, lease: Lease) -> None:
        """Close ``lease``'s connection and free its slot."""
        self._size -= 1
        close_now(lease.aconnection)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # -- closing -----------------------------------------------------------

    async def close(self) -> None:
        """Close idle connections now and the others as they come back."""
        self.close_now()

    def close_now(self) -> None:
        """``close()`` without the event loop (its loop may be closed already)."""
        self.closed = True
        idle, self._idle = self._idle, []
        for lease in idle:
            self._size -= 1
            close_now(lease.aconnection)
        waiters, self._waiters = self._waiters, collections.deque()
        for waiter in waiters:
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(None)  # they see the pool closed

    def finish(self, lease: Lease) -> None:
        """End ``lease``'s server session without the event loop (its loop is closed)."""
        self._size -= 1
        with contextlib.suppress(Exception):
            lease.aconnection.pgconn.finish()
