"""Model instances, inheritance, proxies, on_delete and signals through the bridge."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models import ProtectedError, RestrictedError, signals
from orm_testapp.models import (
    Author,
    AuthorProxy,
    Book,
    Collar,
    Leash,
    Owner,
    Pet,
    Place,
    Restaurant,
    Vet,
)

from django_aio.atomic import async_atomic
from django_aio.conn import in_bridge


async def test_asave_adelete_arefresh_from_db() -> None:
    author = Author(name="Ann")
    await author.asave()
    assert author.pk is not None
    await Author.objects.filter(pk=author.pk).aupdate(age=99)
    await author.arefresh_from_db()
    assert author.age == 99
    author.age = 1
    await author.asave(update_fields=["age"])
    assert (await Author.objects.aget(pk=author.pk)).age == 1
    assert await author.adelete() == (1, {"orm_testapp.Author": 1})
    assert not await Author.objects.aexists()


async def test_multi_table_inheritance() -> None:
    restaurant = await Restaurant.objects.acreate(name="Luigi", serves_pizza=True)
    place = await Place.objects.aget(pk=restaurant.pk)
    assert place.name == "Luigi"
    # The child row is reached through the parent link.
    child = await Restaurant.objects.select_related("place_ptr").aget(name="Luigi")
    assert child.serves_pizza
    assert child.place_ptr.name == "Luigi"
    restaurant.name = "Mario"
    await restaurant.asave()
    assert (await Place.objects.aget(pk=restaurant.pk)).name == "Mario"
    await restaurant.adelete()
    assert await Place.objects.acount() == 0


async def test_proxy_model() -> None:
    proxy = await AuthorProxy.objects.acreate(name="Pat")
    assert proxy.shout() == "PAT"
    assert (await Author.objects.aget(pk=proxy.pk)).name == "Pat"
    assert [p.shout() async for p in AuthorProxy.objects.all()] == ["PAT"]


@pytest.fixture
def signal_log() -> Iterator[list[tuple[str, str, bool]]]:
    """Records (signal, model, ran in bridge) for pre/post save and delete."""
    log: list[tuple[str, str, bool]] = []
    names = {
        signals.pre_save: "pre_save",
        signals.post_save: "post_save",
        signals.pre_delete: "pre_delete",
        signals.post_delete: "post_delete",
    }
    receivers = []
    for signal, name in names.items():

        def receiver(sender: Any, *, _name: str = name, **kwargs: Any) -> None:
            log.append((_name, sender.__name__, in_bridge()))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    yield log
    for signal, receiver in receivers:
        signal.disconnect(receiver)


async def test_on_delete_variants_send_signals(signal_log: list[tuple[str, str, bool]]) -> None:
    owner = await Owner.objects.acreate(name="o")
    pet = await Pet.objects.acreate(owner=owner)
    collar = await Collar.objects.acreate(pet=pet)
    leash = await Leash.objects.acreate(owner=owner)
    signal_log.clear()

    # PROTECT refuses, and nothing is deleted.
    with pytest.raises(ProtectedError):
        await owner.adelete()
    assert await Pet.objects.acount() == 1
    await leash.adelete()

    vet = await Vet.objects.acreate(owner=owner)
    with pytest.raises(RestrictedError):
        await owner.adelete()
    await vet.adelete()
    signal_log.clear()

    # CASCADE deletes the pet; SET_NULL detaches its collar.
    await owner.adelete()
    assert not await Pet.objects.aexists()
    await collar.arefresh_from_db()
    assert collar.pet_id is None
    deleted = [(name, model) for name, model, _ in signal_log if name.endswith("delete")]
    assert ("pre_delete", "Owner") in deleted
    assert ("post_delete", "Pet") in deleted
    assert all(bridged for _, _, bridged in signal_log)


async def test_sync_receivers_run_in_callers_transaction() -> None:
    seen: list[int] = []

    def count_books(sender: Any, instance: Book, created: bool, **kwargs: Any) -> None:
        # A query from the receiver sees the caller's uncommitted row.
        seen.append(Book.objects.filter(pk=instance.pk).count())
        Author.objects.create(name=f"log-{instance.title}")

    signals.post_save.connect(count_books, sender=Book)
    try:
        author = await Author.objects.acreate(name="Ann")
        with pytest.raises(RuntimeError, match="boom"):
            async with async_atomic():
                await Book.objects.acreate(title="T", author=author)
                assert await Author.objects.filter(name="log-T").aexists()
                raise RuntimeError("boom")
    finally:
        signals.post_save.disconnect(count_books, sender=Book)
    assert seen == [1]
    # The receiver's write rolled back with the caller's transaction.
    assert not await Author.objects.filter(name="log-T").aexists()
    assert not await Book.objects.aexists()


async def test_async_receivers_run_on_the_loop_in_callers_transaction() -> None:
    seen: list[tuple[int, bool]] = []
    loop = asyncio.get_running_loop()

    async def on_save(sender: Any, instance: Book, **kwargs: Any) -> None:
        assert asyncio.get_running_loop() is loop
        seen.append((await Book.objects.filter(pk=instance.pk).acount(), in_bridge()))

    async def on_delete(sender: Any, instance: Book, **kwargs: Any) -> None:
        seen.append((await Book.objects.filter(pk=instance.pk).acount(), in_bridge()))

    signals.post_save.connect(on_save, sender=Book)
    signals.pre_delete.connect(on_delete, sender=Book)
    try:
        author = await Author.objects.acreate(name="Ann")
        async with async_atomic():
            book = await Book.objects.acreate(title="T", author=author)
            await book.adelete()
    finally:
        signals.post_save.disconnect(on_save, sender=Book)
        signals.pre_delete.disconnect(on_delete, sender=Book)
    # Each receiver saw the uncommitted row; it ran as a coroutine, not bridged code.
    assert seen == [(1, False), (1, False)]


async def test_m2m_changed_receivers(signal_log: list[tuple[str, str, bool]]) -> None:
    from orm_testapp.models import Tag

    actions: list[tuple[str, bool]] = []

    def on_change(sender: Any, action: str, **kwargs: Any) -> None:
        actions.append((action, in_bridge()))

    signals.m2m_changed.connect(on_change, sender=Book.tags.through)
    try:
        author = await Author.objects.acreate(name="Ann")
        book = await Book.objects.acreate(title="T", author=author)
        tag = await Tag.objects.acreate(name="x")
        await book.tags.aadd(tag)
        await book.tags.aclear()
    finally:
        signals.m2m_changed.disconnect(on_change, sender=Book.tags.through)
    assert actions == [
        ("pre_add", True),
        ("post_add", True),
        ("pre_clear", True),
        ("post_clear", True),
    ]
