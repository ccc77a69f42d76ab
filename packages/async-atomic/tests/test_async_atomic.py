"""async_atomic(): commit, rollback, savepoints, durable, rollback flags, signals."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from atomic_testapp.models import Item, Note
from django.db import IntegrityError, connections, transaction
from django.db.models.signals import post_save
from django.db.transaction import TransactionManagementError

from django_aio.atomic import (
    AsyncAtomic,
    async_atomic,
    get_rollback,
    mark_for_rollback_on_error,
    set_rollback,
)
from django_aio.conn import ConnectionOwnedByAnotherTask, async_connections, run_sync

from .conftest import Boom, names, notes

pytestmark = pytest.mark.usefixtures("clean_tables")


async def create(name: str, using: str = "default") -> Item:
    return await run_sync(Item.objects.using(using).create, name=name)


async def test_commits_on_success() -> None:
    async with async_atomic():
        await create("a")
        assert async_connections["default"].in_atomic_block
        # Not visible outside the transaction before the commit.
        assert await names() == []
    assert await names() == ["a"]
    assert not async_connections["default"].in_atomic_block


async def test_rolls_back_on_exception() -> None:
    with pytest.raises(ValueError, match="boom"):
        async with async_atomic():
            await create("a")
            raise ValueError("boom")
    assert await names() == []


async def test_database_error_rolls_back_everything() -> None:
    with pytest.raises(IntegrityError):
        async with async_atomic():
            await create("a")
            await create("a")
    assert await names() == []


async def test_decorator_forms() -> None:
    @async_atomic
    async def bare(name: str) -> str:
        await create(name)
        return name

    @async_atomic(using="default")
    async def with_args(name: str) -> None:
        await create(name)
        raise LookupError(name)

    assert await bare("bare") == "bare"
    with pytest.raises(LookupError):
        await with_args("args")
    assert await names() == ["bare"]
    assert bare.__name__ == "bare"


async def test_decorating_a_sync_function_is_refused() -> None:
    def sync() -> None: ...

    with pytest.raises(TypeError, match=r"async_atomic\(\) decorates `async def` functions"):
        async_atomic()(sync)  # type: ignore[arg-type]


async def test_nested_failure_rolls_back_only_the_inner_block() -> None:
    async with async_atomic():
        await create("outer")
        with pytest.raises(IntegrityError):
            async with async_atomic():
                await create("inner")
                await create("outer")  # duplicate: fails the inner block only
        await create("after")
    assert await names() == ["after", "outer"]


async def test_nested_blocks_share_one_connection_and_commit_at_the_outer_exit() -> None:
    async def pid() -> int:
        async with async_connections["default"].cursor() as cursor:
            await cursor.execute("SELECT pg_backend_pid()")
            (value,) = await cursor.fetchone()
        return int(value)

    async with async_atomic():
        outer = await pid()
        async with async_atomic():
            assert await pid() == outer
            await create("inner")
        assert await names() == []  # released savepoint, not yet committed
    assert await names() == ["inner"]


async def test_shared_instance_is_reentrant() -> None:
    block = async_atomic()
    async with block:
        await create("outer")
        with pytest.raises(Boom):
            async with block:
                await create("inner")
                raise Boom
    assert await names() == ["outer"]


async def test_shared_instance_in_concurrent_tasks() -> None:
    block: AsyncAtomic = async_atomic()
    started = asyncio.Event()

    async def one(name: str, fail: bool) -> None:
        async with block:
            await create(name)
            started.set()
            await asyncio.sleep(0)
            if fail:
                raise ValueError(name)

    results = await asyncio.gather(one("ok", False), one("bad", True), return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], ValueError)
    assert await names() == ["ok"]


async def test_bridged_atomic_nests_inside_async_atomic() -> None:
    def inner() -> None:
        with transaction.atomic():
            Item.objects.create(name="kept")
        try:
            with transaction.atomic():
                Item.objects.create(name="dropped")
                raise Boom
        except Boom:
            pass
        assert connections["default"].in_atomic_block

    async with async_atomic():
        await run_sync(inner)
    assert await names() == ["kept"]


async def test_durable_inside_another_block_raises() -> None:
    with pytest.raises(
        RuntimeError, match=r"A durable atomic block cannot be nested within another atomic block\."
    ):
        async with async_atomic():
            await create("a")
            async with async_atomic(durable=True):
                pass
    assert await names() == []
    async with async_atomic(durable=True):
        await create("durable")
    assert await names() == ["durable"]


async def test_savepoint_false_dooms_the_outer_block() -> None:
    async with async_atomic():
        await create("outer")
        with pytest.raises(Boom):
            async with async_atomic(savepoint=False):
                await create("inner")
                raise Boom
        # No savepoint to roll back to: the whole transaction must roll back.
        assert await get_rollback() is True
        with pytest.raises(TransactionManagementError, match="An error occurred in the current"):
            await create("more")
    assert await names() == []


async def test_set_rollback_rolls_back_without_an_exception() -> None:
    async with async_atomic():
        await create("a")
        assert await get_rollback() is False
        await set_rollback(True)
        assert await get_rollback() is True
    assert await names() == []


async def test_set_rollback_on_the_inner_block_only() -> None:
    async with async_atomic():
        await create("outer")
        async with async_atomic():
            await create("inner")
            await set_rollback(True)
        assert await get_rollback() is False
    assert await names() == ["outer"]


async def test_rollback_flag_outside_a_block_raises() -> None:
    message = (
        "The rollback flag doesn't work outside of an 'atomic' block: no async_atomic() "
        "block is open on database 'default' in this task."
    )
    with pytest.raises(TransactionManagementError) as error:
        await set_rollback(True)
    assert str(error.value) == message
    with pytest.raises(TransactionManagementError) as error:
        await get_rollback()
    assert str(error.value) == message


async def test_mark_for_rollback_on_error() -> None:
    async with async_atomic():
        await create("a")
        with pytest.raises(KeyError):
            async with mark_for_rollback_on_error():
                raise KeyError("x")
        assert await get_rollback() is True
    assert await names() == []

    # Outside a transaction it only re-raises.
    with pytest.raises(KeyError):
        async with mark_for_rollback_on_error():
            raise KeyError("y")

    @mark_for_rollback_on_error()
    async def fine() -> str:
        return "fine"

    assert await fine() == "fine"


@pytest.mark.aio_db(transaction=True, databases="__all__")
async def test_other_alias_has_its_own_transaction() -> None:
    async with async_atomic(using="other"):
        await create("on-other", using="other")
        async with async_atomic():
            await create("on-default")
        assert await names() == ["on-default"]
        await set_rollback(True, using="other")
    async with async_connections.independent_connection():
        assert await run_sync(lambda: Item.objects.using("other").count()) == 0
        await run_sync(lambda: Item.objects.using("other").all().delete())


# -- signal receivers run in the block's transaction -------------------------


@pytest.fixture
def receivers() -> Iterator[list[str]]:
    seen: list[str] = []

    def sync_receiver(sender: Any, instance: Item, **kwargs: Any) -> None:
        seen.append(f"sync {instance.name}")
        Note.objects.create(text=f"sync {instance.name}")

    async def async_receiver(sender: Any, instance: Item, **kwargs: Any) -> None:
        seen.append(f"async {instance.name}")
        await run_sync(Note.objects.create, text=f"async {instance.name}")

    post_save.connect(sync_receiver, sender=Item, dispatch_uid="atomic-sync")
    post_save.connect(async_receiver, sender=Item, dispatch_uid="atomic-async")
    try:
        yield seen
    finally:
        post_save.disconnect(sender=Item, dispatch_uid="atomic-sync")
        post_save.disconnect(sender=Item, dispatch_uid="atomic-async")


async def test_receiver_writes_roll_back_with_the_block(receivers: list[str]) -> None:
    with pytest.raises(Boom):
        async with async_atomic():
            await create("a")
            raise Boom
    assert sorted(receivers) == ["async a", "sync a"]
    assert await names() == []
    assert await notes() == []


async def test_receiver_writes_commit_with_the_block(receivers: list[str]) -> None:
    async with async_atomic():
        await create("a")
        assert await notes() == []  # written in the block's transaction, not yet committed
    assert await names() == ["a"]
    assert sorted(await notes()) == ["async a", "sync a"]


async def test_work_after_an_async_receiver_stays_in_the_block(receivers: list[str]) -> None:
    # Django 6 copies its receivers' context variables back into the sender's
    # context after dispatch: the block's connection must survive that.
    with pytest.raises(Boom):
        async with async_atomic():
            await create("a")
            await create("b")
            assert await names() == []
            raise Boom
    assert await names() == []
    assert await notes() == []


@pytest.fixture
def receiver_with_its_own_block() -> Iterator[None]:
    async def receiver(sender: Any, instance: Item, **kwargs: Any) -> None:
        async with async_atomic():
            await run_sync(Note.objects.create, text=f"kept {instance.name}")
        with pytest.raises(Boom):
            async with async_atomic():
                await run_sync(Note.objects.create, text=f"dropped {instance.name}")
                raise Boom

    post_save.connect(receiver, sender=Item, dispatch_uid="atomic-nested")
    try:
        yield
    finally:
        post_save.disconnect(sender=Item, dispatch_uid="atomic-nested")


@pytest.mark.usefixtures("receiver_with_its_own_block")
async def test_async_receiver_blocks_are_savepoints_of_the_senders_transaction() -> None:
    async with async_atomic():
        await create("a")
        assert await notes() == []
    assert await notes() == ["kept a"]
    with pytest.raises(Boom):
        async with async_atomic():
            await create("b")
            raise Boom
    assert await notes() == ["kept a"]
    assert await names() == ["a"]


@pytest.fixture
def two_receivers_with_blocks() -> Iterator[None]:
    def make(label: str) -> Any:
        async def receiver(sender: Any, instance: Item, **kwargs: Any) -> None:
            async with async_atomic():
                await asyncio.sleep(0.01)  # let the other receiver run meanwhile
                await run_sync(Note.objects.create, text=f"{label} {instance.name}")
                await asyncio.sleep(0.01)

        return receiver

    receivers = {f"atomic-{label}": make(label) for label in ("one", "two")}
    for uid, receiver in receivers.items():
        post_save.connect(receiver, sender=Item, dispatch_uid=uid)
    try:
        yield
    finally:
        for uid in receivers:
            post_save.disconnect(sender=Item, dispatch_uid=uid)


@pytest.mark.usefixtures("two_receivers_with_blocks")
async def test_concurrent_async_receivers_with_blocks_take_turns() -> None:
    # Django 6 runs async receivers concurrently, in tasks sharing one
    # context: each must keep its own connection state (no deadlock).
    async with asyncio.timeout(30), async_atomic():
        await create("a")
    assert sorted(await notes()) == ["one a", "two a"]
    with pytest.raises(Boom):
        async with async_atomic():
            await create("b")
            raise Boom
    assert sorted(await notes()) == ["one a", "two a"]


@pytest.fixture
def receiver_gathering_in_its_block() -> Iterator[None]:
    async def receiver(sender: Any, instance: Item, **kwargs: Any) -> None:
        async with async_atomic():
            await asyncio.gather(run_sync(Note.objects.create, text="from a child task"))

    post_save.connect(receiver, sender=Item, dispatch_uid="atomic-gather")
    try:
        yield
    finally:
        post_save.disconnect(sender=Item, dispatch_uid="atomic-gather")


@pytest.mark.usefixtures("receiver_gathering_in_its_block")
async def test_tasks_created_in_a_receivers_block_are_refused_not_deadlocked() -> None:
    with pytest.raises(ConnectionOwnedByAnotherTask, match="independent_connection"):
        async with asyncio.timeout(30), async_atomic():
            await create("a")
    assert await names() == []
    assert await notes() == []
