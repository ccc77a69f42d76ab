"""Each task's execute wrappers and query log on a rollback test's shared connection.

Note [Per-task instrumentation]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
``AsyncConnection.execute_wrapper()``, ``force_debug_cursor`` and ``queries``
belong to one task: conn hands a task's lists to the Django wrapper of a
connection the task takes from the pool. In a rollback test every task
*borrows* the test's one connection (Note [One connection per test]), and a
borrower never installs its lists on the lender's wrapper (the wrapper's own
log is what ``assertNumQueries`` counts for every task). So the test's
wrapper carries one execute wrapper of ours that, for each statement, finds
the task whose lists production would use, applies that task's execute
wrappers, then logs the statement to that task's ``queries`` when the task
asked for it (``DEBUG`` or ``force_debug_cursor``), as Django's debug cursor
logs it.

Which task: outside the code's own blocks, the one running the statement
(in production it would have taken a connection of its own). Inside a block,
production lends the block owner's connection, with the owner's lists, to
the tasks it waits on (async signal receivers): the owner is the first
holder of the test connection's lock, since holds only stack up by lending.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from ._internals import task_connection, window_holders
from ._on_commit import TestTransaction

__all__ = ["TaskInstrumentation"]


class TaskInstrumentation:
    """The test connection's execute wrapper: Note [Per-task instrumentation]."""

    def __init__(self, lease: Any, state: TestTransaction) -> None:
        self.lease = lease
        self.state = state

    def _connection(self, alias: str) -> Any | None:
        task = asyncio.current_task()
        if self.state.in_user_block():
            holders = window_holders(self.lease)
            if holders:
                task = holders[0]
        return None if task is None else task_connection(task, alias)

    def __call__(
        self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
    ) -> Any:
        conn = self._connection(context["connection"].alias)
        if conn is None:
            return execute(sql, params, many, context)
        for wrapper in reversed(conn.execute_wrappers):
            execute = functools.partial(wrapper, execute)
        if not (conn.force_debug_cursor or settings.DEBUG):
            return execute(sql, params, many, context)
        start = time.monotonic()
        try:
            return execute(sql, params, many, context)
        finally:
            _log(conn, context, sql, params, many, time.monotonic() - start)


def _log(
    conn: Any, context: dict[str, Any], sql: Any, params: Any, many: bool, took: float
) -> None:
    if many:
        try:
            times: Any = len(params)
        except TypeError:
            times = "?"
        text = f"{times} times: {sql}"
    else:
        wrapper = context["connection"]
        text = wrapper.ops.last_executed_query(context["cursor"].cursor, sql, params)
    conn.queries_log.append({"sql": text, "time": f"{took:.3f}"})
