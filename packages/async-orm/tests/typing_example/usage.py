# pyright: reportUnnecessaryTypeIgnoreComment=error
"""What type checkers infer for django-aio's async APIs (mypy and pyright alike).

Every ``assert_type`` is checked by both; every ``# type: ignore[...]`` line
must stay an error (mypy's ``warn_unused_ignores``, pyright's
``reportUnnecessaryTypeIgnoreComment``).
"""

from __future__ import annotations

from typing import Any, assert_type

from django.db.models import QuerySet

from django_aio.atomic import async_atomic
from django_aio.conn import run_sync
from django_aio.orm import AsyncQuery, AsyncQuerySet, AsyncRelatedManager

from .models import Box, Pizza, Topping


async def manager_and_querysets() -> None:
    qs = Pizza.objects.filter(name="margherita").select_related("box")
    assert_type(qs, AsyncQuerySet[Pizza])
    assert_type(qs.order_by("name").exclude(name="x").using("default"), AsyncQuerySet[Pizza])
    assert_type(Pizza.objects.get_queryset(), AsyncQuerySet[Pizza])
    assert_type(await qs.aget(), Pizza)
    assert_type(await Pizza.objects.aget(pk=1), Pizza)
    assert_type(await qs.afirst(), Pizza | None)
    assert_type(await qs.alist(), list[Pizza])
    assert_type(await Pizza.objects.alist(), list[Pizza])
    assert_type(await qs.acount(), int)
    assert_type(await qs.aexists(), bool)
    assert_type(await qs.aupdate(name="m"), int)
    assert_type(await qs.adelete(), tuple[int, dict[str, int]])
    assert_type(await Pizza.objects.aget_or_create(name="x"), tuple[Pizza, bool])
    assert_type(await Pizza.objects.ain_bulk([1, 2]), dict[Any, Pizza])
    assert_type(await Box.objects.acreate(size=30), Box)
    assert_type(qs | Pizza.objects.all(), AsyncQuerySet[Pizza])
    async for pizza in Pizza.objects.all():
        assert_type(pizza, Pizza)
    async for pizza in qs.aiterator(chunk_size=100):
        assert_type(pizza, Pizza)
    # values() and values_list() are Django's, as django-stubs types them: a
    # QuerySet of the model whose rows are dicts or tuples (usage_mypy.py has
    # the plugin's finer row types).
    rows = qs.values("name")
    assert isinstance(rows, QuerySet)
    async for row in rows:
        assert isinstance(row, dict)
    # Plain Django querysets keep Django's own types.
    assert_type(await Pizza._default_manager.filter(pk=1).aget(), Pizza)


async def facade_and_relations() -> None:
    query = Pizza.aobjects.filter(name="hawaii").order_by("name")
    assert_type(query, AsyncQuery[Pizza])
    assert_type(await query.get(), Pizza)
    assert_type(await query.first(), Pizza | None)
    assert_type(await query.eval(), list[Pizza])
    assert_type(await query[0], Pizza)
    assert_type(query[1:3], AsyncQuery[Pizza])
    assert_type(await query.count(), int)
    assert_type(await query.update_or_create(name="x"), tuple[Pizza, bool])
    async for pizza in query:
        assert_type(pizza, Pizza)
    async for pizza in query.iterator():
        assert_type(pizza, Pizza)
    box = await Box.aobjects.create(size=30)
    assert_type(box, Box)
    pizza = await Pizza.aobjects.create(name="m", box=box)
    assert_type(await pizza.abox, Box)
    assert_type(pizza.atoppings, AsyncRelatedManager[Topping])
    assert_type(await pizza.atoppings.eval(), list[Topping])
    assert_type(await box.apizza_set.filter(name="m").count(), int)
    await pizza.asave()
    assert_type(await pizza.adelete(), tuple[int, dict[str, int]])


def count_named(name: str, *, exact: bool = True) -> int:
    lookup = "name" if exact else "name__icontains"
    return Pizza.objects.filter(**{lookup: name}).count()


async def bridge() -> None:
    assert_type(await run_sync(count_named, "m"), int)
    assert_type(await run_sync(count_named, "m", exact=False), int)
    assert_type(await run_sync(lambda: list(Pizza.objects.all())), list[Pizza])


@async_atomic
async def rename(pizza: Pizza, name: str) -> Pizza:
    pizza.name = name
    await pizza.asave()
    return pizza


@async_atomic(using="default", durable=True)
async def add_box(size: int) -> Box:
    return await Box.objects.acreate(size=size)


@async_atomic()
async def add_pizza(name: str, *, box: Box) -> Pizza:
    return await Pizza.objects.acreate(name=name, box=box)


async def transactions(pizza: Pizza) -> None:
    assert_type(await rename(pizza, "m"), Pizza)
    assert_type(await add_box(30), Box)
    assert_type(await add_pizza("m", box=Box(size=30)), Pizza)
    async with async_atomic():
        await Pizza.objects.filter(pk=pizza.pk).aupdate(name="n")
    async with async_atomic(savepoint=False):
        pass


async def must_stay_errors(pizza: Pizza) -> None:
    box: Box = await Pizza.objects.aget()  # type: ignore[assignment]
    pizzas: list[Pizza] = Pizza.objects.alist()  # type: ignore[assignment]
    await run_sync(count_named, 3)  # type: ignore[arg-type]
    await run_sync(count_named, "m", exakt=True)  # type: ignore[call-arg]
    await rename(pizza)  # type: ignore[call-arg]
    await rename(pizza, 3)  # type: ignore[arg-type]
    await add_box("big")  # type: ignore[arg-type]
    await add_pizza("m", Box())  # type: ignore[call-arg]
    async for box in Pizza.objects.all():  # type: ignore[assignment]
        await box.asave()
    del pizzas
