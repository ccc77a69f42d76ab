# mypy: disallow-subclassing-any=False
"""A typed usage example of django_aio.orm, checked by mypy in CI (never run).

Django ships no type hints (without django-stubs its Model is Any), hence the
per-file setting above.

    uv run mypy packages/async-orm/tests/typing_example.py
"""

from __future__ import annotations

from typing import Any, assert_type

from django.db import models

from django_aio.orm import AsyncManager, AsyncMixin, AsyncQuery, AsyncQuerySet


class Box(AsyncMixin, models.Model):
    size = models.IntegerField()

    objects: AsyncManager[Box] = AsyncManager()

    class Meta:
        app_label = "typing_example"


class Pizza(AsyncMixin, models.Model):
    name = models.CharField(max_length=50)
    box = models.ForeignKey(Box, models.CASCADE)

    objects: AsyncManager[Pizza] = AsyncManager()

    class Meta:
        app_label = "typing_example"


async def manager_api() -> None:
    qs = Pizza.objects.filter(name="margherita").select_related("box")
    assert_type(qs, AsyncQuerySet[Pizza])
    assert_type(await qs.aget(), Pizza)
    assert_type(await qs.afirst(), Pizza | None)
    assert_type(await qs.alist(), list[Pizza])
    assert_type(await qs.acount(), int)
    assert_type(await qs.aexists(), bool)
    assert_type(await Pizza.objects.aget_or_create(name="x"), tuple[Pizza, bool])
    assert_type(await Pizza.objects.ain_bulk([1, 2]), dict[Any, Pizza])
    async for pizza in Pizza.objects.all():
        assert_type(pizza, Pizza)
    async for pizza in qs.aiterator(chunk_size=100):
        assert_type(pizza, Pizza)


async def facade_api() -> None:
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
    await pizza.asave()
    assert_type(await pizza.adelete(), tuple[int, dict[str, int]])
