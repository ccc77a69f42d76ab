"""What ``AsyncConnection`` has of Django's query instrumentation.

``queries``, ``force_debug_cursor`` and ``execute_wrapper()`` work as on
Django's connection, for the calling task's queries on the alias: the
wrapper of a held connection borrows the task's log and wrappers while it
is held (``AsyncConnection.hold()``) and the pool takes them back.
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._lease import Lease

__all__ = ["ExecuteWrapper", "Instrumentation"]

ExecuteWrapper = Callable[..., Any]

# As Django's BaseDatabaseWrapper.queries_limit.
QUERIES_LIMIT = 9000


class Instrumentation:
    """Query log, forced debug cursor and execute wrappers of one task's connection."""

    lease: Lease | None
    _borrowed: bool

    def __init__(self) -> None:
        self.queries_log: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=QUERIES_LIMIT
        )
        self.execute_wrappers: list[ExecuteWrapper] = []
        self._force_debug_cursor = False

    @property
    def queries(self) -> list[dict[str, Any]]:
        """Queries run by this task on this alias (with ``DEBUG`` or ``force_debug_cursor``)."""
        if len(self.queries_log) == self.queries_log.maxlen:
            warnings.warn(
                f"Limit for query logging exceeded, only the last "
                f"{self.queries_log.maxlen} queries will be returned.",
                stacklevel=2,
            )
        return list(self.queries_log)

    @property
    def force_debug_cursor(self) -> bool:
        """Log queries even without ``DEBUG`` (as ``CaptureQueriesContext`` does)."""
        return self._force_debug_cursor

    @force_debug_cursor.setter
    def force_debug_cursor(self, value: bool) -> None:
        self._force_debug_cursor = value
        if self.lease is not None and not self._borrowed:
            self.lease.wrapper.force_debug_cursor = value

    @contextmanager
    def execute_wrapper(self, wrapper: ExecuteWrapper) -> Iterator[None]:
        """Install a Django execute wrapper for this task's queries on this alias."""
        self.execute_wrappers.append(wrapper)
        try:
            yield
        finally:
            self.execute_wrappers.pop()
