"""A sync facade over psycopg's async connection and cursors.

Django's PostgreSQL backend talks to a psycopg ``Connection``; inside the
bridge we hand it these objects instead. Every call that does I/O awaits the
matching coroutine of the underlying ``AsyncConnection`` / ``AsyncCursor`` on
the event loop through ``await_``; everything else is delegated as is.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, cast

import psycopg
from psycopg import sql
from psycopg.client_cursor import ClientCursorMixin
from psycopg.pq import PipelineStatus

from ._first_statement import SentQuery, carries_begin, execute_with_begin
from ._greenlet import await_, await_coroutine
from ._pooler import explain_pooler_error

__all__ = ["AsyncServerSideClientCursor", "SyncConnection", "SyncCopy", "SyncCursor"]


class AsyncServerSideClientCursor(
    ClientCursorMixin[psycopg.AsyncConnection[Any], Any], psycopg.AsyncServerCursor[Any]
):
    """A named cursor binding parameters on the client, as Django's sync backend does."""


def _delegate(target: Any, name: str) -> Any:
    attr = getattr(target, name)
    if inspect.iscoroutinefunction(attr):
        # Any coroutine method we did not wrap by hand (scroll, nextset, ...):
        # make it a blocking call from the sync side.
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return await_(attr(*args, **kwargs))

        return blocking
    return attr


class SyncCursor:
    """What Django sees as a psycopg cursor; wraps an ``AsyncCursor``."""

    def __init__(self, acursor: psycopg.AsyncCursor[Any], connection: SyncConnection) -> None:
        self.acursor = acursor
        self.connection = connection
        # The statement as Django sent it, when it went with a BEGIN.
        self._sent: SentQuery | None = None

    def __getattr__(self, name: str) -> Any:
        return _delegate(self.acursor, name)

    @property
    def rowcount(self) -> int:
        return self.acursor.rowcount

    @property
    def description(self) -> Any:
        return self.acursor.description

    def _holdable(self) -> bool:
        return isinstance(self.acursor, psycopg.AsyncServerCursor) and self.acursor.withhold

    def _explain(self, exc: psycopg.Error) -> None:
        # Note [Transaction poolers] in _pooler.py: raises the explained error, if any.
        if isinstance(exc, psycopg.errors.InvalidCursorName):
            named = self._holdable()  # inside a transaction, a pooler is not the cause
        else:
            named = isinstance(self.acursor, psycopg.AsyncServerCursor)
        explained = explain_pooler_error(exc, self.connection.alias, named=named)
        if explained is not None:
            raise explained from exc

    @property
    def _query(self) -> Any:
        # Django's last_executed_query() reads the SQL it logs from here.
        return self._sent if self._sent is not None else self.acursor._query

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> SyncCursor:
        acursor = self.acursor
        self._sent = None
        try:
            if not kwargs and carries_begin(acursor, query):
                # carries_begin() checked: a client cursor, a str query.
                self._sent = execute_with_begin(cast(Any, acursor), query, params)
            else:
                await_(acursor.execute(query, params, **kwargs))
        except psycopg.ProgrammingError as exc:
            self._explain(exc)
            raise
        return self

    def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
        try:
            await_(self.acursor.executemany(query, params_seq, **kwargs))
        except psycopg.ProgrammingError as exc:
            self._explain(exc)
            raise

    # Fetching from a client-side cursor reads rows already received, so the
    # coroutine usually finishes at once (Note [Fast path] in _greenlet.py).
    def fetchone(self) -> Any:
        try:
            return await_coroutine(self.acursor.fetchone())
        except psycopg.ProgrammingError as exc:
            self._explain(exc)
            raise

    def fetchmany(self, size: int = 0) -> list[Any]:
        try:
            return await_coroutine(self.acursor.fetchmany(size))
        except psycopg.ProgrammingError as exc:
            self._explain(exc)
            raise

    def fetchall(self) -> list[Any]:
        try:
            return await_coroutine(self.acursor.fetchall())
        except psycopg.ProgrammingError as exc:
            self._explain(exc)
            raise

    def __iter__(self) -> Iterator[Any]:
        while True:
            rows = self.fetchmany(self.acursor.arraysize or 100)
            if not rows:
                return
            yield from rows

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        agen = cast(AsyncGenerator[Any, None], self.acursor.stream(query, params, **kwargs))
        try:
            while True:
                try:
                    row = await_(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield row
        finally:
            await_(agen.aclose())

    def copy(self, statement: Any, params: Any = None, **kwargs: Any) -> SyncCopy:
        return SyncCopy(self.acursor.copy(statement, params, **kwargs))

    def callproc(self, name: str | sql.Identifier, args: Sequence[Any] | None = None) -> Any:
        # Django's psycopg 3 cursors add callproc(); build the same statement.
        if not isinstance(name, sql.Identifier):
            name = sql.Identifier(name)
        parts: list[sql.Composable] = [sql.SQL("SELECT * FROM "), name, sql.SQL("(")]
        if args:
            parts.append(sql.SQL(", ").join(sql.Placeholder() for _ in args))
        parts.append(sql.SQL(")"))
        self.execute(sql.Composed(parts), args)
        return args

    def close(self) -> None:
        # Closing a closed cursor needs no connection: it may no longer be ours
        # (Note [Task end] in _task_end.py).
        if not self.acursor.closed:
            try:
                await_coroutine(self.acursor.close())
            except psycopg.errors.InvalidCursorName:
                if not self._holdable():
                    raise
                # Declared on another server session behind a transaction
                # pooler (Note [Transaction poolers] in _pooler.py): nothing
                # is left to close on ours, so close only the client side.
                await_coroutine(psycopg.AsyncCursor.close(self.acursor))
        self.connection.forget(self)

    @property
    def closed(self) -> bool:
        return self.acursor.closed

    def __enter__(self) -> SyncCursor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncCopy:
    """Blocking view of a psycopg ``AsyncCopy`` (for ``cursor.copy()``)."""

    def __init__(self, acopy_cm: Any) -> None:
        self._cm = acopy_cm
        self._copy: Any = None

    def __enter__(self) -> SyncCopy:
        self._copy = await_(self._cm.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await_(self._cm.__aexit__(exc_type, exc, tb))

    def __getattr__(self, name: str) -> Any:
        return _delegate(self._copy, name)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.read_row()) is not None:
            yield row

    def __iter__(self) -> Iterator[Any]:
        while data := self.read():
            yield data


class SyncConnection:
    """What Django sees as a psycopg ``Connection``; wraps an ``AsyncConnection``."""

    def __init__(self, aconnection: psycopg.AsyncConnection[Any], alias: str = "default") -> None:
        self.aconnection = aconnection
        self.alias = alias  # named in errors
        # Named cursors stay open on the server until closed; the unit closes
        # whatever Django left open before the connection goes back to the pool.
        self.server_cursors: set[SyncCursor] = set()

    def __getattr__(self, name: str) -> Any:
        return _delegate(self.aconnection, name)

    def wrap_cursor(self, acursor: psycopg.AsyncCursor[Any]) -> SyncCursor:
        cursor = SyncCursor(acursor, self)
        if isinstance(acursor, psycopg.AsyncServerCursor):
            self.server_cursors.add(cursor)
        return cursor

    def forget(self, cursor: SyncCursor) -> None:
        self.server_cursors.discard(cursor)

    def cursor(self, *args: Any, **kwargs: Any) -> SyncCursor:
        return self.wrap_cursor(self.aconnection.cursor(*args, **kwargs))

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> SyncCursor:
        return self.cursor().execute(query, params, **kwargs)

    # Through the fast path (Note [Fast path] in _greenlet.py): closing, and
    # the setters below, never wait, so they need no switch to the task.
    def commit(self) -> None:
        await_coroutine(self.aconnection.commit())

    def rollback(self) -> None:
        await_coroutine(self.aconnection.rollback())

    def close(self) -> None:
        await_coroutine(self.aconnection.close())

    @property
    def closed(self) -> bool:
        return self.aconnection.closed

    @property
    def broken(self) -> bool:
        return self.aconnection.broken

    # psycopg's async connection has coroutine setters for these; Django
    # assigns the attributes as it would on a sync connection.
    def _set(name: str) -> Any:  # type: ignore[misc]
        setter_name = f"set_{name}"

        def fget(self: SyncConnection) -> Any:
            return getattr(self.aconnection, name)

        def fset(self: SyncConnection, value: Any) -> None:
            await_coroutine(getattr(self.aconnection, setter_name)(value))

        return property(fget, fset)

    isolation_level = _set("isolation_level")
    read_only = _set("read_only")
    deferrable = _set("deferrable")
    del _set

    @property
    def autocommit(self) -> bool:
        return bool(self.aconnection.autocommit)

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        # Django sets it twice per transaction. psycopg's coroutine setter
        # takes the connection's lock and waits on a generator that, outside
        # a pipeline, only checks that no transaction is open and sets a
        # flag: that generator runs to its end here, 8% fewer instructions
        # for entering and leaving an (empty) transaction.
        aconnection = self.aconnection
        make = getattr(aconnection, "_set_autocommit_gen", None)
        if make is not None and aconnection.pgconn.pipeline_status == PipelineStatus.OFF:
            if next(make(value), None) is not None:
                raise RuntimeError("psycopg's autocommit setter waited for I/O outside a pipeline")
            return
        await_coroutine(aconnection.set_autocommit(value))

    def __enter__(self) -> SyncConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "psycopg's connection.transaction() is not available through the bridge; "
            "use django.db.transaction.atomic() or django_aio.atomic.async_atomic()."
        )
