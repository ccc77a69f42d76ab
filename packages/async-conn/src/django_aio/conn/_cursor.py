"""The async cursor handed out by ``AsyncConnection.cursor()``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from ._units import run_sync

__all__ = ["AsyncCursor"]


class AsyncCursor:
    """Awaitable counterpart of Django's cursor.

    ``execute``, ``executemany`` and ``callproc`` go through Django's own
    cursor wrapper in the bridge, so execute wrappers, ``connection.queries``
    (with ``DEBUG``) and the translation of errors to ``django.db.utils``
    exceptions behave as in Django. Fetching, ``stream`` and ``copy`` use the
    underlying psycopg ``AsyncCursor`` directly.
    """

    def __init__(self, wrapper: Any, django_cursor: Any) -> None:
        self._wrapper = wrapper
        self._django_cursor = django_cursor
        self._acursor = django_cursor.cursor.acursor  # never parked: this holds it
        self._closed = False

    @property
    def rowcount(self) -> int:
        """Rows produced or affected by the last statement, ``-1`` if unknown."""
        return int(self._acursor.rowcount)

    @property
    def description(self) -> Any:
        """Column descriptions of the last result, ``None`` if it returned no rows."""
        return self._acursor.description

    @property
    def rownumber(self) -> int | None:
        """Index of the next row to fetch in the current result."""
        rownumber: int | None = self._acursor.rownumber
        return rownumber

    @property
    def closed(self) -> bool:
        return self._closed

    async def execute(self, sql: Any, params: Any = None) -> AsyncCursor:
        """Execute ``sql`` with ``params`` (``%s`` placeholders, as in Django)."""
        await run_sync(self._django_cursor.execute, sql, params)
        return self

    async def executemany(self, sql: Any, param_list: Sequence[Any]) -> AsyncCursor:
        """Execute ``sql`` once per parameter set."""
        await run_sync(self._django_cursor.executemany, sql, param_list)
        return self

    async def callproc(self, name: str, params: Sequence[Any] | None = None) -> Any:
        """Call a stored function, as Django's ``cursor.callproc``."""
        return await run_sync(self._django_cursor.callproc, name, params)

    async def fetchone(self) -> Any:
        with self._wrapper.wrap_database_errors:
            return await self._acursor.fetchone()

    async def fetchmany(self, size: int = 0) -> list[Any]:
        with self._wrapper.wrap_database_errors:
            rows: list[Any] = await self._acursor.fetchmany(size)
            return rows

    async def fetchall(self) -> list[Any]:
        with self._wrapper.wrap_database_errors:
            rows: list[Any] = await self._acursor.fetchall()
            return rows

    async def __aiter__(self) -> AsyncIterator[Any]:
        while rows := await self.fetchmany(self._acursor.arraysize or 100):
            for row in rows:
                yield row

    async def stream(self, sql: Any, params: Any = None) -> AsyncIterator[Any]:
        """Yield rows as the server sends them (psycopg's single-row mode).

        Not logged in ``connection.queries`` and not seen by execute wrappers.
        """
        with self._wrapper.wrap_database_errors:
            async for row in self._acursor.stream(sql, params):
                yield row

    @asynccontextmanager
    async def copy(self, statement: Any, params: Any = None) -> AsyncIterator[Any]:
        """psycopg's ``AsyncCopy`` for a ``COPY ... FROM STDIN / TO STDOUT`` statement."""
        with self._wrapper.wrap_database_errors:
            async with self._acursor.copy(statement, params) as copy:
                yield copy

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await run_sync(self._django_cursor.close)
