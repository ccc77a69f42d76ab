"""Drop-in and seed APIs inside django_aio.atomic transactions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db.models import signals
from django.db.transaction import TransactionManagementError
from orm_testapp.models import Author, Book, Pizza, Tag

from django_aio.atomic import async_atomic
from django_aio.conn import ConnectionOwnedByAnotherTask, in_bridge


async def test_rollback_undoes_every_kind_of_write() -> None:
    keep = await Author.objects.acreate(name="keep")
    with pytest.raises(ZeroDivisionError):
        async with async_atomic():
            ann = await Author.objects.acreate(name="Ann")
            book = await ann.books.acreate(title="T")
            tag = await Tag.objects.acreate(name="t")
            await book.tags.aadd(tag)
            await Author.objects.filter(pk=keep.pk).aupdate(age=1)
            await Pizza.aobjects.create(name="p")
            await keep.adelete()
            assert await Author.objects.acount() == 1
            1 / 0  # noqa: B018
    assert [a.name async for a in Author.objects.all()] == ["keep"]
    assert (await Author.objects.aget()).age == 30
    assert not await Book.objects.aexists()
    assert not await Tag.objects.aexists()
    assert await Pizza.aobjects.count() == 0


async def test_savepoints() -> None:
    async with async_atomic():
        await Author.objects.acreate(name="outer")
        with pytest.raises(ValueError, match="inner"):
            async with async_atomic():
                await Author.objects.acreate(name="inner")
                raise ValueError("inner")
        await Author.objects.acreate(name="after")
    assert [a.name async for a in Author.objects.all()] == ["after", "outer"]


async def test_select_for_update_needs_a_transaction() -> None:
    await Author.objects.acreate(name="Ann")
    with pytest.raises(TransactionManagementError, match="outside of a transaction"):
        await Author.objects.select_for_update().aget(name="Ann")


async def test_a_task_created_in_a_transaction_is_refused_the_connection() -> None:
    async with async_atomic():
        await Author.objects.acreate(name="Ann")
        child = asyncio.create_task(Author.objects.acount())
        with pytest.raises(ConnectionOwnedByAnotherTask, match="independent_connection"):
            await child


async def test_concurrent_queries_outside_transactions_use_separate_connections() -> None:
    await Author.objects.abulk_create([Author(name=f"a{i}") for i in range(5)])
    counts = await asyncio.gather(*(Author.objects.acount() for _ in range(5)))
    assert counts == [5] * 5
    pizzas = await asyncio.gather(Pizza.aobjects.count(), Author.objects.filter(name="a1").aget())
    assert pizzas[0] == 0
    assert pizzas[1].name == "a1"


async def test_async_receivers_of_every_signal_share_the_transaction() -> None:
    seen: list[tuple[str, int, bool]] = []

    def receiver(name: str) -> Any:
        async def on_signal(sender: Any, **kwargs: Any) -> None:
            # Each receiver sees the caller's uncommitted rows and writes in its transaction.
            seen.append((name, await Author.objects.acount(), in_bridge()))
            await Tag.objects.acreate(name=name)

        return on_signal

    connected = [
        (signals.pre_save, receiver("pre_save"), Book),
        (signals.post_save, receiver("post_save"), Book),
        (signals.pre_delete, receiver("pre_delete"), Book),
        (signals.post_delete, receiver("post_delete"), Book),
        (signals.m2m_changed, receiver("m2m_changed"), Book.tags.through),
    ]
    for signal, handler, sender in connected:
        signal.connect(handler, sender=sender, weak=False)
    try:
        with pytest.raises(RuntimeError, match="undo"):
            async with async_atomic():
                author = await Author.objects.acreate(name="Ann")
                book = await Book.objects.acreate(title="T", author=author)
                tag = await Tag.objects.acreate(name="x")
                await book.tags.aadd(tag)
                await book.adelete()
                assert await Tag.objects.filter(name="post_delete").aexists()
                raise RuntimeError("undo")
    finally:
        for signal, handler, sender in connected:
            signal.disconnect(handler, sender=sender)
    names = [name for name, _, _ in seen]
    assert names[:2] == ["pre_save", "post_save"]
    assert "m2m_changed" in names
    assert names[-2:] == ["pre_delete", "post_delete"]
    assert all(count == 1 for _, count, _ in seen)
    assert not any(bridged for _, _, bridged in seen)
    assert not await Tag.objects.aexists()
