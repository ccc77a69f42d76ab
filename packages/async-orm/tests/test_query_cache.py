"""The compiled query cache of django_aio's ENGINE gives Django's SQL and results.

Each query shape runs with the cache off (Django compiles it), then twice
with it on (a miss that fills it, then a hit): the SQL, the parameters and
the rows must be the same every time, with different values on each run so
that a hit really rebinds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Value
from django.db.models.functions import Lower
from django.test.utils import override_settings
from orm_testapp.models import Author, AuthorProxy, Book, Restaurant, Tag

from django_aio.conn.backends.postgresql.compiler import clear_query_cache, query_cache_info

from .conftest import fill_library

# The sync tests run Django's own sync path, which uses the same compiler.
pytestmark = pytest.mark.threads_allowed


@pytest.fixture
def library() -> Iterator[None]:
    fill_library()
    clear_query_cache()
    yield
    clear_query_cache()


def _rows(qs: QuerySet[Any, Any]) -> list[Any]:
    rows = []
    for row in qs:
        if isinstance(row, Book):
            # select_related and deferred fields must come back as Django builds them.
            cached = row._state.fields_cache
            rows.append(
                (
                    row.pk,
                    row.title,
                    sorted(row.get_deferred_fields()),
                    cached["author"].name if "author" in cached else None,
                    cached["editor"].name if cached.get("editor") else None,
                    [t.name for t in row.tags.all()]
                    if "tags" in getattr(row, "_prefetched_objects_cache", {})
                    else None,
                )
            )
        elif hasattr(row, "pk"):
            rows.append((type(row).__name__, row.pk, str(row)))
        else:
            rows.append(row)
    return rows


# Each shape takes a value, so that the three runs bind different parameters.
SHAPES: dict[str, Callable[[int], QuerySet[Any, Any]]] = {
    "get by pk": lambda n: Author.objects.filter(pk=n),
    "filter and order": lambda n: Book.objects.filter(pages__gte=100 * n).order_by("-pages"),
    "default ordering": lambda n: Author.objects.filter(age__lt=30 + 20 * n),
    "several lookups": lambda n: Book.objects.filter(
        title__startswith="T", pages__in=[100, 200 * n], written__year__gte=2000
    ),
    "or and not": lambda n: Book.objects.filter(Q(pages=100 * n) | ~Q(published=True)),
    "isnull": lambda n: Book.objects.filter(editor__isnull=n % 2 == 0),
    "join in filter": lambda n: Book.objects.filter(author__name=["Ann", "Bob", "Cy"][n % 3]),
    "reverse join": lambda n: Author.objects.filter(books__pages__gt=100 * n).distinct(),
    "m2m join": lambda n: Book.objects.filter(tags__name=["red", "blue"][n % 2]),
    "select_related": lambda n: Book.objects.select_related("author", "editor").filter(pages__gt=n),
    "select_related nested": lambda n: Book.objects.select_related("author__profile").order_by(
        "pages"
    )[: n + 1],
    "slice": lambda n: Book.objects.order_by("title")[n : n + 2],
    "only": lambda n: Book.objects.only("title").filter(pages__gte=n * 100),
    "defer": lambda n: Book.objects.defer("written", "pages").filter(pk__gte=n),
    "values": lambda n: Book.objects.values("title", "author__name").filter(pages__gte=n * 100),
    "values_list flat": lambda n: Book.objects.values_list("title", flat=True).filter(pk__gt=n),
    "values_list named": lambda n: Book.objects.values_list("pk", "pages", named=True).filter(
        pages__lte=100 * (n + 1)
    ),
    "dates": lambda n: Book.objects.filter(pages__gt=n).dates("written", "year"),
    "F in filter": lambda n: Book.objects.filter(pages__gt=F("author__age") * n),
    "annotate": lambda n: Author.objects.annotate(c=Count("books")).filter(c__gte=n % 3),
    "alias": lambda n: Author.objects.alias(lower=Lower("name")).filter(
        lower="ann" if n else "bob"
    ),
    "exists": lambda n: Author.objects.filter(
        Exists(Book.objects.filter(author=OuterRef("pk"), pages__gt=100 * n))
    ),
    "subquery in": lambda n: Book.objects.filter(author__in=Author.objects.filter(age__gt=n * 10)),
    "prefetch": lambda n: Book.objects.prefetch_related(
        Prefetch("tags", queryset=Tag.objects.filter(name__gte="a" * (n % 2)))
    ).filter(pages__gte=n),
    "proxy": lambda n: AuthorProxy.objects.filter(age__gte=n * 10),
    "inheritance": lambda n: Restaurant.objects.filter(serves_pizza=n % 2 == 0),
    "extra": lambda n: Author.objects.extra(where=["age > %s"], params=[n * 10]),
    "union": lambda n: Author.objects.filter(age=25).union(Author.objects.filter(age__gt=n)),
    "empty in": lambda n: Author.objects.filter(pk__in=[]) if n else Author.objects.none(),
    "value annotation": lambda n: Author.objects.annotate(v=Value(n)).filter(age__gt=n),
    "order by expression": lambda n: Author.objects.order_by(Lower("name").desc())[: n + 1],
}


@pytest.mark.parametrize("shape", SHAPES)
def test_same_sql_and_rows_with_and_without_the_cache(library: None, shape: str) -> None:
    make = SHAPES[shape]
    for n in (1, 2, 3):
        with override_settings(DJANGO_AIO_QUERY_CACHE=False):
            expected_sql = _sql(make(n))
            expected_rows = _rows(make(n))
            expected_aliases = _aliases_after_compiling(make(n))
        for _ in range(2):  # a miss, then a hit where the shape is cacheable
            assert _sql(make(n)) == expected_sql
            assert _rows(make(n)) == expected_rows
            assert _aliases_after_compiling(make(n)) == expected_aliases


def _aliases_after_compiling(qs: QuerySet[Any, Any]) -> Any:
    # Compiling adds aliases to the query (Django's own tests look at them).
    _sql(qs)
    query = qs.query
    return (
        dict(query.alias_map),
        dict(query.alias_refcount),
        {table: list(aliases) for table, aliases in query.table_map.items()},
    )


def _sql(qs: QuerySet[Any, Any]) -> Any:
    try:
        return qs.query.sql_with_params()
    except Exception as exc:  # EmptyResultSet: the same on both paths
        return type(exc)


def test_a_repeated_shape_is_compiled_once(library: None) -> None:
    for n in range(1, 5):
        assert Author.objects.get(pk=n if n < 4 else 1).pk in (1, 2, 3)
    info = query_cache_info()
    assert (info.misses, info.hits) == (1, 3)
    assert info.size == 1


def test_what_is_not_cached(library: None) -> None:
    for _ in range(2):
        list(Author.objects.annotate(c=Count("books")))  # annotations: Django compiles
        # Parameters outside the WHERE clause: compiled by Django every time.
        list(Author.objects.extra(select={"older": "age + %s"}, select_params=[1]))
        list(Author.objects.order_by(Lower("name"))[:1])
        with transaction.atomic():
            list(Author.objects.select_for_update().filter(pk=1))
    assert query_cache_info().hits == 0


def test_extra_select_without_parameters_is_cached(library: None) -> None:
    for n in (1, 2):
        author = Author.objects.extra(select={"older": "age + 1"}).get(pk=n)
        assert author.older == author.age + 1  # type: ignore[attr-defined]
    assert query_cache_info().hits == 1


def test_select_for_update_is_checked_each_time(library: None) -> None:
    with transaction.atomic():
        list(Author.objects.select_for_update().filter(pk=1))
    with pytest.raises(
        transaction.TransactionManagementError,
        match="select_for_update cannot be used outside of a transaction",
    ):
        list(Author.objects.select_for_update().filter(pk=1))


def test_changed_model_ordering_is_a_new_shape(
    library: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [a.name for a in Author.objects.filter(age__gt=0)] == ["Ann", "Bob", "Cy"]
    monkeypatch.setattr(Author._meta, "ordering", ["-name"])
    assert [a.name for a in Author.objects.filter(age__gt=0)] == ["Cy", "Bob", "Ann"]


def test_the_setting_turns_it_off(library: None) -> None:
    with override_settings(DJANGO_AIO_QUERY_CACHE=False):
        for _ in range(3):
            Author.objects.get(pk=1)
    assert query_cache_info() == (0, 0, 0, 0)


def test_only_django_aio_aliases_use_it(library: None) -> None:
    compiler = Author.objects.filter(pk=1).query.get_compiler(connection=connection)
    assert type(compiler).__module__ == "django_aio.conn.backends.postgresql.compiler"


async def test_async_queries_hit_it() -> None:
    ann = await Author.objects.acreate(name="Ann", age=40)
    clear_query_cache()
    for _ in range(3):
        assert (await Author.objects.filter(age__gt=0).aget(pk=ann.pk)).name == "Ann"
        assert [a.pk async for a in Author.objects.filter(pk=ann.pk)] == [ann.pk]
    info = query_cache_info()
    assert (info.misses, info.hits) == (2, 4)


def test_a_hit_leaves_the_query_as_compiling_does(library: None) -> None:
    for _ in range(2):  # a miss, then a hit
        qs = Book.objects.select_related("author").order_by("author__name")
        assert len(qs.query.alias_map) == 0
        list(qs)
        assert sorted(qs.query.alias_map) == ["orm_testapp_author", "orm_testapp_book"]
    assert query_cache_info().hits == 1
