"""The PostgreSQL server the suite runs on, its checks, and databases of killed runs.

The server comes from ``django_aio.conn.testdb`` (DATABASE_URL, else PG*,
else the embedded one), the same as for the workspace's own tests.
"""

from __future__ import annotations

import os
import re
from typing import Any

import psycopg

from django_aio.conn.testdb import database_settings

from .common import Broken, note

# Created by the postgres_tests migration while the test database is set up:
# a server without one aborts the whole run before any test.
NEEDED_EXTENSIONS = (
    "bloom",
    "btree_gin",
    "btree_gist",
    "citext",
    "hstore",
    "pg_trgm",
    "unaccent",
    "uuid-ossp",
)

# test_djaio_<engine>_<alias>_<pid of run.py>[_<parallel worker>]
STALE_DATABASE = re.compile(r"test_djaio_(?:aio|stock)_(?:default|other)_(\d+)(?:_\d+)?")


def database_entry() -> tuple[dict[str, Any], str]:
    """The server's DATABASES entry (minus ENGINE and TEST) and where it came from."""
    source = (
        "DATABASE_URL"
        if os.environ.get("DATABASE_URL")
        else "PG* variables"
        if os.environ.get("PGHOST") or os.environ.get("PGPORT")
        else "embedded PostgreSQL"
    )
    entry = dict(database_settings())
    entry.pop("ENGINE", None)
    entry.pop("TEST", None)
    return entry, source


def connect(entry: dict[str, Any]) -> psycopg.Connection[Any]:
    params = {
        "dbname": entry.get("NAME") or None,
        "user": entry.get("USER") or None,
        "password": entry.get("PASSWORD") or None,
        "host": entry.get("HOST") or None,
        "port": entry.get("PORT") or None,
        "connect_timeout": 10,
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None})


def check_server(entry: dict[str, Any]) -> str:
    """Connect once, so a missing server fails here with a clear message."""
    try:
        with connect(entry) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            info = conn.info
            return f"PostgreSQL {version[0] if version else '?'} at {info.host}:{info.port}"
    except psycopg.Error as exc:
        raise Broken(f"cannot connect to PostgreSQL ({entry!r}): {exc}") from exc


def check_extensions(entry: dict[str, Any], server: str) -> None:
    with connect(entry) as conn:
        available = {row[0] for row in conn.execute("SELECT name FROM pg_available_extensions")}
    missing = [name for name in NEEDED_EXTENSIONS if name not in available]
    if missing:
        raise Broken(
            f"{server} lacks the extension(s) {', '.join(missing)} that postgres_tests "
            "creates; the run would abort while setting up the test database. Use a "
            "server with PostgreSQL's contrib modules (DATABASE_URL or PG*), e.g. the "
            "machine's own: DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres"
        )


def show_activity(entry: dict[str, Any], suffix: str) -> None:
    """Print what this run's test databases are doing (for a run that hangs)."""
    try:
        with connect(entry) as conn:
            rows = conn.execute(
                "SELECT pid, datname, state, wait_event_type, wait_event,"
                " now() - query_start, left(query, 200) FROM pg_stat_activity"
                " WHERE datname LIKE %s ORDER BY query_start",
                (f"test_djaio_%\\_{suffix}%",),
            ).fetchall()
    except Exception as exc:
        note(f"could not read pg_stat_activity: {exc}")
        return
    note(f"sessions on this run's test databases ({len(rows)}):")
    for row in rows:
        print("   ", " | ".join(str(value) for value in row))


def drop_stale_databases(entry: dict[str, Any]) -> None:
    """Drop test databases left by killed runs of this machine.

    Their names end in the pid of the run.py that made them: one whose
    process is gone is stale (its runtests.py was interrupted with it, see
    process.py). Only a local server is cleaned, since a pid says nothing
    about another machine's runs; a database still in use is not dropped.
    """
    host = str(entry.get("HOST") or os.environ.get("PGHOST") or "")
    if host not in ("", "localhost", "127.0.0.1", "::1") and not host.startswith("/"):
        return
    with connect(entry) as conn:
        conn.autocommit = True
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
        for name in names:
            match = STALE_DATABASE.fullmatch(name)
            if not match or _alive(int(match[1])):
                continue
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                note(f"dropped {name}, left by a run that is gone")
            except psycopg.Error as exc:
                note(f"could not drop {name}: {exc}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
