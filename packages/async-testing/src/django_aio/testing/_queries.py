"""``assertNumQueries`` for async code."""

from __future__ import annotations

from types import TracebackType
from typing import Any

__all__ = ["QueryCounter"]


class QueryCounter:
    """``async with``: fails unless exactly ``expected`` queries ran on ``using`` in the block.

    ``target`` is what logs the queries: the test's shared Django connection in
    a rollback test (every task's queries), or the calling task's
    ``AsyncConnection`` in a transactional one.
    """

    def __init__(self, expected: int, target: Any, using: str) -> None:
        self.expected = expected
        self.target = target
        self.using = using
        self.captured_queries: list[dict[str, Any]] = []
        self._start = 0
        self._forced = False

    def __enter__(self) -> None:
        raise TypeError(
            "assertNumQueries() counts async queries: use `async with "
            "self.assertNumQueries(...)` (or `await self.assertNumQueries(n, func)`)."
        )

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> QueryCounter:
        self._forced = self.target.force_debug_cursor
        self.target.force_debug_cursor = True
        self._start = len(self.target.queries_log)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.target.force_debug_cursor = self._forced
        self.captured_queries = list(self.target.queries_log)[self._start :]
        if exc_type is not None:
            return
        executed = len(self.captured_queries)
        if executed != self.expected:
            listing = "\n".join(
                f"{i}. {query['sql']}" for i, query in enumerate(self.captured_queries, start=1)
            )
            raise AssertionError(
                f"{executed} != {self.expected} : {executed} queries executed on database "
                f"{self.using!r}, {self.expected} expected\nCaptured queries were:\n{listing}"
            )
