"""The explicit API in async code, on the task's async connection, and in bridged code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
from atomic_testapp.models import Item
from django.db import connections
from django.db import transaction as django_transaction

from django_aio.atomic import (
    DanglingTransaction,
    NotADecorator,
    TransactionAlreadyOpen,
    TransactionRequired,
    async_atomic,
    dbs_with_open_transactions,
    durable,
    in_transaction,
    run_after_commit,
    savepoint,
    set_rollback,
    transaction,
    transaction_if_not_already,
    transaction_required,
)
from django_aio.conn import ConnectionOwnedByAnotherTask, async_connections, run_sync

from .conftest import Boom, names

pytestmark = pytest.mark.usefixtures("clean_tables")


async def create(name: str) -> Item:
    return await run_sync(Item.objects.create, name=name)


async def test_transaction_commits_and_rolls_back() -> None:
    async with transaction():
        await create("a")
        assert in_transaction()
        assert await names() == []
    assert not in_transaction()
    with pytest.raises(Boom):
        async with transaction():
            await create("b")
            raise Boom
    assert await names() == ["a"]


async def test_decorators_of_async_functions() -> None:
    @transaction
    async def bare() -> str:
        await create("bare")
        return "ok"

    @transaction(using="default")
    async def failing() -> None:
        await create("failing")
        raise LookupError

    @transaction_if_not_already
    async def maybe() -> None:
        await create("maybe")

    @transaction_required
    async def needs() -> str:
        return "needs"

    assert await bare() == "ok"
    with pytest.raises(LookupError):
        await failing()
    await maybe()
    with pytest.raises(TransactionRequired):
        await needs()
    async with transaction():
        assert await needs() == "needs"
    assert await names() == ["bare", "maybe"]


async def test_transaction_inside_a_transaction_raises() -> None:
    async with transaction():
        with pytest.raises(TransactionAlreadyOpen, match="Transactions do not nest"):
            async with transaction():
                pass
    async with async_atomic():
        with pytest.raises(TransactionAlreadyOpen):
            async with transaction():
                pass


async def test_transaction_if_not_already_joins_an_open_transaction() -> None:
    async with transaction():
        await create("outer")
        async with transaction_if_not_already():
            await create("joined")
        await set_rollback(True)
    assert await names() == []


async def test_savepoint() -> None:
    with pytest.raises(TransactionRequired, match=r"^savepoint\(\) needs an open transaction"):
        async with savepoint():
            pass
    async with transaction():
        await create("kept")
        with pytest.raises(Boom):
            async with savepoint():
                await create("dropped")
                raise Boom
    assert await names() == ["kept"]
    with pytest.raises(NotADecorator):

        @savepoint()
        async def f() -> None: ...


async def test_transaction_required_context_manager() -> None:
    with pytest.raises(TransactionRequired):
        async with transaction_required():
            pass
    async with transaction(), transaction_required():
        await create("a")
    assert await names() == ["a"]


async def test_durable_async_function() -> None:
    @durable
    async def important() -> None:
        await create("important")

    async with transaction():
        with pytest.raises(TransactionAlreadyOpen, match="durable function"):
            await important()
    await important()
    assert await names() == ["important"]


async def test_durable_async_function_leaving_a_transaction_open() -> None:
    conn = async_connections["default"]

    @durable
    async def leaky() -> None:
        await conn.hold()
        await run_sync(lambda: connections["default"].set_autocommit(False))
        await create("dangling")

    try:
        with pytest.raises(DanglingTransaction, match="returned with a transaction still open"):
            await leaky()
        assert not in_transaction()
        assert conn.lease is not None
        assert conn.lease.wrapper.get_autocommit()
    finally:
        await conn.unhold()
    assert await names() == []


async def test_run_after_commit_in_async_code() -> None:
    ran: list[str] = []

    async def async_callback() -> None:
        ran.append("async")

    with pytest.raises(TransactionRequired, match=r"^run_after_commit\(\) needs"):
        run_after_commit(partial(ran.append, "never"))
    async with transaction():
        run_after_commit(partial(ran.append, "sync"))
        run_after_commit(async_callback)
        with pytest.raises(Boom):
            async with savepoint():
                run_after_commit(partial(ran.append, "dropped"))
                raise Boom
        assert ran == []
    assert ran == ["sync", "async"]


@pytest.mark.aio_db(transaction=True, databases="__all__")
async def test_in_transaction_and_dbs_with_open_transactions() -> None:
    assert dbs_with_open_transactions() == frozenset()
    async with transaction(using="other"):
        assert dbs_with_open_transactions() == frozenset({"other"})
        async with transaction():
            assert dbs_with_open_transactions() == frozenset({"default", "other"})
    assert not in_transaction(using="other")


async def test_a_child_task_is_told_about_independent_connection() -> None:
    async def child() -> None:
        async with transaction():
            pass

    async with transaction():
        with pytest.raises(ConnectionOwnedByAnotherTask, match="independent_connection"):
            await asyncio.create_task(child())
        with pytest.raises(ConnectionOwnedByAnotherTask):
            await asyncio.create_task(_in_transaction())


async def _in_transaction() -> bool:
    return in_transaction()


async def test_sync_forms_inside_run_sync() -> None:
    ran: list[str] = []

    def work() -> bool:
        assert not in_transaction()
        with transaction():
            Item.objects.create(name="bridged")
            run_after_commit(partial(ran.append, "after"))
            with transaction_required():
                pass
            assert in_transaction()
        return in_transaction()

    assert await run_sync(work) is False
    assert ran == ["after"]

    def nested() -> None:
        assert in_transaction()
        with pytest.raises(TransactionAlreadyOpen), transaction():
            pass
        with savepoint():
            Item.objects.create(name="in savepoint")

    async with transaction():
        await run_sync(nested)
    assert await names() == ["bridged", "in savepoint"]


# -- a test-case transaction on the async connection ----------------------------


@asynccontextmanager
async def simulated_testcase_transaction() -> AsyncIterator[None]:
    """Hold the task's connection in a transaction marked as a test case's.

    What Django's TestCase does on the sync connection (``Atomic._from_testcase``),
    done on the async one, as a testing layer would. A context manager, not
    a fixture: the connection belongs to the task, and fixtures run in another.
    """
    conn = async_connections["default"]
    await conn.hold()
    blocks = [django_transaction.atomic(using="default") for _ in range(2)]
    for block in blocks:
        block._from_testcase = True
        await run_sync(block.__enter__)
    try:
        yield
    finally:
        for block in reversed(blocks):
            await run_sync(django_transaction.set_rollback, True)
            await run_sync(block.__exit__, None, None, None)
        await conn.unhold()


async def test_testcase_transaction_does_not_count() -> None:
    async with simulated_testcase_transaction():
        assert async_connections["default"].in_atomic_block
        assert not in_transaction()
        assert dbs_with_open_transactions() == frozenset()
        with pytest.raises(TransactionRequired):
            run_after_commit(lambda: None)
        with pytest.raises(TransactionRequired):
            async with transaction_required():
                pass
        async with async_atomic():
            # An application block inside the test transaction does count.
            assert in_transaction()


async def test_callbacks_run_when_transaction_exits_inside_a_testcase_transaction() -> None:
    async with simulated_testcase_transaction():
        await _callbacks_run_in_testcase_transaction()
    assert await names() == []


async def _callbacks_run_in_testcase_transaction() -> None:
    built: list[str] = []

    async def build() -> list[str]:
        async with transaction():
            built.append("A")
            run_after_commit(partial(built.append, "C"))
            await create("in test")
            built.append("B")
        built.append("D")
        return built

    assert await build() == ["A", "B", "C", "D"]
    with pytest.raises(Boom):
        async with transaction():
            run_after_commit(partial(built.append, "dropped"))
            raise Boom
    async with transaction_if_not_already():
        run_after_commit(partial(built.append, "E"))
    assert built == ["A", "B", "C", "D", "E"]
    # Inside the test transaction: visible here, never committed.
    assert await run_sync(lambda: list(Item.objects.values_list("name", flat=True))) == ["in test"]
