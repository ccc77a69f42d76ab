"""``ENGINE: "django_aio.conn.backends.postgresql"``.

On the sync side this is Django's own PostgreSQL backend, unchanged: migrate,
runserver, sync views and Django's test runner behave exactly as with
``django.db.backends.postgresql``. Async code reaches the same database through
``django_aio.conn``, which pairs pooled psycopg async connections with bridged
copies of this class.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base as postgresql

from django_aio.conn._pool_options import pool_options

from .operations import DatabaseOperations

__all__ = ["DatabaseWrapper"]


# Django's test runner stores the serialized test database of an alias (for
# ``serialized_rollback``) on the connection object it has at hand, and test
# cases read it back from ``connections[alias]``. Inside the bridge that is a
# pooled wrapper, never the one the runner wrote to, so it is kept here, by
# alias, for every wrapper of the ENGINE in the process.
_serialized_contents: dict[str, str] = {}


class DatabaseWrapper(postgresql.DatabaseWrapper):
    """Django's PostgreSQL ``DatabaseWrapper``; marks an alias as usable by django_aio."""

    #: Read by django_aio.conn to accept an alias (subclasses inherit it).
    django_aio_bridgeable = True
    settings_dict: dict[str, Any]
    ops_class = DatabaseOperations

    @property
    def _test_serialized_contents(self) -> str:
        own = self.__dict__.get("django_aio_serialized_contents")
        if own is not None:
            return str(own)
        try:
            return _serialized_contents[self.alias]
        except KeyError:
            raise AttributeError("_test_serialized_contents") from None

    @_test_serialized_contents.setter
    def _test_serialized_contents(self, value: str) -> None:
        # Only django.db.connections' own connection speaks for the alias: a
        # test's ConnectionHandler of its own keeps what it is given.
        if getattr(self, "django_aio_plain_class", None) is not None or (
            getattr(connections._connections, self.alias, None) is self  # type: ignore[attr-defined]
        ):
            _serialized_contents[self.alias] = value
        else:
            self.__dict__["django_aio_serialized_contents"] = value

    @_test_serialized_contents.deleter
    def _test_serialized_contents(self) -> None:
        if self.__dict__.pop("django_aio_serialized_contents", None) is None:
            _serialized_contents.pop(self.alias, None)

    @property
    def pool(self) -> Any:
        """Django's sync pool, built from the same checked options as the async one.

        ``OPTIONS["pool"]`` is validated by django_aio (clear errors for bad
        values) and its defaults are filled in, so ``{"max_size": 2}`` gives
        both sides ``min_size=1, max_size=2`` instead of psycopg_pool's
        ``min_size=4`` failing on the sync side.
        """
        raw = self.settings_dict["OPTIONS"].get("pool")
        if not raw or self.alias in self._connection_pools or self.alias == NO_DB_ALIAS:  # type: ignore[attr-defined]
            return super().pool  # type: ignore[misc, unused-ignore]  # not in django-stubs 5.2
        options = pool_options(self.alias, self.settings_dict, for_sync=True)
        # Django's property reads OPTIONS["pool"] from this wrapper's settings:
        # show it the full set for the one call, without touching the shared dict.
        shared = self.settings_dict
        self.settings_dict = {**shared, "OPTIONS": {**shared["OPTIONS"], "pool": options}}
        try:
            return super().pool  # type: ignore[misc, unused-ignore]  # not in django-stubs 5.2
        finally:
            self.settings_dict = shared
