"""Named (server-side) cursors: ``async with conn.cursor(name="c") as cursor:``.

Note [Named cursor blocks]
~~~~~~~~~~~~~~~~~~~~~~~~~~
A named cursor lives on the server until it is closed, so it needs one
physical connection for its whole life: the block holds the task's
connection (the open transaction's, if any) and closes the cursor before
giving it back, however the block ends. If that close cannot run (a second
cancellation), the pool closes every named cursor still open on a connection
before taking it back (Note [Clean returns] in _pool.py), so none leaks to
another task.

The cursor is made by the bridged Django wrapper (its ``create_cursor``), so it
binds parameters as Django's named cursors do (client-side unless
``OPTIONS["server_side_binding"]``), and ``execute()`` goes through Django's
cursor wrapper: execute wrappers, ``queries`` and Django's exceptions apply.
``withhold=None`` (the default) follows Django's rule rather than psycopg's
``False``: a cursor opened outside a transaction is ``WITH HOLD``, since in
autocommit the transaction that declared it ends at once; inside a
transaction it is not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from ._cursor import AsyncCursor
from ._units import run_sync

if TYPE_CHECKING:
    from ._connection import AsyncConnection

__all__ = ["AsyncNamedCursor", "named_cursor"]


class AsyncNamedCursor(AsyncCursor):
    """A server-side cursor: rows are fetched from the server as you ask for them.

    ``execute()`` declares it; ``fetchone``/``fetchmany``/``fetchall``,
    ``async for`` (``itersize`` rows per round trip) and ``scroll()`` read it.
    """

    @property
    def name(self) -> str:
        """The cursor's name on the server."""
        return str(self._acursor.name)

    @property
    def scrollable(self) -> bool | None:
        """``True``: ``SCROLL``; ``False``: ``NO SCROLL``; ``None``: the server's default."""
        scrollable: bool | None = self._acursor.scrollable
        return scrollable

    @property
    def withhold(self) -> bool:
        """Whether the cursor is ``WITH HOLD`` (usable after its transaction commits)."""
        return bool(self._acursor.withhold)

    @property
    def itersize(self) -> int:
        """Rows fetched per round trip by ``async for`` (psycopg's default: 100)."""
        return int(self._acursor.itersize)

    @itersize.setter
    def itersize(self, value: int) -> None:
        self._acursor.itersize = value

    async def scroll(self, value: int, mode: Literal["relative", "absolute"] = "relative") -> None:
        """Move the cursor ``value`` rows (``relative``) or to row ``value`` (``absolute``).

        Moving backwards needs ``scrollable=True``.
        """
        with self._wrapper.wrap_database_errors:
            await self._acursor.scroll(value, mode)

    async def __aiter__(self) -> AsyncIterator[Any]:
        while rows := await self.fetchmany(self.itersize):
            for row in rows:
                yield row


def _create(wrapper: Any, name: str, scrollable: bool | None, withhold: bool | None) -> Any:
    # Django's BaseDatabaseWrapper._cursor(), with the keywords passed on.
    wrapper.close_if_health_check_failed()
    wrapper.ensure_connection()
    with wrapper.wrap_database_errors:
        return wrapper._prepare_cursor(
            wrapper.create_cursor(name, scrollable=scrollable, withhold=withhold)
        )


@asynccontextmanager
async def named_cursor(
    connection: AsyncConnection, name: str, scrollable: bool | None, withhold: bool | None
) -> AsyncIterator[AsyncNamedCursor]:
    """The block of ``connection.cursor(name=...)`` (Note [Named cursor blocks])."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a named cursor needs a non-empty str name, got {name!r}.")
    lease = await connection.hold()
    tenure = connection.tenure
    try:
        django_cursor = await run_sync(_create, lease.wrapper, name, scrollable, withhold)
        cursor = AsyncNamedCursor(lease.wrapper, django_cursor)
        try:
            yield cursor
        finally:
            await cursor.close()
    finally:
        await connection.unhold(tenure)
