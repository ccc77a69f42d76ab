"""One pool per (alias, event loop), closed with its loop.

Note [Pools and loops]
~~~~~~~~~~~~~~~~~~~~~~
Connections belong to the loop that opened them, so each loop has its pools:
an ASGI server's one loop, and each short-lived loop of ``asyncio.run()`` or
of ``async_to_sync`` in a WSGI app. A task made on the loop's first use
closes its pools when ``asyncio.run()`` (or a server built on it) cancels
every task at shutdown. Pools of loops closed without that are closed on the
next use of any loop, and at exit. Pools open no connection ahead of use
(Note [Inline connections] in _pool.py), so a loop that ends leaves nothing
half-open behind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from collections.abc import Mapping
from typing import Any

from django.db import connections
from django.utils.connection import ConnectionDoesNotExist

from ._pool import AliasPool
from ._settings import time_zone_settings

__all__ = ["close_pools", "discard_closed_loops", "pool_for"]


def _fingerprint(settings_dict: Mapping[str, Any], keep: bool = False) -> tuple[Any, ...]:
    # Test runners rename NAME in place when they create the test database;
    # a pool opened before that must not be reused after it. Checked on every
    # checkout, so it stays a flat tuple compared by equality; the one kept
    # (``keep``) holds a copy of OPTIONS, which may be changed in place too.
    options = settings_dict.get("OPTIONS") or {}
    return (
        settings_dict.get("NAME"),
        settings_dict.get("USER"),
        settings_dict.get("HOST"),
        settings_dict.get("PORT"),
        dict(options) if keep else options,
        settings_dict.get("CONN_HEALTH_CHECKS"),
        time_zone_settings(),
    )


class _LoopPools:
    """The pools of one event loop, and the task that closes them at shutdown."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pools: dict[str, tuple[AliasPool, tuple[Any, ...]]] = {}
        # Held here because the loop keeps only weak references to tasks.
        self.closer = loop.create_task(self._close_at_shutdown(loop), name="django_aio pools")

    async def _close_at_shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        # asyncio.run() (and servers built on it) cancel every task before
        # closing the loop: our cue to close this loop's pools.
        try:
            await asyncio.Future()
        finally:
            _loops.pop(loop, None)
            self.close_now()

    def close_now(self) -> None:
        pools = [pool for pool, _ in self.pools.values()]
        self.pools.clear()
        for pool in pools:
            pool.close_now()

    def abandon(self) -> None:
        """Close idle connections without the loop (it is closed already)."""
        self.closer.cancel()
        self.close_now()


_loops: dict[asyncio.AbstractEventLoop, _LoopPools] = {}


def pool_for(alias: str) -> AliasPool:
    """The pool of ``alias`` on the running loop, created on first use."""
    loop = asyncio.get_running_loop()
    per_loop = _loops.get(loop)
    if per_loop is None:
        discard_closed_loops()
        per_loop = _loops[loop] = _LoopPools(loop)
    entry = per_loop.pools.get(alias)
    if entry is not None:
        pool, fingerprint = entry
        if fingerprint == _fingerprint(pool.settings_dict):
            return pool
        pool.close_now()  # settings changed (a test database): start afresh
    try:
        settings_dict = connections.settings[alias]
    except KeyError:
        raise ConnectionDoesNotExist(f"The connection '{alias}' doesn't exist.") from None
    pool = AliasPool(alias, settings_dict)
    per_loop.pools[alias] = (pool, _fingerprint(settings_dict, keep=True))
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
            with contextlib.suppress(Exception):
                stale.abandon()


async def close_pools() -> None:
    """Close every pool of the running loop (they reopen on next use)."""
    per_loop = _loops.get(asyncio.get_running_loop())
    if per_loop is not None:
        per_loop.close_now()
