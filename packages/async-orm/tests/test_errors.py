"""Sync database access from async code names the async way to do it."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import SynchronousOnlyOperation
from orm_testapp.models import Author, Book, Pizza, Profile, TaggedItem

from django_aio.conn import run_sync
from django_aio.orm import drop_in

DJANGO_MESSAGE = "You cannot call this from an async context - use a thread or sync_to_async."


@pytest.fixture
async def book() -> Book:
    author = await Author.objects.acreate(name="Ann")
    await Profile.objects.acreate(author=author)
    book = await Book.objects.acreate(title="T", author=author)
    await run_sync(TaggedItem.objects.create, label="x", content_object=book)
    return await Book.objects.aget(pk=book.pk)


async def test_forward_foreign_key(book: Book) -> None:
    with pytest.raises(SynchronousOnlyOperation) as info:
        book.author  # noqa: B018
    assert str(info.value) == (
        "Book.author is not loaded, and loading it would run a database query "
        "synchronously in async code. Load it with the query (select_related('author') "
        "or prefetch_related('author')), or fetch it with `await obj.aauthor` (models "
        "with django_aio.orm.AsyncMixin)."
    )
    # Django's own error stays at the root of the chain.
    root: BaseException = info.value
    while root.__cause__ is not None:
        root = root.__cause__
    assert str(root) == DJANGO_MESSAGE


async def test_reverse_one_to_one() -> None:
    await Author.objects.acreate(name="Ann")
    author = await Author.objects.aget()
    with pytest.raises(SynchronousOnlyOperation, match=r"^Author\.profile is not loaded"):
        author.profile  # noqa: B018


async def test_generic_foreign_key(book: Book) -> None:
    item = await TaggedItem.objects.aget()
    with pytest.raises(SynchronousOnlyOperation) as info:
        item.content_object  # noqa: B018
    assert "Load it with the query (prefetch_related('content_object'))" in str(info.value)


async def test_deferred_field(book: Book) -> None:
    author = await Author.objects.only("name").aget()
    with pytest.raises(SynchronousOnlyOperation) as info:
        author.age  # noqa: B018
    assert str(info.value) == (
        "Author.age was deferred (only()/defer()), and loading it would run a database "
        "query synchronously in async code. Include it in the query, or load it with "
        "`await obj.arefresh_from_db(fields=['age'])`."
    )


QUERYSET_MESSAGE = (
    "a QuerySet of {} was evaluated synchronously in async code (iteration, len(), "
    "bool(), list() or indexing), which would run a database query. Use `async for obj "
    "in qs`, `await qs.alist()` (django_aio.orm.AsyncQuerySet) or `[obj async for obj in "
    "qs]`; for related objects, load them with the query using prefetch_related()."
)


async def test_unevaluated_querysets(book: Book) -> None:
    qs = Author.objects.all()
    for evaluate in (list, len, bool):
        with pytest.raises(SynchronousOnlyOperation) as info:
            evaluate(qs)
        assert str(info.value) == QUERYSET_MESSAGE.format("Author")
    author = await Author.objects.aget()
    with pytest.raises(SynchronousOnlyOperation) as info:
        list(author.books.all())
    assert str(info.value) == QUERYSET_MESSAGE.format("Book")


async def test_generic_relation_manager_with_cold_content_type_cache(book: Book) -> None:
    ContentType.objects.clear_cache()
    with pytest.raises(SynchronousOnlyOperation) as info:
        book.items  # noqa: B018
    assert str(info.value) == (
        "Book.items needs the ContentType of Book, which is not cached yet, and loading "
        "it would run a database query synchronously in async code. Load it once first "
        "with `await run_sync(ContentType.objects.get_for_model, Book)` "
        "(django_aio.conn.run_sync), or use `obj.aitems` (models with "
        "django_aio.orm.AsyncMixin)."
    )


async def test_async_mixin_relations_need_no_warm_cache() -> None:
    pizza = await Pizza.aobjects.create(name="p")
    ContentType.objects.clear_cache()
    await pizza.alabels.create(label="hot")
    ContentType.objects.clear_cache()
    assert await pizza.alabels.count() == 1


async def test_inside_the_bridge_lazy_loading_just_works(book: Book) -> None:
    assert await run_sync(lambda: book.author.name) == "Ann"
    assert await run_sync(lambda: len(Author.objects.all())) == 1


async def test_drop_in_off_restores_djangos_message(book: Book) -> None:
    with drop_in(False), pytest.raises(SynchronousOnlyOperation) as info:
        book.author  # noqa: B018
    assert str(info.value) == DJANGO_MESSAGE


def test_async_query_refuses_sync_evaluation() -> None:
    query = Pizza.aobjects.all()
    with pytest.raises(TypeError) as info:
        len(query)
    assert str(info.value) == (
        "len() of an async query would run a database query synchronously; use "
        "`await query.count()` (Django: `await queryset.acount()`), or fetch the rows "
        "with `await query.eval()` and take len() of the list."
    )
    with pytest.raises(TypeError) as info:
        bool(query)
    assert str(info.value) == (
        "the truth value of an async query would run a database query synchronously; "
        "use `await query.exists()` (Django: `await queryset.aexists()`)."
    )
    with pytest.raises(TypeError, match=r"^an async query can't be iterated synchronously; "):
        list(query)
