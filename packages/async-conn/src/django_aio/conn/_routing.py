"""Routing ``django.db.connections`` and asgiref's ``async_to_sync`` through the bridge.

Note [Routing]
~~~~~~~~~~~~~~
``django.db.connections`` keeps its wrappers in a thread-local, and every
task on the loop shares the loop's thread. We replace that local with
``RoutingLocal``: inside a bridge greenlet, ``connections[alias]`` asks the
greenlet's unit, which hands out the task's held lease for the alias, or takes
one from the pool on first use and returns it when the unit ends. Outside the
bridge the original thread-local answers, so sync Django is untouched.

Django asks the thread-local with ``hasattr()`` which connections exist yet
(``connections.all(initialized_only=True)``: ``close_old_connections``,
``contrib.postgres``'s ``ready()``, test teardown). Inside the bridge that
question goes to the unit instead, since a lookup takes a connection: the
aliases initialized are those the unit has used so far and those its task
holds (a transaction, a cursor block), as a thread's connections outlive
each call; no other is taken.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from asgiref.sync import AsyncToSync
from django.db import connections
from django.utils.connection import BaseConnectionHandler
from greenlet import getcurrent

from ._greenlet import BridgeGreenlet, await_
from ._scope import lending, restore_ownership, save_ownership

__all__ = ["RoutingLocal", "awaited_by_bridge", "install"]

# Set while bridged code waits in ``async_to_sync`` for a coroutine: the
# coroutine (and the tasks it creates) then runs thread-sensitive
# ``sync_to_async`` back in the bridge (Note [Thread-sensitive sync_to_async]
# in _units.py).
_awaited_by_bridge: ContextVar[bool] = ContextVar("django_aio_awaited_by_bridge", default=False)


def awaited_by_bridge() -> bool:
    """Whether the calling async code runs for bridged code waiting in ``async_to_sync``."""
    return _awaited_by_bridge.get()


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


_original_all = BaseConnectionHandler.all


def _all(self: BaseConnectionHandler[Any], initialized_only: bool = False) -> list[Any]:
    unit = getattr(getcurrent(), "django_aio_unit", None)
    local = getattr(self, "_connections", None)
    if initialized_only and unit is not None and isinstance(local, RoutingLocal):
        return [self[alias] for alias in self if unit.holds(alias)]
    return list(_original_all(self, initialized_only))


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
        outer = _awaited_by_bridge.get()
        _awaited_by_bridge.set(True)
        try:
            return await_(lending(self.awaitable(*args, **kwargs)))
        finally:
            _awaited_by_bridge.set(outer)
            restore_ownership(saved)
    return _original_async_to_sync_call(self, *args, **kwargs)


def install() -> None:
    """Route ``django.db.connections`` and ``async_to_sync`` through the bridge (idempotent)."""
    if not isinstance(connections._connections, RoutingLocal):  # type: ignore[attr-defined]
        connections._connections = RoutingLocal(connections._connections)  # type: ignore[attr-defined]
        BaseConnectionHandler.all = _all  # type: ignore[method-assign]
    if AsyncToSync.__call__ is not _async_to_sync_call:
        AsyncToSync.__call__ = _async_to_sync_call  # type: ignore[method-assign]
