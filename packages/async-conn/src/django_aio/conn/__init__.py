"""django_aio.conn: truly asynchronous PostgreSQL connections for Django.

``run_sync()`` runs ordinary sync Django code (the ORM included) in a greenlet
with its database I/O awaited on the event loop through psycopg 3's async
connections; ``async_connections`` gives each task its connections, pooled per
alias and event loop.
"""

from ._bridgeable import bridgeable, bridgeable_engine
from ._connection import AsyncConnection
from ._cursor import AsyncCursor
from ._errors import (
    BridgeRequired,
    ConnectionOwnedByAnotherTask,
    PoolClosed,
    PoolTimeout,
    TooManyWaiting,
)
from ._greenlet import await_, in_bridge
from ._handler import AsyncConnectionHandler, async_connections
from ._named_cursor import AsyncNamedCursor
from ._pool_options import DEFAULT_POOL_OPTIONS
from ._units import install_bridge, run_sync

__all__ = [
    "DEFAULT_POOL_OPTIONS",
    "AsyncConnection",
    "AsyncConnectionHandler",
    "AsyncCursor",
    "AsyncNamedCursor",
    "BridgeRequired",
    "ConnectionOwnedByAnotherTask",
    "PoolClosed",
    "PoolTimeout",
    "TooManyWaiting",
    "async_connections",
    "await_",
    "bridgeable",
    "bridgeable_engine",
    "in_bridge",
    "run_sync",
]

install_bridge()
