"""The one hook test tooling has into where a task's connections come from.

Note [Connection providers]
~~~~~~~~~~~~~~~~~~~~~~~~~~~
In production ``AsyncConnection.hold()`` gets a connection one way: it
borrows the one a blocked owner lends (Note [Transactions and child tasks] in
_scope.py), or else takes one from the alias's pool, and the last
``unhold()`` gives it back. Test tooling needs two things more: a test case's
own connection lent to the code under test (its data lives in a transaction
no pooled connection sees), and a view of which pooled connections are out
and who took them (to report leaks and refuse aliases a test did not ask
for). Both go through a ``ConnectionProvider`` installed for the duration of
a test; conn itself knows nothing of test cases.

While a provider is installed, ``hold()`` asks it first to ``lend()`` a
lease (given back through ``give_back()``, never to the pool, and never
taken back when the task ends: the provider owns it), takes pooled leases
through its ``acquire()``, and gives them back through its ``release()``,
also when a task ended holding one (``ended_holding()`` tells it so first).
Each method's default passes the call on to the provider installed before
(the next one down), and with none, does what conn does without providers;
so providers stack, and a subclass overrides only what it needs.

With no provider installed, ``hold()`` and ``unhold()`` pay one ``None``
check each for the hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._connection import AsyncConnection
    from ._lease import Lease
    from ._pool import AliasPool

__all__ = [
    "ConnectionProvider",
    "Providers",
    "install_provider",
    "installed_providers",
    "providers",
    "uninstall_provider",
]


class ConnectionProvider:
    """Where ``hold()`` gets its leases while installed (Note [Connection providers])."""

    async def lend(self, connection: AsyncConnection) -> Lease | None:
        """A lease ``connection`` uses instead of one of its own, or ``None``.

        A lent lease is the provider's: the last ``unhold()`` passes it to
        ``give_back()``, and the task's end leaves it alone. By default, what
        the provider installed before lends (nothing without one).
        """
        below = providers.below(self)
        return None if below is None else await below.lend(connection)

    def give_back(self, connection: AsyncConnection, lease: Lease) -> None:
        """The last ``unhold()`` of a lease this provider lent (must not fail)."""

    async def acquire(self, connection: AsyncConnection, pool: AliasPool) -> Lease:
        """A lease from ``pool`` for ``connection`` (by default ``pool.acquire()``)."""
        below = providers.below(self)
        return await (pool.acquire() if below is None else below.acquire(connection, pool))

    async def release(
        self, connection: AsyncConnection, lease: Lease, *, discard: bool = False
    ) -> bool:
        """Give a pooled ``lease`` back (by default ``lease.pool.release()``).

        Returns whether it went back to the pool (rather than being closed).
        """
        below = providers.below(self)
        if below is None:
            return await lease.pool.release(lease, discard=discard)
        return await below.release(connection, lease, discard=discard)

    def ended_holding(self, connection: AsyncConnection, lease: Lease) -> None:
        """``connection``'s task ended (or was destroyed) holding the pooled ``lease``.

        Called before conn takes it back through ``release()``, from the
        garbage collector's thread for a destroyed task: keep it short.
        """
        below = providers.below(self)
        if below is not None:
            below.ended_holding(connection, lease)


class Providers:
    """The installed providers; ``current`` is the last installed (or ``None``)."""

    __slots__ = ("current", "stack")

    def __init__(self) -> None:
        self.stack: list[ConnectionProvider] = []
        self.current: ConnectionProvider | None = None

    def below(self, provider: ConnectionProvider) -> ConnectionProvider | None:
        """The provider installed before ``provider`` (it passes calls on to that one)."""
        for index, installed in enumerate(self.stack):
            if installed is provider:
                return self.stack[index - 1] if index else None
        return None


providers = Providers()


def install_provider(provider: ConnectionProvider) -> None:
    """Make ``provider`` the first one ``hold()`` asks, until ``uninstall_provider()``."""
    if not isinstance(provider, ConnectionProvider):
        raise TypeError(f"install_provider() needs a ConnectionProvider, got {provider!r}.")
    if provider in providers.stack:
        raise RuntimeError(f"{provider!r} is installed already.")
    providers.stack.append(provider)
    providers.current = provider


def uninstall_provider(provider: ConnectionProvider) -> None:
    """Remove ``provider`` (in any order); connections it lent still go back to it."""
    try:
        providers.stack.remove(provider)
    except ValueError:
        raise RuntimeError(f"{provider!r} is not installed.") from None
    providers.current = providers.stack[-1] if providers.stack else None


def installed_providers() -> list[ConnectionProvider]:
    """The installed providers, first installed first."""
    return list(providers.stack)
