"""The first statement of a transaction, sent together with its BEGIN.

Note [BEGIN with the first statement]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Outside autocommit psycopg starts a transaction with a ``BEGIN`` of its own,
one round trip before the first statement. Django's cursors bind parameters
on the client and send statements with the simple query protocol, which takes
several statements at once, so ``SyncCursor.execute`` sends
``BEGIN; <statement>`` instead: one round trip per transaction less, a fifth
of a transaction of three inserts. psycopg must not send its own BEGIN for
that statement; it has no public switch for it, so its ``_autocommit`` flag is
set for the call (nothing else reads it meanwhile: the connection is ours and
its lock is held) and a test pins the number of round trips, so an upgrade of
psycopg that changes this fails CI. What the rest of the world sees is the
same as before:

- the cursor shows the statement's result (``nextset()`` past BEGIN's), and
  Django's query log the statement without the prefix (``_query``);
- an error raised by the statement leaves the transaction aborted, as it
  would be. An error that points into the statement (a syntax error, an
  unknown table or column: the server refused it before running it) would
  name a position in our ``BEGIN; ...`` text, and a syntax error even keeps
  BEGIN from running (the server parses the whole string first). These are
  replayed the plain way, after a ROLLBACK if BEGIN ran (only BEGIN ran):
  BEGIN, then the statement, which fails again, in a transaction, with the
  message and position it would have had. Only failing statements pay for
  the replay.

Other statements (``executemany``, named cursors, ``COPY``, server-side
binding, psycopg's pipeline mode) go the plain way.
"""

from __future__ import annotations

from typing import Any, LiteralString, cast

import psycopg
from psycopg.pq import PipelineStatus, TransactionStatus

from ._greenlet import await_, await_coroutine

__all__ = ["SentQuery", "carries_begin", "execute_with_begin"]

_IDLE = TransactionStatus.IDLE
_LEVELS: dict[psycopg.IsolationLevel, LiteralString] = {
    psycopg.IsolationLevel.READ_UNCOMMITTED: "READ UNCOMMITTED",
    psycopg.IsolationLevel.READ_COMMITTED: "READ COMMITTED",
    psycopg.IsolationLevel.REPEATABLE_READ: "REPEATABLE READ",
    psycopg.IsolationLevel.SERIALIZABLE: "SERIALIZABLE",
}
_PIPELINE_OFF = PipelineStatus.OFF


class SentQuery:
    """What Django reads as psycopg's ``cursor._query`` (its ``query`` bytes)."""

    __slots__ = ("statement",)

    def __init__(self, statement: str) -> None:
        self.statement = statement

    @property
    def query(self) -> bytes:
        # Django decodes it as UTF-8, the client encoding it always sets.
        return self.statement.encode()


def carries_begin(acursor: psycopg.AsyncCursor[Any], query: Any) -> bool:
    """Whether ``query``, executed on ``acursor``, should carry the BEGIN psycopg would send."""
    if type(acursor) is not psycopg.AsyncClientCursor or type(query) is not str or not query:
        return False
    aconnection = acursor.connection
    pgconn = aconnection.pgconn
    return (
        not aconnection.autocommit
        and pgconn.transaction_status == _IDLE
        and pgconn.pipeline_status == _PIPELINE_OFF
    )


def _begin_statement(aconnection: psycopg.AsyncConnection[Any]) -> LiteralString:
    # The statement psycopg itself would send, from the connection's settings.
    parts: list[LiteralString] = ["BEGIN"]
    if aconnection.isolation_level is not None:
        level = psycopg.IsolationLevel(aconnection.isolation_level)
        parts.append("ISOLATION LEVEL " + _LEVELS[level])
    if aconnection.read_only is not None:
        parts.append("READ ONLY" if aconnection.read_only else "READ WRITE")
    if aconnection.deferrable is not None:
        parts.append("DEFERRABLE" if aconnection.deferrable else "NOT DEFERRABLE")
    return " ".join(parts)


def execute_with_begin(
    acursor: psycopg.AsyncClientCursor, query: LiteralString, params: Any
) -> SentQuery | None:
    """Execute the first statement of a transaction with its BEGIN.

    Returns what Django should read as the cursor's query, or ``None`` when
    the statement ran the plain way after all.
    """
    aconnection = acursor.connection
    # Django's SQL is a plain str; psycopg asks for a literal to keep
    # callers from formatting values into SQL, which mogrify() does safely.
    statement = query if params is None else cast(Any, acursor.mogrify(query, params))
    aconnection._autocommit = True
    try:
        await_(acursor.execute(_begin_statement(aconnection) + "; " + statement))
    except psycopg.Error as exc:
        aconnection._autocommit = False
        if aconnection.pgconn.transaction_status == _IDLE:
            # Rejected as a whole, BEGIN included: nothing ran.
            pass
        elif exc.diag.statement_position is not None:
            # Refused while being parsed or planned (the message points into
            # the text, after our prefix): the transaction holds BEGIN and,
            # at most, earlier statements of the same text, which the replay
            # runs again (only a sequence's nextval() would show it).
            await_coroutine(aconnection.rollback())
        else:
            raise
        # Again the plain way, for the message and position it would
        # have had; it fails again, in a transaction, or runs.
        await_(acursor.execute(query, params))
        return None
    finally:
        aconnection._autocommit = False
    acursor.nextset()
    return SentQuery(statement)
