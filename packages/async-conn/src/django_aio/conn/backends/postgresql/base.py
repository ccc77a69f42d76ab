"""``ENGINE: "django_aio.conn.backends.postgresql"``.

On the sync side this is Django's own PostgreSQL backend, unchanged: migrate,
runserver, sync views and Django's test runner behave exactly as with
``django.db.backends.postgresql``. Async code reaches the same database through
``django_aio.conn``, which pairs pooled psycopg async connections with bridged
copies of this class.
"""

from __future__ import annotations

from django.db.backends.postgresql import base as postgresql

__all__ = ["DatabaseWrapper"]


class DatabaseWrapper(postgresql.DatabaseWrapper):
    """Django's PostgreSQL ``DatabaseWrapper``; marks an alias as usable by django_aio."""

    #: Read by django_aio.conn to accept an alias (subclasses inherit it).
    django_aio_bridgeable = True
