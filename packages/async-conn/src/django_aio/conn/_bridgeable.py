"""Which database aliases the bridge can serve: the one place that decides."""

from __future__ import annotations

import functools

from django.db import connections
from django.db.utils import load_backend

__all__ = ["bridgeable", "bridgeable_engine"]


@functools.cache
def bridgeable_engine(engine: str) -> bool:
    """Whether ``engine`` (a ``DATABASES`` ENGINE path) is django_aio's, or a subclass.

    A backend marks itself with ``DatabaseWrapper.django_aio_bridgeable``;
    an ENGINE that does not import is not bridgeable.
    """
    try:
        backend = load_backend(engine)
    except Exception:
        return False
    return bool(getattr(backend.DatabaseWrapper, "django_aio_bridgeable", False))


def bridgeable(alias: str | None = None) -> bool:
    """Whether ``alias`` (or, without one, every alias) uses a bridgeable ENGINE.

    Aliases on other engines (SQLite, Django's own PostgreSQL backend) have
    no async connections and keep Django's thread-based async path.
    """
    settings = connections.settings
    if alias is None:
        return all(bridgeable_engine(db.get("ENGINE", "")) for db in settings.values())
    db = settings.get(alias)
    return db is not None and bridgeable_engine(db.get("ENGINE", ""))
