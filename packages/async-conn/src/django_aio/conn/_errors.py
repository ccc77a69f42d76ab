"""Public exceptions of django_aio.conn.

Each subclasses the matching class of Django's DB-API hierarchy
(``django.db.utils``) so code that already catches Django's errors keeps
working.
"""

from __future__ import annotations

from django.db.utils import InterfaceError, OperationalError

__all__ = [
    "BridgeRequired",
    "ConnectionOwnedByAnotherTask",
    "PoolClosed",
    "PoolTimeout",
    "TooManyWaiting",
]


class PoolTimeout(OperationalError):
    """No pooled connection became free within the pool's ``timeout``.

    The message names the database alias, the pool size, how long the caller
    waited and how many other tasks wait.
    """

    def __init__(self, alias: str, max_size: int, waited: float, waiting: int) -> None:
        self.alias = alias
        self.max_size = max_size
        self.waited = waited
        self.waiting = waiting
        super().__init__(
            f"couldn't get a connection for database {alias!r} after {waited:.2f} sec: "
            f"all {max_size} connections of its pool are in use "
            f"({waiting} other task(s) waiting). Raise OPTIONS['pool']['max_size'] "
            f"or OPTIONS['pool']['timeout'], or hold connections for less time "
            f"(each open async transaction or cursor block keeps one)."
        )


class TooManyWaiting(OperationalError):
    """The pool refused a request: ``max_waiting`` tasks already wait for a connection."""

    def __init__(self, alias: str, max_size: int, waiting: int) -> None:
        self.alias = alias
        self.max_size = max_size
        self.waiting = waiting
        super().__init__(
            f"couldn't get a connection for database {alias!r}: {waiting} task(s) already "
            f"wait for one of its {max_size} connections, which is "
            f"OPTIONS['pool']['max_waiting']. Raise max_waiting or max_size, or shed load "
            f"before it reaches the database."
        )


class PoolClosed(OperationalError):
    """The pool was closed (``close_pools()`` or its loop's shutdown) while a task used it."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        super().__init__(
            f"the connection pool of database {alias!r} is closed; it was closed by "
            f"close_pools() or by its event loop's shutdown while this task waited for it."
        )


class ConnectionOwnedByAnotherTask(InterfaceError):
    """A task tried to use a connection pinned to a transaction of another task.

    A task created inside a transaction block (``asyncio.gather`` or
    ``asyncio.create_task`` there) cannot join the transaction: its work would
    interleave with the owner's on one connection, or land after the block
    rolled back.
    """

    def __init__(self, alias: str, owner: str, current: str, *, ended: bool) -> None:
        self.alias = alias
        self.owner = owner
        self.current = current
        state = "was opened" if ended else "is open"
        super().__init__(
            f"task {current!r} cannot use database {alias!r}: it was created while a "
            f"transaction {state} in task {owner!r}, and only that task may use it. "
            f"Await the work in task {owner!r} itself, or run it on a fresh connection "
            f"outside the transaction with "
            f"`async with async_connections.independent_connection(): ...`."
        )


class BridgeRequired(RuntimeError):
    """``await_()`` was called outside code started by ``run_sync()``."""
