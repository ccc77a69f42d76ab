"""``Signal.asend`` / ``asend_robust`` in drop-in mode: inside a transaction every
receiver uses its connection (sync ones in the bridge); outside one, sync
receivers keep Django's thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DataError
from django.db.transaction import TransactionManagementError
from django.dispatch import Signal
from orm_testapp.models import Author

from django_aio.atomic import async_atomic
from django_aio.orm import drop_in

happened = Signal()


@pytest.fixture
def threads() -> Iterator[list[int]]:
    """The threads the sync receivers ran in; the receivers are connected for the test."""
    seen: list[int] = []

    def sync_receiver(sender: Any, name: str, **kwargs: Any) -> str:
        seen.append(threading.get_ident())
        Author.objects.create(name=f"sync {name}")
        return "sync"

    async def async_receiver(sender: Any, name: str, **kwargs: Any) -> str:
        await Author.objects.acreate(name=f"async {name}")
        return "async"

    happened.connect(sync_receiver, dispatch_uid="sync")
    happened.connect(async_receiver, dispatch_uid="async")
    try:
        yield seen
    finally:
        happened.disconnect(dispatch_uid="sync")
        happened.disconnect(dispatch_uid="async")


async def names() -> list[str]:
    return sorted([a.name async for a in Author.objects.all()])


@pytest.mark.threads_allowed
@pytest.mark.aio_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_outside_a_transaction_sync_receivers_keep_djangos_thread(
    threads: list[int],
) -> None:
    # As in Django: request_finished's receiver must close *that* thread's
    # connections, and a sync receiver may block.
    responses = await happened.asend(sender=None, name="a")
    assert sorted(r for _, r in responses) == ["async", "sync"]
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()
    assert await names() == ["async a", "sync a"]
    await Author.objects.all().adelete()


async def test_receivers_roll_back_with_the_block(threads: list[int]) -> None:
    await Author.objects.acreate(name="before")
    with pytest.raises(ZeroDivisionError):
        async with async_atomic():
            await happened.asend(sender=None, name="inside")
            assert await names() == ["async inside", "before", "sync inside"]
            1 / 0  # noqa: B018
    assert threads == [threading.get_ident()]
    assert await names() == ["before"]


async def test_receivers_commit_with_the_block(threads: list[int]) -> None:
    async with async_atomic():
        await happened.asend_robust(sender=None, name="kept")
        # Nested blocks are savepoints on the same connection.
        async with async_atomic():
            await happened.asend(sender=None, name="nested")
    assert await names() == ["async kept", "async nested", "sync kept", "sync nested"]


async def test_robust_dispatch_returns_a_failing_receivers_error(threads: list[int]) -> None:
    def failing(sender: Any, **kwargs: Any) -> None:
        Author.objects.create(name="x" * 500)  # longer than the column

    happened.connect(failing, dispatch_uid="failing")
    try:
        async with async_atomic():
            responses = await happened.asend_robust(sender=None, name="r")
    finally:
        happened.disconnect(dispatch_uid="failing")
    errors = [r for _, r in responses if isinstance(r, Exception)]
    assert [type(e) for e in errors][:1] == [DataError]
    assert "value too long" in str(errors[0])
    # Django 6 runs the async receivers after the sync ones: in the broken block.
    assert all(isinstance(e, TransactionManagementError) for e in errors[1:])
    # As in Django: a query that failed in the block marked it for rollback.
    assert await names() == []


async def test_a_failing_sync_receiver_propagates(threads: list[int]) -> None:
    def failing(sender: Any, **kwargs: Any) -> None:
        raise LookupError("receiver failed")

    happened.connect(failing, dispatch_uid="failing")
    try:
        with pytest.raises(LookupError, match="receiver failed"):
            async with async_atomic():
                await happened.asend(sender=None, name="f")
    finally:
        happened.disconnect(dispatch_uid="failing")
    assert await names() == []


@pytest.mark.threads_allowed
@pytest.mark.aio_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_without_drop_in_a_sync_receivers_write_escapes_the_rollback(
    threads: list[int],
) -> None:
    # What drop-in fixes: Django's thread uses another connection.
    with drop_in(False), pytest.raises(ZeroDivisionError):
        async with async_atomic():
            await happened.asend(sender=None, name="t")
            1 / 0  # noqa: B018
    assert threads
    assert threads[0] != threading.get_ident()
    # (the async receiver too: its acreate() hops to the same thread)
    assert await names() == ["async t", "sync t"]
    await Author.objects.all().adelete()
