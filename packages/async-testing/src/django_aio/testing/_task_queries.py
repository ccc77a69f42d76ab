"""Each task's execute wrappers and query log on a rollback test's shared connection.

Note [Per-task instrumentation]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
``AsyncConnection.execute_wrapper()``, ``force_debug_cursor`` and ``queries``
belong to one task: conn hands a task's lists to the Django wrapper of a
connection the task takes from the pool. In a rollback test every task
*borrows* the test's one connection (Note [One connection per test]), and a
borrower never installs its lists on the lender's wrapper (the wrapper's own
log is what ``assertNumQueries`` counts for every task). So the test's
wrapper carries one execute wrapper of ours that, for each statement, looks up
the task running it and applies that task's execute wrappers, then logs the
statement to that task's ``queries`` when the task asked for it (``DEBUG`` or
``force_debug_cursor``), in the form Django's debug cursor uses.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from django_aio.conn import layers

__all__ = ["run_as_task"]


def _task_connection(alias: str) -> Any | None:
    try:
        scope = layers.current_scope()
    except RuntimeError:  # not in a task: nothing to apply
        return None
    return scope.connections.get(alias)


def run_as_task(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """An execute wrapper: Note [Per-task instrumentation]."""
    conn = _task_connection(context["connection"].alias)
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
        duration = time.monotonic() - start
        _log(conn, context, sql, params, many, duration)


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
