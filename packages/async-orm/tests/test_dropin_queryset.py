"""Django's own QuerySet async API, run through the bridge (drop-in mode)."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import MultipleObjectsReturned
from django.db.models import Count, F, Max, Q, Sum
from django.http import Http404
from django.shortcuts import aget_list_or_404, aget_object_or_404
from orm_testapp.models import Author, Book, Tag

from django_aio.atomic import async_atomic
from django_aio.orm import drop_in_enabled


@pytest.fixture
async def library() -> dict[str, Author]:
    ann = await Author.objects.acreate(name="Ann", age=40)
    bob = await Author.objects.acreate(name="Bob", age=25)
    await Author.objects.acreate(name="Cy", age=60)
    await Book.objects.abulk_create(
        [
            Book(
                title="A1", author=ann, pages=100, published=True, written=datetime.date(2001, 1, 1)
            ),
            Book(title="A2", author=ann, pages=300, written=datetime.date(2003, 1, 1)),
            Book(
                title="B1", author=bob, pages=200, published=True, written=datetime.date(2002, 1, 1)
            ),
        ]
    )
    return {"ann": ann, "bob": bob}


def test_drop_in_is_on() -> None:
    assert drop_in_enabled()


async def test_aget_variants(library: dict[str, Author]) -> None:
    assert (await Author.objects.aget(name="Ann")).age == 40
    assert (await Author.objects.filter(age__gt=30).exclude(name="Cy").aget()).name == "Ann"
    with pytest.raises(Author.DoesNotExist):
        await Author.objects.aget(name="Nobody")
    with pytest.raises(MultipleObjectsReturned):
        await Author.objects.aget(age__gt=1)


async def test_acreate_acount_aexists() -> None:
    assert not await Author.objects.aexists()
    author = await Author.objects.acreate(name="New")
    assert author.pk is not None
    assert await Author.objects.acount() == 1
    assert await Author.objects.filter(name="New").aexists()


async def test_first_last_earliest_latest(library: dict[str, Author]) -> None:
    assert (await Author.objects.afirst()).name == "Ann"
    assert (await Author.objects.alast()).name == "Cy"
    assert await Author.objects.filter(name="x").afirst() is None
    assert (await Book.objects.aearliest("written")).title == "A1"
    assert (await Book.objects.alatest("written")).title == "A2"


async def test_ain_bulk(library: dict[str, Author]) -> None:
    found = await Author.objects.ain_bulk([library["ann"].pk, library["bob"].pk])
    assert {a.name for a in found.values()} == {"Ann", "Bob"}
    by_name = await Author.objects.ain_bulk(["Cy"], field_name="name")
    assert list(by_name) == ["Cy"]


async def test_aupdate_adelete(library: dict[str, Author]) -> None:
    assert await Author.objects.filter(age__lt=50).aupdate(age=F("age") + 1) == 2
    assert (await Author.objects.aget(name="Bob")).age == 26
    deleted, per_model = await Author.objects.filter(name="Ann").adelete()
    # Ann's two books cascade.
    assert deleted == 3
    assert per_model == {"orm_testapp.Author": 1, "orm_testapp.Book": 2}


async def test_abulk_create_abulk_update() -> None:
    tags = await Tag.objects.abulk_create([Tag(name=f"t{i}") for i in range(5)])
    assert all(t.pk for t in tags)
    for tag in tags:
        tag.name = tag.name.upper()
    assert await Tag.objects.abulk_update(tags, ["name"], batch_size=2) == 5
    assert [t.name async for t in Tag.objects.all()] == ["T0", "T1", "T2", "T3", "T4"]


async def test_aget_or_create_aupdate_or_create() -> None:
    author, created = await Author.objects.aget_or_create(name="Dee", defaults={"age": 50})
    assert created
    assert author.age == 50
    again, created = await Author.objects.aget_or_create(name="Dee")
    assert not created
    assert again.pk == author.pk
    updated, created = await Author.objects.aupdate_or_create(name="Dee", defaults={"age": 51})
    assert not created
    assert updated.age == 51
    made, created = await Author.objects.aupdate_or_create(
        name="Eve", defaults={"age": 1}, create_defaults={"age": 2}
    )
    assert created
    assert made.age == 2


async def test_acontains_aexplain_aaggregate(library: dict[str, Author]) -> None:
    assert await Author.objects.filter(age__gt=30).acontains(library["ann"])
    assert not await Author.objects.filter(age__gt=30).acontains(library["bob"])
    plan = await Book.objects.filter(pages__gt=1).aexplain()
    assert "Scan" in plan
    assert await Book.objects.aaggregate(total=Sum("pages"), top=Max("pages")) == {
        "total": 600,
        "top": 300,
    }


async def test_async_for_over_chains(library: dict[str, Author]) -> None:
    names = [a.name async for a in Author.objects.filter(Q(age__lt=30) | Q(age__gt=50))]
    assert names == ["Bob", "Cy"]
    annotated = [
        (a.name, a.n) async for a in Author.objects.annotate(n=Count("books")).order_by("name")
    ]
    assert annotated == [("Ann", 2), ("Bob", 1), ("Cy", 0)]
    aliased = [a.name async for a in Author.objects.alias(n=Count("books")).filter(n__gt=1)]
    assert aliased == ["Ann"]
    values = [v async for v in Author.objects.values("name", "age").order_by("age")]
    assert values[0] == {"name": "Bob", "age": 25}
    flat = [v async for v in Book.objects.values_list("title", flat=True)]
    assert flat == ["A1", "A2", "B1"]
    named = [v async for v in Book.objects.values_list("title", "pages", named=True)][0]  # noqa: RUF015
    assert (named.title, named.pages) == ("A1", 100)
    distinct = [
        v async for v in Book.objects.values_list("author__name", flat=True).order_by().distinct()
    ]
    assert sorted(distinct) == ["Ann", "Bob"]
    sliced = [a.name async for a in Author.objects.all()[1:3]]
    assert sliced == ["Bob", "Cy"]


async def test_select_related_and_prefetch_related(library: dict[str, Author]) -> None:
    books = [b async for b in Book.objects.select_related("author", "editor")]
    # The joined author needs no query: it works in async code.
    assert [b.author.name for b in books] == ["Ann", "Ann", "Bob"]
    authors = [a async for a in Author.objects.prefetch_related("books")]
    assert [len(a.books.all()) for a in authors] == [2, 1, 0]
    one = await Book.objects.select_related("author").aget(title="B1")
    assert one.author.name == "Bob"


async def test_only_and_defer(library: dict[str, Author]) -> None:
    only = await Author.objects.only("name").aget(name="Ann")
    assert only.get_deferred_fields() == {"age"}
    deferred = await Author.objects.defer("age").aget(name="Ann")
    await deferred.arefresh_from_db(fields=["age"])
    assert deferred.age == 40


async def test_set_operations(library: dict[str, Author]) -> None:
    young = Author.objects.filter(age__lt=50)
    old = Author.objects.filter(age__gt=30)
    union = sorted([a.name async for a in young.union(old)])
    assert union == ["Ann", "Bob", "Cy"]
    assert [a.name async for a in young.intersection(old)] == ["Ann"]
    assert [a.name async for a in young.difference(old)] == ["Bob"]
    assert await young.union(old).acount() == 3


async def test_select_for_update_in_transaction(library: dict[str, Author]) -> None:
    async with async_atomic():
        locked = [a async for a in Author.objects.select_for_update().filter(age__gt=30)]
        assert [a.name for a in locked] == ["Ann", "Cy"]
        locked_one = await Author.objects.select_for_update(nowait=True).aget(name="Bob")
        assert locked_one.age == 25


@pytest.mark.aio_db(databases="__all__")
async def test_using_other_database() -> None:
    await Author.objects.using("other").acreate(name="Elsewhere")
    try:
        assert await Author.objects.using("other").acount() == 1
        assert await Author.objects.acount() == 0
    finally:
        await Author.objects.using("other").all().adelete()


async def test_raw_queryset_async_iteration(library: dict[str, Author]) -> None:
    table = Author._meta.db_table
    raw = Author.objects.raw(f"SELECT id, name FROM {table} WHERE age > %s ORDER BY name", [30])
    assert [a.name async for a in raw] == ["Ann", "Cy"]


async def test_shortcuts(library: dict[str, Author]) -> None:
    assert (await aget_object_or_404(Author, name="Ann")).age == 40
    assert (await aget_object_or_404(Author.objects.filter(age=25))).name == "Bob"
    with pytest.raises(Http404):
        await aget_object_or_404(Author, name="Nobody")
    books = await aget_list_or_404(Book, author__name="Ann")
    assert [b.title for b in books] == ["A1", "A2"]
    with pytest.raises(Http404):
        await aget_list_or_404(Book, author__name="Cy")


async def test_custom_queryset_and_manager(library: dict[str, Author]) -> None:
    assert await Book.objects.published().acount() == 2
    assert [b.title async for b in Book.published_books.all()] == ["A1", "B1"]
    assert (await Book.published_books.afirst()).title == "A1"
