"""Bridged copies of the ENGINE's ``DatabaseWrapper``.

A bridged wrapper is the Django connection object that ORM code sees inside
``run_sync()``. It is paired for life with one pooled psycopg
``AsyncConnection`` (its lease) and talks to it through the sync facade.

Note [async_unsafe]
~~~~~~~~~~~~~~~~~~~
Django guards its connection methods with ``@async_unsafe``, which raises
``SynchronousOnlyOperation`` whenever an event loop runs in the thread. Bridge
greenlets run in the loop's thread, so the guard would always fire. A bridged
class gets the unguarded original (``__wrapped__``) of each guarded method,
so only bridged wrappers skip the check; plain sync ORM calls from async code
outside the bridge still raise, as Django intends.
"""

from __future__ import annotations

import copy
import functools
import types
from typing import TYPE_CHECKING, Any

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as postgresql
from django.db.backends.postgresql.psycopg_any import (  # pyright: ignore[reportMissingImports]
    IsolationLevel,
    register_tzloader,
)
from django.utils.asyncio import async_unsafe
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

from ._greenlet import await_
from ._socket_wait import WaitingConnection
from ._sync_facade import AsyncServerSideClientCursor, SyncConnection, SyncCursor

if TYPE_CHECKING:
    from ._lease import Lease

__all__ = ["bridged_class", "is_guarded", "unguarded_class"]

_GUARD_CODE = async_unsafe(lambda: None).__code__
_TIMESTAMPTZ_OID = pg_types["timestamptz"].oid


class BridgedWrapperMixin:
    """Overrides that make a PostgreSQL ``DatabaseWrapper`` run over the facade."""

    django_aio_lease: Lease
    django_aio_plain_class: type[Any]  # the ENGINE's own DatabaseWrapper
    connection: SyncConnection | None
    settings_dict: dict[str, Any]
    alias: str
    isolation_level: Any
    timezone: Any

    @property
    def pool(self) -> None:
        # The async pool in django_aio.conn owns the connection; Django's sync
        # pool (OPTIONS["pool"]) must never hand one out here.
        return None

    def close_pool(self) -> None:
        return None

    def get_new_connection(self, conn_params: dict[str, Any]) -> SyncConnection:
        # Same isolation-level rules as Django's backend, applied to the
        # leased async connection instead of a new sync one.
        options = self.settings_dict["OPTIONS"]
        set_isolation_level = False
        try:
            level = options["isolation_level"]
        except KeyError:
            self.isolation_level = IsolationLevel.READ_COMMITTED
        else:
            try:
                self.isolation_level = IsolationLevel(level)
            except ValueError:
                raise ImproperlyConfigured(
                    f"Invalid transaction isolation level {level} "
                    f"specified. Use one of the psycopg.IsolationLevel values."
                ) from None
            set_isolation_level = True
        lease = getattr(self, "django_aio_lease", None)
        if lease is not None:
            aconnection = lease.usable_connection()
        else:
            aconnection = self._unpooled_connection(conn_params)
        connection = SyncConnection(aconnection, self.alias)
        if set_isolation_level:
            connection.isolation_level = self.isolation_level
        return connection

    def _unpooled_connection(self, conn_params: dict[str, Any]) -> psycopg.AsyncConnection[Any]:
        # A wrapper that Django's code builds from a bridged one (``type(self)(...)``,
        # as ``_nodb_cursor()`` does for the maintenance database) has no lease:
        # it opens an async connection of its own, awaited on the loop like
        # any other, and closes it with Django's ``close()``.
        server_side = self.settings_dict["OPTIONS"].get("server_side_binding") is True
        factory = psycopg.AsyncCursor if server_side else psycopg.AsyncClientCursor
        return await_(WaitingConnection.connect(**{**conn_params, "cursor_factory": factory}))

    def create_cursor(
        self,
        name: str | None = None,
        *,
        scrollable: bool | None = False,
        withhold: bool | None = None,
    ) -> SyncCursor:
        # The keywords are for AsyncConnection.cursor(name=...); Django passes
        # only ``name``.
        assert self.connection is not None
        aconnection = self.connection.aconnection
        acursor: Any
        if name:
            # As in Django: holdable when in autocommit, since the cursor
            # outlives the implicit transaction of its first fetch.
            if withhold is None:
                withhold = aconnection.autocommit
            if self.settings_dict["OPTIONS"].get("server_side_binding") is not True:
                acursor = AsyncServerSideClientCursor(
                    aconnection, name=name, scrollable=scrollable, withhold=withhold
                )
            else:
                acursor = aconnection.cursor(name, scrollable=scrollable, withhold=withhold)
        else:
            acursor = self.connection.take_cursor()  # Note [Cursor reuse]
        tzloader = aconnection.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)
        if self.timezone != getattr(tzloader, "timezone", None):
            register_tzloader(self.timezone, acursor)
        return self.connection.wrap_cursor(acursor)

    def copy(self, alias: str | None = None) -> Any:
        """A new, separate connection (Django's ``copy()``, for tests).

        Of the bridged class, as Django builds ``type(self)``: having no
        lease, it opens an async connection of its own on first use, awaited
        on the loop, and closes it with ``close()``. Like the wrapper it was
        copied from, it is used inside ``run_sync()``.
        """
        wrapper_class: Any = type(self)
        return wrapper_class(copy.deepcopy(self.settings_dict), alias or self.alias)


def is_guarded(value: object) -> bool:
    """Whether ``value`` is a function wrapped by Django's ``@async_unsafe``."""
    return isinstance(value, types.FunctionType) and value.__code__ is _GUARD_CODE


def _django_originals() -> dict[tuple[type, str], Any]:
    # Taken at import: test tooling (Django's TransactionTestCase,
    # pytest-django's blocker) later swaps some of these methods for wrappers
    # around the guarded originals, which bridged classes must not inherit.
    originals: dict[tuple[type, str], Any] = {}
    for klass in postgresql.DatabaseWrapper.__mro__:
        for name, value in vars(klass).items():
            if is_guarded(value):
                originals[klass, name] = value.__wrapped__
    return originals


_ORIGINALS = _django_originals()


def _unguarded_methods(wrapper_class: type[Any], skip: set[str]) -> dict[str, Any]:
    """Unguarded versions of the guarded methods ``wrapper_class`` resolves to."""
    namespace: dict[str, Any] = {"__module__": __name__}
    seen = set(skip)
    for klass in wrapper_class.__mro__:
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            original = _ORIGINALS.get((klass, name))
            if original is not None:
                namespace[name] = original
            elif is_guarded(value):
                namespace[name] = value.__wrapped__
    return namespace


@functools.cache
def unguarded_class(wrapper_class: type[Any]) -> type[Any]:
    """``wrapper_class`` with Django's own methods, minus the ``@async_unsafe`` guard."""
    namespace = _unguarded_methods(wrapper_class, set())
    namespace["__qualname__"] = wrapper_class.__qualname__  # Django's repr() shows it
    return type(f"Unguarded{wrapper_class.__name__}", (wrapper_class,), namespace)


@functools.cache
def bridged_class(wrapper_class: type[Any]) -> type[Any]:
    """The bridged subclass of ``wrapper_class``; see Note [async_unsafe]."""
    namespace = _unguarded_methods(wrapper_class, set(vars(BridgedWrapperMixin)))
    # Django's repr() shows the qualified name: the bridged wrapper reads as
    # the ENGINE's own, as it does outside the bridge.
    namespace["__qualname__"] = wrapper_class.__qualname__
    namespace["django_aio_plain_class"] = wrapper_class
    return type(f"Bridged{wrapper_class.__name__}", (BridgedWrapperMixin, wrapper_class), namespace)
