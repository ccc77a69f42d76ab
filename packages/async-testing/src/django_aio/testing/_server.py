"""An embedded PostgreSQL for test runs on machines with no server."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connections

from django_aio.conn import bridgeable, testdb

__all__ = ["use_embedded_server_if_needed"]

_MODES = ("auto", "always", "never")


def _names_no_server(settings_dict: dict[str, Any]) -> bool:
    return not settings_dict.get("HOST") and not settings_dict.get("PORT")


def _answers(settings_dict: dict[str, Any]) -> bool:
    try:
        psycopg.connect(
            dbname=settings_dict.get("NAME") or "postgres",
            user=settings_dict.get("USER") or None,
            password=settings_dict.get("PASSWORD") or None,
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as exc:
        # A server that answers but refuses this database or role is still a
        # server: leave the error to the test run, where it is clearer.
        return "does not exist" in str(exc) or "authentication" in str(exc)
    return True


def use_embedded_server_if_needed(mode: str) -> list[str]:
    """Point aliases that name no server at the embedded PostgreSQL; return them.

    ``mode`` is the ``aio_embedded_postgres`` ini value (see the plugin).
    """
    if mode not in _MODES:
        raise ValueError(f"aio_embedded_postgres must be one of {', '.join(_MODES)}, got {mode!r}")
    if mode == "never":
        return []
    candidates = [
        alias
        for alias in connections
        if bridgeable(alias) and _names_no_server(connections.settings[alias])
    ]
    if not candidates:
        return []
    if mode == "auto" and (
        testdb.server_from_environment() is not None
        or _answers(connections.settings[candidates[0]])
    ):
        return []
    server = testdb.settings_from_url(testdb.embedded_server_url())
    for alias in candidates:
        settings_dict = connections.settings[alias]
        for key in ("HOST", "PORT", "USER", "PASSWORD"):
            settings_dict[key] = server[key]
    return candidates
