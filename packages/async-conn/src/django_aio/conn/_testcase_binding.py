"""Django's ``TestCase`` and the bridge.

Note [Test-case binding]
~~~~~~~~~~~~~~~~~~~~~~~~
``django.test.TestCase`` keeps each test's data in an uncommitted transaction
on the test thread's sync connection; pooled async connections would never
see it, so Django's own async test methods (and a project's) would fail once
their ``a*`` calls run in the bridge. While a test case's transaction is open
on an alias, units of work on that alias therefore borrow the test thread's
connection itself, one unit at a time, exactly as tasks borrow a transaction
owner's connection: the test thread is blocked in ``async_to_sync`` (or runs
the loop itself, under pytest-asyncio) meanwhile, so nothing interleaves.

The lending is a connection provider (Note [Connection providers] in
_providers.py), installed while a test case's transaction is open on some
alias, so ``hold()`` has no branch of its own for it. The lent wrapper is a
plain sync Django connection: its I/O blocks the loop, which only tests do,
and only while a unit holds it do its methods skip Django's
``@async_unsafe`` guard (its class is swapped for an unguarded one, Note
[Class swaps] in _class_swap.py). django_aio.testing's test cases do not use
this: they run the whole test on an async connection instead.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, cast

from django.db import connections

from ._bridgeable import bridgeable
from ._class_swap import swap_class
from ._providers import ConnectionProvider, install_provider, uninstall_provider
from ._wrapper import is_guarded, unguarded_class

if TYPE_CHECKING:
    from ._connection import AsyncConnection
    from ._lease import Lease

__all__ = ["BoundLease", "install_testcase_binding"]


class BoundLease:
    """A test thread's sync connection, lent to units of work (Note [Test-case binding])."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper
        self.alias: str = wrapper.alias
        self.lock = asyncio.Lock()
        self._class: type[Any] = type(wrapper)

    def in_transaction(self) -> bool:
        return True

    async def borrow(self) -> None:
        await self.lock.acquire()
        _drop_restored_guards(self.wrapper, self._class)
        swap_class(self.wrapper, unguarded_class(cast(Hashable, self._class)))

    def give_back(self) -> None:
        swap_class(self.wrapper, self._class)
        self.lock.release()


def _drop_restored_guards(wrapper: Any, wrapper_class: type[Any]) -> None:
    """Forget instance attributes that only repeat the class's guarded methods.

    A test class that does not declare an alias in ``databases`` replaces the
    connection's ``cursor``/``connect``/... with failing stand-ins, and puts
    the *bound* original methods back as instance attributes when it ends
    (``SimpleTestCase._remove_databases_failures``). Those would shadow the
    unguarded class for the rest of the process. Removing them changes
    nothing for sync code: the class gives the very same method. A failing
    stand-in (the alias is disallowed right now) is kept.
    """
    for name, value in list(vars(wrapper).items()):
        function = getattr(value, "__func__", None)
        if (
            function is not None
            and getattr(value, "__self__", None) is wrapper
            and function is getattr(wrapper_class, name, None)
            and is_guarded(function)
        ):
            del wrapper.__dict__[name]


class _TestCaseLending(ConnectionProvider):
    """Lends the bound test-thread connections; installed while any is bound."""

    async def lend(self, connection: AsyncConnection) -> Lease | None:
        bound = _bound.get(connection.alias)
        if bound is None:
            return await super().lend(connection)
        await bound.borrow()
        return cast("Lease", bound)

    def give_back(self, connection: AsyncConnection, lease: Lease) -> None:
        cast(BoundLease, lease).give_back()


_bound: dict[str, BoundLease] = {}
_lending = _TestCaseLending()


def _bind(alias: str) -> None:
    if alias in _bound or not bridgeable(alias):
        return
    wrapper = connections[alias]
    wrapper.inc_thread_sharing()
    if not _bound:
        install_provider(_lending)
    _bound[alias] = BoundLease(wrapper)


def _unbind(alias: str) -> None:
    lease = _bound.get(alias)
    if lease is not None and not lease.wrapper.in_atomic_block:
        del _bound[alias]
        lease.wrapper.dec_thread_sharing()
        if not _bound:
            uninstall_provider(_lending)


@functools.cache
def install_testcase_binding() -> None:
    """Bind test-case transactions as they open and close (idempotent)."""
    from django.test import TestCase

    enter = TestCase._enter_atomics.__func__  # type: ignore[attr-defined]
    rollback = TestCase._rollback_atomics.__func__  # type: ignore[attr-defined]

    def _enter_atomics(cls: type[TestCase]) -> Any:
        atomics = enter(cls)
        for alias in atomics:
            _bind(alias)
        return atomics

    def _rollback_atomics(cls: type[TestCase], atomics: Any) -> None:
        try:
            rollback(cls, atomics)
        finally:
            for alias in atomics:
                _unbind(alias)

    TestCase._enter_atomics = classmethod(_enter_atomics)  # type: ignore[attr-defined]
    TestCase._rollback_atomics = classmethod(_rollback_atomics)  # type: ignore[attr-defined]
