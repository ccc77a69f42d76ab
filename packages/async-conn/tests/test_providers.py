"""The connection-provider hook of django_aio.conn.layers (Note [Connection providers])."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

from django_aio.conn import AsyncConnection, async_connections, run_sync
from django_aio.conn.layers import (
    AliasPool,
    ConnectionProvider,
    Lease,
    install_provider,
    installed_providers,
    pool_for,
    swap_class,
    uninstall_provider,
)


class Recorder(ConnectionProvider):
    """Records every call, then does what the provider below would."""

    def __init__(self, name: str, calls: list[tuple[str, ...]]) -> None:
        self.name = name
        self.calls = calls

    def __repr__(self) -> str:
        return f"<Recorder {self.name}>"

    async def acquire(self, connection: AsyncConnection, pool: AliasPool) -> Lease:
        self.calls.append((self.name, "acquire", connection.alias, pool.alias))
        return await super().acquire(connection, pool)

    async def release(
        self, connection: AsyncConnection, lease: Lease, *, discard: bool = False
    ) -> bool:
        self.calls.append((self.name, "release", connection.alias, lease.alias))
        return await super().release(connection, lease, discard=discard)

    def ended_holding(self, connection: AsyncConnection, lease: Lease) -> None:
        self.calls.append((self.name, "ended_holding", connection.scope.name, lease.alias))
        super().ended_holding(connection, lease)


class Lender(ConnectionProvider):
    """Lends one lease for ``default``; records what is given back."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.given_back: list[Lease] = []

    async def lend(self, connection: AsyncConnection) -> Lease | None:
        if connection.alias == "default":
            return self.lease
        return await super().lend(connection)

    def give_back(self, connection: AsyncConnection, lease: Lease) -> None:
        self.given_back.append(lease)


@pytest.fixture
def installed() -> Iterator[list[ConnectionProvider]]:
    """Providers the test installs, uninstalled afterwards whatever happens."""
    mine: list[ConnectionProvider] = []
    yield mine
    for provider in mine:
        if provider in installed_providers():
            uninstall_provider(provider)


def _install(installed: list[ConnectionProvider], provider: ConnectionProvider) -> None:
    install_provider(provider)
    installed.append(provider)


def _count_users() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        return int(cursor.fetchone()[0])


async def test_no_provider_is_installed_outside_tests_that_install_one() -> None:
    assert installed_providers() == []


async def test_pooled_leases_are_taken_and_given_back_through_the_provider(
    installed: list[ConnectionProvider],
) -> None:
    calls: list[tuple[str, ...]] = []
    _install(installed, Recorder("r", calls))
    assert await run_sync(_count_users) == 1
    assert calls == [("r", "acquire", "default", "default"), ("r", "release", "default", "default")]

    uninstall_provider(installed[0])
    await run_sync(_count_users)
    assert len(calls) == 2  # uninstalled: not asked any more


async def test_a_held_connection_asks_the_provider_once(
    installed: list[ConnectionProvider],
) -> None:
    calls: list[tuple[str, ...]] = []
    _install(installed, Recorder("r", calls))
    async with async_connections["default"].cursor() as cursor:
        await cursor.execute("SELECT 1")
        await run_sync(_count_users)  # runs on the held connection
    assert [call[1] for call in calls] == ["acquire", "release"]


async def test_a_lent_lease_is_used_and_given_back_to_its_lender(
    installed: list[ConnectionProvider],
) -> None:
    pool = pool_for("default")
    lease = await pool.acquire()
    try:
        idle = pool.idle
        lender = Lender(lease)
        _install(installed, lender)
        conn = async_connections["default"]
        async with conn.cursor() as cursor:
            assert conn.lease is lease
            assert conn.borrowed  # the lender's, not this task's
            await cursor.execute("SELECT 1")
        assert conn.lease is None
        assert lender.given_back == [lease]
        assert await run_sync(_count_users) == 1
        assert lender.given_back == [lease, lease]
        assert pool.idle == idle  # the pool saw none of it
    finally:
        await pool.release(lease)


async def test_a_task_ending_with_a_lent_lease_leaves_it_to_the_lender(
    installed: list[ConnectionProvider],
) -> None:
    pool = pool_for("default")
    lease = await pool.acquire()
    lender = Lender(lease)
    _install(installed, lender)

    async def leaky() -> None:
        await async_connections["default"].hold()

    try:
        await asyncio.create_task(leaky(), name="leaky")
        for _ in range(4):  # conn takes back what a task left held after two hops
            await asyncio.sleep(0)
        assert lender.given_back == []
        assert not lease.aconnection.closed
    finally:
        await pool.release(lease)


async def test_providers_stack_and_pass_calls_down(installed: list[ConnectionProvider]) -> None:
    calls: list[tuple[str, ...]] = []
    below, above = Recorder("below", calls), Recorder("above", calls)
    _install(installed, below)
    _install(installed, above)
    assert installed_providers() == [below, above]
    await run_sync(_count_users)
    assert [call[:2] for call in calls] == [
        ("above", "acquire"),
        ("below", "acquire"),
        ("above", "release"),
        ("below", "release"),
    ]

    calls.clear()
    uninstall_provider(below)  # in any order
    await run_sync(_count_users)
    assert [call[:2] for call in calls] == [("above", "acquire"), ("above", "release")]


async def test_a_lender_above_another_provider_lends_first(
    installed: list[ConnectionProvider],
) -> None:
    calls: list[tuple[str, ...]] = []
    pool = pool_for("default")
    lease = await pool.acquire()
    try:
        _install(installed, Recorder("r", calls))
        _install(installed, Lender(lease))
        await run_sync(_count_users)
        assert calls == []  # lent: no pooled lease taken
        await run_sync(lambda: connections["other"].ensure_connection())
        # Not lent for "other": the provider below gets the pool's.
        assert [call[1:3] for call in calls] == [("acquire", "other"), ("release", "other")]
    finally:
        await pool.release(lease)


async def test_a_task_ending_holding_a_pooled_lease_is_reported_before_its_release(
    installed: list[ConnectionProvider],
) -> None:
    calls: list[tuple[str, ...]] = []
    _install(installed, Recorder("r", calls))

    async def leaky() -> None:
        await async_connections["default"].hold()

    await asyncio.create_task(leaky(), name="leaky")
    for _ in range(6):
        if len(calls) == 3:
            break
        await asyncio.sleep(0)
    assert [call[1:] for call in calls] == [
        ("acquire", "default", "default"),
        ("ended_holding", "leaky", "default"),
        ("release", "default", "default"),
    ]


async def test_a_failing_acquire_leaves_nothing_held(installed: list[ConnectionProvider]) -> None:
    class Refuses(ConnectionProvider):
        async def acquire(self, connection: AsyncConnection, pool: AliasPool) -> Lease:
            raise LookupError(f"no {pool.alias!r} here")

    _install(installed, Refuses())
    conn = async_connections["default"]
    with pytest.raises(LookupError) as error:
        await conn.hold()
    assert str(error.value) == "no 'default' here"
    assert conn.lease is None
    with pytest.raises(RuntimeError) as unheld:
        await conn.unhold()
    assert str(unheld.value).startswith("unhold() without hold() on <AsyncConnection")


def test_install_and_uninstall_refuse_mistakes(installed: list[ConnectionProvider]) -> None:
    provider = Recorder("r", [])
    with pytest.raises(TypeError) as error:
        install_provider(object())  # type: ignore[arg-type]
    assert str(error.value).startswith("install_provider() needs a ConnectionProvider, got <object")
    _install(installed, provider)
    with pytest.raises(RuntimeError) as error:
        install_provider(provider)
    assert str(error.value) == "<Recorder r> is installed already."
    uninstall_provider(provider)
    with pytest.raises(RuntimeError) as error:
        uninstall_provider(provider)
    assert str(error.value) == "<Recorder r> is not installed."


def test_swap_class_swaps_within_a_class_family_only() -> None:
    class Base:
        pass

    class Special(Base):
        def special(self) -> str:
            return "special"

    obj: Any = Base()
    assert swap_class(obj, Special) is Base
    assert obj.special() == "special"
    assert swap_class(obj, Base) is Special
    assert type(obj) is Base
    with pytest.raises(TypeError) as error:
        swap_class(obj, int)
    assert str(error.value) == (
        "swap_class() swaps between a class and its subclasses only; "
        "test_swap_class_swaps_within_a_class_family_only.<locals>.Base and int are unrelated."
    )
