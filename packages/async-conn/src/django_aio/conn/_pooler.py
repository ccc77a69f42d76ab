"""Errors that a transaction pooler (PgBouncer's ``pool_mode = transaction``) causes.

Note [Transaction poolers]
~~~~~~~~~~~~~~~~~~~~~~~~~~
Behind a transaction pooler each transaction may run on a different server
session, so anything that outlives a transaction on the server is lost or
lands on another client: a ``WITH HOLD`` cursor declared outside a
transaction (Django's ``iterator()``/``aiterator()`` with server-side
cursors), and psycopg's prepared statements (``server_side_binding`` with a
``prepare_threshold``). The server's own errors for these ("cursor ... does
not exist", "prepared statement "_pg3_0" does not exist") say nothing about
the cause, so the bridge's cursors re-raise them, same class, with a message
that names the setting to change. Nothing is detected ahead of time: a
pooler is invisible to the client, and the check costs nothing until such an
error happens.
"""

from __future__ import annotations

import psycopg
from psycopg import errors

__all__ = ["explain_pooler_error"]

# psycopg names its prepared statements _pg3_0, _pg3_1, ...
_PREPARED_PREFIX = '"_pg3_'


def explain_pooler_error(exc: psycopg.Error, alias: str, *, named: bool) -> psycopg.Error | None:
    """The same error with a message naming the setting to change, or ``None``.

    ``named``: the error came from a named (server-side) cursor.
    """
    setting = f"Set DISABLE_SERVER_SIDE_CURSORS = True on database {alias!r}"
    if named and isinstance(exc, errors.InvalidCursorName):
        hint = (
            f"a server-side cursor lives on one server session, and outside a transaction "
            f"a transaction pooler (such as PgBouncer with pool_mode = transaction) may run "
            f"its next statement on another one. {setting}, or iterate inside a "
            f"transaction (async_atomic())."
        )
    elif named and isinstance(exc, errors.DuplicateCursor):
        hint = (
            f"behind a transaction pooler (such as PgBouncer with pool_mode = transaction), "
            f"a server-side cursor declared outside a transaction stays on the server "
            f"session it was declared on, where another client's cursor of the same name "
            f"then collides with it. {setting}."
        )
    elif isinstance(
        exc, errors.InvalidSqlStatementName | errors.DuplicatePreparedStatement
    ) and _PREPARED_PREFIX in str(exc):
        hint = (
            f"psycopg's prepared statements live on one server session, and a transaction "
            f"pooler (such as PgBouncer with pool_mode = transaction) runs each transaction "
            f"on any of them. Set OPTIONS['prepare_threshold'] = None on database {alias!r} "
            f"(or leave OPTIONS['server_side_binding'] off)."
        )
    else:
        return None
    return type(exc)(f"{str(exc).rstrip()}: {hint}")
