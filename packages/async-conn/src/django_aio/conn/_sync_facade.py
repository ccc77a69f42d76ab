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
from psycopg.pq import ConnStatus, PipelineStatus, TransactionStatus

from ._cursor_reuse import REUSABLE, closed_cursor, pristine, renew
from ._first_statement import SentQuery, carries_begin, execute_with_begin
from ._greenlet import await_, await_coroutine
from ._pooler import explain_pooler_error

__all__ = ["AsyncServerSideClientCursor", "SyncConnection", "SyncCopy", "SyncCursor"]

_OK = ConnStatus.OK
_ACTIVE = TransactionStatus.ACTIVE


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
        self._acursor = acursor
        self.connection = connection
        # The statement as Django sent it, when it went with a BEGIN.
        self._sent: SentQuery | None = None
        # The last statement of a parked cursor, which psycopg keeps on close.
        self._parked_query: Any = None
        # Set once code outside this class holds the psycopg cursor, or one
        # of its methods: then closing it closes it, it is never parked.
        self.exposed = False

    @property
    def acursor(self) -> psycopg.AsyncCursor[Any]:
        """The psycopg cursor (handed out: it will not be parked and reused)."""
        self.exposed = True
        return self._acursor

    def __getattr__(self, name: str) -> Any:
        attr = _delegate(self._acursor, name)
        if callable(attr):
            self.exposed = True  # a bound method outlives close()
        return attr

    @property
    def rowcount(self) -> int:
        return self._acursor.rowcount

    @property
    def description(self) -> Any:
        return self._acursor.description

    def _holdable(self) -> bool:
        return isinstance(self._acursor, psycopg.AsyncServerCursor) and self._acursor.withhold

    def _explain(self, exc: psycopg.Error) -> None:
        # Note [Transaction poolers] in _pooler.py: raises the explained error, if any.
        if isinstance(exc, psycopg.errors.InvalidCursorName):
            named = self._holdable()  # inside a transaction, a pooler is not the cause
        else:
            named = isinstance(self._acursor, psycopg.AsyncServerCursor)
        explained = explain_pooler_error(exc, self.connection.alias, named=named)
        if explained is not None:
            raise explained from exc

    @property
    def _query(self) -> Any:
        # Django's last_executed_query() reads the SQL it logs from here.
        if self._sent is not None:
            return self._sent
        if self._parked_query is not None:
            return self._parked_query
        return self._acursor._query

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> SyncCursor:
        acursor = self._acursor
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
            await_(self._acursor.executemany(query, params_seq, **kwargs))
        except psycopg.ProgrammingError as exc:
            self._explain(exc)
            raise

    # Fetching from a client-side cursor reads rows already received, so the
    # coroutine usually finishes at once (Note [Fast path] in _greenlet.py).
    def fetchone(self) -> Any:
        try:
            return await_coroutine(self._acursor.fetchone())
        except psycopg.ProgrammingError as exc:
            self._explain(exc)
            raise

    def fetchmany(self, size: int = 0) -> list[Any]:
        try:
            return await_coroutine(self._acursor.fetchmany(size))
        except psycopg.ProgrammingError as exc:
            self._explain(exc)
            raise

    def fetchall(self) -> list[Any]:
        try:
            return await_coroutine(self._acursor.fetchall())
        except psycopg.ProgrammingError as exc:
            self._explain(exc)
            raise

    def __iter__(self) -> Iterator[Any]:
        while True:
            rows = self.fetchmany(self._acursor.arraysize or 100)
            if not rows:
                return
            yield from rows

    def stream(self, query: Any, params: Any = None, **kwargs: Any) -> Iterator[Any]:
        agen = cast(AsyncGenerator[Any, None], self._acursor.stream(query, params, **kwargs))
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
        self.exposed = True  # the copy is bound to this cursor
        return SyncCopy(self._acursor.copy(statement, params, **kwargs))

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
        acursor = self._acursor
        if not acursor.closed:
            query = acursor._query  # psycopg keeps it on close; parking resets it
            if not self.exposed and self.connection.park(acursor):  # Note [Cursor reuse]
                self._parked_query = query
                self._acursor = self.connection.closed_cursor()
                self.connection.forget(self)
                return
            try:
                await_coroutine(self._acursor.close())
            except psycopg.errors.InvalidCursorName:
                if not self._holdable():
                    raise
                # Declared on another server session behind a transaction
                # pooler (Note [Transaction poolers] in _pooler.py): nothing
                # is left to close on ours, so close only the client side.
                await_coroutine(psycopg.AsyncCursor.close(self._acursor))
        self.connection.forget(self)

    @property
    def closed(self) -> bool:
        return self._acursor.closed

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
        # Note [Cursor reuse] in _cursor_reuse.py
        self._spare: Any = None
        self._closed_cursor: Any = None

    def __getattr__(self, name: str) -> Any:
        return _delegate(self.aconnection, name)

    def wrap_cursor(self, acursor: psycopg.AsyncCursor[Any]) -> SyncCursor:
        cursor = SyncCursor(acursor, self)
        if isinstance(acursor, psycopg.AsyncServerCursor):
            self.server_cursors.add(cursor)
        return cursor

    def forget(self, cursor: SyncCursor) -> None:
        self.server_cursors.discard(cursor)

    def take_cursor(self) -> Any:
        """A new unnamed cursor, or the parked one if still like new (Note [Cursor reuse])."""
        spare = self._spare
        if spare is not None:
            self._spare = None
            aconnection = self.aconnection
            if (
                aconnection.pgconn.status == _OK
                and type(spare) is aconnection.cursor_factory
                and pristine(spare, aconnection)
            ):
                spare.row_factory = aconnection.row_factory
                return spare
        return self.aconnection.cursor()

    def park(self, acursor: Any) -> bool:
        """Keep ``acursor``, being closed, for the next ``take_cursor()``, if it may be reused."""
        aconnection = self.aconnection
        if (
            self._spare is not None
            or not REUSABLE
            or type(acursor) is not aconnection.cursor_factory
            or acursor._conn is not aconnection
            or aconnection.pgconn.status != _OK
            # A statement still running (a stream, a COPY) keeps its cursor.
            or aconnection.pgconn.transaction_status == _ACTIVE
            # Attributes set on it by someone (a client cursor has a __dict__).
            or getattr(acursor, "__dict__", None)
        ):
            return False
        renew(acursor)
        self._spare = acursor
        return True

    def closed_cursor(self) -> Any:
        """A closed cursor of this connection, for a ``SyncCursor`` whose cursor was parked."""
        closed = self._closed_cursor
        if closed is None:
            closed = self._closed_cursor = closed_cursor(self.aconnection)
        return closed

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
