"""``await qs[i]`` and set operators on AsyncQuerySet and AsyncQuery."""

from __future__ import annotations

import re

import pytest
from django.db.models import Prefetch, QuerySet
from orm_testapp.models import Box, Pizza, Topping

from django_aio.conn import run_sync
from django_aio.orm import AsyncQuery, AsyncQuerySet

from .conftest import SqlLog

NEGATIVE = "Negative indexing is not supported."
AOBJECTS_NEGATIVE = (
    "Negative indexing is not supported (as in Django). For the last row use "
    "`await query.last()` (Django: `await queryset.alast()`); for the last n, "
    "reverse the ordering and slice: `await query.reverse()[:n].eval()`."
)


@pytest.fixture
async def pizzas() -> list[Pizza]:
    return [await Pizza.objects.acreate(name=name) for name in ("a", "b", "c", "d")]


async def test_await_an_index(pizzas: list[Pizza], sql_log: SqlLog) -> None:
    qs = Pizza.objects.all()
    assert (await qs[0]).name == "a"
    assert (await qs[3]).name == "d"
    assert (await Pizza.objects.filter(name__gt="a")[1]).name == "c"
    assert sql_log.statements()[-1].endswith("LIMIT 1 OFFSET 1")
    assert qs._result_cache is None  # one-row queries, the queryset stays lazy

    # Sync code (here run by run_sync) keeps Django's own indexing.
    def first_name() -> str:
        return str(Pizza.objects.all()[0].name)

    assert await run_sync(first_name) == "a"


async def test_index_of_an_evaluated_queryset_reads_the_cache(
    pizzas: list[Pizza], sql_log: SqlLog
) -> None:
    qs = Pizza.objects.all()
    await qs.alist()
    before = len(sql_log.statements())
    assert (await qs[2]).name == "c"
    assert len(sql_log.statements()) == before
    with pytest.raises(IndexError, match="list index out of range"):
        await qs[4]


async def test_prefetched_relation_index_is_awaited_too(pizzas: list[Pizza]) -> None:
    cheese = await Topping.objects.acreate(name="cheese")
    await run_sync(pizzas[0].toppings.add, cheese)
    pizza = await Pizza.objects.prefetch_related(
        Prefetch("toppings", queryset=Topping.objects.all())
    ).aget(name="a")
    related = pizza.toppings.all()
    assert isinstance(related, AsyncQuerySet)
    assert (await related[0]).name == "cheese"
    # Forgetting the await says so at once.
    with pytest.raises(AttributeError) as raised:
        related[0].name  # noqa: B018
    assert (
        str(raised.value)
        == "queryset[0] in async code must be awaited: use `(await queryset[0]).name`."
    )


async def test_index_errors_are_djangos(pizzas: list[Pizza]) -> None:
    with pytest.raises(IndexError, match="list index out of range"):
        await Pizza.objects.all()[10]
    with pytest.raises(ValueError, match=exactly(NEGATIVE)):
        Pizza.objects.all()[-1]
    with pytest.raises(ValueError, match=exactly(NEGATIVE)):
        Pizza.objects.all()[-2:]
    not_an_index = "QuerySet indices must be integers or slices, not str."
    with pytest.raises(TypeError, match=exactly(not_an_index)):
        Pizza.objects.all()["x"]  # type: ignore[index]


async def test_slices_stay_querysets(pizzas: list[Pizza]) -> None:
    sliced = Pizza.objects.all()[1:3]
    assert isinstance(sliced, AsyncQuerySet)
    assert [p.name for p in await sliced.alist()] == ["b", "c"]
    assert (await sliced[1]).name == "c"


async def test_set_operators_keep_the_class(pizzas: list[Pizza]) -> None:
    left = Pizza.objects.filter(name__in=["a", "b"])
    right = Pizza.objects.filter(name__in=["b", "c"])
    for combined, expected in (
        (left | right, ["a", "b", "c"]),
        (left & right, ["b"]),
        (left ^ right, ["a", "c"]),
    ):
        assert isinstance(combined, AsyncQuerySet)
        assert [p.name for p in await combined.alist()] == expected
    # A plain QuerySet on the right (or an empty left side) still gives ours.
    plain = QuerySet(model=Pizza).filter(name="d")
    assert isinstance(left | plain, AsyncQuerySet)
    assert isinstance(Pizza.objects.none() | plain, AsyncQuerySet)
    assert [p.name for p in await (Pizza.objects.none() | plain).alist()] == ["d"]


async def test_sliced_left_operand_keeps_the_class(pizzas: list[Pizza]) -> None:
    # Django rebuilds a sliced left operand from the model's base manager (a
    # plain QuerySet) for | and ^.
    sliced = Pizza.objects.all()[:2]  # a, b
    right = Pizza.objects.filter(name__in=["b", "c"])
    union = sliced | right
    assert isinstance(union, AsyncQuerySet)
    assert [p.name for p in await union.order_by("name").alist()] == ["a", "b", "c"]
    xor = sliced ^ right
    assert isinstance(xor, AsyncQuerySet)
    assert [p.name for p in await xor.order_by("name").alist()] == ["a", "c"]
    # & of a sliced queryset is refused by Django itself; we keep its error.
    with pytest.raises(TypeError) as raised:
        sliced & right
    assert str(raised.value) == "Cannot combine queries once a slice has been taken."


async def test_aobjects_operators(pizzas: list[Pizza]) -> None:
    ab = Pizza.aobjects.filter(name__in=["a", "b"])
    bc = Pizza.aobjects.filter(name__in=["b", "c"])
    union = ab | bc
    assert isinstance(union, AsyncQuery)
    assert [p.name for p in await union.eval()] == ["a", "b", "c"]
    assert [p.name for p in await (ab & bc).eval()] == ["b"]
    assert [p.name for p in await (ab ^ bc).eval()] == ["a", "c"]
    # A QuerySet on the right works too.
    assert [p.name for p in await (ab | Pizza.objects.filter(name="d")).eval()] == [
        "a",
        "b",
        "d",
    ]
    with pytest.raises(TypeError, match="unsupported operand"):
        ab | 1  # type: ignore[operator]


async def test_aobjects_negative_index_names_last(pizzas: list[Pizza]) -> None:
    with pytest.raises(ValueError, match=exactly(AOBJECTS_NEGATIVE)):
        Pizza.aobjects.all()[-1]
    assert (await Pizza.aobjects.last()).name == "d"  # type: ignore[union-attr]
    box = await Box.objects.acreate(size=1)
    with pytest.raises(ValueError, match=exactly(AOBJECTS_NEGATIVE)):
        box.apizza_set[-1]


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"
