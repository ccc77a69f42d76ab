"""Streaming a queryset's rows to async code through the bridge.

Note [Chunked iteration]
~~~~~~~~~~~~~~~~~~~~~~~~
Django's iterables (``ModelIterable``, ``ValuesIterable``, ...) are sync
generators that, with ``chunked_fetch``, read from a server-side (named)
cursor. We hold the task's connection for the whole iteration, create the
generator in a first unit of work and pull one chunk per ``run_sync`` call:
every unit of the task shares the held connection, so the named cursor stays
valid between chunks while the consumer's own awaits run on the loop. Only
one chunk of rows is in memory at a time.

When the iteration ends, fails or is abandoned, the sync generator is closed
(its ``finally`` closes the named cursor) before the connection is released.
An abandoned async generator is finalized by the event loop in a *new* task;
that task must not route to its own connections, so the generator is closed
in a greenlet bound to the held lease itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from itertools import islice
from typing import Any

from django_aio.conn import async_connections, run_sync

__all__ = ["iterate_chunks"]


async def iterate_chunks(iterable: Any) -> AsyncIterator[Any]:
    """Yield the rows of a Django iterable, one bridged chunk at a time."""
    chunk_size: int = iterable.chunk_size
    conn = async_connections[iterable.queryset.db]
    lease = await conn.hold()
    owner = asyncio.current_task()
    generator: Iterator[Any] | None = None

    def first_chunk() -> list[Any]:
        nonlocal generator
        generator = iter(iterable)
        return list(islice(generator, chunk_size))

    try:
        chunk = await run_sync(first_chunk)
        while True:
            for item in chunk:
                yield item
            if len(chunk) < chunk_size:
                break
            assert generator is not None
            chunk = await run_sync(_next_chunk, generator, chunk_size)
    finally:
        try:
            if generator is not None:
                if asyncio.current_task() is owner:
                    await run_sync(generator.close)
                else:
                    await _close_on_lease(lease, generator)
        finally:
            await conn.unhold()


def _next_chunk(generator: Iterator[Any], size: int) -> list[Any]:
    return list(islice(generator, size))


async def _close_on_lease(lease: Any, generator: Iterator[Any]) -> None:
    # Note [Chunked iteration]: the finalizer task is not the owner.
    from django_aio.conn._greenlet import drive
    from django_aio.conn._units import Unit

    close = getattr(generator, "close", None)
    if close is not None:
        await drive(Unit.fixed(lease), close)
