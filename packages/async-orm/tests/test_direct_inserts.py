"""save() of a new row runs the kept INSERT directly (Note [Direct inserts]).

test_compiled_inserts.py compares the statements and objects with Django's
for many kinds of insert, which covers this path's results; here, which
inserts take it, and that errors, transactions and concurrency behave as
Django's own inserts do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import IntegrityError
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Lower
from django.db.models.sql import compiler as sql_compiler
from django.db.transaction import TransactionManagementError
from django.test.utils import override_settings
from orm_testapp.models import Author, Book, Owner, Pet, Restaurant

from django_aio.atomic import async_atomic
from django_aio.orm._direct_insert import direct_inserts_run


@pytest.fixture
def direct() -> Callable[[], int]:
    """How many inserts ran directly since the test started."""
    start = direct_inserts_run()
    return lambda: direct_inserts_run() - start


async def test_a_kept_shape_runs_directly(direct: Callable[[], int]) -> None:
    await Author.objects.acreate(name="first", age=1)  # Django writes and keeps the SQL
    before = direct()
    made = [await Author.objects.acreate(name=f"author {n}", age=n) for n in range(3)]
    assert direct() - before == 3
    assert [(a.name, a.age, a._state.adding, a._state.db) for a in made] == [
        (f"author {n}", n, False, "default") for n in range(3)
    ]
    stored = [a async for a in Author.objects.filter(name__startswith="author").order_by("age")]
    assert [(a.pk, a.name) for a in stored] == [(a.pk, a.name) for a in made]


async def test_without_the_query_cache_django_inserts(direct: Callable[[], int]) -> None:
    await Author.objects.acreate(name="first", age=1)
    before = direct()
    with override_settings(DJANGO_AIO_QUERY_CACHE=False):
        await Author.objects.acreate(name="second", age=2)
    assert direct() == before


async def test_an_expression_goes_django_s_way(direct: Callable[[], int]) -> None:
    await Author.objects.acreate(name="first", age=1)
    before = direct()
    author = await Author.objects.acreate(name=Lower(Value("LOUD")), age=2)
    assert direct() == before
    assert (await Author.objects.aget(pk=author.pk)).name == "loud"


async def test_a_pre_save_of_its_own_goes_django_s_way_and_runs_once(
    direct: Callable[[], int], monkeypatch: pytest.MonkeyPatch
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
    before = direct()
    author = await Author.objects.acreate(name="quiet", age=2)
    assert direct() == before
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


async def test_parents_and_foreign_keys_take_it(direct: Callable[[], int]) -> None:
    owner = await Owner.objects.acreate(name="owner")
    await Pet.objects.acreate(owner=owner)
    await Restaurant.objects.acreate(name="warm-up", serves_pizza=False)
    before = direct()
    pet = await Pet.objects.acreate(owner=owner)
    restaurant = await Restaurant.objects.acreate(name="direct", serves_pizza=True)
    assert direct() - before == 3  # the pet; the place, then the restaurant
    assert (await Pet.objects.aget(pk=pet.pk)).owner_id == owner.pk
    stored = await Restaurant.objects.aget(pk=restaurant.pk)
    assert (stored.name, stored.serves_pizza, stored.place_ptr_id) == (
        "direct",
        True,
        restaurant.pk,
    )


async def test_a_base_manager_of_its_own_goes_django_s_way(direct: Callable[[], int]) -> None:
    # Book's base manager is BookQuerySet.as_manager(): its _insert() may differ.
    author = await Author.objects.acreate(name="writer")
    await Book.objects.acreate(title="first", author=author)
    before = direct()
    book = await Book.objects.acreate(title="second", author=author, pages=7)
    assert direct() == before
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
    direct: Callable[[], int],
) -> None:
    await Author.objects.acreate(name="first", age=0)
    before = direct()
    made = await asyncio.gather(
        *(Author.objects.acreate(name=f"task {n}", age=n) for n in range(1, 21))
    )
    assert direct() - before == 20
    assert len({a.pk for a in made}) == 20
    stored = {a.pk: (a.name, a.age) async for a in Author.objects.filter(age__gt=0)}
    assert stored == {a.pk: (f"task {a.age}", a.age) for a in made}


@pytest.mark.threads_allowed
def test_fixtures_raw_saves_go_django_s_way(direct: Callable[[], int]) -> None:
    Author.objects.create(name="first", age=1)
    before = direct()
    author = Author(name="raw", age=2)
    author.save_base(raw=True)
    assert direct() == before
    assert Author.objects.get(pk=author.pk).name == "raw"


async def test_a_prepared_value_that_is_sql_is_compiled_by_django_once(
    direct: Callable[[], int], monkeypatch: pytest.MonkeyPatch
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
    before = direct()
    author = await Author.objects.acreate(name="tenfold", age=7)
    assert direct() == before
    assert prepared == [7]
    assert (await Author.objects.aget(pk=author.pk)).age == 70


@pytest.mark.parametrize("wrapped", ["QuerySet._insert", "SQLInsertCompiler.execute_sql"])
async def test_a_wrapper_on_django_s_insert_chain_sees_every_insert(
    wrapped: str, direct: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Profilers (django-silk wraps execute_sql) and tests wrap these.
    await Author.objects.acreate(name="first", age=1)
    owner: Any = QuerySet if wrapped.startswith("QuerySet") else sql_compiler.SQLInsertCompiler
    name = wrapped.split(".")[1]
    original = getattr(owner, name)
    seen: list[str] = []

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(wrapped)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    before = direct()
    await Author.objects.acreate(name="second", age=2)
    await Author.objects.acreate(name="third", age=3)
    assert seen == [wrapped, wrapped]
    assert direct() == before


async def test_a_pre_save_set_on_the_field_goes_django_s_way(
    direct: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    await Author.objects.acreate(name="first", age=1)
    field = Author._meta.get_field("name")
    monkeypatch.setattr(field, "pre_save", lambda obj, add: F("age"))
    before = direct()
    with pytest.raises(ValueError, match="Failed to insert expression"):
        await Author.objects.acreate(name="second", age=2)
    assert direct() == before


async def test_a_converter_added_later_is_applied(
    direct: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Tagged(int):
        pass

    await Author.objects.acreate(name="first", age=1)
    monkeypatch.setattr(
        type(Author._meta.pk),
        "from_db_value",
        lambda self, value, expression, connection: Tagged(value),
        raising=False,
    )
    before = direct()
    author = await Author.objects.acreate(name="second", age=2)
    assert type(author.pk) is Tagged
    assert direct() == before


async def test_sync_code_on_the_loop_fails_before_preparing_values() -> None:
    # Django opens its cursor before it prepares the values: the guard
    # against sync ORM calls in async code speaks first.
    await Author.objects.acreate(name="first", age=1)
    with pytest.raises(SynchronousOnlyOperation):
        Author.objects.create(name="sync", age="not a number")
