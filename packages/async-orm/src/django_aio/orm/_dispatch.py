"""Dispatching ORM calls from async code: through the bridge, or Django's thread.

Whether an alias can use the bridge is ``django_aio.conn.bridgeable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, router

from django_aio.conn import bridgeable, run_sync

__all__ = ["alias_of", "maybe_bridged", "run", "run_on"]

T = TypeVar("T")


def alias_of(target: object, args: tuple[Any, ...] = ()) -> str:
    """Best guess of the database alias a bound ORM method of ``target`` uses.

    Only consulted when some aliases are not bridgeable: querysets and
    managers know their ``db``; model instances their ``_state.db`` or the
    router's write database. For a plain function (``prefetch_related_objects``)
    the first argument, or the first instance of a list there, decides.
    """
    from django.db.models import Model, QuerySet
    from django.db.models.manager import BaseManager

    if target is None and args:
        first = args[0]
        if isinstance(first, list | tuple) and first:
            first = first[0]
        target = first

    if isinstance(target, QuerySet | BaseManager):
        return str(target.db)
    if isinstance(target, Model):
        alias = target._state.db or router.db_for_write(type(target), instance=target)
        return str(alias)
    return str(DEFAULT_DB_ALIAS)


def _bridges(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    return bridgeable() or bridgeable(alias_of(getattr(fn, "__self__", None), args))


async def run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ORM code ``fn(*args, **kwargs)`` from async code: in the bridge, or in
    Django's thread (``sync_to_async``) when its alias's ENGINE is not django_aio's.
    """
    if _bridges(fn, args):
        return await run_sync(fn, *args, **kwargs)
    return await sync_to_async(fn)(*args, **kwargs)


async def run_on(alias: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``run()`` for ORM code known to use ``alias``."""
    if bridgeable() or bridgeable(alias):
        return await run_sync(fn, *args, **kwargs)
    return await sync_to_async(fn)(*args, **kwargs)


def maybe_bridged(
    fn: Callable[..., T], fallback: Callable[[], Callable[..., Awaitable[T]]]
) -> Callable[..., Awaitable[T]]:
    """An async callable running ``fn`` in the bridge when its alias allows it.

    ``fallback()`` builds the non-bridged async callable (Django's
    ``sync_to_async``) only when needed.
    """

    async def call(*args: Any, **kwargs: Any) -> T:
        if _bridges(fn, args):
            return await run_sync(fn, *args, **kwargs)
        return await fallback()(*args, **kwargs)

    return call
