"""Units of work: one ``run_sync()`` call and the connections it touches.

A unit answers ``django.db.connections[alias]`` inside its bridge greenlet
(Note [Routing] in _routing.py).

Note [Thread-sensitive sync_to_async]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
asgiref runs ``sync_to_async(fn, thread_sensitive=True)`` (the default) in
the thread of the sync code above it, when async code was called from sync
code through ``async_to_sync``: so ``fn`` sees that thread's connections and
its transaction. Django counts on it (its async tests, ``MiddlewareMixin``,
``user_passes_test``). Inside the bridge the sync code above runs in a bridge
greenlet of the task, not in a thread of its own, and ``async_to_sync`` awaits
on the task's loop (_routing.py); the counterpart of that thread is the
bridge, so such ``fn`` runs through ``run_sync()``, on the task's connections
(the one the waiting code holds, a transaction's included). Elsewhere, or
when some alias has an ENGINE the bridge cannot serve, asgiref decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync, markcoroutinefunction
from django.db import connections

from ._bridgeable import bridgeable
from ._greenlet import Shield, await_coroutine, drive, start
from ._routing import awaited_by_bridge, install
from ._scope import Scope, current_scope

if TYPE_CHECKING:
    from ._connection import AsyncConnection
    from ._lease import Lease

__all__ = ["Unit", "install_bridge", "run_sync"]

P = ParamSpec("P")
T = TypeVar("T")


class Unit:
    """The leases one bridge greenlet uses, by alias."""

    __slots__ = ("leases", "own", "scope", "shield")

    def __init__(self, scope: Scope | None) -> None:
        self.scope = scope
        self.leases: dict[str, Lease] = {}
        # Connections this unit took a hold on, released by finish().
        self.own: list[AsyncConnection] = []
        # Set for work that must finish even if its task is cancelled
        # (Note [Inline shield] in _greenlet.py).
        self.shield: Shield | None = None

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
        """The bridged Django wrapper for ``alias`` (Note [Routing] in _routing.py)."""
        lease = self.leases.get(alias)
        if lease is None:
            if self.scope is None or alias not in connections.settings:
                # ConnectionHandler turns this into ConnectionDoesNotExist.
                raise AttributeError(alias)
            conn = self.scope.connection(alias)
            lease = conn.hold_now()  # an idle pooled connection: nearly always
            if lease is None:
                lease = await_coroutine(conn._hold_waiting())
            self.own.append(conn)
            self.leases[alias] = lease
        return lease.wrapper

    def holds(self, alias: str) -> bool:
        """Whether ``alias``'s connection is held, by this unit or by its task."""
        if alias in self.leases:
            return True
        conn = self.scope.connections.get(alias) if self.scope is not None else None
        return conn is not None and conn.lease is not None

    def finish_now(self) -> bool:
        """Release the unit's connections without waiting; ``False`` leaves some to ``finish()``."""
        own = self.own
        while own:
            if not own[0].unhold_now():
                return False
            del own[0]
        self.leases.clear()
        return True

    async def finish(self) -> None:
        own, self.own = self.own, []
        for conn in own:
            await conn.unhold()
        self.leases.clear()


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
        if unit.own and not unit.finish_now():
            # Shielded, but a task only if the return really waits (Note
            # [Fast path] in _greenlet.py).
            done, rest = start(unit.finish())
            if not done:
                await asyncio.shield(rest)


_original_sync_to_async_call = SyncToAsync.__call__


def _sync_to_async_call(
    self: SyncToAsync[Any, Any], *args: Any, **kwargs: Any
) -> Coroutine[Any, Any, Any]:
    # Note [Thread-sensitive sync_to_async]. A call given its own context
    # (asgiref's ``context=``) keeps asgiref's threads. Not a coroutine
    # function itself: it hands over the coroutine it picks, so asgiref (or
    # a wrapper of it) is called straight from this frame.
    if (
        self._thread_sensitive
        and awaited_by_bridge()
        and getattr(self, "context", None) is None
        and bridgeable()
    ):
        return run_sync(self.func, *args, **kwargs)
    return _original_sync_to_async_call(self, *args, **kwargs)


markcoroutinefunction(_sync_to_async_call)


def install_bridge() -> None:
    """Install the routing (``install()``) and thread-sensitive ``sync_to_async`` (idempotent)."""
    install()
    if SyncToAsync.__call__ is not _sync_to_async_call:
        SyncToAsync.__call__ = _sync_to_async_call  # type: ignore[method-assign]
