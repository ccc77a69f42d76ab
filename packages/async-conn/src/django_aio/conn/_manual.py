"""Manual transaction control on ``AsyncConnection``, as on Django's connection.

Note [Manual transactions]
~~~~~~~~~~~~~~~~~~~~~~~~~~
``await conn.set_autocommit(False)`` opens a transaction that outlives any one
unit of work, exactly as ``async_atomic()`` does: the connection is held and
pinned to the task (``hold()`` and ``push_pin()``, the same steps as
``pinned()``), so every later query of the task runs in that transaction and
tasks created meanwhile are refused the alias (Note [Transactions and child
tasks] in _scope.py). ``await conn.set_autocommit(True)`` ends the pin and
gives the hold back; if it fails (psycopg refuses to switch while a
transaction is still open, as in sync Django), nothing is given back.

The checks and messages are Django's: every method runs the Django wrapper's
own method in the bridge, so calling them inside an atomic block raises
``TransactionManagementError("This is forbidden when an 'atomic' block is
active.")`` as Django does, and savepoints outside a transaction are no-ops
returning ``None``, as in Django.

A task that ends with autocommit off is handled by the one release path
(Note [Task end] in _task_end.py): the pool sees a connection that is not
in autocommit and closes it instead of returning it, so uncommitted work is
rolled back by the server and never reaches another task.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from django.db import connections
from django.db.transaction import TransactionManagementError

from ._scope import Pin, pop_pin, push_pin
from ._units import run_sync

if TYPE_CHECKING:
    from ._connection import AsyncConnection
    from ._lease import Lease
    from ._scope import Scope

__all__ = ["ManualTransactions"]

_NOT_IN_ATOMIC = "The rollback flag doesn't work outside of an 'atomic' block."


class _Manual:
    """The hold and pin taken by ``set_autocommit(False)``."""

    __slots__ = ("pin", "task", "tenure", "token")

    def __init__(self, tenure: object | None, pin: Pin, token: Any) -> None:
        self.tenure = tenure
        self.pin = pin
        self.token = token
        self.task: asyncio.Task[Any] | None = None

    def watch(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            # Tasks created meanwhile must learn the owner is gone (their
            # ConnectionOwnedByAnotherTask says so) once it ends.
            self.task = task
            task.add_done_callback(self.ended)

    def ended(self, task: asyncio.Task[Any]) -> None:
        self.pin.active = False

    def end(self) -> None:
        pop_pin(self.pin, self.token)
        if self.task is not None:
            self.task.remove_done_callback(self.ended)
            self.task = None


class ManualTransactions:
    """Django's manual transaction API, awaitable (Note [Manual transactions]).

    Mixed into ``AsyncConnection``.
    """

    _manual: _Manual | None = None

    if TYPE_CHECKING:
        alias: str
        lease: Lease | None
        scope: Scope

        @property
        def tenure(self) -> object | None: ...

        async def hold(self) -> Lease: ...

        async def unhold(self, tenure: object | None = None) -> None: ...

    def _manual_state(self) -> _Manual | None:
        manual = self._manual
        if manual is not None and manual.tenure is not self.tenure:
            # The connection was reclaimed when the task ended (Note [Task
            # end]): the transaction is gone with it, and so is the hold.
            manual.pin.active = False
            self._manual = manual = None
        return manual

    async def _run_django(self, method: str, *args: Any) -> Any:
        """Run the Django wrapper's ``method`` on this task's connection, in the bridge."""
        alias = self.alias

        def call() -> Any:
            # Routed to the task's held connection, or a pooled one for the
            # call (Note [Routing] in _routing.py).
            return getattr(connections[alias], method)(*args)

        return await run_sync(call)

    async def get_autocommit(self) -> bool:
        """Whether the task's connection is in autocommit mode (Django's ``get_autocommit()``).

        ``False`` inside a transaction block and after ``set_autocommit(False)``.
        """
        return bool(await self._run_django("get_autocommit"))

    async def set_autocommit(self, autocommit: bool) -> None:
        """Turn autocommit off (start a transaction) or back on, as Django's ``set_autocommit()``.

        While it is off the connection is held and pinned to this task, as in
        a transaction block; turning it back on gives it back. Raises Django's
        ``TransactionManagementError`` inside an atomic block.
        """
        manual = self._manual_state()
        if manual is not None:
            assert self.lease is not None
            await run_sync(self.lease.wrapper.set_autocommit, autocommit)
            if autocommit:
                # Only once Django and psycopg agreed to switch: a refusal
                # leaves the transaction open and held.
                self._manual = None
                manual.end()
                await self.unhold(manual.tenure)
            return
        if autocommit:
            # Already on as far as this task is concerned: Django's call still
            # runs, for its checks (inside an atomic block it raises).
            await self._run_django("set_autocommit", True)
            return
        lease = await self.hold()
        tenure = self.tenure
        pin, token = push_pin(cast("AsyncConnection", self))
        try:
            await run_sync(lease.wrapper.set_autocommit, False)
        except BaseException:
            pop_pin(pin, token)
            await self.unhold(tenure)
            raise
        self._manual = manual = _Manual(tenure, pin, token)
        manual.watch(self.scope.task)

    async def commit(self) -> None:
        """Commit the current transaction (Django's ``commit()``); autocommit stays off."""
        await self._run_django("commit")

    async def rollback(self) -> None:
        """Roll back the current transaction (Django's ``rollback()``); autocommit stays off."""
        await self._run_django("rollback")

    async def savepoint(self) -> str | None:
        """Create a savepoint and return its id (Django's ``savepoint()``).

        ``None`` outside a transaction, where Django does nothing.
        """
        sid = await self._run_django("savepoint")
        return None if sid is None else str(sid)

    async def savepoint_commit(self, sid: str | None) -> None:
        """Release savepoint ``sid`` (Django's ``savepoint_commit()``)."""
        await self._run_django("savepoint_commit", sid)

    async def savepoint_rollback(self, sid: str | None) -> None:
        """Roll back to savepoint ``sid`` (Django's ``savepoint_rollback()``)."""
        await self._run_django("savepoint_rollback", sid)

    def get_rollback(self) -> bool:
        """The innermost atomic block's "needs rollback" flag (Django's ``get_rollback()``).

        No I/O: the flag lives on the held connection. Outside an atomic
        block raises Django's ``TransactionManagementError``.
        """
        lease = self.lease
        if lease is None:
            raise TransactionManagementError(_NOT_IN_ATOMIC)
        return bool(lease.wrapper.get_rollback())

    def set_rollback(self, rollback: bool) -> None:
        """Set the innermost atomic block's "needs rollback" flag (Django's ``set_rollback()``)."""
        lease = self.lease
        if lease is None:
            raise TransactionManagementError(_NOT_IN_ATOMIC)
        lease.wrapper.set_rollback(rollback)

    @property
    def needs_rollback(self) -> bool:
        """Whether the open transaction must be rolled back (an error happened in it)."""
        return self.lease is not None and bool(self.lease.wrapper.needs_rollback)
