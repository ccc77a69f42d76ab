"""One spare psycopg cursor per connection, reused for Django's next cursor.

Note [Cursor reuse]
~~~~~~~~~~~~~~~~~~~
Django opens a cursor for every statement it runs and closes it after. A
psycopg cursor is cheap to use but not to make: its adapters map copies the
connection's, and the closing goes through a coroutine. Together that is
about a twentieth of the instructions of an ``aget()`` or an ``acreate()``.
So closing a plain client cursor (the connection's ``cursor_factory``, no
name) parks it on its ``SyncConnection``, one at most, and the next unnamed
cursor Django opens on that connection takes it instead of a new one, when it
is still what a new cursor would be:

- its adapters are the ones the connection gives a new cursor now: psycopg
  shares the connection's maps with a new cursor and copies a map on its
  first change, on either side, so nothing registered since leaves the very
  same maps, and the comparison stops at their identity (a loader
  registered on the connection after the cursor was made, or on the cursor
  itself, as Django's time zone loader is, makes a new cursor instead);
- it is still of the connection's ``cursor_factory``, and takes the
  connection's current row factory;
- its other settings are put back as a new cursor has them: text format,
  ``arraysize`` 1, no results, no last query, no transformer (psycopg's own
  reset between executions); a cursor someone set attributes on is not
  parked.

Only a cursor nobody else holds is parked: once code outside the
``SyncCursor`` took the psycopg cursor (``.acursor``: the async cursor API of
``async_connections`` does) or one of its methods (``cursor.scroll``, a
``copy()``), closing closes it, as before. The ``SyncCursor`` that closed a
parked cursor takes a closed cursor in its place, so using it after
``close()`` fails as psycopg's closed cursors do ("the cursor is closed"),
and keeps the last statement, which Django's ``last_executed_query()``
reads and psycopg keeps on close. Named (server-side) cursors, cursors of
another class, of a connection not OK or with a statement still running (a
stream, a COPY) are closed as before. The psycopg internals read here are
those of the psycopg versions it was checked on (3.2, 3.3); with another
version nothing is parked.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg._cursor_base import BaseCursor
from psycopg.pq import Format

__all__ = ["REUSABLE", "closed_cursor", "pristine", "renew"]

_TEXT = Format.TEXT
# The psycopg versions whose cursors' state renew() was checked against
# (tests/test_cursor_reuse.py compares every slot with a new cursor's).
_CHECKED = ("3.2.", "3.3.")
# The parts of psycopg's cursors that renew() and closed_cursor() use.
REUSABLE = psycopg.__version__.startswith(_CHECKED) and all(
    hasattr(BaseCursor, name)
    for name in ("_adapters", "_reset", "_last_query", "_tx", "_make_row", "_close")
)


def pristine(acursor: Any, aconnection: Any) -> bool:
    """Whether ``acursor`` has the adapters ``aconnection`` gives a new cursor now."""
    try:
        mine, theirs = acursor._adapters, aconnection.adapters
        mine_loaders, their_loaders = mine._loaders, theirs._loaders
        mine_by_oid, their_by_oid = mine._dumpers_by_oid, theirs._dumpers_by_oid
        mine_dumpers, their_dumpers = mine._dumpers, theirs._dumpers
        if (
            mine.types._registry is theirs.types._registry
            and mine_loaders[0] is their_loaders[0]
            and mine_loaders[1] is their_loaders[1]
            and mine_by_oid[0] is their_by_oid[0]
            and mine_by_oid[1] is their_by_oid[1]
            and all(dumpers is their_dumpers[key] for key, dumpers in mine_dumpers.items())
        ):
            return True  # the very same maps: the usual case
        return bool(
            mine.types._registry == theirs.types._registry
            and mine_loaders == their_loaders
            and mine_by_oid == their_by_oid
            and mine_dumpers == their_dumpers
        )
    except (AttributeError, IndexError, KeyError, TypeError):
        return False


def renew(acursor: Any) -> None:
    """Give ``acursor`` the state of a new cursor (its adapters and row factory aside)."""
    acursor._reset()
    acursor._last_query = None
    # A new cursor has neither: its first execute() makes them.
    for made in ("_tx", "_make_row"):
        if hasattr(acursor, made):
            delattr(acursor, made)
    acursor.format = _TEXT
    acursor.arraysize = 1


def closed_cursor(aconnection: Any) -> Any:
    """A closed cursor of ``aconnection``: what a parked cursor's ``SyncCursor`` holds after."""
    acursor = aconnection.cursor_factory(aconnection)
    acursor._close()
    return acursor
