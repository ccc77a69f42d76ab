"""Capturing and counting queries in async code."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

__all__ = ["CaptureQueriesContext", "QueryCounter"]


class CaptureQueriesContext:
    """Django's ``CaptureQueriesContext`` for an async connection.

    ``async with CaptureQueriesContext(async_connections["default"]) as ctx:``
    logs the calling task's queries on that alias during the block (whatever
    ``DEBUG`` says); then ``ctx.captured_queries`` lists them as Django's
    ``connection.queries`` does (``{"sql": ..., "time": ...}``), ``len(ctx)``
    counts them and ``ctx[i]`` / ``for query in ctx`` read them. Plain
    ``with`` works too: nothing in it waits. Any object with Django's
    ``force_debug_cursor`` and ``queries_log`` can be captured, Django's own
    connections included.
    """

    def __init__(self, connection: Any) -> None:
        for name in ("force_debug_cursor", "queries_log"):
            if not hasattr(connection, name):
                raise TypeError(
                    f"CaptureQueriesContext() needs a connection, e.g. "
                    f"async_connections['default']; got {connection!r}, which has no "
                    f"{name!r}."
                )
        self.connection = connection
        self.initial_queries = 0
        self.final_queries: int | None = None
        self._forced = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.captured_queries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.captured_queries[index]

    def __len__(self) -> int:
        return len(self.captured_queries)

    @property
    def captured_queries(self) -> list[dict[str, Any]]:
        """The queries logged since the block began (until it ended)."""
        return list(self.connection.queries_log)[self.initial_queries : self.final_queries]

    def _start(self) -> None:
        self._forced = self.connection.force_debug_cursor
        self.connection.force_debug_cursor = True
        self.initial_queries = len(self.connection.queries_log)
        self.final_queries = None

    def _stop(self) -> None:
        self.connection.force_debug_cursor = self._forced
        self.final_queries = len(self.connection.queries_log)

    def __enter__(self) -> CaptureQueriesContext:
        self._start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    async def __aenter__(self) -> CaptureQueriesContext:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()


class QueryCounter(CaptureQueriesContext):
    """``async with``: fails unless exactly ``expected`` queries ran on ``using`` in the block.

    ``target`` is what logs the queries: the test's shared Django connection in
    a rollback test (every task's queries), or the calling task's
    ``AsyncConnection`` in a transactional one.
    """

    def __init__(self, expected: int, target: Any, using: str) -> None:
        super().__init__(target)
        self.expected = expected
        self.target = target
        self.using = using

    def __enter__(self) -> QueryCounter:
        raise TypeError(
            "assertNumQueries() counts async queries: use `async with "
            "self.assertNumQueries(...)` (or `await self.assertNumQueries(n, func)`)."
        )

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> QueryCounter:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        if exc_type is not None:
            return
        captured = self.captured_queries
        executed = len(captured)
        if executed != self.expected:
            listing = "\n".join(f"{i}. {query['sql']}" for i, query in enumerate(captured, start=1))
            raise AssertionError(
                f"{executed} != {self.expected} : {executed} queries executed on database "
                f"{self.using!r}, {self.expected} expected\nCaptured queries were:\n{listing}"
            )
