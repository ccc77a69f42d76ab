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
An abandoned async generator is finalized by the event loop in a *new* task,
possibly after its owner task ended; so the close runs on the connection
captured at the start (``run_held``) and the release names its tenure: if the
connection was given back meanwhile, neither touches it (Note [Task end] in
django_aio.conn).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from itertools import islice
from typing import Any, cast

from django.db import connections
from django.db.models import prefetch_related_objects

from django_aio.conn import async_connections, bridgeable, run_sync

__all__ = ["aiterator", "iterate_chunks"]


def aiterator(
    queryset: Any, chunk_size: int, fallback: Callable[[Any, int], AsyncGenerator[Any, None]]
) -> AsyncGenerator[Any, None]:
    """``QuerySet.aiterator()`` over ``iterate_chunks`` (Note [Chunked iteration]).

    ``fallback`` (Django's own ``aiterator``) serves aliases that are not
    bridgeable. Returns the generator itself, not a wrapper around it: one
    async generator layer fewer per row, and ``aclose()`` reaches it directly.
    """
    if not bridgeable(queryset.db):
        return fallback(queryset, chunk_size)
    use_chunked_fetch = not connections.settings[queryset.db].get("DISABLE_SERVER_SIDE_CURSORS")
    iterable = queryset._iterable_class(
        queryset, chunked_fetch=use_chunked_fetch, chunk_size=chunk_size
    )
    return iterate_chunks(iterable, queryset._prefetch_related_lookups)


async def iterate_chunks(iterable: Any, prefetch: Sequence[Any] = ()) -> AsyncGenerator[Any, None]:
    """Yield the rows of a Django iterable, one bridged chunk at a time.

    With ``prefetch`` lookups, each chunk's related objects are prefetched in
    the same unit of work that fetched it (as Django's ``aiterator`` does per
    ``chunk_size`` rows).
    """
    chunk_size: int = iterable.chunk_size
    if chunk_size <= 0:
        raise ValueError("Chunk size must be strictly positive.")
    conn = async_connections[iterable.queryset.db]
    await conn.hold()
    tenure = conn.tenure
    generator: Generator[Any, None, None] | None = None

    def first_chunk() -> list[Any]:
        nonlocal generator
        # Django iterables are generator functions
        generator = cast("Generator[Any, None, None]", iter(iterable))
        return _next_chunk(generator, chunk_size, prefetch)

    try:
        chunk = await run_sync(first_chunk)
        while True:
            for item in chunk:
                yield item
            if len(chunk) < chunk_size:
                break
            assert generator is not None
            chunk = await run_sync(_next_chunk, generator, chunk_size, prefetch)
    finally:
        try:
            if generator is not None:
                await conn.run_held(tenure, generator.close)
        finally:
            await conn.unhold(tenure)


def _next_chunk(
    generator: Generator[Any, None, None], size: int, prefetch: Sequence[Any]
) -> list[Any]:
    chunk = list(islice(generator, size))
    if prefetch and chunk:
        prefetch_related_objects(chunk, *prefetch)
    return chunk
