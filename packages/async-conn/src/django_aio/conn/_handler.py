"""``async_connections``: the async counterpart of ``django.db.connections``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from django.db import connections

from ._connection import AsyncConnection
from ._loops import close_pools
from ._scope import current_scope, independent_scope

__all__ = ["AsyncConnectionHandler", "async_connections"]


class AsyncConnectionHandler:
    """Gives each asyncio task its own ``AsyncConnection`` per database alias."""

    def __getitem__(self, alias: str) -> AsyncConnection:
        """The current task's connection for ``alias``.

        Raises ``ConnectionDoesNotExist`` for an alias missing from ``DATABASES``.
        """
        return current_scope().connection(alias)

    def __iter__(self) -> Iterator[str]:
        return iter(connections.settings)

    def all(self, initialized_only: bool = False) -> list[AsyncConnection]:
        """The current task's connections for every alias (or only those used so far)."""
        scope = current_scope()
        if initialized_only:
            return list(scope.connections.values())
        return [scope.connection(alias) for alias in self]

    @asynccontextmanager
    async def independent_connection(self) -> AsyncIterator[None]:
        """Use fresh connections for the block, outside any enclosing transaction.

        Inside the block, ``async_connections[alias]`` and ORM work take new
        connections from the pool, as if the task had just started; an
        enclosing transaction is neither joined nor disturbed. Tasks created
        inside an ``async_atomic()`` block use this to do database work.
        """
        async with independent_scope():
            yield

    async def close_all(self) -> None:
        """Return every connection this task holds to the pool."""
        for conn in self.all(initialized_only=True):
            await conn.close()

    async def close_pools(self) -> None:
        """Close the running loop's connection pools (they reopen on next use).

        Pools also close by themselves when ``asyncio.run()`` (or a server
        built on it) shuts its loop down.
        """
        await close_pools()


#: The async connections of the current task, by alias.
async_connections = AsyncConnectionHandler()
