"""Which task owns which connection.

Note [Scopes]
~~~~~~~~~~~~~
Every asyncio task gets its own ``Scope`` (its ``AsyncConnection`` per alias),
found through a context variable and checked against ``current_task()``:
child tasks copy their parent's context, so a scope is only ever used by the
task that made it, never by a parent's children (the asgiref ``Local`` pitfall).

Note [Transactions and child tasks]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
A transaction pins its connection to the task that opened it. Tasks created
inside the transaction (``gather`` / ``create_task`` in the block) inherit a
``Pin`` marker through their copied context and are refused that alias, even
after the block ended: otherwise their writes would interleave with the
owner's, or commit on another connection after the block rolled back.

One exception: while bridged code waits on ``async_to_sync(...)`` (Django's
signal dispatch to ``async def`` receivers does this), the owner is blocked
until that coroutine finishes, and tasks it creates may *borrow* the
owner's transaction connection, one at a time. That is how async receivers
run inside the caller's transaction.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.db import connections
from django.utils.connection import ConnectionDoesNotExist

from ._errors import ConnectionOwnedByAnotherTask

if TYPE_CHECKING:
    from ._connection import AsyncConnection
    from ._lease import Lease

__all__ = [
    "Pin",
    "Pinned",
    "Scope",
    "act_for",
    "current_scope",
    "find_borrowable",
    "independent_scope",
    "lending",
    "restore_ownership",
    "save_ownership",
]

T = TypeVar("T")


class Scope:
    """The connections of one task (Note [Scopes]).

    Refers to its task weakly: ownership must never keep a task alive (Note
    [Task end] in _task_end.py).
    """

    __slots__ = ("__weakref__", "_finalizer", "_task_ref", "connections", "loop", "name")

    #: What ``connection()`` creates: ``AsyncConnection``, set by _connection.py,
    #: which builds on this module (so this one never imports it).
    connection_class: ClassVar[type[AsyncConnection]]

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task_ref = weakref.ref(task)
        self.name = task.get_name()
        self.loop = task.get_loop()
        self.connections: dict[str, AsyncConnection] = {}
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def task(self) -> asyncio.Task[Any] | None:
        """The owner task, or ``None`` once it has been garbage-collected."""
        return self._task_ref()

    def watch(self) -> None:
        """Release this scope's connections when its task ends or is destroyed (once per task).

        See Note [Task end] in _task_end.py.
        """
        if self._finalizer is not None:
            return
        task = self._task_ref()
        if task is None:
            return
        # The finalizer holds the scope (never the task): a pending task that
        # nothing references any more is collected, and its connections with
        # it would be lost to the pool, so they are released from here.
        self._finalizer = weakref.finalize(task, _task_lost, self)
        self._finalizer.atexit = False
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
        for conn in list(self.connections.values()):
            conn._task_done(task)
        # A scope and its connections refer to each other. When nothing is
        # held any more (the usual end of a request), forget them here so that
        # reference counting frees both as soon as the task goes, instead of
        # leaving a cycle per task to the garbage collector. Held connections
        # are still being given back (Note [Task end]): their cycle stays.
        if all(conn.lease is None for conn in self.connections.values()):
            self.connections.clear()

    def connection(self, alias: str) -> AsyncConnection:
        conn = self.connections.get(alias)
        if conn is None:
            if alias not in connections.settings:
                raise ConnectionDoesNotExist(f"The connection '{alias}' doesn't exist.")
            conn = self.connections[alias] = self.connection_class(self, alias)
        return conn


def _task_lost(scope: Scope) -> None:
    # Called by the garbage collector, in whatever thread and frame it runs.
    for conn in list(scope.connections.values()):
        conn._task_lost()


class Pin:
    """A transaction's claim on its connection, inherited by child tasks."""

    __slots__ = ("active", "alias", "connection", "task")

    def __init__(self, task: asyncio.Task[Any], connection: AsyncConnection) -> None:
        self.task = task
        self.alias = connection.alias
        self.connection = connection
        self.active = True


class _Lending:
    """Leases a blocked owner lends to the tasks it creates meanwhile."""

    __slots__ = ("active", "leases", "task")

    def __init__(self, task: asyncio.Task[Any], leases: dict[str, Lease]) -> None:
        self.task = task
        self.leases = leases
        self.active = True


_scope_var: ContextVar[Scope | None] = ContextVar("django_aio_scope", default=None)
_pins_var: ContextVar[tuple[Pin, ...]] = ContextVar("django_aio_pins", default=())
_lending_var: ContextVar[_Lending | None] = ContextVar("django_aio_lending", default=None)


def current_task() -> asyncio.Task[Any]:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if task is None:
        raise RuntimeError(
            "django_aio async connections can only be used inside a running asyncio "
            "task; call them from a coroutine (an async view, asyncio.run(...), ...)."
        )
    return task


def current_scope() -> Scope:
    """The calling task's scope, made on first use (Note [Scopes])."""
    task = current_task()
    scope = _scope_var.get()
    if scope is None or scope._task_ref() is not task:
        # Django 6 runs async signal receivers as tasks sharing one context,
        # so another task may have replaced ours in the variable: find it.
        scope = _task_scopes.get(task)
        if scope is None:
            scope = _task_scopes[task] = Scope(task)
        _scope_var.set(scope)
    return scope


# The scope of each task. Weak keys: an entry must not keep its task alive
# (a Scope refers to its task weakly too).
_task_scopes: weakref.WeakKeyDictionary[asyncio.Task[Any], Scope] = weakref.WeakKeyDictionary()


def act_for(task: asyncio.Task[Any], scope: Scope) -> None:
    """Let ``task`` use ``scope``'s connections as if it were their task.

    For a task that finishes, shielded, work its owner started and waits for
    (see ``AsyncConnection.run_held``).
    """
    _task_scopes[task] = scope


def find_borrowable(connection: AsyncConnection) -> Lease | None:
    """The lease ``connection``'s task may borrow, or raise if it may not use the alias.

    See Note [Transactions and child tasks].
    """
    task = connection.scope.task
    alias = connection.alias
    assert task is not None  # a connection in use belongs to a live task
    lending = _lending_var.get()
    for pin in _pins_var.get():
        if pin.alias != alias or pin.task is task:
            continue
        lease = pin.connection.lease
        if pin.active and lease is not None and _lends(lending, pin.task, alias, lease):
            return lease
        raise ConnectionOwnedByAnotherTask(
            alias, pin.task.get_name(), task.get_name(), ended=not pin.active
        )
    if lending is not None and lending.task is not task and alias in lending.leases:
        if lending.active:
            return lending.leases[alias]
        raise ConnectionOwnedByAnotherTask(
            alias, lending.task.get_name(), task.get_name(), ended=True
        )
    return None


def _lends(lending: _Lending | None, owner: asyncio.Task[Any], alias: str, lease: Lease) -> bool:
    return (
        lending is not None
        and lending.active
        and lending.task is owner
        and lending.leases.get(alias) is lease
    )


def push_pin(connection: AsyncConnection) -> tuple[Pin, Any]:
    task = connection.scope.task
    assert task is not None
    pin = Pin(task, connection)
    return pin, _pins_var.set((*_pins_var.get(), pin))


def pop_pin(pin: Pin, token: Any) -> None:
    """End ``pin``; safe from another task or context than the one that pushed it.

    An abandoned async generator's block is exited by the loop in a new task
    with a context of its own (Note [Task end] in _task_end.py), where the
    token cannot be reset.
    """
    pin.active = False
    try:
        _pins_var.reset(token)
    except (ValueError, RuntimeError):
        pins = _pins_var.get()
        if pin in pins:
            _pins_var.set(tuple(p for p in pins if p is not pin))


class Pinned:
    """What ``AsyncConnection.pinned()`` returns: holds and pins for one block.

    A class rather than an ``asynccontextmanager``: a quarter fewer
    instructions to enter and leave, once per transaction.
    """

    __slots__ = ("_connection", "_pin", "_tenure", "_token")

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def __aenter__(self) -> Any:
        connection = self._connection
        lease = connection.hold_now()
        if lease is None:
            lease = await connection._hold_waiting()
        self._tenure = connection.tenure
        self._pin, self._token = push_pin(connection)
        return lease.wrapper

    async def __aexit__(self, *exc_info: object) -> None:
        connection = self._connection
        pop_pin(self._pin, self._token)
        if not connection.unhold_now(self._tenure):
            await connection._unhold_waiting()


def save_ownership() -> tuple[Scope | None, tuple[Pin, ...]]:
    """The calling context's scope and pins, for ``restore_ownership``."""
    return _scope_var.get(), _pins_var.get()


def restore_ownership(saved: tuple[Scope | None, tuple[Pin, ...]]) -> None:
    _scope_var.set(saved[0])
    _pins_var.set(saved[1])


async def lending(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` while lending the task's transaction connections to its children."""
    scope = _scope_var.get()
    task = asyncio.current_task()
    leases: dict[str, Lease] = {}
    if scope is not None and task is not None and scope._task_ref() is task:
        for alias, conn in scope.connections.items():
            lease = conn.lease
            if lease is not None and lease.in_transaction():
                leases[alias] = lease
    if not leases or task is None:
        return await awaitable
    window = _Lending(task, leases)
    token = _lending_var.set(window)
    try:
        return await awaitable
    finally:
        window.active = False
        _lending_var.reset(token)


@asynccontextmanager
async def independent_scope() -> AsyncIterator[Scope]:
    """A fresh scope for the block: new connections, no inherited transaction."""
    scope = Scope(current_task())
    tokens = (_scope_var.set(scope), _pins_var.set(()), _lending_var.set(None))
    try:
        yield scope
    finally:
        _lending_var.reset(tokens[2])
        _pins_var.reset(tokens[1])
        _scope_var.reset(tokens[0])
        for conn in list(scope.connections.values()):
            await conn.release_all()
