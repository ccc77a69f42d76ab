"""save() of a new row runs the kept INSERT directly (Note [Direct inserts]).

test_compiled_inserts.py compares the statements and objects with Django's
for many kinds of insert, which covers this path's results; here, which
inserts take it, and that errors, transactions and concurrency behave as
Django's own inserts do.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db import IntegrityError
from django.db.models import QuerySet, Value
from django.db.models.functions import Lower
from django.db.transaction import TransactionManagementError
from django.test.utils import override_settings
from orm_testapp.models import Author, Book, Owner, Pet, Restaurant

from django_aio.atomic import async_atomic


@pytest.fixture
def django_inserts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The models whose rows went through Django's own QuerySet._insert()."""
    seen: list[str] = []
    original = QuerySet._insert  # type: ignore[attr-defined]

    def counted(self: Any, objs: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(self.model.__name__)
        return original(self, objs, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "_insert", counted)
    return seen


async def test_a_kept_shape_skips_django_s_insert_query(django_inserts: list[str]) -> None:
    await Author.objects.acreate(name="first", age=1)  # Django writes and keeps the SQL
    django_inserts.clear()
    made = [await Author.objects.acreate(name=f"author {n}", age=n) for n in range(3)]
    assert django_inserts == []
    assert [(a.name, a.age, a._state.adding, a._state.db) for a in made] == [
        (f"author {n}", n, False, "default") for n in range(3)
    ]
    stored = [a async for a in Author.objects.filter(name__startswith="author").order_by("age")]
    assert [(a.pk, a.name) for a in stored] == [(a.pk, a.name) for a in made]


async def test_without_the_query_cache_django_inserts(django_inserts: list[str]) -> None:
    await Author.objects.acreate(name="first", age=1)
    with override_settings(DJANGO_AIO_QUERY_CACHE=False):
        await Author.objects.acreate(name="second", age=2)
    assert django_inserts == ["Author"]


async def test_an_expression_goes_django_s_way(django_inserts: list[str]) -> None:
    await Author.objects.acreate(name="first", age=1)
    django_inserts.clear()
    author = await Author.objects.acreate(name=Lower(Value("LOUD")), age=2)
    assert django_inserts == ["Author"]
    assert (await Author.objects.aget(pk=author.pk)).name == "loud"


async def test_a_pre_save_of_its_own_goes_django_s_way_and_runs_once(
    django_inserts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await Author.objects.acreate(name="first", age=1)
    field = Author._meta.get_field("name")
    calls: list[object] = []
    original = type(field).pre_save

    def upper(self: Any, obj: Any, add: bool) -> Any:
        if self is not field:
            return original(self, obj, add)
        calls.append(obj)
        return original(self, obj, add).upper()

    monkeypatch.setattr(type(field), "pre_save", upper)
    django_inserts.clear()
    author = await Author.objects.acreate(name="quiet", age=2)
    assert django_inserts == ["Author"]
    assert (await Author.objects.aget(pk=author.pk)).name == "QUIET"
    ours = len(calls)
    assert ours in (1, 2)  # Django 6.1's save() calls it once itself, too
    calls.clear()
    with override_settings(DJANGO_AIO_QUERY_CACHE=False):
        await Author.objects.acreate(name="other", age=3)
    assert len(calls) == ours


async def test_values_are_prepared_once_per_insert(monkeypatch: pytest.MonkeyPatch) -> None:
    await Author.objects.acreate(name="first", age=1)
    field = Author._meta.get_field("age")
    prepared: list[Any] = []
    original = type(field).get_db_prep_save

    def counted(self: Any, value: Any, connection: Any) -> Any:
        if self is field:
            prepared.append(value)
        return original(self, value, connection)

    monkeypatch.setattr(type(field), "get_db_prep_save", counted)
    await Author.objects.acreate(name="direct", age=7)
    with override_settings(DJANGO_AIO_QUERY_CACHE=False):
        await Author.objects.acreate(name="django", age=8)
    assert prepared == [7, 8]


async def test_parents_and_foreign_keys_take_it(django_inserts: list[str]) -> None:
    owner = await Owner.objects.acreate(name="owner")
    await Pet.objects.acreate(owner=owner)
    await Restaurant.objects.acreate(name="warm-up", serves_pizza=False)
    django_inserts.clear()
    pet = await Pet.objects.acreate(owner=owner)
    restaurant = await Restaurant.objects.acreate(name="direct", serves_pizza=True)
    assert django_inserts == []
    assert (await Pet.objects.aget(pk=pet.pk)).owner_id == owner.pk
    stored = await Restaurant.objects.aget(pk=restaurant.pk)
    assert (stored.name, stored.serves_pizza, stored.place_ptr_id) == (
        "direct",
        True,
        restaurant.pk,
    )


async def test_a_base_manager_of_its_own_goes_django_s_way(django_inserts: list[str]) -> None:
    # Book's base manager is BookQuerySet.as_manager(): its _insert() may differ.
    author = await Author.objects.acreate(name="writer")
    await Book.objects.acreate(title="first", author=author)
    django_inserts.clear()
    book = await Book.objects.acreate(title="second", author=author, pages=7)
    assert django_inserts == ["Book"]
    assert (await Book.objects.aget(pk=book.pk)).pages == 7


async def test_a_failed_insert_raises_django_s_error_and_dooms_the_transaction() -> None:
    await Author.objects.acreate(name="taken", age=1)
    await Author.objects.acreate(name="kept shape", age=2)
    with pytest.raises(IntegrityError, match="orm_testapp_author_name_key"):
        await Author.objects.acreate(name="taken", age=3)
    with pytest.raises(TransactionManagementError):
        async with async_atomic():
            await Author.objects.acreate(name="in a transaction", age=4)
            with pytest.raises(IntegrityError):
                await Author.objects.acreate(name="taken", age=5)
            await Author.objects.acount()  # Django's rule: the block must roll back
    assert not await Author.objects.filter(name="in a transaction").aexists()
    assert await Author.objects.acount() == 2


async def test_concurrent_inserts_of_one_shape_are_each_their_own(
    django_inserts: list[str],
) -> None:
    await Author.objects.acreate(name="first", age=0)
    django_inserts.clear()
    made = await asyncio.gather(
        *(Author.objects.acreate(name=f"task {n}", age=n) for n in range(1, 21))
    )
    assert django_inserts == []
    assert len({a.pk for a in made}) == 20
    stored = {a.pk: (a.name, a.age) async for a in Author.objects.filter(age__gt=0)}
    assert stored == {a.pk: (f"task {a.age}", a.age) for a in made}


@pytest.mark.threads_allowed
def test_fixtures_raw_saves_go_django_s_way(django_inserts: list[str]) -> None:
    Author.objects.create(name="first", age=1)
    django_inserts.clear()
    author = Author(name="raw", age=2)
    author.save_base(raw=True)
    assert django_inserts == ["Author"]
    assert Author.objects.get(pk=author.pk).name == "raw"


async def test_a_prepared_value_that_is_sql_is_compiled_by_django_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A field whose get_db_prep_save() returns an expression: Django compiles
    # it into the statement, handed the values computed already.
    await Author.objects.acreate(name="first", age=1)
    field = Author._meta.get_field("age")
    prepared: list[Any] = []
    original = type(field).get_db_prep_save

    def as_expression(self: Any, value: Any, connection: Any) -> Any:
        if self is not field:
            return original(self, value, connection)
        prepared.append(value)
        return Value(value * 10)

    monkeypatch.setattr(type(field), "get_db_prep_save", as_expression)
    author = await Author.objects.acreate(name="tenfold", age=7)
    assert prepared == [7]
    assert (await Author.objects.aget(pk=author.pk)).age == 70
