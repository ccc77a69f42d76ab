"""Where the caller's transaction state lives, and how to read it.

Note [Sync and async callers]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Every API of this package works from sync and from async code, and must look
at the connection that code actually uses:

- no event loop running in the thread (plain sync Django, a thread of
  ``sync_to_async``): Django's own ``connections[alias]``;
- an asyncio task, in async code or in bridged sync code (``run_sync``): the
  task's ``async_connections[alias]``. Bridged ``connections[alias]`` is routed
  to the same connection, but asking it would take one from the pool just to
  find nothing open; the held lease answers without I/O.

A task created inside another task's transaction is refused that alias with
``ConnectionOwnedByAnotherTask`` (it names ``independent_connection``), unless
the owner lends it (async signal receivers).

Note [Test-case transactions]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Django's ``TestCase`` (and pytest-django, which runs its tests through a
``TestCase``) wraps the class and each test in ``atomic`` blocks marked with
``Atomic._from_testcase = True`` (Django 5.2 to 6.1). Those transactions are not
the application's: while the innermost atomic block of a connection is such a
block, this package reports "no transaction open", so code behaves as in
production. Any layer that opens a test transaction for async code marks its
``Atomic`` the same way to get the same treatment.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.exceptions import SynchronousOnlyOperation
from django.db import connections

from django_aio.conn import async_connections, in_bridge
from django_aio.conn.layers import find_borrowable

__all__ = [
    "current_wrapper",
    "loop_running",
    "require_sync_caller",
    "wrapper_in_transaction",
    "wraps_testcase",
]


def loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def current_wrapper(alias: str) -> Any | None:
    """The Django wrapper holding the caller's state for ``alias`` (Note [Sync and async callers]).

    ``None`` when an async caller holds no connection for ``alias``: nothing
    can be open then.
    """
    if not loop_running():
        return connections[alias]
    conn = async_connections[alias]
    lease = conn.lease
    if lease is None:
        # Raises ConnectionOwnedByAnotherTask in a task created inside
        # another task's transaction, or finds the lease it may borrow.
        lease = find_borrowable(conn)
    return None if lease is None else lease.wrapper


def wraps_testcase(wrapper: Any) -> bool:
    """Whether the innermost atomic block of ``wrapper`` is a test case's.

    See Note [Test-case transactions].
    """
    blocks = wrapper.atomic_blocks
    return bool(wrapper.in_atomic_block and blocks and getattr(blocks[-1], "_from_testcase", False))


def wrapper_in_transaction(wrapper: Any | None) -> bool:
    """Whether the application has a transaction open on ``wrapper``.

    A transaction is open when autocommit is off, unless only test-case
    blocks hold it (Note [Test-case transactions]). An unconnected wrapper
    has none: asking Django's ``get_autocommit()`` would connect just to say so.
    """
    if wrapper is None or wrapper.connection is None or wrapper.autocommit:
        return False
    return not wraps_testcase(wrapper)


def require_sync_caller(what: str) -> None:
    """Refuse the sync form in async code, naming the async form.

    Raises Django's ``SynchronousOnlyOperation``, which the sync form would
    raise anyway at its first query, with a message that says what to use.
    """
    if loop_running() and not in_bridge():
        raise SynchronousOnlyOperation(
            f"`with {what}` was used in async code; use `async with {what}` there "
            f"(or decorate an `async def`). The sync form is for sync code, including "
            f"code run by django_aio.conn.run_sync()."
        )
