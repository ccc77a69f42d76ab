"""Units of work: one ``run_sync()`` call and the connections it touches.

Note [Routing]
~~~~~~~~~~~~~~
``django.db.connections`` keeps its wrappers in a thread-local, and every
task on the loop shares the loop's thread. We replace that local with
``RoutingLocal``: inside a bridge greenlet, ``connections[alias]`` asks the
greenlet's unit, which hands out the task's held lease for the alias, or takes
one from the pool on first use and returns it when the unit ends. Outside the
bridge the original thread-local answers, so sync Django is untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from asgiref.sync import AsyncToSync
from django.db import connections
from greenlet import getcurrent

from ._greenlet import BridgeGreenlet, await_, await_coroutine, drive, start
from ._scope import Scope, current_scope, lending, restore_ownership, save_ownership

if TYPE_CHECKING:
    from ._connection import AsyncConnection
    from ._pool import Lease

__all__ = ["RoutingLocal", "Unit", "install", "run_sync"]

P = ParamSpec("P")
T = TypeVar("T")


class Unit:
    """The leases one bridge greenlet uses, by alias."""

    __slots__ = ("leases", "own", "scope")

    def __init__(self, scope: Scope | None) -> None:
        self.scope = scope
        self.leases: dict[str, Lease] = {}
        # Connections this unit took a hold on, released by finish().
        self.own: list[AsyncConnection] = []

    @classmethod
    def fixed(cls, lease: Lease) -> Unit:
        """A unit bound to one lease and nothing else: used while a connection is set up."""
        unit = cls(None)
        unit.leases[lease.alias] = lease
        return unit

    @classmethod
    def on(cls, scope: Scope, lease: Lease) -> Unit:
        """A unit on ``lease`` for its alias, and on ``scope``'s connections for others."""
        unit = cls(scope)
        unit.leases[lease.alias] = lease
        return unit

    def wrapper(self, alias: str) -> Any:
        """The bridged Django wrapper for ``alias`` (Note [Routing])."""
        lease = self.leases.get(alias)
        if lease is None:
            if self.scope is None or alias not in connections.settings:
                # ConnectionHandler turns this into ConnectionDoesNotExist.
                raise AttributeError(alias)
            conn = self.scope.connection(alias)
            # Usually no I/O at all (an idle pooled connection): no switch.
            lease = await_coroutine(conn.hold())
            self.own.append(conn)
            self.leases[alias] = lease
        return lease.wrapper

    async def finish(self) -> None:
        own, self.own = self.own, []
        for conn in own:
            await conn.unhold()
        self.leases.clear()


class RoutingLocal:
    """Stands in for ``connections._connections`` (Note [Routing])."""

    def __init__(self, fallback: Any) -> None:
        object.__setattr__(self, "_fallback", fallback)

    def __getattr__(self, alias: str) -> Any:
        unit = getattr(getcurrent(), "django_aio_unit", None)
        if unit is not None:
            return unit.wrapper(alias)
        return getattr(self._fallback, alias)

    def __setattr__(self, alias: str, value: Any) -> None:
        if isinstance(getcurrent(), BridgeGreenlet):
            return  # bridged wrappers are owned by the pool, never cached here
        setattr(self._fallback, alias, value)

    def __delattr__(self, alias: str) -> None:
        if isinstance(getcurrent(), BridgeGreenlet):
            return
        delattr(self._fallback, alias)


_original_async_to_sync_call = AsyncToSync.__call__


def _async_to_sync_call(self: AsyncToSync[Any, Any], *args: Any, **kwargs: Any) -> Any:
    # Inside the bridge a loop already runs in this thread, so asgiref would
    # refuse; await the coroutine on that loop instead (Note [Transactions and
    # child tasks] in _scope.py explains the lending).
    if isinstance(getcurrent(), BridgeGreenlet):
        # Django 6's Signal.send copies its async receivers' context variables
        # back into the caller's context (dispatcher._restore_context), which
        # would replace this task's scope and transaction pins by a receiver
        # task's. Keep ours.
        saved = save_ownership()
        try:
            return await_(lending(self.awaitable(*args, **kwargs)))
        finally:
            restore_ownership(saved)
    return _original_async_to_sync_call(self, *args, **kwargs)


def install() -> None:
    """Route ``django.db.connections`` and ``async_to_sync`` through the bridge (idempotent)."""
    if not isinstance(connections._connections, RoutingLocal):  # type: ignore[attr-defined]
        connections._connections = RoutingLocal(connections._connections)  # type: ignore[attr-defined]
    if AsyncToSync.__call__ is not _async_to_sync_call:
        AsyncToSync.__call__ = _async_to_sync_call  # type: ignore[method-assign]


async def run_sync(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run sync Django code with its database I/O awaited on the event loop.

    ``fn(*args, **kwargs)`` runs in a greenlet of the calling task. Inside it,
    ``django.db.connections[alias]`` is a connection of this task: the one
    pinned by an open transaction or cursor block, or else one taken from the
    pool for this call and returned when it ends, so ``asyncio.gather`` of
    several ``run_sync`` calls runs them in parallel.
    """
    install()
    unit = Unit(current_scope())
    try:
        return await drive(unit, fn, *args, **kwargs)
    finally:
        if unit.own:
            # Shielded, but a task only if the return really waits (Note
            # [Fast path] in _greenlet.py).
            done, rest = start(unit.finish())
            if not done:
                await asyncio.shield(rest)
