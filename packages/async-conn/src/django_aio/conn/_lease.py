"""A pooled connection: the psycopg async connection and its bridged Django wrapper.

Note [Leases]
~~~~~~~~~~~~~
A psycopg ``AsyncConnection`` is paired for life with a bridged Django
``DatabaseWrapper`` that is already connected (autocommit set, time zone and
role configured, ``connection_created`` sent). Taking a connection from the
pool therefore costs no Django connect bookkeeping; the pair is a ``Lease``.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import time
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.pq import ConnStatus, TransactionStatus

from ._greenlet import await_, start

if TYPE_CHECKING:
    from ._pool import AliasPool

__all__ = ["Lease", "close_now", "still_open"]


class Lease:
    """A pooled async connection and the bridged Django wrapper paired with it."""

    __slots__ = (
        "__weakref__",
        "aconnection",
        "expires",
        "idle_since",
        "lock",
        "pool",
        "wrapper",
    )

    def __init__(self, pool: AliasPool, aconnection: psycopg.AsyncConnection[Any]) -> None:
        self.pool = pool
        self.aconnection = aconnection
        self.expires = time.monotonic() + pool.max_lifetime
        self.idle_since = 0.0
        self.wrapper: Any = None
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
        # pgconn's own status: ``info`` would build an object per call.
        return self.aconnection.pgconn.transaction_status != TransactionStatus.IDLE

    def usable_connection(self) -> psycopg.AsyncConnection[Any]:
        """The async connection, replaced in its own slot if Django closed it.

        Called from bridged code (``get_new_connection``) after something ran
        ``connection.close()`` inside a unit (Note [Dead connections] in _pool.py).
        """
        if not self.aconnection.closed:
            return self.aconnection
        self.aconnection = await_(self.pool.connect())
        self.expires = time.monotonic() + self.pool.max_lifetime
        return self.aconnection


def still_open(aconnection: psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection is still usable, as far as one system call can tell.

    An idle connection has nothing to read unless the server spoke first:
    almost always a shutdown or ``pg_terminate_backend`` notice, or the end
    of the stream. Handing such a connection out would fail the next query
    with a message about the old server, so it is dropped here instead (Note
    [Dead connections] in _pool.py); the rare harmless message (a notice, a LISTEN
    notification, which pooled connections should not rely on) costs a
    reconnection, nothing more.
    """
    if aconnection.closed:
        return False
    pgconn = aconnection.pgconn
    try:
        poller = select.poll()  # not select(): descriptors may be above 1024
        poller.register(pgconn.socket, select.POLLIN)
        return not poller.poll(0) and pgconn.status == ConnStatus.OK
    except (OSError, ValueError, psycopg.Error):
        return False


def close_now(aconnection: psycopg.AsyncConnection[Any]) -> None:
    # psycopg's close() finishes the libpq connection without waiting.
    with contextlib.suppress(Exception):
        done, rest = start(aconnection.close())
        if not done:
            rest.close()
