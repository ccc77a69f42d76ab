"""Hooks for django-aio's own upper layers (django-aio-atomic, -orm, -testing).

Not for application code. These names are stable within a minor version of
django-aio-conn only, which is why the upper layers pin ``<0.2``; they are
collected here so that what the layers rely on is explicit and tested: no
other package imports a private module of django_aio.conn.

- ``Callback``, ``as_sync_callback``: the wrapper that lets Django's
  ``on_commit`` list hold ``async def`` callbacks (django_aio.atomic).
- ``current_scope``, ``find_borrowable``, ``lending``, ``lending_var``,
  ``Lending``, ``task_scope``: which task owns which connection, and the
  lending of a blocked owner's connections to its children (atomic, orm, and
  testing's one-connection-per-test window).
- ``Lease``, ``Unit``, ``drive``, ``AliasPool``, ``pool_for``,
  ``discard_closed_loops``: pooled connections, and running sync code in the
  bridge on one of them (testing).
- ``bridged_class``: the bridged subclass of a backend's ``DatabaseWrapper``
  (testing builds them up front).
- ``ConnectionProvider``, ``install_provider``, ``uninstall_provider``,
  ``installed_providers``: the one hook test tooling has into where
  ``AsyncConnection.hold()`` gets its connections and where it gives them
  back (Note [Connection providers]); testing's leak tracking and alias
  restriction use it, as conn's own lending of Django ``TestCase``
  connections does.
- ``query_cache_enabled``: ``DJANGO_AIO_QUERY_CACHE``, kept between reads
  (orm's compiled gets follow the ENGINE's cache setting).
- ``kept_insert``: the SQL the ENGINE's INSERT compiler kept for a
  single-row shape (orm's direct inserts run it: Note [Direct inserts]);
  ``DjangoDefined``: whether functions are still Django's own, not wrapped
  (both sides of that shortcut check the links they replace).
- ``swap_class``: the one place a live connection's class is changed, and
  why there is no other way (Note [Class swaps]).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._callbacks import Callback, as_sync_callback
from ._class_swap import swap_class
from ._greenlet import drive
from ._lease import Lease
from ._loops import discard_closed_loops, pool_for
from ._pool import AliasPool
from ._providers import (
    ConnectionProvider,
    install_provider,
    installed_providers,
    uninstall_provider,
)
from ._scope import Scope, _task_scopes, current_scope, find_borrowable, lending
from ._scope import _Lending as Lending
from ._scope import _lending_var as lending_var
from ._settings import query_cache_enabled
from ._units import Unit
from ._unwrapped import DjangoDefined
from ._wrapper import bridged_class
from .backends.postgresql.insert import kept_insert

__all__ = [
    "AliasPool",
    "Callback",
    "ConnectionProvider",
    "DjangoDefined",
    "Lease",
    "Lending",
    "Unit",
    "as_sync_callback",
    "bridged_class",
    "current_scope",
    "discard_closed_loops",
    "drive",
    "find_borrowable",
    "install_provider",
    "installed_providers",
    "kept_insert",
    "lending",
    "lending_var",
    "pool_for",
    "query_cache_enabled",
    "swap_class",
    "task_scope",
    "uninstall_provider",
]


def task_scope(task: asyncio.Task[Any]) -> Scope | None:
    """``task``'s ownership record if it has used a connection (none is created)."""
    return _task_scopes.get(task)
