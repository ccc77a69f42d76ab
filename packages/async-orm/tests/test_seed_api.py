"""The seeds' APIs: AsyncManager / AsyncQuerySet and AsyncMixin (``aobjects``, ``a<relation>``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Sum
from orm_testapp.models import Box, Pizza, Recipe, Sticker, Topping, ToppingQuerySet

from django_aio.conn import run_sync
from django_aio.orm import AsyncManager, AsyncQuery, AsyncQuerySet, AsyncRelatedManager, drop_in

from .conftest import SqlLog


@pytest.fixture(params=[True, False], ids=["drop-in", "no-drop-in"])
def drop_in_mode(request: pytest.FixtureRequest) -> Iterator[bool]:
    """The seed APIs bridge their calls whether drop-in mode is on or off.

    (``loop_thread_only`` checks that no statement ran in a thread.)
    """
    with drop_in(request.param):
        yield request.param


@pytest.fixture
async def menu(drop_in_mode: bool) -> dict[str, object]:
    box = await Box.objects.acreate(size=40)
    cheese, ham = await Topping.objects.abulk_create(
        [Topping(name="cheese"), Topping(name="ham", vegetarian=False)]
    )
    margherita = await Pizza.aobjects.create(name="margherita", box=box)
    await margherita.atoppings.add(cheese)
    hawaii = await Pizza.aobjects.create(name="hawaii")
    await hawaii.atoppings.add(cheese, ham)
    return {"box": box, "cheese": cheese, "ham": ham, "margherita": margherita, "hawaii": hawaii}


def test_async_manager_is_a_django_manager() -> None:
    assert isinstance(Pizza.objects, AsyncManager)
    assert isinstance(Pizza.objects.all(), AsyncQuerySet)
    assert isinstance(Topping.objects.all(), ToppingQuerySet)
    # Sync code (admin, forms, migrations) sees an ordinary manager.
    assert Pizza.objects.deconstruct()[1] == "django_aio.orm.AsyncManager"
    assert str(Pizza.objects.filter(name="x").query).startswith("SELECT")


async def test_async_queryset_methods(menu: dict[str, object]) -> None:
    assert [p.name for p in await Pizza.objects.order_by("name").alist()] == [
        "hawaii",
        "margherita",
    ]
    assert await Pizza.objects.acount() == 2
    assert (await Pizza.objects.aget(name="hawaii")).box_id is None
    assert [t.name for t in await Topping.objects.vegetarian().alist()] == ["cheese"]
    assert await Topping.objects.filter(vegetarian=False).aexists()
    assert [p.name async for p in Pizza.objects.all()] == ["hawaii", "margherita"]
    assert [p.name async for p in Pizza.objects.aiterator(chunk_size=1)] == [
        "hawaii",
        "margherita",
    ]
    assert (await Pizza.objects.afirst()).name == "hawaii"
    box = menu["box"]
    assert isinstance(box, Box)
    # Related managers subclass the model's AsyncManager: their writes are bridged too.
    made = await box.pizza_set.acreate(name="calzone")
    assert made.box_id == box.pk
    assert [p.name for p in await box.pizza_set.alist()] == ["calzone", "margherita"]


async def test_aobjects_awaitable_methods(menu: dict[str, object]) -> None:
    q = Pizza.aobjects
    assert isinstance(q, AsyncQuery)
    assert (await q.get(name="hawaii")).name == "hawaii"
    assert await q.count() == 2
    assert await q.exists()
    assert not await q.filter(name="x").exists()
    assert (await q.first()).name == "hawaii"  # type: ignore[union-attr]
    assert (await q.last()).name == "margherita"  # type: ignore[union-attr]
    assert [p.name for p in await q.exclude(name="hawaii").eval()] == ["margherita"]
    assert (await q[1]).name == "margherita"
    assert [p.name for p in await q[0:1].eval()] == ["hawaii"]
    assert [p.name async for p in q.filter(toppings__name="ham")] == ["hawaii"]
    assert [p.name async for p in q.iterator(chunk_size=1)] == ["hawaii", "margherita"]
    counted = await q.annotate(n=Count("toppings")).order_by("name").values_list("name", "n").eval()
    assert counted == [("hawaii", 2), ("margherita", 1)]
    assert await Box.aobjects.aggregate(total=Sum("size")) == {"total": 40}
    in_bulk = await q.in_bulk()
    assert {p.name for p in in_bulk.values()} == {"hawaii", "margherita"}
    assert await q.filter(name="hawaii").update(name="aloha") == 1
    pizza, created = await q.get_or_create(name="aloha")
    assert not created
    pizza, created = await q.update_or_create(name="new", defaults={"name": "new"})
    assert created
    assert await q.contains(pizza)
    assert "Scan" in await q.explain()
    union = await q.filter(name="new").union(q.filter(name="aloha")).count()
    assert union == 2
    assert await q.filter(name="new").delete() == (1, {"orm_testapp.Pizza": 1})
    with pytest.raises(Pizza.DoesNotExist):
        await q.get(name="gone")
    with pytest.raises(IndexError):
        await q[10]


async def test_forward_relations_are_awaitable(menu: dict[str, object]) -> None:
    margherita = await Pizza.aobjects.get(name="margherita")
    box = await margherita.abox
    assert isinstance(box, Box)
    assert box.size == 40
    hawaii = await Pizza.aobjects.get(name="hawaii")
    assert await hawaii.abox is None
    # Reverse one-to-one, both ways.
    recipe = await Recipe.aobjects.create(pizza=margherita, text="bake")
    fresh = await Pizza.aobjects.get(pk=margherita.pk)
    assert (await fresh.arecipe).text == "bake"
    assert (await (await Recipe.aobjects.get(pk=recipe.pk)).apizza).name == "margherita"
    with pytest.raises(Pizza.recipe.RelatedObjectDoesNotExist):
        await hawaii.arecipe
    # Generic foreign key.
    sticker = await Sticker.aobjects.create(
        text="hot",
        content_type=await run_sync(ContentType.objects.get_for_model, Pizza),
        object_id=margherita.pk,
    )
    fresh_sticker = await Sticker.aobjects.get(pk=sticker.pk)
    assert (await fresh_sticker.atarget).name == "margherita"


async def test_related_managers(menu: dict[str, object]) -> None:
    cheese = menu["cheese"]
    ham = menu["ham"]
    box = await Box.aobjects.get()
    pizzas = box.apizza_set
    assert isinstance(pizzas, AsyncRelatedManager)
    assert await pizzas.count() == 1
    assert await box.apizza_set.filter(name="margherita").count() == 1
    calzone = await pizzas.create(name="calzone")
    assert calzone.box_id == box.pk
    made, created = await pizzas.get_or_create(name="pan")
    assert created
    assert made.box_id == box.pk
    _, created = await pizzas.update_or_create(name="pan", defaults={"name": "pan2"})
    assert not created
    hawaii = await Pizza.aobjects.get(name="hawaii")
    await pizzas.add(hawaii)
    assert await pizzas.count() == 4
    await pizzas.remove(hawaii)
    await pizzas.set([calzone])
    assert [p.name for p in await pizzas.eval()] == ["calzone"]
    await pizzas.clear()
    assert not await pizzas.exists()

    # Many-to-many, both sides.
    toppings = hawaii.atoppings
    assert [t.name for t in await toppings.eval()] == ["cheese", "ham"]
    await toppings.remove(ham)
    assert [p.name async for p in ham.apizzas] == []  # type: ignore[attr-defined]
    await ham.apizzas.add(hawaii)  # type: ignore[attr-defined]
    pineapple = await toppings.create(name="pineapple")
    assert await toppings.count() == 3
    await toppings.set([pineapple])
    assert [t.name for t in await toppings.eval()] == ["pineapple"]
    await toppings.clear()
    assert not await toppings.exists()
    # As in Django: looked up among this pizza's toppings only, so created anew.
    _, created = await toppings.get_or_create(name="cheese")
    assert created
    assert await toppings.count() == 1
    assert await cheese.apizzas.count() == 1  # type: ignore[attr-defined]

    # Generic relation.
    labels = hawaii.alabels
    await labels.create(label="spicy")
    assert [i.label for i in await labels.eval()] == ["spicy"]
    await labels.clear()
    assert await labels.count() == 0


async def test_model_methods(menu: dict[str, object]) -> None:
    pizza = Pizza(name="fresh")
    await pizza.asave()
    await Pizza.aobjects.filter(pk=pizza.pk).update(name="renamed")
    await pizza.arefresh_from_db()
    assert pizza.name == "renamed"
    assert await pizza.adelete() == (1, {"orm_testapp.Pizza": 1})


async def test_prefetched_relations_need_no_query(menu: dict[str, object], sql_log: SqlLog) -> None:
    pizzas = await Pizza.aobjects.prefetch_related("toppings").select_related("box").eval()
    before = len(sql_log.entries)
    assert [len(await p.atoppings.eval()) for p in pizzas] == [2, 1]
    assert [(await p.abox) is not None for p in pizzas] == [False, True]
    assert len(sql_log.entries) == before


def test_unknown_attributes_still_raise() -> None:
    pizza = Pizza(name="x")
    with pytest.raises(AttributeError, match="'Pizza' object has no attribute 'anything'"):
        pizza.anything  # noqa: B018
    with pytest.raises(AttributeError, match="aobjects isn't accessible via Pizza instances"):
        pizza.aobjects  # noqa: B018


async def test_sync_django_keeps_working_with_async_managers(menu: dict[str, object]) -> None:
    from django import forms

    class PizzaForm(forms.ModelForm):  # type: ignore[type-arg]
        class Meta:
            model = Pizza
            fields = ["name", "box", "toppings"]

    def sync_code() -> tuple[bool, int, list[str]]:
        # What admin, forms and management commands do: plain sync ORM calls.
        box = Box.objects.get()
        form = PizzaForm(data={"name": "formed", "box": box.pk, "toppings": []})
        valid = form.is_valid()
        form.save()
        names = list(Pizza.objects.filter(box=box).values_list("name", flat=True))
        return valid, Pizza.objects.count(), names

    valid, total, names = await run_sync(sync_code)
    assert valid
    assert total == 3
    assert names == ["formed", "margherita"]
