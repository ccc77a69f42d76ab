"""Django settings for one flavour of the ORM, shared by the worker, the ASGI app and the profiler.

``configure(flavour)`` reads the server from ``DATABASE_URL`` / ``PG*`` (or the
embedded PostgreSQL) through ``django_aio.conn.testdb``; bench/peers.py sets
``DATABASE_URL`` for its child processes so that every row uses one database.
"""

from __future__ import annotations

from typing import Any, Literal

Flavour = Literal["django", "aio", "dab"]

POOL_SIZE = 16

ENGINES: dict[Flavour, str] = {
    # Django's own backend: aget() is sync_to_async around get().
    "django": "django.db.backends.postgresql",
    # django-aio: Django's backend on the sync side, the bridge on the async side.
    "aio": "django_aio.conn.backends.postgresql",
    # django-async-backend (Django 6.1 only).
    "dab": "django_async_backend.db.backends.postgresql",
}
APPS: dict[Flavour, list[str]] = {
    "django": [],
    "aio": ["django_aio.conn", "django_aio.orm"],
    "dab": ["django_async_backend"],
}


def configure(flavour: Flavour, pool_size: int = POOL_SIZE) -> None:
    import django
    from django.conf import settings

    from django_aio.conn.testdb import database_settings

    entry: dict[str, Any] = database_settings(
        OPTIONS={"pool": {"min_size": pool_size, "max_size": pool_size}}
    )
    entry["ENGINE"] = ENGINES[flavour]
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=["peerapp", *APPS[flavour]],
        MIDDLEWARE=[],
        ROOT_URLCONF="peerapp.urls",
        DATABASES={"default": entry},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        # The pool is the point of these rows: don't warn that it is one.
        ASYNC_BACKEND_DISABLE_POOL_WARNING=True,
        # A view's error (a 500) prints its traceback in the server's output,
        # which the benchmark's own output shows, even with DEBUG off.
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"stderr": {"class": "logging.StreamHandler"}},
            "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
        },
    )
    django.setup()
