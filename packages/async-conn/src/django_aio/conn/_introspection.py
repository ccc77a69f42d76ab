"""Django's backend objects (``features``, ``ops``, ...) on ``AsyncConnection``.

Note [Static backend objects]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
``conn.ops.quote_name("x")`` or ``conn.features.supports_...`` must work in
async code whether or not the task holds a connection, and must never take
one from the pool or open one. So these come from one *static* Django wrapper
per alias: an instance of the alias's own ``DatabaseWrapper`` class, built
from the same settings, that is never connected and never runs a query. Its
``features``, ``ops``, ``client``, ``creation``, ``introspection`` and
``validation`` are the objects Django's wrapper has (same classes, same
settings), and reading them costs nothing.

The server version is the one thing Django finds out with a round trip
(``DatabaseWrapper.pg_version`` opens a connection), and some feature flags
(``features.is_postgresql_16``, ...) read it. A round trip can't hide behind
an attribute in async code, so it is ``await conn.get_pg_version()``: it asks
the server once (free when the task holds a connection: psycopg learned the
version when it connected) and stores the answer on the static wrapper, after
which ``conn.pg_version`` and the version-dependent flags answer without I/O.
Before that they raise an error naming ``get_pg_version()`` instead of
Django's ``SynchronousOnlyOperation`` from a sync connection attempt.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import SynchronousOnlyOperation
from django.db import connections
from django.db.utils import load_backend

from ._units import run_sync

if TYPE_CHECKING:
    from datetime import tzinfo

    from django.db.backends.base.client import BaseDatabaseClient
    from django.db.backends.base.creation import BaseDatabaseCreation
    from django.db.backends.base.features import BaseDatabaseFeatures
    from django.db.backends.base.introspection import BaseDatabaseIntrospection
    from django.db.backends.base.operations import BaseDatabaseOperations
    from django.db.backends.base.validation import BaseDatabaseValidation
    from django.db.backends.postgresql.base import DatabaseWrapper

    from ._lease import Lease

__all__ = ["Introspection", "static_wrapper"]


class _UnknownVersion:
    """``pg_version`` of a static wrapper until ``get_pg_version()`` stored it.

    A non-data descriptor: the value stored in the instance's ``__dict__``
    takes precedence, as with Django's ``cached_property``.
    """

    def __get__(self, wrapper: Any, owner: type[Any] | None = None) -> Any:
        if wrapper is None:
            return self
        alias = wrapper.alias
        raise SynchronousOnlyOperation(
            f"the server version of database {alias!r} is not known yet; await "
            f"async_connections[{alias!r}].get_pg_version() once before reading "
            f"pg_version or a version-dependent feature (it needs a round trip)."
        )


@functools.cache
def _static_class(wrapper_class: type[Any]) -> type[Any]:
    return type(
        f"Static{wrapper_class.__name__}",
        (wrapper_class,),
        {"__module__": __name__, "pg_version": _UnknownVersion()},
    )


# alias -> static wrapper (Note [Static backend objects]).
_static: dict[str, Any] = {}


def static_wrapper(alias: str) -> Any:
    """The never-connected Django wrapper of ``alias`` (Note [Static backend objects])."""
    settings_dict = connections.settings[alias]  # async_connections checked the alias
    wrapper = _static.get(alias)
    # Rebuilt when the settings were replaced (override_settings(DATABASES=...)).
    if wrapper is None or wrapper.settings_dict is not settings_dict:
        backend = load_backend(settings_dict["ENGINE"])
        wrapper = _static_class(backend.DatabaseWrapper)(settings_dict, alias)
        _static[alias] = wrapper
    return wrapper


def _typed(alias: str) -> DatabaseWrapper:
    # The static wrapper is an instance of a subclass of the alias' backend
    # class, Django's PostgreSQL wrapper or ours.
    return cast("DatabaseWrapper", static_wrapper(alias))


class Introspection:
    """Django's backend objects, without I/O (Note [Static backend objects]).

    Mixed into ``AsyncConnection``.
    """

    if TYPE_CHECKING:
        alias: str
        lease: Lease | None

    @property
    def features(self) -> BaseDatabaseFeatures:
        """Django's ``DatabaseFeatures`` of the alias (``conn.features.supports_...``)."""
        return _typed(self.alias).features

    @property
    def ops(self) -> BaseDatabaseOperations:
        """Django's ``DatabaseOperations`` of the alias (``conn.ops.quote_name(...)``)."""
        return _typed(self.alias).ops

    @property
    def client(self) -> BaseDatabaseClient:
        """Django's ``DatabaseClient`` (``dbshell``) of the alias."""
        return _typed(self.alias).client

    @property
    def creation(self) -> BaseDatabaseCreation:
        """Django's ``DatabaseCreation``; its methods are sync and connect synchronously."""
        return _typed(self.alias).creation

    @property
    def introspection(self) -> BaseDatabaseIntrospection:
        """Django's ``DatabaseIntrospection``; methods taking a cursor need a sync one."""
        return _typed(self.alias).introspection

    @property
    def validation(self) -> BaseDatabaseValidation:
        """Django's ``DatabaseValidation`` of the alias."""
        return _typed(self.alias).validation

    @property
    def vendor(self) -> str:
        """``"postgresql"``."""
        return str(static_wrapper(self.alias).vendor)

    @property
    def display_name(self) -> str:
        """``"PostgreSQL"``."""
        return str(static_wrapper(self.alias).display_name)

    @property
    def timezone(self) -> tzinfo | None:
        """Django's ``connection.timezone``: the datetimes' ``tzinfo`` (``None`` without USE_TZ)."""
        return _typed(self.alias).timezone

    @property
    def timezone_name(self) -> str:
        """The name of the connection's time zone, as Django's ``connection.timezone_name``."""
        return str(static_wrapper(self.alias).timezone_name)

    @property
    def pg_version(self) -> int:
        """The server version number (``160004``), once ``get_pg_version()`` learned it.

        Raises ``SynchronousOnlyOperation`` naming ``get_pg_version()`` before.
        """
        return int(static_wrapper(self.alias).pg_version)

    async def get_pg_version(self) -> int:
        """The server version number, asked once per alias (Note [Static backend objects])."""
        wrapper = static_wrapper(self.alias)
        version = wrapper.__dict__.get("pg_version")
        if version is None:
            lease = self.lease
            connection = None if lease is None else lease.wrapper.connection
            if connection is not None:
                # psycopg learned it when it connected: no round trip.
                version = connection.info.server_version
            else:
                alias = self.alias

                def ask() -> int:
                    return int(connections[alias].pg_version)  # type: ignore[attr-defined]

                version = await run_sync(ask)
            wrapper.__dict__["pg_version"] = version
        return int(version)
