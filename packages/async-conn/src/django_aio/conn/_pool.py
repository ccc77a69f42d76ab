"""Pools of ready connections: one psycopg_pool per (alias, event loop).

Note [Leases]
~~~~~~~~~~~~~
A pooled psycopg ``AsyncConnection`` is paired for life with a bridged Django
``DatabaseWrapper`` that is already connected (autocommit set, time zone and
role configured, ``connection_created`` sent). Taking a connection from the
pool therefore costs no Django connect bookkeeping; the pair is a ``Lease``.

Note [Clean returns]
~~~~~~~~~~~~~~~~~~~~
A lease goes back to the pool only when it is provably clean: no atomic block,
autocommit on, the server idle outside any transaction, no broken socket. Named
cursors left open are closed first. Anything else closes the connection, and
the pool opens a fresh one: a dirty connection never reaches another task.

Note [Dead connections]
~~~~~~~~~~~~~~~~~~~~~~~
When the server goes away inside a transaction, Django's ``Atomic.__exit__``
closes the connection and may reconnect (``set_autocommit(True)``). The
lease then gives its dead connection back to the pool *before* asking for a
replacement: with every slot in a transaction at the moment of a failover,
asking first would wait for the pool timeout while holding our own slot.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import psycopg
import psycopg_pool
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.utils import ConnectionDoesNotExist, load_backend
from psycopg.pq import TransactionStatus

from ._errors import PoolTimeout
from ._facade import SyncConnection
from ._greenlet import drive
from ._wrapper import bridged_class

__all__ = ["DEFAULT_POOL_OPTIONS", "AliasPool", "Lease", "close_pools", "pool_for"]

logger = logging.getLogger("django_aio.conn")

#: Used when ``OPTIONS["pool"]`` is absent or ``True``; a dict is laid over it.
DEFAULT_POOL_OPTIONS: Mapping[str, Any] = {"min_size": 1, "max_size": 10, "timeout": 30.0}

_NUMBER = (int, float)
_POOL_OPTION_TYPES: Mapping[str, tuple[type, ...]] = {
    "min_size": (int,),
    "max_size": (int,),
    "timeout": _NUMBER,
    "max_waiting": (int,),
    "max_lifetime": _NUMBER,
    "max_idle": _NUMBER,
    "reconnect_timeout": _NUMBER,
    "num_workers": (int,),
    "name": (str,),
}
_SYNC_ONLY_OPTIONS = ("check", "configure", "reset", "reconnect_failed", "connection_class")


class PooledConnection(psycopg.AsyncConnection[Any]):
    """A psycopg async connection that remembers its lease (Note [Leases])."""

    lease: Lease | None = None


class Lease:
    """A pooled async connection and the bridged Django wrapper paired with it."""

    __slots__ = ("__weakref__", "aconnection", "detached", "lock", "pool", "wrapper")

    def __init__(self, pool: AliasPool, aconnection: PooledConnection, wrapper: Any) -> None:
        self.pool = pool
        self.aconnection = aconnection
        self.wrapper = wrapper
        # The pool slot was given back (a dead connection replaced, and the
        # replacement could not be had): nothing to return on release.
        self.detached = False
        # Serializes tasks that borrow a transaction's connection; see _scope.py.
        self.lock = asyncio.Lock()

    @property
    def alias(self) -> str:
        return self.pool.alias

    def in_transaction(self) -> bool:
        """Whether a transaction is open on this connection (Django's or the server's)."""
        wrapper = self.wrapper
        if wrapper.in_atomic_block or not wrapper.autocommit:
            return True
        return self.aconnection.info.transaction_status != TransactionStatus.IDLE

    def usable_connection(self) -> PooledConnection:
        """The async connection, replaced by a fresh pooled one if Django closed it.

        Called from bridged code (``get_new_connection``) after something ran
        ``connection.close()`` inside a unit.
        """
        if not self.aconnection.closed:
            return self.aconnection
        from ._greenlet import await_

        old = self.aconnection
        if not self.detached:
            # Give the dead one back first: asking for a replacement while
            # holding it can wait for our own slot (Note [Dead connections]).
            old.lease = None
            self.detached = True
            await_(self.pool.pool.putconn(old))
        new = await_(self.pool.getconn())
        new.lease = self
        self.aconnection = new
        self.detached = False
        return new


def _pool_options(alias: str, settings_dict: Mapping[str, Any]) -> dict[str, Any]:
    raw = settings_dict.get("OPTIONS", {}).get("pool")
    where = f"DATABASES[{alias!r}]['OPTIONS']['pool']"
    options = dict(DEFAULT_POOL_OPTIONS)
    if raw is None or isinstance(raw, bool):
        return options
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(
            f"{where} must be True or a dict of psycopg_pool options "
            f"(e.g. {{'min_size': 1, 'max_size': 10, 'timeout': 30.0}}), "
            f"got {type(raw).__name__} {raw!r}."
        )
    for key, value in raw.items():
        if key in _SYNC_ONLY_OPTIONS:
            raise ImproperlyConfigured(
                f"{where}[{key!r}] is a callback for Django's sync pool; django_aio's "
                f"async pool cannot call it. Remove it (set CONN_HEALTH_CHECKS = True "
                f"to check connections before use)."
            )
        types_ = _POOL_OPTION_TYPES.get(key)
        if types_ is None:
            raise ImproperlyConfigured(
                f"{where} has an unknown option {key!r}; the options are: "
                f"{', '.join(sorted(_POOL_OPTION_TYPES))}."
            )
        if isinstance(value, bool) or not isinstance(value, types_):
            expected = " or ".join(t.__name__ for t in types_)
            raise ImproperlyConfigured(
                f"{where}[{key!r}] must be {expected}, got {type(value).__name__} {value!r}."
            )
        options[key] = value
    if "max_size" not in raw and options["min_size"] > options["max_size"]:
        options["max_size"] = options["min_size"]
    if options["min_size"] < 0 or options["max_size"] < max(options["min_size"], 1):
        raise ImproperlyConfigured(
            f"{where} needs 0 <= min_size <= max_size and max_size >= 1, got "
            f"min_size={options['min_size']} and max_size={options['max_size']}."
        )
    return options


def _fingerprint(settings_dict: Mapping[str, Any]) -> tuple[Any, ...]:
    # Test runners rename NAME in place when they create the test database;
    # a pool opened before that must not be reused after it. Checked on every
    # checkout, so it stays a flat tuple compared by equality.
    return (
        settings_dict.get("NAME"),
        settings_dict.get("USER"),
        settings_dict.get("HOST"),
        settings_dict.get("PORT"),
        tuple(settings_dict.get("OPTIONS", {}).items()),
        settings.USE_TZ,
        settings.TIME_ZONE,
    )


class AliasPool:
    """The pool of leases of one database alias on one event loop."""

    def __init__(self, alias: str, settings_dict: dict[str, Any]) -> None:
        self.alias = alias
        self.settings_dict = settings_dict
        self.fingerprint = _fingerprint(settings_dict)
        backend = load_backend(settings_dict["ENGINE"])
        wrapper_class = backend.DatabaseWrapper
        if not getattr(wrapper_class, "django_aio_bridgeable", False):
            raise ImproperlyConfigured(
                f"database {alias!r} uses ENGINE {settings_dict['ENGINE']!r}; async "
                f"connections need ENGINE 'django_aio.conn.backends.postgresql' (or a "
                f"subclass of its DatabaseWrapper)."
            )
        self.options = _pool_options(alias, settings_dict)
        self.bridged_class = bridged_class(wrapper_class)
        template = wrapper_class(settings_dict, alias)
        kwargs = template.get_connection_params()
        kwargs["autocommit"] = True
        server_side = settings_dict.get("OPTIONS", {}).get("server_side_binding") is True
        kwargs["cursor_factory"] = psycopg.AsyncCursor if server_side else psycopg.AsyncClientCursor
        check = psycopg_pool.AsyncConnectionPool.check_connection
        self.pool: psycopg_pool.AsyncConnectionPool[PooledConnection] = (
            psycopg_pool.AsyncConnectionPool(
                kwargs=kwargs,
                connection_class=PooledConnection,
                open=False,
                check=check if settings_dict.get("CONN_HEALTH_CHECKS") else None,
                **{"name": f"django_aio:{alias}", **self.options},
            )
        )
        self._opened = False
        self.max_size: int = self.options["max_size"]
        self.timeout: float = float(self.options["timeout"])

    async def getconn(self) -> PooledConnection:
        if not self._opened:
            await self.pool.open()
            self._opened = True
        started = time.monotonic()
        try:
            return await self.pool.getconn()
        except psycopg_pool.PoolTimeout:
            waiting = self.pool.get_stats().get("requests_waiting", 0)
            raise PoolTimeout(
                self.alias, self.max_size, time.monotonic() - started, waiting
            ) from None

    async def acquire(self) -> Lease:
        """A ready lease from the pool (Note [Leases])."""
        aconnection = await self.getconn()
        lease = aconnection.lease
        if lease is not None:
            return lease
        try:
            return await self._pair(aconnection)
        except BaseException:
            await self._discard(aconnection)
            raise

    async def _pair(self, aconnection: PooledConnection) -> Lease:
        from ._units import Unit

        wrapper = self.bridged_class(self.settings_dict, self.alias)
        lease = Lease(self, aconnection, wrapper)
        wrapper.django_aio_lease = lease
        await drive(Unit.fixed(lease), wrapper.connect)
        aconnection.lease = lease
        return lease

    async def release(self, lease: Lease, *, discard: bool = False) -> bool:
        """Return ``lease`` to the pool if clean, else close it (Note [Clean returns]).

        Returns whether it went back to the pool.
        """
        if lease.detached:
            return False
        aconnection = lease.aconnection
        wrapper = lease.wrapper
        try:
            facade: SyncConnection | None = wrapper.connection
            if facade is not None:
                for cursor in list(facade.server_cursors):
                    facade.forget(cursor)
                    await cursor.acursor.close()
            dirty = (
                discard
                or facade is None
                or aconnection.closed
                or aconnection.broken
                or wrapper.needs_rollback
                or lease.in_transaction()
            )
        except Exception:
            logger.exception("closing a connection of %r that could not be cleaned", self.alias)
            dirty = True
        # Per-task state borrowed by the wrapper while leased (see _connection.py).
        wrapper.queries_log = collections.deque(maxlen=wrapper.queries_limit)
        wrapper.execute_wrappers = []
        wrapper.force_debug_cursor = False
        wrapper.errors_occurred = False
        if dirty:
            await self._discard(aconnection)
            return False
        await self.pool.putconn(aconnection)
        return True

    async def _discard(self, aconnection: PooledConnection) -> None:
        aconnection.lease = None
        with contextlib.suppress(Exception):
            await aconnection.close()
        await self.pool.putconn(aconnection)

    async def close(self) -> None:
        await self.pool.close()

    def finish(self, lease: Lease) -> None:
        """End ``lease``'s server session without the event loop (its loop is closed)."""
        lease.aconnection.lease = None
        with contextlib.suppress(Exception):
            lease.aconnection.pgconn.finish()

    def finish_idle(self) -> None:
        """Close the idle connections at once, without the event loop."""
        # psycopg_pool has no loop-free close; finishing the libpq connections
        # of its idle deque ends their server sessions.
        for aconnection in list(getattr(self.pool, "_pool", ())):
            with contextlib.suppress(Exception):
                aconnection.pgconn.finish()


class _LoopPools:
    """The pools of one event loop, and the task that closes them at shutdown."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pools: dict[str, AliasPool] = {}
        self.closing: set[asyncio.Task[None]] = set()
        # Held here because the loop keeps only weak references to tasks.
        self.closer = loop.create_task(self._close_at_shutdown(loop), name="django_aio pools")

    async def _close_at_shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        # asyncio.run() (and servers built on it) cancel every task before
        # closing the loop: our cue to close this loop's pools.
        try:
            await asyncio.Future()
        finally:
            _loops.pop(loop, None)
            pools = list(self.pools.values())
            self.pools.clear()
            for pool in pools:
                # The pool's own worker tasks are being cancelled too, so its
                # close() may be interrupted: finish idle connections first.
                pool.finish_idle()
                with contextlib.suppress(BaseException):
                    await pool.close()
                pool.finish_idle()

    async def close(self) -> None:
        pools = list(self.pools.values())
        self.pools.clear()
        for pool in pools:
            await pool.close()

    def abandon(self) -> None:
        """Close idle connections without the loop (it is closed already)."""
        self.closer.cancel()
        pools = list(self.pools.values())
        self.pools.clear()
        for pool in pools:
            pool.finish_idle()


_loops: dict[asyncio.AbstractEventLoop, _LoopPools] = {}


def pool_for(alias: str) -> AliasPool:
    """The pool of ``alias`` on the running loop, created on first use."""
    loop = asyncio.get_running_loop()
    per_loop = _loops.get(loop)
    if per_loop is None:
        discard_closed_loops()
        per_loop = _loops[loop] = _LoopPools(loop)
    pool = per_loop.pools.get(alias)
    if pool is not None and pool.fingerprint == _fingerprint(pool.settings_dict):
        return pool
    try:
        settings_dict = connections.settings[alias]
    except KeyError:
        raise ConnectionDoesNotExist(f"The connection '{alias}' doesn't exist.") from None
    if pool is not None:
        closing = loop.create_task(pool.close())
        per_loop.closing.add(closing)
        closing.add_done_callback(per_loop.closing.discard)
    pool = per_loop.pools[alias] = AliasPool(alias, settings_dict)
    return pool


def discard_closed_loops() -> None:
    """Drop the pools of loops closed without cancelling their tasks."""
    # Loops of other threads (async_to_sync in WSGI apps) may come and go
    # meanwhile: work on a snapshot.
    for loop in [loop for loop in list(_loops) if loop.is_closed()]:
        stale = _loops.pop(loop, None)
        if stale is not None:
            stale.abandon()


@atexit.register
def _close_at_exit() -> None:
    for loop in list(_loops):
        stale = _loops.pop(loop, None)
        if stale is not None:
            stale.abandon()


async def close_pools() -> None:
    """Close every pool of the running loop (they reopen on next use)."""
    per_loop = _loops.get(asyncio.get_running_loop())
    if per_loop is not None:
        await per_loop.close()
